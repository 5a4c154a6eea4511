"""ESS per gradient of the whole run, warmup included: probad's Fisher warmup
against its Stan warmup and against nutpie, PyMC and NumPyro.

The three models of ``bench_nuts.py`` (eight schools non-centred, logistic
regression N=10,000, radon-like varying intercepts), 4 chains x 1000 draws,
each tool with its own default warmup length unless ``--tune`` fixes one:

- ``probad fisher``: ``pb.hmc(..., adapt="fisher")``, ``tune=--fisher-tune``
  (default 400);
- ``probad stan``: ``adapt="stan"``, ``tune=1000``;
- ``nutpie``: its defaults (diagonal Fisher metric, tune=300), numba backend;
- ``pymc``: its defaults (tune=1000, ``cores=1``: ESS/grad does not depend on it);
- ``numpyro``: its defaults (tune=1000), ``chain_method="vectorized"``.

Columns: min bulk ESS over the free parameters' scalars; ``grads all``, every
gradient of the run: probad counts them (``attrs["num_gradient_evaluations"]``,
step size searches included), the peers' ``n_steps``/``num_steps`` summed over
warmup and sampling (their step size searches are not counted, which favours
them slightly); ``grads post``: after warmup only; ``ESS/grad`` for both;
divergences after warmup. Then probad fisher's ratio to the best peer on
both measures (targets: >= 1.0x on ESS/grad counting warmup; >= 1.0x PyMC's
on ESS per post-warmup gradient on logistic and radon).

Whole-call ESS per second: ``seconds`` is the wall time of the whole call in
a fresh process (building and compiling the model, warmup, sampling,
packaging), ``ESS/s`` min bulk ESS over it. ``--modes seq par`` runs each tool
both sequentially (``cores=1``) and with its chains in parallel: probad
``cores=None`` (its default), nutpie and PyMC ``cores=4``, NumPyro
``chain_method="parallel"`` on 4 host devices (``seq`` is its
``"vectorized"``). Then probad fisher's ESS/s ratio to the best peer per mode.

Each tool runs in a fresh process. Tools that are not installed are skipped.

Measured once (2026-12-06, busy shared cores; logistic not completed):
ESS/grad counting warmup, probad fisher against the best peer (nutpie):
eight schools 0.0609 vs 0.0627 (0.97x), radon 0.0366 vs 0.0400 (0.92x);
against probad stan 2.26x and 1.58x. Per post-warmup gradient against PyMC:
1.26x (eight schools), 0.80x (radon).

Measured again (2026-12-06, ``--modes seq par --tools "probad fisher" nutpie
pymc numpyro``, one run on 2 cores shared with other jobs whose load changed
during the run, so seconds compare within a row's neighbours only roughly):

=============  =========================  ======================  ===============
model          ESS/grad all vs best peer  post-warmup vs PyMC     ESS/s seq / par
=============  =========================  ======================  ===============
eight schools  0.0527 / 0.0627 nutpie     0.0773 / 0.0714 1.08x   4.81x / 4.47x
               (0.84x)                                            (nutpie both)
logistic 10k   0.0607 / 0.0568 nutpie     0.0846 / 0.0969 0.87x   1.89x / 1.25x
               (1.07x)                                            (nutpie both)
radon          0.0393 / 0.0400 nutpie     0.0629 / 0.0732 0.86x   1.61x PyMC /
               (0.98x)                                            2.15x nutpie
=============  =========================  ======================  ===============

Whole-call seconds, sequential then parallel: probad 3.6 / 4.3 (eight
schools), 146.6 / 41.0 (logistic; the sequential run met the heaviest load),
20.7 / 4.7 (radon); nutpie 20.5 / 22.2, 257.8 / 47.7, 55.3 / 10.0 (its
compile time dominates the small models).

Run: ``python benchmarks/bench_fisher.py`` (about 15 minutes on two quiet
cores; ``--models eight_schools`` to restrict).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as onp

from bench_nuts import CHAINS, MODELS, SEED, make_data, probad_model
from peer_models import FREE_VARIABLES, numpyro_model, pymc_model

DRAWS = 1000
TOOLS = {"probad fisher": "probad", "probad stan": "probad", "nutpie": "nutpie",
         "pymc": "pymc", "numpyro": "numpyro"}


def run_probad(name, data, adapt, tune, parallel):
    import probad as pb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        idata = pb.hmc(probad_model(name), data, draws=DRAWS, tune=tune, chains=CHAINS,
                       seed=SEED, progress=False, adapt=adapt, cores=None if parallel else 1)
    return idata, int(sum(idata.attrs["num_gradient_evaluations"])), \
        int(idata.sample_stats["n_steps"].sum())


def run_nutpie(name, data, tune, parallel):
    import nutpie

    compiled = nutpie.compile_pymc_model(pymc_model(name, data))
    options = {} if tune is None else {"tune": tune}
    idata = nutpie.sample(compiled, draws=DRAWS, chains=CHAINS, cores=CHAINS if parallel else 1,
                          seed=SEED,
                          progress_bar=False, save_warmup=True, **options)
    post = int(idata.sample_stats["n_steps"].sum())
    return idata, post + int(idata.warmup_sample_stats["n_steps"].sum()), post


def run_pymc(name, data, tune, parallel):
    import pymc as pm

    options = {} if tune is None else {"tune": tune}
    with pymc_model(name, data):
        idata = pm.sample(draws=DRAWS, chains=CHAINS, cores=CHAINS if parallel else 1,
                          random_seed=SEED,
                          progressbar=False, discard_tuned_samples=False, **options)
    post = int(idata.sample_stats["n_steps"].sum())
    return idata, post + int(idata.warmup_sample_stats["n_steps"].sum()), post


def run_numpyro(name, data, tune, parallel):
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(numpyro_model(name)), num_warmup=1000 if tune is None else tune,
                num_samples=DRAWS, num_chains=CHAINS,
                chain_method="parallel" if parallel else "vectorized",
                progress_bar=False)
    mcmc.warmup(jax.random.PRNGKey(SEED), collect_warmup=True, extra_fields=("num_steps",),
                **data)
    warm = int(mcmc.get_extra_fields()["num_steps"].sum())
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps",), **data)
    post = int(mcmc.get_extra_fields()["num_steps"].sum())
    return az.from_numpyro(mcmc), warm + post, post


def child(tool, name, tune, mode):
    """Run one tool on one model in this (fresh) process; print a JSON line."""
    parallel = mode == "par"
    if tool == "numpyro":
        if parallel:  # JAX's CPU devices are fixed when it is first imported
            os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={CHAINS}"
        import numpyro

        numpyro.enable_x64()
    import arviz as az

    data = make_data(name)
    start = time.perf_counter()
    if tool.startswith("probad"):
        adapt = tool.split()[1]
        idata, grads_all, grads_post = run_probad(name, data, adapt, tune, parallel)
    else:
        runner = {"nutpie": run_nutpie, "pymc": run_pymc, "numpyro": run_numpyro}[tool]
        idata, grads_all, grads_post = runner(name, data, tune, parallel)
    seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(idata.posterior[FREE_VARIABLES[name]], method="bulk")
    min_ess = min(float(onp.min(ess[v].values)) for v in ess.data_vars)
    print(json.dumps({"min_ess": min_ess, "grads_all": grads_all, "grads_post": grads_post,
                      "divergences": int(idata.sample_stats["diverging"].sum()),
                      "seconds": seconds}))


def measure(tool, name, tune, mode):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(here), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, "--child", tool, name, json.dumps(tune),
                           mode],
                          capture_output=True, text=True, env=env, cwd=here)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} on {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--fisher-tune", type=int, default=400)
    parser.add_argument("--tools", nargs="*", default=list(TOOLS))
    parser.add_argument("--modes", nargs="*", default=["seq"], choices=["seq", "par"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, name, tune, mode = args.child
        child(tool, name, json.loads(tune), mode)
        return
    tunes = {"probad fisher": args.fisher_tune, "probad stan": 1000}
    runs = {}
    for mode in args.modes:
        for name in args.models:
            for tool, module in [(t, TOOLS[t]) for t in args.tools]:
                if importlib.util.find_spec(module) is None:
                    print(f"  {tool}: not installed, skipped")
                    continue
                try:
                    runs[mode, name, tool] = measure(tool, name, tunes.get(tool), mode)
                except RuntimeError as exc:
                    print(f"  {mode} {name} {tool}: FAILED {str(exc)[-300:]}")
                    continue
                print(f"  {mode} {name:<14} {tool:<14} {json.dumps(runs[mode, name, tool])}",
                      flush=True)
    for mode in args.modes:
        report(mode, {(n, t): r for (m, n, t), r in runs.items() if m == mode}, args)


def report(mode, results, args):
    """The table of one mode's runs and probad fisher's ratios."""
    print(f"\n[{mode}]")
    print(f"\nNUTS, {CHAINS} chains x {DRAWS} draws; warmup: probad fisher {args.fisher_tune}, "
          "probad stan 1000, others their defaults")
    print(f"{'model':<14}{'tool':<15}{'min ESS':>8}{'grads all':>10}{'ESS/grad':>9}"
          f"{'grads post':>11}{'ESS/grad':>9}{'div':>5}{'seconds':>9}{'ESS/s':>8}")
    for (name, tool), r in results.items():
        print(f"{name:<14}{tool:<15}{r['min_ess']:8.0f}{r['grads_all']:10d}"
              f"{r['min_ess'] / r['grads_all']:9.4f}{r['grads_post']:11d}"
              f"{r['min_ess'] / r['grads_post']:9.4f}{r['divergences']:5d}"
              f"{r['seconds']:9.1f}{r['min_ess'] / r['seconds']:8.1f}")
    print("\nprobad fisher against the best peer, and against PyMC after warmup")
    for name in args.models:
        rows = {tool: r for (n, tool), r in results.items() if n == name}
        if "probad fisher" not in rows:
            continue
        mine = rows["probad fisher"]
        peers = [t for t in rows if not t.startswith("probad")]
        parts = []
        if peers:
            best = max(peers, key=lambda t: rows[t]["min_ess"] / rows[t]["grads_all"])
            ratio = (mine["min_ess"] / mine["grads_all"]) / (rows[best]["min_ess"] /
                                                             rows[best]["grads_all"])
            parts.append(f"all grads {ratio:5.2f}x {best:<8} {'met' if ratio >= 1 else 'MISSED'}")
            fastest = max(peers, key=lambda t: rows[t]["min_ess"] / rows[t]["seconds"])
            ratio = (mine["min_ess"] / mine["seconds"]) / (rows[fastest]["min_ess"] /
                                                           rows[fastest]["seconds"])
            parts.append(f"ESS/s {ratio:5.2f}x {fastest:<8} {'met' if ratio >= 1 else 'MISSED'}")
        if "pymc" in rows:
            ratio = (mine["min_ess"] / mine["grads_post"]) / (rows["pymc"]["min_ess"] /
                                                              rows["pymc"]["grads_post"])
            parts.append(f"post-warmup vs pymc {ratio:5.2f}x {'met' if ratio >= 1 else 'MISSED'}")
        if "probad stan" in rows:
            stan = rows["probad stan"]
            parts.append(f"vs probad stan (all grads) "
                         f"{(mine['min_ess'] / mine['grads_all']) / (stan['min_ess'] / stan['grads_all']):5.2f}x")
        print(f"  {name:<14} " + "; ".join(parts))


if __name__ == "__main__":
    main()
