"""The cost of one NUTS transition of ``run_chain`` with the native kernel, warmup and sampling.

``pb.hmc`` runs each transition as one call into compiled code
(:mod:`probad.infer.native_nuts`); what surrounds that call is Python: the
kernel's wrapper, the Fisher warmup's update after every warmup draw, the
recording of draws and statistics. This script measures a chain of
``run_chain`` on eight schools and radon (the models of ``bench_nuts.py``),
built as ``pb.hmc`` builds it, in two phases:

- ``warmup``: ``tune=400, draws=0``, ``adapt="fisher"`` (the defaults);
- ``sampling``: ``tune=0, draws=1000`` at the step size and metric a warmup
  found.

Each phase is reported per transition, together with the gradients per
transition and the cost of one gradient called alone, so that the rest,
``per transition - gradients x per gradient``, is what the sampler itself
adds (the compiled tree building included).

Two measures:

- ``--instructions``: callgrind's instruction counts (instrumentation on only
  around the measured calls; stable to well under 1% from run to run);
- otherwise wall-clock time, the best of ``--repeat`` runs in one process
  (the machine is shared: read the ratios, not the times).

Usage::

    python benchmarks/bench_transition_cost.py [--instructions] [--model radon]
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ("eight_schools", "radon")
TUNE, DRAWS, GRADIENT_CALLS = 400, 1000, 2000


def _setup(name: str):
    """The chain's potential, start, and a warmed-up step size and metric for ``name``."""
    sys.path[:0] = [ROOT, HERE]
    import numpy as onp

    from bench_nuts import make_data, probad_model
    from probad.infer.chain import run_chain
    from probad.infer.density import potential as make_potential

    warnings.simplefilter("ignore")
    pot = make_potential(probad_model(name), make_data(name), compile=True, backend="auto",
                         gibbs=True)
    q0 = pot.initial_point(seed=onp.random.default_rng(0))
    value_and_grad = functools.partial(pot.value_and_grad, quiet=False)

    def native():
        return pot.native

    def chain(phase, seed, start=q0, step_size=1.0, inverse_metric=None):
        tune, draws = (TUNE, 0) if phase == "warmup" else (0, DRAWS)
        return run_chain(value_and_grad, start, seed_or_rng=seed, tune=tune, draws=draws,
                         adapt="fisher", native_potential=native, step_size=step_size,
                         inverse_metric=inverse_metric)

    warm = chain("warmup", 0)  # compiles and loads everything; its adaptation serves sampling
    # Sampling goes on from where the warmup ended, with what it adapted.
    tuned = {"start": warm.last_state, "step_size": warm.step_size,
             "inverse_metric": warm.inverse_metric}
    chain("sampling", 0, **tuned)
    grad_out = onp.empty_like(q0)
    form = pot.native

    def gradients():
        for _ in range(GRADIENT_CALLS):
            form.fn(q0, grad_out, form.prog)

    gradients()
    return chain, tuned, gradients


def _phases(name: str):
    """``{phase: callable returning its gradient count}``, everything loaded and compiled."""
    chain, tuned, gradients = _setup(name)

    def gradient():
        gradients()
        return GRADIENT_CALLS

    return {"gradient": gradient,
            "warmup": lambda: chain("warmup", 1).num_grad_evals,
            "sampling": lambda: chain("sampling", 1, **tuned).num_grad_evals}


def _counted_run(name: str) -> None:
    """Under callgrind: count each phase on its own (a dump after each); print their gradients."""
    pid = str(os.getpid())
    phases = _phases(name)
    subprocess.run(["callgrind_control", "--instr=on", pid], check=True, stdout=subprocess.DEVNULL)
    for run in phases.values():
        subprocess.run(["callgrind_control", "--zero", pid], check=True, stdout=subprocess.DEVNULL)
        grads = run()
        subprocess.run(["callgrind_control", "--dump", pid], check=True, stdout=subprocess.DEVNULL)
        print(grads)
    subprocess.run(["callgrind_control", "--instr=off", pid], check=True,
                   stdout=subprocess.DEVNULL)


def _instructions(name: str) -> dict:
    """``{phase: (instructions, gradients)}``, counted by callgrind in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, os.path.abspath(__file__), "--run", name],
            check=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        totals = []
        # The dumps after each phase are parts 1, 2, 3 (the final one at exit is empty).
        for part in (1, 2, 3):
            with open(f"{out}.{part}") as fh:
                totals.append(int(re.search(r"^totals:\s*(\d+)", fh.read(), re.M).group(1)))
    grads = [int(line) for line in done.stdout.split()[-3:]]
    return dict(zip(("gradient", "warmup", "sampling"), zip(totals, grads)))


def _seconds(name: str, repeat: int) -> dict:
    """Best wall-clock seconds and gradients of each phase, in this process."""
    figures = {}
    for phase, run in _phases(name).items():
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            grads = run()
            best = min(best, time.perf_counter() - start)
        figures[phase] = (best, grads)
    return figures


def _table(name: str, figures: dict, unit: str, scale: float) -> None:
    per_grad = figures["gradient"][0] / GRADIENT_CALLS * scale
    print(f"{name}: one gradient alone {per_grad:,.1f} {unit}")
    print(f"  {'phase':<9}{'per transition':>16}{'grads':>7}{'rest (sampler)':>16}")
    for phase, transitions in (("warmup", TUNE), ("sampling", DRAWS)):
        total, grads = figures[phase]
        per = total / transitions * scale
        grads_per = grads / transitions
        print(f"  {phase:<9}{per:>16,.1f}{grads_per:>7.2f}{per - grads_per * per_grad:>16,.1f}"
              f"  {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, action="append")
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _counted_run(args.run)
        return
    for name in args.model or MODELS:
        if args.instructions:
            _table(name, _instructions(name), "instructions", 1.0)
        else:
            _table(name, _seconds(name, args.repeat), "us", 1e6)


if __name__ == "__main__":
    main()
