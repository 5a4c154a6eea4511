"""nutpie's warmup: a metric from draws *and* gradients, one dual-averaging run.

Seyboldt, Carlson and Carpenter ("Preconditioning HMC by minimizing Fisher
divergence") choose the inverse metric that makes the draws and their
gradients look alike after rescaling. For a diagonal metric this is
``sqrt(Var(x) / Var(grad log p))`` per coordinate: exact for any Gaussian
with a diagonal covariance, and informed by the gradients, which carry
information on the scale from the first draws on. The scheme here takes the
facts of nutpie's implementation (pymc-devs/nuts-rs, ``adapt_strategy.rs``,
``transform/adapt/``) and is written anew:

* the first inverse metric is ``1 / |grad|`` at the starting point;
* every warmup draw that moved (the sampler did not stay where it was) is
  added to two estimators: the *foreground* one, which sets the metric after
  every draw, and the *background* one, which replaces it at the end of each
  window and starts empty; windows are 10 draws long in the early phase
  (first 30% of warmup), then 80 draws growing by 1.5x;
* the metric is frozen for the final 15% of warmup, where only the step size
  is adapted;
* the step size is searched once at the start and once after the first
  metric update; dual averaging (Stan's constants) then runs on without
  restarts, and sampling uses its averaged iterate.

Schedule for ``num_warmup = 300`` (``fisher_schedule(300)``)::

    iteration 0        90                                      255       300
              |--early--|----------------main-----------------|--final--|
    windows   |10|10|...|10|      80 draws     |  (to 255)     | frozen  |
    metric    1/|grad|, then the foreground estimate after every draw
    step size search, dual averaging ......................... averaged  |

The window ends (``switches``) depend on ``num_warmup`` only, so every chain
shares them and plots can draw them.

Three metric forms:

* ``"diag"``: ``sqrt(Var(x) / Var(grad))``, clipped to ``[1e-20, 1e20]``; a
  coordinate whose ratio is not finite or 0 keeps its previous value;
* ``"dense"``: the affine-invariant estimate. In coordinates rescaled by the
  diagonal estimate, the covariance ``C`` solving ``C Cov(grad) C = Cov(x)``
  (the geometric mean of ``Cov(x)`` and ``Cov(grad)^-1``; exact for any
  Gaussian), each covariance regularised as ``S / gamma + I`` with ``S`` the
  sum of outer products and ``gamma = 1e-5``, as nutpie regularises its
  low-rank estimate; then mapped back. Identity in every direction the
  draws and gradients do not reach, i.e. the diagonal estimate there;
* ``"low_rank"``: nutpie's low-rank scheme: the same geometric mean restricted
  to the span of the rescaled draws and gradients, keeping only eigenvalues
  above 2 or below 1/2 as corrections to the diagonal
  (:class:`~probad.infer.kernels.LowRankInverseMetric`).

A fourth, diagonal and opt-in (``adapt="fisher-variance"`` in ``pb.hmc``):
the Fisher estimate in the early phase, the draws' variance ``Var(x)`` in the
main phase. For a Gaussian, ``Var(x) / Var(grad)`` is the product of each
coordinate's marginal and conditional variances, so the Fisher estimate is
their geometric mean: it shrinks a direction whose conditional variance is far
below its marginal one, such as a hierarchical scale (radon's ``sigma_a``: 0.68x
its posterior variance), and that direction then has the smallest ESS. PyMC
and Stan use ``Var(x)``; nutpie's own ``use_grad_based_mass_matrix=False`` does
too, and gains the same. Gradients matter while there are few draws, which is
the early phase; the main phase's windows hold 80 or more.
(``benchmarks/bench_fisher.py`` has the measurements.)

The variances of the diagonal estimate are running moments of each
estimator's draws and gradients (:mod:`~probad.infer.fisher_moments`), so a
draw costs ``O(dim)`` whatever the window's length; only dense and low-rank
estimates keep the draws themselves. Those cost ``O(dim^3)`` or
``O(n^2 dim)`` each, so they are recomputed every ``10`` draws and at every
window end rather than after every draw (nutpie, in compiled code, does every
draw).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as onp

from probad.infer.adaptation import (
    DualAveragingState,
    dual_averaging_init,
    dual_averaging_update,
    find_reasonable_step_size,
)
from probad.infer.kernels import (
    HMCState,
    LowRankInverseMetric,
    Metric,
    diagonal_metric,
    make_metric,
)

#: Clip of inverse-metric values (nutpie's limits).
VARIANCE_LIMITS = (1e-20, 1e20)
#: Regularisation of the dense and low-rank estimates: covariances enter as ``S / gamma + I``.
GAMMA = 1e-5
#: Low rank: eigenvalues within ``(1 / cutoff, cutoff)`` are left to the diagonal.
EIGENVALUE_CUTOFF = 2.0
#: Draws between two recomputations of a dense or low-rank estimate.
MATRIX_UPDATE_INTERVAL = 10
KINDS = ("diag", "dense", "low_rank")
#: What sets the diagonal in the main phase: the Fisher estimate, or the draws' variance.
MAIN_ESTIMATES = ("fisher", "variance")


# ---------------------------------------------------------------- schedule


class FisherSchedule(NamedTuple):
    """When the estimators switch and when the metric freezes.

    Attributes
    ----------
    num_warmup : int
    early_end : int
        First iteration of the main phase (windows of ``early_window`` before it).
    final_start : int
        First iteration of the final phase: metric frozen, step size only.
    switches : tuple of int
        Iterations after which the background estimate becomes the foreground
        one and a new, empty background estimate starts.
    """

    num_warmup: int
    early_end: int
    final_start: int
    switches: tuple


def fisher_schedule(
    num_warmup: int,
    *,
    early_fraction: float = 0.3,
    final_fraction: float = 0.15,
    early_window: int = 10,
    window: int = 80,
    growth: float = 1.5,
) -> FisherSchedule:
    """nutpie's warmup schedule as plain data.

    A window ends once the background estimate holds ``window`` draws (the
    starting point counts as the first one), unless the next window would
    not fit before the final phase: then the foreground estimate keeps
    growing until the metric freezes. In the main phase the window grows by
    ``growth`` after every switch and starts at least as long as what the
    background already holds.

    Parameters
    ----------
    num_warmup : int
    early_fraction, final_fraction : float
        Fractions of warmup for the early phase and the final (frozen metric) phase.
    early_window, window : int
        Window lengths in the early phase and the first main-phase window.
    growth : float
        Growth factor of main-phase windows (>= 1).

    Returns
    -------
    FisherSchedule

    Examples
    --------
    >>> fisher_schedule(300).switches[-3:]
    (68, 78, 88)
    """
    if growth < 1.0:
        raise ValueError(f"growth must be >= 1, got {growth}")
    early_end = int(early_fraction * num_warmup)
    final_start = num_warmup - int(final_fraction * num_warmup)
    switches = []
    background = 1
    for i in range(final_start):
        background += 1
        early = i < early_end
        if i == early_end:
            window = max(window, background)
        size = early_window if early else window
        next_size = early_window if early else max(window + 1, round(window * growth))
        if background >= size and i + next_size <= final_start:
            switches.append(i)
            background = 0
            if not early:
                window = next_size
    return FisherSchedule(num_warmup, early_end, final_start, tuple(switches))


# ---------------------------------------------------------------- estimates


def initial_variance(grad: onp.ndarray) -> onp.ndarray:
    """nutpie's first inverse metric: ``1 / |grad|``, clipped."""
    with onp.errstate(divide="ignore"):
        return 1.0 / onp.clip(onp.abs(grad), *VARIANCE_LIMITS)


def clipped_variance(variance: onp.ndarray, previous: onp.ndarray) -> onp.ndarray:
    """The draws' variance as an inverse metric: clipped to :data:`VARIANCE_LIMITS`,
    ``previous`` where it is not finite or is 0 (a coordinate that has not moved).

    Parameters
    ----------
    variance, previous : ndarray, shape (dim,)
    """
    valid = onp.isfinite(variance) & (variance > 0)
    return onp.where(valid, onp.clip(variance, *VARIANCE_LIMITS), previous)


def spd_geometric_mean(a: onp.ndarray, b: onp.ndarray) -> onp.ndarray:
    """The symmetric positive-definite ``C`` with ``C b C = a``.

    ``C = b^-1/2 (b^1/2 a b^1/2)^1/2 b^-1/2``: with ``a = Cov(x)`` and
    ``b = Cov(grad)`` it is the covariance of a Gaussian whose draws and
    gradients have exactly those covariances.
    """
    w, v = onp.linalg.eigh(b)
    root = onp.sqrt(w)
    b_half = (v * root) @ v.T
    b_inv_half = (v / root) @ v.T
    w2, v2 = onp.linalg.eigh(b_half @ a @ b_half)
    middle = (v2 * onp.sqrt(onp.clip(w2, 0.0, None))) @ v2.T
    c = b_inv_half @ middle @ b_inv_half
    return 0.5 * (c + c.T)


def _rescaled(draws, grads, variance):
    """Centred draws and gradients in the coordinates where ``variance`` is the identity."""
    scale = onp.sqrt(variance)
    return scale, (draws - draws.mean(axis=0)) / scale, (grads - grads.mean(axis=0)) * scale


def _regularised_geometric_mean(xs, gs):
    eye = onp.eye(xs.shape[1])
    return spd_geometric_mean(xs.T @ xs / GAMMA + eye, gs.T @ gs / GAMMA + eye)


def fisher_dense(draws: onp.ndarray, grads: onp.ndarray, variance: onp.ndarray) -> onp.ndarray:
    """Affine-invariant dense inverse metric (see the module docstring).

    Parameters
    ----------
    draws, grads : ndarray, shape (n, dim)
    variance : ndarray, shape (dim,)
        The diagonal estimate, whose coordinates the estimate is made in.
    """
    scale, xs, gs = _rescaled(draws, grads, variance)
    inner = _regularised_geometric_mean(xs, gs)
    return scale[:, None] * inner * scale[None, :]


def fisher_low_rank(
    draws: onp.ndarray, grads: onp.ndarray, variance: onp.ndarray
) -> LowRankInverseMetric:
    """nutpie's low-rank inverse metric: the diagonal estimate corrected along
    the eigenvectors of the draw/gradient geometric mean whose eigenvalues lie
    outside ``(1/2, 2)``, found within the span of the rescaled draws and
    gradients (``O(n^2 dim)``, never a ``dim x dim`` matrix)."""
    scale, xs, gs = _rescaled(draws, grads, variance)
    basis, singular, _ = onp.linalg.svd(onp.vstack([xs, gs]).T, full_matrices=False)
    rank = int(onp.sum(singular > singular[0] * max(basis.shape) * onp.finfo(float).eps)) \
        if singular.size and singular[0] > 0 else 0
    basis = basis[:, :rank]
    values, vectors = onp.linalg.eigh(_regularised_geometric_mean(xs @ basis, gs @ basis))
    keep = (values > EIGENVALUE_CUTOFF) | (values < 1.0 / EIGENVALUE_CUTOFF)
    return LowRankInverseMetric(scale, basis @ vectors[:, keep], values[keep])


# ---------------------------------------------------------------- adaptation


class FisherAdaptationState(NamedTuple):
    """Everything the Fisher warmup carries between iterations.

    The arrays are shared by successive states and updated in place.
    ``moments[e]`` and ``counts[e]`` are estimator ``e``'s running moments
    (:mod:`~probad.infer.fisher_moments`), ``e = foreground`` the foreground
    one and the other the background one. Dense and low-rank estimates need
    the draws themselves: ``draws`` and ``grads`` then hold every kept draw in
    rows ``[0, count)``, the estimator's ``counts[e]`` last of them its own;
    for a diagonal metric they are None.
    """

    iteration: int
    step_size: float
    metric: Metric
    dual_averaging: DualAveragingState
    variance: onp.ndarray
    moments: onp.ndarray
    counts: onp.ndarray
    foreground: int
    draws: onp.ndarray | None
    grads: onp.ndarray | None
    count: int
    metric_adapted: bool
    last_position: onp.ndarray


class FisherAdaptation(NamedTuple):
    """``init`` / ``update`` / ``final`` as :func:`~probad.infer.adaptation.window_adaptation` has."""

    init: Callable[..., FisherAdaptationState]
    update: Callable[..., FisherAdaptationState]
    final: Callable[[FisherAdaptationState], tuple]
    schedule: FisherSchedule


def _as_inverse_metric(kind, variance, draws=None, grads=None):
    if kind == "diag":
        return variance
    if kind == "dense":
        if draws is None:
            return onp.diag(variance)
        return fisher_dense(draws, grads, variance)
    if draws is None:
        dim = variance.shape[0]
        return LowRankInverseMetric(onp.sqrt(variance), onp.zeros((dim, 0)), onp.zeros(0))
    return fisher_low_rank(draws, grads, variance)


def fisher_adaptation(
    num_warmup: int, *, target_accept: float = 0.8, kind: str = "diag",
    main_estimate: str = "fisher",
) -> FisherAdaptation:
    """nutpie's warmup for HMC/NUTS as pure ``init`` / ``update`` / ``final`` functions.

    Parameters
    ----------
    num_warmup : int
    target_accept : float
        Target of dual averaging.
    kind : {"diag", "dense", "low_rank"}
        Form of the inverse metric (module docstring).
    main_estimate : {"fisher", "variance"}
        The diagonal from the main phase on: the Fisher estimate (nutpie's), or
        the draws' variance (module docstring; ``kind="diag"`` only).

    Returns
    -------
    FisherAdaptation
        * ``init(rng, state, potential_fn, step_size=1.0, inverse_metric=None)``:
          the inverse metric ``1/|grad|`` at ``state`` (or ``inverse_metric``
          when given, for a warm start), a step size search from
          ``step_size``, dual averaging started there;
        * ``update(rng, adapt_state, state, accept_stat, potential_fn)`` after
          each warmup transition;
        * ``final(adapt_state) -> (step_size, inverse_metric)`` for sampling;
        * ``schedule``: the :class:`FisherSchedule`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if main_estimate not in MAIN_ESTIMATES:
        raise ValueError(f"main_estimate must be one of {MAIN_ESTIMATES}, got {main_estimate!r}")
    if main_estimate == "variance" and kind != "diag":
        raise ValueError(f'main_estimate="variance" is a diagonal metric; got kind={kind!r}')
    from probad.infer import fisher_moments  # numba loads only for Fisher warmups

    schedule = fisher_schedule(num_warmup)
    switches = frozenset(schedule.switches)
    interval = 1 if kind == "diag" else MATRIX_UPDATE_INTERVAL

    def init(rng, state: HMCState, potential_fn, step_size=1.0, inverse_metric=None):
        dim = state.position.shape[0]
        variance = initial_variance(state.potential_grad)
        metric = make_metric(
            _as_inverse_metric(kind, variance) if inverse_metric is None else inverse_metric
        )
        step_size = find_reasonable_step_size(rng, state, potential_fn, metric, step_size)
        moments = onp.zeros((2, fisher_moments.ROWS, dim))
        counts = onp.zeros(2, dtype=onp.int64)
        draws = grads = None
        if kind != "diag":
            draws = onp.empty((num_warmup + 1, dim))
            grads = onp.empty((num_warmup + 1, dim))
        # The starting point seeds both estimators (NaN: no previous draw to equal it).
        count = _add(moments, counts, draws, grads, 0, state, onp.full(dim, onp.nan))
        return FisherAdaptationState(
            0, step_size, metric, dual_averaging_init(step_size), variance, moments, counts, 0,
            draws, grads, count, False, state.position)

    def _add(moments, counts, draws, grads, count, state, last_position):
        """Add the draw ``state`` to both estimators (and the buffers, if any) unless it
        equals the last one; returns the buffers' new row count."""
        if fisher_moments.add_draw(moments, counts, state.position, state.potential_grad,
                                   last_position) and draws is not None:
            draws[count], grads[count] = state.position, state.potential_grad
            count += 1
        return count

    def update(rng, adapt_state, state, accept_stat, potential_fn):
        (iteration, step_size, metric, da_state, variance, moments, counts, foreground, draws,
         grads, count, metric_adapted, last_position) = adapt_state
        changed = False
        if iteration < schedule.final_start:
            # A draw equal to its predecessor (the trajectory chose its start) says
            # nothing new about the scales and would shrink both variances.
            count = _add(moments, counts, draws, grads, count, state, last_position)
            switched = iteration in switches
            if switched:  # the background estimate takes over; a new one starts empty
                foreground = 1 - foreground
                moments[1 - foreground] = 0.0
                counts[1 - foreground] = 0
            held = counts[foreground]
            if held >= 3 and (switched or iteration % interval == 0):
                if main_estimate == "variance" and iteration >= schedule.early_end:
                    variance = clipped_variance(
                        moments[foreground, fisher_moments.M2_X] / held, variance)
                else:
                    variance = fisher_moments.diagonal_estimate(
                        moments[foreground, fisher_moments.M2_X],
                        moments[foreground, fisher_moments.M2_GRAD], variance, *VARIANCE_LIMITS)
                if kind == "diag":  # finite and positive by construction
                    metric, changed = diagonal_metric(variance), True
                else:
                    rows = slice(count - held, count)
                    metric, changed = _try_metric(metric, kind, variance, draws[rows], grads[rows])
        if changed and not metric_adapted:
            # nutpie searches once more after the first estimate replaces 1/|grad|,
            # then never restarts dual averaging.
            metric_adapted = True
            step_size = find_reasonable_step_size(rng, state, potential_fn, metric, step_size)
            da_state = dual_averaging_init(step_size)
        else:
            da_state = dual_averaging_update(da_state, accept_stat, target_accept)
            step_size = math.exp(da_state.log_step_size)
        return FisherAdaptationState(
            iteration + 1, step_size, metric, da_state, variance, moments, counts, foreground,
            draws, grads, count, metric_adapted, state.position)

    def final(adapt_state):
        da_state = adapt_state.dual_averaging
        if da_state.count == 0:
            return adapt_state.step_size, adapt_state.metric.inverse_metric
        return math.exp(da_state.log_step_size_avg), adapt_state.metric.inverse_metric

    return FisherAdaptation(init, update, final, schedule)


def _try_metric(metric, kind, variance, draws, grads):
    """The new metric, or the old one if the estimate is not usable (singular, not finite)."""
    try:
        with onp.errstate(all="ignore"):
            return make_metric(_as_inverse_metric(kind, variance, draws, grads)), True
    except (ValueError, onp.linalg.LinAlgError):
        return metric, False
