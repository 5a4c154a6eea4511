"""Continuous distributions against scipy.stats: densities, moments, sampling, gradients."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as onp
import pytest
import scipy.integrate
import scipy.special as sp
import scipy.stats as st

import probad.distributions as dist
from probad.ad import deriv
from probad.ad.test_util import check_grads
from probad.distributions.continuous import _implicit_gamma


class _HalfT(st.rv_continuous):
    """|X| for X ~ t(df): scipy has no half-t, the reference is folded by hand."""

    def _pdf(self, x, df):
        return 2.0 * st.t.pdf(x, df)

    def _cdf(self, x, df):
        return 2.0 * st.t.cdf(x, df) - 1.0

    def _munp(self, n, df):
        # E|T|^n = df^(n/2) Gamma((n+1)/2) Gamma((df-n)/2) / (sqrt(pi) Gamma(df/2)), df > n
        log_moment = (0.5 * n * onp.log(df) + sp.gammaln(0.5 * (n + 1)) + sp.gammaln(0.5 * (df - n))
                      - 0.5 * onp.log(onp.pi) - sp.gammaln(0.5 * df))
        return onp.exp(log_moment)


_halft = _HalfT(a=0.0, name="halft")


def pos(rng, shape, low=0.5, high=3.0):
    return rng.uniform(low, high, shape)


def real(rng, shape):
    return rng.normal(size=shape)


@dataclass
class Case:
    """One distribution: how to draw parameters, build ours and scipy's.

    ``draw(rng, shapes)`` returns the parameters as a tuple, the i-th with
    shape ``shapes[i % len(shapes)]``; ``ours`` and ``ref`` take them
    positionally. ``scalar`` are parameters for the sampling tests, chosen
    so that the first four moments exist.
    """

    name: str
    draw: Callable
    ours: Callable
    ref: Callable
    scalar: tuple
    methods: tuple = ("cdf", "icdf", "entropy")
    moments: bool = True
    entropy_by_quadrature: bool = False  # scipy's own entropy is inaccurate here


def _shape(shapes, i):
    return shapes[i % len(shapes)]


CASES = [
    Case("Normal", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Normal, lambda m, sd: st.norm(m, sd), (0.5, 2.0)),
    Case("HalfNormal", lambda r, s: (pos(r, _shape(s, 0)),),
         dist.HalfNormal, lambda sd: st.halfnorm(scale=sd), (1.5,)),
    Case("StudentT", lambda r, s: (pos(r, _shape(s, 0), 2.5, 8.0), real(r, _shape(s, 1)), pos(r, _shape(s, 0))),
         dist.StudentT, lambda df, m, sd: st.t(df, m, sd), (9.0, 1.0, 2.0), methods=("cdf", "entropy")),
    Case("HalfStudentT", lambda r, s: (pos(r, _shape(s, 0), 2.5, 8.0), pos(r, _shape(s, 1))),
         dist.HalfStudentT, lambda df, sd: _halft(df, scale=sd), (9.0, 1.5), methods=("cdf", "entropy"),
         entropy_by_quadrature=True),
    Case("Cauchy", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Cauchy, lambda m, sd: st.cauchy(m, sd), (0.5, 2.0), moments=False),
    Case("HalfCauchy", lambda r, s: (pos(r, _shape(s, 0)),),
         dist.HalfCauchy, lambda sd: st.halfcauchy(scale=sd), (1.5,), moments=False),
    Case("Exponential", lambda r, s: (pos(r, _shape(s, 0)),),
         dist.Exponential, lambda rate: st.expon(scale=1 / rate), (2.0,)),
    Case("Gamma", lambda r, s: (pos(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Gamma, lambda a, b: st.gamma(a, scale=1 / b), (2.5, 1.5), methods=("cdf", "entropy")),
    Case("Chi2", lambda r, s: (pos(r, _shape(s, 0), 1.0, 6.0),),
         dist.Chi2, lambda df: st.chi2(df), (4.0,), methods=("cdf", "entropy")),
    Case("InverseGamma", lambda r, s: (pos(r, _shape(s, 0), 1.0, 5.0), pos(r, _shape(s, 1))),
         dist.InverseGamma, lambda a, b: st.invgamma(a, scale=b), (9.0, 2.0), methods=("cdf", "entropy")),
    Case("LogNormal", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1), 0.2, 1.0)),
         dist.LogNormal, lambda m, sd: st.lognorm(sd, scale=onp.exp(m)), (0.3, 0.4)),
    Case("Beta", lambda r, s: (pos(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Beta, lambda a, b: st.beta(a, b), (2.0, 3.0), methods=("cdf", "entropy")),
    Case("Uniform", lambda r, s: (lambda lo: (lo, lo + pos(r, _shape(s, 1))))(real(r, _shape(s, 0))),
         dist.Uniform, lambda lo, hi: st.uniform(lo, hi - lo), (-1.0, 2.5)),
    Case("Laplace", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Laplace, lambda m, sd: st.laplace(m, sd), (0.5, 2.0)),
    Case("Logistic", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Logistic, lambda m, sd: st.logistic(m, sd), (0.5, 2.0)),
    Case("Weibull", lambda r, s: (pos(r, _shape(s, 0)), pos(r, _shape(s, 1), 0.7, 3.0)),
         dist.Weibull, lambda sc, k: st.weibull_min(k, scale=sc), (2.0, 1.5)),
    Case("Pareto", lambda r, s: (pos(r, _shape(s, 0)), pos(r, _shape(s, 1), 1.0, 4.0)),
         dist.Pareto, lambda sc, a: st.pareto(a, scale=sc), (1.5, 9.0)),
    Case("TruncatedNormal", lambda r, s: (lambda m: (m, pos(r, _shape(s, 1)), m - pos(r, _shape(s, 0), 0.1, 2.0),
                                                     m + pos(r, _shape(s, 1), 0.1, 2.0)))(real(r, _shape(s, 0))),
         dist.TruncatedNormal,
         lambda m, sd, lo, hi: st.truncnorm((lo - m) / sd, (hi - m) / sd, m, sd), (0.5, 2.0, -1.0, 4.0)),
    Case("TruncatedNormal_tail", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1), 0.5, 1.0),
                                               pos(r, _shape(s, 0), 6.0, 8.0), pos(r, _shape(s, 1), 9.0, 10.0)),
         dist.TruncatedNormal,
         lambda m, sd, lo, hi: st.truncnorm((lo - m) / sd, (hi - m) / sd, m, sd), (0.0, 1.0, 5.0, 7.0),
         entropy_by_quadrature=True),
    Case("TruncatedNormal_low", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1)), real(r, _shape(s, 0))),
         lambda m, sd, lo: dist.TruncatedNormal(m, sd, low=lo),
         lambda m, sd, lo: st.truncnorm((lo - m) / sd, onp.inf, m, sd), (0.5, 2.0, 1.0),
         entropy_by_quadrature=True),
    Case("TruncatedNormal_high", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1)), real(r, _shape(s, 0))),
         lambda m, sd, hi: dist.TruncatedNormal(m, sd, high=hi),
         lambda m, sd, hi: st.truncnorm(-onp.inf, (hi - m) / sd, m, sd), (0.5, 2.0, -1.0),
         entropy_by_quadrature=True),
    Case("VonMises", lambda r, s: (r.uniform(-3.0, 3.0, _shape(s, 0)), pos(r, _shape(s, 1), 0.2, 20.0)),
         dist.VonMises, lambda m, k: st.vonmises(k, m), (0.5, 2.0), methods=("entropy",), moments=False),
    Case("Gumbel", lambda r, s: (real(r, _shape(s, 0)), pos(r, _shape(s, 1))),
         dist.Gumbel, lambda m, sd: st.gumbel_r(m, sd), (0.5, 2.0)),
]
IDS = [c.name for c in CASES]
BATCH = [(2, 1), (3,)]


def _params(case, seed=0, shapes=BATCH):
    return case.draw(onp.random.default_rng(seed), shapes)


def _batch(params):
    return onp.broadcast_shapes(*[onp.shape(p) for p in params])


def _values(case, params, sample_shape=(4,), seed=1):
    ref = case.ref(*params)
    batch = _batch(params)
    return onp.asarray(ref.rvs(size=sample_shape + batch, random_state=onp.random.default_rng(seed)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_matches_scipy_with_broadcasting(case):
    params = _params(case)
    d = case.ours(*params)
    assert d.batch_shape == _batch(params)
    x = _values(case, params)
    lp = d.log_prob(x)
    assert lp.shape == (4,) + _batch(params)
    onp.testing.assert_allclose(lp, case.ref(*params).logpdf(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_gradients(case):
    params = _params(case, seed=2, shapes=[(3,)])
    x = _values(case, params, sample_shape=(), seed=3)
    onp.random.seed(0)  # check_grads' random directions

    def log_prob(value, *params):
        return case.ours(*params).log_prob(value)

    check_grads(log_prob, modes=["fwd", "rev"], order=1)(x, *params)


@pytest.mark.parametrize("name", ["Normal", "Gamma", "Beta", "StudentT", "TruncatedNormal"])
def test_log_prob_second_order_gradients(name):
    case = CASES[IDS.index(name)]
    params = _params(case, seed=4, shapes=[()])
    x = _values(case, params, sample_shape=(), seed=5)
    onp.random.seed(1)
    check_grads(lambda value, *p: case.ours(*p).log_prob(value), modes=["fwd", "rev"], order=2)(x, *params)


LINEAR_MOMENTS = [c for c in CASES if c.name != "VonMises"]  # its variance is the circular one


@pytest.mark.parametrize("case", LINEAR_MOMENTS, ids=[c.name for c in LINEAR_MOMENTS])
def test_mean_variance_match_scipy(case):
    params = _params(case)
    d, ref = case.ours(*params), case.ref(*params)
    mean, var = ref.stats(moments="mv")
    batch = _batch(params)
    onp.testing.assert_allclose(onp.broadcast_to(d.mean, batch), onp.broadcast_to(mean, batch), rtol=1e-7)
    onp.testing.assert_allclose(onp.broadcast_to(d.variance, batch), onp.broadcast_to(var, batch), rtol=1e-7)


@pytest.mark.parametrize("case", [c for c in CASES if c.methods], ids=[c.name for c in CASES if c.methods])
def test_cdf_icdf_entropy_match_scipy(case):
    params = _params(case)
    d, ref = case.ours(*params), case.ref(*params)
    x = _values(case, params)
    if "cdf" in case.methods:
        onp.testing.assert_allclose(d.cdf(x), ref.cdf(x), rtol=1e-7, atol=1e-12)
    if "icdf" in case.methods:
        q = onp.random.default_rng(7).uniform(0.01, 0.99, x.shape)
        onp.testing.assert_allclose(d.icdf(q), ref.ppf(q), rtol=1e-7, atol=1e-9)
    if "entropy" in case.methods:
        expected = _entropy_by_quadrature(case, params) if case.entropy_by_quadrature else ref.entropy()
        onp.testing.assert_allclose(d.entropy(), onp.broadcast_to(expected, _batch(params)), rtol=1e-7)


def _entropy_by_quadrature(case, params):
    batch = _batch(params)
    out = onp.empty(batch)
    for index in onp.ndindex(*batch):
        ref = case.ref(*[onp.broadcast_to(p, batch)[index] for p in params])
        low, high = ref.support()
        out[index] = scipy.integrate.quad(lambda x: -ref.pdf(x) * ref.logpdf(x), low, high,
                                          epsabs=1e-12, epsrel=1e-10)[0]
    return out


def test_von_mises_circular_moments():
    loc, k = onp.array([0.5, -2.0]), onp.array([0.3, 4.0])
    d = dist.VonMises(loc, k)
    onp.testing.assert_allclose(d.mean, loc)
    # circular variance 1 - E[cos(x - loc)], by quadrature against scipy's density
    for i in range(2):
        ref = st.vonmises(k[i], loc[i])
        mean_cos = scipy.integrate.quad(lambda x: ref.pdf(x) * onp.cos(x - loc[i]), -onp.pi, onp.pi)[0]
        onp.testing.assert_allclose(d.variance[i], 1.0 - mean_cos, rtol=1e-8)


# Sampling: n draws at fixed seeds. Sample means and variances must lie within
# 5 standard errors (se of the mean sqrt(var/n); of the variance
# sqrt((mu4 - var^2)/n) from scipy's kurtosis), and a Kolmogorov-Smirnov test
# must not reject at level 1e-3.
N_DRAWS = 40_000


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_samples_match_scipy(case):
    d, ref = case.ours(*case.scalar), case.ref(*case.scalar)
    x = onp.asarray(d.sample(onp.random.default_rng(11), (N_DRAWS,)))
    assert x.shape == (N_DRAWS,)
    assert onp.all(d.support.check(x))
    if case.name == "VonMises":  # scipy puts the circle at [loc - pi, loc + pi]
        x = case.scalar[0] + onp.mod(x - case.scalar[0] + onp.pi, 2 * onp.pi) - onp.pi
    if case.moments:
        mean, var, kurt = (float(v) for v in ref.stats(moments="mvk"))
        assert abs(x.mean() - mean) < 5 * math.sqrt(var / N_DRAWS)
        mu4 = (kurt + 3.0) * var**2
        assert abs(x.var() - var) < 5 * math.sqrt((mu4 - var**2) / N_DRAWS)
    assert st.kstest(x, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sample_shapes(case):
    params = _params(case)
    d = case.ours(*params)
    x = d.sample(onp.random.default_rng(0), (5,))
    assert onp.shape(x) == (5,) + _batch(params)
    assert onp.all(d.support.check(x))


# Samplers built from gamma draws are reparameterised implicitly: numpy's
# gamma sampler is not the transport map their gradient differentiates, so
# finite differences at a fixed seed do not apply; they are checked for
# unbiasedness below instead.
GAMMA_BASED = {"StudentT", "HalfStudentT", "Gamma", "Chi2", "InverseGamma", "Beta"}
PATHWISE = [c for c in CASES if c.ours(*c.scalar).has_rsample and c.name not in GAMMA_BASED]


@pytest.mark.parametrize("case", PATHWISE, ids=[c.name for c in PATHWISE])
def test_reparameterised_samples_are_differentiable(case):
    def draw(*params):
        return case.ours(*params).sample(onp.random.default_rng(5), (4,))

    onp.random.seed(2)
    check_grads(draw, modes=["fwd", "rev"], order=1)(*[onp.float64(p) for p in case.scalar])


def test_rsample_flags():
    not_reparameterised = {"VonMises"}
    for case in CASES:
        assert case.ours(*case.scalar).has_rsample == (case.name not in not_reparameterised), case.name


def assert_unbiased_gradient(f, x, expected, n):
    """The mean over n draws of the pathwise derivative of ``f`` (one value per
    draw, same draws for every ``x``) must match ``expected`` within 5 standard errors."""
    per_draw = onp.asarray(deriv(f)(x))
    assert per_draw.shape == (n,)
    se = per_draw.std() / math.sqrt(n)
    assert abs(per_draw.mean() - expected) < 5 * se, (per_draw.mean(), expected, se)


N_GRAD = 20_000


@pytest.mark.parametrize("a,b", [(2.5, 1.5), (0.3, 2.0)])
def test_gamma_implicit_gradients_are_unbiased(a, b):
    # E[z] = a / b
    def mean_in_a(a_):
        return dist.Gamma(a_, b).sample(onp.random.default_rng(0), (N_GRAD,))

    def mean_in_b(b_):
        return dist.Gamma(a, b_).sample(onp.random.default_rng(0), (N_GRAD,))

    assert_unbiased_gradient(mean_in_a, a, 1.0 / b, N_GRAD)
    assert_unbiased_gradient(mean_in_b, b, -a / b**2, N_GRAD)


def test_beta_inverse_gamma_chi2_implicit_gradients_are_unbiased():
    a, b = 0.7, 2.0
    assert_unbiased_gradient(lambda a_: dist.Beta(a_, b).sample(onp.random.default_rng(1), (N_GRAD,)),
                             a, b / (a + b) ** 2, N_GRAD)
    assert_unbiased_gradient(lambda a_: dist.InverseGamma(a_, b).sample(onp.random.default_rng(2), (N_GRAD,)),
                             6.0, -b / 5.0**2, N_GRAD)
    assert_unbiased_gradient(lambda df: dist.Chi2(df).sample(onp.random.default_rng(3), (N_GRAD,)),
                             3.0, 1.0, N_GRAD)


def test_student_t_df_gradient_is_unbiased():
    # E[x^2] = df / (df - 2) for unit scale
    def second_moment(df):
        x = dist.StudentT(df, 0.0, 1.0).sample(onp.random.default_rng(4), (N_GRAD,))
        return x * x

    df = 7.0
    assert_unbiased_gradient(second_moment, df, -2.0 / (df - 2.0) ** 2, N_GRAD)


def test_implicit_gamma_slope_matches_quantile_derivative():
    # Holding u = P(a, z) fixed, dz/da = d/da of the quantile function at u.
    a = onp.array([0.2, 1.0, 3.5, 40.0])
    z = st.gamma(a).ppf([0.1, 0.5, 0.9, 0.3])
    slope = deriv(lambda a_: _implicit_gamma(a_, z))(a)
    u, h = st.gamma(a).cdf(z), 1e-6
    numeric = (st.gamma(a + h).ppf(u) - st.gamma(a - h).ppf(u)) / (2 * h)
    onp.testing.assert_allclose(slope, numeric, rtol=1e-6)


def test_uniform_and_pareto_are_minus_inf_outside_support():
    assert dist.Uniform(0.0, 1.0).log_prob(1.5) == -onp.inf
    assert dist.Pareto(2.0, 3.0).log_prob(1.0) == -onp.inf
    assert dist.TruncatedNormal(0.0, 1.0, low=0.0).log_prob(-0.1) == -onp.inf


def test_truncated_normal_far_tail_is_finite_and_accurate():
    d = dist.TruncatedNormal(0.0, 1.0, low=30.0, high=31.0)
    x = onp.array([30.0, 30.01, 30.5])
    ref = st.truncnorm(30.0, 31.0)
    onp.testing.assert_allclose(d.log_prob(x), ref.logpdf(x), rtol=1e-8)
    s = d.sample(onp.random.default_rng(0), (1000,))
    assert onp.all((s >= 30.0) & (s <= 31.0))
    onp.testing.assert_allclose(d.mean, ref.mean(), rtol=1e-8)


def test_von_mises_large_concentration_is_finite():
    d = dist.VonMises(0.0, 1e5)
    onp.testing.assert_allclose(d.log_prob(0.0), st.vonmises(1e5).logpdf(0.0), rtol=1e-10)
