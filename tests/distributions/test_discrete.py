"""Discrete distributions against scipy.stats: mass functions, moments, sampling, gradients."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as onp
import pytest
import scipy.special as sp
import scipy.stats as st

import probad.distributions as dist
from probad.ad.test_util import check_grads
from tests.distributions.goodness_of_fit import chi_square_pvalue


class _ZeroInflated:
    """Reference zero-inflated pmf: gate * [k == 0] + (1 - gate) * base.pmf(k)."""

    def __init__(self, base, gate):
        self.base, self.gate = base, gate

    def pmf(self, k):
        return self.gate * (onp.asarray(k) == 0) + (1 - self.gate) * self.base.pmf(k)

    def logpmf(self, k):
        return onp.log(self.pmf(k))

    def mean(self):
        return (1 - self.gate) * self.base.mean()

    def var(self):
        m = self.base.mean()
        return (1 - self.gate) * (self.base.var() + m * m) - self.mean() ** 2

    def ppf(self, q):
        return self.base.ppf(q)

    def rvs(self, size, random_state):
        draws = self.base.rvs(size=size, random_state=random_state)
        return onp.where(random_state.random(size) < self.gate, 0, draws)


class _OrderedLogistic:
    """Reference ordinal-logistic pmf from differences of logistic CDFs."""

    def __init__(self, predictor, cutpoints):
        cdf = sp.expit(cutpoints - onp.expand_dims(predictor, -1))
        ones = onp.ones(cdf.shape[:-1] + (1,))
        self.p = onp.diff(onp.concatenate([0 * ones, cdf, ones], -1), axis=-1)

    def pmf(self, k):
        k = onp.asarray(k)
        p = onp.broadcast_to(self.p, k.shape + self.p.shape[-1:])
        return onp.take_along_axis(p, k[..., None], -1)[..., 0]

    def logpmf(self, k):
        return onp.log(self.pmf(k))

    def mean(self):
        return onp.sum(self.p * onp.arange(self.p.shape[-1]), -1)

    def var(self):
        k = onp.arange(self.p.shape[-1])
        return onp.sum(self.p * k**2, -1) - self.mean() ** 2

    def ppf(self, q):
        return self.p.shape[-1] - 1

    def rvs(self, size, random_state):
        cdf = onp.cumsum(onp.broadcast_to(self.p, size + self.p.shape[-1:]), -1)
        return onp.sum(random_state.random(size)[..., None] >= cdf[..., :-1], -1)


def prob(rng, shape):
    return rng.uniform(0.1, 0.9, shape)


def pos(rng, shape, low=0.5, high=3.0):
    return rng.uniform(low, high, shape)


def _shape(shapes, i):
    return shapes[i % len(shapes)]


@dataclass
class Case:
    """As in test_continuous: ``draw(rng, shapes)`` gives the parameters,
    ``ours``/``ref`` build the distributions; ``diff`` lists which parameters
    are differentiable; ``scalar`` are parameters for the sampling tests."""

    name: str
    draw: Callable
    ours: Callable
    ref: Callable
    scalar: tuple
    diff: tuple


CASES = [
    Case("Bernoulli_probs", lambda r, s: (prob(r, _shape(s, 0)),),
         lambda p: dist.Bernoulli(probs=p), lambda p: st.bernoulli(p), (0.3,), (0,)),
    Case("Bernoulli_logits", lambda r, s: (r.normal(size=_shape(s, 0)),),
         lambda l: dist.Bernoulli(logits=l), lambda l: st.bernoulli(sp.expit(l)), (-0.4,), (0,)),
    Case("Binomial_probs", lambda r, s: (r.integers(1, 12, _shape(s, 0)), prob(r, _shape(s, 1))),
         lambda n, p: dist.Binomial(n, probs=p), lambda n, p: st.binom(n, p), (10, 0.3), (1,)),
    Case("Binomial_logits", lambda r, s: (r.integers(1, 12, _shape(s, 0)), r.normal(size=_shape(s, 1))),
         lambda n, l: dist.Binomial(n, logits=l), lambda n, l: st.binom(n, sp.expit(l)), (7, 0.8), (1,)),
    Case("BetaBinomial", lambda r, s: (pos(r, _shape(s, 0)), pos(r, _shape(s, 1)), r.integers(1, 12, _shape(s, 0))),
         dist.BetaBinomial, lambda a, b, n: st.betabinom(n, a, b), (2.0, 3.0, 10), (0, 1)),
    Case("Poisson", lambda r, s: (pos(r, _shape(s, 0), 0.5, 8.0),),
         dist.Poisson, lambda rate: st.poisson(rate), (3.5,), (0,)),
    Case("Poisson_log_rate", lambda r, s: (r.normal(size=_shape(s, 0)),),
         lambda lr: dist.Poisson(log_rate=lr), lambda lr: st.poisson(onp.exp(lr)), (1.2,), (0,)),
    Case("NegativeBinomial2", lambda r, s: (pos(r, _shape(s, 0), 0.5, 6.0), pos(r, _shape(s, 1))),
         dist.NegativeBinomial2, lambda m, c: st.nbinom(c, c / (c + m)), (3.0, 2.0), (0, 1)),
    Case("Geometric_probs", lambda r, s: (prob(r, _shape(s, 0)),),
         lambda p: dist.Geometric(probs=p), lambda p: st.geom(p, loc=-1), (0.3,), (0,)),
    Case("Geometric_logits", lambda r, s: (r.normal(size=_shape(s, 0)),),
         lambda l: dist.Geometric(logits=l), lambda l: st.geom(sp.expit(l), loc=-1), (-0.5,), (0,)),
    Case("DiscreteUniform", lambda r, s: (lambda lo: (lo, lo + r.integers(0, 5, _shape(s, 1))))(
        r.integers(-3, 3, _shape(s, 0))),
         dist.DiscreteUniform, lambda lo, hi: st.randint(lo, hi + 1), (-2, 4), ()),
    Case("ZeroInflatedPoisson", lambda r, s: (prob(r, _shape(s, 0)), pos(r, _shape(s, 1), 0.5, 6.0)),
         dist.ZeroInflatedPoisson, lambda g, rate: _ZeroInflated(st.poisson(rate), g), (0.3, 2.5), (0, 1)),
    Case("ZeroInflatedNegativeBinomial2",
         lambda r, s: (pos(r, _shape(s, 0), 0.5, 6.0), pos(r, _shape(s, 1)), prob(r, _shape(s, 0))),
         dist.ZeroInflatedNegativeBinomial2,
         lambda m, c, g: _ZeroInflated(st.nbinom(c, c / (c + m)), g), (3.0, 2.0, 0.25), (0, 1, 2)),
    Case("OrderedLogistic",
         lambda r, s: (r.normal(size=_shape(s, 0)),
                       onp.cumsum(r.uniform(0.3, 1.5, _shape(s, 1) + (3,)), -1) - 1.5),
         dist.OrderedLogistic, _OrderedLogistic, (0.3, onp.array([-1.0, 0.2, 1.5])), (0, 1)),
]
IDS = [c.name for c in CASES]
BATCH = [(2, 1), (3,)]


def _batch(params, case):
    shapes = [onp.shape(p) for p in params]
    if case.name == "OrderedLogistic":
        shapes[1] = shapes[1][:-1]
    return onp.broadcast_shapes(*shapes)


def _values(case, params, sample_shape=(4,), seed=1):
    batch = _batch(params, case)
    return onp.asarray(case.ref(*params).rvs(size=sample_shape + batch, random_state=onp.random.default_rng(seed)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_matches_scipy_with_broadcasting(case):
    params = case.draw(onp.random.default_rng(0), BATCH)
    d = case.ours(*params)
    assert d.batch_shape == _batch(params, case)
    x = _values(case, params)
    onp.testing.assert_allclose(d.log_prob(x), case.ref(*params).logpmf(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.diff], ids=[c.name for c in CASES if c.diff])
def test_log_prob_gradients(case):
    params = list(case.draw(onp.random.default_rng(2), [(3,)]))
    x = _values(case, params, sample_shape=(), seed=3)

    def log_prob(*diff_params):
        full = list(params)
        for i, p in zip(case.diff, diff_params):
            full[i] = p
        return case.ours(*full).log_prob(x)

    onp.random.seed(0)
    check_grads(log_prob, modes=["fwd", "rev"], order=1)(*[params[i] for i in case.diff])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mean_variance_match_scipy(case):
    params = case.draw(onp.random.default_rng(0), BATCH)
    d, ref = case.ours(*params), case.ref(*params)
    batch = _batch(params, case)
    if case.name == "OrderedLogistic":
        return  # a Categorical: mean and variance of category labels are not defined
    onp.testing.assert_allclose(onp.broadcast_to(d.mean, batch), onp.broadcast_to(ref.mean(), batch), rtol=1e-9)
    onp.testing.assert_allclose(onp.broadcast_to(d.variance, batch), onp.broadcast_to(ref.var(), batch), rtol=1e-9)


# Sampling: n draws at a fixed seed. The sample mean and variance must be
# within 5 standard errors (sqrt(var/n) and sqrt((mu4 - var^2)/n), the
# central moments summed over the support) and a chi-square goodness-of-fit
# test must not reject at level 1e-3.
N_DRAWS = 20_000


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_samples_match_scipy(case):
    d, ref = case.ours(*case.scalar), case.ref(*case.scalar)
    x = onp.asarray(d.sample(onp.random.default_rng(11), (N_DRAWS,)))
    assert x.shape == (N_DRAWS,) and x.dtype.kind == "i"
    assert onp.all(d.support.check(x))
    shift = case.scalar[0] if case.name == "DiscreteUniform" else 0
    upper = int(ref.ppf(1 - 1e-9)) - shift
    support = onp.arange(upper + 1) + shift
    pmf = ref.pmf(support)
    mean = onp.sum(pmf * support)
    var, mu4 = (onp.sum(pmf * (support - mean) ** power) for power in (2, 4))
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / N_DRAWS)
    assert abs(x.var() - var) < 5 * math.sqrt((mu4 - var**2) / N_DRAWS)
    pvalue = chi_square_pvalue(x - shift, lambda k: ref.pmf(k + shift), upper)
    assert pvalue > 1e-3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sample_shapes(case):
    params = case.draw(onp.random.default_rng(0), BATCH)
    d = case.ours(*params)
    x = d.sample(onp.random.default_rng(0), (5,))
    assert onp.shape(x) == (5,) + _batch(params, case)
    assert onp.all(d.support.check(x))


def test_categorical_probs_and_logits():
    rng = onp.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4))
    probs = sp.softmax(logits, -1)
    x = rng.integers(0, 4, (5, 2, 3))
    expected = onp.log(onp.take_along_axis(onp.broadcast_to(probs, (5, 2, 3, 4)), x[..., None], -1)[..., 0])
    for d in (dist.Categorical(logits=logits), dist.Categorical(probs=probs)):
        assert d.batch_shape == (2, 3) and d.event_shape == ()
        onp.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-10)
        onp.testing.assert_allclose(d.entropy(), -onp.sum(probs * onp.log(probs), -1), rtol=1e-10)
    onp.random.seed(0)
    check_grads(lambda l: dist.Categorical(logits=l).log_prob(x), modes=["fwd", "rev"], order=2)(logits)
    # Finite differences step off the simplex: skip validation for them.
    check_grads(lambda p: dist.Categorical(probs=p, validate_args=False).log_prob(x),
                modes=["fwd", "rev"], order=1)(probs)


def test_categorical_zero_probability_and_sampling():
    d = dist.Categorical(probs=onp.array([0.2, 0.0, 0.5, 0.3]))
    assert d.log_prob(1) == -onp.inf
    x = d.sample(onp.random.default_rng(3), (N_DRAWS,))
    assert not onp.any(x == 1)
    pvalue = chi_square_pvalue(x, lambda k: onp.array([0.2, 0.0, 0.5, 0.3])[k], 3)
    assert pvalue > 1e-3


def _log_mass_by_mask(probs, x):
    """Categorical log mass selected with a one-hot mask (the formula of a traced value)."""
    import probad.ad.numpy as anp
    from probad.distributions.distribution import log_probability

    chosen = anp.equal(anp.expand_dims(x, -1), onp.arange(onp.shape(probs)[-1]))
    return anp.sum(anp.where(chosen, log_probability(probs), 0.0), axis=-1)


def test_categorical_gathers_concrete_values_with_the_mask_bits():
    # The layout of enumeration: probs depend on the previous state (dim -2),
    # the value is the support along dim -1; one category has probability 0.
    from probad.ad import value_and_grad

    probs = onp.array([[[0.3, 0.7]], [[0.0, 1.0]]])
    x = onp.arange(2)
    for value in (x, onp.array(1), onp.array([1, 0, 1]).reshape(3, 1, 1)):
        got = value_and_grad(lambda p: onp.sum(dist.Categorical(probs=p).log_prob(value)))(probs)
        want = value_and_grad(lambda p: onp.sum(_log_mass_by_mask(p, value)))(probs)
        assert onp.asarray(got[0]).tobytes() == onp.asarray(want[0]).tobytes()
        assert got[1].tobytes() == want[1].tobytes() and onp.all(onp.isfinite(got[1]))
    # Outside 0..K-1 (no gather possible) the log mass is still computed.
    assert dist.Categorical(probs=probs[0, 0]).log_prob(onp.array([0, 2]))[0] == onp.log(0.3)


def test_enumerated_categorical_costs_a_gather():
    from probad.ad import value_and_grad
    from probad.ad.compiler import compile

    x = onp.arange(3).reshape(3, 1)
    x.flags.writeable = False

    def f(logits):
        return onp.sum(dist.Categorical(logits=logits).log_prob(x))

    compiled = compile(value_and_grad(f))
    logits = onp.log(onp.random.default_rng(0).dirichlet(onp.ones(3), 2))
    got, want = compiled(logits), value_and_grad(f)(logits)
    onp.testing.assert_array_equal(got[1], want[1])
    names = [op.name for tape, *_ in compiled.tapes.values() for op in tape.ops]
    assert "getitem" in names and "where3" not in names and "equal" not in names


def test_bernoulli_extreme_logits_are_finite():
    d = dist.Bernoulli(logits=onp.array([-800.0, 800.0]))
    onp.testing.assert_allclose(d.log_prob(onp.array([0, 1])), [0.0, 0.0])
    onp.testing.assert_allclose(d.log_prob(onp.array([1, 0])), [-800.0, -800.0])
    assert onp.all(onp.isfinite(d.entropy()))


def test_bernoulli_probs_at_the_boundary():
    d = dist.Bernoulli(probs=onp.array([0.0, 1.0]))
    onp.testing.assert_allclose(d.log_prob(onp.array([0, 1])), [0.0, 0.0])
    assert onp.all(d.log_prob(onp.array([1, 0])) == -onp.inf)


def test_probs_logits_are_derived_both_ways():
    onp.testing.assert_allclose(dist.Bernoulli(logits=0.0).probs, 0.5)
    onp.testing.assert_allclose(dist.Bernoulli(probs=0.5).logits, 0.0)
    onp.testing.assert_allclose(dist.Poisson(log_rate=0.0).rate, 1.0)
    onp.testing.assert_allclose(dist.Categorical(logits=onp.zeros(4)).probs, onp.full(4, 0.25))
    with pytest.raises(ValueError, match="exactly one of probs or logits"):
        dist.Bernoulli(probs=0.5, logits=0.0)
    with pytest.raises(ValueError, match="exactly one of rate or log_rate"):
        dist.Poisson()


@pytest.mark.parametrize("make,n", [
    (lambda: dist.Bernoulli(probs=onp.full((2, 3), 0.4)), 2),
    (lambda: dist.Binomial(4, probs=onp.full((2, 3), 0.4)), 5),
    (lambda: dist.BetaBinomial(onp.ones((2, 3)), 2.0, 4), 5),
    (lambda: dist.Categorical(logits=onp.zeros((2, 3, 6))), 6),
    (lambda: dist.DiscreteUniform(onp.full((2, 3), -1), 2), 4),
    (lambda: dist.OrderedLogistic(onp.zeros((2, 3)), onp.array([-1.0, 1.0])), 3),
], ids=["Bernoulli", "Binomial", "BetaBinomial", "Categorical", "DiscreteUniform", "OrderedLogistic"])
def test_enumerate_support(make, n):
    d = make()
    assert d.has_enumerate_support
    values = d.enumerate_support()
    assert values.shape == (n, 2, 3)
    assert d.enumerate_support(expand=False).shape == (n, 1, 1)
    # The enumerated values carry all the mass.
    onp.testing.assert_allclose(sp.logsumexp(d.log_prob(values), axis=0), 0.0, atol=1e-12)


def test_enumerate_support_needs_homogeneous_total_count():
    with pytest.raises(ValueError, match="same total_count"):
        dist.Binomial(onp.array([3, 4]), probs=0.5).enumerate_support()


@pytest.mark.parametrize("name", ["Bernoulli_probs", "Bernoulli_logits", "Binomial_probs", "Poisson",
                                  "Geometric_probs", "Geometric_logits", "DiscreteUniform"])
def test_cdf_matches_scipy(name):
    case = CASES[IDS.index(name)]
    params = case.draw(onp.random.default_rng(0), BATCH)
    x = _values(case, params, sample_shape=(6,))
    onp.testing.assert_allclose(case.ours(*params).cdf(x), case.ref(*params).cdf(x), rtol=1e-10)


def test_bernoulli_and_categorical_cdf_between_and_beyond_the_support():
    x = onp.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.2])[:, None, None]
    p = onp.array([[0.1], [0.75]])
    onp.testing.assert_allclose(dist.Bernoulli(probs=p).cdf(x), st.bernoulli(p).cdf(x), rtol=1e-12)
    probs = onp.random.default_rng(2).dirichlet(onp.ones(4), (2, 3))
    expected = onp.array([[st.rv_discrete(values=(onp.arange(4), probs[i, j])).cdf(x[:, 0, 0])
                           for j in range(3)] for i in range(2)])
    for d in (dist.Categorical(probs=probs), dist.Categorical(logits=onp.log(probs) - 1.0)):
        onp.testing.assert_allclose(d.cdf(x), onp.moveaxis(expected, -1, 0), rtol=1e-12)
    onp.random.seed(8)
    check_grads(lambda l: dist.Categorical(logits=l).cdf(x), modes=["fwd", "rev"], order=2)(
        onp.log(probs))
    check_grads(lambda q: dist.Bernoulli(probs=q).cdf(x), modes=["fwd", "rev"], order=2)(p)


@pytest.mark.parametrize("name", ["Bernoulli_probs", "Bernoulli_logits", "Geometric_probs", "DiscreteUniform"])
def test_entropy_matches_scipy(name):
    case = CASES[IDS.index(name)]
    params = case.draw(onp.random.default_rng(0), BATCH)
    batch = _batch(params, case)
    onp.testing.assert_allclose(case.ours(*params).entropy(), onp.broadcast_to(case.ref(*params).entropy(), batch),
                                rtol=1e-10)
