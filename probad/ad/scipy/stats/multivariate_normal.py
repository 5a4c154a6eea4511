"""The multivariate normal distribution, as ``scipy.stats.multivariate_normal``.

``logpdf``, ``pdf``, ``cdf`` and ``entropy`` are differentiable in ``x``,
``mean`` and ``cov``. The covariance is symmetrised, ``(cov + cov.T)/2``,
before use, so its gradient is the usual symmetric one, e.g.
``(S^-1 r r^T S^-1 - S^-1)/2`` for ``logpdf`` with ``r = x - mean``.
With ``allow_singular=False`` the density goes through a Cholesky factor
(LinAlgError if ``cov`` is not positive definite); with ``True``, through
an eigendecomposition, the pseudo-determinant and the pseudo-inverse, with
scipy's cutoff for zero eigenvalues.
"""
from __future__ import annotations

import numpy as onp
import scipy.stats as _st
from scipy.special import ndtr as _ndtr
from scipy.special import owens_t as _owens_t

from ... import numpy as np
from ...core import defjvp, defvjp
from ...tracer import primitive
from ..linalg import solve_triangular
from ..special import _float_dtype, ndtr

__all__ = ["logpdf", "pdf", "cdf", "entropy"]

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


def _log_det(chol, dim):
    """``log det(cov)`` from its Cholesky factor."""
    return 2 * np.sum(np.log(np.sum(chol * _eye(dim, chol), axis=-1)))


def _nonsingular_logpdf(r, cov, dim):
    chol = np.linalg.cholesky(cov)
    points = np.reshape(r, (-1, dim))
    z = solve_triangular(chol, np.transpose(points), lower=True)  # one column per point
    maha = np.reshape(np.sum(z * z, axis=0), np.shape(r)[:-1])
    return -0.5 * (dim * _LOG_2PI + _log_det(chol, dim) + maha)


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


def entropy(mean=None, cov=1):
    """Differential entropy ``(d (1 + log 2 pi) + log det cov) / 2``.

    Parameters
    ----------
    mean : array_like, shape (d,), optional
        Mean; it sets the dimension only (the entropy does not depend on it).
    cov : scalar, (d,) or (d, d) array_like
        Covariance (positive definite: LinAlgError otherwise, as scipy's
        ValueError).

    Returns
    -------
    Scalar; its gradient in ``cov`` is ``inv(cov) / 2``.
    """
    dim = _dimension(mean, cov)
    chol = np.linalg.cholesky(_covariance(cov, dim))
    return 0.5 * (dim * (1 + _LOG_2PI) + _log_det(chol, dim))


# ------------------------------------------------------------------------ cdf
#
# F(r; S) = P(X <= r) for X ~ N(0, S) has derivatives that are again normal
# distribution functions, of lower dimension (Plackett's identity for S):
#
#   dF/dr_i = phi(r_i; S_ii) F(r_-i - c_i r_i; S_-i|i),  c_i = S_-i,i / S_ii
#   dF/dS = H / 2,  H_ij = d2F/dr_i dr_j = phi_2(r_i, r_j) F(rest | r_i, r_j)
#   H_ii = -(r_i / S_ii) dF/dr_i - sum_k!=i c_ik H_ik
#
# with the conditional covariances (Schur complements) S_-i|i. The rules are
# written with these same functions, so every derivative exists, and one of
# order k of a d-dimensional F needs F of dimensions d - k to d - 1 only.
# Dimensions 1 and 2 are computed to double precision (ndtr; Owen's T
# function); higher ones by scipy's quasi-Monte Carlo integration with a
# fixed seed (absolute error about 1e-5, as scipy's).

def _bivariate_standard_cdf(h, k, rho):
    """P(X <= h, Y <= k) for standard normals with correlation ``rho``
    (|rho| < 1), by Owen (1956): Phi(h)/2 + Phi(k)/2 - T(h, a_h) - T(k, a_k) - beta."""
    s = onp.sqrt((1 - rho) * (1 + rho))
    with onp.errstate(divide="ignore", invalid="ignore"):
        # Where h = 0, a_h is infinite with the sign of k (the limit h -> +0).
        a_h = onp.where(h == 0, onp.copysign(onp.inf, k), (k - rho * h) / (h * s))
        a_k = onp.where(k == 0, onp.copysign(onp.inf, h), (h - rho * k) / (k * s))
    beta = onp.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
    out = 0.5 * (_ndtr(h) + _ndtr(k)) - _owens_t(h, a_h) - _owens_t(k, a_k) - beta
    # At h = k = 0 the formula is 0/0; there F = 1/4 + asin(rho) / (2 pi).
    return onp.where((h == 0) & (k == 0), 0.25 + onp.arcsin(rho) / (2 * onp.pi), out)


@primitive
def _orthant(r, cov):
    """``P(X <= r)`` for ``X ~ N(0, cov)``, ``r`` (..., d) with d >= 2."""
    r, cov = onp.asarray(r), onp.asarray(cov)
    dim = cov.shape[-1]
    if dim == 2:
        sd = onp.sqrt(onp.diagonal(cov))
        out = _bivariate_standard_cdf(r[..., 0] / sd[0], r[..., 1] / sd[1], cov[0, 1] / (sd[0] * sd[1]))
    else:
        points = onp.reshape(r, (-1, dim))
        out = _st.multivariate_normal.cdf(points, onp.zeros(dim), cov, rng=onp.random.default_rng(0))
    return onp.reshape(out, r.shape[:-1]).astype(_float_dtype(r, cov))


def _normal_cdf(r, cov):
    """``P(X <= r)`` for ``X ~ N(0, cov)`` in any dimension (1 for none)."""
    dim = np.shape(cov)[-1]
    if dim == 0:
        return onp.ones(np.shape(r)[:-1], _float_dtype(r, cov))
    if dim == 1:
        return ndtr(r[..., 0] / np.sqrt(cov[0, 0]))
    return _orthant(r, cov)


def _others(dim, *fixed):
    return [k for k in range(dim) if k not in fixed]


def _cdf_gradient(r, cov):
    """``dF/dr``, shape (..., d)."""
    dim = np.shape(cov)[-1]
    columns = []
    for i in range(dim):
        rest = _others(dim, i)
        c = cov[rest, i] / cov[i, i]
        conditional = cov[onp.ix_(rest, rest)] - np.expand_dims(c, -1) * cov[i, rest]
        r_i = r[..., i:i + 1]
        density = np.exp(-0.5 * r_i[..., 0] ** 2 / cov[i, i]) / np.sqrt(2 * onp.pi * cov[i, i])
        columns.append(density * _normal_cdf(r[..., rest] - r_i * c, conditional))
    return np.stack(columns, axis=-1)


def _bivariate_density(x, y, cov2):
    det = cov2[0, 0] * cov2[1, 1] - cov2[0, 1] ** 2
    q = (cov2[1, 1] * x * x - 2 * cov2[0, 1] * x * y + cov2[0, 0] * y * y) / det
    return np.exp(-0.5 * q) / (2 * onp.pi * np.sqrt(det))


def _cdf_hessian(r, cov):
    """``d2F/dr dr^T``, shape (..., d, d)."""
    dim = np.shape(cov)[-1]
    grad = _cdf_gradient(r, cov)
    h = {}
    for i in range(dim):
        for j in range(i + 1, dim):
            pair, rest = [i, j], _others(dim, i, j)
            gain = np.matmul(cov[onp.ix_(rest, pair)], np.linalg.inv(cov[onp.ix_(pair, pair)]))
            conditional = cov[onp.ix_(rest, rest)] - np.matmul(gain, cov[onp.ix_(pair, rest)])
            shifted = r[..., rest] - np.matmul(r[..., pair], np.transpose(gain))
            h[i, j] = h[j, i] = _bivariate_density(r[..., i], r[..., j], cov[onp.ix_(pair, pair)]) \
                * _normal_cdf(shifted, conditional)
    for i in range(dim):
        h[i, i] = -r[..., i] / cov[i, i] * grad[..., i] \
            - sum(cov[i, k] / cov[i, i] * h[i, k] for k in _others(dim, i))
    return np.stack([np.stack([h[i, j] for j in range(dim)], axis=-1) for i in range(dim)], axis=-2)


def _sum_over_points(g, per_point):
    """``sum_points g * per_point`` for ``per_point`` of shape (..., d, d)."""
    dim = np.shape(per_point)[-1]
    return np.sum(np.reshape(g, (-1, 1, 1)) * np.reshape(per_point, (-1, dim, dim)), axis=0)


defvjp(_orthant,
       lambda ans, r, cov: lambda g: np.expand_dims(g, -1) * _cdf_gradient(r, cov),
       lambda ans, r, cov: lambda g: 0.5 * _sum_over_points(g, _cdf_hessian(r, cov)))
defjvp(_orthant,
       lambda g, ans, r, cov: np.sum(_cdf_gradient(r, cov) * g, axis=-1),
       lambda g, ans, r, cov: 0.5 * np.sum(_cdf_hessian(r, cov) * g, axis=(-2, -1)))


def cdf(x, mean=None, cov=1):
    """Distribution function ``P(X <= x)`` (componentwise) at the points ``x``.

    Parameters
    ----------
    x, mean
        As in :func:`logpdf`.
    cov : scalar, (d,) or (d, d) array_like
        Covariance, positive definite (LinAlgError otherwise).

    Returns
    -------
    Array of shape ``x.shape[:-1]`` with size-1 axes squeezed, as scipy.

    Notes
    -----
    Exact to double precision, with derivatives of every order, for
    ``d <= 2``. For ``d >= 3`` the value is scipy's quasi-Monte Carlo
    estimate (absolute error about 1e-5; a fixed seed makes it
    deterministic), and first derivatives are exact formulas in distribution
    functions of dimensions ``d - 1`` and ``d - 2``: exact for ``d = 3``,
    with that same error in them for larger ``d``.
    """
    dim = _dimension(mean, cov)
    x = _quantiles(x, dim)
    r = x if mean is None else x - mean
    cov = _covariance(cov, dim)
    np.linalg.cholesky(cov)  # positive definite, or LinAlgError (compiled code checks it too)
    return np.squeeze(_normal_cdf(r, cov))
