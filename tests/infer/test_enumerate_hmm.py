"""hmm_example with its hidden states written out, one Categorical per step
in a ``pb.markov`` loop, summed out by enumeration: the posteriordb
reference that the hand-written forward algorithm passes.

The rule of tests/data/posteriordb/README.md (|z| < 4 for every mean and sd,
R-hat < 1.01, no divergences) is scale-free in the number of draws, since
each z is measured in units of its own Monte-Carlo error; fewer draws than
posteriordb's 4 x 1000 keep the test affordable (the enumerated potential
costs about 2.7 hand-written forward algorithms per gradient). A false
failure per z is about 6e-5; with 12 z's, under 1e-3, and the seed is fixed.
"""
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest

import probad as pb
import probad.ad.numpy as np
from probad import constraints
from probad import distributions as dist
from tests.infer.test_posteriordb import _check_rhat_and_divergences
from tests.posteriordb_models import (POSTERIORS, model_and_data, reference_draws, scalar_draws,
                                      z_scores)

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
        assert u - u_ref == pytest.approx(float(onp_log(data["K"])), abs=1e-9)
        assert abs(g - g_ref).max() < 1e-8 * abs(g_ref).max()
    assert enumerated._energy_and_grad.trace_count == 1


def onp_log(x):
    import numpy

    return numpy.log(x)


@pytest.mark.slow
def test_enumerated_hmm_matches_reference():
    _, data = model_and_data(NAME)
    with warnings.catch_warnings(), ProcessPoolExecutor(2) as pool:
        warnings.simplefilter("error", pb.infer.SamplingWarning)
        idata = pb.hmc(hmm_explicit_states, data, draws=400, tune=400, chains=4, seed=20261121,
                       progress=False, executor=pool, log_likelihood=False)
    _check_rhat_and_divergences(idata)
    ours = scalar_draws(idata, POSTERIORS[NAME][2])
    failures = []
    for key, ref in reference_draws(NAME).items():
        zm, zs = z_scores(ours[key], ref)
        if abs(zm) >= 4 or abs(zs) >= 4:
            failures.append(f"{key}: z_mean={zm:.2f} z_sd={zs:.2f}")
    assert not failures, "; ".join(failures)
