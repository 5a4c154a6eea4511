"""The beta distribution ``beta(a, b, loc, scale)``, as ``scipy.stats.beta``.

Derivatives of ``cdf``/``sf`` with respect to ``a`` and ``b`` come from
:func:`probad.ad.scipy.special.betainc` (second order at most).
"""
from __future__ import annotations

from ... import numpy as np
from ..special import betainc, betaincc, betaln, xlog1py, xlogy
from ._domain import nan_unless, positive, safe_log, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def logpdf(x, a, b, loc=0.0, scale=1.0):
    """Log density ``(a-1) log y + (b-1) log(1-y) - betaln(a, b) - log(scale)``
    with ``y = (x - loc)/scale`` in [0, 1]."""
    y, log_scale, ok = standardize(x, loc, scale)
    a, a_ok = positive(a)
    b, b_ok = positive(b)
    inside = (y >= 0) & (y <= 1)
    y = np.where(inside, y, 0.5)
    value = xlogy(a - 1, y) + xlog1py(b - 1, -y) - betaln(a, b) - log_scale
    return nan_unless(ok & a_ok & b_ok, np.where(inside, value, -np.inf))


def pdf(x, a, b, loc=0.0, scale=1.0):
    """Density."""
    return np.exp(logpdf(x, a, b, loc, scale))


def _standard(x, a, b, loc, scale):
    y, _, ok = standardize(x, loc, scale)
    a, a_ok = positive(a)
    b, b_ok = positive(b)
    return np.clip(y, 0.0, 1.0), a, b, ok & a_ok & b_ok


def cdf(x, a, b, loc=0.0, scale=1.0):
    """Distribution function ``I_y(a, b)`` (regularised incomplete beta)."""
    y, a, b, ok = _standard(x, a, b, loc, scale)
    return nan_unless(ok, betainc(a, b, y))


def sf(x, a, b, loc=0.0, scale=1.0):
    """Survival function ``1 - I_y(a, b)``."""
    y, a, b, ok = _standard(x, a, b, loc, scale)
    return nan_unless(ok, betaincc(a, b, y))


def logcdf(x, a, b, loc=0.0, scale=1.0):
    """Log of the distribution function."""
    return safe_log(cdf(x, a, b, loc, scale))


def logsf(x, a, b, loc=0.0, scale=1.0):
    """Log of the survival function."""
    return safe_log(sf(x, a, b, loc, scale))
