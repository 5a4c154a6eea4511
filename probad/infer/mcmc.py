"""``pb.hmc``: run NUTS/HMC chains on a model and return ``arviz.InferenceData``.

The driver's jobs are the ones the kernels should not know about: building the
potential, giving each chain its own reproducible random stream, running the
chains in this process or on any ``concurrent.futures.Executor``, surviving
Ctrl-C and failed chains, and packaging the results with diagnostics.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import cloudpickle
import numpy as np

from .adaptation import window_ends
from .chain import check_adapt, run_chain, show_progress
from .density import potential as make_potential
from .diagnostics import check_sampling
from .fisher_adaptation import fisher_schedule
from .initialization import init_to_uniform, init_to_value
from .kernels import LowRankInverseMetric
from .progress import progress_bar
from .results import draws_to_inference_data

__all__ = ["hmc"]


@dataclass
class _ChainJob:
    """Everything one chain needs, shippable to another process by cloudpickle."""

    model: Callable
    data: Mapping | None
    compile: bool
    chain: int
    seed: np.random.SeedSequence
    init: Any
    options: dict = field(default_factory=dict)
    stop: "_StopFlag | None" = None
    kernel_backend: str = "auto"


class _StopFlag:
    """A file whose existence tells worker chains to stop, as Ctrl-C would.

    Ctrl-C reaches only the main process (a notebook's "interrupt kernel"
    and cluster workers never see it), so the driver raises this flag and
    each chain returns its draws. A file works for any executor on this
    machine and costs nothing to ship; chains look at it at most every
    ``interval`` seconds, so the check stays off the sampler's hot path.
    """

    def __init__(self, interval: float = 0.2):
        handle, self.path = tempfile.mkstemp(prefix="probad-stop-")
        os.close(handle)
        os.remove(self.path)
        self.interval = interval
        self._next_check = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.interval
        return os.path.exists(self.path)

    def raise_flag(self) -> None:
        open(self.path, "w").close()

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)

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


def _run_job(job: _ChainJob, pot=None):
    """Run one chain; in a worker process the potential is built there."""
    if pot is None:
        pot = make_potential(job.model, job.data, compile=job.compile)
    init_seed, chain_seed = job.seed.spawn(2)
    strategy = job.init
    if isinstance(strategy, Mapping):
        strategy = init_to_value(values=strategy)
    q0 = pot.initial_point(seed=np.random.default_rng(init_seed), strategy=strategy)
    progress = job.options.pop("progress", False)
    bar = _progress_bar(job) if progress is True else None
    native = None
    if job.kernel_backend != "python" and _native_form(pot) is not None:
        native = functools.partial(_native_form, pot)
    try:
        return run_chain(pot.value_and_grad, q0, seed_or_rng=np.random.default_rng(chain_seed),
                         progress=progress if bar is None else bar, should_stop=job.stop,
                         native_potential=native, **job.options)
    finally:
        if bar is not None:
            bar.close()


def _native_form(pot):
    """``pot.native`` (a potential the compiled kernels can run), or None."""
    return getattr(pot, "native", None)


def _run_pickled(payload: bytes):
    return _run_job(cloudpickle.loads(payload))


def _progress_bar(job):
    total = job.options["tune"] + job.options["draws"] * job.options.get("thin", 1)
    return progress_bar(total=total, desc=f"chain {job.chain}", position=job.chain, leave=True,
                        unit="draw", dynamic_ncols=True)


def hmc(model, data: Mapping | None = None, *, draws: int = 1000, tune: int = 400,
        chains: int = 4, seed=None, algorithm: str = "nuts", target_accept: float = 0.8,
        max_tree_depth: int = 10, dense_mass: bool = False, adapt: str = "fisher", init=None,
        thin: int = 1,
        progress: bool = True, executor: Executor | None = None, warmup_draws: bool = False,
        compile: bool = True, num_steps: int | None = None, path_length: float | None = None,
        jitter: float = 0.0, coords: Mapping | None = None, dims: Mapping | None = None,
        log_likelihood: bool = True, kernel_backend: str = "auto"):
    """Sample a model's posterior with NUTS (or static HMC).

    Parameters
    ----------
    model : callable
        A sampler program: a Python function that calls ``pb.sample``.
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
        used, so passing it back repeats the run.
    algorithm : {"nuts", "hmc"}
        NUTS (Stan's multinomial variant) or static HMC.
    target_accept : float
        Target mean acceptance statistic for step-size adaptation.
    max_tree_depth : int
        NUTS tree-depth cap (2**depth leapfrog steps).
    dense_mass : bool
        Adapt a dense inverse metric instead of a diagonal one.
    adapt : {"fisher", "stan", "fisher-lowrank"}
        Warmup scheme. ``"fisher"`` (default): nutpie's, a metric from
        draws and gradients together (dense with ``dense_mass=True``).
        ``"stan"``: Stan's windowed adaptation of the metric to the draws'
        (co)variance.
        ``"fisher-lowrank"``: nutpie's diagonal plus low-rank metric, for
        correlated posteriors. ``idata.attrs`` records the scheme, its
        windows and each chain's final metric.
    init : strategy or dict, optional
        An init strategy (``init_to_uniform()`` is the default, as in Stan) or
        a dict of constrained starting values.
    thin : int
        Keep every ``thin``-th draw.
    progress : bool
        Show one progress bar per chain.
    executor : concurrent.futures.Executor, optional
        Run chains on it (e.g. ``ProcessPoolExecutor``); the model ships with
        cloudpickle, so models defined in a notebook work.
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
        the potential from Python at every leapfrog step. ``"auto"`` (the
        default) is ``"native"`` when the potential has a native form and
        ``"python"`` otherwise; ``"native"`` raises if it has none. Warmup's
        adaptation, progress bars and Ctrl-C work the same with both.

    Returns
    -------
    arviz.InferenceData
        ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``
        and ``constant_data`` (+ warmup groups on request). If sampling was
        interrupted, the draws so far, with ``attrs["partial"] = True``; a
        chain that raised is dropped with a warning, listed in
        ``attrs["failed_chains"]``, and the others are kept and checked.
    """
    _check_options(algorithm, target_accept, max_tree_depth, num_steps, path_length, jitter)
    check_adapt(adapt, dense_mass)
    if draws < 1 or tune < 0 or chains < 1 or thin < 1:
        raise ValueError("draws and chains must be >= 1, tune >= 0 and thin >= 1")
    if kernel_backend not in ("auto", "native", "python"):
        raise ValueError(f"kernel_backend must be 'auto', 'native' or 'python', "
                         f"got {kernel_backend!r}")
    start = time.perf_counter()
    pot = make_potential(model, data, compile=compile)  # validates the model before sampling
    if kernel_backend == "native" and _native_form(pot) is None:
        raise ValueError(
            "kernel_backend='native' needs a potential compiled to native code, and this "
            "model's potential has no native form (compile=False, or a primitive without a "
            "native lowering); use kernel_backend='auto' to run the Python kernel instead")
    if seed is None:
        # A fresh seed, recorded in attrs["seed"], so any run can be repeated
        # exactly; 63 bits keep it an int64 that netCDF attributes can hold.
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    options = dict(draws=draws, tune=tune, algorithm=algorithm, target_accept=target_accept,
                   max_tree_depth=max_tree_depth, dense_mass=dense_mass, adapt=adapt, thin=thin,
                   warmup_draws=warmup_draws, num_steps=num_steps, path_length=path_length,
                   jitter=jitter)
    jobs = [_ChainJob(model, data, compile, c, s, init if init is not None else init_to_uniform(),
                      dict(options, progress=progress), kernel_backend=kernel_backend)
            for c, s in enumerate(root.spawn(chains))]
    if executor is None:
        results, errors = _run_sequential(jobs, pot)
    else:
        results, errors = _run_on_executor(jobs, executor, progress)
    sampling_time = time.perf_counter() - start
    return _package(pot, results, errors, chains=chains, coords=coords, dims=dims,
                    sampling_time=sampling_time, max_tree_depth=max_tree_depth,
                    algorithm=algorithm, log_likelihood=log_likelihood, seed=seed,
                    adaptation=_adaptation_attrs(adapt, tune))


def _check_options(algorithm, target_accept, max_tree_depth, num_steps, path_length, jitter):
    """Refuse options every chain would refuse, before any chain starts."""
    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
    if algorithm == "nuts":
        if max_tree_depth < 1:
            raise ValueError(f"max_tree_depth must be >= 1, got {max_tree_depth}")
        if num_steps is not None or path_length is not None or jitter:
            raise ValueError("num_steps, path_length and jitter apply to algorithm='hmc' only")
    else:
        if num_steps is not None and path_length is not None:
            raise ValueError("give num_steps or path_length, not both")
        if num_steps is not None and (int(num_steps) != num_steps or num_steps < 1):
            raise ValueError(f"num_steps must be an integer >= 1, got {num_steps}")
        if path_length is not None and not path_length > 0.0:
            raise ValueError(f"path_length must be > 0, got {path_length}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must lie in [0, 1), got {jitter}")


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
    stop = _StopFlag()
    relay = _ProgressRelay(jobs, progress)
    for job in jobs:
        job.stop = stop
    futures = {executor.submit(_run_pickled, cloudpickle.dumps(job)): job.chain for job in jobs}
    results, errors = {}, {}
    with stop.raised_by_ctrl_c():
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=relay.timeout, return_when=FIRST_COMPLETED)
                relay.redraw()
                for fut in finished:
                    try:
                        results[futures[fut]] = fut.result()
                    except Exception as exc:
                        errors[futures[fut]] = exc
        except KeyboardInterrupt:
            # Chains not started are cancelled; running ones see the flag within
            # a fraction of a second and return their draws so far.
            stop.raise_flag()
            for fut, chain in futures.items():
                if chain in results or chain in errors or fut.cancel():
                    continue
                try:
                    results[chain] = fut.result(timeout=60)
                except BaseException as exc:
                    errors[chain] = exc
        finally:
            stop.remove()
            relay.close()
    return results, errors


def _adaptation_attrs(adapt: str, tune: int) -> dict:
    """The warmup scheme and its windows, as ``plot_warmup`` reads them."""
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
        return {"inverse_metric": [np.asarray(m).tolist() for m in inverse_metrics]}
    rank = max(len(m.values) for m in inverse_metrics)
    dim = len(inverse_metrics[0].scale)

    def pad(m):
        k = len(m.values)
        return (np.hstack([m.vectors, np.zeros((dim, rank - k))]).tolist(),
                np.concatenate([m.values, np.ones(rank - k)]).tolist())

    padded = [pad(m) for m in inverse_metrics]
    return {
        "inverse_metric": [(m.scale**2 * (1.0 + (m.vectors**2) @ (m.values - 1.0))).tolist()
                           for m in inverse_metrics],
        "inverse_metric_scale": [m.scale.tolist() for m in inverse_metrics],
        "inverse_metric_rank": [len(m.values) for m in inverse_metrics],
        "inverse_metric_vectors": [vectors for vectors, _ in padded],
        "inverse_metric_values": [values for _, values in padded],
    }


def _package(pot, results, errors, *, chains, coords, dims, sampling_time, max_tree_depth,
             algorithm, log_likelihood, seed, adaptation):
    for chain, exc in sorted(errors.items()):
        warnings.warn(f"chain {chain} failed and was dropped: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
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
    q = np.stack([r.positions[:n] for r in done])
    stats = {k: np.stack([r.stats[k][:n] for r in done]) for k in done[0].stats}
    warm_q = warm_stats = None
    if done[0].warmup_positions is not None:
        m = min(len(r.warmup_positions) for r in done)
        warm_q = np.stack([r.warmup_positions[:m] for r in done])
        warm_stats = {k: np.stack([r.warmup_stats[k][:m] for r in done]) for k in done[0].warmup_stats}
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
        "partial": int(interrupted or bool(errors)),
        "failed_chains": sorted(errors),
    }
    if not isinstance(seed, np.random.SeedSequence):
        attrs["seed"] = seed
    # Chains keep their numbers when one is dropped, so the warning's "chain 2" is chain 2.
    coords = {"chain": kept, **(coords or {})}
    idata = draws_to_inference_data(pot, q, sample_stats=stats, warmup_q=warm_q,
                                    warmup_stats=warm_stats, coords=coords, dims=dims,
                                    attrs=attrs, log_likelihood=log_likelihood)
    if interrupted:
        warnings.warn(f"sampling stopped early: returning {len(done)} chain(s) of {n} draws",
                      RuntimeWarning, stacklevel=3)
    else:  # the chains that finished are still checked when another one failed
        check_sampling(idata, max_tree_depth=max_tree_depth, stacklevel=4)
    return idata
