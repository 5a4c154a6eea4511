"""Packaging draws: one run of the model per draw gives its constrained values
and pointwise log-likelihoods; compiled, that run is a replay whose results
are the eager ones, with no warning."""
import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad import distributions as dist
from probad import handlers
from probad.ad.compiler import CompileWarning
from probad.infer.density import potential
from probad.infer.results import constrained_draws, draws_to_inference_data
from probad.primitives import deterministic, plate, sample
from tests import models

COUNTS = onp.array([0, 3, 1, 7, 2, 0])
OBSERVED = onp.array([True, True, False, True, False, True])


def masked_and_scaled(y, counts, observed):
    """A masked, scaled continuous likelihood and a discrete (Poisson) one."""
    loc = sample("loc", dist.Normal(0.0, 1.0))
    scale = sample("scale", dist.HalfNormal(1.0))
    with plate("obs", len(y)):
        with handlers.scale(scale=2.5), handlers.mask(mask=observed):
            sample("y", dist.Normal(loc, scale), obs=y)
        rate = deterministic("rate", np.exp(loc + 0.1 * y))
        sample("counts", dist.Poisson(rate).mask(observed), obs=counts)


def branch_on_latent(y):
    """A deterministic site computed in one of two Python branches taken on a
    latent value: compiled, each branch is a tape guarded by ``x > 0``."""
    x = sample("x", dist.Normal(0.0, 1.0))
    if x > 0:
        d = deterministic("d", np.sqrt(x))
    else:
        d = deterministic("d", -2.0 * x)
    with plate("obs", len(y)):
        sample("y", dist.Normal(d, 1.0), obs=y)


def sometimes_deterministic(y):
    """A deterministic site that only some draws have."""
    x = sample("x", dist.Normal(0.0, 1.0))
    if x > 0:
        deterministic("root", np.sqrt(x))
    sample("y", dist.Normal(x, 1.0), obs=y)


MODELS = {
    "eight_schools_centered": (models.eight_schools_centered, models.EIGHT_SCHOOLS),
    "eight_schools_noncentered": (models.eight_schools_noncentered, models.EIGHT_SCHOOLS),
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
    "masked_and_scaled": (masked_and_scaled, {"y": onp.linspace(-1.0, 2.0, 6),
                                              "counts": COUNTS, "observed": OBSERVED}),
    "branch_on_latent": (branch_on_latent, {"y": onp.array([0.3, 1.1, -0.4])}),
}


def q_draws(pot, chains, draws, seed):
    """Unconstrained draws spread over both signs of every coordinate."""
    return onp.random.default_rng(seed).normal(scale=0.8, size=(chains, draws, pot.dim))


def assert_identical(got: dict, want: dict):
    """Same names in the same order, same dtypes and shapes, the same bits
    (the numpy replay promises bit-for-bit results; the native backend's
    1e-12 agreement is tested in tests/ad/compiler/test_native.py)."""
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        onp.testing.assert_array_equal(got[name], want[name], err_msg=name, strict=True)


@pytest.mark.parametrize("name", MODELS)
def test_compiled_draw_outputs_are_the_eager_ones(name):
    model, data = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = potential(model, data, backend="numpy")
        eager = potential(model, data, compile=False)
        for q in q_draws(eager, 1, 6, seed=0)[0]:
            values, loglik = compiled.constrain_and_log_likelihood(q)
            eager_values, eager_loglik = eager.constrain_and_log_likelihood(q)
            assert_identical(values, eager_values)
            assert_identical(loglik, eager_loglik)
            assert_identical(compiled.constrain(q), eager_values)
            assert_identical(compiled.log_likelihood(q), eager_loglik)
    # Really replayed: recorded tapes, nothing sent to the eager path.
    assert compiled._outputs.tapes and not compiled._outputs.eager_keys


def test_a_branch_on_a_latent_value_is_traced_once_per_branch():
    model, data = MODELS["branch_on_latent"]
    pot = potential(model, data)
    q = onp.array([[[0.7], [-0.2], [1.5], [-1.1], [0.0], [2.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        posterior, loglik = constrained_draws(pot, q)
    x = q[0, :, 0]
    onp.testing.assert_array_equal(posterior["d"][0],
                                   onp.where(x > 0, onp.sqrt(onp.abs(x)), -2.0 * x))
    onp.testing.assert_allclose(
        loglik["y"][0], dist.Normal(posterior["d"][0][:, None], 1.0).log_prob(data["y"]),
        rtol=1e-12)
    (tapes,) = pot._outputs.tapes.values()
    assert len(tapes) == 2 and pot._outputs.trace_count == 2


@pytest.mark.parametrize("compile", [True, False])
def test_constrained_draws_shapes_and_values(compile):
    model, data = MODELS["masked_and_scaled"]
    pot = potential(model, data, compile=compile, backend="numpy")
    eager = potential(model, data, compile=False)
    q = q_draws(pot, 3, 4, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        posterior, loglik = constrained_draws(pot, q)
        only_posterior, none = constrained_draws(pot, q, log_likelihood=False)
    assert none == {}
    assert {k: v.shape for k, v in posterior.items()} == {
        "loc": (3, 4), "scale": (3, 4), "rate": (3, 4, 6)}
    assert {k: v.shape for k, v in loglik.items()} == {"y": (3, 4, 6), "counts": (3, 4, 6)}
    for c in range(3):
        for d in range(4):
            values, pointwise = eager.constrain_and_log_likelihood(q[c, d])
            assert_identical({k: v[c, d] for k, v in posterior.items()}, values)
            assert_identical({k: v[c, d] for k, v in only_posterior.items()}, values)
            assert_identical({k: v[c, d] for k, v in loglik.items()}, pointwise)
    # Pointwise, neither scaled nor masked by the handlers.
    expected = dist.Normal(posterior["loc"][..., None], posterior["scale"][..., None])
    onp.testing.assert_allclose(loglik["y"], expected.log_prob(data["y"]), rtol=1e-12)


@pytest.mark.parametrize("compile", [True, False])
def test_a_deterministic_missing_from_some_draws_is_nan_there(compile):
    pot = potential(sometimes_deterministic, {"y": 0.5}, compile=compile)
    q = onp.array([-1.0, 0.25, -0.3, 4.0, -2.0]).reshape(1, 5, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        posterior, _ = constrained_draws(pot, q)
    onp.testing.assert_array_equal(posterior["root"], [[onp.nan, 0.5, onp.nan, 2.0, onp.nan]])
    onp.testing.assert_array_equal(posterior["x"], q[..., 0])


def test_inference_data_from_compiled_and_eager_potentials_agree():
    model, data = MODELS["eight_schools_noncentered"]
    compiled, eager = potential(model, data, backend="numpy"), potential(model, data, compile=False)
    q, warmup = q_draws(eager, 2, 5, seed=2), q_draws(eager, 2, 3, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idata = draws_to_inference_data(compiled, q, warmup_q=warmup)
        expected = draws_to_inference_data(eager, q, warmup_q=warmup)
    for group in ("posterior", "log_likelihood", "warmup_posterior"):
        assert idata[group].equals(expected[group]), group  # attrs hold a timestamp
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")


def test_a_model_that_cannot_be_replayed_runs_eagerly_with_one_warning():
    def noisy(y):
        loc = sample("loc", dist.Normal(0.0, 1.0))
        # A random number drawn outside pb.sample: a replay would repeat it.
        deterministic("jittered", loc + 0.01 * np.random.normal())
        sample("y", dist.Normal(loc, 1.0), obs=y)

    pot = potential(noisy, {"y": 0.3})
    q = q_draws(pot, 2, 5, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        posterior, loglik = constrained_draws(pot, q)
    assert [w.category for w in caught] == [CompileWarning]
    assert "random numbers" in str(caught[0].message)
    onp.testing.assert_array_equal(posterior["loc"], q[..., 0])
    onp.testing.assert_allclose(loglik["y"], dist.Normal(q[..., 0], 1.0).log_prob(0.3),
                                rtol=1e-12)


def test_a_new_path_at_every_draw_falls_back_with_one_warning():
    def rounded(y):
        x = sample("x", dist.Normal(0.0, 1.0))
        # float() of a latent value: a guard that fails on every new draw.
        deterministic("x_rounded", round(float(x), 3))
        sample("y", dist.Normal(x, 1.0), obs=y)

    pot = potential(rounded, {"y": 0.3})
    q = q_draws(pot, 1, 12, seed=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        posterior, _ = constrained_draws(pot, q)
    assert [w.category for w in caught] == [CompileWarning]
    assert "max_tapes" in str(caught[0].message)
    onp.testing.assert_array_equal(posterior["x_rounded"], onp.round(q[..., 0], 3))


@pytest.mark.parametrize("compile", [True, False])
def test_results_are_the_callers_to_change(compile):
    data = {"ones": onp.ones(2), "y": 0.3}

    def constant_outputs(ones, y):
        sample("x", dist.Normal(0.0, 1.0))
        deterministic("ones", ones)  # the data itself
        sample("y", dist.Normal(0.0, 1.0), obs=y)  # a log-likelihood free of q

    pot = potential(constant_outputs, data, compile=compile)
    q = onp.zeros(1)
    values, loglik = pot.constrain_and_log_likelihood(q)
    values["ones"] += 1.0
    loglik["y"] += 1.0
    values, loglik = pot.constrain_and_log_likelihood(q)
    onp.testing.assert_array_equal(values["ones"], [1.0, 1.0])
    onp.testing.assert_array_equal(data["ones"], [1.0, 1.0])
    assert loglik["y"] == pytest.approx(float(dist.Normal(0.0, 1.0).log_prob(0.3)), rel=1e-15)
