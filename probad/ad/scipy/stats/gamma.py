"""The gamma distribution ``gamma(a, loc, scale)``, as ``scipy.stats.gamma``.

Derivatives of ``cdf``/``sf`` with respect to the shape ``a`` come from
:func:`probad.ad.scipy.special.gammainc` (second order at most).
"""
from __future__ import annotations

from ... import numpy as np
from ..special import gammainc, gammaincc, gammaln, xlogy
from ._domain import nan_unless, positive, safe_log, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def logpdf(x, a, loc=0.0, scale=1.0):
    """Log density ``(a-1) log y - y - gammaln(a) - log(scale)``, ``y = (x - loc)/scale``."""
    y, log_scale, ok = standardize(x, loc, scale)
    a, a_ok = positive(a)
    inside = y >= 0
    y = np.where(inside, y, 1.0)
    value = xlogy(a - 1, y) - y - gammaln(a) - log_scale
    return nan_unless(ok & a_ok, np.where(inside, value, -np.inf))


def pdf(x, a, loc=0.0, scale=1.0):
    """Density."""
    return np.exp(logpdf(x, a, loc, scale))


def _standard(x, a, loc, scale):
    y, _, ok = standardize(x, loc, scale)
    a, a_ok = positive(a)
    return np.maximum(y, 0.0), a, ok & a_ok


def cdf(x, a, loc=0.0, scale=1.0):
    """Distribution function ``P(a, y)`` (regularised lower incomplete gamma)."""
    y, a, ok = _standard(x, a, loc, scale)
    return nan_unless(ok, gammainc(a, y))


def sf(x, a, loc=0.0, scale=1.0):
    """Survival function ``Q(a, y)``."""
    y, a, ok = _standard(x, a, loc, scale)
    return nan_unless(ok, gammaincc(a, y))


def logcdf(x, a, loc=0.0, scale=1.0):
    """Log of the distribution function."""
    return safe_log(cdf(x, a, loc, scale))


def logsf(x, a, loc=0.0, scale=1.0):
    """Log of the survival function."""
    return safe_log(sf(x, a, loc, scale))
