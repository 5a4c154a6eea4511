"""Why PyMC gets more ESS per gradient than probad and NumPyro (bench_nuts.py).

The three run the same NUTS kernel; the difference is the step size warmup
ends with. Stan (probad, NumPyro) restarts dual averaging after the last
metric update, so the final ``exp(x_bar)`` averages the iterates of the
50-iteration terminal window, which swing by about a factor of two; the mean
acceptance over those iterates is the target 0.8, but the acceptance at their
log-mean is ~0.88, so sampling runs at a step ~20-25% smaller than the one
that gives 0.8. PyMC averages over all of warmup without restarting and
samples at acceptance ~0.81. The trees keep 7 leapfrog steps (or grow from 7
to 15 on radon), so the smaller step costs ESS or gradients.

This script shows it with probad alone: one run at the defaults (Stan's
warmup), then probad's kernel without adaptation at a range of fixed step
sizes, with that run's adapted inverse metric, from its final draws. Per
step size: the mean acceptance statistic, leapfrog steps per draw and min
bulk ESS per gradient (min ESS is noisy: ~10-20% between runs). Measured
(4 x 1000 draws, two busy cores):

    logistic: Stan's warmup ends at 0.512, acceptance 0.88, ESS/grad 0.056;
      fixed 0.461 / 0.512 / 0.564 / 0.615 / 0.666 / 0.717 give acceptance
      0.90 / 0.88 / 0.86 / 0.82 / 0.79 / 0.75, 7.1-7.4 steps per draw,
      ESS/grad 0.043 / 0.057 / 0.065 / 0.081 / 0.100 / 0.081
    radon: Stan's warmup ends at 0.399, acceptance 0.88, 13.6 steps per
      draw, ESS/grad 0.045; fixed 0.359 / 0.399 / 0.439 / 0.478 / 0.518 /
      0.558 give acceptance 0.90 / 0.88 / 0.85 / 0.82 / 0.79 / 0.76,
      15.0 / 14.1 / 9.6 / 7.0 / 7.0 / 7.0 steps per draw, ESS/grad
      0.051 / 0.052 / 0.044 / 0.065 / 0.074 / 0.085

PyMC's own runs (3 seeds) end at 0.60-0.67 (logistic) and 0.49-0.52 (radon),
acceptance 0.79-0.82, ESS/grad 0.075-0.097 and 0.072-0.076: what probad's
kernel gives at those step sizes. So the gap is Stan's warmup, which probad
keeps; ``target_accept=0.65`` is the user's lever (one seed: acceptance
0.78 / 0.80, ESS/grad 0.090 / 0.076 on logistic / radon).

Run: ``python benchmarks/bench_nuts_step_size.py [logistic|radon|eight_schools]``
(a few minutes).
"""
from __future__ import annotations

import sys
import warnings

import arviz as az
import numpy as np

from bench_nuts import CHAINS, make_data, probad_model

FACTORS = [0.9, 1.0, 1.1, 1.2, 1.3, 1.4]  # fixed step sizes, relative to the adapted one


def min_ess_per_grad(positions, n_steps) -> float:
    """Min bulk ESS over the unconstrained coordinates of ``(chain, draw, dim)``, per gradient."""
    ess = min(az.ess(positions[..., j], method="bulk") for j in range(positions.shape[-1]))
    return float(ess) / int(n_steps.sum())


def main(name="logistic", draws=1000, seed=1):
    import probad as pb
    from probad.infer.chain import run_chain

    data = make_data(name)
    pot = pb.potential(probad_model(name), data)
    rng = np.random.default_rng(seed)
    chains = [run_chain(pot.value_and_grad, pot.initial_point(seed=rng), seed_or_rng=rng,
                        draws=draws, tune=1000) for _ in range(CHAINS)]
    step = float(np.mean([c.step_size for c in chains]))
    print(f"{name}: Stan's warmup, {CHAINS} x (1000 + {draws})")
    print(f"{'step':>8}{'accept':>8}{'steps/draw':>11}{'ESS/grad':>10}")

    def row(label, results):
        n_steps = np.stack([r.stats["n_steps"] for r in results])
        accept = np.mean([r.stats["acceptance_rate"].mean() for r in results])
        ess_grad = min_ess_per_grad(np.stack([r.positions for r in results]), n_steps)
        print(f"{label:>8}{accept:8.3f}{n_steps.mean():11.2f}{ess_grad:10.4f}", flush=True)

    row(f"{step:.3f}", chains)
    print("probad's kernel, no adaptation, at fixed step sizes (each chain's adapted metric):")
    for factor in FACTORS:
        fixed = [run_chain(pot.value_and_grad, c.positions[-1], seed_or_rng=rng, draws=draws,
                           tune=0, step_size=factor * step, inverse_metric=c.inverse_metric)
                 for c in chains]
        row(f"{factor * step:.3f}", fixed)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    main(*sys.argv[1:2])
