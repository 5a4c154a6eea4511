"""Eight-schools SBC on a 2-worker Dask LocalCluster against a 2-process
ProcessPoolExecutor (issue 17's throughput target: Dask within 1.2x).

Both run the same simulations with the same seed, taking turns in rounds
(this machine is noisy: a slow spell then hits both); the fits whose ranks
differ between the two are listed (there should be none). Also printed: the time per fit against one ``pb.hmc`` call
of the same settings, sequential, in this process.

Run: ``python benchmarks/bench_sbc.py [num_simulations] [rounds]``
(defaults 200 and 1; needs the dask extra).
"""
from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as onp

import probad as pb
from probad.examples.eight_schools import SIGMA, Y
from probad.examples.eight_schools import model as eight_schools

DATA = {"J": 8, "sigma": SIGMA, "y": Y}  # y is simulated anew for every fit
OPTIONS = dict(draws=1000, tune=1000, chains=4)


def timed_sbc(executor, n):
    start = time.perf_counter()
    result = pb.sbc(eight_schools, DATA, num_simulations=n, seed=1, executor=executor,
                    progress=False, **OPTIONS)
    return time.perf_counter() - start, result


def main(n: int = 200, rounds: int = 1) -> None:
    from distributed import Client, LocalCluster

    warnings.simplefilter("ignore")
    pb.hmc(eight_schools, DATA, seed=1, progress=False, **OPTIONS)  # imports, numba's cache
    start = time.perf_counter()
    pb.hmc(eight_schools, DATA, seed=2, progress=False, **OPTIONS)
    one_fit = time.perf_counter() - start
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    times = {"dask": [], "pool": []}
    try:
        for _ in range(rounds):
            t_dask, r_dask = timed_sbc(client.get_executor(), n)
            with ProcessPoolExecutor(2) as pool:
                t_pool, r_pool = timed_sbc(pool, n)
            times["dask"].append(t_dask)
            times["pool"].append(t_pool)
            # Inside the workers: a fit's own seconds, free of scheduling and
            # of the workers' start (Dask's are fresh processes that import
            # probad and load numba's cache; the pool's are forked from here).
            for name, result in (("dask", r_dask), ("pool", r_pool)):
                seconds = result.diagnostics["seconds"].values
                print(f"  {name}: median fit {onp.median(seconds):.2f} s, slowest "
                      f"{seconds.max():.2f} s, sum {seconds.sum():.1f} s")
            differ = sorted({int(i) for name in r_pool.ranks.data_vars
                             for i in onp.nonzero(onp.any(
                                 (r_dask.ranks[name].values != r_pool.ranks[name].values)
                                 .reshape(n, -1), axis=1))[0]})
            print(f"  fits whose ranks differ between Dask and the pool: {differ or 'none'}")
    finally:
        client.close()
        cluster.close()
    ratios = [d / p for d, p in zip(times["dask"], times["pool"])]
    print(f"eight schools SBC, {n} simulations, 4 x (1000 + 1000) per fit, {rounds} round(s)")
    print(f"  ProcessPoolExecutor(2): {', '.join(f'{t:.1f}' for t in times['pool'])} s")
    print(f"  Dask LocalCluster(2):   {', '.join(f'{t:.1f}' for t in times['dask'])} s")
    print(f"  Dask / pool: {', '.join(f'{r:.2f}' for r in ratios)} (target <= 1.2)")
    per_fit = min(times["pool"]) * 2 / n
    print(f"  one pb.hmc call here: {one_fit:.2f} s; per fit on the pool (x 2 workers): "
          f"{per_fit:.2f} s = {per_fit / one_fit:.2f} x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
