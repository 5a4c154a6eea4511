"""hmm_example with its hidden states written out, one Categorical per step
in a ``pb.markov`` loop, summed out by enumeration: the posteriordb
reference that the hand-written forward algorithm passes.

The rule of tests/data/posteriordb/README.md (|z| < 4 for every mean and sd,
R-hat < 1.01, no divergences), applied as ``tests/posterior_checks.py`` does
(a check fails only if it fails on every seed tried), is scale-free in the
number of draws, since each z is measured in units of its own Monte-Carlo
error; fewer draws than posteriordb's 4 x 1000 keep the test affordable.
R-hat's spread grows as draws shrink, which the repeat rule absorbs.
"""
import math
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

import probad as pb
import probad.ad.numpy as np
from probad import constraints
from probad import distributions as dist
from tests.posterior_checks import assert_passes_on_repeat, reference_failures
from tests.posteriordb_models import POSTERIORS, model_and_data, reference_draws, scalar_draws

NAME = "hmm_example-hmm_example"


def hmm_explicit_states(N, K, y):
    theta1 = pb.sample("theta1", dist.ImproperUniform(constraints.simplex, (), (K,)))
    theta2 = pb.sample("theta2", dist.ImproperUniform(constraints.simplex, (), (K,)))
    mu = pb.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (), (K,)))
    pb.factor("mu_prior",
              dist.Normal(3.0, 1.0).log_prob(mu[0]) + dist.Normal(10.0, 1.0).log_prob(mu[1]))
    theta = np.stack([theta1, theta2])  # theta[j] = P(next state | state j)
    x = None
    for t in pb.markov(range(N)):
        # Stan's hmm_example gives every first state weight 1 (here 1/K: a constant).
        probs = np.ones(K) / K if x is None else theta[x]
        x = pb.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
        pb.sample(f"y_{t}", dist.Normal(mu[x], 1.0), obs=y[t])


def test_potential_equals_forward_algorithm():
    from probad.infer.density import potential

    hand_model, data = model_and_data(NAME)
    hand, enumerated = potential(hand_model, data), potential(hmm_explicit_states, data)
    assert enumerated.dim == hand.dim
    for seed in range(3):
        q = hand.initial_point(seed=seed)
        u, g = enumerated.value_and_grad(q)
        u_ref, g_ref = hand.value_and_grad(q)
        # The only difference: the first state's weight 1/K instead of 1.
        assert u - u_ref == pytest.approx(math.log(data["K"]), abs=1e-9)
        assert abs(g - g_ref).max() < 1e-8 * abs(g_ref).max()
    assert enumerated._energy_and_grad.trace_count == 1
    # Each step's theta[x] and its log mass are the same computation on the
    # same support (shared_calls): replayed and differentiated once, the
    # tape stays within twice the forward algorithm's (it was 2.8 times).
    tape_ops = [len(next(iter(p._energy_and_grad.tapes.values()))[0].ops) for p in (hand, enumerated)]
    assert tape_ops[1] < 2 * tape_ops[0]


@pytest.mark.slow
def test_enumerated_hmm_matches_reference():
    _, data = model_and_data(NAME)
    reference = reference_draws(NAME)

    def failures(seed):
        with warnings.catch_warnings(), ProcessPoolExecutor(2) as pool:
            warnings.simplefilter("ignore", pb.infer.SamplingWarning)  # checked below
            # 1000 draws, as the posteriordb tests take: the Fisher diagonal
            # metric, fitted to mu[0] and log(mu[1] - mu[0]), which are
            # strongly correlated, leaves mu[0] about 600 effective draws in
            # 4000, and at 400 draws per chain R-hat was 1.016-1.023 on 6 of 6
            # seeds, with the chains agreeing to 0.07 (a sixth of an sd); at
            # 1000 it was 1.003-1.008 on 3 seeds.
            idata = pb.hmc(hmm_explicit_states, data, draws=1000, tune=400, chains=4, seed=seed,
                           progress=False, executor=pool, log_likelihood=False)
        return reference_failures(idata, scalar_draws(idata, POSTERIORS[NAME][2]), reference)

    assert_passes_on_repeat(failures)
