"""Time the sampler's own work per leapfrog step, excluding the gradient.

The target is a standard normal, ``U = q.q / 2``, whose potential costs about
a microsecond; its cost is measured separately and subtracted so what remains
is the kernel's bookkeeping (integrator, U-turn checks, multinomial sampling).

Run: ``python benchmarks/bench_kernel_overhead.py``
"""

import time

import numpy as np

from probad.infer import hmc


def standard_normal_potential(q):
    return 0.5 * q.dot(q), q


def time_potential(dim, repeats=200_000):
    q = np.ones(dim)
    start = time.perf_counter()
    for _ in range(repeats):
        standard_normal_potential(q)
    return (time.perf_counter() - start) / repeats


def time_kernel(step, dim, metric, iterations, **kwargs):
    rng = np.random.default_rng(0)
    state = hmc.init(np.zeros(dim), standard_normal_potential)
    n_steps = 0
    start = time.perf_counter()
    for _ in range(iterations):
        state, info = step(rng, state, standard_normal_potential, metric=metric, **kwargs)
        n_steps += info.n_steps
    return (time.perf_counter() - start) / n_steps, n_steps


def main():
    print(f"{'kernel':<22}{'dim':>5}{'metric':>8}{'leapfrogs':>11}{'total us':>10}{'overhead us':>13}")
    for dim in (10, 100):
        potential_cost = time_potential(dim)
        for metric_name, inverse_metric in (("diag", np.ones(dim)), ("dense", np.eye(dim))):
            metric = hmc.make_metric(inverse_metric)
            for name, step, kwargs in (
                # Step sizes give trees of depth ~4-5, the typical tuned regime.
                ("nuts (eps=0.3)", hmc.nuts_step, {"step_size": 0.3}),
                ("nuts (depth 10)", hmc.nuts_step, {"step_size": 1e-3}),
                ("hmc (20 steps)", hmc.hmc_step, {"step_size": 0.3, "num_steps": 20}),
            ):
                iterations = 5 if "depth 10" in name else 2000
                per_step, n_steps = time_kernel(step, dim, metric, iterations, **kwargs)
                print(
                    f"{name:<22}{dim:>5}{metric_name:>8}{n_steps:>11}"
                    f"{per_step * 1e6:>10.2f}{(per_step - potential_cost) * 1e6:>13.2f}"
                )


if __name__ == "__main__":
    main()
