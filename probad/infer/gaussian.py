"""Gaussians over the potential's unconstrained vector q.

Every Gaussian approximation in probad lives here, whichever way it is fitted:

- :class:`Gaussian` in its standard forms (diagonal, dense, low-rank, and
  the Laplace ``N(mode, H^-1)``): what the autoguides and the fits report
  and draw from;
- the *families* ADVI optimises (:func:`gaussian_family`): a Gaussian over
  R^dim as one flat parameter vector ``theta``, with analytic entropy and
  hand-derived reparameterised gradients, and the *frames* (affine
  coordinates) that :mod:`probad.infer.optimise` steps in;
- :class:`GaussianApproximation`, a fitted Gaussian seen through the model
  (constrained ``mean``/``std``, ``sample`` as InferenceData), the base of
  ``ADVIFit`` and ``LaplaceFit``.

The families share one shape: ``z = mu + s * u`` with ``s = softplus(rho)``
a positive scale per coordinate and ``u`` a standard-normal draw pushed
through a dimensionless map:

- meanfield: ``u = e``;
- fullrank: ``u = (I + N) e`` with ``N`` strictly lower triangular, so the
  Cholesky factor of the covariance is ``diag(s) (I + N)``;
- lowrank: ``u = e1 + F e2`` with ``F`` of shape ``(dim, rank)``, so the
  covariance is ``diag(s) (I + F F^T) diag(s)``.

The entropy is analytic: ``sum(log s)`` (+ ``0.5 logdet(I + F^T F)`` for
lowrank) + const.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Mapping

import numpy as onp
from scipy.special import expit

from .results import constrained_draws, draws_to_inference_data

__all__ = ["Gaussian", "DiagonalGaussian", "DenseGaussian", "LowRankGaussian", "laplace_gaussian",
           "check_hessian", "factor_rank", "GaussianApproximation", "GaussianFamily", "Frame",
           "gaussian_family"]

_LOG_2PI_E = math.log(2 * math.pi) + 1.0

# Draws used by ``GaussianApproximation.mean``/``.std`` (ADVI and Laplace fits)
# for sites whose constrained value is a non-linear function of q (MC error
# ~2% of a posterior sd).
SUMMARY_DRAWS = 2000


def _softplus(x):
    # log(1 + e^x) without overflow; several times faster than logaddexp(0, x).
    return onp.maximum(x, 0.0) + onp.log1p(onp.exp(-onp.abs(x)))


def _softplus_inv(y):
    return y + onp.log(-onp.expm1(-y))


# ------------------------------------------------- Gaussians in standard form
def factor_rank(dim: int, rank: int | None = None) -> int:
    """The rank of a low-rank covariance factor over R^dim: ``rank`` itself,
    or by default ``min(10, dim // 2)``, at least 1.

    Raises
    ------
    ValueError
        If ``rank`` is given and is not a positive integer.
    """
    if rank is None:
        return max(1, min(10, dim // 2))
    if rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank}")
    return int(rank)


class Gaussian(ABC):
    """A Gaussian over R^dim: what a fit or a guide reports and draws from.

    The standard forms are :class:`DiagonalGaussian`, :class:`DenseGaussian`
    and :class:`LowRankGaussian`; :meth:`GaussianFamily.gaussian` gives one
    member of an ADVI family.

    Attributes
    ----------
    loc : ndarray
        The mean, shape ``(dim,)``.
    """

    def __init__(self, loc):
        self.loc = loc

    @property
    @abstractmethod
    def marginal_sd(self) -> onp.ndarray:
        """The standard deviations, shape ``(dim,)``."""

    @property
    @abstractmethod
    def cov(self) -> onp.ndarray:
        """The covariance matrix, shape ``(dim, dim)``."""

    @abstractmethod
    def sample(self, rng: onp.random.Generator, n: int) -> onp.ndarray:
        """``n`` draws, shape ``(n, dim)``."""


class DiagonalGaussian(Gaussian):
    """``N(loc, diag(scale**2))``; a zero scale is a point mass."""

    def __init__(self, loc, scale):
        super().__init__(loc)
        self.scale = scale

    @property
    def marginal_sd(self):
        return self.scale

    @property
    def cov(self):
        return onp.diag(self.scale**2)

    def sample(self, rng, n):
        return self.loc + self.scale * rng.standard_normal((n, len(self.loc)))


class DenseGaussian(Gaussian):
    """``N(loc, L L^T)`` for a square factor ``L`` (a Cholesky factor or any
    other square root of the covariance)."""

    def __init__(self, loc, factor):
        super().__init__(loc)
        self.factor = factor

    @property
    def marginal_sd(self):
        return onp.sqrt(onp.einsum("ij,ij->i", self.factor, self.factor))

    @property
    def cov(self):
        return self.factor @ self.factor.T

    def sample(self, rng, n):
        return self.loc + rng.standard_normal((n, len(self.loc))) @ self.factor.T


class LowRankGaussian(Gaussian):
    """``N(loc, W W^T + diag(D))``: NumPyro's ``LowRankMultivariateNormal(loc,
    cov_factor=W, cov_diag=D)``."""

    def __init__(self, loc, cov_factor, cov_diag):
        super().__init__(loc)
        self.cov_factor, self.cov_diag = cov_factor, cov_diag

    @property
    def marginal_sd(self):
        return onp.sqrt(self.cov_diag + onp.einsum("ij,ij->i", self.cov_factor, self.cov_factor))

    @property
    def cov(self):
        return self.cov_factor @ self.cov_factor.T + onp.diag(self.cov_diag)

    def sample(self, rng, n):
        return (self.loc + rng.standard_normal((n, self.cov_factor.shape[1])) @ self.cov_factor.T
                + onp.sqrt(self.cov_diag) * rng.standard_normal((n, len(self.loc))))


def laplace_gaussian(mode, hessian) -> DenseGaussian:
    """The Laplace approximation ``N(mode, H^-1)``.

    Its factor is ``C^-T`` with ``H = C C^T`` (Cholesky): ``C^-T C^-1 = H^-1``,
    with no inverse of ``H`` formed.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``hessian`` is not positive definite.
    """
    return DenseGaussian(mode, onp.linalg.inv(onp.linalg.cholesky(hessian)).T)


# An eigenvalue of H below this fraction of the largest counts as not
# positive: the autodiff Hessian is exact up to rounding, far below this.
RELATIVE_EIGEN_TOL = 1e-8


def _site_loadings(pot, vector) -> str:
    """The sites a direction in q mostly moves, with their shares."""
    shares = {name: float(onp.sum(vector[s.offset:s.offset + s.size] ** 2))
              for name, s in pot.sites.items()}
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    listed = [f"{name} ({share:.0%})" for name, share in ranked if share >= 0.1] or \
        [f"{ranked[0][0]} ({ranked[0][1]:.0%})"]
    return ", ".join(listed)


def check_hessian(potential, hessian, who: str) -> None:
    """Check that the Hessian of a potential at a point is finite and positive
    definite, as a Laplace approximation there needs.

    Parameters
    ----------
    potential : probad.infer.density.Potential
        Whose sites the message names.
    hessian : ndarray, shape (dim, dim)
    who : str
        The caller, as the message's first word.

    Raises
    ------
    ValueError
        If it is not: the message names the sites along (up to three of) the
        flat or downward-curving directions.
    """
    if not onp.isfinite(hessian).all():
        raise ValueError(f"{who}: the Hessian at the mode is not finite; the mode found "
                         f"may be at the edge of the support (sites {', '.join(potential.sites)})")
    eigvals, eigvecs = onp.linalg.eigh(hessian)
    largest = max(float(onp.max(onp.abs(eigvals))), onp.finfo(float).tiny)
    bad = onp.flatnonzero(eigvals <= RELATIVE_EIGEN_TOL * largest)
    if bad.size == 0:
        return
    lines = [f"  eigenvalue {eigvals[i]:.3g} along a direction moving "
             f"{_site_loadings(potential, eigvecs[:, i])}" for i in bad[:3]]
    more = f"\n  ... and {bad.size - 3} more" if bad.size > 3 else ""
    raise ValueError(
        f"{who}: the Hessian of the negative log density at the mode is not positive "
        f"definite ({bad.size} of {len(eigvals)} directions are flat or curve downwards; "
        f"the largest eigenvalue is {largest:.3g}):\n" + "\n".join(lines) + more +
        "\nThe posterior is not locally Gaussian there: the mode may be a saddle or on a "
        "ridge (a non-identified parameter, an improper prior), or the optimiser stopped "
        "short of it. Give those sites proper priors or reparameterise, optimise longer, "
        "or use pb.hmc / pb.advi.")


# ------------------------------------------------------------------ families
class Frame:
    """An affine map ``q = shift + A w`` with ``A`` lower triangular (a
    matrix) or diagonal (a vector): the coordinates the optimiser works in."""

    def __init__(self, shift, scale):
        self.shift = shift
        self.scale = scale
        self.is_matrix = onp.ndim(scale) == 2
        diag = onp.diagonal(scale) if self.is_matrix else scale
        self.log_det = float(onp.log(diag).sum())

    def to_q(self, w):
        """Rows of ``w`` mapped to q."""
        return self.shift + (w @ self.scale.T if self.is_matrix else w * self.scale)

    def pull_back(self, g):
        """Rows of gradients in q mapped to gradients in w (``A^T g``)."""
        return g @ self.scale if self.is_matrix else g * self.scale

    def mean_offset(self, m):
        """Extra q-offset of the mean ``m`` beyond ``A m`` (none here)."""
        return 0.0

    def pull_back_mean(self, g_m):
        """The mean's gradient, given ``A^T`` of the q-gradient."""
        return g_m


class _LowRankFrame(Frame):
    """A diagonal frame for the draws whose *mean* coordinates are also
    whitened along the low-rank factor: ``q = shift + a (m + E m + s u)``
    with ``I + E = (I + F F^T)^(1/2)``, so steps on the mean follow the
    guide's correlations (as they do in a fullrank frame) at O(dim * rank)."""

    def __init__(self, shift, scale, factor):
        super().__init__(shift, scale)
        # (I + F F^T)^(1/2) = I + F C F^T with C = V diag((sqrt(1+l) - 1)/l) V^T
        # from the eigendecomposition F^T F = V diag(l) V^T; the coefficient is
        # computed as 1/(sqrt(1+l) + 1), the same number without 0/0 at l = 0.
        lam, vecs = onp.linalg.eigh(factor.T @ factor)
        lam = onp.maximum(lam, 0.0)
        coef = 1.0 / (onp.sqrt(1.0 + lam) + 1.0)
        self._left = factor @ vecs
        self._right = (vecs * coef).T @ factor.T

    def mean_offset(self, m):
        return self.scale * (self._left @ (self._right @ m))

    def pull_back_mean(self, g_m):
        return g_m + self._left @ (self._right @ g_m)


class GaussianFamily(ABC):
    """A Gaussian over R^dim, parameterised by one flat vector ``theta``.

    ``theta = [mu (dim), rho (dim), extra]`` with ``z = mu + s * u``,
    ``s = softplus(rho)``. :meth:`draw` also returns ``aux = (s, u, M, C)``
    (``M`` the dimensionless matrix, ``N`` or ``F``, and ``C`` what
    :meth:`_matrix_terms` derives from it), the terms that :meth:`grad` and
    :meth:`step_stats` reuse within one step.
    """

    method: str

    def __init__(self, dim: int):
        self.dim = dim

    @property
    @abstractmethod
    def num_noise(self) -> int:
        """Standard normals per draw."""

    @property
    @abstractmethod
    def num_extra(self) -> int:
        """Length of the dimensionless part of ``theta``."""

    def gaussian(self, theta) -> Gaussian:
        """The member ``theta`` of the family, drawn as the optimiser draws it."""
        return _Member(self, theta)

    def initial_params(self, loc, scale: float, rng) -> onp.ndarray:
        rho = onp.full(self.dim, _softplus_inv(scale))
        return onp.concatenate([loc, rho, self._initial_extra(rng)])

    # A frame turns the guide ``theta`` over q into the standard normal over w
    # (meanfield, fullrank) or the unit-scale guide with the same factor
    # (lowrank); ``push_forward`` maps a guide over w back to one over q.
    def identity_frame(self) -> Frame:
        return Frame(onp.zeros(self.dim), onp.ones(self.dim))

    def frame_of(self, theta) -> Frame:
        return Frame(self.loc(theta).copy(), self.scale(theta))

    def standard_params(self, theta) -> onp.ndarray:
        out = onp.zeros_like(theta)
        out[self.dim:2 * self.dim] = _softplus_inv(1.0)
        out[2 * self.dim:] = theta[2 * self.dim:]
        return out

    def push_forward(self, theta, frame: Frame) -> onp.ndarray:
        d = self.dim
        out = onp.array(theta, dtype=float)
        out[:d] = frame.shift + frame.scale * theta[:d]
        out[d:2 * d] = _softplus_inv(frame.scale * self.scale(theta))
        return out

    def _initial_extra(self, rng):
        return onp.zeros(self.num_extra)

    def loc(self, theta):
        return theta[:self.dim]

    def scale(self, theta):
        return _softplus(theta[self.dim:2 * self.dim])

    @abstractmethod
    def _matrix(self, theta):
        """The dimensionless matrix (``N`` or ``F``), None for meanfield."""

    @abstractmethod
    def _map_noise(self, eps, m):
        """``u`` from the standard normals ``eps`` (one row per draw)."""

    def _spread(self, m):
        """``1 + sum of squares`` of each row of ``m``: marginal var / s**2."""
        return 1.0 + onp.einsum("ij,ij->i", m, m)

    def _matrix_terms(self, m):
        """Per-step terms of ``m`` shared by the entropy and its gradient."""
        return None

    def _log_det_extra(self, terms) -> float:
        """Entropy beyond ``sum(log s)`` and the constant."""
        return 0.0

    def draw(self, theta, eps):
        """Draws ``z``, one per row of ``eps``, and ``aux``."""
        s = self.scale(theta)
        m = self._matrix(theta)
        u = self._map_noise(eps, m)
        return theta[:self.dim] + s * u, (s, u, m, self._matrix_terms(m))

    def step_stats(self, aux) -> tuple[float, onp.ndarray]:
        """The entropy ``H[q]`` and the marginal variances."""
        s, _, m, terms = aux
        entropy = (0.5 * self.dim * _LOG_2PI_E + float(onp.log(s).sum())
                   + self._log_det_extra(terms))
        return entropy, s * s * self._spread(m)

    def _aux(self, theta):
        m = self._matrix(theta)
        return self.scale(theta), None, m, self._matrix_terms(m)

    def entropy(self, theta) -> float:
        return self.step_stats(self._aux(theta))[0]

    def marginal_sd(self, theta):
        return self.scale(theta) * onp.sqrt(self._spread(self._matrix(theta)))

    def with_marginal_var(self, theta, var):
        """``theta`` with its scales set so the marginal variances are ``var``."""
        out = onp.array(theta, dtype=float)
        d = self.dim
        out[d:2 * d] = _softplus_inv(onp.sqrt(var / self._spread(self._matrix(theta))))
        return out

    def grad(self, theta, eps, G, aux):
        """Gradient in ``theta`` of ``mean_i U(z_i) - H[q]`` given ``G[i] = dU/dz(z_i)``."""
        s, u, m, terms = aux
        d = self.dim
        inv_n = 1.0 / len(G)
        g_mu = G.sum(0) * inv_n
        g_rho = ((G * u).sum(0) * inv_n - 1.0 / s) * expit(theta[d:2 * d])
        if m is None:
            return onp.concatenate([g_mu, g_rho])
        # Families with a matrix define _grad_matrix, its part of the gradient.
        return onp.concatenate([g_mu, g_rho, self._grad_matrix(eps, G * s, m, terms, inv_n)])

    @abstractmethod
    def covariance(self, theta) -> onp.ndarray:
        """The full covariance matrix."""

    @abstractmethod
    def guide_params(self, theta) -> dict:
        """The fitted Gaussian in a standard parameterisation."""


class _Member(Gaussian):
    """One member of a :class:`GaussianFamily`, as a :class:`Gaussian`."""

    def __init__(self, family: GaussianFamily, theta):
        super().__init__(family.loc(theta))
        self.family, self.theta = family, theta

    @property
    def marginal_sd(self):
        return self.family.marginal_sd(self.theta)

    @property
    def cov(self):
        return self.family.covariance(self.theta)

    def sample(self, rng, n):
        eps = rng.standard_normal((n, self.family.num_noise))
        return self.family.draw(self.theta, eps)[0]


class _MeanField(GaussianFamily):
    method = "meanfield"
    num_extra = 0

    @property
    def num_noise(self):
        return self.dim

    def _matrix(self, theta):
        return None

    def _map_noise(self, eps, m):
        return eps

    def _spread(self, m):
        return 1.0

    def covariance(self, theta):
        return onp.diag(self.scale(theta) ** 2)

    def guide_params(self, theta):
        return {"loc": self.loc(theta).copy(), "scale": self.scale(theta)}


class _FullRank(GaussianFamily):
    method = "fullrank"

    def __init__(self, dim):
        super().__init__(dim)
        self._rows, self._cols = onp.tril_indices(dim, -1)

    @property
    def num_noise(self):
        return self.dim

    @property
    def num_extra(self):
        return len(self._rows)

    def _matrix(self, theta):
        n = onp.zeros((self.dim, self.dim))
        n[self._rows, self._cols] = theta[2 * self.dim:]
        return n

    def _map_noise(self, eps, n):
        # (I + N) has unit diagonal: det = 1, so the entropy is sum(log s).
        return eps + eps @ n.T

    def _grad_matrix(self, eps, Gs, n, terms, inv_n):
        return (Gs.T @ eps)[self._rows, self._cols] * inv_n

    def scale_tril(self, theta):
        return self.scale(theta)[:, None] * (onp.eye(self.dim) + self._matrix(theta))

    def covariance(self, theta):
        chol = self.scale_tril(theta)
        return chol @ chol.T

    def identity_frame(self) -> Frame:
        return Frame(onp.zeros(self.dim), onp.eye(self.dim))

    def frame_of(self, theta) -> Frame:
        return Frame(self.loc(theta).copy(), self.scale_tril(theta))

    def standard_params(self, theta) -> onp.ndarray:
        out = onp.zeros_like(theta)
        out[self.dim:2 * self.dim] = _softplus_inv(1.0)
        return out

    def push_forward(self, theta, frame: Frame) -> onp.ndarray:
        d = self.dim
        chol = frame.scale @ self.scale_tril(theta)
        s = onp.diagonal(chol)
        out = onp.empty_like(theta)
        out[:d] = frame.shift + frame.scale @ theta[:d]
        out[d:2 * d] = _softplus_inv(s)
        out[2 * d:] = (chol / s[:, None])[self._rows, self._cols]
        return out

    def guide_params(self, theta):
        return {"loc": self.loc(theta).copy(), "scale_tril": self.scale_tril(theta)}


class _LowRank(GaussianFamily):
    method = "lowrank"

    def __init__(self, dim, rank):
        super().__init__(dim)
        self.rank = rank
        self._eye = onp.eye(rank)

    @property
    def num_noise(self):
        return self.dim + self.rank

    @property
    def num_extra(self):
        return self.dim * self.rank

    def _initial_extra(self, rng):
        # F = 0 is a stationary point of the expected gradient (the loss is
        # invariant to F -> -F): start slightly off it.
        return 0.01 * rng.standard_normal(self.num_extra)

    def _matrix(self, theta):
        return theta[2 * self.dim:].reshape(self.dim, self.rank)

    def _map_noise(self, eps, f):
        return eps[:, :self.dim] + eps[:, self.dim:] @ f.T

    def _matrix_terms(self, f):
        # K = I_rank + F^T F through its Cholesky factor C: one LAPACK call
        # gives both K^-1 = C^-T C^-1 and logdet K = -2 sum(log diag C^-1).
        c_inv = onp.linalg.inv(onp.linalg.cholesky(self._eye + f.T @ f))
        return c_inv.T @ c_inv, -2.0 * float(onp.log(onp.diagonal(c_inv)).sum())

    def _log_det_extra(self, terms):
        # 0.5 logdet(I_dim + F F^T) = 0.5 logdet(I_rank + F^T F)
        return 0.5 * terms[1]

    def _grad_matrix(self, eps, Gs, f, terms, inv_n):
        # d/dF of 0.5 logdet(I + F F^T) is (I + F F^T)^-1 F = F (I + F^T F)^-1.
        return (Gs.T @ eps[:, self.dim:] * inv_n - f @ terms[0]).ravel()

    def covariance(self, theta):
        s = self.scale(theta)
        f = self._matrix(theta)
        return s[:, None] * (onp.eye(self.dim) + f @ f.T) * s[None, :]

    def frame_of(self, theta) -> Frame:
        return _LowRankFrame(self.loc(theta).copy(), self.scale(theta), self._matrix(theta))

    def push_forward(self, theta, frame: Frame) -> onp.ndarray:
        out = super().push_forward(theta, frame)
        out[:self.dim] += frame.mean_offset(theta[:self.dim])
        return out

    def guide_params(self, theta):
        # NumPyro's LowRankMultivariateNormal(loc, cov_factor, cov_diag).
        s = self.scale(theta)
        return {"loc": self.loc(theta).copy(), "cov_factor": s[:, None] * self._matrix(theta),
                "cov_diag": s**2}


def gaussian_family(method: str, dim: int, rank: int | None) -> GaussianFamily:
    """The family ``method`` of Gaussians over R^dim.

    Parameters
    ----------
    method : {"meanfield", "fullrank", "lowrank"}
    dim : int
    rank : int or None
        The lowrank factor's rank; None for :func:`factor_rank`'s default.

    Returns
    -------
    GaussianFamily
    """
    if method == "meanfield":
        return _MeanField(dim)
    if method == "fullrank":
        return _FullRank(dim)
    if method == "lowrank":
        return _LowRank(dim, factor_rank(dim, rank))
    raise ValueError(f"method must be 'meanfield', 'fullrank' or 'lowrank', got {method!r}")


# ------------------------------------------------------------------ the fit
class GaussianApproximation:
    """A :class:`Gaussian` over the potential's unconstrained q, seen through the model.

    The base of ``ADVIFit`` and ``LaplaceFit``: constrained summaries
    (``mean``/``std``), draws (``sample_q``) and ``arviz.InferenceData``
    (``sample``).

    Parameters
    ----------
    potential : probad.infer.density.Potential
    gaussian : Gaussian
        The approximation over q.
    seed_sequence : numpy.random.SeedSequence
        Seeds the draws behind ``mean``/``std`` and ``sample``.
    """

    inference_method: str

    def __init__(self, potential, gaussian: Gaussian, seed_sequence: onp.random.SeedSequence):
        self.potential = potential
        self.gaussian = gaussian
        summary_seq, sample_seq = seed_sequence.spawn(2)
        self._summary_seed = summary_seq
        self._sample_rng = onp.random.default_rng(sample_seq)

    @property
    def loc(self) -> onp.ndarray:
        """Mean over q (unconstrained), shape ``(dim,)``."""
        return self.gaussian.loc.copy()

    @property
    def marginal_sd(self) -> onp.ndarray:
        """Standard deviations over q, shape ``(dim,)``."""
        return self.gaussian.marginal_sd

    @property
    def cov(self) -> onp.ndarray:
        """Covariance over q, shape ``(dim, dim)``."""
        return self.gaussian.cov

    def sample_q(self, draws: int, rng) -> onp.ndarray:
        """``draws`` draws of q, shape ``(draws, dim)``.

        ``rng`` is anything ``numpy.random.default_rng`` takes.
        """
        return self.gaussian.sample(onp.random.default_rng(rng), draws)

    def _attrs(self) -> dict:
        from .. import __version__

        return {"inference_library": "probad", "inference_library_version": __version__,
                "inference_method": self.inference_method}

    @cached_property
    def _summaries(self):
        """Constrained means and sds: exact for sites with an identity
        transform, else from ``SUMMARY_DRAWS`` draws pushed through the model
        (deterministic sites included)."""
        pot = self.potential
        loc, sd = self.loc, self.marginal_sd
        means, stds = {}, {}
        linear = {name for name, site in pot.sites.items() if site.transform.is_identity}
        for name in linear:
            site = pot.sites[name]
            sl = slice(site.offset, site.offset + site.size)
            means[name] = loc[sl].reshape(site.shape)
            stds[name] = sd[sl].reshape(site.shape)
        if len(linear) < len(pot.sites) or _has_deterministic(pot):
            q = self.sample_q(SUMMARY_DRAWS, self._summary_seed)
            with onp.errstate(all="ignore"):
                values, _ = constrained_draws(pot, q[None], log_likelihood=False)
            for name, v in values.items():
                if name not in linear:
                    means[name] = v[0].mean(axis=0)
                    stds[name] = v[0].std(axis=0, ddof=1)
        order = list(pot.sites) + [k for k in means if k not in pot.sites]
        return {k: means[k] for k in order}, {k: stds[k] for k in order}

    @property
    def mean(self) -> dict:
        """Posterior means in constrained space, per latent and deterministic
        site (Monte Carlo, about 2% of an sd, for non-linear transforms)."""
        return self._summaries[0]

    @property
    def std(self) -> dict:
        """Posterior standard deviations in constrained space, per site."""
        return self._summaries[1]

    def sample(self, draws: int = 1000, seed=None, *, log_likelihood: bool = True,
               coords: Mapping | None = None, dims: Mapping | None = None):
        """Draws from the approximation as ``arviz.InferenceData``.

        Parameters
        ----------
        draws : int
            Number of draws (one chain).
        seed : int or Generator, optional
            Without one, successive calls continue one stream derived from
            the seed the approximation was fitted with.
        log_likelihood : bool
            Compute the pointwise ``log_likelihood`` group.
        coords, dims : mapping, optional
            ArviZ coordinates and extra dims, as in ``pb.hmc``.

        Returns
        -------
        arviz.InferenceData
            ``posterior`` (constrained latent and deterministic sites with
            plate dims), ``log_likelihood``, ``observed_data``, ``constant_data``.
        """
        rng = self._sample_rng if seed is None else onp.random.default_rng(seed)
        q = self.sample_q(int(draws), rng)
        return draws_to_inference_data(self.potential, q[None], coords=coords, dims=dims,
                                       attrs=self._attrs(), log_likelihood=log_likelihood)


def _has_deterministic(pot) -> bool:
    return any(name not in pot.sites and name not in pot.observed for name in pot.dims)

