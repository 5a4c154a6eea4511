"""Run time of each example notebook against the 2-minute budget (issue 7).

Each notebook runs top to bottom in a fresh kernel, as ``tests/test_notebooks.py``
runs it; this prints its wall time and the CPU time of the kernel and its
worker processes. Wall time is the budget's measure but depends on other
load; CPU time does not, and on an idle machine it bounds the wall time of a
notebook that runs on one core (notebook 05 samples on two worker processes,
so its wall time is lower than its CPU time).

Machines differ by a factor of two in this workplace: a line of pure-Python
and small-numpy work, timed first, says how fast this one is, so that
figures from two machines can be compared.

Run: ``python benchmarks/bench_notebooks.py [prefix ...]`` (a few minutes).
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as onp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BUDGET_S = 120.0


def machine_reference_ms() -> float:
    """Best-of-5 milliseconds of 2,000 small numpy calls and a Python loop."""
    x = onp.ones(10)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1000):
            onp.sin(x)
            onp.sum(x)
        sum(range(20_000))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main(prefixes: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("build_notebooks", EXAMPLES / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    import nbformat

    print(f"machine reference: {machine_reference_ms():.1f} ms")
    print(f"{'notebook':<28}{'wall s':>8}{'CPU s':>8}  budget {BUDGET_S:.0f} s (wall)")
    for name in builder.NOTEBOOKS:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
        wall, cpu = builder.execute(nb, timeout=600)
        verdict = "met" if wall < BUDGET_S else "MISSED"
        print(f"{name:<28}{wall:8.1f}{cpu:8.1f}  {verdict}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
