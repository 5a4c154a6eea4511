"""``pb.hmc``: run NUTS/HMC chains on a model and return ``arviz.InferenceData``.

The driver's jobs are the ones the kernels should not know about: building the
potential, giving each chain its own reproducible random stream, running the
chains in this process, on a kept pool of worker processes (``cores``) or on
any ``concurrent.futures.Executor``, surviving Ctrl-C, failed chains and dead
workers, and packaging the results with diagnostics.
"""
from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import numbers
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import cloudpickle
import numpy as onp

from .adaptation import window_ends
from .chain import check_adapt, run_chain, show_progress
from .density import NoFiniteStartError
from .density import potential as make_potential
from .diagnostics import SamplingWarning, check_sampling
from .fisher_adaptation import fisher_schedule
from .gibbs import gibbs_steps, warn_of_gibbs_sites
from .initialization import init_to_uniform, init_to_value
from .kernels import LowRankInverseMetric
from .progress import progress_bar
from .results import check_coords, draws_to_inference_data
from .resume import ChainStart, append_draws, chain_state_attrs, option_attrs, read_starts, \
    recorded_options

__all__ = ["hmc", "extend"]


@dataclass
class _ChainJob:
    """Everything one chain needs, shippable to another process by cloudpickle."""

    model: Callable
    data: Mapping | None
    compile: bool
    chain: int
    seed: onp.random.SeedSequence | None  # None: the start carries the chain's generator
    init: Any
    options: dict = field(default_factory=dict)
    stop: "_StopFlag | None" = None
    kernel_backend: str = "auto"
    start: ChainStart | None = None  # a previous run's end (warm start or extension)
    # The driver's potential's native tapes (Potential.native_tapes): a worker
    # adopts them instead of tracing and lowering the model again.
    tapes: dict | None = None


class _StopFlag:
    """A file whose existence tells worker chains to stop, as Ctrl-C would.

    Ctrl-C reaches only the main process (a notebook's "interrupt kernel"
    and cluster workers never see it), so the driver raises this flag and
    each chain returns its draws. A file works for any executor on this
    machine and costs nothing to ship; chains look at it at most every
    ``interval`` seconds, so the check stays off the sampler's hot path.

    The file lives in a directory of its own that ``mkdtemp`` creates with
    mode 0700: another user's process can neither plant the flag (and stop
    every run) nor put a symlink where it is written. The same directory
    holds what a worker saves when its pool is torn down (see
    :func:`_run_pickled`).
    """

    def __init__(self, interval: float = 0.2):
        self.directory = tempfile.mkdtemp(prefix="probad-run-")
        self.path = os.path.join(self.directory, "stop")
        self.interval = interval
        self._next_check = 0.0

    def __call__(self) -> bool:
        if _terminated.is_set():
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.interval
        return os.path.exists(self.path)

    def raise_flag(self) -> None:
        _create_private_file(self.path)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def chain_file(self, chain: int, kind: str) -> str:
        """Where a worker leaves chain ``chain``'s pid (``kind="pid"``) or
        its draws when it was told to terminate (``kind="result"``)."""
        return os.path.join(self.directory, f"chain-{chain}.{kind}")

    @contextlib.contextmanager
    def raised_by_ctrl_c(self):
        """Raise the flag in the SIGINT handler itself, before the
        ``KeyboardInterrupt`` exists: Python drops an exception raised inside
        a finalizer, and a Ctrl-C that lands while the garbage collector runs
        one would otherwise never reach the workers."""
        previous = signal.getsignal(signal.SIGINT)
        # Handlers belong to the main thread; SIG_IGN or SIG_DFL mean whoever
        # set them wants no KeyboardInterrupt, so leave them be.
        if threading.current_thread() is not threading.main_thread() or not callable(previous):
            yield
            return

        def handler(signum, frame):
            self.raise_flag()
            previous(signum, frame)

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _create_private_file(path: str, content: bytes = b"") -> None:
    """Write a new file readable by this user only; never through a symlink
    (``O_NOFOLLOW``) and never over an existing file (``O_EXCL``)."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    with os.fdopen(handle, "wb") as out:
        out.write(content)


#: Set in a pool worker by SIGTERM, which ``ProcessPoolExecutor`` sends to the
#: healthy workers when another one dies: their chains stop and save their draws.
_terminated = threading.Event()


@contextlib.contextmanager
def _saved_on_termination():
    """In a worker process, turn SIGTERM into a stop request for this job."""
    if multiprocessing.parent_process() is None or \
            threading.current_thread() is not threading.main_thread():
        yield  # the main process, or a thread: the signal is not ours to take
        return
    _terminated.clear()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _terminated.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_job(job: _ChainJob, pot=None):
    """Run one chain; in a worker process the potential is built there, with
    the driver's recorded tapes."""
    if pot is None:
        pot = make_potential(job.model, job.data, compile=job.compile,
                             backend=_potential_backend(job.kernel_backend), gibbs=True)
        pot.adopt(job.tapes)
    init_seed, chain_seed = job.seed.spawn(2) if job.seed is not None else (None, None)
    if job.start is not None:
        q0 = job.start.state if job.start.state is not None else job.start.position
        rng = job.start.generator(chain_seed)
    else:
        q0 = pot.initial_point(seed=onp.random.default_rng(init_seed), strategy=job.init)
        rng = onp.random.default_rng(chain_seed)
    progress = job.options.pop("progress", False)
    bar = _progress_bar(job) if progress is True else None
    native = None
    if job.kernel_backend != "python" and _native_form(pot) is not None:
        native = functools.partial(_native_form, pot)
    # Chains run in this process share ``pot``: count this chain's rejections only.
    before = dict(pot.rejections)
    try:
        # The kernels silence numpy's floating-point warnings themselves.
        result = run_chain(functools.partial(pot.value_and_grad, quiet=False), q0,
                           seed_or_rng=rng,
                           progress=progress if bar is None else bar, should_stop=job.stop,
                           native_potential=native,
                           gibbs=gibbs_steps(pot) if pot.discrete else None, **job.options)
        return result._replace(rejections=tuple(
            (kind, count - before.get(kind, 0), pot.rejection_examples.get(kind, ""))
            for kind, count in pot.rejections.items() if count > before.get(kind, 0)))
    finally:
        if bar is not None:
            bar.close()


def _potential_backend(kernel_backend: str) -> str:
    """The compiled potential's backend for a kernel backend: the Python kernel
    keeps the numpy replay (the readable reference end to end); otherwise
    native code, where ``"auto"`` lets each tape's cost model choose."""
    return {"native": "native", "python": "numpy"}.get(kernel_backend, "auto")


def _native_form(pot):
    """``pot.native`` (a potential the compiled kernels can run), or None."""
    return getattr(pot, "native", None)


def _run_pickled(payload: bytes):
    """Run a shipped chain. When the pool it runs on is torn down (another
    worker died), its result can no longer travel back: it is left in the
    run's private directory for the driver to read, and the worker exits as
    the pool asked."""
    job = cloudpickle.loads(payload)
    with _saved_on_termination():
        # A worker on another machine (a cluster executor) has no such
        # directory: it runs without this safety net, as it runs without the flag.
        with contextlib.suppress(OSError):
            _create_private_file(job.stop.chain_file(job.chain, "pid"), str(os.getpid()).encode())
        result = _run_job(job)
    if _terminated.is_set():
        result_file = job.stop.chain_file(job.chain, "result")
        # Written under another name and renamed, so the driver never reads half a file.
        with contextlib.suppress(OSError):
            _create_private_file(result_file + ".part", cloudpickle.dumps(result))
            os.replace(result_file + ".part", result_file)
        os._exit(0)
    return result


def _progress_bar(job):
    total = job.options["tune"] + job.options["draws"] * job.options.get("thin", 1)
    return progress_bar(total=total, desc=f"chain {job.chain}", position=job.chain, leave=True,
                        unit="draw", dynamic_ncols=True)


def hmc(model, data: Mapping | None = None, *, draws: int = 1000, tune: int = 400,
        chains: int = 4, seed=None, algorithm: str = "nuts", target_accept: float = 0.8,
        max_tree_depth: int = 10, dense_mass: bool = False, adapt: str = "fisher", init=None,
        thin: int = 1,
        progress: bool = True, executor: Executor | None = None, cores: int | None = None,
        warmup_draws: bool = False,
        compile: bool = True, num_steps: int | None = None, path_length: float | None = None,
        jitter: float = 0.0, coords: Mapping | None = None, dims: Mapping | None = None,
        log_likelihood: bool = True, kernel_backend: str = "auto", warm_start=None):
    """Sample a model's posterior with NUTS (or static HMC).

    Parameters
    ----------
    model : callable
        A sampler program: a Python function that calls ``pb.sample``.
        Discrete latent sites marked for enumeration are summed out; every
        other discrete latent site is sampled by Gibbs steps between the NUTS
        transitions (:mod:`probad.infer.gibbs`: full conditionals over a
        finite support, random-walk Metropolis over an infinite one), gets
        its values as float64 whole numbers, and joins the posterior; a
        :class:`~probad.infer.gibbs.GibbsWarning` and
        ``idata.attrs["discrete_sampling"]`` say how each was sampled. The
        ``log_likelihood`` group is then conditional on those sites' draws.
    data : mapping, optional
        Keyword arguments for the model. Observed sites get their values
        here; a site whose data is ``None`` is latent.
    draws, tune : int
        Kept draws and warmup iterations per chain. The Fisher warmup needs
        fewer than Stan's: 400 (nutpie uses 300-400) passes every
        posteriordb check in the tests; give ``tune=1000`` with
        ``adapt="stan"`` for Stan's defaults.
    chains : int
        Number of independent chains.
    seed : int or numpy.random.SeedSequence, optional
        The same seed gives bit-identical draws however the chains are run.
        None draws a fresh seed; ``idata.attrs["seed"]`` records the seed
        used, so passing it back repeats the run (``int(attrs["seed"])``: a
        seed of 2**63 or more is kept as a string, since netCDF holds 64-bit
        integers at most). A SeedSequence is recorded as
        ``attrs["seed_entropy"]`` (a string), ``["seed_spawn_key"]``,
        ``["seed_pool_size"]`` and ``["seed_n_children_spawned"]``: pass
        ``numpy.random.SeedSequence(ast.literal_eval(entropy), spawn_key=...,
        pool_size=..., n_children_spawned=...)`` to repeat the run. The
        SeedSequence given is not changed, so passing it again repeats the run.
    algorithm : {"nuts", "hmc"}
        NUTS (Stan's multinomial variant) or static HMC.
    target_accept : float
        Target mean acceptance statistic for step-size adaptation.
    max_tree_depth : int
        NUTS tree-depth cap (2**depth leapfrog steps).
    dense_mass : bool
        Adapt a dense inverse metric instead of a diagonal one.
    adapt : {"fisher", "stan", "fisher-lowrank", "fisher-variance"}
        Warmup scheme. ``"fisher"`` (default): nutpie's, a metric from
        draws and gradients together (dense with ``dense_mass=True``).
        ``"stan"``: Stan's windowed adaptation of the metric to the draws'
        (co)variance.
        ``"fisher-lowrank"``: nutpie's diagonal plus low-rank metric, for
        correlated posteriors. ``"fisher-variance"``: nutpie's schedule with
        the draws' variance as the diagonal after its early phase, for
        hierarchical scales, which the Fisher estimate shrinks
        (``probad.infer.fisher_adaptation``). ``idata.attrs`` records the scheme, its
        windows and each chain's final metric.
    init : strategy or dict, optional
        An init strategy or a dict of constrained starting values (the
        default strategy for the sites it leaves out). The default depends on
        ``adapt`` (see :func:`default_init`): ``init_to_uniform(radius=1)``,
        nutpie's start, for the Fisher schemes; ``init_to_uniform()`` (radius
        2), Stan's, for ``adapt="stan"``.
    thin : int
        Keep every ``thin``-th draw.
    progress : bool
        Show one progress bar per chain.
    executor : concurrent.futures.Executor, optional
        Run chains on it (e.g. ``ProcessPoolExecutor``); the model ships with
        cloudpickle, so models defined in a notebook work, and so do the
        potential's native tapes, recorded and lowered here once: a worker
        replays them rather than recording the model again.
    cores : int, optional
        Without an ``executor``: run the chains on this many worker processes
        (a pool kept for later calls); ``cores=1`` runs them one after
        another in this process. The default, None, means
        ``min(chains, os.cpu_count())`` processes, except for a model so cheap
        that starting the workers would cost more than it saves, and for a
        call made in a worker process or a thread (already in parallel with
        others): then the chains run here (see :func:`_choose_pool`). The
        draws are the same either way.
    warmup_draws : bool
        Keep the warmup iterations as ``warmup_posterior``/``warmup_sample_stats``.
    compile : bool
        Replay a compiled tape of the potential (fast) instead of re-running
        the model's Python at every gradient.
    num_steps, path_length, jitter :
        Static HMC's trajectory: a fixed number of steps or a path length
        (by default ``2 * pi``, Stan's), and a relative step-size jitter.
    coords, dims : mapping, optional
        ArviZ coordinates for dims (e.g. ``{"school": names}``) and extra dims.
    log_likelihood : bool
        Compute the pointwise ``log_likelihood`` group (needed by ``az.loo``).
    kernel_backend : {"auto", "native", "python"}
        What runs the NUTS/HMC transitions. ``"native"``: compiled code
        (:mod:`probad.infer.native_nuts`), a whole trajectory per call, on the
        potential's native form; it makes the same draws as ``"python"``, the
        readable reference kernel (:mod:`probad.infer.kernels`), which calls
        the potential from Python at every leapfrog step. ``"native"`` also
        compiles the potential to native code (``pb.potential(...,
        backend="native")``, equal to the numpy replay up to rounding, so a
        seed's draws differ from the default's) and raises if a primitive
        has no native lowering. ``"auto"`` (the default) is ``"native"`` when
        the potential has a native form and ``"python"`` otherwise; the
        potential is then the numpy replay, which has none. Warmup's
        adaptation, progress bars and Ctrl-C work the same with both.
    warm_start : arviz.InferenceData, optional
        An earlier run of this model (``pb.hmc`` or :func:`extend`) to start
        from: chain ``c`` starts where that run's chain ``c`` stopped, with
        its step size and inverse metric, and draws from this run's ``seed``.
        The metric is kept (``adapt`` and ``dense_mass`` play no part): it
        was estimated from the whole earlier warmup, better than a short new
        one could. With ``tune=0`` the step size is kept too; with ``tune >
        0`` the warmup adapts it alone, by dual averaging from the earlier
        one (``attrs["adaptation"]`` is ``"step_size"``), for new data; give
        it 150 iterations or more: averaged over 50, dual averaging ends
        about 20% below the step size it converges to (measured on radon,
        ``benchmarks/bench_warm_start.py``). The data may differ (new
        observations); the latent sites and their shapes may not, and
        ``chains`` must be the run's chain count. To adapt a new metric,
        start a run without ``warm_start``; to continue the same chains with
        more draws, use :func:`extend`.

    Returns
    -------
    arviz.InferenceData
        ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``
        and ``constant_data`` (+ warmup groups on request). If sampling was
        interrupted, the draws so far, with ``attrs["partial"] = True``,
        checked as a finished run is (the warnings say the draws are
        partial). A chain that raised, or whose worker process died, is
        dropped with a warning, listed in ``attrs["failed_chains"]`` with the
        reason in ``attrs["failure_reasons"]``, and the others are kept and
        checked. If packaging is interrupted (a second Ctrl-C) or runs out of
        memory while computing the ``log_likelihood`` group, the result comes
        without it; ``pb.log_likelihood(model, data, idata)`` adds it later.
        A proposal where the density cannot be evaluated (a parameter
        outside its constraint, a failed Cholesky factor or ODE solve) is
        rejected, as in Stan, whichever kernel backend runs;
        ``attrs["rejections"]`` gives each kind's count per chain and the
        first site and cause, and so does one :class:`SamplingWarning`.
        ``attrs`` also keep what :func:`extend` and ``warm_start`` go on from
        (:mod:`probad.infer.resume`): each chain's unconstrained end state
        (``last_position``, ``last_potential_energy``, ``last_potential_grad``),
        its generator's state (``rng_state``), the metric's kind and the
        sampler options.

    Raises
    ------
    TypeError, ValueError
        Before sampling, for an option of the wrong type or value, or
        ``coords`` whose lengths do not match the model's dims.
    """
    _check_options(draws=draws, tune=tune, chains=chains, thin=thin, seed=seed,
                   algorithm=algorithm, target_accept=target_accept,
                   max_tree_depth=max_tree_depth, num_steps=num_steps, path_length=path_length,
                   jitter=jitter, executor=executor, cores=cores, coords=coords, dims=dims,
                   kernel_backend=kernel_backend)
    check_adapt(adapt, dense_mass)
    if warm_start is not None and init is not None:
        raise ValueError("pb.hmc: give init or warm_start, not both (a warm start begins "
                         "where the earlier run's chains stopped)")
    start = time.perf_counter()
    # validates the model before sampling
    pot = make_potential(model, data, compile=compile, backend=_potential_backend(kernel_backend),
                         gibbs=True)
    pot.check_start(init, "pb.hmc")
    if pot.discrete:
        warn_of_gibbs_sites(gibbs_steps(pot), stacklevel=2)
    starts = [None] * chains
    if warm_start is not None:
        starts = list(read_starts(warm_start, pot, caller="pb.hmc(warm_start=...)",
                                  exact=False).values())
        if len(starts) != chains:
            raise ValueError(f"pb.hmc: warm_start holds {len(starts)} chain(s) but chains="
                             f"{chains}; pass chains={len(starts)}")
    build_time = time.perf_counter() - start
    if kernel_backend == "native" and _native_form(pot) is None:
        raise ValueError(
            "kernel_backend='native' needs a potential compiled to native code, and this "
            "model's potential has no native form (compile=False, or a primitive without a "
            "native lowering); use kernel_backend='auto' to run the Python kernel instead")
    check_coords(pot, coords, dims)  # a wrong coordinate must not cost the draws
    recording = time.perf_counter()
    _check_model_runs(pot, init)
    if _native_form(pot) is None:
        # No native tape for the workers to adopt: each records its own.
        build_time += time.perf_counter() - recording
    if warm_start is not None:
        adapt = "step_size"  # the earlier run's metric is kept: see warm_start above
    if tune > 0:
        _warn_short_warmup(tune, adapt)
    if seed is None:
        # A fresh seed, recorded in attrs["seed"], so any run can be repeated
        # exactly; 63 bits keep it an int64 that netCDF attributes can hold.
        seed = int(onp.random.SeedSequence().generate_state(1, onp.uint64)[0] >> onp.uint64(1))
    root = _seed_sequence(seed)
    options = dict(draws=draws, tune=tune, algorithm=algorithm, target_accept=target_accept,
                   max_tree_depth=max_tree_depth, dense_mass=dense_mass, adapt=adapt, thin=thin,
                   warmup_draws=warmup_draws, num_steps=num_steps, path_length=path_length,
                   jitter=jitter)
    init = default_init(adapt) if init is None else \
        init_to_value(values=init, fallback=default_init(adapt)) if isinstance(init, Mapping) else init
    jobs = [_ChainJob(model, data, compile, c, s, init,
                      dict(options, progress=progress, **_start_options(start)),
                      kernel_backend=kernel_backend, start=start)
            for (c, s), start in zip(enumerate(root.spawn(chains)), starts)]
    results, errors, unfinished = _sample(pot, jobs, executor, cores, build_time, progress)
    sampling_time = time.perf_counter() - start
    return _package(pot, results, errors, unfinished, chains=chains, coords=coords, dims=dims,
                    sampling_time=sampling_time, max_tree_depth=max_tree_depth,
                    algorithm=algorithm, log_likelihood=log_likelihood, seed=seed,
                    adaptation=_adaptation_attrs(adapt, tune),
                    options=option_attrs(dict(options, compile=compile,
                                              kernel_backend=kernel_backend)))


def extend(idata, model, data: Mapping | None = None, *, draws: int = 1000,
           progress: bool = True, executor: Executor | None = None, cores: int | None = None):
    """Continue every chain of a finished run with ``draws`` more draws.

    Each chain goes on from where it stopped, with its step size, inverse
    metric and its own random stream, so the run of ``pb.hmc(...,
    draws=500)`` extended by 500 draws is, bit for bit, the run of
    ``draws=1000`` with the same seed (NumPyro's ``mcmc.post_warmup_state =
    mcmc.last_state``, as one call). The sampler options (algorithm, tree
    depth, thinning, kernel backend, compilation) are the run's, recorded in
    ``idata.attrs``; there is no new warmup. To start a new run from the
    chains' ends instead, with new streams and possibly new data or a short
    warmup, use ``pb.hmc(..., warm_start=idata)``.

    Parameters
    ----------
    idata : arviz.InferenceData
        A run of ``pb.hmc`` or ``pb.extend``, possibly read back with
        ``arviz.from_netcdf``; it is not changed.
    model : callable
        The model that was sampled.
    data : mapping, optional
        The data it was sampled with.
    draws : int
        Draws to add to each chain (before thinning, as in ``pb.hmc``).
    progress, executor, cores :
        As in :func:`hmc`; the draws are the same however the chains run.

    Returns
    -------
    arviz.InferenceData
        The whole run: ``posterior``, ``sample_stats`` and ``log_likelihood``
        with the new draws appended (``draw`` runs on), the data and warmup
        groups of ``idata``, and ``attrs`` for the whole run (sampling time
        and gradient counts summed, each chain's new end state). Groups
        computed from the draws (``posterior_predictive``) are left out with
        a warning. Interrupted or failed chains are handled as in
        :func:`hmc`: every chain is cut to the shortest one's length. A chain
        that Ctrl-C stopped and that kept all its draws can be extended: it
        goes on from its last draw, a valid continuation, but its random
        stream is not the uninterrupted run's (the stopped transition had
        drawn from it).

    Raises
    ------
    ValueError
        Before sampling, if ``idata`` holds no sampler state, or the model or
        data are not the ones sampled, or a chain did not stop at its last
        kept draw (an interrupted run: continue it with ``warm_start``).
    """
    options = recorded_options(idata, "pb.extend")
    kernel_backend, compile = options.pop("kernel_backend", "auto"), options.pop("compile", True)
    run = dict(dict(algorithm="nuts", max_tree_depth=10, thin=1, target_accept=0.8,
                    num_steps=None, path_length=None, jitter=0.0), **options)
    _check_options(draws=draws, tune=0, chains=1, seed=None, executor=executor, cores=cores,
                   coords=None, dims=None, kernel_backend=kernel_backend, **run)
    start = time.perf_counter()
    pot = make_potential(model, data, compile=compile, backend=_potential_backend(kernel_backend),
                         gibbs=True)
    build_time = time.perf_counter() - start
    starts = read_starts(idata, pot, caller="pb.extend", exact=True)
    run.update(draws=draws, tune=0, adapt=idata.attrs.get("adaptation", "stan"),
               dense_mass=False, warmup_draws=False)
    jobs = [_ChainJob(model, data, compile, chain, None, None,
                      dict(run, progress=progress, **_start_options(s)),
                      kernel_backend=kernel_backend, start=s) for chain, s in starts.items()]
    results, errors, unfinished = _sample(pot, jobs, executor, cores, build_time, progress)
    posterior = idata.posterior
    dims = {name: list(posterior[name].dims[2:]) for name in posterior.data_vars}
    coords = {name: posterior.coords[name].values for name in posterior.coords
              if name not in ("chain", "draw")}
    if "log_likelihood" in idata.groups():
        group = idata.log_likelihood
        dims.update({name: list(group[name].dims[2:]) for name in group.data_vars})
        coords.update({name: group.coords[name].values for name in group.coords
                       if name not in ("chain", "draw")})
    adaptation = {k: v for k, v in idata.attrs.items() if k.startswith("adaptation")}
    return _package(pot, results, errors, unfinished, chains=len(jobs), coords=coords, dims=dims,
                    sampling_time=time.perf_counter() - start,
                    max_tree_depth=run["max_tree_depth"], algorithm=run["algorithm"],
                    log_likelihood="log_likelihood" in idata.groups(), seed=None,
                    adaptation=adaptation, options={}, previous=idata)


def _start_options(start: ChainStart | None) -> dict:
    """The step size and inverse metric a chain starts from, if it continues a run."""
    if start is None:
        return {}
    options = {"step_size": start.step_size, "inverse_metric": start.inverse_metric}
    if start.gibbs is not None:  # an extension (an exact state) continues the Gibbs stream
        options["gibbs_start"] = (*start.gibbs, start.state is not None)
    return options


def _sample(pot, jobs, executor, cores, build_time, progress):
    """Run the chains here, on ``executor`` or on the pool ``cores`` asks for;
    return ``(results, errors, unfinished)`` as :func:`_run_on_executor` does.

    Chains run elsewhere get this potential's native tapes with their job: a
    worker builds the potential (the model's check pass, milliseconds) and
    adopts them, rather than recording and lowering the model again (seconds
    for a long loop: GARCH(1,1) over 200 steps took 1.5-2 s a chain, more
    than its sampling). The chains then replay the very tapes the chains of a
    sequential run replay."""
    if executor is None:
        executor = _choose_pool(pot, jobs, cores, build_time)
    if executor is None:
        return (*_run_sequential(jobs, pot), [])
    if jobs[0].kernel_backend != "python":
        _native_form(pot)  # records the tape the chains replay, if none was (an extension)
    tapes = pot.native_tapes()
    for job in jobs:
        job.tapes = tapes
    results, errors, unfinished = _run_on_executor(jobs, executor, progress)
    if executor is _shared_pool.executor and any(isinstance(e, _PoolBroke)
                                                 for e in errors.values()):
        _shared_pool.discard()
    return results, errors, unfinished


def default_init(adapt: str) -> init_to_uniform:
    """Where each warmup scheme starts its chains, unless ``init`` says otherwise.

    Stan starts uniformly in ``(-2, 2)`` on the unconstrained scale; nutpie
    (through PyMC's initial point) jitters by ``U(-1, 1)``. The Fisher
    warmup's first metric is ``1 / |grad|`` at the start, so a start in a
    region where the density is extremely steep sets a metric, and then a
    step size, on which the chain hardly moves, and its estimates from those
    draws keep it so. Measured on arma11 (12 seeds x 4 chains, tune 400): 11
    of 48 Fisher chains from ``(-2, 2)`` stayed where the MA recursion
    explodes (``|theta| > 1``), against 4 of 48 Stan chains (tune 1000) and 0
    of 48 Fisher chains from ``(-1, 1)``. So each scheme starts as its
    original does.

    Parameters
    ----------
    adapt : {"fisher", "fisher-lowrank", "stan", "step_size"}

    Returns
    -------
    init_to_uniform
    """
    return init_to_uniform(radius=2.0 if adapt == "stan" else 1.0)


def _check_model_runs(pot, init) -> None:
    """Find a start and its gradient here, once, before any chain starts.

    A model error that does not depend on the point (``float()`` of a latent
    value, plain numpy on one, a shape clash) would otherwise fail every
    chain alike, each in its worker, and come back as "every chain failed".
    Not finding a finite start is left to the chains: each tries points of
    its own. Given values (a dict or ``init_to_value``) are used here too;
    another strategy of the user's is not (it may draw for one chain what it
    would not draw for another). The compiled tape recorded here serves the
    chains run in this process.
    """
    strategy = init_to_value(values=init) if isinstance(init, Mapping) else \
        init if isinstance(init, init_to_value) else None
    with contextlib.suppress(NoFiniteStartError):
        pot.value_and_grad(pot.initial_point(seed=0, strategy=strategy))


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_options(*, draws, tune, chains, thin, seed, algorithm, target_accept, max_tree_depth,
                   num_steps, path_length, jitter, executor, cores, coords, dims,
                   kernel_backend):
    """Refuse options every chain would refuse, before any chain starts.

    This is the one place sampler options are checked; the chain loop and
    the kernels below trust what they are given.
    """
    for name, value, least in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1),
                               ("thin", thin, 1), ("max_tree_depth", max_tree_depth, 1)):
        if not _is_int(value):
            raise TypeError(f"pb.hmc: {name} must be an integer, got {value!r} "
                            f"({type(value).__name__})")
        if value < least:
            raise ValueError(f"pb.hmc: {name} must be >= {least}, got {value}")
    if cores is not None and (not _is_int(cores) or cores < 1):
        raise ValueError(f"pb.hmc: cores must be None (one process per chain, up to the "
                         f"number of CPUs) or an integer >= 1, got {cores!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"pb.hmc: executor must be a concurrent.futures.Executor (e.g. "
                        f"ProcessPoolExecutor()), got {executor!r}; to run chains in "
                        "parallel without one, use cores=")
    if executor is not None and cores is not None:
        raise ValueError("pb.hmc: give cores or executor, not both")
    if not (seed is None or isinstance(seed, onp.random.SeedSequence) or
            (_is_int(seed) and seed >= 0)):
        raise TypeError(f"pb.hmc: seed must be a non-negative integer or a "
                        f"numpy.random.SeedSequence, got {seed!r}")
    for name, value in (("coords", coords), ("dims", dims)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"pb.hmc: {name} must be a mapping (dict), got {type(value).__name__}")
    if kernel_backend not in ("auto", "native", "python"):
        raise ValueError(f"pb.hmc: kernel_backend must be 'auto', 'native' or 'python', "
                         f"got {kernel_backend!r}")
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"pb.hmc: algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    if not isinstance(target_accept, numbers.Real) or not 0.0 < target_accept < 1.0:
        raise ValueError(f"pb.hmc: target_accept must lie in (0, 1), got {target_accept!r}")
    if algorithm == "nuts":
        if num_steps is not None or path_length is not None or jitter:
            raise ValueError("pb.hmc: num_steps, path_length and jitter apply to "
                             "algorithm='hmc' only")
    else:
        if num_steps is not None and path_length is not None:
            raise ValueError("pb.hmc: give num_steps or path_length, not both")
        if num_steps is not None and (not _is_int(num_steps) or num_steps < 1):
            raise ValueError(f"pb.hmc: num_steps must be an integer >= 1, got {num_steps!r}")
        if path_length is not None and not path_length > 0.0:
            raise ValueError(f"pb.hmc: path_length must be > 0, got {path_length}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"pb.hmc: jitter must lie in [0, 1), got {jitter}")


def _warn_short_warmup(tune: int, adapt: str) -> None:
    """Say, as Stan does, when warmup is too short for its adaptation windows
    (a warm start's, which adapts the step size only, has none)."""
    if adapt == "step_size":
        return
    if adapt != "stan":
        # The Fisher schedule is fractions of any tune; below 30 not one of
        # its windows (the first: 10 draws in the first 30% of warmup) fits.
        schedule = fisher_schedule(tune)
        if not schedule.switches:
            warnings.warn(f"tune={tune} is too short for the Fisher warmup's windows (the first "
                          "needs 10 draws within the first 30% of warmup): the metric is "
                          f"estimated from at most {schedule.final_start} draws. Use tune >= 30 "
                          "(400 is the default).", SamplingWarning, stacklevel=3)
        return
    fast_and_slow = 75 + 25 + 50  # Stan's initial buffer, first window, terminal buffer
    if tune < 20:
        warnings.warn(f"tune={tune} is too short to estimate the metric (Stan needs at least "
                      "20 warmup iterations): only the step size is adapted. Use tune >= "
                      f"{fast_and_slow}.", SamplingWarning, stacklevel=3)
    elif tune < fast_and_slow:
        warnings.warn(f"tune={tune} is shorter than the adaptation windows "
                      f"({fast_and_slow} iterations: 75 + 25 + 50), which are cut to "
                      "15%/75%/10% of it, as Stan does; the adapted step size and metric may "
                      f"be poor. Use tune >= {fast_and_slow}.", SamplingWarning, stacklevel=3)


def _seed_sequence(seed) -> onp.random.SeedSequence:
    """The run's root SeedSequence; a copy of a given one, so that spawning the
    chains' streams does not change it and the same seed repeats the run."""
    if isinstance(seed, onp.random.SeedSequence):
        return onp.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size,
                                      n_children_spawned=seed.n_children_spawned)
    return onp.random.SeedSequence(seed)


def _seed_attrs(seed) -> dict:
    """The ``attrs`` that record ``seed`` so that the run can be repeated.

    netCDF attributes hold 64-bit integers at most, so an int seed of 2**63
    or more is recorded as a decimal string, and a SeedSequence by its parts
    (its entropy is 128 bits when numpy draws it).
    """
    if not isinstance(seed, onp.random.SeedSequence):
        return {"seed": int(seed) if seed < 2**63 else str(seed)}
    return {"seed_entropy": str(seed.entropy),
            "seed_spawn_key": [int(k) for k in seed.spawn_key],
            "seed_pool_size": int(seed.pool_size),
            "seed_n_children_spawned": int(seed.n_children_spawned)}


class _SharedPool:
    """The worker processes of ``cores=``, started once and kept for later
    calls: the second run in a session pays no start-up. A pool that broke
    (a worker was killed) is discarded and the next call starts a new one."""

    def __init__(self):
        self.executor: ProcessPoolExecutor | None = None
        self.workers = 0

    def get(self, workers: int) -> ProcessPoolExecutor:
        if self.executor is None or self.workers < workers:
            self.discard()
            self.executor, self.workers = ProcessPoolExecutor(max_workers=workers), workers
        return self.executor

    def discard(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor, self.workers = None, 0


_shared_pool = _SharedPool()

# The estimate behind cores=None, from benchmarks/bench_parallel_chains.py on
# 2 busy CPUs: a pool's first task comes back after 20-60 ms (fork) and the
# progress bars' manager process starts in 30-60 ms, so a run on a kept pool
# costs about 0.1 s more than its chains. A pool started for the run costs
# about 0.5 s more again (a short eight-schools run: 1.57 s on a fresh pool,
# 1.03 s on a kept one, 1.04 s sequentially). A leapfrog step costs its
# gradient plus about 30 us of the kernel's own Python (a trivial potential).
POOL_OVERHEAD = 0.1
POOL_START = 0.5
# Where workers are not forked (macOS, Windows, Python 3.14's forkserver) each
# one imports probad afresh: 7.5 s on these 2 CPUs at load 13, so at least
# 2 s on an idle machine is a safe floor for the estimate.
SPAWN_START = 2.0
STEP_OVERHEAD = 30e-6
#: Leapfrog steps per iteration assumed (NUTS averages 3-15 on well-adapted
#: models, eight schools 8; the low end keeps cheap runs sequential).
ASSUMED_STEPS = 7


def _choose_pool(pot, jobs, cores: int | None, build_time: float):
    """The executor ``cores`` asks for, or None to run the chains here.

    With ``cores=None`` the chains go to ``min(chains, os.cpu_count())``
    processes unless the estimated time of the run in parallel, ``work /
    workers`` plus each worker building its potential (``build_time`` per
    chain, measured here: the model's check pass, plus recording and lowering
    its tapes when they have no native form to ship, see :func:`_sample`)
    and finding its start, plus :data:`POOL_OVERHEAD` (and :data:`POOL_START`
    if the pool must be started), is no better than 0.8 of
    the sequential ``work``; ``work`` is the iterations times
    :data:`ASSUMED_STEPS` leapfrog steps, each a gradient at its measured cost
    plus :data:`STEP_OVERHEAD`. Test-sized runs (a few hundred iterations of a
    small model) stay sequential; Stan-sized ones go to the pool. A run that is
    itself in a worker process or a thread stays sequential: it is already
    one of several running in parallel.
    """
    chains = len(jobs)
    workers = min(chains, cores if cores is not None else (os.cpu_count() or 1))
    if workers < 2:
        return None
    if cores is None and (multiprocessing.parent_process() is not None or
                          threading.current_thread() is not threading.main_thread()):
        return None  # already a worker (an SBC fit on a pool, a Dask task): do not nest pools
    if cores is None:
        options = jobs[0].options
        iterations = options["tune"] + options["draws"] * options["thin"]
        try:
            first, steady = _gradient_seconds(pot)
        except ValueError:  # no start found: the chains will say so, one by one
            return None
        work = chains * iterations * ASSUMED_STEPS * (steady + STEP_OVERHEAD)
        build = build_time + first  # a worker rebuilds the potential and finds its start
        start = 0.0 if _shared_pool.workers >= workers else \
            POOL_START + (SPAWN_START if multiprocessing.get_start_method() != "fork" else 0.0)
        pooled = work / workers + math.ceil(chains / workers) * build + POOL_OVERHEAD + start
        if pooled > 0.8 * work:
            return None
    return _shared_pool.get(workers)


def _gradient_seconds(pot, repeats: int = 5) -> tuple[float, float]:
    """Seconds to find a start and take its gradient (the first gradient
    records the compiled tape), and of the fastest of a few more gradients
    (the steady cost)."""
    tic = time.perf_counter()
    q = pot.initial_point(seed=0)
    pot.value_and_grad(q)
    first = time.perf_counter() - tic
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        pot.value_and_grad(q)
        times.append(time.perf_counter() - tic)
    return first, min(times)


def _run_sequential(jobs, pot):
    results, errors = {}, {}
    for job in jobs:
        try:
            res = _run_job(job, pot)
        except KeyboardInterrupt:
            break
        except Exception as exc:  # one failed chain must not lose the others
            errors[job.chain] = exc
            continue
        results[job.chain] = res
        if res.partial:
            break  # Ctrl-C inside the chain: stop here and keep what we have
    return results, errors


class _QueueReporter:
    """A chain's progress callback in a worker: sends its latest
    ``ChainProgress`` to the main process at most every ``interval`` seconds."""

    def __init__(self, events, chain: int, interval: float):
        self.events, self.chain, self.interval = events, chain, interval
        self._next_send = 0.0

    def __call__(self, event) -> None:
        now = time.monotonic()
        if self.events is None or (now < self._next_send and event.iteration < event.total):
            return
        self._next_send = now + self.interval
        try:
            self.events.put((self.chain, event))
        except Exception:  # noqa: BLE001  (a worker that cannot reach us: no bar, same draws)
            self.events = None


class _ProgressRelay:
    """Draws the bars of chains that run on an executor, in this process.

    A bar drawn in a worker process writes to that worker's stderr, which a
    notebook never shows; so workers send their progress through a managed
    queue, and the bars live here, where ``tqdm.auto`` renders them.
    """

    interval = 0.1  # seconds between a chain's updates, and between redraws

    def __init__(self, jobs, progress: bool):
        self.bars, self._manager, self._events = {}, None, None
        if not progress:
            return
        self._manager = multiprocessing.Manager()
        self._events = self._manager.Queue()
        for job in jobs:
            job.options["progress"] = _QueueReporter(self._events, job.chain, self.interval)
            self.bars[job.chain] = _progress_bar(job)

    @property
    def timeout(self) -> float | None:
        return self.interval if self.bars else None

    def redraw(self) -> None:
        while self._events is not None:
            try:
                chain, event = self._events.get_nowait()
            except queue.Empty:
                return
            except Exception:  # noqa: BLE001  (the manager is gone: stop drawing, keep the draws)
                self._events = None
                return
            show_progress(self.bars[chain], event)

    def close(self) -> None:
        if self._manager is not None:
            self.redraw()
            for bar in self.bars.values():
                bar.close()
            self._manager.shutdown()


def _run_on_executor(jobs, executor, progress: bool):
    """Run the chains on ``executor``; return ``(results, errors, unfinished)``.

    ``unfinished`` lists the chains a second Ctrl-C left stopping: they were
    interrupted, not failed, but their draws did not come back in time.
    """
    stop = _StopFlag()
    relay = _ProgressRelay(jobs, progress)
    for job in jobs:
        job.stop = stop
    futures = {executor.submit(_run_pickled, cloudpickle.dumps(job)): job.chain for job in jobs}
    results, errors, unfinished = {}, {}, []

    def collect(fut, timeout=None):
        chain = futures[fut]
        try:
            results[chain] = fut.result(timeout=timeout)
        except BrokenExecutor as exc:
            _read_back(stop, chain, exc, results, errors)
        except Exception as exc:
            errors[chain] = exc

    with stop.raised_by_ctrl_c():
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=relay.timeout, return_when=FIRST_COMPLETED)
                relay.redraw()
                for fut in finished:
                    collect(fut)
        except KeyboardInterrupt:
            # Chains not started are cancelled; running ones see the flag within
            # a fraction of a second and return their draws so far.
            stop.raise_flag()
            try:
                for fut, chain in futures.items():
                    if chain in results or chain in errors or fut.cancel():
                        continue
                    collect(fut, timeout=60)
            except KeyboardInterrupt:
                # A second Ctrl-C: stop waiting. The chains still stopping were
                # interrupted too; that is not a failure of theirs.
                unfinished = sorted(c for f, c in futures.items()
                                    if c not in results and c not in errors and not f.cancelled())
        finally:
            stop.remove()
            relay.close()
    return results, errors, unfinished


def _rejection_attrs(done) -> list[str]:
    """``"<kind>: <count per chain>; first: <what went wrong>"`` for each
    kind of rejected evaluation (warmup included): proposals given infinite
    energy because the density could not be evaluated there (a failed ODE
    solve and the solver's message, ...), instead of a warning per evaluation."""
    counts = [{kind: count for kind, count, _ in r.rejections} for r in done]
    examples = {kind: example for r in reversed(done) for kind, _, example in r.rejections}
    return [f"{kind}: {[c.get(kind, 0) for c in counts]}; first: {examples[kind]}"
            for kind in sorted(examples)]


def _adaptation_attrs(adapt: str, tune: int) -> dict:
    """The warmup scheme and its windows, as ``plot_warmup`` reads them."""
    if adapt == "step_size":  # one phase, the metric frozen throughout
        return {"adaptation": adapt, "adaptation_windows": [], "adaptation_early_end": 0,
                "adaptation_final_start": 0}
    if adapt == "stan":
        return {"adaptation": adapt, "adaptation_windows": window_ends(tune)}
    schedule = fisher_schedule(tune)
    return {"adaptation": adapt, "adaptation_windows": list(schedule.switches),
            "adaptation_early_end": schedule.early_end,
            "adaptation_final_start": schedule.final_start}


def _inverse_metric_attrs(inverse_metrics) -> dict:
    """Each chain's final inverse metric; a low-rank one as its factors, with
    its diagonal (the marginal variances) under ``inverse_metric``.

    netCDF attributes are rectangular arrays, so chains' low-rank factors are
    padded to the largest rank: ``inverse_metric_rank[c]`` columns of
    ``inverse_metric_vectors[c]`` are chain ``c``'s, the padding is zero
    vectors with value 1, which change nothing."""
    if not isinstance(inverse_metrics[0], LowRankInverseMetric):
        return {"inverse_metric": [onp.asarray(m).tolist() for m in inverse_metrics]}
    rank = max(len(m.values) for m in inverse_metrics)
    dim = len(inverse_metrics[0].scale)

    def pad(m):
        k = len(m.values)
        return (onp.hstack([m.vectors, onp.zeros((dim, rank - k))]).tolist(),
                onp.concatenate([m.values, onp.ones(rank - k)]).tolist())

    padded = [pad(m) for m in inverse_metrics]
    return {
        "inverse_metric": [(m.scale**2 * (1.0 + (m.vectors**2) @ (m.values - 1.0))).tolist()
                           for m in inverse_metrics],
        "inverse_metric_scale": [m.scale.tolist() for m in inverse_metrics],
        "inverse_metric_rank": [len(m.values) for m in inverse_metrics],
        "inverse_metric_vectors": [vectors for vectors, _ in padded],
        "inverse_metric_values": [values for _, values in padded],
    }


class _PoolBroke(RuntimeError):
    """A chain lost because a worker process of its pool died."""


def _read_back(stop: _StopFlag, chain: int, exc: BaseException, results, errors,
               patience: float = 30.0) -> None:
    """A chain whose pool broke (one of its workers died, e.g. killed by the
    OOM killer): if it ran on a healthy worker, that worker was sent SIGTERM
    and saves the draws so far; read them. The chain whose worker died, and
    chains never started, are failures with the reason."""
    pid_file, result_file = stop.chain_file(chain, "pid"), stop.chain_file(chain, "result")
    try:
        with open(pid_file) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        errors[chain] = _PoolBroke(f"not run: its process pool broke before it started ({exc})")
        return
    deadline = time.monotonic() + patience
    while not os.path.exists(result_file) and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with open(result_file, "rb") as f:
            results[chain] = cloudpickle.load(f)
    except (OSError, EOFError, cloudpickle.pickle.UnpicklingError):
        errors[chain] = _PoolBroke(f"its worker process (pid {pid}) died: {exc}")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _warn_of_rejections(rejections: list[str]) -> None:
    """One warning for the proposals rejected because the density could not
    be evaluated (an invalid parameter, a failed Cholesky factor or ODE
    solve), from ``attrs["rejections"]``: each kind's count per chain and
    what went wrong the first time (the site and parameter)."""
    if rejections:
        warnings.warn(
            f"proposals were rejected (infinite energy) because the density could not be "
            f"evaluated there ({' | '.join(rejections)}). A few, early in warmup, are harmless, "
            "as in Stan; many mean the model lets a parameter leave its constraint: give the "
            "latent sites it is computed from priors with a matching support (a positive prior "
            "for a scale), or rewrite the expression. attrs['rejections'] keeps this.",
            SamplingWarning, stacklevel=4)


def _package(pot, results, errors, unfinished, *, chains, coords, dims, sampling_time,
             max_tree_depth, algorithm, log_likelihood, seed, adaptation, options,
             previous=None):
    for chain, exc in sorted(errors.items()):
        warnings.warn(f"chain {chain} failed and was dropped: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
    if unfinished:
        warnings.warn(f"a second Ctrl-C: chain(s) {unfinished} were interrupted while "
                      "stopping and their draws are not returned", RuntimeWarning, stacklevel=3)
    kept = [c for c in sorted(results) if len(results[c].positions) > 0]
    done = [results[c] for c in kept]
    if not done:
        if errors:
            first = errors[min(errors)]
            raise RuntimeError(f"every chain failed; chain {min(errors)}: {first}") from first
        raise KeyboardInterrupt("sampling was interrupted before any draw was kept")
    n = min(len(r.positions) for r in done)
    interrupted = len(results) + len(errors) < chains or any(r.partial for r in done) or \
        any(len(r.positions) > n for r in done)
    q = onp.stack([r.positions[:n] for r in done])
    discrete = None if done[0].discrete is None else onp.stack([r.discrete[:n] for r in done])
    stats = {k: onp.stack([r.stats[k][:n] for r in done]) for k in done[0].stats}
    warm_q = warm_stats = warm_discrete = None
    if done[0].warmup_positions is not None:
        m = min(len(r.warmup_positions) for r in done)
        warm_q = onp.stack([r.warmup_positions[:m] for r in done])
        if discrete is not None:
            warm_discrete = onp.stack([r.warmup_discrete[:m] for r in done])
        warm_stats = {k: onp.stack([r.warmup_stats[k][:m] for r in done]) for k in done[0].warmup_stats}
    from .. import __version__

    attrs = {
        "inference_library": "probad",
        "inference_library_version": __version__,
        "sampling_time": sampling_time,
        "algorithm": algorithm,
        "step_size": [float(r.step_size) for r in done],
        **adaptation,
        **_inverse_metric_attrs([r.inverse_metric for r in done]),
        "num_gradient_evaluations": [int(r.num_grad_evals) for r in done],
        "rejections": _rejection_attrs(done),
        "partial": int(interrupted or bool(errors)),
        "failed_chains": sorted(errors),
        "failure_reasons": [f"{type(errors[c]).__name__}: {errors[c]}" for c in sorted(errors)],
        **options,
        **chain_state_attrs(kept, done),
        **(_seed_attrs(seed) if seed is not None else {}),
    }
    if pot.discrete:
        attrs["discrete_sampling"] = "; ".join(
            f"{name}: {how}" for name, how in gibbs_steps(pot).describe().items())
    # Chains keep their numbers when one is dropped, so the warning's "chain 2" is chain 2.
    coords = {"chain": kept, **(coords or {})}
    idata = draws_to_inference_data(pot, q, sample_stats=stats, warmup_q=warm_q,
                                    warmup_stats=warm_stats, coords=coords, dims=dims,
                                    attrs=attrs, log_likelihood=log_likelihood,
                                    discrete=discrete, warmup_discrete=warm_discrete)
    if previous is not None:
        idata = append_draws(previous, idata)
    idata.sample_stats.attrs["rejections"] = idata.attrs["rejections"]
    if interrupted:
        warnings.warn(f"sampling stopped early: returning {len(done)} chain(s) of {n} draws",
                      RuntimeWarning, stacklevel=3)
    _warn_of_rejections(attrs["rejections"])
    # Partial draws are checked too (a run whose every draw diverged must say
    # so), as are the chains that finished when another one failed.
    check_sampling(idata, max_tree_depth=max_tree_depth, partial=interrupted, stacklevel=4)
    return idata
