"""The compiled NUTS trajectory (probad.infer.native_nuts) against the Python kernel.

1. Time per leapfrog step of a NUTS transition on a cheap hand-written numba
   potential (a standard normal, well under a microsecond per gradient), at
   dim 10 and 100, diagonal and dense metrics, for trees of depth 3-4 (a tuned
   step) and of depth 10 (a tiny step). Both kernels call the same compiled
   potential, the Python one through its ``q -> (U, dU/dq)`` wrapper, so the
   difference is the kernel's own cost per step.
2. Whole ``run_chain`` calls (1000 warmup + 1000 draws, NUTS), which add
   adaptation, recording and the per-transition Python work to both.
3. ESS per second of ``pb.hmc`` (4 chains x (1000 + 1000)) on eight schools
   (non-centred) with the hand-written native potential of the tests standing
   in for the native backend, kernel_backend="native" vs "python", and the
   Python kernel on probad's own compiled (numpy replay) potential, today's
   default. Sampling time only: every compilation is done before timing.

Each timing is the best of a few identical runs (the machine is shared); read
the ratios, not the times. Run: ``python benchmarks/bench_native_nuts.py``
"""

import time
import warnings
from types import SimpleNamespace

import arviz as az
import numpy as np

import probad as pb
from probad.infer import SamplingWarning, kernels, mcmc
from probad.infer.chain import run_chain
from probad.infer.density import potential as make_potential
from probad.infer.native_nuts import NativeKernel
from tests.infer.test_native_nuts import NativeEightSchools, python_form, standard_normal
from tests.models import EIGHT_SCHOOLS, eight_schools_noncentered

REPEATS = 3
PROG = np.zeros(1)
POTENTIAL = python_form(standard_normal, PROG)


def native_standard_normal():
    return SimpleNamespace(fn=standard_normal, prog=PROG)


def per_leapfrog(step, iterations):
    """Best seconds per leapfrog of ``iterations`` calls of ``step(state) -> (state, info)``."""
    best = np.inf
    for _ in range(REPEATS):
        state, n_steps = step.start, 0
        start = time.perf_counter()
        for _ in range(iterations):
            state, info = step(state)
            n_steps += info.n_steps
        best = min(best, (time.perf_counter() - start) / n_steps)
    return best


def leapfrog_table():
    print("1. NUTS, us per leapfrog step (standard normal, compiled potential)")
    print(f"{'case':<16}{'dim':>5}{'metric':>8}{'python':>10}{'native':>10}{'ratio':>9}")
    for dim in (10, 100):
        for metric_name, inverse_metric in (("diag", np.ones(dim)), ("dense", np.eye(dim))):
            metric = kernels.make_metric(inverse_metric)
            start = kernels.init(np.ones(dim), POTENTIAL)
            for case, step_size, iterations in (("depth 3-4", 0.3, 200), ("depth 10", 1e-3, 3)):
                rng = np.random.default_rng(0)

                def python_step(state):
                    return kernels.nuts_step(rng, state, POTENTIAL, step_size, metric)

                native = NativeKernel(native_standard_normal, np.random.default_rng(0), dim)

                def native_step(state):
                    return native.nuts_step(state, step_size, metric)

                python_step.start = native_step.start = start
                native_step(start)  # compile (or load from the cache)
                t_python = per_leapfrog(python_step, iterations)
                t_native = per_leapfrog(native_step, iterations)
                print(f"{case:<16}{dim:>5}{metric_name:>8}{t_python * 1e6:>10.2f}"
                      f"{t_native * 1e6:>10.3f}{t_python / t_native:>8.1f}x")


def run_chain_table():
    print("\n2. run_chain, NUTS, 1000 + 1000 iterations: us per gradient evaluation")
    print(f"{'dim':>5}{'python':>10}{'native':>10}{'ratio':>9}")
    for dim in (10, 100):
        times = {}
        for backend in ("python", "native"):
            native = native_standard_normal if backend == "native" else None
            best = np.inf
            for _ in range(REPEATS if backend == "native" else 1):
                start = time.perf_counter()
                result = run_chain(POTENTIAL, np.ones(dim), seed_or_rng=1, draws=1000, tune=1000,
                                   native_potential=native)
                best = min(best, (time.perf_counter() - start) / result.num_grad_evals)
            times[backend] = best
        print(f"{dim:>5}{times['python'] * 1e6:>10.2f}{times['native'] * 1e6:>10.3f}"
              f"{times['python'] / times['native']:>8.1f}x")


def eight_schools_ess_per_second():
    print("\n3. pb.hmc eight schools (non-centred), 4 x (1000 + 1000): min bulk ESS per second")
    hand_written = mcmc.make_potential
    runs = {
        "native kernel, hand-written native potential": ("native", True),
        "python kernel, hand-written potential": ("python", True),
        "python kernel, probad compiled potential": ("python", False),
    }
    probads = make_potential(eight_schools_noncentered, EIGHT_SCHOOLS)
    if getattr(probads, "native", None) is not None:
        # With the native backend, probad's own potential runs in compiled code too.
        runs["native kernel, probad native potential"] = ("native", False)
    rates = {}
    for label, (backend, stand_in) in runs.items():
        mcmc.make_potential = (lambda *a, **k: NativeEightSchools(make_potential(*a, **k))) \
            if stand_in else hand_written
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                options = dict(kernel_backend=backend, progress=False)
                pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, draws=20, tune=20, chains=1,
                       seed=0, **options)  # every compilation happens here
                idata = pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, seed=2, **options)
        finally:
            mcmc.make_potential = hand_written
        ess = float(az.ess(idata, method="bulk", var_names=["mu", "tau", "theta"])
                    .to_array().min())
        seconds = idata.attrs["sampling_time"]
        rates[label] = ess / seconds
        print(f"  {label:<48} {seconds:7.2f} s  min ESS {ess:7.0f}  {ess / seconds:9.0f} /s")
    comparisons = [("native kernel, hand-written native potential",
                    "python kernel, hand-written potential"),
                   ("native kernel, hand-written native potential",
                    "python kernel, probad compiled potential"),
                   ("native kernel, probad native potential",
                    "python kernel, probad compiled potential")]
    for faster, slower in comparisons:
        if faster in rates:
            print(f"  ESS/s ratio, {faster} / {slower}: {rates[faster] / rates[slower]:.1f}x")


def main():
    leapfrog_table()
    run_chain_table()
    eight_schools_ess_per_second()


if __name__ == "__main__":
    main()
