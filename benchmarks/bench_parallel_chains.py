"""What running chains in worker processes costs and saves (issues 13 and 14).

Prints, for eight schools (cheap) and a 2,000-point logistic regression
(dearer) at Stan's default length, and for a short run of eight schools, the
wall time of ``pb.hmc`` with the chains run one after another
(``cores=1``), on a freshly started pool, on the kept pool, and with the
default ``cores=None`` (which chooses), plus the fixed costs behind the
choice: starting a pool, starting the progress bars' manager process, and
building the potential. Ratios are to the sequential run.

Then, for the end-to-end models (``bench_nuts.py``'s GARCH(1,1) T=200, eight
schools, radon and hmm_example, 4 x (1000 + 1000)), the whole call with
``cores=1`` and on the kept 2-process pool, taking turns, and what a worker
pays for its potential: building it and adopting the driver's native tapes,
against building it and recording the tapes itself (what every pooled chain
did before the tapes travelled with the job).

    PYTHONPATH=.:benchmarks python benchmarks/bench_parallel_chains.py [--models garch11,...]

Measured here (2 CPUs shared with other jobs at load 7-9), pooled /
sequential, before the tapes travelled with the job and after; each figure
one turn:

=============  ===================  ===================  =======================
model          wall before / after  CPU before / after   a worker's potential
                                                         after (before)
=============  ===================  ===================  =======================
GARCH(1,1)     1.68 1.41 / 1.02     1.95 1.71 / 1.00     0.003 s (0.74-1.44 s)
               1.02 0.97            0.94 1.01 1.08
eight schools  1.09 1.17 / 0.96     1.17 1.09 / 1.06     0.001 s (0.008-0.036 s)
               1.13 1.08 0.63       0.62 1.06 1.09
radon          1.50 1.01 / 1.09     1.06 1.07 / 1.40     0.001 s (0.010-0.023 s)
               0.98 1.44 0.95       0.97 0.92 1.05
hmm_example    1.52 1.15 / 1.05     1.79 1.31 / 1.06     0.002 s (0.17-0.31 s)
               1.11 1.19 1.12       1.05 1.11 1.19
=============  ===================  ===================  =======================

At that load the pool saves no wall time: the kernel schedules by session
(autogroup), so two workers share the one session's slice of the CPUs (the
calls got about 0.4 CPU). CPU time is then the figure that counts, and the
pool's extra CPU was the workers' recording. An idle machine gives each
worker a CPU; it was not idle during these runs.
"""
import argparse
import contextlib
import multiprocessing
import os
import time
import warnings

import numpy as onp

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.infer import mcmc
from tests.models import EIGHT_SCHOOLS, eight_schools_noncentered


def logistic(x, y):
    beta = pb.sample("beta", dist.Normal(0.0, 1.0).expand((x.shape[1],)).to_event(1))
    with pb.plate("n", x.shape[0]):
        pb.sample("y", dist.Bernoulli(logits=np.dot(x, beta)), obs=y)


def logistic_data(n=2000, k=5, seed=0):
    rng = onp.random.default_rng(seed)
    x = rng.normal(size=(n, k))
    y = (rng.random(n) < 1 / (1 + onp.exp(-x @ rng.normal(size=k)))).astype(float)
    return {"x": x, "y": y}


def timed(fn):
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def run(model, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pb.hmc(model, data, chains=4, seed=1, progress=False, **RUN, **options)


RUN = {}


def fixed_costs():
    mcmc._shared_pool.discard()
    start, pool = timed(lambda: mcmc._shared_pool.get(2))
    first_task, _ = timed(lambda: pool.submit(abs, -1).result())
    manager, m = timed(multiprocessing.Manager)
    m.shutdown()
    mcmc._shared_pool.discard()
    print(f"pool of 2 started in {start * 1e3:.0f} ms, first task back after "
          f"{first_task * 1e3:.0f} ms; progress manager process {manager * 1e3:.0f} ms")


def compare(name, model, data, **run_options):
    RUN.clear()
    RUN.update(run_options)
    build, pot = timed(lambda: pb.potential(model, data))
    first, steady = mcmc._gradient_seconds(pot)
    sequential, a = timed(lambda: run(model, data, cores=1))
    mcmc._shared_pool.discard()
    fresh, b = timed(lambda: run(model, data, cores=2))
    kept, c = timed(lambda: run(model, data, cores=2))
    mcmc._shared_pool.discard()  # the default run starts from a fresh process's state
    default, d = timed(lambda: run(model, data))
    chosen = "pool" if mcmc._shared_pool.executor is not None else "sequential"
    mcmc._shared_pool.discard()
    same = all(onp.array_equal(a.posterior[v].values, o.posterior[v].values)
               for o in (b, c, d) for v in a.posterior.data_vars)
    print(f"\n{name}: build {build * 1e3:.0f} ms + start and first gradient {first * 1e3:.1f} ms, "
          f"then {steady * 1e6:.0f} us per gradient")
    print(f"  sequential (cores=1)   {sequential:6.2f} s   1.00")
    print(f"  fresh pool (cores=2)   {fresh:6.2f} s   {fresh / sequential:.2f}")
    print(f"  kept pool  (cores=2)   {kept:6.2f} s   {kept / sequential:.2f}")
    print(f"  default (cores=None)   {default:6.2f} s   {default / sequential:.2f}   "
          f"chose {chosen}")
    print(f"  same draws every way: {same}")


def worker_build(name, adopt: bool) -> float:
    """In a worker: seconds to build ``name``'s potential and be ready to
    replay its value and gradient, adopting the driver's tapes or recording."""
    from bench_nuts import make_data, probad_model

    from probad.infer.density import potential

    data = make_data(name)
    tic = time.perf_counter()
    pot = potential(probad_model(name), data, backend="auto", gibbs=True)
    if adopt:
        pot.adopt(DRIVER_TAPES[name])
    pot.value_and_grad(pot.initial_point(seed=0))
    return time.perf_counter() - tic


DRIVER_TAPES = {}  # model -> the driver's native tapes, as a forked worker inherits them


def cpu_seconds() -> float:
    """User and system CPU time of this process and its live worker processes."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def end_to_end(names, turns=2):
    """Sequential and pooled whole calls, taking turns, and a worker's build."""
    from bench_nuts import make_data, probad_model

    def call(name, cores):
        used = cpu_seconds()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wall, idata = timed(lambda: pb.hmc(probad_model(name), make_data(name), chains=4,
                                               seed=1, progress=False, cores=cores))
        return wall, cpu_seconds() - used, idata

    print("\nwhole call, 4 x (1000 + 1000): sequential (cores=1) / on the kept pool "
          "(cores=2), taking turns; wall time and CPU time (this process and its workers)")
    for name in names:
        call(name, 1)  # this process's first loads and compilations are not the pool's
        pot = pb.potential(probad_model(name), make_data(name))
        pot.value_and_grad(pot.initial_point(seed=0))
        DRIVER_TAPES[name] = pot.native_tapes()
        mcmc._shared_pool.discard()  # forks after DRIVER_TAPES is set
        pool = mcmc._shared_pool.get(2)
        pool.submit(abs, -1).result()
        turns_seen, same = [], True
        for _ in range(turns):
            *sequential, a = call(name, 1)
            *pooled, b = call(name, 2)
            turns_seen.append((sequential, pooled))
            same &= all(onp.array_equal(a.posterior[v].values, b.posterior[v].values)
                        for v in a.posterior.data_vars)
        adopting = min(pool.submit(worker_build, name, True).result() for _ in range(3))
        recording = min(pool.submit(worker_build, name, False).result() for _ in range(3))
        print(f"  {name:<14}" + "   ".join(
            f"wall {sw:5.2f} / {pw:5.2f} s = {pw / sw:.2f}, CPU {sc:5.2f} / {pc:5.2f} s = "
            f"{pc / sc:.2f}" for (sw, sc), (pw, pc) in turns_seen) + f"   same draws: {same}")
        print(f"  {'':<14}a worker's potential: {adopting:.3f} s adopting the driver's tapes, "
              f"{recording:.3f} s recording its own")
    mcmc._shared_pool.discard()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="garch11,eight_schools,radon,hmm_example")
    parser.add_argument("--only-end-to-end", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    end_to_end(args.models.split(","))
    if args.only_end_to_end:
        raise SystemExit
    fixed_costs()
    compare("eight schools, 4 x (1000 + 1000)", eight_schools_noncentered, EIGHT_SCHOOLS)
    compare("logistic n=2000 k=5, 4 x (1000 + 1000)", logistic, logistic_data())
    compare("eight schools, a short run: 4 x (50 + 50)", eight_schools_noncentered, EIGHT_SCHOOLS,
            draws=50, tune=50)
