"""Stan's warmup: dual-averaging step size and windowed metric adaptation.

Adaptation lives apart from the kernels (BlackJAX style): the functions here
only read a chain state and an acceptance statistic, and return the step size
and metric the next transition should use. The pieces, each as in Stan:

* dual averaging of ``log(step_size)`` (Hoffman & Gelman 2014, Stan's
  ``stepsize_adaptation``);
* the windowed schedule (``windowed_adaptation``): a fast initial buffer, slow
  windows of doubling size during which the metric is estimated, a fast
  terminal buffer;
* Welford (co)variance estimates with Stan's shrinkage towards ``1e-3 * I``;
* ``init_stepsize``: a crude search for a step size whose one-step acceptance
  is near 0.8, run at the start and after every metric update.
"""

import math
from typing import Callable, NamedTuple

import numpy as onp

from probad.infer.kernels import (
    HMCState,
    IntegratorState,
    Metric,
    PotentialFn,
    hamiltonian,
    leapfrog,
    make_metric,
    quiet_floating_point,
)

# ---------------------------------------------------------------- dual averaging


class DualAveragingState(NamedTuple):
    """State of Nesterov dual averaging on ``x = log(step_size)``.

    Attributes
    ----------
    log_step_size : float
        ``x_t``, the exploratory iterate used for the next transition.
    log_step_size_avg : float
        ``x_bar_t``, the weighted average warmup ends with.
    grad_avg : float
        ``s_bar_t``, running average of ``target_accept - accept_stat``.
    count : int
        Updates since the last restart.
    mu : float
        Shrinkage point, ``log(10 * initial_step_size)``.
    """

    log_step_size: float
    log_step_size_avg: float
    grad_avg: float
    count: int
    mu: float


def dual_averaging_init(step_size: float) -> DualAveragingState:
    """Start (or restart) dual averaging from ``step_size``.

    ``mu = log(10 * step_size)`` biases the search towards larger steps, which
    are cheaper; a too-large step is quickly corrected by low acceptance.
    """
    return DualAveragingState(math.log(step_size), 0.0, 0.0, 0, math.log(10.0 * step_size))


def dual_averaging_update(
    state: DualAveragingState,
    accept_stat: float,
    target_accept: float = 0.8,
    *,
    gamma: float = 0.05,
    t0: float = 10.0,
    kappa: float = 0.75,
) -> DualAveragingState:
    """One dual-averaging update with Stan's constants (Stan's ``learn_stepsize``).

    Parameters
    ----------
    state : DualAveragingState
    accept_stat : float
        Acceptance statistic of the last transition (clipped at 1).
    target_accept : float, optional
        The acceptance statistic to aim for (Stan's ``delta``).
    gamma, t0, kappa : float, optional
        Regularisation scale, iteration offset and averaging decay.

    Returns
    -------
    DualAveragingState
        ``exp(log_step_size)`` is the next step size, ``exp(log_step_size_avg)``
        the final one.
    """
    count = state.count + 1
    eta = 1.0 / (count + t0)
    grad_avg = (1.0 - eta) * state.grad_avg + eta * (target_accept - min(accept_stat, 1.0))
    log_step_size = state.mu - grad_avg * math.sqrt(count) / gamma
    weight = count**-kappa
    log_step_size_avg = (1.0 - weight) * state.log_step_size_avg + weight * log_step_size
    return DualAveragingState(log_step_size, log_step_size_avg, grad_avg, count, state.mu)


#: Dual averaging's iteration offset when it starts from an already adapted
#: step size (a warm start). With Stan's ``t0 = 10`` the first updates move
#: ``log(step_size)`` by up to ``(target - accept) / (gamma (1 + t0))``, 1.45 per
#: unit of acceptance error; in a short warmup these early swings keep much of
#: the average's weight, and as acceptance saturates at 1 for small steps but
#: falls fast for large ones they bias it low. Measured on a 20-dimensional
#: Gaussian, 50 iterations from the step of mean acceptance 0.8 (30 seeds):
#: t0 = 10 ends at 0.82x that step, 50 at 0.94x, 100 at 0.97x, 200 at 0.98x;
#: from 0.5x or 2x that step, t0 = 100 still ends at 0.97x and 0.95x.
WARM_START_T0 = 100.0


# ---------------------------------------------------------------- schedule


def window_ends(
    num_warmup: int, init_buffer: int = 75, base_window: int = 25, term_buffer: int = 50
) -> list[int]:
    """Last iteration (0-based) of each warmup window, as Stan's ``windowed_adaptation``.

    The list reads ``[end of initial fast buffer, end of each slow window...,
    end of terminal fast buffer]``; the metric is re-estimated after each slow
    window, i.e. at ``window_ends(...)[1:-1]``. Slow windows double in size, and
    the last one is stretched to the end of the slow phase rather than leaving
    a window less than twice the size of its predecessor.

    Stan's fallbacks apply: with ``num_warmup < 20`` there are no slow windows
    (only the step size is adapted, the result is ``[num_warmup - 1]``); when the
    buffers and the first window do not fit, they become 15% / 75% / 10% of
    ``num_warmup``.

    Parameters
    ----------
    num_warmup : int
    init_buffer, base_window, term_buffer : int, optional
        Initial fast buffer, first slow window and terminal fast buffer sizes.

    Returns
    -------
    list of int

    Examples
    --------
    >>> window_ends(1000)
    [74, 99, 149, 249, 449, 949, 999]
    """
    if num_warmup < 20:
        return [num_warmup - 1] if num_warmup > 0 else []
    if init_buffer + base_window + term_buffer > num_warmup:
        # Stan truncates these products to unsigned int.
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)

    slow_end = num_warmup - term_buffer - 1
    ends = [init_buffer - 1]
    window_size = base_window
    end = init_buffer + window_size - 1
    while True:
        ends.append(end)
        if end >= slow_end:
            break
        window_size *= 2
        end += window_size
        if end + 2 * window_size >= num_warmup - term_buffer:
            end = slow_end
    ends.append(num_warmup - 1)
    return ends


# ---------------------------------------------------------------- Welford


class WelfordState(NamedTuple):
    """Running mean and sum of squared deviations (matrix for a dense estimate)."""

    count: int
    mean: onp.ndarray
    m2: onp.ndarray


def welford_init(dim: int, dense: bool = False) -> WelfordState:
    """Empty estimator of a variance vector, or a covariance matrix if ``dense``."""
    return WelfordState(0, onp.zeros(dim), onp.zeros((dim, dim) if dense else dim))


def welford_update(state: WelfordState, x: onp.ndarray) -> WelfordState:
    """Add one sample; Welford's update stays accurate when the mean is far from 0."""
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    if state.m2.ndim == 2:
        m2 = state.m2 + onp.outer(x - mean, delta)
    else:
        m2 = state.m2 + (x - mean) * delta
    return WelfordState(count, mean, m2)


def welford_covariance(state: WelfordState) -> onp.ndarray:
    """Sample (co)variance shrunk towards ``1e-3 * I`` as Stan regularises its metric.

    A dense estimate is exactly symmetric (the average of the estimate and
    its transpose).

    Returns ``(n / (n + 5)) * cov + 1e-3 * (5 / (n + 5)) * I`` where ``cov`` uses
    ``n - 1`` degrees of freedom; the shrinkage keeps a short window's estimate
    well conditioned. Requires at least two samples.
    """
    n = state.count
    if n < 2:
        raise ValueError(f"a (co)variance needs at least 2 samples, got {n}")
    covariance = state.m2 / (n - 1.0)
    if covariance.ndim == 2:
        # Welford's update adds outer(x - new_mean, x - old_mean), symmetric
        # only in exact arithmetic: far from 0 its rounding leaves an asymmetry
        # (2.8e-14 in 66 dimensions) that make_metric rightly refuses.
        covariance = 0.5 * (covariance + covariance.T)
    shrinkage = 1e-3 * (5.0 / (n + 5.0))
    if covariance.ndim == 2:
        return (n / (n + 5.0)) * covariance + shrinkage * onp.eye(covariance.shape[0])
    return (n / (n + 5.0)) * covariance + shrinkage


# ---------------------------------------------------------------- initial step size

_LOG_ACCEPT_TARGET = math.log(0.8)


@quiet_floating_point
def find_reasonable_step_size(
    rng: onp.random.Generator,
    state: HMCState,
    potential_fn: PotentialFn,
    metric: Metric,
    step_size: float,
) -> float:
    """Double or halve ``step_size`` until one leapfrog step's acceptance crosses 0.8.

    Exactly Stan's ``base_hmc::init_stepsize``: a first trial from a fresh
    momentum fixes the direction; each further trial draws a new momentum and
    takes one step from ``state``; the search stops at the first step size
    whose ``H0 - H`` lies on the other side of ``log(0.8)``, and returns it.

    Parameters
    ----------
    rng : numpy.random.Generator
    state : HMCState
        The point the trial steps start from.
    potential_fn : callable
        ``q -> (U, dU/dq)``.
    metric : Metric
    step_size : float
        Where the search starts (Stan: 1, then the current step size after a
        metric update). 0, NaN or values above 1e7 are returned unchanged.

    Returns
    -------
    float

    Raises
    ------
    RuntimeError
        If the step size exceeds 1e7 (the posterior is likely improper) or
        underflows to 0 (the density is likely not continuous).
    """
    if step_size == 0 or step_size > 1e7 or math.isnan(step_size):
        return step_size

    def log_accept(step):
        momentum = metric.sample_momentum(rng)
        z = IntegratorState(state.position, momentum, state.potential_energy, state.potential_grad)
        energy0 = hamiltonian(z, metric)
        return energy0 - hamiltonian(leapfrog(z, step, metric, potential_fn), metric)

    direction = 1 if log_accept(step_size) > _LOG_ACCEPT_TARGET else -1
    while True:
        delta = log_accept(step_size)
        if direction == 1 and not delta > _LOG_ACCEPT_TARGET:
            return step_size
        if direction == -1 and not delta < _LOG_ACCEPT_TARGET:
            return step_size
        step_size = 2.0 * step_size if direction == 1 else 0.5 * step_size
        if step_size > 1e7:
            raise RuntimeError(
                "the step size search diverged (step size > 1e7): the posterior is "
                "probably improper; check the model's priors"
            )
        if step_size == 0:
            raise RuntimeError(
                "no acceptably small step size could be found: the log density is "
                "probably not continuous"
            )


# ---------------------------------------------------------------- window adaptation


class WindowAdaptationState(NamedTuple):
    """Everything warmup carries between iterations.

    Attributes
    ----------
    iteration : int
        Warmup iterations completed.
    step_size : float
        Step size for the next transition.
    metric : Metric
        Metric for the next transition (``metric.inverse_metric`` is ``M^{-1}``).
    dual_averaging : DualAveragingState
    welford : WelfordState
        Estimator for the current slow window.
    """

    iteration: int
    step_size: float
    metric: Metric
    dual_averaging: DualAveragingState
    welford: WelfordState


class WindowAdaptation(NamedTuple):
    """The ``init`` / ``update`` / ``final`` triple returned by :func:`window_adaptation`."""

    init: Callable[..., WindowAdaptationState]
    update: Callable[..., WindowAdaptationState]
    final: Callable[[WindowAdaptationState], tuple[float, onp.ndarray]]


def window_adaptation(
    num_warmup: int,
    *,
    target_accept: float = 0.8,
    dense_mass: bool = False,
    init_buffer: int = 75,
    base_window: int = 25,
    term_buffer: int = 50,
) -> WindowAdaptation:
    """Stan's warmup for HMC/NUTS as pure ``init`` / ``update`` / ``final`` functions.

    Parameters
    ----------
    num_warmup : int
        Number of warmup iterations; fixes the window schedule.
    target_accept : float, optional
        Target of dual averaging (Stan's ``delta``).
    dense_mass : bool, optional
        Estimate a dense inverse metric (covariance) instead of a diagonal one.
    init_buffer, base_window, term_buffer : int, optional
        Stan's window sizes (see :func:`window_ends`).

    Returns
    -------
    WindowAdaptation
        * ``init(rng, state, potential_fn, step_size=1.0, inverse_metric=None)``
          searches a reasonable step size from ``step_size`` under the given
          inverse metric (default: identity) and starts dual averaging there.
        * ``update(rng, adapt_state, state, accept_stat, potential_fn)`` is
          called after each warmup transition with the new chain state. It
          steps dual averaging and, during slow windows, feeds the position to
          the (co)variance estimate; when a slow window ends it installs the
          estimate as inverse metric, searches a new step size and restarts
          dual averaging with ``mu = log(10 * step_size)``.
        * ``final(adapt_state) -> (step_size, inverse_metric)`` for sampling:
          the averaged iterate ``exp(log_step_size_avg)``.
    """
    ends = window_ends(num_warmup, init_buffer, base_window, term_buffer)
    slow_window_ends = frozenset(ends[1:-1])
    first_slow = ends[0] + 1
    last_slow = ends[-2] if len(ends) > 2 else -1

    def init(rng, state, potential_fn, step_size=1.0, inverse_metric=None):
        dim = state.position.shape[0]
        if inverse_metric is None:
            inverse_metric = onp.eye(dim) if dense_mass else onp.ones(dim)
        metric = make_metric(inverse_metric)
        step_size = find_reasonable_step_size(rng, state, potential_fn, metric, step_size)
        return WindowAdaptationState(
            0, step_size, metric, dual_averaging_init(step_size), welford_init(dim, dense_mass)
        )

    def update(rng, adapt_state, state, accept_stat, potential_fn):
        iteration, _, metric, da_state, welford = adapt_state
        da_state = dual_averaging_update(da_state, accept_stat, target_accept)
        step_size = math.exp(da_state.log_step_size)
        if first_slow <= iteration <= last_slow:
            welford = welford_update(welford, state.position)
        if iteration in slow_window_ends:
            metric = make_metric(welford_covariance(welford))
            step_size = find_reasonable_step_size(rng, state, potential_fn, metric, step_size)
            da_state = dual_averaging_init(step_size)
            welford = welford_init(welford.mean.shape[0], dense_mass)
        return WindowAdaptationState(iteration + 1, step_size, metric, da_state, welford)

    return WindowAdaptation(init, update, _final)


def _final(adapt_state):
    """``(step_size, inverse_metric)`` for sampling: the averaged iterate of dual averaging."""
    da_state = adapt_state.dual_averaging
    if da_state.count == 0:
        # No update since the last (re)start: x_bar is unset (Stan would return exp(0) = 1).
        return adapt_state.step_size, adapt_state.metric.inverse_metric
    return math.exp(da_state.log_step_size_avg), adapt_state.metric.inverse_metric


def step_size_adaptation(
    *, target_accept: float = 0.8, t0: float = WARM_START_T0
) -> WindowAdaptation:
    """A warmup that adapts the step size alone and keeps the metric it is given.

    The warmup of a warm start (``pb.hmc(..., warm_start=idata)``): the
    earlier run's metric was estimated from its whole warmup, better than any
    short new warmup could. Its step size was adapted to this metric
    already, so there is no search, and dual averaging starts there and
    shrinks towards it (``mu = log(step_size)``, not the ``log(10 *
    step_size)`` that explores larger steps after a search): a short warmup
    then moves the step size only as far as the new acceptance asks.

    Parameters
    ----------
    target_accept : float
    t0 : float
        Dual averaging's iteration offset (:data:`WARM_START_T0`, not Stan's 10).

    Returns
    -------
    WindowAdaptation
        ``init``, ``update`` and ``final`` as :func:`window_adaptation`'s;
        ``init`` needs the ``inverse_metric``.
    """

    def init(rng, state, potential_fn, step_size, inverse_metric):
        da_state = dual_averaging_init(step_size)._replace(mu=math.log(step_size))
        return WindowAdaptationState(0, step_size, make_metric(inverse_metric), da_state, None)

    def update(rng, adapt_state, state, accept_stat, potential_fn):
        da_state = dual_averaging_update(adapt_state.dual_averaging, accept_stat, target_accept,
                                         t0=t0)
        return adapt_state._replace(iteration=adapt_state.iteration + 1,
                                    step_size=math.exp(da_state.log_step_size),
                                    dual_averaging=da_state)

    return WindowAdaptation(init, update, _final)
