"""Run autograd's own examples, unchanged, with ``autograd`` resolved to ``probad.ad``.

The examples are not part of this repository (they are autograd's, MIT
licensed): pass the folder that holds a copy of autograd's ``examples/``::

    python benchmarks/run_autograd_examples.py PATH/TO/autograd/examples [--timeout 400] [--max-iters 3] [--compare]

Each example runs in its own process, headless (``MPLBACKEND=Agg``, with
``plt.pause`` a no-op instead of a sleep), under
:mod:`probad.ad.autograd_alias`. Training loops are shortened without
touching the sources: ``--max-iters`` caps the ``num_iters`` of
``autograd.misc.optimizers`` and the ``maxiter`` of ``scipy.optimize.minimize``.
An example that tries to download data (the MNIST ones) is reported as
such and is not counted as run or failed, since nothing can be downloaded
here. With ``--compare``, an example that fails or times out is run again
under the real autograd, to tell probad's failures from the example's own.
The last lines printed are the counts.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Printed by a child process whose example tried to fetch data from the network.
DOWNLOAD_MARK = "EXAMPLE-NEEDS-DOWNLOAD"
# Modules the examples import from each other, not examples themselves.
HELPERS = {"__init__.py", "data.py", "data_mnist.py"}


def _cap_iterations(max_iters: int, optimizers_module: str) -> None:
    """Shorten the examples' optimisation loops (their own sources stay as they are)."""
    import importlib

    import scipy.optimize

    optimizers = importlib.import_module(optimizers_module)

    def capped(opt):
        # Both libraries' optimisers take (grad, x, callback, num_iters, ...),
        # behind a decorator whose signature hides the names.
        def run(*args, **kwargs):
            if len(args) > 3:
                args = args[:3] + (min(args[3], max_iters),) + args[4:]
            else:
                kwargs["num_iters"] = min(kwargs.get("num_iters", max_iters), max_iters)
            return opt(*args, **kwargs)

        return run

    for name in ("sgd", "adam", "rmsprop"):
        setattr(optimizers, name, capped(getattr(optimizers, name)))

    minimize = scipy.optimize.minimize

    def capped_minimize(*args, **kwargs):
        options = dict(kwargs.get("options") or {})
        options["maxiter"] = min(options.get("maxiter", max_iters), max_iters)
        kwargs["options"] = options
        return minimize(*args, **kwargs)

    scipy.optimize.minimize = capped_minimize


def _no_downloads() -> None:
    import urllib.request

    def refuse(url, *args, **kwargs):
        print(DOWNLOAD_MARK, url, flush=True)
        raise SystemExit(3)

    urllib.request.urlretrieve = refuse
    urllib.request.urlopen = refuse


def run_one(path: str, max_iters: int, alias: bool = True) -> None:
    """In the child process: run the example at ``path`` as ``__main__``
    (under the real autograd if not ``alias``, for comparison)."""
    import runpy

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.pause = lambda interval: None  # Agg's pause sleeps for the interval

    sys.path.insert(0, REPO)
    sys.path.insert(0, os.path.dirname(path))
    if alias:
        from probad.ad import autograd_alias

        autograd_alias.install()
    _cap_iterations(max_iters, "probad.ad.misc.optimizers" if alias else "autograd.misc.optimizers")
    _no_downloads()
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")


def examples_in(folder: str) -> list[str]:
    paths = []
    for root, _, files in os.walk(folder):
        paths += [os.path.join(root, f) for f in files if f.endswith(".py") and f not in HELPERS]
    return sorted(paths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a copy of autograd's examples/ folder")
    parser.add_argument("--timeout", type=float, default=400.0, help="seconds per example")
    parser.add_argument("--max-iters", type=int, default=3, help="cap on optimiser iterations")
    parser.add_argument("--only", nargs="*", help="run only these examples (file names)")
    parser.add_argument("--autograd", action="store_true",
                        help="run under the real autograd instead, for comparison")
    parser.add_argument("--compare", action="store_true",
                        help="rerun what fails or times out under the real autograd, and say how that went")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's entry point
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.max_iters, alias=not args.autograd)
        return 0

    paths = examples_in(args.folder)
    if args.only:
        paths = [p for p in paths if os.path.basename(p) in args.only]
    outcome = {"ran": [], "failed": [], "timed out": [], "needs download": []}
    for path in paths:
        name = os.path.relpath(path, args.folder)
        kind, seconds, detail = _run_child(args, path, args.autograd)
        if kind in ("failed", "timed out") and args.compare and not args.autograd:
            their_kind, _, _ = _run_child(args, path, True)
            detail = f"(under autograd itself: {their_kind}) {detail}"
        outcome[kind].append(name)
        print(f"{name:45s} {kind:15s} {seconds:6.1f} s  {detail}", flush=True)

    print()
    for kind, names in outcome.items():
        print(f"{kind:15s} {len(names):3d}  {' '.join(names)}")
    runnable = len(paths) - len(outcome["needs download"])
    under = "autograd itself" if args.autograd else "the alias"
    print(f"\n{len(outcome['ran'])} of {runnable} runnable examples ran under {under} "
          f"({len(outcome['needs download'])} more need a download)")
    return 0 if len(outcome["ran"]) == runnable else 1


def _run_child(args, path, under_autograd):
    """``(outcome, seconds, detail)`` of one example run in a child process."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    # One BLAS thread unless told otherwise: on a busy machine OpenBLAS's
    # threads spin against each other, and a 2x300 triangular solve (the
    # Gaussian examples' kernel) took 44 ms instead of 0.03 ms.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:  # examples write figures and data where they run
        try:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), args.folder, "--one", path,
                                   "--max-iters", str(args.max_iters)] + ["--autograd"] * under_autograd,
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return "timed out", args.timeout, ""
    seconds = time.perf_counter() - start
    if DOWNLOAD_MARK in proc.stdout:
        return "needs download", seconds, ""
    if proc.returncode == 0:
        return "ran", seconds, ""
    lines = proc.stderr.strip().splitlines()
    return "failed", seconds, lines[-1] if lines else f"exit status {proc.returncode}"


if __name__ == "__main__":
    sys.exit(main())
