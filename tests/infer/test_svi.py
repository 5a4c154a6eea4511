"""SVI with hand-written guides and the ELBO estimators (KL rules: test_kl.py).

Stochastic fits are judged on the iterates of the second half of the run:
their average is the estimate and its Monte Carlo standard error comes from
batch means (10 batches), which is how the tolerances below are derived.
"""
import math

import numpy as onp
import pytest
from scipy import stats

import probad as pb
from probad import constraints, optim
from probad import distributions as dist
from probad.infer.kl import kl_divergence
from probad.infer.svi import SVI, SVIState, Trace_ELBO, TraceMeanField_ELBO


def _average_and_se(values, batches=10):
    values = onp.asarray(values, dtype=float)
    usable = values[: len(values) // batches * batches]
    means = usable.reshape(batches, -1, *values.shape[1:]).mean(1)
    return values.mean(0), means.std(0, ddof=1) / math.sqrt(batches)


def _second_half(svi, state, steps, *args, read, **kwargs):
    kept = []
    for i in range(steps):
        state, _ = svi.update(state, *args, **kwargs)
        if i >= steps // 2:
            kept.append(read(svi.get_params(state)))
    return state, kept


# ------------------------------------------------------ Beta-Bernoulli
FLIPS = onp.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 1], dtype=float)


def beta_bernoulli(x):
    p = pb.sample("p", dist.Beta(2.0, 2.0))
    with pb.plate("flips", len(x)):
        pb.sample("x", dist.Bernoulli(probs=p), obs=x)


def beta_guide(x):
    a = pb.param("a", 1.0, constraint=constraints.positive)
    b = pb.param("b", 1.0, constraint=constraints.positive)
    pb.sample("p", dist.Beta(a, b))


@pytest.mark.slow
def test_beta_bernoulli_hand_guide_matches_analytic_posterior():
    """Posterior Beta(2 + 7, 2 + 3); the guide family contains it, so the
    ELBO optimum is exact. Beta draws are reparameterised (implicitly)."""
    a0, b0 = 2 + FLIPS.sum(), 2 + len(FLIPS) - FLIPS.sum()
    exact_mean = a0 / (a0 + b0)
    exact_sd = math.sqrt(a0 * b0 / ((a0 + b0) ** 2 * (a0 + b0 + 1)))

    def moments(params):
        a, b = float(params["a"]), float(params["b"])
        return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    svi = SVI(beta_bernoulli, beta_guide, optim.Adam(0.1), Trace_ELBO())
    state = svi.init(0, FLIPS)
    _, kept = _second_half(svi, state, 800, FLIPS, read=moments)
    (mean, sd), (se_mean, se_sd) = _average_and_se(kept)
    assert abs(mean - exact_mean) < 3 * se_mean + 0.01 * exact_sd
    assert abs(sd - exact_sd) < 3 * se_sd + 0.01 * exact_sd


# ------------------------------------------------- discrete guide sites
X_OBS = 0.8


def mixture_model(x):
    z = pb.sample("z", dist.Bernoulli(probs=0.3))
    pb.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)


def bernoulli_guide(x):
    q = pb.param("q", 0.5, constraint=constraints.unit_interval)
    pb.sample("z", dist.Bernoulli(probs=q))


def test_discrete_guide_site_uses_score_function():
    """Bernoulli draws are not reparameterisable: only the score-function
    term moves ``q``. The exact posterior P(z=1|x) is the optimum."""
    like1 = 0.3 * stats.norm.pdf(X_OBS, 1.0, 1.0)
    like0 = 0.7 * stats.norm.pdf(X_OBS, -1.0, 1.0)
    exact = like1 / (like1 + like0)
    svi = SVI(mixture_model, bernoulli_guide, optim.Adam(0.05), Trace_ELBO(num_particles=4))
    state = svi.init(0, x=X_OBS)
    _, kept = _second_half(svi, state, 1000, x=X_OBS, read=lambda p: float(p["q"]))
    q, se = _average_and_se(kept)
    assert abs(q - exact) < 3 * se


# ------------------------------------------------ TraceMeanField_ELBO
Y20 = onp.random.default_rng(3).normal(2.0, 1.0, 20)


def normal_model(y):
    mu = pb.sample("mu", dist.Normal(0.0, 10.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(mu, 1.0), obs=y)


def normal_guide(y):
    loc = pb.param("loc", 0.0)
    scale = pb.param("scale", 1.0, constraint=constraints.positive)
    pb.sample("mu", dist.Normal(loc, scale))


def prior_only(y):
    pb.sample("mu", dist.Normal(0.0, 10.0))


NORMAL_PARAMS = {"loc": onp.array(1.5), "scale": onp.array(0.5)}
BETA_PARAMS = {"a": onp.array(3.0), "b": onp.array(2.0)}


@pytest.mark.parametrize("model,guide,params,data", [
    (normal_model, normal_guide, NORMAL_PARAMS, Y20),
    (prior_only, normal_guide, NORMAL_PARAMS, Y20),
    (beta_bernoulli, beta_guide, BETA_PARAMS, FLIPS),  # analytic Beta-Beta KL
], ids=["normal", "prior-only", "beta"])
def test_mean_field_elbo_has_the_same_expectation(model, guide, params, data):
    rng = onp.random.default_rng(0)
    mc = [Trace_ELBO().loss(rng, params, model, guide, data) for _ in range(400)]
    mf = [TraceMeanField_ELBO().loss(rng, params, model, guide, data) for _ in range(400)]
    se = math.sqrt(onp.var(mc) / 400 + onp.var(mf) / 400)
    assert abs(onp.mean(mc) - onp.mean(mf)) < 4 * se
    if model is prior_only:
        # The KL is the whole loss: exact, no Monte Carlo noise.
        exact = float(kl_divergence(dist.Normal(1.5, 0.5), dist.Normal(0.0, 10.0)))
        onp.testing.assert_allclose(mf, exact)


@pytest.mark.parametrize("loss", [Trace_ELBO(), TraceMeanField_ELBO()], ids=repr)
def test_normal_guide_recovers_conjugate_posterior(loss):
    prec = len(Y20) + 1 / 100
    exact_mean, exact_sd = Y20.sum() / prec, prec**-0.5
    svi = SVI(normal_model, normal_guide, optim.Adam(0.05), loss)
    state = svi.init(1, Y20)
    _, kept = _second_half(svi, state, 1200, Y20,
                           read=lambda p: (float(p["loc"]), float(p["scale"])))
    (loc, scale), (se_loc, se_scale) = _average_and_se(kept)
    assert abs(loc - exact_mean) < 3 * se_loc + 0.02 * exact_sd
    assert abs(scale - exact_sd) < 3 * se_scale + 0.02 * exact_sd


# ----------------------------------------------------------- the driver
def test_state_is_explicit_and_params_constrained():
    svi = SVI(normal_model, normal_guide, optim.Adam(0.1))
    state = svi.init(7, Y20)
    assert isinstance(state, SVIState) and state.step == 0
    s1, loss1 = svi.update(state, Y20)
    s1_again, loss1_again = svi.update(state, Y20)
    assert loss1 == loss1_again
    p1, p1_again = svi.get_params(s1), svi.get_params(s1_again)
    assert p1.keys() == p1_again.keys()
    for name in p1:  # the update is a pure function of the state: bit-identical
        onp.testing.assert_array_equal(p1[name], p1_again[name])
    assert svi.evaluate(state, Y20) == pytest.approx(loss1)
    state = s1
    for _ in range(50):
        state, _ = svi.update(state, Y20)
    params = svi.get_params(state)
    assert set(params) == {"loc", "scale"} and float(params["scale"]) > 0
    assert state.step == 51


def test_run_returns_params_state_losses():
    svi = SVI(normal_model, normal_guide, optim.Adam(0.1))
    result = svi.run(0, 300, Y20, progress=True)
    assert result.losses.shape == (300,) and onp.isfinite(result.losses).all()
    assert result.losses[-50:].mean() < result.losses[:50].mean()
    assert result.state.step == 300
    # Same seed, same run.
    again = svi.run(0, 300, Y20, progress=False)
    onp.testing.assert_array_equal(result.losses, again.losses)


def test_nonfinite_step_is_skipped():
    def model(y):
        mu = pb.sample("mu", dist.Normal(0.0, 10.0))
        # NaN log density for mu beyond 3: draws from a wide guide hit it.
        pb.factor("edge", pb.ad.numpy.where(mu < 3.0, 0.0, onp.nan))
        pb.sample("y", dist.Normal(mu, 1.0), obs=y)

    def guide(y):
        loc = pb.param("loc", 0.0)
        pb.sample("mu", dist.Normal(loc, 3.0))

    svi = SVI(model, guide, optim.Adam(0.05))
    result = svi.run(0, 200, onp.array(0.5), progress=False)
    assert result.state.num_skipped == int(onp.isnan(result.losses).sum()) > 0
    assert onp.isfinite(float(result.params["loc"]))


def test_guide_and_model_must_agree_on_sites():
    def guide_without_mu(y):
        pb.param("loc", 0.0)

    def guide_with_extra(y):
        loc = pb.param("loc", 0.0)
        pb.sample("mu", dist.Normal(loc, 1.0))
        pb.sample("nu", dist.Normal(loc, 1.0))

    with pytest.raises(ValueError, match="'mu' is latent in the model"):
        SVI(normal_model, guide_without_mu, optim.Adam(0.1)).run(0, 2, Y20, progress=False)
    with pytest.raises(ValueError, match="'nu'"):
        SVI(normal_model, guide_with_extra, optim.Adam(0.1)).run(0, 2, Y20, progress=False)


def test_no_params_is_an_error():
    def fixed_guide(y):
        pb.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="pb.param"):
        SVI(normal_model, fixed_guide, optim.Adam(0.1)).init(0, Y20)


def test_bad_num_particles():
    with pytest.raises(ValueError, match="num_particles"):
        Trace_ELBO(num_particles=0)
