"""Student's t distribution ``t(df, loc, scale)``, as ``scipy.stats.t``.

The distribution function is a primitive (``scipy.special.stdtr`` forward)
so that its derivative in ``x`` is the density itself, finite everywhere.
Its derivative in ``df`` goes through the incomplete beta function,
``F = 1/2 + sign(z)/2 * I_y(1/2, df/2)`` with ``y = z**2/(df + z**2)``;
at ``z = 0`` (where ``F = 1/2`` for every ``df``) it is 0.
"""
from __future__ import annotations

import numpy as onp
import scipy.special as _sp

from ... import numpy as np
from ...core import defjvp, defvjp
from ...numpy.numpy_vjps import unbroadcast_f
from ...tracer import primitive
from ..special import _beta_density, _float_dtype, betainc_dab, gammaln
from ._domain import nan_unless, positive, safe_log, standardize

__all__ = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]

_HALF_LOG_PI = float(0.5 * onp.log(onp.pi))


def _standard_logpdf(z, df):
    return (gammaln(0.5 * (df + 1)) - gammaln(0.5 * df) - 0.5 * np.log(df) - _HALF_LOG_PI
            - 0.5 * (df + 1) * np.log1p(z * z / df))


def logpdf(x, df, loc=0.0, scale=1.0):
    """Log density."""
    z, log_scale, ok = standardize(x, loc, scale)
    df, df_ok = positive(df)
    return nan_unless(ok & df_ok, _standard_logpdf(z, df) - log_scale)


def pdf(x, df, loc=0.0, scale=1.0):
    """Density."""
    return np.exp(logpdf(x, df, loc, scale))


@primitive
def _stdtr(df, z):
    """Standard t distribution function (``scipy.special.stdtr``)."""
    return onp.asarray(_sp.stdtr(df, z)).astype(_float_dtype(df, z))[()]


def _stdtr_ddf(df, z):
    """dF/d(df) through the incomplete beta representation (0 at z = 0)."""
    nonzero = z != 0
    z = np.where(nonzero, z, 1.0)
    denom = df + z * z
    y = z * z / denom
    d_shape = betainc_dab(0.5, 0.5 * df, y, 0, 1) * 0.5
    d_arg = _beta_density(0.5, 0.5 * df, y) * (-z * z / (denom * denom))
    return np.where(nonzero, 0.5 * np.sign(z) * (d_shape + d_arg), 0.0)


def _stdtr_ddf_rule(ans, df, z):
    return _stdtr_ddf(df, z)


def _stdtr_dz_rule(ans, df, z):
    return np.exp(_standard_logpdf(z, df))


def _broadcast_like(value, ans):
    return value if onp.shape(value) == onp.shape(ans) else np.broadcast_to(value, onp.shape(ans))


defvjp(_stdtr, lambda ans, df, z: unbroadcast_f(df, lambda g: g * _stdtr_ddf_rule(ans, df, z)),
       lambda ans, df, z: unbroadcast_f(z, lambda g: g * _stdtr_dz_rule(ans, df, z)))
defjvp(_stdtr, lambda g, ans, df, z: _broadcast_like(g * _stdtr_ddf_rule(ans, df, z), ans),
       lambda g, ans, df, z: _broadcast_like(g * _stdtr_dz_rule(ans, df, z), ans))


def cdf(x, df, loc=0.0, scale=1.0):
    """Distribution function."""
    z, _, ok = standardize(x, loc, scale)
    df, df_ok = positive(df)
    return nan_unless(ok & df_ok, _stdtr(df, z))


def sf(x, df, loc=0.0, scale=1.0):
    """Survival function (by symmetry, ``cdf(-z)``)."""
    z, _, ok = standardize(x, loc, scale)
    df, df_ok = positive(df)
    return nan_unless(ok & df_ok, _stdtr(df, -z))


def logcdf(x, df, loc=0.0, scale=1.0):
    """Log of the distribution function."""
    return safe_log(cdf(x, df, loc, scale))


def logsf(x, df, loc=0.0, scale=1.0):
    """Log of the survival function."""
    return safe_log(sf(x, df, loc, scale))
