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

Run: ``python benchmarks/bench_enumerate.py``
"""
from __future__ import annotations

import time

import numpy as onp

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


def main():
    hmm, data = model_and_data("hmm_example-hmm_example")
    compare("hmm_example (N=100, K=2)", hmm, hmm_explicit_states, data)
    rng = onp.random.default_rng(0)
    y = onp.concatenate([rng.normal(-2.0, 1.0, 500), rng.normal(1.5, 1.0, 500)])
    compare("mixture (N=1000, K=2)", mixture_marginalised, mixture_enumerated, {"y": y})


if __name__ == "__main__":
    main()
