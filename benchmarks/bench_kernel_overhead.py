"""Time the sampler's own work per leapfrog step, excluding the gradient.

The target is a standard normal, ``U = q.q / 2``, whose potential costs well
under a microsecond; that cost is measured on its own and subtracted, so what
remains is the kernel's bookkeeping: integrator, energies, U-turn checks,
multinomial sampling. A last row runs whole chains through ``run_chain``
(warmup adaptation, recording draws, the gradient counter) to show what the
driver adds. Each figure is the best of several identical runs, which
filters out noise from other processes. Target: at most 10 us per leapfrog.

Run: ``python benchmarks/bench_kernel_overhead.py``
"""

import time

import numpy as np

from probad.infer import kernels
from probad.infer.chain import run_chain

REPEATS = 7
TARGET_US = 10.0


def standard_normal_potential(q):
    return 0.5 * q.dot(q), q


def seconds_per_potential_call(dim, calls=20_000):
    q = np.ones(dim)
    best = np.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            standard_normal_potential(q)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def seconds_per_leapfrog(step, dim, metric, iterations, **kwargs):
    best = np.inf
    for _ in range(REPEATS):
        rng = np.random.default_rng(0)
        state = kernels.init(np.zeros(dim), standard_normal_potential)
        n_steps = 0
        start = time.perf_counter()
        for _ in range(iterations):
            state, info = step(rng, state, standard_normal_potential, metric=metric, **kwargs)
            n_steps += info.n_steps
        best = min(best, (time.perf_counter() - start) / n_steps)
    return best


def seconds_per_leapfrog_in_run_chain(dim, **kwargs):
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        result = run_chain(standard_normal_potential, np.zeros(dim), seed_or_rng=0, **kwargs)
        best = min(best, (time.perf_counter() - start) / result.num_grad_evals)
    return best


def main():
    cases = (
        # A tuned step for a standard normal gives trees of depth 3-4 ...
        ("nuts, step 0.3", kernels.nuts_step, 500, {"step_size": 0.3}),
        # ... a tiny one saturates max_tree_depth=10 (1023 steps per transition).
        ("nuts, depth 10", kernels.nuts_step, 3, {"step_size": 1e-3}),
        ("hmc, 20 steps", kernels.hmc_step, 500, {"step_size": 0.3, "num_steps": 20}),
    )
    print(f"{'kernel':<17}{'dim':>5}{'metric':>8}{'us/leapfrog':>13}{'overhead us':>13}")
    for dim in (10, 100):
        potential_cost = seconds_per_potential_call(dim)
        for metric_name, inverse_metric in (("diag", np.ones(dim)), ("dense", np.eye(dim))):
            metric = kernels.make_metric(inverse_metric)
            for name, step, iterations, kwargs in cases:
                per_step = seconds_per_leapfrog(step, dim, metric, iterations, **kwargs)
                print(f"{name:<17}{dim:>5}{metric_name:>8}{per_step * 1e6:>13.2f}"
                      f"{(per_step - potential_cost) * 1e6:>13.2f}")
        per_step = seconds_per_leapfrog_in_run_chain(dim, draws=500, tune=500)
        overhead_us = (per_step - potential_cost) * 1e6
        verdict = "met" if overhead_us <= TARGET_US else "MISSED"
        print(f"{'run_chain, nuts':<17}{dim:>5}{'diag':>8}{per_step * 1e6:>13.2f}"
              f"{overhead_us:>13.2f}   target <= {TARGET_US:g} us: {verdict}")
    print("overhead = time per leapfrog step minus one potential call "
          f"({potential_cost * 1e6:.2f} us at dim 100)")


if __name__ == "__main__":
    main()
