"""Autoguides: each fits a simple model through SVI; posterior summaries.

Value checks use the conjugate model ``mu ~ N(0, 10)``, ``y_i ~ N(mu, 1)``
(20 points), whose posterior is Gaussian, so every Gaussian autoguide can
represent it exactly. The rate decays as ``0.05 / (1 + i / 100)``; at the
last step Adam's iterates fluctuate by about ``sqrt(rate * sd / 2)``, i.e.
0.1 posterior sd, and the checks allow 3 of those.
"""
import numpy as onp
import pytest

import probad as pb
from probad import distributions as dist, optim
from probad.infer import autoguide as ag
from probad.infer.laplace import laplace, map as find_map
from probad.infer.svi import SVI, Trace_ELBO
from tests import models

Y20 = onp.random.default_rng(3).normal(2.0, 1.0, 20)
PREC = len(Y20) + 1 / 100
EXACT_MEAN, EXACT_SD = Y20.sum() / PREC, PREC**-0.5
TOL = 3 * 0.1


def normal_mean(y):
    mu = pb.sample("mu", dist.Normal(0.0, 10.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(mu, 1.0), obs=y)


def scale_model(y):
    """A positive site, a plate of latents and a simplex: every kind of transform."""
    sigma = pb.sample("sigma", dist.HalfNormal(2.0))
    weights = pb.sample("weights", dist.Dirichlet(onp.ones(3)))
    with pb.plate("groups", 3):
        offset = pb.sample("offset", dist.Normal(0.0, 1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(pb.ad.numpy.sum(weights * offset), sigma), obs=y)


def _fit(guide, model=normal_mean, steps=1000, seed=0):
    svi = SVI(model, guide, optim.Adam(lambda i: 0.05 / (1 + i / 100)), Trace_ELBO())
    return svi.run(seed, steps, y=Y20, progress=False)


GAUSSIAN_GUIDES = [ag.AutoNormal, ag.AutoDiagonalNormal, ag.AutoMultivariateNormal,
                   ag.AutoLowRankMultivariateNormal]


@pytest.mark.parametrize("guide_class", GAUSSIAN_GUIDES, ids=lambda c: c.__name__)
def test_gaussian_autoguides_recover_conjugate_posterior(guide_class):
    guide = guide_class(normal_mean)
    _fit(guide)
    median = float(guide.median()["mu"])
    lo, hi = guide.quantiles([0.1587, 0.8413])["mu"]  # +-1 sd of a normal
    assert abs(median - EXACT_MEAN) / EXACT_SD < TOL
    assert abs((hi - lo) / 2 / EXACT_SD - 1) < TOL
    draws = guide.sample_posterior(seed=1, sample_shape=(4000,))["mu"]
    assert draws.shape == (4000,)
    # 4000 draws: the mean has MC error sd/63; 4 of those on top of TOL.
    assert abs(draws.mean() - median) / EXACT_SD < 4 / 63 + 1e-9


@pytest.mark.parametrize("guide_class",
                         GAUSSIAN_GUIDES + [ag.AutoDelta, ag.AutoLaplaceApproximation],
                         ids=lambda c: c.__name__)
def test_every_transform_kind_and_shapes(guide_class):
    guide = guide_class(scale_model)
    _fit(guide, model=scale_model, steps=200)
    draws = guide.sample_posterior(seed=0, sample_shape=(5, 2))
    assert draws["sigma"].shape == (5, 2) and onp.all(draws["sigma"] > 0)
    assert draws["weights"].shape == (5, 2, 3)
    onp.testing.assert_allclose(draws["weights"].sum(-1), 1.0)
    assert draws["offset"].shape == (5, 2, 3)
    median = guide.median()
    assert median["weights"].shape == (3,) and median["sigma"] > 0
    q = guide.quantiles([0.05, 0.5, 0.95])
    assert q["sigma"].shape == (3,) and q["offset"].shape == (3, 3)
    assert onp.all(onp.diff(q["sigma"]) >= 0)
    onp.testing.assert_allclose(q["sigma"][1], median["sigma"])


GROUP = onp.repeat(onp.arange(3), 10)
Y_GROUPS = onp.random.default_rng(4).normal(onp.array([-1.0, 0.0, 2.0])[GROUP], 0.7)


def grouped(y):
    sigma = pb.sample("sigma", dist.HalfNormal(2.0))
    with pb.plate("groups", 3):
        offset = pb.sample("offset", dist.Normal(0.0, 1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(offset[GROUP], sigma), obs=y)


def test_autodelta_finds_the_map():
    guide = ag.AutoDelta(grouped)
    svi = SVI(grouped, guide, optim.Adam(lambda i: 0.1 / (1 + i / 100)), Trace_ELBO())
    svi.run(0, 1000, y=Y_GROUPS, progress=False)
    mode = find_map(grouped, {"y": Y_GROUPS})
    # AutoDelta's ELBO is the log joint at the point: SGD on a deterministic
    # objective, no Monte Carlo noise, so it converges to the L-BFGS mode.
    onp.testing.assert_allclose(guide.median()["sigma"], mode["sigma"], rtol=1e-3)
    onp.testing.assert_allclose(guide.median()["offset"], mode["offset"], atol=1e-3)


def test_laplace_autoguide_matches_laplace():
    guide = ag.AutoLaplaceApproximation(normal_mean)
    svi = SVI(normal_mean, guide, optim.Adam(lambda i: 0.1 / (1 + i / 200)), Trace_ELBO())
    svi.run(0, 1500, y=Y20, progress=False)
    loc, cov = guide.get_posterior()
    fit = laplace(normal_mean, {"y": Y20})
    onp.testing.assert_allclose(loc, fit.loc, atol=1e-3 * EXACT_SD)
    onp.testing.assert_allclose(cov, fit.cov, rtol=1e-6)
    assert float(cov[0, 0]) == pytest.approx(EXACT_SD**2, rel=1e-6)


def test_params_argument_and_unfitted_guide():
    guide = ag.AutoNormal(normal_mean)
    with pytest.raises(ValueError, match="has not seen the model"):
        guide.median()
    result = _fit(guide, steps=50)
    assert guide.params is result.params
    other = dict(result.params, auto_mu_loc=onp.array(7.0))
    assert float(guide.median(params=other)["mu"]) == 7.0
    assert set(result.params) == {"auto_mu_loc", "auto_mu_scale"}


def test_params_needed_before_a_fit():
    guide = ag.AutoDiagonalNormal(normal_mean)
    guide(y=Y20)  # sees the model, but no SVI run has fitted it
    with pytest.raises(ValueError, match="no fitted params"):
        guide.sample_posterior(seed=0)


def test_no_latent_sites():
    def model(y):
        pb.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match="no latent"):
        SVI(model, ag.AutoNormal(model), optim.Adam(0.1)).init(0, y=onp.array(0.0))


@pytest.mark.parametrize("guide_class", GAUSSIAN_GUIDES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("init_scale", [0.0, -1.0])
def test_a_scale_that_is_not_positive_is_refused_by_name(guide_class, init_scale):
    # AutoLowRankMultivariateNormal used to square it silently, and the others
    # failed later inside a distribution, naming its parameter, not init_scale.
    with pytest.raises(ValueError, match="init_scale must be positive"):
        guide_class(normal_mean, init_scale=init_scale)


def test_a_rank_below_one_is_refused():
    guide = ag.AutoLowRankMultivariateNormal(normal_mean, rank=0)
    with pytest.raises(ValueError, match="rank must be a positive integer, got 0"):
        guide(y=Y20)


def test_laplace_autoguide_names_the_sites_of_a_flat_direction():
    guide = ag.AutoLaplaceApproximation(models.ridge)
    SVI(models.ridge, guide, optim.Adam(0.05), Trace_ELBO()).run(0, 20, y=onp.array([0.3, 0.5]),
                                                         progress=False)
    # a + b is identified, a - b is not: the Hessian is singular along it.
    with pytest.raises(ValueError, match="AutoLaplaceApproximation: the Hessian .* not positive "
                                         "definite") as info:
        guide.get_posterior()
    direction = [line for line in str(info.value).splitlines() if "along a direction" in line]
    assert len(direction) == 1
    assert "a (50%)" in direction[0] and "b (50%)" in direction[0]
