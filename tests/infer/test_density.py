"""From model to density: the potential against hand-written densities,
transforms and Jacobians, init strategies, and every bad-input error."""
import contextlib
import math
import warnings

import numpy as onp
import pytest
from scipy.integrate import ODEintWarning

import probad.ad.numpy as np
from probad import distributions as dist
from probad import handlers
from probad.infer.density import MAX_INIT_ATTEMPTS, MissingDataWarning, log_density, potential
from probad.infer.initialization import (init_to_median, init_to_sample, init_to_uniform,
                                         init_to_value)
from probad.infer.reparam import LocScaleReparam
from probad.primitives import factor, plate, sample
from tests import models

ES = models.EIGHT_SCHOOLS


def eight_schools_log_joint(mu, tau, theta_t):
    """The non-centred eight schools log joint, written out with numpy."""
    y, sigma = ES["y"], ES["sigma"]

    def normal(x, loc, scale):
        return -0.5 * ((x - loc) / scale) ** 2 - onp.log(scale) - 0.5 * math.log(2 * math.pi)

    half_cauchy = math.log(2 / (math.pi * 5.0)) - onp.log1p((tau / 5.0) ** 2)
    return (normal(mu, 0.0, 5.0) + half_cauchy + onp.sum(normal(theta_t, 0.0, 1.0))
            + onp.sum(normal(y, mu + tau * theta_t, sigma)))


def eight_schools_energy(q):
    # tau = exp(q[1]): the log-Jacobian of the exp transform is q[1]
    return -(eight_schools_log_joint(q[0], onp.exp(q[1]), q[2:]) + q[1])


def finite_difference_grad(f, q, h=1e-6):
    grad = onp.empty_like(q)
    for i in range(len(q)):
        e = onp.zeros_like(q)
        e[i] = h
        grad[i] = (f(q + e) - f(q - e)) / (2 * h)
    return grad


@pytest.fixture(scope="module")
def eight_schools():
    return potential(models.eight_schools_noncentered, ES, compile=False)


def test_eight_schools_sites_and_metadata(eight_schools):
    pot = eight_schools
    assert pot.dim == 10 and list(pot.sites) == ["mu", "tau", "theta_t"]
    tau = pot.sites["tau"]
    assert (tau.shape, tau.size, tau.offset) == ((), 1, 1)
    assert pot.sites["theta_t"].offset == 2 and pot.sites["theta_t"].shape == (8,)
    assert pot.dims == {"mu": (), "tau": (), "theta_t": ("school",), "theta": ("school",),
                        "y": ("school",)}
    assert list(pot.observed) == ["y"] and onp.array_equal(pot.observed["y"], ES["y"])
    assert list(pot.constant_data) == ["sigma"]  # J is a scalar, y is observed
    assert pot.model is models.eight_schools_noncentered and pot.data["J"] == 8


def test_eight_schools_potential_matches_hand_written_density(eight_schools):
    rng = onp.random.default_rng(0)
    for _ in range(5):
        q = rng.normal(size=10)
        energy, grad = eight_schools.value_and_grad(q)
        assert energy == pytest.approx(eight_schools_energy(q), rel=1e-12)
        assert eight_schools(q) == pytest.approx(energy, rel=1e-14)
        assert isinstance(energy, float) and grad.dtype == onp.float64 and grad.shape == (10,)
        assert onp.allclose(grad, finite_difference_grad(eight_schools_energy, q),
                            rtol=1e-6, atol=1e-6)


def test_log_density_at_constrained_values():
    params = {"mu": 1.0, "tau": 2.0, "theta_t": onp.linspace(-1, 1, 8)}
    value = log_density(models.eight_schools_noncentered, ES, params)
    assert value == pytest.approx(eight_schools_log_joint(1.0, 2.0, params["theta_t"]))
    with pytest.raises(ValueError, match="missing: tau"):
        log_density(models.eight_schools_noncentered, ES, {"mu": 1.0, "theta_t": onp.zeros(8)})


def test_constrain_unconstrain_round_trip(eight_schools):
    q = onp.random.default_rng(1).normal(size=10)
    values = eight_schools.constrain(q)
    assert set(values) == {"mu", "tau", "theta_t", "theta"}  # latent + deterministic
    assert values["tau"] == pytest.approx(math.exp(q[1]))
    assert onp.allclose(values["theta"], values["mu"] + values["tau"] * values["theta_t"])
    assert onp.allclose(eight_schools.unconstrain(values), q)
    with pytest.raises(ValueError, match="missing: theta_t"):
        eight_schools.unconstrain({"mu": 0.0, "tau": 1.0})
    with pytest.raises(ValueError, match=r"site 'tau': value outside its support positive"):
        eight_schools.unconstrain({"mu": 0.0, "tau": -1.0, "theta_t": onp.zeros(8)})
    with pytest.raises(ValueError, match=r"expected a value of shape \(8,\)"):
        eight_schools.unconstrain({"mu": 0.0, "tau": 1.0, "theta_t": onp.zeros(7)})
    with pytest.raises(ValueError, match=r"q must have shape \(10,\)"):
        eight_schools.constrain(onp.zeros(3))


@pytest.mark.parametrize("model, data", [
    (models.dirichlet_categorical, models.categorical_data()),
    (models.lkj_mvn, models.mvn_data()),
    (models.garch11, models.garch_data()),
])
def test_round_trip_through_shape_changing_and_dependent_transforms(model, data):
    pot = potential(model, data, compile=False)
    rng = onp.random.default_rng(2)
    for _ in range(3):
        q = rng.normal(size=pot.dim)
        values = pot.constrain(q)
        assert onp.allclose(pot.unconstrain(values), q, atol=1e-10)
    if model is models.dirichlet_categorical:
        assert pot.dim == 2 and values["theta"].shape == (3,)
        assert values["theta"].sum() == pytest.approx(1.0)
    if model is models.garch11:  # beta1 ~ Uniform(0, 1 - alpha1) follows alpha1
        assert 0.0 < values["beta1"] < 1.0 - values["alpha1"]


def test_jacobian_of_a_positive_site():
    def model():
        sample("s", dist.HalfNormal(2.0))

    pot = potential(model, compile=False)
    for q in (-1.3, 0.0, 0.7):
        expected = -(float(dist.HalfNormal(2.0).log_prob(math.exp(q))) + q)
        assert pot(onp.array([q])) == pytest.approx(expected, rel=1e-12)


def test_jacobian_of_a_dependent_interval():
    def model():
        a = sample("a", dist.Uniform(0.0, 1.0))
        sample("b", dist.Uniform(0.0, a))

    pot = potential(model, compile=False)

    def energy(q):
        # a = sigmoid(q0), b = a * sigmoid(q1); log p(a, b) = 0 - log(a)
        a = 1 / (1 + math.exp(-q[0]))
        s = 1 / (1 + math.exp(-q[1]))
        log_det = math.log(a * (1 - a)) + math.log(a * s * (1 - s))
        return -(-math.log(a) + log_det)

    q = onp.array([0.3, -0.8])
    value, grad = pot.value_and_grad(q)
    assert value == pytest.approx(energy(q), rel=1e-12)
    assert onp.allclose(grad, finite_difference_grad(energy, q), atol=1e-6)


@pytest.mark.parametrize("compile", [False, True])
def test_subsampling_plate_keeps_one_subsample(compile):
    data = onp.linspace(-2.0, 2.0, 50)

    def model():
        loc = sample("loc", dist.Normal(0.0, 1.0))
        with plate("obs", 50, subsample_size=5) as idx:
            sample("y", dist.Normal(loc, 1.0), obs=data[idx])

    pot = potential(model, compile=compile)
    batch = pot.observed["y"]
    assert len(batch) == 5 and onp.all(onp.isin(batch, data))
    q = onp.array([0.3])
    expected = -(float(dist.Normal(0.0, 1.0).log_prob(0.3))
                 + 10.0 * float(onp.sum(dist.Normal(0.3, 1.0).log_prob(batch))))
    assert [pot(q) for _ in range(3)] == pytest.approx([expected] * 3)
    assert pot.log_likelihood(q)["y"].shape == (5,)


@pytest.mark.parametrize("compile", [False, True])
def test_jacobian_of_a_subsampled_local_site_is_scaled(compile):
    data = onp.linspace(0.5, 3.0, 50)

    def model():
        with plate("obs", 50, subsample_size=5) as idx:
            s = sample("s", dist.LogNormal(0.0, 1.0))
            sample("y", dist.Normal(0.0, s), obs=data[idx])

    pot = potential(model, compile=compile)
    batch = pot.observed["y"]
    q = onp.linspace(-0.5, 0.5, 5)
    s = onp.exp(q)
    # The 5 local variables stand for all 50: each term, its Jacobian log s = q
    # included, counts 10 times (NumPyro's rule).
    terms = dist.LogNormal(0.0, 1.0).log_prob(s) + dist.Normal(0.0, s).log_prob(batch) + q
    assert pot(q) == pytest.approx(-10.0 * onp.sum(terms), rel=1e-12)


@pytest.mark.parametrize("compile", [False, True])
def test_jacobian_takes_the_scale_and_mask_of_handlers(compile):
    keep = onp.array([True, False, True])

    def model():
        with handlers.scale(scale=3.0), handlers.mask(mask=keep), plate("i", 3):
            sample("s", dist.HalfNormal(2.0))

    pot = potential(model, compile=compile)
    q = onp.array([-0.4, 0.9, 0.2])
    terms = dist.HalfNormal(2.0).log_prob(onp.exp(q)) + q
    value, grad = pot.value_and_grad(q)
    assert value == pytest.approx(-3.0 * onp.sum(terms[keep]), rel=1e-12)
    # The masked-out variable adds nothing, its Jacobian neither.
    assert grad[1] == 0.0 and onp.all(grad[keep] != 0.0)


def test_loc_scale_reparam_matches_the_non_centred_model():
    reparam = handlers.reparam(models.eight_schools_centered,
                               config={"theta": LocScaleReparam(0)})
    pot = potential(reparam, ES, compile=False)
    assert list(pot.sites) == ["mu", "tau", "theta_decentered"]
    assert pot.dims["theta"] == ("school",)
    ref = potential(models.eight_schools_noncentered, ES, compile=False)
    rng = onp.random.default_rng(3)
    for _ in range(3):
        q = rng.normal(size=10)
        value, grad = pot.value_and_grad(q)
        ref_value, ref_grad = ref.value_and_grad(q)
        assert value == pytest.approx(ref_value, rel=1e-12)
        assert onp.allclose(grad, ref_grad, rtol=1e-12)
        assert onp.allclose(pot.constrain(q)["theta"], ref.constrain(q)["theta"])


def test_latent_observed_sites_and_pointwise_log_likelihood(eight_schools):
    q = onp.random.default_rng(4).normal(size=10)
    loglik = eight_schools.log_likelihood(q)
    values = eight_schools.constrain(q)
    assert list(loglik) == ["y"] and loglik["y"].shape == (8,)
    assert onp.allclose(loglik["y"], dist.Normal(values["theta"], ES["sigma"]).log_prob(ES["y"]))
    # without its data y is latent (prior predictive style), with a warning
    with pytest.warns(MissingDataWarning, match="'y' are written as data"):
        prior = potential(models.eight_schools_noncentered, {"J": 8, "sigma": ES["sigma"]},
                          compile=False)
    assert list(prior.sites) == ["mu", "tau", "theta_t", "y"] and prior.observed == {}
    # factor sites are not part of the pointwise log-likelihood
    mixture = potential(models.normal_mixture, models.mixture_data(), compile=False)
    assert mixture.log_likelihood(onp.zeros(mixture.dim)) == {} and mixture.observed == {}


def test_dims_and_constant_data_of_other_models():
    data = models.regression_data()
    pot = potential(models.linear_regression, {"X": data["X"], "y": data["y"]}, compile=False)
    assert pot.dims["beta"] == ("beta_dim_0",) and pot.dims["mu"] == ("obs",)
    assert pot.dims["y"] == ("obs",) and list(pot.constant_data) == ["X"]
    lkj = potential(models.lkj_mvn, models.mvn_data(), compile=False)
    assert lkj.dims["L"] == ("L_dim_0", "L_dim_1") and lkj.dims["y"] == ("obs", "y_dim_1")

    def renamed(y):
        sample("err", dist.Normal(0.0, 1.0), obs=y[1:] - y[:-1])

    pot = potential(renamed, {"y": onp.arange(4.0)}, compile=False)
    assert list(pot.observed) == ["err"] and list(pot.constant_data) == ["y"]


MODELS = {
    "eight_schools_centered": (models.eight_schools_centered, ES),
    "eight_schools_noncentered": (models.eight_schools_noncentered, ES),
    "linear_regression": (models.linear_regression,
                          {k: models.regression_data()[k] for k in ("X", "y")}),
    "logistic_regression": (models.logistic_regression,
                            {k: models.regression_data()[k] for k in ("X", "y01")}),
    "garch11": (models.garch11, models.garch_data()),
    "dirichlet_categorical": (models.dirichlet_categorical, models.categorical_data()),
    "lkj_mvn": (models.lkj_mvn, models.mvn_data()),
    "normal_with_deterministics": (models.normal_with_deterministics,
                                   {"y": models.mixture_data()["y"]}),
    "normal_mixture": (models.normal_mixture, models.mixture_data()),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_library_model_has_a_finite_start_and_correct_gradient(name):
    model, data = MODELS[name]
    pot = potential(model, data, compile=False)
    q = pot.initial_point(seed=0)
    value, grad = pot.value_and_grad(q)
    assert math.isfinite(value) and onp.all(onp.isfinite(grad))
    fd = finite_difference_grad(pot, q, h=1e-5)
    assert onp.allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, abs(value)))


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_potential_matches_eager(name):
    model, data = MODELS[name]
    eager = potential(model, data, compile=False)
    compiled = potential(model, data, compile=True)
    for seed in range(3):  # the first call records, the others replay
        q = eager.initial_point(seed=seed)
        value, grad = compiled.value_and_grad(q)
        ref_value, ref_grad = eager.value_and_grad(q)
        assert value == pytest.approx(ref_value, rel=1e-12)
        assert onp.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
        assert compiled(q) == pytest.approx(ref_value, rel=1e-12)
    assert compiled._energy_and_grad.trace_count == 1


@pytest.mark.parametrize("name", list(MODELS))
def test_compile_check_mode_raises_no_false_alarm(name, monkeypatch):
    # PROBAD_COMPILE_CHECK=1 compares every replay with eager evaluation; on
    # correct tapes it must stay silent.
    monkeypatch.setenv("PROBAD_COMPILE_CHECK", "1")
    model, data = MODELS[name]
    pot = potential(model, data)
    assert pot._energy_and_grad.check and pot._outputs.check
    for seed in range(3):
        q = pot.initial_point(seed=seed)
        pot.value_and_grad(q)
        pot(q)
        pot.constrain_and_log_likelihood(q)


def test_compiled_potential_follows_a_branch_on_a_latent_value():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        # a Python branch on a traced value: recorded as a guard, retraced when it flips
        scale = 1.0 if x > 0 else 2.0
        sample("y", dist.Normal(x, scale), obs=0.5)

    compiled = potential(model, compile=True)
    eager = potential(model, compile=False)
    for x in (0.3, -0.4, 0.8, -1.1):
        q = onp.array([x])
        assert compiled.value_and_grad(q)[0] == pytest.approx(eager.value_and_grad(q)[0])
    assert compiled._energy_and_grad.trace_count == 2


# --------------------------------------------------------------- init strategies
def test_init_to_uniform_stays_in_the_box(eight_schools):
    q = eight_schools.initial_point(seed=0)
    assert onp.all(onp.abs(q) <= 2.0)
    q = eight_schools.initial_point(seed=0, strategy=init_to_uniform(radius=0.1))
    assert onp.all(onp.abs(q) <= 0.1)
    assert onp.array_equal(eight_schools.initial_point(seed=5), eight_schools.initial_point(seed=5))
    assert not onp.array_equal(eight_schools.initial_point(seed=5),
                               eight_schools.initial_point(seed=6))


def correlated_pair(y):
    """Positive definite only for |rho| < 1/2: a uniform start in (-2, 2) on the
    unconstrained scale lands outside that about half the time."""
    rho = sample("rho", dist.Uniform(-1.0, 1.0))
    covariance = np.array([[1.0, 2.0 * rho], [2.0 * rho, 1.0]])
    sample("y", dist.MultivariateNormal(np.zeros(2), scale_tril=np.linalg.cholesky(covariance)),
           obs=y)


@pytest.mark.parametrize("compile", [True, False])
def test_a_linalg_error_at_a_start_is_a_failed_try_and_retried(compile):
    pot = potential(correlated_pair, {"y": onp.array([0.3, 0.1])}, compile=compile)
    for seed in range(10):  # seeds 3, 4, 5 and 9 first draw a start that is not PD
        rho = pot.constrain(pot.initial_point(seed=seed))["rho"]
        assert abs(rho) < 0.5


def test_init_to_value_with_fallback(eight_schools):
    q = eight_schools.initial_point(seed=0, strategy=init_to_value({"mu": 1.0, "tau": 2.0}))
    assert q[0] == 1.0 and q[1] == pytest.approx(math.log(2.0)) and onp.all(onp.abs(q[2:]) <= 2)
    q = eight_schools.initial_point(seed=0, strategy=init_to_value(
        {"theta_t": onp.full(8, 0.5)}, fallback=init_to_uniform(radius=0.0)))
    assert onp.array_equal(q, onp.r_[0.0, 0.0, onp.full(8, 0.5)])
    with pytest.raises(ValueError, match="value for site 'tau' is outside the site's support"):
        eight_schools.initial_point(strategy=init_to_value({"tau": -1.0}))
    with pytest.raises(ValueError, match=r"site 'theta_t' has shape \(3,\)"):
        eight_schools.initial_point(strategy=init_to_value({"theta_t": onp.zeros(3)}))


def test_init_to_median_and_init_to_sample(eight_schools):
    # the median of n draws has standard error 1 / (2 f(m) sqrt(n)); allow 4 of them
    n = 2001
    q = eight_schools.initial_point(seed=0, strategy=init_to_median(num_samples=n))
    mu_se = 1 / (2 * (1 / (5 * math.sqrt(2 * math.pi))) * math.sqrt(n))
    tau_se = 1 / (2 * (2 / (math.pi * 5 * 2)) * math.sqrt(n))
    assert abs(q[0]) < 4 * mu_se and abs(math.exp(q[1]) - 5.0) < 4 * tau_se
    assert onp.all(onp.abs(q[2:]) < 4 * 1 / (2 * (1 / math.sqrt(2 * math.pi)) * math.sqrt(n)))
    a = eight_schools.initial_point(seed=1, strategy=init_to_sample())
    assert onp.array_equal(a, eight_schools.initial_point(seed=1, strategy=init_to_sample()))
    assert not onp.array_equal(a, eight_schools.initial_point(seed=2, strategy=init_to_sample()))


def test_improper_sites_fall_back_to_uniform():
    def model():
        x = sample("x", dist.ImproperUniform(dist.constraints.simplex, (), (3,)))
        sample("y", dist.Normal(x[0], 1.0), obs=0.2)

    pot = potential(model, compile=False)
    for strategy in (init_to_median(), init_to_sample(), init_to_uniform()):
        q = pot.initial_point(seed=0, strategy=strategy)
        assert q.shape == (2,) and onp.all(onp.abs(q) <= 2.0)


def test_no_finite_starting_point_names_the_site():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        factor("wall", np.where(x > 50.0, 0.0, -onp.inf))

    pot = potential(model, compile=False)
    with pytest.raises(ValueError, match=rf"after {MAX_INIT_ATTEMPTS} tries of init_to_uniform"
                                         r".*log density not finite at site\(s\) wall"):
        pot.initial_point(seed=0)
    q = pot.initial_point(strategy=init_to_value({"x": 60.0}))
    assert q[0] == 60.0


@pytest.mark.parametrize("compile", [False, True])
def test_a_draw_that_makes_a_parameter_invalid_is_a_failed_try(compile):
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        sample("y", dist.Normal(0.0, np.exp(-1000.0 * x**2)), obs=1.0)

    pot = potential(model, compile=compile)
    # Seed 2 starts x at -0.95, where the scale of y underflows to 0; a later try works.
    assert abs(onp.random.default_rng(2).uniform(-2.0, 2.0)) > 0.9
    q = pot.initial_point(seed=2)
    assert math.isfinite(pot(q)) and abs(q[0]) < 0.6
    with pytest.raises(ValueError, match=rf"after {MAX_INIT_ATTEMPTS} tries of init_to_value"
                                         r".*at the last try: invalid parameter at site 'y': "
                                         r"Normal: parameter 'scale' must satisfy positive, "
                                         r"got 0\.0\. Check that.*init_to_value"):
        pot.initial_point(strategy=init_to_value({"x": 1.5}))


def test_a_prior_draw_on_the_edge_of_the_support_is_a_failed_try():
    def model(concentration):
        sample("x", dist.Gamma(concentration, 1.0))

    # Seed 0's first draw of Gamma(0.001, 1) underflows to 0, outside (0, inf).
    assert dist.Gamma(0.001, 1.0).sample(onp.random.default_rng(0)) == 0.0
    pot = potential(model, {"concentration": 0.001}, compile=False)
    q = pot.initial_point(seed=0, strategy=init_to_sample())
    assert math.isfinite(pot(q)) and 0.0 < math.exp(q[0])
    # Gamma(1e-300, 1) draws underflow every time.
    pot = potential(model, {"concentration": 1e-300}, compile=False)
    with pytest.raises(ValueError, match=r"after \d+ tries of init_to_sample\(\); at the last "
                                         r"try: site 'x': value outside its support positive"):
        pot.initial_point(seed=0, strategy=init_to_sample())


# ------------------------------------------------------------------- bad input
def _bad(model, data=None):
    return lambda: potential(model, data, compile=False)


def test_invalid_parameter_names_site_argument_and_constraint():
    def model():
        sample("x", dist.Normal(0.0, -1.0))

    with pytest.raises(ValueError, match=r"site 'x': Normal: parameter 'scale' must satisfy "
                                         r"positive, got -1\.0"):
        _bad(model)()


def test_invalid_parameter_inside_a_plate():
    def model():
        with plate("i", 3):
            sample("p", dist.Bernoulli(probs=onp.array([0.5, 1.5, 0.2])), obs=onp.ones(3))

    with pytest.raises(ValueError, match=r"site 'p': Bernoulli: parameter 'probs'.*1\.5.*\(1,\)"):
        _bad(model)()


@pytest.mark.parametrize("fn, parameter, constraint", [
    (lambda: dist.MultivariateNormal(onp.zeros(2), covariance_matrix=[[1.0, 2.0], [2.0, 1.0]]),
     "covariance_matrix", "positive_definite"),
    (lambda: dist.MultivariateNormal(onp.zeros(2), precision_matrix=[[1.0, 2.0], [2.0, 1.0]]),
     "precision_matrix", "positive_definite"),
    (lambda: dist.LowRankMultivariateNormal(onp.zeros(2), onp.ones((2, 1)), [-0.5, 1.0]),
     "cov_diag", r"independent\(positive, 1\)"),
])
def test_invalid_matrix_parameters_name_the_site(fn, parameter, constraint):
    # These distributions factorise their matrices lazily, so an invalid one
    # gets to the site's check rather than failing in the constructor.
    def model():
        sample("z", fn())

    with pytest.raises(ValueError, match=rf"site 'z': \w*MultivariateNormal: parameter "
                                         rf"'{parameter}' must satisfy {constraint}.*Fix the "
                                         "distribution's parameters at this site"):
        _bad(model)()


def test_invalid_parameter_of_a_distribution_that_is_not_a_site():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        factor("f", dist.Normal(x, -2.0).log_prob(1.0))

    with pytest.raises(ValueError, match=r"(?s)parameter 'scale' must satisfy positive.*"
                                         r'in the model at .*factor\("f"'):
        _bad(model)()


@pytest.mark.parametrize("fn, obs, position", [
    (dist.Poisson(3.0), onp.array([1.0, 2.0, -1.0, 0.0]), r"\(2,\)"),
    (dist.Bernoulli(probs=0.3), onp.array([0.0, 1.2, 1.0]), r"\(1,\)"),
])
def test_observed_data_outside_the_support(fn, obs, position):
    def model():
        with plate("obs", len(obs)):
            sample("k", fn, obs=obs)

    with pytest.raises(ValueError, match=rf"observed data for site 'k' is outside the support "
                                         rf"of {type(fn).__name__}.*{position}.*Fix or drop "
                                         "those observations, or choose a likelihood"):
        _bad(model)()


def test_observed_shape_clash_with_plate():
    def model():
        with plate("school", 8):
            sample("y", dist.Normal(0.0, 1.0), obs=onp.zeros(7))

    with pytest.raises(ValueError, match=r"site 'y': observed data of shape \(7,\) does not fit"
                                         r".*plate\(s\) 'school' \(size 8"):
        _bad(model)()

    def stacked():
        with plate("school", 8):
            sample("y", dist.Normal(0.0, 1.0), obs=onp.zeros((8, 8)))

    with pytest.raises(ValueError, match=r"observed data of shape \(8, 8\)"):
        _bad(stacked)()


def test_latent_site_shape_clash_with_plate():
    def model():
        with plate("school", 8):
            sample("theta", dist.Normal(onp.zeros(3), 1.0))

    with pytest.raises(ValueError, match=r"site 'theta'.*clashes with plate 'school'"):
        _bad(model)()


def test_duplicate_site_names():
    def model():
        for _ in range(2):
            sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="two sites are named 'x'"):
        _bad(model)()


def test_nan_in_observed_data_with_its_position():
    y = ES["y"].copy()
    y[3] = onp.nan
    with pytest.raises(ValueError, match=r"observed data for site 'y' contains 1 NaN/inf.*"
                                         r"position \(3,\)"):
        _bad(models.eight_schools_noncentered, dict(ES, y=y))()


def test_latent_discrete_site():
    def model():
        k = sample("k", dist.Poisson(3.0))
        sample("y", dist.Normal(k, 1.0), obs=2.0)

    with pytest.raises(ValueError, match=r"site 'k' is a latent discrete.*Marginalise.*factor.*"
                                         r"logsumexp"):
        _bad(model)()


def test_checks_restore_the_validation_switch():
    from probad.distributions.distribution import is_validation_enabled

    def model():
        sample("x", dist.Normal(0.0, -1.0))

    with pytest.raises(ValueError):
        _bad(model)()
    assert is_validation_enabled()


def test_structure_changing_with_latent_values_is_an_error():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        if float(x) > 0:
            sample("extra", dist.Normal(0.0, 1.0))

    pot = potential(model, compile=False)
    other = 1.0 if "extra" not in pot.sites else -1.0
    with pytest.raises(ValueError, match="must not depend on the values of its latent sites"):
        pot(onp.full(pot.dim, other))


# ------------------------------------------- broadcasting that multiplies data
def _normal_site(loc, obs, frames=()):
    def model():
        with contextlib.ExitStack() as stack:
            for frame in frames:
                stack.enter_context(plate(*frame))
            sample("y", dist.Normal(loc, 1.0), obs=obs)
    return model


def test_data_broadcast_to_a_larger_shape_is_an_error():
    # mu + zeros((5, 1)) against y of shape (5,): a (5, 5) likelihood that
    # counts every observation 5 times (posterior sd 0.19 instead of 0.45).
    y = onp.arange(5.0)
    with pytest.raises(ValueError, match=r"site 'y': observed data of shape \(5,\) is broadcast "
                                         r"to the distribution's shape \(5, 1\).*giving \(5, 5\)"
                                         r".*count 5 times"):
        potential(_normal_site(onp.zeros((5, 1)), y), compile=False)
    with pytest.raises(ValueError, match=r"shape \(1,\) is broadcast.*count 3 times"):
        potential(_normal_site(onp.zeros(3), onp.ones(1)), compile=False)


@pytest.mark.parametrize("loc, obs, frames, shape", [
    (onp.zeros(5), onp.arange(5.0), (), (5,)),              # same shape
    (0.0, onp.arange(5.0), (), (5,)),                       # iid data, scalar distribution
    (0.0, 1.5, [("n", 5)], (5,)),                           # one value for every copy of a plate
    (onp.zeros((3, 1)), onp.ones((3, 4)), (), (3, 4)),      # data fills the broadcast
], ids=["same", "iid", "scalar-in-plate", "outer"])
def test_data_at_least_as_large_as_the_distribution_is_accepted(loc, obs, frames, shape):
    def model():
        mu = sample("mu", dist.Normal(0.0, 1.0))
        _normal_site(mu + loc, obs, frames)()

    assert potential(model, compile=False).dim == 1
    likelihood = onp.sum(dist.Normal(0.5, 1.0).log_prob(onp.broadcast_to(obs, shape)))
    assert log_density(model, None, {"mu": 0.5}) == pytest.approx(
        float(likelihood + dist.Normal(0.0, 1.0).log_prob(0.5)))


def test_a_single_event_stands_for_every_copy():
    # As a scalar does in Stan's vectorised statements: one vector observed
    # under a batch of multivariate normals.
    def model():
        loc = sample("loc", dist.Normal(0.0, 1.0).expand((2, 3)).to_event(2))
        sample("y", dist.MultivariateNormal(loc, onp.eye(3)), obs=onp.ones(3))
    assert potential(model, compile=False).dim == 6


# ---------------------------------------------------------------- data types
@pytest.mark.parametrize("obs, match", [
    (onp.array(["1.0", "2.0"]), r"dtype <U3 \(not numeric\); encode categories"),
    (onp.array([1.0, None], dtype=object), r"dtype object \(not numeric\)"),
    (onp.array([1 + 2j, 3j]), r"dtype complex128 \(complex\); .* real and imaginary"),
], ids=["strings", "objects", "complex"])
def test_unsupported_data_types_name_the_site(obs, match):
    def model():
        mu = sample("mu", dist.Normal(0.0, 1.0))
        sample("y", dist.Normal(mu, 1.0), obs=obs)
    with pytest.raises(ValueError, match=r"observed data for site 'y' has " + match):
        potential(model, compile=False)


def _regression(x, y=None):
    a = sample("a", dist.Normal(0.0, 1.0))
    with plate("n", len(x)):
        sample("y", dist.Normal(a * x, 1.0), obs=y)


@pytest.mark.parametrize("container", ["pandas", "xarray", "list"])
def test_pandas_xarray_and_list_data_are_numpy_data(container):
    x, y = onp.array([0.5, 1.0, 2.0]), onp.array([0.7, 1.1, 1.9])
    if container == "pandas":
        pandas = pytest.importorskip("pandas")
        data = {"x": pandas.Series(x, index=[10, 20, 30]), "y": pandas.Series(y, index=[3, 2, 1])}
    elif container == "xarray":
        xarray = pytest.importorskip("xarray")
        data = {"x": xarray.DataArray(x, dims="n"), "y": xarray.DataArray(y, dims="n")}
    else:
        data = {"x": x, "y": y.tolist()}
    pot = potential(_regression, data, compile=False)
    reference = potential(_regression, {"x": x, "y": y}, compile=False)
    q = onp.array([0.3])
    assert type(pot.observed["y"]) is onp.ndarray
    assert pot(q) == reference(q)
    value, grad = pot.value_and_grad(q)
    assert (value, grad.tolist()) == (reference(q), reference.value_and_grad(q)[1].tolist())
    assert log_density(_regression, data, {"a": 0.3}) == log_density(
        _regression, {"x": x, "y": y}, {"a": 0.3})


def test_data_that_is_not_a_mapping_is_refused():
    with pytest.raises(TypeError, match="data must be a mapping of model argument -> value"):
        potential(_regression, [onp.ones(3)], compile=False)


# ------------------------------------------------------ no data, no latents
def test_a_site_written_as_data_without_data_warns_once_naming_it():
    with pytest.warns(MissingDataWarning, match=r"site\(s\) 'y' are written as data") as record:
        pot = potential(_regression, {"x": onp.ones(3)}, compile=False)
    assert len(record) == 1 and "y" in pot.sites
    assert record[0].filename == __file__  # the user's call, not probad's


def test_the_missing_data_warning_of_pb_hmc_points_at_the_call():
    from probad.infer.mcmc import hmc

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        hmc(_regression, {"x": onp.ones(3)}, draws=5, tune=5, chains=1, seed=0,
               progress=False)
    (missing,) = [w for w in record if w.category is MissingDataWarning]
    assert missing.filename == __file__


def test_latent_sites_written_without_obs_do_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        potential(_regression, {"x": onp.ones(3), "y": onp.zeros(3)}, compile=False)
        potential(models.eight_schools_noncentered, ES, compile=False)


def test_a_model_without_latent_sites_says_so():
    def model(y):
        sample("y", dist.Normal(0.0, 1.0), obs=y)
    pot = potential(model, {"y": onp.ones(2)}, compile=False)
    with pytest.raises(ValueError, match=r"the model has no latent sites \(every sample site is "
                                         r"observed; observed sites: 'y'\)"):
        pot.initial_point(0)


def test_an_init_value_for_an_unknown_site_is_an_error(eight_schools):
    with pytest.raises(ValueError, match=r"init names 'muu', not a latent site of the model; its "
                                         r"latent sites are 'mu', 'tau', 'theta_t'"):
        eight_schools.initial_point(0, init_to_value(values={"muu": 0.0}))
    with pytest.raises(ValueError, match="pb.hmc: init names 'theta'"):
        eight_schools.check_start({"theta": onp.zeros(8)}, "pb.hmc")
    eight_schools.check_start({"mu": 0.0})


def test_hmc_checks_init_and_latent_sites_before_sampling():
    import probad as pb

    def fixed(y):
        sample("y", dist.Normal(0.0, 1.0), obs=y)

    options = dict(draws=5, tune=5, chains=1, progress=False)
    with pytest.raises(ValueError, match="pb.hmc: the model has no latent sites"):
        pb.hmc(fixed, {"y": onp.ones(3)}, **options)
    with pytest.raises(ValueError, match="pb.hmc: init names 'muu'"):
        pb.hmc(models.eight_schools_noncentered, ES, init={"muu": 0.0}, **options)


def test_overlapping_check_passes_in_two_threads_leave_validation_on():
    # Chains on a thread pool run their checks at once. A global switch saved
    # and restored by each (A saves on, B saves A's off, A restores on, B
    # restores off) was left off for good, and later models went unchecked.
    import threading

    from probad.distributions.distribution import is_validation_enabled
    from probad.infer.density import _checked_at_sites

    barrier = threading.Barrier(2, timeout=10)
    seen = {}

    def a():
        barrier.wait()          # B is ready
        with _checked_at_sites():
            barrier.wait()      # B enters
            barrier.wait()      # B has read the switch
        barrier.wait()          # A restored: B may leave

    def b():
        barrier.wait()
        barrier.wait()          # A has entered
        with _checked_at_sites():
            seen["b"] = is_validation_enabled()
            barrier.wait()
            barrier.wait()      # A has left

    threads = [threading.Thread(target=f) for f in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"b": False}     # off inside, in its own thread
    assert is_validation_enabled()  # and on again for everyone after
    with pytest.raises(ValueError):
        dist.Normal(0.0, -1.0)


# ------------------------------------------- where U cannot be evaluated
def _unused_cholesky_model():
    x = sample("x", dist.Normal(0.0, 1.0))
    np.linalg.cholesky(np.eye(2) + x * np.array([[0.0, 1.0], [1.0, 0.0]]))  # a check only
    sample("y", dist.Normal(x, 1.0), obs=0.5)


def _nan_parameter_model():
    x = sample("x", dist.Normal(0.0, 1.0))
    sample("y", dist.Normal(0.0, np.sqrt(x)), obs=0.5)  # NaN scale for x < 0


def _finite_invalid_parameter_model():
    x = sample("x", dist.Normal(1.0, 1.0))
    # For x < 0 Beta's log density is still a finite number, and wrong.
    sample("y", dist.Beta(x, 1.0), obs=0.5)


def _failing_ode_model():
    from probad.ad.scipy.integrate import odeint

    k = sample("k", dist.Normal(0.0, 1.0))
    # y' = c y^2 from y(0) = 1 blows up at t = 1/c: for k > 1.5 before t = 2.
    path = odeint(lambda y, t, c: c * y * y, onp.ones(1), onp.array([0.0, 2.0]), (k - 1.0,),
                  mxstep=60)
    sample("y", dist.Normal(path[-1, 0], 1.0), obs=0.5)


@pytest.mark.parametrize("model, bad, kind, bad_grad, where", [
    (_unused_cholesky_model, 1.5, "linear algebra failed", 0.0, "LinAlgError"),
    (_nan_parameter_model, -1.5, "invalid parameter or NaN", onp.nan, "site(s) y"),
    # U = -log N(x; 1, 1) - ((x - 1) log 0.5 + log x): dU/dx = (x - 1) - log 0.5 - 1/x
    (_finite_invalid_parameter_model, -0.5, "invalid parameter or NaN",
     -1.5 - math.log(0.5) + 2.0,
     "site 'y': Beta: parameter 'concentration1' must satisfy positive, got -0.5"),
    (_failing_ode_model, 2.5, "ODE solve failed", 0.0, "ODEintError")])
def test_compiled_and_eager_agree_where_the_density_is_undefined(model, bad, kind, bad_grad, where):
    # Before: the compiled gradient dropped an unused failing Cholesky (finite
    # where eager is inf); a NaN parameter raised eagerly but gave NaN and a
    # RuntimeWarning compiled; a failed ODE solve gave a finite wrong gradient;
    # an invalid parameter whose log density is finite was accepted.
    results = {}
    for compile in (True, False):
        pot = potential(model, compile=compile)
        with warnings.catch_warnings():
            # No numpy RuntimeWarning, no scipy ODEintWarning escapes. (A model
            # with odeint runs eagerly under compile=True, with a CompileWarning:
            # the adjoint's cache keeps traced values.)
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("error", ODEintWarning)
            for q in (0.3, bad, 0.2, bad):
                q = onp.array([q])
                results.setdefault(compile, []).append((pot(q), *pot.value_and_grad(q)))
        assert pot.rejections == {kind: 4}
        assert where in pot.rejection_examples[kind]
    for compiled, eager in zip(results[True], results[False]):
        assert compiled[0] == eager[0] == compiled[1] == eager[1]
        onp.testing.assert_array_equal(compiled[2], eager[2])
    assert results[True][1][:2] == (math.inf, math.inf)
    # Zero where an error stopped the gradient; as computed otherwise (NaN for a
    # NaN energy; the prior's and Beta's terms for the invalid Beta).
    onp.testing.assert_allclose(results[True][1][2], [bad_grad], rtol=1e-12)


def _math_exp_model(y=None):
    mu = sample("mu", dist.Normal(0.0, 5.0))
    s = sample("s", dist.HalfNormal(1.0))
    sample("y", dist.Normal(math.exp(mu), s), obs=y)


def _numpy_exp_model(y=None):
    mu = sample("mu", dist.Normal(0.0, 5.0))
    sample("y", dist.Normal(onp.exp(mu), 1.0), obs=y)


@pytest.mark.parametrize("compile", [True, False])
def test_math_exp_of_a_latent_names_the_site(compile):
    # Before: math.exp(mu) was a constant, so the gradient silently ignored the
    # likelihood's dependence on mu (the sampler drew from the prior).
    pot = potential(_math_exp_model, {"y": onp.array([1.0, 2.0])}, compile=compile)
    with pytest.raises(TypeError, match=r"latent site\(s\) 'mu': float\(\) of a traced value would "
                       r"drop its derivative \(at .*test_density.py:\d+: .*math\.exp\(mu\)"):
        pot.value_and_grad(onp.zeros(pot.dim))


def test_pb_map_with_math_exp_names_the_site():
    import probad as pb

    with pytest.raises(TypeError, match=r"latent site\(s\) 'mu': float\(\)"):
        pb.map(_math_exp_model, {"y": onp.array([1.0, 2.0])})


def test_plain_numpy_on_a_latent_names_the_sites_in_scope():
    # Before: "operand 'ArrayBox' does not support ufuncs (__array_ufunc__=None)".
    pot = potential(_numpy_exp_model, {"y": onp.array([1.0, 2.0])})
    with pytest.raises(TypeError, match=r"latent site\(s\) 'mu' in scope: a numpy function was "
                       r"called on a traced value \(at .*onp\.exp\(mu\).*use probad\.ad\.numpy"):
        pot.value_and_grad(onp.zeros(pot.dim))


def test_quiet_false_leaves_numpy_warnings_to_the_caller():
    # The kernels silence them once per transition; value_and_grad need not again.
    # (The numpy replay warns as numpy does; a native replay has no warnings.)
    pot = potential(_nan_parameter_model, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert pot.value_and_grad(onp.array([-1.5]))[0] == math.inf
        with pytest.raises(RuntimeWarning, match="invalid value"):
            pot.value_and_grad(onp.array([-1.5]), quiet=False)
        with onp.errstate(invalid="ignore"):
            assert pot.value_and_grad(onp.array([-1.5]), quiet=False)[0] == math.inf


# ------------------------------------------- value_and_grad on native programs
def _native_eight_schools():
    pytest.importorskip("numba")
    return potential(models.eight_schools_noncentered, ES, backend="native")


def test_native_value_and_grad_runs_the_program_without_the_compiled_call(monkeypatch):
    # after the first call, value_and_grad runs the native program directly:
    # the same bits as the compiled function's replay, without its Python
    from probad.ad.compiler import function

    pot = _native_eight_schools()
    rng = onp.random.default_rng(0)
    points = [rng.normal(size=pot.dim) for _ in range(5)]
    pot.value_and_grad(points[0])
    original, calls = function.signature, []
    monkeypatch.setattr(function, "signature", lambda *a: calls.append(a) or original(*a))
    got = [pot.value_and_grad(q) for q in points]
    assert not calls
    assert len({id(grad) for _, grad in got}) == len(got)  # a new array each call
    for q, (value, grad) in zip(points, got):
        want_value, want_grad = pot._energy_and_grad(q, True, None)
        assert type(value) is float and value == want_value
        assert onp.array_equal(grad, want_grad)
        assert value == pytest.approx(eight_schools_energy(q), rel=1e-12)
    assert len(calls) == len(points)  # the compiled calls just above


def test_native_value_and_grad_retraces_at_a_failed_guard():
    pytest.importorskip("numba")

    def model():
        mu = sample("mu", dist.Normal(0.0, 1.0))
        if mu > 0:  # a guard
            factor("half", -mu)

    fast = potential(model, backend="native")
    reference = potential(model, backend="numpy")
    for mu in (1.0, 0.5, -0.5, -1.5, 2.0):
        q = onp.array([mu])
        got, want = fast.value_and_grad(q), reference.value_and_grad(q)
        assert got[0] == want[0] and onp.array_equal(got[1], want[1])
    assert fast._energy_and_grad.trace_count == 2


def test_native_value_and_grad_counts_and_describes_a_rejection_once():
    pot = _native_eight_schools()
    pot.value_and_grad(onp.zeros(pot.dim))
    bad = onp.full(pot.dim, onp.nan)
    assert pot.value_and_grad(bad)[0] == onp.inf
    assert pot.value_and_grad(bad)[0] == onp.inf
    assert pot.rejections == {"invalid parameter or NaN": 2}
    assert "site(s)" in pot.rejection_examples["invalid parameter or NaN"]


def test_a_pickled_native_potential_leaves_its_program_behind():
    # the program holds machine-code addresses of this process
    import cloudpickle

    pot = _native_eight_schools()
    q = onp.linspace(-1.0, 1.0, pot.dim)
    want = pot.value_and_grad(q)
    pot.value_and_grad(q)
    copy = cloudpickle.loads(cloudpickle.dumps(pot))
    assert copy._native_call is None
    got = copy.value_and_grad(q)
    assert got[0] == want[0] and onp.array_equal(got[1], want[1])


def test_a_potential_on_the_numpy_replay_looks_for_a_native_program_once_per_trace(monkeypatch):
    pot = potential(models.eight_schools_noncentered, ES, backend="numpy")
    looked = []
    original = pot._native_entry
    monkeypatch.setattr(pot, "_native_entry", lambda q: looked.append(q) or original(q))
    for k in range(4):
        pot.value_and_grad(onp.full(pot.dim, 0.1 * k))
    assert len(looked) == 1 and pot._native_call is None
