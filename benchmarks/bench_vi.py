"""ADVI on a logistic regression (N=10,000, D=20): probad vs NumPyro and PyMC.

For each library: the cost of one optimisation step (compiled/jitted code,
compilation excluded), the wall time of a default fit from a cold start
(model checks and compilation included), and how far the fitted means are
from the posterior means of a NUTS reference run by probad, in posterior
sds (max over the 21 coefficients).

- probad: ``advi`` with its defaults (meanfield, Adam 0.1 in the guide's
  own scale, stops by its convergence rule).
- NumPyro: ``SVI`` with ``AutoNormal`` and ``Adam(0.01)``, 10,000 steps
  (NumPyro has no convergence rule; its docs' examples use fixed counts).
- PyMC: ``pm.fit(method="advi")`` (its default 10,000 steps).

NumPyro and PyMC are optional: each is skipped when not installed.

Run: ``python benchmarks/bench_vi.py``
"""
from __future__ import annotations

import time
import warnings

import numpy as np

N, D = 10_000, 20
REPEATS = 3


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    beta = rng.normal(0.0, 0.5, D)
    y = (rng.random(N) < 1.0 / (1.0 + np.exp(-(0.3 + X @ beta)))).astype(float)
    return X, y


# ---------------------------------------------------------------- probad
def probad_model():
    import probad as pb
    from probad import distributions as dist

    def logistic(X, y=None):
        alpha = pb.sample("alpha", dist.Normal(0.0, 5.0))
        beta = pb.sample("beta", dist.Normal(0.0, 1.0).expand((X.shape[1],)).to_event(1))
        with pb.plate("obs", X.shape[0]):
            pb.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    return logistic


def probad_reference(X, y):
    """NUTS posterior means and sds (4 chains x 1000 draws)."""
    import probad as pb

    idata = pb.hmc(probad_model(), {"X": X, "y": y}, draws=1000, tune=1000, chains=4, seed=0,
                   progress=False)
    post = idata.posterior
    mean = np.concatenate([[float(post["alpha"].mean())],
                           post["beta"].mean(("chain", "draw")).values])
    sd = np.concatenate([[float(post["alpha"].std())], post["beta"].std(("chain", "draw")).values])
    return mean, sd


def probad_bench(X, y):
    from probad.infer.advi import advi

    model, data = probad_model(), {"X": X, "y": y}
    start = time.perf_counter()
    fit = advi(model, data, seed=1, progress=False)
    cold = time.perf_counter() - start
    # Per-step cost: the difference of two fixed-length runs cancels the setup.
    best = np.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        advi(model, data, seed=2, steps=500, tol=None, progress=False)
        t1 = time.perf_counter()
        advi(model, data, seed=2, steps=2500, tol=None, progress=False)
        t2 = time.perf_counter()
        best = min(best, ((t2 - t1) - (t1 - t0)) / 2000)
    # The potential's own cost, for the share of the step that is ADVI's.
    q = fit.loc
    potential_cost = np.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(1000):
            fit.potential.value_and_grad(q)
        potential_cost = min(potential_cost, (time.perf_counter() - t0) / 1000)
    mean = np.concatenate([[fit.mean["alpha"]], fit.mean["beta"]])
    return {"per_step": best, "cold_fit": cold, "steps": fit.num_steps, "mean": mean,
            "note": f"{fit.convergence_reason.split(':')[0]}; potential "
                    f"{potential_cost * 1e6:.0f} us of each step"}


# --------------------------------------------------------------- NumPyro
def numpyro_bench(X, y, steps=10_000):
    import jax
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    jax.config.update("jax_enable_x64", True)

    def logistic(X, y=None):
        alpha = numpyro.sample("alpha", ndist.Normal(0.0, 5.0))
        beta = numpyro.sample("beta", ndist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", ndist.Bernoulli(logits=alpha + X @ beta), obs=y)

    def fit(seed, num_steps):
        guide = AutoNormal(logistic)
        svi = SVI(logistic, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
        result = svi.run(jax.random.PRNGKey(seed), num_steps, X, y, progress_bar=False)
        jax.block_until_ready(result.params)
        return guide, result

    start = time.perf_counter()
    guide, result = fit(1, steps)
    cold = time.perf_counter() - start
    # Per step: the jitted update in a Python loop (NumPyro's progress-bar
    # mode), compilation excluded by a warm-up call.
    svi = SVI(logistic, AutoNormal(logistic), numpyro.optim.Adam(0.01), Trace_ELBO())
    update = jax.jit(svi.update)
    state = svi.init(jax.random.PRNGKey(2), X, y)
    state, loss = update(state, X, y)
    jax.block_until_ready(loss)
    best = np.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(2000):
            state, loss = update(state, X, y)
        jax.block_until_ready(loss)
        best = min(best, (time.perf_counter() - t0) / 2000)
    med = guide.median(result.params)
    mean = np.concatenate([[float(med["alpha"])], np.asarray(med["beta"])])
    return {"per_step": best, "cold_fit": cold, "steps": steps, "mean": mean,
            "note": "fixed step count"}


# ------------------------------------------------------------------ PyMC
def pymc_bench(X, y):
    import logging

    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)  # one "Finished" line per fit otherwise

    def build():
        with pm.Model() as m:
            alpha = pm.Normal("alpha", 0.0, 5.0)
            beta = pm.Normal("beta", 0.0, 1.0, shape=D)
            pm.Bernoulli("y", logit_p=alpha + pm.math.dot(X, beta), observed=y)
        return m

    start = time.perf_counter()
    with build():
        approx = pm.fit(method="advi", random_seed=1, progressbar=False)
    cold = time.perf_counter() - start
    best = np.inf
    for _ in range(REPEATS):
        with build():
            t0 = time.perf_counter()
            pm.fit(500, method="advi", random_seed=2, progressbar=False)
            t1 = time.perf_counter()
        with build():
            t2 = time.perf_counter()
            pm.fit(2500, method="advi", random_seed=2, progressbar=False)
            t3 = time.perf_counter()
        best = min(best, ((t3 - t2) - (t1 - t0)) / 2000)
    post = approx.sample(4000, random_seed=3).posterior
    mean = np.concatenate([[float(post["alpha"].mean())],
                           post["beta"].mean(("chain", "draw")).values])
    return {"per_step": best, "cold_fit": cold, "steps": 10_000, "mean": mean,
            "note": "fixed step count (mean from 4000 draws)"}


def main():
    X, y = make_data()
    print(f"logistic regression, N={N}, D={D}: NUTS reference (probad, 4x1000 draws) ...")
    ref_mean, ref_sd = probad_reference(X, y)
    rows = {"probad advi": probad_bench(X, y)}
    for name, bench in (("NumPyro SVI", numpyro_bench), ("PyMC advi", pymc_bench)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows[name] = bench(X, y)
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
    base = rows["probad advi"]
    print(f"\n{'':14s} {'us/step':>9s} {'cold fit s':>11s} {'steps':>7s} "
          f"{'max |mean err|/sd':>18s}  stopping")
    for name, r in rows.items():
        err = np.max(np.abs(r["mean"] - ref_mean) / ref_sd)
        print(f"{name:14s} {r['per_step'] * 1e6:9.1f} {r['cold_fit']:11.2f} {r['steps']:7d} "
              f"{err:18.3f}  {r['note']}")
    for name, r in rows.items():
        if name == "probad advi":
            continue
        print(f"{name} / probad: per step x{r['per_step'] / base['per_step']:.2f}, "
              f"cold fit x{r['cold_fit'] / base['cold_fit']:.2f}")


if __name__ == "__main__":
    main()
