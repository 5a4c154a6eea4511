"""The chi-squared distribution ``chi2(df, loc, scale)``: a gamma distribution
with shape ``df/2`` and scale ``2 * scale``, as ``scipy.stats.chi2``."""
from __future__ import annotations

from . import gamma as _gamma

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def logpdf(x, df, loc=0.0, scale=1.0):
    """Log density."""
    return _gamma.logpdf(x, 0.5 * df, loc, 2.0 * scale)


def pdf(x, df, loc=0.0, scale=1.0):
    """Density."""
    return _gamma.pdf(x, 0.5 * df, loc, 2.0 * scale)


def cdf(x, df, loc=0.0, scale=1.0):
    """Distribution function."""
    return _gamma.cdf(x, 0.5 * df, loc, 2.0 * scale)


def logcdf(x, df, loc=0.0, scale=1.0):
    """Log of the distribution function."""
    return _gamma.logcdf(x, 0.5 * df, loc, 2.0 * scale)


def sf(x, df, loc=0.0, scale=1.0):
    """Survival function."""
    return _gamma.sf(x, 0.5 * df, loc, 2.0 * scale)


def logsf(x, df, loc=0.0, scale=1.0):
    """Log of the survival function."""
    return _gamma.logsf(x, 0.5 * df, loc, 2.0 * scale)
