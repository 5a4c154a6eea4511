"""The cost of a Gibbs sweep against one NUTS transition.

For the models of ``tests/infer/test_gibbs.py`` (a zero-inflated Poisson
whose 80 indicators are updated from one compiled run, and a latent Poisson
count that takes random-walk Metropolis steps) and for a model whose
indicators are coupled across their plate (updated one entry at a time),
``pb.hmc`` is run with every sweep timed. Printed per model: the sweep's
cost, a NUTS transition's (the sampling time less the sweeps and the
gradient refreshed after each sweep), their ratio, and the sweep in
gradients of the compiled potential. Figures are medians over the run's
iterations (other processes only ever slow some of them down).

Run: ``python benchmarks/bench_gibbs.py``
"""
from __future__ import annotations

import time
import warnings

import numpy as onp

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.infer.gibbs import GibbsSteps, GibbsWarning
from tests.infer.test_enumerate import _zip_data
from tests.infer.test_gibbs import COUNT_DATA, latent_count, zip_gibbs


def coupled(y):
    p = pb.sample("p", dist.Beta(2.0, 2.0))
    with pb.plate("obs", len(y)):
        z = pb.sample("z", dist.Bernoulli(p))
    pb.sample("y", dist.Normal(np.sum(z), 1.0), obs=y)


def measure(label, model, data, draws=500, tune=300):
    sweep = GibbsSteps.__call__
    sweeps = []

    def timed(self, rng, q, tune=False):
        start = time.perf_counter()
        out = sweep(self, rng, q, tune)
        sweeps.append(time.perf_counter() - start)
        return out

    GibbsSteps.__call__ = timed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pb.hmc(model, data, draws=50, tune=50, chains=1, seed=0, progress=False, cores=1)
            sweeps.clear()
            idata = pb.hmc(model, data, draws=draws, tune=tune, chains=1, seed=1,
                           progress=False, cores=1)
    finally:
        GibbsSteps.__call__ = sweep
    pot = pb.infer.potential(model, data, gibbs=True)
    q = pot.initial_point(seed=0)
    pot.value_and_grad(q)
    gradient = min(_timed(lambda: pot.value_and_grad(q)) for _ in range(200))
    iterations = draws + tune
    # Sampling time = transitions + sweeps + one gradient after each sweep.
    per_sweep = float(onp.median(sweeps))
    transition = (idata.attrs["sampling_time"] - sum(sweeps)) / iterations - gradient
    print(f"{label:<34} sweep {per_sweep * 1e6:8.1f} us   NUTS transition "
          f"{transition * 1e6:8.1f} us   sweep/transition {per_sweep / transition:5.2f}   "
          f"sweep/gradient {per_sweep / gradient:6.1f}   ({idata.attrs['discrete_sampling']})")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    warnings.simplefilter("ignore", GibbsWarning)
    measure("zero-inflated Poisson, n=80", zip_gibbs, _zip_data())
    measure("latent Poisson count", latent_count, COUNT_DATA)
    measure("coupled indicators, n=20", coupled, {"y": onp.full(20, 8.0)})
