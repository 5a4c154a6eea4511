"""What running chains in worker processes costs and saves (issue 14 item 4).

Prints, for eight schools (cheap) and a 2,000-point logistic regression
(dearer) at Stan's default length, and for a short run of eight schools, the
wall time of ``pb.hmc`` with the chains run one after another
(``cores=1``), on a freshly started pool, on the kept pool, and with the
default ``cores=None`` (which chooses), plus the fixed costs behind the
choice: starting a pool, starting the progress bars' manager process, and
building the potential. Ratios are to the sequential run.

    PYTHONPATH=. python benchmarks/bench_parallel_chains.py
"""
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


if __name__ == "__main__":
    print(f"{os.cpu_count()} CPUs")
    fixed_costs()
    compare("eight schools, 4 x (1000 + 1000)", eight_schools_noncentered, EIGHT_SCHOOLS)
    compare("logistic n=2000 k=5, 4 x (1000 + 1000)", logistic, logistic_data())
    compare("eight schools, a short run: 4 x (50 + 50)", eight_schools_noncentered, EIGHT_SCHOOLS,
            draws=50, tune=50)
