"""Hamiltonian Monte Carlo kernels: leapfrog, Euclidean metrics, static HMC, NUTS.

Kernels are pure functions over NamedTuple states, in the BlackJAX style. They
see the target only through ``potential_fn(q) -> (U, dU/dq)`` on a flat float64
vector, where ``U`` is the negative log density. Nothing here adapts: step size
and metric are arguments, tuned by :mod:`probad.infer.adaptation`.

The NUTS step follows Stan's ``base_nuts.hpp`` (Stan >= 2.21): multinomial
sampling inside subtrees, biased progressive sampling when a subtree is merged
into the trajectory, the generalised U-turn criterion on ``rho`` (the summed
momenta) and ``p_sharp = M^{-1} p``, plus the two extra checks across every
merge of two subtrees.
"""

import math
from typing import Callable, NamedTuple

import numpy as onp
import scipy.linalg

#: ``native_nuts`` compiles ``_logaddexp`` and ``_no_u_turn`` of this module
#: with numba's on-disk cache; they call no other module of probad.
NUMBA_CACHE_DEPENDS = ()

PotentialFn = Callable[[onp.ndarray], tuple[float, onp.ndarray]]

#: Energy error above which a trajectory is declared divergent (Stan's max_deltaH).
DIVERGENCE_THRESHOLD = 1000.0

# Divergent trajectories overflow by design; they are caught through the energy
# (NaN reads as +inf), so numpy's floating-point warnings would only be noise.
quiet_floating_point = onp.errstate(over="ignore", invalid="ignore", divide="ignore")


class IntegratorState(NamedTuple):
    """A point in phase space, with the potential and its gradient at ``position``."""

    position: onp.ndarray
    momentum: onp.ndarray
    potential_energy: float
    potential_grad: onp.ndarray


class HMCState(NamedTuple):
    """The Markov chain state shared by HMC and NUTS (momentum is resampled each step)."""

    position: onp.ndarray
    potential_energy: float
    potential_grad: onp.ndarray


class HMCInfo(NamedTuple):
    """Diagnostics of one transition, named as ArviZ ``sample_stats`` expects.

    Attributes
    ----------
    acceptance_rate : float
        Static HMC: ``min(1, exp(H0 - H))`` of the proposal. NUTS: Stan's mean of
        ``min(1, exp(H0 - H))`` over every leapfrog step of the trajectory,
        including those of a rejected last subtree. This is the statistic step
        size adaptation targets.
    diverging : bool
        Whether some step had ``H - H0 > DIVERGENCE_THRESHOLD`` (NaN counts as +inf).
    energy : float
        Hamiltonian at the selected point (what ``arviz.plot_energy`` expects).
    energy_error : float
        ``H(selected) - H0``.
    max_energy_error : float
        The ``H - H0`` of largest magnitude over the trajectory, sign kept.
    n_steps : int
        Number of leapfrog steps, i.e. gradient evaluations.
    tree_depth : int
        NUTS tree depth (Stan's ``treedepth__``); 0 for static HMC.
    """

    acceptance_rate: float
    diverging: bool
    energy: float
    energy_error: float
    max_energy_error: float
    n_steps: int
    tree_depth: int


class Metric(NamedTuple):
    """A Euclidean metric ``M``, i.e. kinetic energy ``K(p) = p^T M^{-1} p / 2``.

    Build one with :func:`make_metric`; factorisations are done there, once, so
    the per-step functions below are a handful of array operations.

    Attributes
    ----------
    inverse_metric : ndarray or LowRankInverseMetric
        ``M^{-1}``: 1-D for a diagonal metric, 2-D for a dense one, or its
        low-rank factors. It is the (co)variance the metric adapts to, so it
        is what adaptation reports.
    sample_momentum : callable
        ``sample_momentum(rng) -> p`` with ``p ~ N(0, M)``.
    velocity : callable
        ``velocity(p) -> M^{-1} p``, i.e. ``dK/dp``; Stan's ``p_sharp``.
    kinetic_energy : callable
        ``kinetic_energy(p) -> K(p)``.
    momentum_factor : ndarray or None
        What ``sample_momentum`` multiplies a standard normal draw ``z`` by:
        the scale ``1 / sqrt(M^{-1})`` (``p = scale * z``) for a diagonal
        metric, the lower Cholesky factor ``L`` of ``M`` (``p = L z``) for a
        dense one. The compiled kernels of :mod:`probad.infer.native_nuts`
        draw momenta from it; a metric without one runs in Python only.
    """

    inverse_metric: "onp.ndarray | LowRankInverseMetric"
    sample_momentum: Callable[[onp.random.Generator], onp.ndarray]
    velocity: Callable[[onp.ndarray], onp.ndarray]
    kinetic_energy: Callable[[onp.ndarray], float]
    momentum_factor: onp.ndarray | None = None


class LowRankInverseMetric(NamedTuple):
    """``M^{-1} = S (I + U (diag(values) - I) U^T) S`` with ``S = diag(scale)``.

    A diagonal rescaling corrected along ``k`` orthonormal directions: the
    form nutpie's low-rank adaptation produces. Storing it this way keeps
    every metric operation ``O(dim * k)`` instead of ``O(dim^2)``. Its
    :class:`Metric` has no ``momentum_factor``, so it runs in the Python
    kernels.

    Attributes
    ----------
    scale : ndarray, shape (dim,)
        Positive; the square root of the diagonal part.
    vectors : ndarray, shape (dim, k)
        Orthonormal columns ``U`` (``k`` may be 0).
    values : ndarray, shape (k,)
        Positive variances along ``U`` in the rescaled space.
    """

    scale: onp.ndarray
    vectors: onp.ndarray
    values: onp.ndarray

    def dense(self) -> onp.ndarray:
        """The full ``dim x dim`` matrix ``M^{-1}`` (for reports and tests)."""
        u = self.vectors
        inner = onp.eye(len(self.scale)) + (u * (self.values - 1.0)) @ u.T
        return self.scale[:, None] * inner * self.scale[None, :]


def _low_rank_metric(inverse_metric: LowRankInverseMetric) -> Metric:
    scale = onp.array(inverse_metric.scale, dtype=onp.float64)
    u = onp.array(inverse_metric.vectors, dtype=onp.float64).reshape(len(scale), -1)
    values = onp.array(inverse_metric.values, dtype=onp.float64).reshape(-1)
    if not (onp.all(onp.isfinite(scale)) and onp.all(onp.isfinite(u)) and onp.all(onp.isfinite(values))):
        raise ValueError("low-rank inverse metric contains non-finite values")
    if not (onp.all(scale > 0) and onp.all(values > 0)):
        raise ValueError("a low-rank inverse metric needs positive scales and values")
    if u.shape[1] != values.shape[0] or not onp.allclose(u.T @ u, onp.eye(u.shape[1]), atol=1e-8):
        raise ValueError("a low-rank inverse metric needs orthonormal vectors, one per value")
    dim = scale.shape[0]
    stretch = values - 1.0
    # p = S^-1 (I + U (values^-1/2 - 1) U^T) z has covariance S^-1 (I + U (1/values - 1) U^T) S^-1 = M.
    momentum_stretch = 1.0 / onp.sqrt(values) - 1.0

    def sample_momentum(rng):
        z = rng.standard_normal(dim)
        return (z + u @ (momentum_stretch * (u.T @ z))) / scale

    def velocity(p):
        y = scale * p
        return scale * (y + u @ (stretch * (u.T @ y)))

    return _metric(LowRankInverseMetric(scale, u, values), sample_momentum, velocity)


def make_metric(inverse_metric) -> Metric:
    """Build the metric functions for a diagonal, dense or low-rank inverse metric.

    Parameters
    ----------
    inverse_metric : array_like or LowRankInverseMetric
        Positive vector (diagonal of ``M^{-1}``), symmetric positive-definite
        matrix ``M^{-1}``, or a :class:`LowRankInverseMetric`.

    Returns
    -------
    Metric

    Raises
    ------
    ValueError
        If the inverse metric is not finite and positive (definite).
    """
    if isinstance(inverse_metric, LowRankInverseMetric):
        return _low_rank_metric(inverse_metric)
    inv = onp.array(inverse_metric, dtype=onp.float64)
    if not onp.all(onp.isfinite(inv)):
        raise ValueError("inverse metric contains non-finite values")
    dim = inv.shape[0] if inv.ndim else 0

    if inv.ndim == 1:
        if not onp.all(inv > 0):
            raise ValueError("a diagonal inverse metric must be strictly positive")
        return diagonal_metric(inv)
    if inv.ndim == 2 and inv.shape == (dim, dim):
        # Adaptation's estimates are exactly symmetric; a user's matrix may
        # carry rounding from its own arithmetic, which 1e-10 forgives.
        if not onp.allclose(inv, inv.T, rtol=1e-10, atol=0.0):
            raise ValueError("a dense inverse metric must be symmetric")
        try:
            metric = scipy.linalg.cho_solve(scipy.linalg.cho_factor(inv, lower=True), onp.eye(dim))
            # p ~ N(0, M) through the Cholesky factor of M itself.
            metric_chol = onp.linalg.cholesky(0.5 * (metric + metric.T))
        except onp.linalg.LinAlgError:
            raise ValueError("a dense inverse metric must be positive definite") from None

        def sample_momentum(rng):
            return metric_chol @ rng.standard_normal(dim)

        return _metric(inv, sample_momentum, inv.dot, metric_chol)
    raise ValueError(f"inverse metric must be a vector or a square matrix, got shape {inv.shape}")


def diagonal_metric(inverse_metric: onp.ndarray) -> Metric:
    """:func:`make_metric` of a diagonal inverse metric already known to be a
    finite, strictly positive float64 vector, which it keeps (not a copy).

    Adaptation's estimates are such vectors by construction; the Fisher warmup
    builds a new metric after every warmup draw, and skips the checks.
    """
    inv = inverse_metric
    dim = inv.shape[0]
    momentum_scale = 1.0 / onp.sqrt(inv)

    def sample_momentum(rng):
        return rng.standard_normal(dim) * momentum_scale

    def velocity(p):
        return inv * p

    return _metric(inv, sample_momentum, velocity, momentum_scale)


def _metric(inverse_metric, sample_momentum, velocity, momentum_factor=None) -> Metric:
    """The :class:`Metric` with ``K(p) = p . velocity(p) / 2``."""

    def kinetic_energy(p):
        return 0.5 * p.dot(velocity(p))

    return Metric(inverse_metric, sample_momentum, velocity, kinetic_energy, momentum_factor)


def init(position, potential_fn: PotentialFn) -> HMCState:
    """Evaluate the potential at ``position`` and wrap it as a chain state.

    Raises
    ------
    ValueError
        If the potential or its gradient is not finite there: no transition
        could ever leave such a point.
    """
    q = onp.array(position, dtype=onp.float64).reshape(-1)
    potential_energy, potential_grad = potential_fn(q)
    potential_grad = onp.asarray(potential_grad, dtype=onp.float64)
    if not (math.isfinite(potential_energy) and onp.all(onp.isfinite(potential_grad))):
        raise ValueError(
            f"the log density or its gradient is not finite at the initial position "
            f"(potential energy {potential_energy}); choose another starting point"
        )
    return HMCState(q, float(potential_energy), potential_grad)


def leapfrog(
    state: IntegratorState, step_size: float, metric: Metric, potential_fn: PotentialFn
) -> IntegratorState:
    """One velocity-Verlet step; a negative ``step_size`` integrates backwards in time.

    Reuses the gradient carried in ``state``, so a step costs one gradient evaluation.
    """
    # array * scalar, not scalar * array: it skips a failed float.__mul__ (~0.1 us each).
    half_step = 0.5 * step_size
    momentum = state.momentum - state.potential_grad * half_step
    position = state.position + metric.velocity(momentum) * step_size
    potential_energy, potential_grad = potential_fn(position)
    return IntegratorState(
        position, momentum - potential_grad * half_step, potential_energy, potential_grad
    )


def hamiltonian(state: IntegratorState, metric: Metric) -> float:
    """Total energy ``U(q) + K(p)``, with NaN mapped to +inf so it reads as divergent."""
    energy = float(state.potential_energy + metric.kinetic_energy(state.momentum))
    return math.inf if energy != energy else energy


@quiet_floating_point
def hmc_step(
    rng: onp.random.Generator,
    state: HMCState,
    potential_fn: PotentialFn,
    step_size: float,
    metric: Metric,
    num_steps: int,
    jitter: float = 0.0,
) -> tuple[HMCState, HMCInfo]:
    """One static HMC transition: ``num_steps`` leapfrog steps, then Metropolis.

    Parameters
    ----------
    rng : numpy.random.Generator
    state : HMCState
    potential_fn : callable
        ``q -> (U, dU/dq)``.
    step_size : float
        Nominal step size.
    metric : Metric
    num_steps : int
        Number of leapfrog steps (>= 1).
    jitter : float, optional
        If positive, the step size is drawn uniformly from
        ``step_size * [1 - jitter, 1 + jitter]`` (Stan's ``stepsize_jitter``),
        which breaks resonances of a fixed path length with periodic targets.

    Returns
    -------
    (HMCState, HMCInfo)
        Integration stops early at a divergence, which is then rejected.
    """
    assert num_steps >= 1, "pb.hmc checks num_steps"
    if jitter:
        step_size *= 1.0 + jitter * (2.0 * rng.random() - 1.0)
    z = IntegratorState(
        state.position, metric.sample_momentum(rng), state.potential_energy, state.potential_grad
    )
    energy0 = hamiltonian(z, metric)
    max_energy_error = 0.0
    diverging = False
    n_steps = 0
    while n_steps < num_steps:
        z = leapfrog(z, step_size, metric, potential_fn)
        n_steps += 1
        energy_error = hamiltonian(z, metric) - energy0
        if abs(energy_error) > abs(max_energy_error):
            max_energy_error = energy_error
        if energy_error > DIVERGENCE_THRESHOLD:
            diverging = True
            break

    acceptance_rate = 1.0 if energy_error <= 0.0 else math.exp(-energy_error)
    # Stan draws the uniform only when the proposal might be rejected.
    if acceptance_rate < 1.0 and rng.random() >= acceptance_rate:
        info = HMCInfo(acceptance_rate, diverging, energy0, 0.0, max_energy_error, n_steps, 0)
        return state, info
    new_state = HMCState(z.position, z.potential_energy, z.potential_grad)
    info = HMCInfo(
        acceptance_rate, diverging, energy0 + energy_error, energy_error,
        max_energy_error, n_steps, 0,
    )
    return new_state, info


def _logaddexp(a: float, b: float) -> float:
    # math-module version: onp.logaddexp on Python scalars costs ~1 us per call.
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def _no_u_turn(p_sharp_minus: onp.ndarray, p_sharp_plus: onp.ndarray, rho: onp.ndarray) -> bool:
    """Generalised U-turn criterion (Betancourt 2017): both ends still move along ``rho``."""
    return p_sharp_plus.dot(rho) > 0.0 and p_sharp_minus.dot(rho) > 0.0


class Subtree(NamedTuple):
    """A built subtree of a NUTS trajectory, in the order it was integrated.

    ``first`` is the leaf nearest the trajectory's start and ``last`` the
    farthest, whichever direction in time the subtree was built in.
    """

    last: IntegratorState        # where the next subtree in this direction starts
    proposal: IntegratorState    # the multinomial draw among its leaves
    proposal_energy: float
    log_weight: float            # log of the summed exp(H0 - H) over its leaves
    rho: onp.ndarray              # the sum of its leaves' momenta
    p_first: onp.ndarray          # momentum and M^{-1} p of the first and last leaves,
    p_sharp_first: onp.ndarray    # for the U-turn checks
    p_last: onp.ndarray
    p_sharp_last: onp.ndarray


class _Tally:
    """What every leaf of a trajectory adds to (Stan passes these by reference)."""

    __slots__ = ("n_leapfrog", "sum_accept", "max_energy_error", "diverging")

    def __init__(self):
        self.n_leapfrog = 0
        self.sum_accept = 0.0
        self.max_energy_error = 0.0
        self.diverging = False


@quiet_floating_point
def nuts_step(
    rng: onp.random.Generator,
    state: HMCState,
    potential_fn: PotentialFn,
    step_size: float,
    metric: Metric,
    max_tree_depth: int = 10,
) -> tuple[HMCState, HMCInfo]:
    """One NUTS transition exactly as Stan's ``base_nuts::transition``.

    Parameters
    ----------
    rng : numpy.random.Generator
    state : HMCState
    potential_fn : callable
        ``q -> (U, dU/dq)``.
    step_size : float
    metric : Metric
    max_tree_depth : int, optional
        The trajectory stops after ``2**max_tree_depth - 1`` leapfrog steps.

    Returns
    -------
    (HMCState, HMCInfo)
    """
    assert max_tree_depth >= 1, "pb.hmc checks max_tree_depth"
    uniform = rng.random
    velocity = metric.velocity

    p0 = metric.sample_momentum(rng)
    v0 = velocity(p0)
    energy0 = float(state.potential_energy + 0.5 * p0.dot(v0))
    z0 = IntegratorState(state.position, p0, state.potential_energy, state.potential_grad)
    tally = _Tally()

    def build_tree(z, depth, signed_step) -> Subtree | None:
        """The subtree of ``2**depth`` leaves after ``z``; None if it is invalid
        (divergent, or a U-turn inside it)."""
        if depth == 0:
            z = leapfrog(z, signed_step, metric, potential_fn)
            p = z.momentum
            p_sharp = velocity(p)
            # K = p.M^-1 p / 2 shares p_sharp with the U-turn checks; Python floats keep the
            # scalar bookkeeping below cheap.
            energy = float(z.potential_energy + 0.5 * p.dot(p_sharp))
            if energy != energy:
                energy = math.inf
            energy_error = energy - energy0
            tally.n_leapfrog += 1
            tally.sum_accept += 1.0 if energy_error <= 0.0 else math.exp(-energy_error)
            if abs(energy_error) > abs(tally.max_energy_error):
                tally.max_energy_error = energy_error
            if energy_error > DIVERGENCE_THRESHOLD:
                tally.diverging = True
                return None
            return Subtree(z, z, energy, -energy_error, p, p, p_sharp, p, p_sharp)

        init = build_tree(z, depth - 1, signed_step)
        if init is None:
            return None
        final = build_tree(init.last, depth - 1, signed_step)
        if final is None:
            return None

        # Multinomial sampling: the final half wins with probability w_final / (w_init + w_final).
        log_w = _logaddexp(init.log_weight, final.log_weight)
        if uniform() < math.exp(final.log_weight - log_w):
            proposal, proposal_energy = final.proposal, final.proposal_energy
        else:
            proposal, proposal_energy = init.proposal, init.proposal_energy

        rho = init.rho + final.rho
        # The two extra checks catch U-turns that straddle the two halves (Stan >= 2.21).
        # When both halves are single leaves they repeat the first check exactly.
        if not (
            _no_u_turn(init.p_sharp_first, final.p_sharp_last, rho)
            and (
                depth == 1
                or _no_u_turn(init.p_sharp_first, final.p_sharp_first, init.rho + final.p_first)
                and _no_u_turn(init.p_sharp_last, final.p_sharp_last, final.rho + init.p_last)
            )
        ):
            return None
        return Subtree(final.last, proposal, proposal_energy, log_w, rho, init.p_first,
                       init.p_sharp_first, final.p_last, final.p_sharp_last)

    # The trajectory is a backward half ("bck") and a forward half ("fwd"); each
    # half has a backward and a forward end. Initially both are the start point.
    z_fwd = z_bck = z0
    p_fwd_fwd = p_fwd_bck = p_bck_fwd = p_bck_bck = p0
    ps_fwd_fwd = ps_fwd_bck = ps_bck_fwd = ps_bck_bck = v0
    rho = p0
    log_w = 0.0  # log of the summed weights exp(H0 - H); the start point has weight 1
    sample, sample_energy = z0, energy0
    depth = 0
    while depth < max_tree_depth:
        if uniform() > 0.5:
            # Extend forward: the current trajectory becomes the backward half.
            rho_bck, p_bck_fwd, ps_bck_fwd = rho, p_fwd_fwd, ps_fwd_fwd
            new = build_tree(z_fwd, depth, step_size)
            if new is None:
                break
            z_fwd, rho_fwd = new.last, new.rho
            p_fwd_bck, ps_fwd_bck, p_fwd_fwd, ps_fwd_fwd = \
                new.p_first, new.p_sharp_first, new.p_last, new.p_sharp_last
        else:
            rho_fwd, p_fwd_bck, ps_fwd_bck = rho, p_bck_bck, ps_bck_bck
            new = build_tree(z_bck, depth, -step_size)
            if new is None:
                break
            # Built backwards in time, the new half's first leaf is its forward end.
            z_bck, rho_bck = new.last, new.rho
            p_bck_fwd, ps_bck_fwd, p_bck_bck, ps_bck_bck = \
                new.p_first, new.p_sharp_first, new.p_last, new.p_sharp_last
        depth += 1

        # Biased progressive sampling favours the new subtree, moving draws further out.
        if new.log_weight > log_w or uniform() < math.exp(new.log_weight - log_w):
            sample, sample_energy = new.proposal, new.proposal_energy
        log_w = _logaddexp(log_w, new.log_weight)

        rho = rho_bck + rho_fwd
        if not (
            _no_u_turn(ps_bck_bck, ps_fwd_fwd, rho)
            and (
                depth == 1
                or _no_u_turn(ps_bck_bck, ps_fwd_bck, rho_bck + p_fwd_bck)
                and _no_u_turn(ps_bck_fwd, ps_fwd_fwd, rho_fwd + p_bck_fwd)
            )
        ):
            break

    info = HMCInfo(
        acceptance_rate=tally.sum_accept / tally.n_leapfrog,
        diverging=tally.diverging,
        energy=sample_energy,
        energy_error=sample_energy - energy0,
        max_energy_error=tally.max_energy_error,
        n_steps=tally.n_leapfrog,
        tree_depth=depth,
    )
    new_state = HMCState(sample.position, sample.potential_energy, sample.potential_grad)
    return new_state, info
