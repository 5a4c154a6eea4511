"""NUTS end to end: probad against PyMC and NumPyro on three models.

Models (the PyMC and NumPyro versions are in ``peer_models.py``):

- eight schools, non-centred (10 parameters);
- logistic regression, N=10,000, D=20, with an intercept (21 parameters);
- radon-like varying intercepts, 919 observations in 85 groups (89 parameters).

Each tool runs 4 chains of 1000 warmup + 1000 draws at its defaults, in a
process of its own (so no tool's imports, threads or caches affect another):
probad sequentially and on a 2-process pool, PyMC (C backend) with
``cores=1`` and with its default, NumPyro (float64, like the others) with
``chain_method="sequential"`` and ``"vectorized"``. Per run:

- ``min ESS``: the smallest bulk ESS over the free parameters' scalars;
- ``grads``: leapfrog steps (= gradient evaluations) of the kept draws, the
  sum of ``n_steps`` (``num_steps`` for NumPyro);
- ``wall s``: the sampling call, model to ``InferenceData``, in a process
  that has not run the model before: each tool's compilation is included
  (PyMC's compiled C is cached on disk between processes);
- ``samp s``: sampling alone, as probad (``attrs["sampling_time"]``) and
  PyMC (``posterior.attrs["sampling_time"]``) report it; NumPyro reports
  none, so its run time less the compile time JAX reports (for which NumPyro
  runs with synchronous dispatch, so that compiling and executing do not
  overlap; its wall time loses that overlap too);
- ``cold s`` (eight schools): process launch, imports included, to ``InferenceData``;
- ``div``: divergences after warmup; ``step``: the mean adapted step size,
  the one sampling uses (PyMC's ``step_size_bar``: its ``step_size`` stat is
  warmup's last dual-averaging iterate); ``acc``: the mean acceptance
  statistic after warmup, which every tool's warmup aims at 0.8.

PyMC's lead in ESS/grad on the logistic regression and radon comes from its
warmup, not its kernel (the same as Stan's): it does not restart dual
averaging after a metric update and ends at acceptance ~0.81, where Stan's
warmup (probad, NumPyro) ends at ~0.86-0.90 with a 20-25% smaller step;
``bench_nuts_step_size.py`` shows it.

Targets: ESS/grad at least 0.9x the better of PyMC and NumPyro; ESS/s at
least 1.0x the best peer on the logistic regression and 0.5x on the others.

Then the per-call cost of each model's potential value and gradient:
compiled and eager probad, numpy by hand, NumPyro's potential under
``jax.jit`` and PyMC's compiled ``logp_dlogp``, checked to agree first.

Run: ``python benchmarks/bench_nuts.py`` (about 10 minutes on two busy cores;
``--quick``: 300 + 300 iterations and one configuration per tool).
The machine's other load shows in every wall-clock figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as onp

from peer_models import FREE_VARIABLES, numpyro_model, numpyro_value_and_grad, pymc_model, \
    pymc_value_and_grad

CHAINS = 4
SEED = 1
MODELS = ["eight_schools", "logistic", "radon"]
TOOLS = ["probad", "probad pool(2)", "pymc cores=1", "pymc", "numpyro sequential",
         "numpyro vectorized"]
QUICK_TOOLS = ["probad", "pymc", "numpyro vectorized"]


# ------------------------------------------------------------------- data
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTERIORDB_DATA = pathlib.Path(ROOT) / "tests" / "data" / "posteriordb"
POSTERIORDB = {"hmm_example": "hmm_example-hmm_example", "arma11": "arma-arma11"}


def make_data(name: str) -> dict:
    """The model's keyword arguments, from fixed seeds."""
    if name == "eight_schools":
        return {"J": 8, "sigma": onp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
                "y": onp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])}
    if name == "logistic":
        rng = onp.random.default_rng(20)
        X = rng.normal(size=(10_000, 20))
        logits = 0.5 + X @ rng.normal(size=20)  # true coefficients drawn from their prior
        return {"X": X, "y": (rng.uniform(size=10_000) < 1 / (1 + onp.exp(-logits))).astype(float)}
    if name == "radon":
        from bench_compile import radon_like_data  # imports probad: not for the cold-time runs

        d = radon_like_data()
        return {"group": d["county"], "x": d["floor"], "n_groups": d["n_counties"],
                "y": d["log_radon"]}
    if name in POSTERIORDB:
        d = json.loads((POSTERIORDB_DATA / POSTERIORDB[name] / "data.json").read_text())
        return {"N": d["N"], "K": d["K"], "y": onp.asarray(d["y"], dtype=float)} \
            if name == "hmm_example" else {"T": d["T"], "y": onp.asarray(d["y"], dtype=float)}
    if name == "garch11":
        from tests.models import garch_data  # imports probad: not for the cold-time runs

        return garch_data(T=200)
    raise KeyError(name)


# ---------------------------------------------------------- probad models
def probad_model(name: str):
    """The probad model function of benchmark ``name`` (data as keyword arguments)."""
    import probad as pb
    from probad import distributions as dist

    def eight_schools(J, sigma, y=None):
        mu = pb.sample("mu", dist.Normal(0.0, 5.0))
        tau = pb.sample("tau", dist.HalfCauchy(5.0))
        with pb.plate("school", J):
            theta_t = pb.sample("theta_t", dist.Normal(0.0, 1.0))
            theta = pb.deterministic("theta", mu + tau * theta_t)
            pb.sample("y", dist.Normal(theta, sigma), obs=y)

    def logistic(X, y=None):
        alpha = pb.sample("alpha", dist.Normal(0.0, 5.0))
        beta = pb.sample("beta", dist.Normal(0.0, 1.0).expand((X.shape[1],)).to_event(1))
        with pb.plate("obs", X.shape[0]):
            pb.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    def radon(group, x, n_groups, y=None):
        mu_a = pb.sample("mu_a", dist.Normal(0.0, 10.0))
        sigma_a = pb.sample("sigma_a", dist.HalfNormal(5.0))
        with pb.plate("groups", n_groups):
            a = pb.sample("a", dist.Normal(mu_a, sigma_a))
        b = pb.sample("b", dist.Normal(0.0, 10.0))
        sigma_y = pb.sample("sigma_y", dist.HalfNormal(5.0))
        with pb.plate("obs", len(group)):
            pb.sample("y", dist.Normal(a[group] + b * x, sigma_y), obs=y)

    if name in POSTERIORDB:
        from tests import posteriordb_models

        return getattr(posteriordb_models, name)
    if name == "garch11":
        from tests.models import garch11

        return garch11
    return {"eight_schools": eight_schools, "logistic": logistic, "radon": radon}[name]


# ------------------------------------------------- one run per tool (child)
def timed(sample) -> tuple:
    """``sample()``, its duration, and the wall-clock time it returned."""
    start = time.perf_counter()
    idata = sample()
    return idata, time.perf_counter() - start, time.time()


def run_probad(name, data, draws, tune, pool, cores=None) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    import probad as pb

    options = dict(draws=draws, tune=tune, chains=CHAINS, seed=SEED, progress=False, cores=cores)

    def sample():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pb.infer.SamplingWarning)
            if not pool:
                return pb.hmc(probad_model(name), data, **options)
            with ProcessPoolExecutor(max_workers=2) as executor:
                return pb.hmc(probad_model(name), data, executor=executor, **options)

    idata, wall, finished = timed(sample)
    return dict(idata=idata, grads=int(idata.sample_stats["n_steps"].sum()), wall=wall,
                finished=finished, sampling=idata.attrs["sampling_time"],
                step_size=float(onp.mean(idata.attrs["step_size"])),
                accept=float(idata.sample_stats["acceptance_rate"].mean()))


def run_pymc(name, data, draws, tune, cores, mode=None) -> dict:
    """PyMC's NUTS; ``mode``: PyTensor's compile mode ("NUMBA"), None for its default (C)."""
    import pymc as pm

    def sample():
        with pymc_model(name, data):
            return pm.sample(draws=draws, tune=tune, chains=CHAINS, cores=cores,
                             random_seed=SEED, progressbar=False,
                             compile_kwargs=None if mode is None else {"mode": mode})

    idata, wall, finished = timed(sample)
    # PyMC samples at exp(x_bar), its ``step_size_bar``; its ``step_size`` stat
    # is the last dual-averaging iterate x_t of warmup, which it never uses.
    return dict(idata=idata, grads=int(idata.sample_stats["n_steps"].sum()), wall=wall,
                finished=finished, sampling=idata.posterior.attrs["sampling_time"],
                step_size=float(idata.sample_stats["step_size_bar"].mean()),
                accept=float(idata.sample_stats["acceptance_rate"].mean()))


def run_numpyro(name, data, draws, tune, chain_method) -> dict:
    import arviz as az
    import jax
    import jax.monitoring
    from numpyro.infer import MCMC, NUTS

    # NumPyro reports no sampling time and compiles its sampler at every run.
    # JAX reports how long tracing, lowering and compiling take; the run's
    # time less those intervals is the sampling time, provided that nothing
    # executes while something compiles: hence synchronous dispatch.
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    compiling = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **_: compiling.append((time.perf_counter() - seconds,
                                                      time.perf_counter()))
        if event.startswith("/jax/core/compile/") else None)
    start = time.perf_counter()
    mcmc = MCMC(NUTS(numpyro_model(name)), num_warmup=tune, num_samples=draws,
                num_chains=CHAINS, chain_method=chain_method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(SEED), extra_fields=("num_steps", "accept_prob"), **data)
    sampling = time.perf_counter() - start - _covered(compiling)
    idata = az.from_numpyro(mcmc)
    wall, finished = time.perf_counter() - start, time.time()
    return dict(idata=idata, grads=int(mcmc.get_extra_fields()["num_steps"].sum()), wall=wall,
                finished=finished, sampling=sampling,
                step_size=float(onp.mean(mcmc.last_state.adapt_state.step_size)),
                accept=float(mcmc.get_extra_fields()["accept_prob"].mean()))


def _covered(intervals) -> float:
    """Length of the union of ``(start, end)`` intervals (nested compilations
    report overlapping ones)."""
    total, reached = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def run_tool(tool, name, data, draws, tune) -> dict:
    """Sample with ``tool``: the ``idata``, ``grads``, ``wall`` (seconds of the
    sampling call), ``finished`` (``time.time()`` when the InferenceData was
    ready), ``sampling`` (the tool's own sampling time, without compilation
    and conversion), the mean adapted ``step_size`` of the chains and the
    mean acceptance statistic ``accept`` of the kept draws."""
    if tool.startswith("probad"):
        return run_probad(name, data, draws, tune, pool="pool" in tool)
    if tool.startswith("pymc"):
        return run_pymc(name, data, draws, tune, cores=1 if "cores=1" in tool else None)
    return run_numpyro(name, data, draws, tune, chain_method=tool.split()[1])


def min_bulk_ess(idata, name) -> float:
    """The smallest bulk ESS over benchmark ``name``'s free variables."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(idata.posterior[FREE_VARIABLES[name]], method="bulk")
    return min(float(onp.min(ess[v].values)) for v in ess.data_vars)


def child_record(run, name, launched) -> dict:
    """What every benchmark's child process reports of one sampling run."""
    return {"min_ess": min_bulk_ess(run["idata"], name), "grads": run["grads"],
            "wall": run["wall"], "sampling": run["sampling"], "cold": run["finished"] - launched}


def launch(script, tool, name, draws, tune) -> subprocess.CompletedProcess:
    """Run ``script --child tool name draws tune launched`` in a fresh process
    (so each tool pays its own imports and compilation), from the repository
    root with benchmarks/ importable."""
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "benchmarks")]))
    args = [sys.executable, os.path.abspath(script), "--child", tool, name, str(draws),
            str(tune), repr(time.time())]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)


def add_child_option(parser: argparse.ArgumentParser) -> None:
    """The hidden ``--child TOOL MODEL DRAWS TUNE LAUNCHED`` that :func:`launch` passes."""
    parser.add_argument("--child", nargs=5, metavar=("TOOL", "MODEL", "DRAWS", "TUNE", "LAUNCHED"),
                        help=argparse.SUPPRESS)


def run_child(args, child) -> bool:
    """If this process was launched as a child, run ``child(tool, name, draws,
    tune, launched)`` with the arguments converted, and say so."""
    if not args.child:
        return False
    tool, name, draws, tune, launched = args.child
    child(tool, name, int(draws), int(tune), float(launched))
    return True


def enable_x64_for(tool) -> None:
    if tool.startswith("numpyro"):
        import numpyro

        numpyro.enable_x64()  # float64 like probad and PyMC


def child(tool, name, draws, tune, launched):
    """Run one tool on one model in this (fresh) process; print a JSON line."""
    enable_x64_for(tool)
    run = run_tool(tool, name, make_data(name), draws, tune)
    print(json.dumps(dict(child_record(run, name, launched), step_size=run["step_size"],
                          accept=run["accept"],
                          divergences=int(run["idata"].sample_stats["diverging"].sum()))))


def measure(tool, name, draws, tune) -> dict:
    done = launch(__file__, tool, name, draws, tune)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} on {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------ the table
def print_table(results, draws, tune):
    print(f"\nNUTS, {CHAINS} chains x ({tune} warmup + {draws} draws), each tool at its defaults")
    print(f"{'model':<14}{'tool':<20}{'min ESS':>8}{'grads':>9}{'ESS/grad':>9}{'wall s':>8}"
          f"{'ESS/s':>7}{'samp s':>8}{'ESS/s*':>7}{'cold s':>8}{'div':>4}{'step':>7}{'acc':>6}")
    for name in MODELS:
        for tool, r in results[name].items():
            cold = f"{r['cold']:8.1f}" if name == "eight_schools" else ""
            print(f"{name:<14}{tool:<20}{r['min_ess']:8.0f}{r['grads']:9d}"
                  f"{r['min_ess'] / r['grads']:9.4f}{r['wall']:8.1f}{r['min_ess'] / r['wall']:7.0f}"
                  f"{r['sampling']:8.1f}{r['min_ess'] / r['sampling']:7.0f}"
                  f"{cold:>8}{r['divergences']:4d}{r['step_size']:7.3f}{r['accept']:6.2f}")
    print("ESS/s: per second of the sampling call (compilation and conversion included); "
          "ESS/s*: per second of\nsampling alone (probad and PyMC as they report it, NumPyro's "
          "run less JAX's compile time).")
    print("\nprobad against the best peer (targets: ESS/grad >= 0.9x; ESS/s >= 1.0x on "
          "logistic, >= 0.5x on the others)")
    for name in MODELS:
        rows = results[name]
        peers = [tool for tool in rows if not tool.startswith("probad")]
        target = {"grad": 0.9, "wall": 1.0 if name == "logistic" else 0.5}
        target["sampling"] = target["wall"]
        for tool in [tool for tool in rows if tool.startswith("probad")]:
            parts = []
            for key, label in (("grads", "ESS/grad"), ("wall", "ESS/s"), ("sampling", "ESS/s*")):
                rate = {t: rows[t]["min_ess"] / rows[t][key] for t in rows}
                best = max(peers, key=rate.get)
                ratio = rate[tool] / rate[best]
                met = ratio >= target["grad" if key == "grads" else key]
                parts.append(f"{label} {ratio:5.2f}x {best:<19}{'met' if met else 'MISSED':<7}")
            print(f"  {name:<14}{tool:<15} " + "".join(parts))


# -------------------------------------------------- per-call potentials
def by_hand(name, data, sites):
    """The potential ``U(q)`` and its gradient written out in numpy, on
    probad's layout of ``q`` (``sites``: name -> slice)."""
    log_2pi = math.log(2 * math.pi)

    if name == "eight_schools":
        y, sigma = data["y"], data["sigma"]

        def value_and_grad(q):
            mu, u, theta_t = q[sites["mu"]][0], q[sites["tau"]][0], q[sites["theta_t"]]
            tau = math.exp(u)
            r = (y - mu - tau * theta_t) / sigma**2
            log_p = (-0.5 * (mu / 5.0) ** 2 - math.log(5.0) - 0.5 * log_2pi
                     + math.log(2 / (math.pi * 5.0)) - math.log1p((tau / 5.0) ** 2) + u
                     - 0.5 * theta_t @ theta_t - 4 * log_2pi
                     - 0.5 * r @ (r * sigma**2) - onp.log(sigma).sum() - 4 * log_2pi)
            grad = onp.empty_like(q)
            grad[sites["mu"]] = -mu / 25.0 + r.sum()
            grad[sites["tau"]] = tau * (-2 * tau / (25.0 + tau**2) + r @ theta_t) + 1.0
            grad[sites["theta_t"]] = -theta_t + tau * r
            return -log_p, -grad

    elif name == "logistic":
        X, y = data["X"], data["y"]

        def value_and_grad(q):
            alpha, beta = q[sites["alpha"]][0], q[sites["beta"]]
            z = alpha + X @ beta
            log_p = (-0.5 * (alpha / 5.0) ** 2 - math.log(5.0) - 0.5 * log_2pi
                     - 0.5 * beta @ beta - 0.5 * len(beta) * log_2pi
                     + y @ z - onp.logaddexp(0.0, z).sum())
            residual = y - 0.5 * (1.0 + onp.tanh(0.5 * z))  # y - sigmoid(z), overflow-free
            grad = onp.empty_like(q)
            grad[sites["alpha"]] = -alpha / 25.0 + residual.sum()
            grad[sites["beta"]] = -beta + X.T @ residual
            return -log_p, -grad

    else:
        group, x, y = data["group"], data["x"], data["y"]
        n_groups = data["n_groups"]

        def half_normal_log_prob(value, scale):
            return 0.5 * math.log(2 / math.pi) - math.log(scale) - 0.5 * (value / scale) ** 2

        def value_and_grad(q):
            mu_a, b = q[sites["mu_a"]][0], q[sites["b"]][0]
            u_a, u_y, a = q[sites["sigma_a"]][0], q[sites["sigma_y"]][0], q[sites["a"]]
            sigma_a, sigma_y = math.exp(u_a), math.exp(u_y)
            d = a - mu_a
            e = y - a[group] - b * x
            log_p = (-0.5 * (mu_a / 10.0) ** 2 - 0.5 * (b / 10.0) ** 2
                     - 2 * (math.log(10.0) + 0.5 * log_2pi)
                     + half_normal_log_prob(sigma_a, 5.0) + u_a
                     + half_normal_log_prob(sigma_y, 5.0) + u_y
                     - 0.5 * d @ d / sigma_a**2 - n_groups * (math.log(sigma_a) + 0.5 * log_2pi)
                     - 0.5 * e @ e / sigma_y**2 - len(y) * (math.log(sigma_y) + 0.5 * log_2pi))
            r = e / sigma_y**2
            grad = onp.empty_like(q)
            grad[sites["a"]] = -d / sigma_a**2 + onp.bincount(group, r, minlength=n_groups)
            grad[sites["mu_a"]] = -mu_a / 100.0 + d.sum() / sigma_a**2
            grad[sites["b"]] = -b / 100.0 + r @ x
            grad[sites["sigma_a"]] = -(sigma_a / 5.0) ** 2 - n_groups + d @ d / sigma_a**2 + 1.0
            grad[sites["sigma_y"]] = -(sigma_y / 5.0) ** 2 - len(y) + e @ e / sigma_y**2 + 1.0
            return -log_p, -grad

    return value_and_grad


def bench_potentials():
    """Per-call value and gradient of each model's potential, five ways."""
    import jax
    from bench_compile import report, seconds_per_call_each

    import probad as pb

    jax.config.update("jax_enable_x64", True)
    for name in MODELS:
        data = make_data(name)
        compiled = pb.potential(probad_model(name), data)
        eager = pb.potential(probad_model(name), data, compile=False)
        q = compiled.initial_point(seed=0)
        sites = {s.name: slice(s.offset, s.offset + s.size) for s in compiled.sites.values()}
        # Unconstrained values by site name: positive scales on the log scale in every tool.
        values = {s: q[sl].reshape(compiled.sites[s].unconstrained_shape)
                  for s, sl in sites.items()}
        reference = compiled.value_and_grad(q)
        hand = by_hand(name, data, sites)
        jitted, jax_q = numpyro_value_and_grad(name, data, values)
        model = pymc_model(name, data)
        positive = {"tau", "sigma_a", "sigma_y"}
        logp_dlogp, pymc_q = pymc_value_and_grad(
            model, {f"{k}_log__" if k in positive else k: v for k, v in values.items()})

        def pymc_energy(flat):
            log_p, grad = logp_dlogp(flat)
            return -log_p, -grad

        candidates = {"eager probad": (eager.value_and_grad, q), "numpy by hand": (hand, q),
                      "jax.jit (numpyro)": (lambda v: jax.block_until_ready(jitted(v)), jax_q),
                      "pymc logp_dlogp (C)": (pymc_energy, pymc_q)}
        for label, (fun, point) in candidates.items():
            _check_agrees(label, fun(point), reference, _layout(label, sites, values, model))
        timings = seconds_per_call_each({"compiled probad": (compiled.value_and_grad, q),
                                         **candidates})
        report(f"{name} (dim {compiled.dim}): potential value and gradient per call", timings)


def _layout(label, sites, values, pymc):
    """The order of ``q``'s entries in a tool's flat vector, as indices into probad's ``q``."""
    if label.startswith("jax"):
        names = sorted(values)  # ravel_pytree flattens a dict in key order
    elif label.startswith("pymc"):
        names = [var.name.removesuffix("_log__") for var in pymc.continuous_value_vars]
    else:
        names = list(sites)
    return onp.concatenate([onp.arange(sites[n].start, sites[n].stop) for n in names])


def _check_agrees(label, got, reference, order):
    value, grad = float(got[0]), onp.asarray(got[1])
    # PyTensor stores a float literal that float32 holds exactly (a prior's
    # scale 5.0) as float32, so PyMC's log(5.0) is off by ~3e-8 per term.
    rel_tol = 1e-7 if label.startswith("pymc") else 1e-9
    if not (math.isclose(value, reference[0], rel_tol=rel_tol)
            and onp.allclose(grad, reference[1][order], rtol=1e-7, atol=1e-9)):
        raise AssertionError(f"{label} disagrees with compiled probad: "
                             f"{value} vs {reference[0]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="300 warmup + 300 draws per chain, one configuration per tool")
    add_child_option(parser)
    args = parser.parse_args()
    if run_child(args, child):
        return
    draws = tune = 300 if args.quick else 1000
    results = {name: {} for name in MODELS}
    for name in MODELS:
        for tool in QUICK_TOOLS if args.quick else TOOLS:
            results[name][tool] = measure(tool, name, draws, tune)
            r = results[name][tool]
            print(f"  {name:<14} {tool:<20} {r['wall']:6.1f} s", flush=True)
    print_table(results, draws, tune)
    warnings.filterwarnings("ignore")
    bench_potentials()


if __name__ == "__main__":
    main()
