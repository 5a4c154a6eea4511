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

Per ESS/s: both HMM versions sampled by ``pb.hmc`` with the same seeds (three
runs of 4 chains, 1,000 draws after 1,000 tuning steps, one chain after the
other in this process, after a short run that warms the compiled caches):
ESS per gradient (the smallest bulk ESS over theta1, theta2 and mu) times
the best run's gradients per second of ``attrs["sampling_time"]`` (building
and compiling the potential included), both printed beside it. The two potentials
differ by the constant log K only, so both sample the same posterior at the
same step sizes, and ESS per gradient differs by Monte-Carlo noise alone; the
ratio is printed as hand-written / enumerated (above 1: enumeration is slower).

Run: ``python benchmarks/bench_enumerate.py``
"""
from __future__ import annotations

import time
import warnings

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


def ess_per_second(model, data, seeds=(1, 2, 3)) -> tuple[float, float, float]:
    """``(ESS/s, ESS per gradient, gradients/s)`` of ``pb.hmc`` runs at
    ``seeds``: ESS per gradient is each run's smallest bulk ESS over theta1,
    theta2 and mu, summed over the runs, over their summed gradient counts;
    gradients/s the best run's (``attrs["sampling_time"]``, which includes
    building and compiling the potential: other processes only ever slow a
    run down); ESS/s their product."""
    options = dict(chains=4, progress=False, log_likelihood=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        pb.hmc(model, data, draws=20, tune=20, seed=0, **options)  # warm the compiled caches
        ess = gradients = best = 0.0
        for seed in seeds:
            idata = pb.hmc(model, data, draws=1000, tune=1000, seed=seed, **options)
            ess += float(az.ess(idata, var_names=["theta1", "theta2", "mu"]).to_array().min())
            run = sum(idata.attrs["num_gradient_evaluations"])
            gradients += run
            best = max(best, run / idata.attrs["sampling_time"])
    return ess / gradients * best, ess / gradients, best


def main():
    hmm, data = model_and_data("hmm_example-hmm_example")
    compare("hmm_example (N=100, K=2)", hmm, hmm_explicit_states, data)
    hand, enumerated = ess_per_second(hmm, data), ess_per_second(hmm_explicit_states, data)
    for label, (per_s, per_grad, grads) in (("hand", hand), ("enumerated", enumerated)):
        print(f"hmm_example NUTS {label:10s}  ESS/s {per_s:6.0f}   ESS/grad {per_grad:.4f}   "
              f"grad/s {grads:7.0f}")
    print(f"hmm_example ESS/s ratio (hand / enumerated) {hand[0] / enumerated[0]:5.2f}")
    rng = onp.random.default_rng(0)
    y = onp.concatenate([rng.normal(-2.0, 1.0, 500), rng.normal(1.5, 1.0, 500)])
    compare("mixture (N=1000, K=2)", mixture_marginalised, mixture_enumerated, {"y": y})


if __name__ == "__main__":
    main()
