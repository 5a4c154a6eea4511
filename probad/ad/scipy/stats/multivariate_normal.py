"""The multivariate normal distribution, as ``scipy.stats.multivariate_normal``.

``logpdf`` is differentiable in ``x``, ``mean`` and ``cov``. The covariance
is symmetrised, ``(cov + cov.T)/2``, before use, so its gradient is the
usual symmetric one, ``(S^-1 r r^T S^-1 - S^-1)/2`` for ``r = x - mean``.
With ``allow_singular=False`` the density goes through a Cholesky factor
(LinAlgError if ``cov`` is not positive definite); with ``True``, through
an eigendecomposition, the pseudo-determinant and the pseudo-inverse, with
scipy's cutoff for zero eigenvalues.
"""
from __future__ import annotations

import numpy as onp

from ... import numpy as np
from ..linalg import solve_triangular
from ..special import _float_dtype

__all__ = ["logpdf", "pdf"]

_LOG_2PI = float(onp.log(2 * onp.pi))


def _eye(dim, like):
    return onp.eye(dim, dtype=_float_dtype(like))


def _covariance(cov, dim):
    """A full ``(dim, dim)`` matrix from a scalar, a diagonal or a matrix."""
    if np.ndim(cov) == 0:
        return cov * _eye(dim, cov)
    if np.ndim(cov) == 1:
        return np.expand_dims(cov, -1) * _eye(dim, cov)
    return 0.5 * (cov + np.swapaxes(cov, -1, -2))


def _dimension(mean, cov):
    """scipy's rule: the size of the mean, else the size of the covariance."""
    if mean is not None:
        return int(np.size(mean))
    return np.shape(cov)[-1] if np.ndim(cov) > 0 else 1


def _quantiles(x, dim):
    # scipy reads a 1-D x as one point, or as several points when dim == 1.
    if np.ndim(x) == 0:
        return np.reshape(x, (1, 1) if dim == 1 else (1,))
    if np.ndim(x) == 1 and dim == 1:
        return np.expand_dims(x, -1)
    return x


def _nonsingular_logpdf(r, cov, dim):
    chol = np.linalg.cholesky(cov)
    points = np.reshape(r, (-1, dim))
    z = solve_triangular(chol, np.transpose(points), lower=True)  # one column per point
    maha = np.reshape(np.sum(z * z, axis=0), np.shape(r)[:-1])
    log_det = 2 * np.sum(np.log(np.sum(chol * _eye(dim, cov), axis=-1)))
    return -0.5 * (dim * _LOG_2PI + log_det + maha)


def _singular_logpdf(r, cov, dim):
    s, u = np.linalg.eigh(cov)
    cutoff = 1e6 * onp.finfo(float).eps * np.max(np.abs(s))
    if np.any(s < -cutoff):
        raise ValueError("multivariate_normal: the covariance matrix must be positive semidefinite")
    kept = s > cutoff
    safe = np.where(kept, s, 1.0)
    projected = np.matmul(r, u)
    maha = np.sum(np.where(kept, projected * projected / safe, 0.0), axis=-1)
    log_pdet = np.sum(np.where(kept, np.log(safe), 0.0))
    rank = np.sum(kept)
    return -0.5 * (rank * _LOG_2PI + log_pdet + maha)


def logpdf(x, mean=None, cov=1, allow_singular=False):
    """Log density at the points ``x`` (last axis: components).

    Parameters
    ----------
    x : array_like, shape (..., d)
        Points (for ``d = 1`` a 1-D ``x`` is a list of points, as in scipy).
    mean : array_like, shape (d,), optional
        Mean (zero by default).
    cov : scalar, (d,) or (d, d) array_like
        Covariance: a multiple of the identity, a diagonal, or a full
        (symmetric positive definite) matrix.
    allow_singular : bool
        Accept a singular positive semi-definite covariance (density on its
        support subspace).

    Returns
    -------
    Array of shape ``x.shape[:-1]`` with size-1 axes squeezed, as scipy.
    """
    dim = _dimension(mean, cov)
    x = _quantiles(x, dim)
    r = x if mean is None else x - mean
    cov = _covariance(cov, dim)
    if allow_singular:
        out = _singular_logpdf(r, cov, dim)
    else:
        out = _nonsingular_logpdf(r, cov, dim)
    return np.squeeze(out)


def pdf(x, mean=None, cov=1, allow_singular=False):
    """Density (see :func:`logpdf`)."""
    return np.exp(logpdf(x, mean, cov, allow_singular))
