"""Densities compile into guard-free tapes.

Inference compiles the potential (``probad.ad.compiler``): a Python decision
on a traced value inside ``log_prob``, a transform or a constructor would
become a guard, and a guard that flips retraces or falls back to eager
evaluation. Each density below, pushed through ``biject_to`` of its support
with parameters traced too, must record one tape without guards that
replays the eager values and gradients on new inputs.
"""
import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
import probad.distributions as dist
from probad.ad import value_and_grad
from probad.ad.compiler import CompileWarning, compile
from probad.distributions import constraints
from probad.distributions.transforms import biject_to


def _pos(q, i):
    return np.exp(q[-1 - i])


LATENT = {
    "Normal": lambda q: dist.Normal(q[-1], _pos(q, 1)),
    "HalfNormal": lambda q: dist.HalfNormal(_pos(q, 0)),
    "StudentT": lambda q: dist.StudentT(_pos(q, 0) + 1.0, q[-2], _pos(q, 2)),
    "HalfStudentT": lambda q: dist.HalfStudentT(_pos(q, 0) + 1.0, _pos(q, 2)),
    "Cauchy": lambda q: dist.Cauchy(q[-1], _pos(q, 1)),
    "HalfCauchy": lambda q: dist.HalfCauchy(_pos(q, 1)),
    "Exponential": lambda q: dist.Exponential(_pos(q, 1)),
    "Gamma": lambda q: dist.Gamma(_pos(q, 0), _pos(q, 1)),
    "Chi2": lambda q: dist.Chi2(_pos(q, 0)),
    "InverseGamma": lambda q: dist.InverseGamma(_pos(q, 0), _pos(q, 1)),
    "LogNormal": lambda q: dist.LogNormal(q[-1], _pos(q, 1)),
    "Beta": lambda q: dist.Beta(_pos(q, 0), _pos(q, 1)),
    "Uniform": lambda q: dist.Uniform(q[-1], q[-1] + _pos(q, 1)),
    "Laplace": lambda q: dist.Laplace(q[-1], _pos(q, 1)),
    "Logistic": lambda q: dist.Logistic(q[-1], _pos(q, 1)),
    "Weibull": lambda q: dist.Weibull(_pos(q, 0), _pos(q, 1)),
    "Pareto": lambda q: dist.Pareto(_pos(q, 0), _pos(q, 1)),
    "TruncatedNormal": lambda q: dist.TruncatedNormal(q[-1], _pos(q, 1), q[-3] - 1.0, q[-3] + 1.0),
    "TruncatedNormal_low": lambda q: dist.TruncatedNormal(q[-1], _pos(q, 1), low=q[-3]),
    "VonMises": lambda q: dist.VonMises(q[-1], _pos(q, 1)),
    "Gumbel": lambda q: dist.Gumbel(q[-1], _pos(q, 1)),
    "MultivariateNormal": lambda q: dist.MultivariateNormal(q[-3:], covariance_matrix=np.eye(3) * _pos(q, 4) + 0.1),
    "MultivariateNormal_precision": lambda q: dist.MultivariateNormal(
        q[-3:], precision_matrix=np.eye(3) * _pos(q, 4) + 0.1),
    "LowRankMultivariateNormal": lambda q: dist.LowRankMultivariateNormal(q[-3:], np.reshape(q[-6:], (3, 2)),
                                                                          np.exp(q[-3:])),
    "MultivariateStudentT": lambda q: dist.MultivariateStudentT(_pos(q, 4), q[-3:], np.eye(3) * _pos(q, 5)),
    "Dirichlet": lambda q: dist.Dirichlet(np.exp(q[-4:])),
    "LKJCholesky": lambda q: dist.LKJCholesky(3, _pos(q, 0)),
    "GaussianRandomWalk": lambda q: dist.GaussianRandomWalk(_pos(q, 0), 3),
    "ImproperUniform_corr_matrix": lambda q: dist.ImproperUniform(constraints.corr_matrix, (), (3, 3)),
    "ImproperUniform_positive_definite": lambda q: dist.ImproperUniform(constraints.positive_definite, (), (3, 3)),
    "ImproperUniform_positive_ordered": lambda q: dist.ImproperUniform(
        constraints.positive_ordered_vector, (), (3,)),
    "MixtureSameFamily": lambda q: dist.MixtureSameFamily(
        dist.Categorical(logits=q[-3:]), dist.Normal(q[-6:-3], 1.0)),
    "Expanded_Masked": lambda q: dist.Normal(q[-1], _pos(q, 1)).expand((3,)).mask(onp.array([True, False, True])),
    "TransformedDistribution": lambda q: dist.TransformedDistribution(dist.Normal(q[-1], _pos(q, 1)),
                                                                      dist.transforms.ExpTransform()),
}

OBSERVED = {
    "Bernoulli": (lambda q: dist.Bernoulli(logits=q[:3]), [0, 1, 1]),
    "Bernoulli_probs": (lambda q: dist.Bernoulli(probs=1 / (1 + np.exp(-q[:3]))), [0, 1, 1]),
    "Binomial": (lambda q: dist.Binomial(5, logits=q[:3]), [0, 1, 5]),
    "BetaBinomial": (lambda q: dist.BetaBinomial(np.exp(q[:3]), np.exp(q[3]), 5), [0, 1, 5]),
    "Categorical": (lambda q: dist.Categorical(logits=q[:3]), [0, 1, 2]),
    "Poisson": (lambda q: dist.Poisson(np.exp(q[:3])), [0, 1, 5]),
    "Poisson_log_rate": (lambda q: dist.Poisson(log_rate=q[:3]), [0, 1, 5]),
    "NegativeBinomial2": (lambda q: dist.NegativeBinomial2(np.exp(q[:3]), np.exp(q[3])), [0, 1, 5]),
    "Geometric": (lambda q: dist.Geometric(logits=q[:3]), [0, 1, 5]),
    "OrderedLogistic": (lambda q: dist.OrderedLogistic(q[:3], np.cumsum(np.exp(q[3:]))), [0, 1, 3]),
    "ZeroInflatedPoisson": (lambda q: dist.ZeroInflatedPoisson(1 / (1 + np.exp(-q[0])), np.exp(q[:3])), [0, 1, 5]),
    "ZeroInflatedNegativeBinomial2": (lambda q: dist.ZeroInflatedNegativeBinomial2(
        np.exp(q[:3]), np.exp(q[3]), gate_logits=q[4]), [0, 1, 5]),
    "Multinomial": (lambda q: dist.Multinomial(5, logits=q[:3]), [2, 1, 2]),
}


def _assert_compiles_without_guards(potential, dim):
    compiled = compile(value_and_grad(potential))
    rng = onp.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        for _ in range(3):
            q = 0.5 * rng.normal(size=dim)
            value, gradient = compiled(q)
            expected_value, expected_gradient = value_and_grad(potential)(q)
            onp.testing.assert_allclose(value, expected_value, rtol=1e-12)
            onp.testing.assert_allclose(gradient, expected_gradient, rtol=1e-12, atol=1e-14)
    tapes = [tape for per_key in compiled.tapes.values() for tape in per_key]
    assert compiled.trace_count == 1 and len(tapes) == 1
    assert tapes[0].guards == []


@pytest.mark.parametrize("name", list(LATENT))
def test_latent_density_compiles_without_guards(name):
    make = LATENT[name]
    # The leading coordinates of q are the latent value (unconstrained), the
    # last six feed the parameters.
    prototype = make(onp.zeros(12))
    size = int(onp.prod(biject_to(prototype.support).inverse_shape(prototype.shape())))

    def potential(q):
        d = make(q)
        t = biject_to(d.support)
        u = np.reshape(q[:size], t.inverse_shape(d.shape()))
        x = t(u)
        return -(np.sum(d.log_prob(x)) + np.sum(t.log_abs_det_jacobian(u, x)))

    _assert_compiles_without_guards(potential, size + 6)


@pytest.mark.parametrize("name", list(OBSERVED))
def test_observed_density_compiles_without_guards(name):
    make, data = OBSERVED[name]
    data = onp.asarray(data)
    _assert_compiles_without_guards(lambda q: -np.sum(make(q).log_prob(data)), 6)
