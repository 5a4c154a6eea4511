"""Instructions per gradient on the tracer's hot path, counted by callgrind.

Wall-clock times on a shared machine vary by tens of percent; callgrind's
instruction counts vary by well under 0.1%, so they show what a change to
``primitive.__call__`` or ``ReverseTrace.record`` costs. Two workloads:

- ``eager``: ``grad`` of a small function (41 primitive calls on 3-vectors,
  one or two traced arguments each), traced and differentiated every call;
- ``replay``: the same gradient compiled, so the tracer is not on the path
  (a check that the compiled replay is untouched);
- ``radon``, ``eight_schools``: the native potential's ``value_and_grad`` of
  the models of ``bench_nuts.py``, and ``radon-fn``, ``eight_schools-fn``:
  the native program's numba entry alone (what the compiled NUTS calls).
  These run with the native backend, so the interpreter's work shows too.

Each workload runs under callgrind with instrumentation off until one
warm-up call is done (imports, caches, the compiled tape); the workload then
switches it on for ``--repeat`` calls (``callgrind_control``), and the count
over ``--repeat`` is printed.

Usage::

    python benchmarks/bench_tracer_instructions.py [--repeat 200] [--part eager]

(``valgrind`` and ``callgrind_control`` must be on the PATH.)
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_PARTS = ("radon", "radon-fn", "eight_schools", "eight_schools-fn")


def _gradient(part: str):
    """The workload ``part`` as a function of no arguments."""
    import numpy as onp

    if part in NATIVE_PARTS:
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        import probad as pb
        from bench_nuts import make_data, probad_model

        name = part.removesuffix("-fn")
        pot = pb.potential(probad_model(name), make_data(name), backend="native")
        q = pot.initial_point(seed=0)
        pot.value_and_grad(q)
        if part == name:
            return lambda: pot.value_and_grad(q)
        native, grad_out = pot.native, onp.zeros_like(q)
        return lambda: native.fn(q, grad_out, native.prog)

    import probad.ad.numpy as np
    from probad.ad import compile, grad

    def f(x):
        y = x
        for _ in range(10):
            y = np.sin(y) * x + 1.0  # one traced argument, then two, then one
            y = y / 2.0
        return np.sum(y)

    x = onp.array([0.1, 0.2, 0.3])
    g = grad(f) if part == "eager" else compile(grad(f))
    return lambda: g(x)


def _workload(part: str, repeat: int) -> None:
    sys.path.insert(0, ROOT)
    g = _gradient(part)
    g()  # warm-up: imports, caches, the compiled tape
    instrument = ["callgrind_control", "--instr=on", str(os.getpid())]
    subprocess.run(instrument, check=True, stdout=subprocess.DEVNULL)
    for _ in range(repeat):
        g()
    instrument[1] = "--instr=off"
    subprocess.run(instrument, check=True, stdout=subprocess.DEVNULL)


def _instructions(part: str, repeat: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        f"--callgrind-out-file={out}", sys.executable, os.path.abspath(__file__),
                        "--run", part, str(repeat)],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = 0
        for name in os.listdir(tmp):  # callgrind_control may dump parts
            with open(os.path.join(tmp, name)) as fh:
                found = re.search(r"^totals:\s*(\d+)", fh.read(), re.M)
            total += int(found.group(1)) if found else 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--part", choices=("eager", "replay") + NATIVE_PARTS, action="append",
                        help="the workload(s) to count (default: eager and replay)")
    parser.add_argument("--run", nargs=2, metavar=("PART", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _workload(args.run[0], int(args.run[1]))
        return
    for part in args.part or ("eager", "replay"):
        total = _instructions(part, args.repeat)
        print(f"{part:16s} {total / args.repeat:12,.0f} instructions per gradient")


if __name__ == "__main__":
    main()
