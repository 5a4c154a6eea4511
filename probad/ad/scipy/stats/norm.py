"""The normal distribution ``norm(loc, scale)``, as ``scipy.stats.norm``."""
from __future__ import annotations

import numpy as onp

from ... import numpy as np
from ..special import log_ndtr, ndtr, ndtri
from ._domain import nan_unless, positive, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf"]

_HALF_LOG_2PI = float(0.5 * onp.log(2 * onp.pi))


def logpdf(x, loc=0.0, scale=1.0):
    """Log density ``-z**2/2 - log(scale) - log(2 pi)/2`` with ``z = (x - loc)/scale``."""
    z, log_scale, ok = standardize(x, loc, scale)
    return nan_unless(ok, -0.5 * z * z - log_scale - _HALF_LOG_2PI)


def pdf(x, loc=0.0, scale=1.0):
    """Density."""
    return np.exp(logpdf(x, loc, scale))


def cdf(x, loc=0.0, scale=1.0):
    """Distribution function ``Phi(z)``."""
    z, _, ok = standardize(x, loc, scale)
    return nan_unless(ok, ndtr(z))


def logcdf(x, loc=0.0, scale=1.0):
    """Log of the distribution function, accurate far in the lower tail."""
    z, _, ok = standardize(x, loc, scale)
    return nan_unless(ok, log_ndtr(z))


def sf(x, loc=0.0, scale=1.0):
    """Survival function ``1 - cdf``, accurate in the upper tail."""
    z, _, ok = standardize(x, loc, scale)
    return nan_unless(ok, ndtr(-z))


def logsf(x, loc=0.0, scale=1.0):
    """Log of the survival function."""
    z, _, ok = standardize(x, loc, scale)
    return nan_unless(ok, log_ndtr(-z))


def ppf(q, loc=0.0, scale=1.0):
    """Quantile function ``loc + scale * Phi^-1(q)``."""
    scale, ok = positive(scale)
    return nan_unless(ok, loc + scale * ndtri(q))
