"""End to end: probad's NUTS at its defaults against the best peer, on six models.

The end-to-end targets of issue 13, measured with the current code:

- min-bulk-ESS per second of *sampling* >= 1.0x the best of NumPyro
  (vectorized chains), PyMC (numba mode) and nutpie (numba backend) on eight
  schools, radon and hmm_example;
- ESS per second of the *whole call*, compilation included, >= 1.0x the best
  peer on all six models: eight schools, radon, logistic regression N=10k,
  hmm_example, arma11 and GARCH(1,1) (T=200);
- the cold time of a whole script on eight schools, from ``python`` start to
  ``InferenceData``, imports included.

Every tool runs 4 chains x (1000 warmup + 1000 draws) at its other defaults
(probad's own warmup default is 400, nutpie's too), each run in a fresh
process (``bench_nuts.py``'s child runner), the tools interleaved model by
model so that the machine's changing load spreads over all of them. The loop models' peers use ``lax.scan`` / ``pytensor.scan``
(``peer_models.py``); probad's are plain Python loops.

Columns: ``min ESS`` (smallest bulk ESS over the free parameters' scalars),
``samp s`` (sampling alone as the tool reports it: PyMC's ``sampling_time``,
NumPyro's run less JAX's compile time, nutpie's ``nutpie.sample`` call after
``compile_pymc_model``, probad's ``sampling_time`` of a second identical call
in the same process, see ``run``), ``wall s`` (model to ``InferenceData``,
compilation included) and ``cold s`` (eight schools only: process launch to
``InferenceData``).

Measured here (2026-12-06, a quiet machine, warm numba cache; ESS/s of
probad at its defaults over the best peer): sampling 1.05x nutpie on eight
schools, 0.96x nutpie on radon, 5.44x NumPyro on hmm_example (1.65x
logistic, 2.30x arma11, 0.75x garch11); whole call 1.17x, 1.59x, 1.63x,
2.66x, 4.15x and 1.91x on eight schools, radon, logistic, hmm_example,
arma11 and garch11. With ``cores=1`` the whole-call ratios were 1.28x,
1.50x, 1.05x, 2.68x, 4.45x and 1.94x. Radon's sampling ratio over seven
interleaved runs of probad and nutpie (same seeds, so only the timing
varies): 0.92x-1.25x, mean 1.07x. Cold script on eight schools: 3.6 s
(NumPyro 12.4 s, PyMC numba 6.5 s, nutpie 7.6 s). All tools agree on the
posterior means.

The machine is shared: run it once, late, for figures; ``--quick`` (200 +
200, one model subset) is for development. Run from the repository root:
``PYTHONPATH=. python benchmarks/bench_end_to_end.py [--quick] [--models a,b]``
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as onp

from bench_nuts import (CHAINS, SEED, add_child_option, child_record, enable_x64_for, launch,
                        make_data, run_child, run_numpyro, run_probad, run_pymc, timed)
from peer_models import FREE_VARIABLES, pymc_model

MODELS = ["eight_schools", "radon", "logistic", "hmm_example", "arma11", "garch11"]
SAMPLING_TARGET_MODELS = {"eight_schools", "radon", "hmm_example"}
TOOLS = ["probad", "probad cores=1", "numpyro vectorized", "pymc numba", "nutpie"]


def run_nutpie(name, data, draws, tune) -> dict:
    import nutpie

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(name, data), backend="numba")
    idata, sampling, finished = timed(lambda: nutpie.sample(
        compiled, draws=draws, tune=tune, chains=CHAINS, seed=SEED, progress_bar=False))
    return dict(idata=idata, grads=int(idata.sample_stats["n_steps"].sum()),
                wall=time.perf_counter() - start, finished=finished, sampling=sampling)


def run(tool, name, draws, tune) -> dict:
    data = make_data(name)
    if tool.startswith("probad"):
        # "probad": its default, chains on a process pool when that pays;
        # "probad cores=1": the chains one after another in this process.
        cores = 1 if tool.endswith("cores=1") else None
        result = run_probad(name, data, draws, tune, pool=False, cores=cores)
        # probad's sampling_time runs from building the potential: it counts
        # recording and lowering the tape and this process's first load of the
        # compiled interpreter and NUTS kernel, which the peers' sampling times
        # leave out. The same call again (same seed, so the same draws) still
        # records and lowers its tape, but finds the compiled code loaded.
        again = run_probad(name, data, draws, tune, pool=False, cores=cores)
        return dict(result, sampling=again["sampling"])
    if tool == "pymc numba":
        return run_pymc(name, data, draws, tune, cores=None, mode="NUMBA")
    if tool == "nutpie":
        return run_nutpie(name, data, draws, tune)
    return run_numpyro(name, data, draws, tune, chain_method="vectorized")


def child(tool, name, draws, tune, launched):
    """Run one tool on one model in this (fresh) process; print a JSON line."""
    enable_x64_for(tool)
    result = run(tool, name, draws, tune)
    posterior = result["idata"].posterior
    # Posterior means, to see that the tools sample the same density.
    means = {v: onp.ravel(posterior[v].mean(("chain", "draw")).values).round(3).tolist()
             for v in FREE_VARIABLES[name] if posterior[v].size <= 4 * posterior[v].shape[1]
             * posterior[v].shape[0]}
    print(json.dumps(dict(child_record(result, name, launched), means=means)))


def measure(tool, name, draws, tune) -> dict:
    done = launch(__file__, tool, name, draws, tune)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(results, models, draws, tune) -> None:
    print(f"\nNUTS, {CHAINS} chains x ({tune} warmup + {draws} draws), each tool at its defaults")
    print(f"{'model':<14}{'tool':<20}{'min ESS':>8}{'grads':>9}{'samp s':>8}{'ESS/s samp':>11}"
          f"{'wall s':>8}{'ESS/s wall':>11}{'cold s':>8}")
    for name in models:
        for tool, r in results[name].items():
            if "error" in r:
                print(f"{name:<14}{tool:<20}  failed: {r['error'][:80]}")
                continue
            cold = f"{r['cold']:8.1f}" if name == "eight_schools" else ""
            print(f"{name:<14}{tool:<20}{r['min_ess']:8.0f}{r['grads']:9d}{r['sampling']:8.1f}"
                  f"{r['min_ess'] / r['sampling']:11.0f}{r['wall']:8.1f}"
                  f"{r['min_ess'] / r['wall']:11.0f}{cold:>8}")
    print("\nPosterior means of the free parameters with at most 4 entries (the tools must agree)")
    for name in models:
        for tool, r in results[name].items():
            if "error" not in r:
                print(f"  {name:<14}{tool:<20}" + "  ".join(f"{v}={m}" for v, m in r["means"].items()))
    print("\nprobad / best peer (targets: sampling >= 1.0x on eight_schools, radon, hmm_example;"
          " whole call >= 1.0x on all)")
    for name in models:
        rows = {t: r for t, r in results[name].items() if "error" not in r}
        peers = [t for t in rows if not t.startswith("probad")]
        ours = [t for t in rows if t.startswith("probad")]
        if not ours or not peers:
            print(f"  {name:<14} no comparison (probad or every peer failed or was left out)")
            continue
        for tool in ours:
            parts = []
            for key, label in (("sampling", "sampling"), ("wall", "whole call")):
                rate = {t: rows[t]["min_ess"] / rows[t][key] for t in rows}
                best = max(peers, key=rate.get)
                ratio = rate[tool] / rate[best]
                targeted = key == "wall" or name in SAMPLING_TARGET_MODELS
                verdict = ("met" if ratio >= 1.0 else "MISSED") if targeted else "(no target)"
                parts.append(f"{label} {ratio:5.2f}x vs {best:<19}{verdict:<12}")
            print(f"  {name:<14}{tool:<16}" + "".join(parts))
    if "eight_schools" in results and "probad" in results["eight_schools"]:
        r = results["eight_schools"]["probad"]
        if "error" not in r:
            print(f"\nprobad cold script, eight schools (python start to InferenceData): "
                  f"{r['cold']:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 warmup + 200 draws per chain")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated subset of " + ",".join(TOOLS))
    add_child_option(parser)
    args = parser.parse_args()
    if run_child(args, child):
        return
    draws = tune = 200 if args.quick else 1000
    models = args.models.split(",")
    results = {name: {} for name in models}
    for name in models:
        for tool in args.tools.split(","):
            r = results[name][tool] = measure(tool, name, draws, tune)
            print(f"  {name:<14} {tool:<20} " + (f"{r['wall']:6.1f} s" if "error" not in r
                                                  else "failed: " + r["error"][:100]), flush=True)
    print_table(results, models, draws, tune)


if __name__ == "__main__":
    main()
