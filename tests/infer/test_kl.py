"""Closed-form KL divergences (probad.infer.kl).

Each rule is checked against an independent value: a numerical integral of
scipy.stats densities for univariate pairs (quad's error is far below the
1e-7 tolerance), a Monte Carlo estimate within 4 standard errors for the
multivariate normal, and scipy's log density for a point mass. Gradients in
every parameter of both distributions are checked against finite differences.
"""
import math

import numpy as onp
import pytest
from scipy import integrate, stats

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad import optim
from probad.ad.test_util import check_grads
from probad.infer.autoguide import AutoDiagonalNormal
from probad.infer.kl import kl_divergence, register_kl
from probad.infer.svi import SVI, Trace_ELBO, TraceMeanField_ELBO

# name -> (our pair from the parameters, scipy's pair from the same, parameters)
UNIVARIATE = {
    "normal": (lambda m1, s1, m2, s2: (dist.Normal(m1, s1), dist.Normal(m2, s2)),
               lambda m1, s1, m2, s2: (stats.norm(m1, s1), stats.norm(m2, s2)),
               (0.3, 1.5, -0.2, 0.7)),
    "lognormal": (lambda m1, s1, m2, s2: (dist.LogNormal(m1, s1), dist.LogNormal(m2, s2)),
                  lambda m1, s1, m2, s2: (stats.lognorm(s1, scale=math.exp(m1)),
                                          stats.lognorm(s2, scale=math.exp(m2))),
                  (0.3, 0.8, -0.5, 1.3)),
    "beta": (lambda a1, b1, a2, b2: (dist.Beta(a1, b1), dist.Beta(a2, b2)),
             lambda a1, b1, a2, b2: (stats.beta(a1, b1), stats.beta(a2, b2)),
             (2.5, 1.5, 1.2, 3.0)),
    "gamma": (lambda a1, b1, a2, b2: (dist.Gamma(a1, b1), dist.Gamma(a2, b2)),
              lambda a1, b1, a2, b2: (stats.gamma(a1, scale=1 / b1), stats.gamma(a2, scale=1 / b2)),
              (3.0, 2.0, 1.5, 0.5)),
    "exponential": (lambda r1, r2: (dist.Exponential(r1), dist.Exponential(r2)),
                    lambda r1, r2: (stats.expon(scale=1 / r1), stats.expon(scale=1 / r2)),
                    (2.0, 0.5)),
    "exponential-gamma": (lambda r1, a2, b2: (dist.Exponential(r1), dist.Gamma(a2, b2)),
                          lambda r1, a2, b2: (stats.expon(scale=1 / r1),
                                              stats.gamma(a2, scale=1 / b2)),
                          (2.0, 2.0, 1.0)),
    "gamma-exponential": (lambda a1, b1, r2: (dist.Gamma(a1, b1), dist.Exponential(r2)),
                          lambda a1, b1, r2: (stats.gamma(a1, scale=1 / b1),
                                              stats.expon(scale=1 / r2)),
                          (2.0, 3.0, 1.5)),
}


def _integrated_kl(p, q) -> float:
    lo, hi = p.support()

    def integrand(x):
        log_p = p.logpdf(x)
        return math.exp(log_p) * (log_p - q.logpdf(x))

    return integrate.quad(integrand, lo, hi, epsabs=1e-12, epsrel=1e-10, limit=200)[0]


@pytest.mark.parametrize("name", UNIVARIATE)
def test_univariate_kl_matches_numerical_integral(name):
    ours, theirs, params = UNIVARIATE[name]
    expected = _integrated_kl(*theirs(*params))
    assert expected > 0.05  # the pairs differ: the check is not 0 == 0
    assert float(kl_divergence(*ours(*params))) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("name", UNIVARIATE)
def test_univariate_kl_is_differentiable(name):
    ours, _, params = UNIVARIATE[name]
    check_grads(lambda *a: kl_divergence(*ours(*a)), modes=["fwd", "rev"], order=1)(
        *map(float, params))


@pytest.mark.parametrize("name", UNIVARIATE)
def test_independent_and_expanded_wrappers_sum_and_broadcast(name):
    ours, _, params = UNIVARIATE[name]
    p, q = ours(*params)
    each = float(kl_divergence(p, q))
    wrapped = kl_divergence(p.expand((2, 3)).to_event(1), q.expand((3,)).to_event(1))
    assert onp.shape(wrapped) == (2,)
    onp.testing.assert_allclose(wrapped, 3 * each, rtol=1e-12)
    # Plates expand one side only.
    onp.testing.assert_allclose(kl_divergence(p.expand((4,)), q), onp.full(4, each), rtol=1e-12)

    def summed(*a):
        p, q = ours(*a)
        return np.sum(kl_divergence(p.expand((2, 3)).to_event(1), q.expand((3,)).to_event(1)))

    check_grads(summed, modes=["rev"], order=1)(*map(float, params))


def test_normal_batch_parameters_through_plates_and_to_event():
    loc = onp.array([0.0, 1.0, 2.0])

    def kl(p_loc, p_scale, q_scale):
        return kl_divergence(dist.Normal(p_loc, p_scale).to_event(1),
                             dist.Normal(loc, q_scale).to_event(1))

    p_scale = onp.array([0.5, 1.0, 1.5])
    expected = sum(_integrated_kl(stats.norm(0.3, s), stats.norm(m, 2.0))
                   for m, s in zip(loc, p_scale))
    assert float(kl(0.3, p_scale, 2.0)) == pytest.approx(expected, rel=1e-7)
    check_grads(kl, modes=["fwd", "rev"], order=1)(0.3, p_scale, 2.0)


# ------------------------------------------------------- multivariate normal
def _mvn_pair(m1, a1, m2, a2):
    """Two MVNs from unconstrained factors: covariance, and a Cholesky factor."""
    cov1 = np.matmul(a1, np.swapaxes(a1, -1, -2)) + onp.eye(3)
    tril2 = np.linalg.cholesky(np.matmul(a2, np.swapaxes(a2, -1, -2)) + 0.5 * onp.eye(3))
    return (dist.MultivariateNormal(m1, covariance_matrix=cov1),
            dist.MultivariateNormal(m2, scale_tril=tril2))


MVN_PARAMS = tuple(onp.random.default_rng(0).normal(size=s) for s in [(3,), (3, 3), (3,), (3, 3)])


def test_mvn_kl_matches_monte_carlo():
    p, q = _mvn_pair(*MVN_PARAMS)
    kl = float(kl_divergence(p, q))
    x = onp.asarray(p.sample(onp.random.default_rng(1), (200_000,)))
    sp = stats.multivariate_normal(onp.asarray(p.loc), onp.asarray(p.covariance_matrix))
    sq = stats.multivariate_normal(onp.asarray(q.loc), onp.asarray(q.covariance_matrix))
    mc = sp.logpdf(x) - sq.logpdf(x)
    assert kl > 0.1  # the pair differs: the check is not 0 == 0
    assert abs(mc.mean() - kl) < 4 * mc.std() / math.sqrt(len(mc))


def test_mvn_kl_batches_and_is_differentiable():
    m1, a1, m2, a2 = MVN_PARAMS
    single = float(kl_divergence(*_mvn_pair(m1, a1, m2, a2)))
    other = float(kl_divergence(*_mvn_pair(-m1, 2 * a1, m2, a2)))
    # A batch of two p's against one q.
    batched = kl_divergence(*_mvn_pair(onp.stack([m1, -m1]), onp.stack([a1, 2 * a1]), m2, a2))
    onp.testing.assert_allclose(batched, [single, other], rtol=1e-12)
    check_grads(lambda *a: kl_divergence(*_mvn_pair(*a)), modes=["rev"], order=1)(*MVN_PARAMS)


# -------------------------------------------------------------- point mass
def test_delta_kl_is_minus_the_log_density_at_the_point():
    assert float(kl_divergence(dist.Delta(0.7), dist.Gamma(2.0, 3.0))) == pytest.approx(
        -stats.gamma(2.0, scale=1 / 3).logpdf(0.7), rel=1e-12)
    # A Delta that reports a log density (the autoguides' -log|det J|) adds it.
    assert float(kl_divergence(dist.Delta(0.7, log_density=0.25), dist.Normal(0.0, 1.0))) == \
        pytest.approx(0.25 - stats.norm.logpdf(0.7), rel=1e-12)
    p, q = _mvn_pair(*MVN_PARAMS)
    v = onp.array([0.1, -0.4, 0.9])
    sq = stats.multivariate_normal(onp.asarray(q.loc), onp.asarray(q.covariance_matrix))
    assert float(kl_divergence(dist.Delta(v, event_dim=1), q)) == pytest.approx(-sq.logpdf(v))
    # Against a to_event'ed plate of normals, the event is summed.
    each = dist.Normal(onp.zeros(3), 2.0)
    assert float(kl_divergence(dist.Delta(v, event_dim=1), each.to_event(1))) == \
        pytest.approx(-stats.norm(0.0, 2.0).logpdf(v).sum())
    check_grads(lambda v, loc, scale: kl_divergence(dist.Delta(v), dist.Normal(loc, scale)),
                modes=["fwd", "rev"], order=1)(0.7, 0.2, 1.3)


def _two_site_model(y):
    mu = pb.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pb.sample("sigma", dist.Gamma(2.0, 1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(mu, sigma), obs=y)


def test_autoguide_deltas_give_the_trace_elbo_exactly():
    """AutoDiagonalNormal hands the model Deltas carrying -log|det J|; their
    KL is then the very term Trace_ELBO uses, so the two losses coincide."""
    y = onp.random.default_rng(3).normal(2.0, 1.0, 20)
    guide = AutoDiagonalNormal(_two_site_model)
    svi = SVI(_two_site_model, guide, optim.Adam(0.01), Trace_ELBO())
    params = svi.get_params(svi.init(0, y))
    for seed in range(5):
        mc = Trace_ELBO().loss(seed, params, _two_site_model, guide, y)
        mf = TraceMeanField_ELBO().loss(seed, params, _two_site_model, guide, y)
        assert mf == pytest.approx(mc, rel=1e-12)


# -------------------------------------------------------------- the registry
def test_kl_missing_pair_and_registration():
    class Wide(dist.Normal):
        pass

    with pytest.raises(NotImplementedError, match="Gamma"):
        kl_divergence(dist.Gamma(2.0, 1.0), dist.Normal(0.0, 1.0))
    # Subclasses use their parents' rule unless they register their own.
    assert float(kl_divergence(Wide(0.0, 1.0), dist.Normal(0.0, 1.0))) == pytest.approx(0.0)
    register_kl(Wide, dist.Normal)(lambda p, q: 42.0)
    assert kl_divergence(Wide(0.0, 1.0), dist.Normal(0.0, 1.0)) == 42.0
