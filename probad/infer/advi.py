"""``pb.advi``: automatic differentiation variational inference.

ADVI fits a Gaussian ``q(z)`` to the posterior over the *unconstrained*
vector ``z`` that the samplers see (``probad.infer.potential``: same
Jacobians, plates and scales) by maximising the ELBO
``E_q[-U(z)] + H[q]`` with reparameterised gradients and Adam.

The guide families share one shape: ``z = mu + s * u`` with ``s =
softplus(rho)`` a positive scale per coordinate and ``u`` a standard-normal
draw pushed through a dimensionless map:

- meanfield: ``u = e``;
- fullrank: ``u = (I + N) e`` with ``N`` strictly lower triangular, so the
  Cholesky factor of the covariance is ``diag(s) (I + N)``;
- lowrank: ``u = e1 + F e2`` with ``F`` of shape ``(dim, rank)``, so the
  covariance is ``diag(s) (I + F F^T) diag(s)``.

The entropy is analytic: ``sum(log s)`` (+ ``0.5 logdet(I + F^T F)`` for
lowrank) + const. Each step evaluates ``(U, dU/dz)`` once per particle with
the potential's compiled value-and-gradient and applies the chain rule to
the guide's parameters by hand in numpy: no tracing per step.

The optimiser works in *frames* (see :func:`_optimise`): after the first
phase, the guide is re-expressed in coordinates in which it is a standard
normal, so Adam's steps are scaled to the posterior in every direction. A
posterior whose coordinates differ by orders of magnitude in scale, or are
strongly correlated (a regression on raw covariates), is then no harder
than a standardised one. The reported guide averages the iterates over the
second half of the run, and the run stops when that average is stable and
precise (see :func:`advi`, Notes).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Callable, Mapping

import numpy as onp
from scipy.special import expit

from ..optim import Adam, ClippedAdam, OptimizerState
from .density import potential as make_potential
from .initialization import init_to_median, init_to_value
from .progress import progress_bar
from .results import constrained_draws, draws_to_inference_data

__all__ = ["advi", "ADVIFit", "GaussianApproximation"]

_LOG_2PI_E = math.log(2 * math.pi) + 1.0

# Iterates are summarised in blocks of this many steps: averages, the
# convergence checks, the learning-rate schedule and the progress bar all
# work on blocks, which keeps per-step bookkeeping to two vector additions.
BLOCK = 100
# The convergence rule compares the last two quarters of the run once each
# holds at least this many blocks; the first half is never averaged.
MIN_WINDOW = 4
# A block in which at least this share of the steps had a non-finite loss or
# gradient means the ELBO cannot be evaluated where the guide is.
MAX_SKIPPED_SHARE = 0.9
# Draws used by ``ADVIFit.mean``/``.std`` for sites whose constrained value
# is a non-linear function of q (MC error ~2% of a posterior sd).
SUMMARY_DRAWS = 2000


def _softplus(x):
    # log(1 + e^x) without overflow; several times faster than logaddexp(0, x).
    return onp.maximum(x, 0.0) + onp.log1p(onp.exp(-onp.abs(x)))


def _softplus_inv(y):
    return y + onp.log(-onp.expm1(-y))


# ------------------------------------------------------------------ families
class _Frame:
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


class _LowRankFrame(_Frame):
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


class _GaussianFamily(ABC):
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

    def initial_params(self, loc, scale: float, rng) -> onp.ndarray:
        rho = onp.full(self.dim, _softplus_inv(scale))
        return onp.concatenate([loc, rho, self._initial_extra(rng)])

    # A frame turns the guide ``theta`` over q into the standard normal over w
    # (meanfield, fullrank) or the unit-scale guide with the same factor
    # (lowrank); ``push_forward`` maps a guide over w back to one over q.
    def identity_frame(self) -> _Frame:
        return _Frame(onp.zeros(self.dim), onp.ones(self.dim))

    def frame_of(self, theta) -> _Frame:
        return _Frame(self.loc(theta).copy(), self.scale(theta))

    def standard_params(self, theta) -> onp.ndarray:
        out = onp.zeros_like(theta)
        out[self.dim:2 * self.dim] = _softplus_inv(1.0)
        out[2 * self.dim:] = theta[2 * self.dim:]
        return out

    def push_forward(self, theta, frame: _Frame) -> onp.ndarray:
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


class _MeanField(_GaussianFamily):
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


class _FullRank(_GaussianFamily):
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

    def identity_frame(self) -> _Frame:
        return _Frame(onp.zeros(self.dim), onp.eye(self.dim))

    def frame_of(self, theta) -> _Frame:
        return _Frame(self.loc(theta).copy(), self.scale_tril(theta))

    def standard_params(self, theta) -> onp.ndarray:
        out = onp.zeros_like(theta)
        out[self.dim:2 * self.dim] = _softplus_inv(1.0)
        return out

    def push_forward(self, theta, frame: _Frame) -> onp.ndarray:
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


class _LowRank(_GaussianFamily):
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

    def frame_of(self, theta) -> _Frame:
        return _LowRankFrame(self.loc(theta).copy(), self.scale(theta), self._matrix(theta))

    def push_forward(self, theta, frame: _Frame) -> onp.ndarray:
        out = super().push_forward(theta, frame)
        out[:self.dim] += frame.mean_offset(theta[:self.dim])
        return out

    def guide_params(self, theta):
        # NumPyro's LowRankMultivariateNormal(loc, cov_factor, cov_diag).
        s = self.scale(theta)
        return {"loc": self.loc(theta).copy(), "cov_factor": s[:, None] * self._matrix(theta),
                "cov_diag": s**2}


def _family(method: str, dim: int, rank: int | None) -> _GaussianFamily:
    if method == "meanfield":
        return _MeanField(dim)
    if method == "fullrank":
        return _FullRank(dim)
    if method == "lowrank":
        if rank is None:
            rank = max(1, min(10, dim // 2))
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        return _LowRank(dim, int(rank))
    raise ValueError(f"method must be 'meanfield', 'fullrank' or 'lowrank', got {method!r}")


# -------------------------------------------------------------- optimisation
class _Blocks:
    """Per-block sums of the guide over q and of its marginal variances.

    Windows lie in the second half of the run, so older blocks are dropped
    as the run grows.
    """

    def __init__(self, family):
        self.family = family
        self.theta: dict[int, onp.ndarray] = {}
        self.var: dict[int, onp.ndarray] = {}
        self.count: dict[int, int] = {}
        self.n = 0

    def add(self, theta_sum, var_sum, count):
        self.theta[self.n] = theta_sum
        self.var[self.n] = var_sum
        self.count[self.n] = count
        self.n += 1
        # Every window, now or later, starts at or after this block.
        first_needed = self.n // 2
        for old in [k for k in self.theta if k < first_needed]:
            del self.theta[old], self.var[old], self.count[old]

    def average(self, start: int, stop: int):
        """The guide averaged over blocks ``[start, stop)``: the mean of the
        iterates, with scales set to match the mean marginal variance.

        Averaging variances rather than the raw scale parameters matters:
        the scale parameters fluctuate around the optimum and ``E[s^2]``, not
        ``softplus(E[rho])``, is what the stationary point pins down.
        """
        keys = range(max(start, 0), stop)
        n = sum(self.count[k] for k in keys)
        theta = sum(self.theta[k] for k in keys) / n
        var = sum(self.var[k] for k in keys) / n
        return self.family.with_marginal_var(theta, var)


def _moment_change(family, a, b):
    """RMS over coordinates of the change in means (in posterior sds) and in log sds."""
    sd_a, sd_b = family.marginal_sd(a), family.marginal_sd(b)
    dm = float(onp.sqrt(onp.mean(((family.loc(b) - family.loc(a)) / sd_b) ** 2)))
    ds = float(onp.sqrt(onp.mean(onp.log(sd_b / sd_a) ** 2)))
    return dm, ds


def _standard_error(series):
    """Standard error of the mean of each column of a block series, with an
    AR(1) correction for the blocks' autocorrelation (slowly mixing
    directions keep iterates correlated across blocks)."""
    x = series - series.mean(axis=0)
    var = onp.mean(x * x, axis=0)
    safe = onp.where(var > 0, var, 1.0)
    rho = onp.clip(onp.mean(x[1:] * x[:-1], axis=0) / safe, 0.0, 0.9)
    return onp.sqrt(var / len(x) * (1 + rho) / (1 - rho))


def _monte_carlo_error(locs, sds, sd_ref):
    """RMS over coordinates of the standard error of the average of the
    per-block guides: for the means in units of ``sd_ref``, and the log sds."""
    se_m = _standard_error(onp.asarray(locs)) / sd_ref
    se_s = _standard_error(onp.log(sds))
    return float(onp.sqrt(onp.mean(se_m**2))), float(onp.sqrt(onp.mean(se_s**2)))


class _NonFinite(Exception):
    def __init__(self, z, grad):
        self.z, self.grad = z, grad


def _optimise(value_and_grad: Callable, family: _GaussianFamily, theta0: onp.ndarray, *,
              rng, steps: int, learning_rate: float, num_particles: int, tol: float | None,
              clip_norm: float | None, bar) -> dict:
    """Maximise the ELBO; return the averaged guide and the run's record.

    The schedule works in phases that end at 2, 4, 8, ... blocks. Each new
    phase restarts Adam (fresh moments, the rate divided by sqrt(2)) in a
    new *frame*: coordinates ``w`` with ``q = shift + A w`` in which the
    guide averaged over the last quarter of the run is standard normal.
    Adam's steps then have the size of the posterior's own scale in every
    direction, correlated or not; the first phase works in raw units, so a
    start far from the posterior is left quickly. Restarting drops second
    moments inflated by early, wild gradients, and the decaying rate shrinks
    the iterates' fluctuation and the bias it puts into the scales.

    The estimate is the average of the iterates over the second half of the
    run. Convergence (checked once each quarter has ``MIN_WINDOW`` blocks):
    the averages over the last two quarters agree within ``tol`` (no drift
    left that the noise could hide at that level) and the standard error of
    their joint average, from the per-block averages, is below ``tol / 2``;
    both RMS over coordinates, means in posterior sds, and log sds.
    """
    d = family.dim
    theta = onp.array(theta0, dtype=float)  # the guide over w
    frame = family.identity_frame()
    phase = 0

    def optimizer(rate):
        return ClippedAdam(rate, clip_norm=clip_norm) if clip_norm else Adam(rate)

    opt = optimizer(learning_rate)
    zero = onp.zeros_like(theta)
    state = opt.init(zero)
    elbo = onp.full(steps, onp.nan)
    blocks = _Blocks(family)
    history_loc, history_sd, history_step = [], [], []
    theta_sum, var_sum, in_block, skipped_in_block = zero.copy(), 0.0, 0, 0
    num_skipped = 0
    converged, reason, last_change, last_error, bad = False, None, None, None, None

    def close_block():
        """The block's average guide over w, pushed forward to q."""
        over_w = family.with_marginal_var(theta_sum / in_block, var_sum / in_block)
        over_q = family.push_forward(over_w, frame)
        blocks.add(over_q * in_block, family.marginal_sd(over_q) ** 2 * in_block, in_block)

    t = 0
    interrupted = False
    try:
        for t in range(steps):
            eps = rng.standard_normal((num_particles, family.num_noise))
            w, aux = family.draw(theta, eps)
            z = frame.to_q(w) + frame.mean_offset(theta[:d])
            G = onp.empty_like(z)
            total = 0.0
            for i in range(num_particles):
                u, G[i] = value_and_grad(z[i])
                total += u
            entropy, marginal_var = family.step_stats(aux)
            loss = total / num_particles - entropy - frame.log_det
            grad = family.grad(theta, eps, frame.pull_back(G), aux)
            grad[:d] = frame.pull_back_mean(grad[:d])
            theta_sum += theta
            var_sum += marginal_var
            in_block += 1
            if math.isfinite(loss) and onp.isfinite(grad).all():
                elbo[t] = -loss
                # Adam sees parameters at zero each step: its update *is* the step.
                state = opt.update(grad, OptimizerState(state.step, (zero,), state.slots, None))
                theta = theta + state.params[0]
            else:
                num_skipped += 1
                skipped_in_block += 1
                bad = (z, G)
            if in_block < BLOCK:
                continue

            # ---- end of a block: bookkeeping, schedule, convergence
            if skipped_in_block >= MAX_SKIPPED_SHARE * in_block:
                raise _NonFinite(*bad)
            close_block()
            theta_sum, var_sum, in_block, skipped_in_block = zero.copy(), 0.0, 0, 0
            nb = blocks.n
            recent = blocks.average(nb - 1, nb)
            history_step.append(t + 1)
            history_loc.append(family.loc(recent).copy())
            history_sd.append(family.marginal_sd(recent))
            if bar is not None:
                bar.update(BLOCK)
                bar.set_postfix_str(f"elbo={_finite_mean(elbo[t + 1 - BLOCK:t + 1]):.4g}",
                                    refresh=False)
            if nb & (nb - 1) == 0 and nb > 1:
                phase += 1
                reference = blocks.average(nb - max(1, nb // 4), nb)
                frame = family.frame_of(reference)
                theta = family.standard_params(reference)
                opt = optimizer(learning_rate * 2.0 ** (-phase / 2))
                state = opt.init(zero)
            window = nb // 4
            if tol is not None and window >= MIN_WINDOW:
                a = blocks.average(nb - 2 * window, nb - window)
                b = blocks.average(nb - window, nb)
                last_change = _moment_change(family, a, b)
                last_error = _monte_carlo_error(history_loc[-2 * window:], history_sd[-2 * window:],
                                                family.marginal_sd(b))
                if max(last_change) < tol and max(last_error) < tol / 2:
                    converged = True
                    reason = (f"converged at step {t + 1}: the guide averaged over steps "
                              f"{(nb - 2 * window) * BLOCK}-{(nb - window) * BLOCK} and "
                              f"{(nb - window) * BLOCK}-{nb * BLOCK} agrees within tol={tol} "
                              f"(means moved {last_change[0]:.3g} posterior sd, log sds "
                              f"{last_change[1]:.3g}) and the average of both has a Monte Carlo "
                              f"error below tol/2 ({last_error[0]:.3g} sd, {last_error[1]:.3g}; "
                              "RMS over coordinates)")
                    break
    except KeyboardInterrupt:
        # As PyMC does, Ctrl-C keeps the fit so far: the average over the
        # blocks closed and the steps of the unfinished one (the interrupted
        # step itself may be half done, so it is not counted).
        if not blocks.n and not in_block:
            raise
        interrupted = True
        t -= 1
    num_steps = t + 1
    if in_block:  # a final partial block still belongs to the average
        if skipped_in_block >= MAX_SKIPPED_SHARE * in_block:
            raise _NonFinite(*bad)
        close_block()
    nb = blocks.n
    first = nb - max(1, 2 * (nb // 4))
    if interrupted:
        reason = (f"interrupted (Ctrl-C) after {num_steps} of {steps} steps: the fit so far, "
                  "not checked for convergence")
    elif not converged:
        if tol is None:
            reason = f"ran the requested {num_steps} steps (tol=None: no convergence check)"
        elif last_change is None:
            reason = (f"not converged: {num_steps} steps are too few to check convergence "
                      f"(needs at least {4 * MIN_WINDOW * BLOCK})")
        else:
            reason = (f"not converged: reached steps={steps} while the guide still moved "
                      f"{last_change[0]:.3g} posterior sd (means) and {last_change[1]:.3g} "
                      f"(log sds) between the last two quarters of the run, with Monte Carlo "
                      f"errors {last_error[0]:.3g} and {last_error[1]:.3g} (tol={tol})")
    return dict(theta=blocks.average(first, nb), elbo=elbo[:num_steps], num_steps=num_steps,
                num_skipped=num_skipped, converged=converged, reason=reason,
                interrupted=interrupted,
                averaged_from=num_steps - sum(blocks.count[k] for k in range(first, nb)),
                history={"step": onp.array(history_step, dtype=int),
                         "loc": onp.array(history_loc).reshape(-1, d),
                         "sd": onp.array(history_sd).reshape(-1, d)})


def _finite_mean(x) -> float:
    x = x[onp.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


# ------------------------------------------------------------------ the fit
class GaussianApproximation(ABC):
    """A Gaussian over the potential's unconstrained q, seen through the model.

    Shared by :class:`ADVIFit` and the Laplace approximation: constrained
    summaries (``mean``/``std``), draws (``sample_q``) and
    ``arviz.InferenceData`` (``sample``). Subclasses give ``loc``,
    ``marginal_sd``, ``cov`` and ``sample_q``.
    """

    inference_method: str

    def __init__(self, potential, seed_sequence: onp.random.SeedSequence):
        self.potential = potential
        summary_seq, sample_seq = seed_sequence.spawn(2)
        self._summary_seed = summary_seq
        self._sample_rng = onp.random.default_rng(sample_seq)

    @property
    @abstractmethod
    def loc(self) -> onp.ndarray:
        """Mean over q (unconstrained), shape ``(dim,)``."""

    @property
    @abstractmethod
    def marginal_sd(self) -> onp.ndarray:
        """Standard deviations over q, shape ``(dim,)``."""

    @property
    @abstractmethod
    def cov(self) -> onp.ndarray:
        """Covariance over q, shape ``(dim, dim)``."""

    @abstractmethod
    def sample_q(self, draws: int, rng) -> onp.ndarray:
        """``draws`` draws of q, shape ``(draws, dim)``."""

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


class ADVIFit(GaussianApproximation):
    """The result of :func:`advi`: a Gaussian over q, fitted by ADVI.

    Attributes
    ----------
    method : str
        ``"meanfield"``, ``"fullrank"`` or ``"lowrank"``.
    potential : probad.infer.density.Potential
        The unconstrained potential the guide was fitted to.
    elbo : ndarray, shape (num_steps,)
        The one-step ELBO estimates (NaN where a step was skipped).
    mean, std : dict
        Posterior means and sds in constrained space, per site.
    loc, marginal_sd, cov : ndarray
        The guide's mean, sds and covariance over q (unconstrained).
    num_steps : int
        Steps taken (at most ``steps``).
    num_skipped : int
        Steps whose loss or gradient was not finite; they were not applied.
    converged : bool
        Whether the convergence rule held before the step cap.
    interrupted : bool
        True if Ctrl-C stopped the fit: it holds the steps taken until then.
    convergence_reason : str
        Why the run stopped, with the numbers the rule looked at.
    guide_params : dict
        The fitted Gaussian over q in a standard parameterisation:
        ``loc``/``scale`` (meanfield), ``loc``/``scale_tril`` (fullrank),
        ``loc``/``cov_factor``/``cov_diag`` (lowrank).
    wall_time : float
        Seconds spent in :func:`advi`, model checks and compilation included.
    history : dict
        Per block of 100 steps: ``step``, and the block-averaged guide's
        ``loc`` and marginal ``sd`` over q (shape ``(blocks, dim)``).
    averaged_from : int
        The guide is the average of the iterates from this step on.
    """

    def __init__(self, potential, family, run: dict, *, seed_sequence, wall_time: float,
                 learning_rate: float, num_particles: int):
        super().__init__(potential, seed_sequence)
        self.method = family.method
        self.inference_method = f"advi-{family.method}"
        self._family = family
        self._theta = run["theta"]
        self.elbo = run["elbo"]
        self.num_steps = run["num_steps"]
        self.num_skipped = run["num_skipped"]
        self.converged = run["converged"]
        self.convergence_reason = run["reason"]
        self.interrupted = run["interrupted"]
        self.history = run["history"]
        self.averaged_from = run["averaged_from"]
        self.wall_time = wall_time
        self.learning_rate = learning_rate
        self.num_particles = num_particles

    def __repr__(self):
        status = "converged" if self.converged else "NOT converged"
        if self.interrupted:
            status += ", interrupted"
        return (f"<ADVIFit {self.method}: {self.num_steps} steps, {status}, "
                f"final ELBO ~ {self.final_elbo:.6g}, {self.num_skipped} skipped, "
                f"{self.wall_time:.2f} s>")

    @property
    def guide_params(self) -> dict:
        return self._family.guide_params(self._theta)

    @property
    def final_elbo(self) -> float:
        """Mean ELBO estimate over the averaging window (the second half of the run)."""
        return _finite_mean(self.elbo[self.averaged_from:])

    @property
    def loc(self) -> onp.ndarray:
        return self._family.loc(self._theta).copy()

    @property
    def marginal_sd(self) -> onp.ndarray:
        return self._family.marginal_sd(self._theta)

    @property
    def cov(self) -> onp.ndarray:
        return self._family.covariance(self._theta)

    def sample_q(self, draws: int, rng) -> onp.ndarray:
        eps = onp.random.default_rng(rng).standard_normal((draws, self._family.num_noise))
        return self._family.draw(self._theta, eps)[0]

    def _attrs(self) -> dict:
        return dict(super()._attrs(), num_steps=int(self.num_steps),
                    converged=int(self.converged), final_elbo=self.final_elbo)

    def plot(self, ax=None):
        """Plot the ELBO trace: raw estimates, their block means, and the
        averaging window (shaded) ending at the convergence point.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
        steps = onp.arange(1, self.num_steps + 1)
        ax.plot(steps, self.elbo, color="C0", alpha=0.3, lw=0.6, label="ELBO (one step)")
        n_full = self.num_steps // BLOCK
        if n_full:
            smooth = onp.array([_finite_mean(self.elbo[i * BLOCK:(i + 1) * BLOCK])
                                for i in range(n_full)])
            ax.plot((onp.arange(n_full) + 0.5) * BLOCK, smooth, color="C0", lw=2,
                    label=f"mean per {BLOCK} steps")
            tail = smooth[n_full // 2:]
            tail = tail[onp.isfinite(tail)]
            if tail.size:
                spread = onp.nanstd(self.elbo[self.averaged_from:]) if \
                    onp.isfinite(self.elbo[self.averaged_from:]).sum() > 1 else 1.0
                ax.set_ylim(tail.min() - 4 * spread, tail.max() + 2 * spread)
        ax.axvspan(self.averaged_from, self.num_steps, color="C2", alpha=0.12,
                   label="averaged iterates")
        label = "converged" if self.converged else "stopped (not converged)"
        ax.axvline(self.num_steps, color="C3" if not self.converged else "C2", ls="--",
                   label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("ELBO")
        ax.set_title(f"ADVI ({self.method})")
        ax.legend(loc="lower right", fontsize="small")
        return ax


def _has_deterministic(pot) -> bool:
    return any(name not in pot.sites and name not in pot.observed for name in pot.dims)


def _nonfinite_message(pot, z, G) -> str:
    """What was not finite at the first failed draw of a failed step: the
    draw itself (the guide diverged), or the terms of the model's log density
    there (``Potential.describe_nonfinite``)."""
    with onp.errstate(all="ignore"):  # the point is a bad one: overflow is expected
        for row, grad in zip(z, G):
            if not onp.isfinite(row).all():
                bad = [name for name, site in pot.sites.items()
                       if not onp.isfinite(row[site.offset:site.offset + site.size]).all()]
                return f"the guide's draw itself, for site(s) {', '.join(bad)}"
            if not (math.isfinite(pot.value_and_grad(row)[0]) and onp.isfinite(grad).all()):
                return pot.describe_nonfinite(row, grad)
    # Every draw was fine: the guide's entropy failed (a scale collapsed to 0).
    return "the guide's own entropy (a scale collapsed to zero)"


def advi(model, data: Mapping | None = None, *, method: str = "meanfield",
         rank: int | None = None, steps: int | None = None, learning_rate: float = 0.1,
         num_particles: int = 1, seed=None, progress: bool = True, init=None,
         compile: bool = True, clip_norm: float | None = None, tol: float | None = 0.05,
         init_scale: float = 0.1, backend: str = "auto") -> ADVIFit:
    """Fit a Gaussian approximation to the posterior by ADVI.

    Parameters
    ----------
    model : callable
        A model calling ``pb.sample``.
    data : mapping, optional
        Keyword arguments of the model (observed data among them).
    method : {"meanfield", "fullrank", "lowrank"}
        Diagonal covariance, dense covariance (Cholesky factor), or diagonal
        plus a rank-``rank`` factor.
    rank : int, optional
        Rank of the lowrank factor; default ``min(10, dim // 2)`` (at least 1).
    steps : int, optional
        The cap on optimisation steps (default 30000); always respected.
    learning_rate : float
        Adam's initial step size. From step 200 on, steps are taken in the
        guide's own frame (units of its posterior sds, along its
        correlations), so 0.1 suits most models; the rate is divided by
        sqrt(2) at steps 200, 400, 800, ...
    num_particles : int
        Draws per ELBO gradient estimate.
    seed : int or numpy.random.SeedSequence, optional
    progress : bool
        Show a tqdm progress bar with the smoothed ELBO and the step rate.
    init : init strategy or dict, optional
        Where the guide's mean starts (constrained values for a dict);
        default ``init_to_median()``.
    compile : bool
        Use the compiled potential (fast) rather than re-running the model.
    clip_norm : float, optional
        Clip each gradient (in the current frame) to this global L2 norm.
    tol : float or None
        Tolerance of the parameter-change stopping rule, in posterior sds
        (see Notes); None runs all ``steps``.
    init_scale : float
        The guide's initial scale in unconstrained space.
    backend : {"auto", "native", "numpy"}
        What replays the compiled potential (see ``probad.infer.potential``):
        by default compiled code (numba) where a cost model predicts it
        faster, as for a model's Python loop, and numpy elsewhere; results
        agree to rounding.

    Returns
    -------
    ADVIFit
        ``.elbo``, ``.mean``/``.std`` (constrained, per site), ``.sample()``,
        ``.plot()``, ``.converged``/``.convergence_reason``, ``.guide_params``,
        ``.num_steps``, ``.num_skipped``, ``.wall_time``.

    Notes
    -----
    The ELBO gradient is stochastic, so the guide's parameters never settle;
    the reported guide is the average of the iterates over the second half of
    the run (Polyak-Ruppert averaging, with the variances rather than the
    scale parameters averaged).

    The stopping rule is a parameter-change rule, not a relative-ELBO rule.
    At the end of each block of 100 steps, once each quarter of the run
    holds at least 4 blocks (so after at least 1600 steps), the guide
    averaged over the third quarter of the run is compared with the guide
    averaged over the last quarter. The run stops when (a) they agree: the
    RMS over coordinates of the change in the means, in units of the
    posterior sd, and of the change in the log sds are both below ``tol``;
    and (b) their joint average, the reported guide, is precise: its Monte
    Carlo standard error, estimated from the per-block averages (with an
    AR(1) correction for their autocorrelation), is below ``tol / 2`` in the
    same units. This is PyMC's ``CheckParametersConvergence`` made
    scale-free, plus the precision check (b), which keeps two noisy averages
    that agree by chance from ending the run.

    Why not the ELBO: near the optimum it is flat in the guide's parameters
    (means off by ``d`` posterior sds cost about ``d**2 / 2`` nats per
    coordinate) while its one-draw estimates are noisy, so a small relative
    change of even a smoothed ELBO says little about whether the means and
    sds have settled, and the threshold would depend on the ELBO's scale
    (the number of observations). The rule above measures the quantities
    users read, in posterior sds, so one ``tol`` suits every model.

    A step whose loss or gradient is NaN/inf is skipped (not applied) and
    counted in ``num_skipped``. With lowrank on a strongly correlated
    posterior the sds keep a small bias (about -3% at correlation 0.9): its
    frame is diagonal for the scales.

    Raises
    ------
    ValueError
        If nearly every step in a block of 100 has a non-finite ELBO: the
        message names the sites (latent, observed or factor) whose log
        density, transform Jacobian or gradient was not finite at the last
        failed draw.
    """
    start = time.perf_counter()
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be positive, got {init_scale}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be positive or None, got {tol}")
    steps = 30_000 if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if backend not in ("auto", "native", "numpy"):
        raise ValueError(f"pb.advi: backend must be 'auto', 'native' or 'numpy', got {backend!r}")
    pot = make_potential(model, data, compile=compile, backend=backend)
    if pot.dim == 0:
        raise ValueError("the model has no latent continuous sites: there is nothing to fit")
    family = _family(method, pot.dim, rank)
    root = seed if isinstance(seed, onp.random.SeedSequence) else onp.random.SeedSequence(seed)
    init_seq, run_seq, fit_seq = root.spawn(3)
    strategy = init_to_value(values=init) if isinstance(init, Mapping) else \
        (init if init is not None else init_to_median())
    q0 = pot.initial_point(seed=onp.random.default_rng(init_seq), strategy=strategy)
    rng = onp.random.default_rng(run_seq)
    theta0 = family.initial_params(q0, init_scale, rng)
    bar = None
    if progress:
        bar = progress_bar(total=steps, desc=f"ADVI ({family.method})", unit="step",
                   dynamic_ncols=True)
    try:
        # Draws far in the tails may overflow on the way to a non-finite
        # loss; such steps are detected and skipped, so numpy need not warn.
        with onp.errstate(all="ignore"):
            run = _optimise(functools.partial(pot.value_and_grad, quiet=False), family, theta0,
                            rng=rng, steps=steps,
                            learning_rate=learning_rate, num_particles=num_particles,
                            tol=tol, clip_norm=clip_norm, bar=bar)
        if bar is not None:  # an early stop ends the bar at 100%
            bar.total = run["num_steps"]
            bar.update(run["num_steps"] - bar.n)
    except _NonFinite as exc:
        raise ValueError(
            f"the ELBO could not be evaluated: in a block of {BLOCK} steps at least "
            f"{MAX_SKIPPED_SHARE:.0%} of the draws from the guide gave a non-finite loss or "
            f"gradient. At the last such draw: {_nonfinite_message(pot, exc.z, exc.grad)}. "
            "Check that those sites' log densities are finite wherever the guide can reach "
            "(a factor or likelihood that overflows, or takes the log of a negative number), "
            "or keep the guide closer: starting values (init=...), a smaller init_scale or "
            "learning_rate, clip_norm=...") from None
    finally:
        if bar is not None:
            bar.close()
    fit = ADVIFit(pot, family, run, seed_sequence=fit_seq,
                  wall_time=time.perf_counter() - start, learning_rate=learning_rate,
                  num_particles=num_particles)
    if fit.interrupted:
        warnings.warn(f"ADVI: {fit.convergence_reason}.", RuntimeWarning, stacklevel=2)
    elif not fit.converged and tol is not None:
        warnings.warn(f"ADVI: {fit.convergence_reason}. Increase steps= or learning_rate=, "
                      "or loosen tol=.", UserWarning, stacklevel=2)
    return fit
