"""Run one Markov chain: Stan's warmup, then sampling, with draws and statistics.

This is the loop that glues :mod:`probad.infer.kernels` to
:mod:`probad.infer.adaptation`. It still knows nothing about models: it runs
on ``potential_fn(q) -> (U, dU/dq)`` and returns unconstrained draws. Running
several chains, constraining draws and building ``InferenceData`` happen above.
"""

import functools
import math
from typing import Callable, NamedTuple

import numpy as onp

from probad.infer import kernels
from probad.infer.adaptation import step_size_adaptation, window_adaptation
from probad.infer.fisher_adaptation import fisher_adaptation
from probad.infer.progress import TextBar, progress_bar

#: Per-draw statistics, named as ArviZ ``sample_stats`` expects.
STAT_DTYPES = {
    "lp": onp.float64,
    "acceptance_rate": onp.float64,
    "step_size": onp.float64,
    "tree_depth": onp.int64,
    "n_steps": onp.int64,
    "diverging": onp.bool_,
    "energy": onp.float64,
    "energy_error": onp.float64,
    "max_energy_error": onp.float64,
}


class ChainResult(NamedTuple):
    """Output of :func:`run_chain`.

    Attributes
    ----------
    positions : ndarray, shape (draws, dim)
        Unconstrained draws kept after thinning.
    stats : dict of str to ndarray
        Per-draw statistics, keys as in :data:`STAT_DTYPES`; ``lp`` is ``-U``.
    warmup_positions : ndarray or None
        Every warmup iteration's draw (not thinned), if ``warmup_draws=True``.
    warmup_stats : dict or None
        Warmup statistics, if ``warmup_draws=True``.
    step_size : float
        Step size used for sampling (the adapted one unless ``tune=0``).
    inverse_metric : ndarray
        Inverse metric used for sampling, 1-D (diagonal) or 2-D (dense).
    num_grad_evals : int
        Every call of ``potential_fn``, warmup and step size searches included.
    partial : bool
        True if a ``KeyboardInterrupt`` stopped the chain early; the arrays then
        hold the draws completed so far and, if warmup was not finished,
        ``step_size`` and ``inverse_metric`` are the adaptation's current values.
    last_state : kernels.HMCState
        Where the chain stopped: its last position with the potential energy
        and gradient there. With ``rng_state`` it is all a run needs to
        continue the chain as if it had never stopped.
    rng_state : dict
        ``bit_generator.state`` of the chain's generator when it stopped.
    rejections : tuple of (str, int, str)
        Evaluations during this chain where the density could not be
        evaluated and the proposal got infinite energy: the kind (a failed
        ODE solve, a failed Cholesky factor, an invalid parameter or NaN),
        how many, and what went wrong the first time; filled in by the
        driver from the potential's ``rejections`` and ``rejection_examples``.
    discrete, warmup_discrete : ndarray or None
        With ``gibbs``: the discrete values of each kept (and warmup) draw,
        shape ``(draws, discrete dim)``.
    gibbs_end : tuple or None
        With ``gibbs``: ``(discrete values, random walks' reaches)`` where
        the chain stopped, what ``gibbs_start`` continues from.
    """

    positions: onp.ndarray
    stats: dict
    warmup_positions: onp.ndarray | None
    warmup_stats: dict | None
    step_size: float
    inverse_metric: onp.ndarray
    num_grad_evals: int
    partial: bool
    last_state: kernels.HMCState
    rng_state: dict
    rejections: tuple = ()
    discrete: onp.ndarray | None = None
    warmup_discrete: onp.ndarray | None = None
    gibbs_end: tuple | None = None


class ChainProgress(NamedTuple):
    """What a progress callback receives after every iteration."""

    phase: str  # "warmup" or "sampling"
    iteration: int  # iterations completed, warmup included
    total: int
    step_size: float
    divergences: int  # divergent transitions so far in this phase


class _Trace:
    """Preallocated draws and statistics for one phase, filled as the chain runs."""

    def __init__(self, capacity, dim, discrete_dim=None):
        self.positions = onp.empty((capacity, dim))
        self.discrete = None if discrete_dim is None else onp.empty((capacity, discrete_dim))
        self.stats = {name: onp.empty(capacity, dtype) for name, dtype in STAT_DTYPES.items()}
        self.size = 0

    def record(self, state, info, step_size, discrete=None):
        i = self.size
        self.positions[i] = state.position
        if self.discrete is not None:
            self.discrete[i] = discrete
        stats = self.stats
        stats["lp"][i] = -state.potential_energy
        stats["acceptance_rate"][i] = info.acceptance_rate
        stats["step_size"][i] = step_size
        stats["tree_depth"][i] = info.tree_depth
        stats["n_steps"][i] = info.n_steps
        stats["diverging"][i] = info.diverging
        stats["energy"][i] = info.energy
        stats["energy_error"][i] = info.energy_error
        stats["max_energy_error"][i] = info.max_energy_error
        self.size = i + 1

    def arrays(self):
        """Draws and statistics recorded so far (trimmed if the chain was interrupted)."""
        n = self.size
        return self.positions[:n], {name: values[:n] for name, values in self.stats.items()}

    def discrete_arrays(self):
        """The discrete values recorded so far, or None without Gibbs steps."""
        return None if self.discrete is None else self.discrete[:self.size]


def _progress_reporter(progress, total) -> tuple[Callable[[ChainProgress], None] | None, Callable]:
    """Turn the ``progress`` argument into ``(report, close)``."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress) and not isinstance(progress, TextBar):
        return progress, lambda: None
    owned = not isinstance(progress, TextBar)
    bar = progress_bar(total=total, desc="chain", unit="draw", dynamic_ncols=True) if owned else progress

    return functools.partial(show_progress, bar), bar.close if owned else lambda: None


def show_progress(bar, event: ChainProgress) -> None:
    """Bring a tqdm bar up to ``event``: the phase, step size and divergences."""
    bar.set_postfix_str(
        f"{event.phase}, step size {event.step_size:.3g}, {event.divergences} divergences",
        refresh=False,
    )
    bar.update(event.iteration - bar.n)


ADAPT_SCHEMES = ("stan", "fisher", "fisher-lowrank", "fisher-variance")


def check_adapt(adapt: str, dense_mass: bool) -> None:
    """Refuse an unknown warmup scheme, or a dense metric with a low-rank or diagonal-only one."""
    if adapt not in ADAPT_SCHEMES:
        raise ValueError(f"adapt must be one of {ADAPT_SCHEMES}, got {adapt!r}")
    own_metric = {"fisher-lowrank": "low-rank", "fisher-variance": "diagonal"}
    if adapt in own_metric and dense_mass:
        raise ValueError(f'adapt="{adapt}" estimates its own {own_metric[adapt]} metric: '
                         "drop dense_mass=True, or use adapt=\"fisher\" for a dense one")


def run_chain(
    potential_fn: kernels.PotentialFn,
    init_position,
    *,
    seed_or_rng=None,
    draws: int = 1000,
    tune: int = 1000,
    algorithm: str = "nuts",
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    adapt: str = "stan",
    num_steps: int | None = None,
    path_length: float | None = None,
    jitter: float = 0.0,
    thin: int = 1,
    warmup_draws: bool = False,
    progress=False,
    step_size: float = 1.0,
    inverse_metric=None,
    should_stop: Callable[[], bool] | None = None,
    native_potential: Callable[[], object | None] | None = None,
    gibbs: Callable[[onp.random.Generator, onp.ndarray], onp.ndarray] | None = None,
    gibbs_start: tuple | None = None,
) -> ChainResult:
    """Warm up and sample one chain of NUTS or static HMC.

    Parameters
    ----------
    potential_fn : callable
        ``q -> (U, dU/dq)`` with ``U`` the negative log density on a flat
        float64 vector.
    init_position : array_like or kernels.HMCState
        Starting point; the potential must be finite there. A state (a
        previous run's ``last_state``) is used as it is, with no gradient
        evaluated: the chain goes on bit for bit where that run stopped.
    seed_or_rng : int, numpy.random.SeedSequence, numpy.random.Generator or None
        Source of randomness. The same seed gives bit-identical output; a
        generator is drawn from (and advanced) in place.
    draws : int
        Number of draws kept; sampling runs ``draws * thin`` iterations.
    tune : int
        Warmup iterations. With ``tune=0`` nothing is adapted: ``step_size``
        and ``inverse_metric`` are used as given.
    algorithm : {"nuts", "hmc"}
    target_accept : float
        Target of step size adaptation.
    max_tree_depth : int
        NUTS only.
    dense_mass : bool
        Adapt a dense inverse metric instead of a diagonal one.
    adapt : {"stan", "fisher", "fisher-lowrank", "fisher-variance", "step_size"}
        Warmup scheme: Stan's windowed adaptation
        (:mod:`~probad.infer.adaptation`), or nutpie's metric from draws and
        gradients, diagonal (dense with ``dense_mass``) or low-rank
        (:mod:`~probad.infer.fisher_adaptation`), or (a warm start's) the
        step size alone, ``inverse_metric`` kept.
    num_steps, path_length : int or float, optional
        Static HMC only, at most one of them: a fixed number of leapfrog steps,
        or an integration time ``T`` giving ``max(1, int(T / step_size))``
        steps as in Stan. Default ``path_length=2*pi`` (Stan's ``int_time``).
    jitter : float
        Static HMC only: uniform step size jitter, as a fraction of the step.
    thin : int
        Keep every ``thin``-th sampling iteration (the last of each group of ``thin``).
    warmup_draws : bool
        Also return the draws and statistics of every warmup iteration.
    progress : bool, callable or tqdm bar
        ``False``: silent. ``True``: a tqdm bar showing the phase, step
        size and divergences. A tqdm bar: advanced (not closed) by this chain.
        A callable: called with a :class:`ChainProgress` after every iteration.
    step_size : float
        Initial step size (the search starts there) or, with ``tune=0``, the
        step size.
    inverse_metric : array_like, optional
        Initial (or, with ``tune=0``, fixed) inverse metric; default identity.
    should_stop : callable, optional
        Asked after every iteration; ``True`` stops the chain as Ctrl-C would.
        A chain in a worker process never sees the Ctrl-C pressed in the
        main one, so the driver tells it to stop through this.
    native_potential : callable, optional
        Returns the native form of ``potential_fn`` (``pot.native``: ``fn``
        and ``prog``, see :class:`probad.infer.native_nuts.NativeKernel`) or
        None. When it gives one, every transition runs in compiled code, with
        the draws the Python kernel would make; a transition the native
        potential hands back (a failed guard of its tape) runs in Python on
        ``potential_fn``, and the native form is asked for again afterwards.
        Initialisation and step size searches always use ``potential_fn``.
    gibbs : GibbsSteps, optional
        ``gibbs(rng, q, tune) -> values``: one sweep of Gibbs steps over
        discrete sites that ``potential_fn`` reads
        (:class:`probad.infer.gibbs.GibbsSteps`), run after every transition
        (``tune`` in warmup); ``U`` and its gradient are then evaluated
        again at the new values, and the values are recorded with each draw.
        ``gibbs.restart()`` is called first.
    gibbs_start : tuple, optional
        ``(discrete values, reaches, exact)``: where an earlier chain's Gibbs
        steps stopped (its ``gibbs_end``). The chain starts from those values
        and reaches; with ``exact`` (an extension, which goes on with the
        earlier chain's generator) it makes no first sweep, so it continues
        that chain's stream.

    Returns
    -------
    ChainResult
        A ``KeyboardInterrupt`` (Ctrl-C) or ``should_stop`` stops the chain
        cleanly and returns what was drawn so far, with ``partial=True``.
    """
    # pb.hmc checks the options users give (one place, one message); here
    # they only guard against a caller inside probad passing nonsense.
    assert algorithm in ("nuts", "hmc") and draws >= 0 and tune >= 0 and thin >= 1 \
        and 0.0 < target_accept < 1.0 and 0.0 <= jitter < 1.0, "invalid run_chain options"
    assert algorithm == "hmc" or (num_steps is None and path_length is None and not jitter), \
        "num_steps, path_length and jitter apply to algorithm='hmc' only"
    assert num_steps is None or path_length is None, "num_steps or path_length, not both"
    if algorithm == "hmc" and num_steps is None and path_length is None:
        path_length = 2.0 * math.pi
    if adapt != "step_size":  # the warm starts' scheme, which pb.hmc chooses itself
        check_adapt(adapt, dense_mass)

    rng = onp.random.default_rng(seed_or_rng)
    num_grad_evals = 0

    def counted_potential(q):
        nonlocal num_grad_evals
        num_grad_evals += 1
        return potential_fn(q)

    discrete = None
    gibbs_tuning = tune > 0  # warmup sweeps tune the Gibbs random walks' reach
    if gibbs is not None and gibbs_start is not None:
        values, reaches, exact = gibbs_start
        discrete = gibbs.resume(values, reaches)
        start = onp.asarray(getattr(init_position, "position", init_position), dtype=onp.float64)
        if exact:
            # Not counted, and not for its value: a compiled (native) potential
            # reads the discrete values of its last evaluation, which may have
            # been another chain's (chains in one process share the potential).
            potential_fn(start)
        else:
            discrete = gibbs(rng, start, gibbs_tuning)
    elif gibbs is not None:
        gibbs.restart()  # from the first reach, whichever chains ran before in this process
        # A first sweep, so that the discrete values are drawn given the start
        # (not left at the prior draws initialisation begins from).
        discrete = gibbs(rng, onp.asarray(init_position, dtype=onp.float64), gibbs_tuning)
    state = init_position if isinstance(init_position, kernels.HMCState) else \
        kernels.init(init_position, counted_potential)
    dim = state.position.shape[0]
    native = None
    if native_potential is not None:
        from probad.infer.native_nuts import NativeKernel  # numba loads only when it is used

        native = NativeKernel(native_potential, rng, dim)

    if algorithm == "nuts":
        def python_transition(state, step_size, metric):
            return kernels.nuts_step(rng, state, counted_potential, step_size, metric, max_tree_depth)

        def native_transition(state, step_size, metric):
            return native.nuts_step(state, step_size, metric, max_tree_depth)
    else:
        def static_steps(step_size):
            return num_steps if num_steps is not None else max(1, int(path_length / step_size))

        def python_transition(state, step_size, metric):
            steps = static_steps(step_size)
            return kernels.hmc_step(rng, state, counted_potential, step_size, metric, steps, jitter)

        def native_transition(state, step_size, metric):
            return native.hmc_step(state, step_size, metric, static_steps(step_size), jitter)

    def continuous_transition(state, step_size, metric):
        if native is not None:
            result = native_transition(state, step_size, metric)
            if result is not None:
                return result
        return python_transition(state, step_size, metric)

    if gibbs is None:
        transition = continuous_transition
    else:
        def transition(state, step_size, metric):
            nonlocal discrete
            state, info = continuous_transition(state, step_size, metric)
            discrete = gibbs(rng, state.position, gibbs_tuning)
            if native is not None:
                native.refresh()  # the compiled potential's discrete input changed
            # The transition's statistics stay its own; the state's energy and
            # gradient are those of the new discrete values.
            return kernels.init(state.position, counted_potential), info

    # The Fisher warmup starts from 1/|grad| unless it is given a metric to start from.
    initial_inverse_metric = inverse_metric
    if inverse_metric is None:
        inverse_metric = onp.eye(dim) if dense_mass else onp.ones(dim)
    metric = kernels.make_metric(inverse_metric)

    discrete_dim = None if discrete is None else len(discrete)
    warmup_trace = _Trace(tune, dim, discrete_dim) if warmup_draws else None
    trace = _Trace(draws, dim, discrete_dim)
    total = tune + draws * thin
    report, close_progress = _progress_reporter(progress, total)
    divergences = 0
    partial = False
    try:
        if tune > 0:
            if adapt == "step_size":
                adaptation = step_size_adaptation(target_accept=target_accept)
            elif adapt == "stan":
                adaptation = window_adaptation(tune, target_accept=target_accept, dense_mass=dense_mass)
            else:
                kind = "low_rank" if adapt == "fisher-lowrank" else "dense" if dense_mass else "diag"
                adaptation = fisher_adaptation(
                    tune, target_accept=target_accept, kind=kind,
                    main_estimate="variance" if adapt == "fisher-variance" else "fisher")
                inverse_metric = initial_inverse_metric
            adapt_state = adaptation.init(rng, state, counted_potential, step_size, inverse_metric)
            step_size, metric = adapt_state.step_size, adapt_state.metric
        for iteration in range(total):
            warmup = gibbs_tuning = iteration < tune
            state, info = transition(state, step_size, metric)
            if iteration == tune:
                divergences = 0  # the bar reports sampling's divergences, as the summary does
            divergences += info.diverging
            if warmup:
                if warmup_trace is not None:
                    warmup_trace.record(state, info, step_size, discrete)
                adapt_state = adaptation.update(
                    rng, adapt_state, state, info.acceptance_rate, counted_potential
                )
                if iteration == tune - 1:
                    step_size, final_inverse_metric = adaptation.final(adapt_state)
                    metric = kernels.make_metric(final_inverse_metric)
                else:
                    step_size, metric = adapt_state.step_size, adapt_state.metric
            elif (iteration - tune + 1) % thin == 0:
                trace.record(state, info, step_size, discrete)
            if report is not None:
                report(ChainProgress(
                    "warmup" if warmup else "sampling", iteration + 1, total, step_size, divergences
                ))
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        partial = True
    finally:
        close_progress()

    positions, stats = trace.arrays()
    warmup_positions, warmup_stats = warmup_trace.arrays() if warmup_trace is not None else (None, None)
    return ChainResult(
        positions=positions,
        stats=stats,
        warmup_positions=warmup_positions,
        warmup_stats=warmup_stats,
        step_size=step_size,
        inverse_metric=metric.inverse_metric,
        num_grad_evals=num_grad_evals + (native.num_grad_evals if native is not None else 0),
        partial=partial,
        last_state=state,
        rng_state=rng.bit_generator.state,
        discrete=trace.discrete_arrays(),
        warmup_discrete=warmup_trace.discrete_arrays() if warmup_trace is not None else None,
        gibbs_end=None if gibbs is None else (discrete.copy(), gibbs.reaches()),
    )
