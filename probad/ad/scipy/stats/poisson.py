"""The Poisson distribution ``poisson(mu, loc)``, as ``scipy.stats.poisson``.

Differentiable in the rate ``mu``; the counts ``k`` are data (their
gradient is that of a step function: zero)."""
from __future__ import annotations

import numpy as onp

from ... import numpy as np
from ..special import gammainc, gammaincc, gammaln, xlogy
from ._domain import nan_unless, safe_log

__all__ = ["logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"]


def _rate(mu):
    ok = mu >= 0
    return np.where(ok, mu, 1.0), ok


def logpmf(k, mu, loc=0):
    """Log probability ``k log mu - mu - log k!`` of ``k - loc`` events
    (``-inf`` unless that is a non-negative integer)."""
    k = k - loc
    mu, ok = _rate(mu)
    count = (k >= 0) & (k == np.floor(k))
    k = np.where(count, k, 0.0)
    return nan_unless(ok, np.where(count, xlogy(k, mu) - mu - gammaln(k + 1), -onp.inf))


def pmf(k, mu, loc=0):
    """Probability mass."""
    return np.exp(logpmf(k, mu, loc))


def _upper_shape(k, loc):
    """``floor(k - loc) + 1`` (made positive where ``k < loc``, masked by callers)."""
    k = np.floor(k - loc)
    return np.where(k >= 0, k + 1, 1.0), k >= 0


def cdf(k, mu, loc=0):
    """``P(K <= k) = Q(floor(k) + 1, mu)``."""
    a, inside = _upper_shape(k, loc)
    mu, ok = _rate(mu)
    return nan_unless(ok, np.where(inside, gammaincc(a, mu), 0.0))


def sf(k, mu, loc=0):
    """``P(K > k) = P(floor(k) + 1, mu)``."""
    a, inside = _upper_shape(k, loc)
    mu, ok = _rate(mu)
    return nan_unless(ok, np.where(inside, gammainc(a, mu), 1.0))


def logcdf(k, mu, loc=0):
    """Log of the distribution function."""
    return safe_log(cdf(k, mu, loc))


def logsf(k, mu, loc=0):
    """Log of the survival function."""
    return safe_log(sf(k, mu, loc))
