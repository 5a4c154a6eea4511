"""Enumerated discrete sites against marginalising them by hand.

Per-gradient cost of the compiled potential of posteriordb's hmm_example
(N=100 steps, K=2 states) written two ways: the hand-written forward
algorithm of ``tests/posteriordb_models.py`` and the same model with its
hidden states as ``Categorical`` sites in a ``pb.markov`` loop, summed out by
enumeration; also a two-component Gaussian mixture (N=1,000) marginalised
with ``logsumexp`` and enumerated. Figures are the best of several runs of
many calls (other processes only ever slow a run down); ratios are
enumerated / hand-written, and the replayed tapes' op counts are printed
beside them, since a compiled replay costs about the same per op.

Per ESS/s: both HMM versions sampled by ``pb.hmc`` with the same seed (2
chains of 500 draws after 500 tuning steps, run one after the other in this
process), the smallest bulk ESS over theta1, theta2 and mu divided by the
sampling time ``attrs["sampling_time"]``, best of two runs of each after a
short run that warms the compiled caches. The two potentials differ by the
constant log K only, so the chains nearly coincide and the ESS/s ratio is
mostly the per-gradient one; it is printed as hand-written / enumerated
(above 1: the enumerated model is slower).

Run: ``python benchmarks/bench_enumerate.py``
"""
from __future__ import annotations

import time

import arviz as az
import numpy as onp

import probad as pb
from probad.infer.density import potential
from tests.infer.test_enumerate import mixture_enumerated, mixture_marginalised
from tests.infer.test_enumerate_hmm import hmm_explicit_states
from tests.posteriordb_models import model_and_data

REPEATS = 5


def seconds_per_gradient(pot, q, budget=0.5):
    pot.value_and_grad(q)
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < budget / 5:
        pot.value_and_grad(q)
        calls += 1
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            pot.value_and_grad(q)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def tape_ops(pot) -> int:
    return len(next(iter(pot._energy_and_grad.tapes.values()))[0].ops)


def compare(label, hand_model, enum_model, data):
    hand, enumerated = potential(hand_model, data), potential(enum_model, data)
    q = hand.initial_point(seed=0)
    t_hand = seconds_per_gradient(hand, q)
    t_enum = seconds_per_gradient(enumerated, q)
    print(f"{label:28s} hand {t_hand * 1e6:9.0f} us ({tape_ops(hand):5d} ops)   enumerated "
          f"{t_enum * 1e6:9.0f} us ({tape_ops(enumerated):5d} ops)   ratio {t_enum / t_hand:5.2f}")


def ess_per_second(model, data, runs=2) -> tuple[float, float]:
    """``(min bulk ESS / sampling second, min bulk ESS)``, best of ``runs``."""
    options = dict(chains=2, seed=1, progress=False, log_likelihood=False)
    pb.hmc(model, data, draws=20, tune=20, **options)  # warm the compiled caches
    best, best_ess = 0.0, 0.0
    for _ in range(runs):
        idata = pb.hmc(model, data, draws=500, tune=500, **options)
        ess = float(az.ess(idata, var_names=["theta1", "theta2", "mu"]).to_array().min())
        if ess / idata.attrs["sampling_time"] > best:
            best, best_ess = ess / idata.attrs["sampling_time"], ess
    return best, best_ess


def main():
    hmm, data = model_and_data("hmm_example-hmm_example")
    compare("hmm_example (N=100, K=2)", hmm, hmm_explicit_states, data)
    hand, hand_ess = ess_per_second(hmm, data)
    enumerated, enum_ess = ess_per_second(hmm_explicit_states, data)
    print(f"{'hmm_example ESS/s':28s} hand {hand:9.0f} (ESS {hand_ess:4.0f})      enumerated "
          f"{enumerated:9.0f} (ESS {enum_ess:4.0f})      ratio {hand / enumerated:5.2f}")
    rng = onp.random.default_rng(0)
    y = onp.concatenate([rng.normal(-2.0, 1.0, 500), rng.normal(1.5, 1.0, 500)])
    compare("mixture (N=1000, K=2)", mixture_marginalised, mixture_enumerated, {"y": y})


if __name__ == "__main__":
    main()
