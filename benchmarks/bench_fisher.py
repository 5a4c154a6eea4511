"""ESS per gradient of the whole run, warmup included: probad's Fisher warmup
against its Stan warmup and against nutpie, PyMC and NumPyro.

The three models of ``bench_nuts.py`` (eight schools non-centred, logistic
regression N=10,000, radon-like varying intercepts), 4 chains x 1000 draws,
each tool with its own default warmup length unless ``--fisher-tune`` or
``--peer-tune`` sets one:

- ``probad fisher``: ``pb.hmc(..., adapt="fisher")``, ``tune=--fisher-tune``
  (default 400);
- ``probad stan``: ``adapt="stan"``, ``tune=1000``;
- ``nutpie``: its defaults (0.16.8: nuts-rs 0.17.4, diagonal Fisher metric,
  tune=400, step size jitter 0.1), numba backend; ``--nutpie-settings`` passes
  more keywords to ``nutpie.sample``;
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

Noise: one run's min bulk ESS varies by 10-15% (sd) between seeds, so one run
cannot tell a 10% gap from chance. ``--seeds N`` runs every tool N times (seeds
1..N, or from ``--first-seed``) in its one process, which builds and compiles
once; each figure is then the mean over seeds +- its standard error, and each
ratio the ratio of means +- its delta-method standard error (the tools' runs
are independent). A ratio within two standard errors of 1.0 is reported as
such, not as met or missed.

Measured over seeds (2026-12-06, ``--seeds``; 4-48 seeds per tool and model,
as counted in brackets; mean ESS/grad +- standard error; NumPyro on radon only;
probad's Fisher chains still started in (-2, 2), not today's (-1, 1)):

==============  =======================  =======================  ==========
model, tool     ESS/grad all             ESS/grad post-warmup     divergent
==============  =======================  =======================  ==========
eight schools
 probad fisher  0.0561 +- 0.0008 (48)    0.0821 +- 0.0011         1.8 / run
 fisher-var.    0.0577 +- 0.0009 (16)    0.0855 +- 0.0013         3.9 / run
 nutpie         0.0553 +- 0.0012 (48)    0.0811 +- 0.0018         3.3 / run
 PyMC           0.0377 +- 0.0011 (16)    0.0827 +- 0.0024         7.6 / run
logistic 10k
 probad fisher  0.0565 +- 0.0012 (8)     0.0793 +- 0.0016         0
 fisher-var.    0.0600 +- 0.0013 (4)     0.0853 +- 0.0019         0
 nutpie         0.0537 +- 0.0013 (8)     0.0754 +- 0.0018         0
 PyMC           0.0415 +- 0.0015 (8)     0.0854 +- 0.0029         0
radon
 probad fisher  0.0374 +- 0.0007 (32)    0.0591 +- 0.0010         0
 fisher-var.    0.0424 +- 0.0011 (16)    0.0675 +- 0.0018         0
 nutpie         0.0382 +- 0.0007 (32)    0.0600 +- 0.0010         0
 PyMC           0.0256 +- 0.0008 (8)     0.0704 +- 0.0023         0
 NumPyro        0.0212 +- 0.0009 (8)     0.0445 +- 0.0015         0
==============  =======================  =======================  ==========

Ratios of probad fisher (delta-method standard errors):

- ESS/grad counting warmup against the best peer (nutpie each time): eight
  schools 1.01 +- 0.03, logistic 1.05 +- 0.03, radon 0.98 +- 0.02: all within
  noise of 1.0. The single runs' 0.84x (eight schools) and 0.98x (radon) were
  noise: the first 16 seeds alone gave 0.92 +- 0.04 on eight schools.
- ESS per post-warmup gradient against PyMC: eight schools 0.99 +- 0.03,
  logistic 0.93 +- 0.04 (at the edge of noise), radon 0.84 +- 0.03 (missed).

Why PyMC leads after warmup on radon (its min ESS is ``sigma_a``'s, the
hierarchical scale), measured with the same seeds:

- not the step size: probad's and nutpie's final steps, acceptance and tree
  sizes agree (``bench_fisher_step_size.py``), and nutpie without its step size
  jitter (``{"step_size_jitter": null}``, eight schools, 16 seeds) is unchanged
  (0.0575 +- 0.0015 against 0.0583 +- 0.0016);
- not the warmup length: at tune=1000 probad fisher gives 0.0614 +- 0.0021
  post-warmup (8 seeds), nutpie 0.0591 +- 0.0019;
- the metric: nutpie with the draws' variance as its metric
  (``{"use_grad_based_mass_matrix": false}``, its schedule otherwise) gives
  0.0674 +- 0.0017 post-warmup, PyMC's figure (0.96 +- 0.04 of it); on
  logistic it gives 0.0849 +- 0.0014 (4 seeds) against its Fisher metric's
  0.0754 +- 0.0018, and PyMC's 0.0854 +- 0.0029. The Fisher diagonal is the
  geometric mean of a coordinate's marginal and conditional variances; for
  ``sigma_a`` it is 0.68x the posterior variance.

So ``adapt="fisher"`` (nutpie's metric) cannot meet ">= 1.0x PyMC after warmup"
on radon (nor, by 7%, on logistic); ``adapt="fisher-variance"`` (the Fisher estimate in the early phase,
the draws' variance after it) does within noise (0.96 +- 0.04) and gains
counting warmup too: radon 1.13 +- 0.04x probad fisher (1.11 +- 0.04x nutpie),
eight schools 1.03 +- 0.02x, logistic 1.06 +- 0.03x (1.08 +- 0.03x after
warmup, 1.00 +- 0.04x PyMC's). It diverges about twice as often on non-centred
eight schools at target_accept=0.8. On the posteriordb models it is about
neutral (``bench_fisher_posteriordb.py``: median 1.04x fisher, single runs), so
it stays opt-in. Rerun after merging main's running-sum estimators and (-1, 1)
Fisher start: radon (8 seeds) fisher 0.0376 +- 0.0011 (0.0594 +- 0.0018 after
warmup), fisher-variance 0.0414 +- 0.0022 (0.0658 +- 0.0034); eight schools
(24 seeds) fisher 0.0532 +- 0.0014 (0.0781 +- 0.0020, 2.3 divergences per
run), fisher-variance 0.0563 +- 0.0012 (0.0837 +- 0.0017, 3.0 per run).

Whole-call ESS/s, one run (2026-12-06, ``--modes seq par --tools "probad fisher"
nutpie pymc numpyro``, 2 cores shared with other jobs whose load changed during
the run, so seconds compare within a row's neighbours only roughly; its
ESS/grad columns are single runs, superseded by the table above):

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
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import warnings
from typing import NamedTuple

import numpy as onp

from bench_nuts import CHAINS, MODELS, SEED, make_data, probad_model
from peer_models import FREE_VARIABLES, numpyro_model, pymc_model

DRAWS = 1000
TOOLS = {"probad fisher": "probad", "probad fisher-variance": "probad", "probad stan": "probad",
         "nutpie": "nutpie", "pymc": "pymc", "numpyro": "numpyro"}


def run_probad(name, data, adapt, tune, parallel, seed):
    import probad as pb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        idata = pb.hmc(probad_model(name), data, draws=DRAWS, tune=tune, chains=CHAINS,
                       seed=seed, progress=False, adapt=adapt, cores=None if parallel else 1)
    return idata, int(sum(idata.attrs["num_gradient_evaluations"])), \
        int(idata.sample_stats["n_steps"].sum())


@functools.cache
def nutpie_compiled(name):
    """nutpie's compiled model, once per process: later seeds reuse it."""
    import nutpie

    return nutpie.compile_pymc_model(pymc_model(name, make_data(name)))


def run_nutpie(name, data, tune, parallel, seed, settings):
    import nutpie

    options = dict(settings) if tune is None else dict(settings, tune=tune)
    idata = nutpie.sample(nutpie_compiled(name), draws=DRAWS, chains=CHAINS,
                          cores=CHAINS if parallel else 1, seed=seed,
                          progress_bar=False, save_warmup=True, **options)
    post = int(idata.sample_stats["n_steps"].sum())
    return idata, post + int(idata.warmup_sample_stats["n_steps"].sum()), post


def run_pymc(name, data, tune, parallel, seed):
    import pymc as pm

    options = {} if tune is None else {"tune": tune}
    with pymc_model(name, data):
        idata = pm.sample(draws=DRAWS, chains=CHAINS, cores=CHAINS if parallel else 1,
                          random_seed=seed,
                          progressbar=False, discard_tuned_samples=False, **options)
    post = int(idata.sample_stats["n_steps"].sum())
    return idata, post + int(idata.warmup_sample_stats["n_steps"].sum()), post


def run_numpyro(name, data, tune, parallel, seed):
    import arviz as az
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(numpyro_model(name)), num_warmup=1000 if tune is None else tune,
                num_samples=DRAWS, num_chains=CHAINS,
                chain_method="parallel" if parallel else "vectorized",
                progress_bar=False)
    mcmc.warmup(jax.random.PRNGKey(seed), collect_warmup=True, extra_fields=("num_steps",),
                **data)
    warm = int(mcmc.get_extra_fields()["num_steps"].sum())
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps",), **data)
    post = int(mcmc.get_extra_fields()["num_steps"].sum())
    return az.from_numpyro(mcmc), warm + post, post


def child(tool, name, tune, mode, seeds, nutpie_settings):
    """Run one tool on one model once per seed in this (fresh) process; print a
    JSON list, one record per seed. Only the first seed's ``seconds`` include
    building and compiling the model."""
    parallel = mode == "par"
    if tool == "numpyro":
        if parallel:  # JAX's CPU devices are fixed when it is first imported
            os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={CHAINS}"
        import numpyro

        numpyro.enable_x64()
    import arviz as az

    data = make_data(name)
    records = []
    for seed in seeds:
        start = time.perf_counter()
        if tool.startswith("probad"):
            adapt = tool.split()[1]
            idata, grads_all, grads_post = run_probad(name, data, adapt, tune, parallel, seed)
        else:
            runner = {"nutpie": functools.partial(run_nutpie, settings=nutpie_settings),
                      "pymc": run_pymc, "numpyro": run_numpyro}[tool]
            idata, grads_all, grads_post = runner(name, data, tune, parallel, seed)
        seconds = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = az.ess(idata.posterior[FREE_VARIABLES[name]], method="bulk")
        min_ess = min(float(onp.min(ess[v].values)) for v in ess.data_vars)
        records.append({"seed": seed, "min_ess": min_ess, "grads_all": grads_all,
                        "grads_post": grads_post,
                        "divergences": int(idata.sample_stats["diverging"].sum()),
                        "seconds": seconds})
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    print(json.dumps(records))


def measure(tool, name, tune, mode, seeds, nutpie_settings):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(here), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, "--child", tool, name, json.dumps(tune),
                           mode, json.dumps(seeds), json.dumps(nutpie_settings)],
                          capture_output=True, text=True, env=env, cwd=here)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} on {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--fisher-tune", type=int, default=400)
    parser.add_argument("--peer-tune", type=int, default=None,
                        help="warmup of nutpie, PyMC and NumPyro (default: each its own)")
    parser.add_argument("--tools", nargs="*", default=list(TOOLS))
    parser.add_argument("--modes", nargs="*", default=["seq"], choices=["seq", "par"])
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs per tool and model, seeds --first-seed, +1, ... (one process)")
    parser.add_argument("--first-seed", type=int, default=SEED)
    parser.add_argument("--nutpie-settings", type=json.loads, default={},
                        help='JSON of nutpie.sample keywords, e.g. \'{"step_size_jitter": null}\'')
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, name, tune, mode, seeds, settings = args.child
        child(tool, name, json.loads(tune), mode, json.loads(seeds), json.loads(settings))
        return
    tunes = {"probad fisher": args.fisher_tune, "probad fisher-variance": args.fisher_tune,
             "probad stan": 1000,
             **{peer: args.peer_tune for peer in ("nutpie", "pymc", "numpyro")}}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs = {}
    for mode in args.modes:
        for name in args.models:
            for tool, module in [(t, TOOLS[t]) for t in args.tools]:
                if importlib.util.find_spec(module) is None:
                    print(f"  {tool}: not installed, skipped")
                    continue
                try:
                    runs[mode, name, tool] = measure(tool, name, tunes.get(tool), mode, seeds,
                                                     args.nutpie_settings)
                except RuntimeError as exc:
                    print(f"  {mode} {name} {tool}: FAILED {str(exc)[-300:]}")
                    continue
                for record in runs[mode, name, tool]:
                    print(f"  {mode} {name:<14} {tool:<14} {json.dumps(record)}", flush=True)
    for mode in args.modes:
        report(mode, {(n, t): r for (m, n, t), r in runs.items() if m == mode}, args)


class Estimate(NamedTuple):
    """A mean over seeds and its standard error (``nan`` from a single seed)."""

    mean: float
    se: float

    def __format__(self, spec):
        if math.isnan(self.se):
            return format(self.mean, spec)
        return f"{format(self.mean, spec)}+-{format(self.se, spec)}"

    def __truediv__(self, other):
        """A ratio of two independent estimates; its standard error by the delta method."""
        ratio = self.mean / other.mean
        return Estimate(ratio, abs(ratio) * math.hypot(self.se / self.mean, other.se / other.mean))


def estimate(records, numerator, denominator) -> Estimate:
    """Mean over the runs of ``numerator / denominator`` and its standard error."""
    values = onp.array([r[numerator] / r[denominator] for r in records])
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return Estimate(float(values.mean()), float(se))


def report(mode, results, args):
    """The table of one mode's runs and probad fisher's ratios.

    With several seeds each figure is the mean over them +- its standard error
    (a ratio's by the delta method, the tools' runs being independent);
    ``seconds`` is the first seed's, the only one that builds and compiles.
    """
    print(f"\n[{mode}]")
    peer_tune = "their defaults" if args.peer_tune is None else args.peer_tune
    print(f"\nNUTS, {CHAINS} chains x {DRAWS} draws, {args.seeds} seed(s); warmup: probad "
          f"fisher {args.fisher_tune}, probad stan 1000, others {peer_tune}"
          + (f"; nutpie {args.nutpie_settings}" if args.nutpie_settings else ""))
    print(f"{'model':<14}{'tool':<24}{'min ESS (range)':>18}{'ESS/grad all':>18}"
          f"{'ESS/grad post':>18}{'div':>5}{'seconds':>9}{'ESS/s':>8}")
    for (name, tool), records in results.items():
        first = records[0]
        ess = onp.array([r["min_ess"] for r in records])
        print(f"{name:<14}{tool:<24}{f'{ess.mean():.0f} ({ess.min():.0f}-{ess.max():.0f})':>18}"
              f"{format(estimate(records, 'min_ess', 'grads_all'), '.4f'):>18}"
              f"{format(estimate(records, 'min_ess', 'grads_post'), '.4f'):>18}"
              f"{sum(r['divergences'] for r in records):5d}"
              f"{first['seconds']:9.1f}{first['min_ess'] / first['seconds']:8.1f}")
    print("\nprobad fisher (and fisher-variance) against the best peer, and against PyMC after "
          "warmup")
    for name, mine in [(n, t) for n in args.models for t in ("probad fisher",
                                                             "probad fisher-variance")]:
        rows = {tool: r for (n, tool), r in results.items() if n == name}
        if mine not in rows:
            continue
        all_grads = {tool: estimate(r, "min_ess", "grads_all") for tool, r in rows.items()}
        post = {tool: estimate(r, "min_ess", "grads_post") for tool, r in rows.items()}
        per_second = {tool: Estimate(r[0]["min_ess"] / r[0]["seconds"], math.nan)
                      for tool, r in rows.items()}
        peers = [t for t in rows if not t.startswith("probad")]
        parts = []
        if peers:
            best = max(peers, key=lambda t: all_grads[t].mean)
            ratio = all_grads[mine] / all_grads[best]
            parts.append(f"all grads {ratio:.2f}x {best} {verdict(ratio)}")
            fastest = max(peers, key=lambda t: per_second[t].mean)
            ratio = per_second[mine] / per_second[fastest]
            parts.append(f"ESS/s {ratio:.2f}x {fastest} {verdict(ratio)}")
        if "pymc" in rows:
            ratio = post[mine] / post["pymc"]
            parts.append(f"post-warmup vs pymc {ratio:.2f}x {verdict(ratio)}")
        if "nutpie" in rows:
            parts.append(f"post-warmup vs nutpie {post[mine] / post['nutpie']:.2f}x")
        if "probad stan" in rows:
            parts.append(f"vs probad stan (all grads) "
                         f"{all_grads[mine] / all_grads['probad stan']:.2f}x")
        print(f"  {name:<14} {mine[7:]:<16} " + "; ".join(parts))


def verdict(ratio: Estimate) -> str:
    """Against a target of 1.0x: met or missed, or within two standard errors of it."""
    if not math.isnan(ratio.se) and abs(ratio.mean - 1.0) < 2 * ratio.se:
        return "within noise of 1.0"
    return "met" if ratio.mean >= 1 else "MISSED"


if __name__ == "__main__":
    main()
