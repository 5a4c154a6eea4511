"""Prior and posterior predictive draws."""
import warnings

import arviz as az
import numpy as onp
import pytest

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.infer.predictive import predictive, prior_predictive
from tests import models

ES = models.EIGHT_SCHOOLS


def test_prior_predictive_draws_every_site_including_observed_ones():
    draws = prior_predictive(models.eight_schools_noncentered, ES, draws=400, seed=0)
    assert set(draws) == {"mu", "tau", "theta_t", "theta", "y"}
    assert draws["mu"].shape == (400,) and draws["y"].shape == (400, 8)
    assert not onp.any(onp.all(draws["y"] == ES["y"], axis=1))  # the data is not returned
    assert onp.allclose(draws["theta"], draws["mu"][:, None] + draws["tau"][:, None]
                        * draws["theta_t"])
    # theta_t ~ Normal(0, 1): the mean of 3200 draws is within 4 standard errors of 0
    assert abs(draws["theta_t"].mean()) < 4 / onp.sqrt(draws["theta_t"].size)
    same = prior_predictive(models.eight_schools_noncentered, ES, draws=400, seed=0)
    assert all(onp.array_equal(draws[k], same[k]) for k in draws)
    only = prior_predictive(models.eight_schools_noncentered, ES, draws=3, seed=0, sites=["y"])
    assert list(only) == ["y"]


def test_posterior_predictive_substitutes_latents_and_resamples_observations():
    rng = onp.random.default_rng(1)
    n = 2000
    posterior = {"mu": rng.normal(size=n), "tau": onp.exp(rng.normal(size=n)),
                 "theta_t": rng.normal(size=(n, 8))}
    out = predictive(models.eight_schools_noncentered, ES, posterior, seed=2)
    assert onp.array_equal(out["mu"], posterior["mu"])
    theta = posterior["mu"][:, None] + posterior["tau"][:, None] * posterior["theta_t"]
    assert onp.allclose(out["theta"], theta)
    # y ~ Normal(theta, sigma) given the draw: standardised residuals are N(0, 1)
    z = (out["y"] - theta) / ES["sigma"]
    assert abs(z.mean()) < 4 / onp.sqrt(z.size)
    assert abs(z.std() - 1.0) < 4 * onp.sqrt(0.5 / z.size)
    again = predictive(models.eight_schools_noncentered, ES, posterior, seed=2)
    assert onp.array_equal(out["y"], again["y"])
    assert list(predictive(models.eight_schools_noncentered, ES, posterior, sites=["y"],
                           seed=0)) == ["y"]


def test_posterior_predictive_with_new_covariates():
    data = models.regression_data()
    n_draws = 5
    posterior = {"alpha": onp.zeros(n_draws), "beta": onp.ones((n_draws, 3)),
                 "sigma": onp.full(n_draws, 1e-8)}
    X_new = onp.eye(3)
    out = predictive(models.linear_regression, {"X": X_new}, posterior, seed=0)
    assert out["y"].shape == (n_draws, 3)
    assert onp.allclose(out["y"], 1.0, atol=1e-6)
    assert data["X"].shape[1] == 3


def test_posterior_as_inference_data_keeps_chain_and_draw_axes():
    rng = onp.random.default_rng(3)
    chains, draws = 2, 5
    posterior = {"mu": rng.normal(size=(chains, draws)),
                 "tau": onp.exp(rng.normal(size=(chains, draws))),
                 "theta_t": rng.normal(size=(chains, draws, 8))}
    idata = az.from_dict(posterior=posterior)
    out = predictive(models.eight_schools_noncentered, ES, posterior=idata, seed=4)
    assert out["y"].shape == (chains, draws, 8) and out["mu"].shape == (chains, draws)
    assert onp.array_equal(out["theta_t"], posterior["theta_t"])
    # The same draws flattened chain by chain give the same predictions.
    flat = {name: v.reshape((chains * draws,) + v.shape[2:]) for name, v in posterior.items()}
    same = predictive(models.eight_schools_noncentered, ES, flat, seed=4)
    assert onp.array_equal(out["y"].reshape(same["y"].shape), same["y"])
    # The posterior group alone (a Dataset, itself a Mapping) is read the same way.
    grouped = predictive(models.eight_schools_noncentered, ES, idata.posterior, seed=4)
    assert onp.array_equal(grouped["y"], out["y"])
    # Ready for the posterior_predictive group.
    idata.extend(az.from_dict(posterior_predictive={"y": out["y"]}))
    assert idata.posterior_predictive["y"].shape == (chains, draws, 8)


def test_bad_posteriors():
    with pytest.raises(ValueError, match="differ in number between sites.*same number of draws"):
        predictive(models.eight_schools_noncentered, ES,
                   {"mu": onp.zeros(3), "tau": onp.ones(4)})
    with pytest.raises(ValueError, match="posterior is empty"):
        predictive(models.eight_schools_noncentered, ES, posterior={})
    with pytest.raises(TypeError, match="an arviz.InferenceData or a dict of draws, got ndarray"):
        predictive(models.eight_schools_noncentered, ES, posterior=onp.zeros(3))
    with pytest.raises(ValueError, match="has no posterior group \\(only prior\\)"):
        predictive(models.eight_schools_noncentered, ES,
                   posterior=az.from_dict(prior={"mu": onp.zeros((1, 3))}))
    with pytest.raises(ValueError, match="draws must be >= 1"):
        prior_predictive(models.eight_schools_noncentered, ES, draws=0)


def test_unknown_site_names_are_an_error():
    posterior = {"mu": onp.zeros(2), "tau": onp.ones(2), "theta_t": onp.zeros((2, 8))}
    with pytest.raises(ValueError, match=r"sites: 'yy' not a sample or deterministic site of the "
                                         r"model; its sites are 'mu', 'tau', 'theta_t', 'theta', "
                                         r"'y'"):
        predictive(models.eight_schools_noncentered, ES, posterior, sites=["yy"])
    with pytest.raises(ValueError, match="sites: 'yy'"):
        prior_predictive(models.eight_schools_noncentered, ES, draws=2, sites=["y", "yy"])


def test_a_latent_site_missing_from_the_posterior_is_named():
    # tau left out: it would be drawn from its prior given nothing, silently.
    posterior = {"mu": onp.zeros(3), "theta_t": onp.zeros((3, 8))}
    with pytest.warns(UserWarning, match=r"site\(s\) 'tau' have no draws in the posterior"):
        out = predictive(models.eight_schools_noncentered, ES, posterior, seed=0)
    assert out["tau"].shape == (3,)


def test_prediction_sites_without_draws_are_not_warned_of():
    import warnings

    rng = onp.random.default_rng(0)
    posterior = {"mu": rng.normal(size=4), "tau": onp.ones(4), "theta_t": rng.normal(size=(4, 8))}
    without_y = {k: v for k, v in ES.items() if k != "y"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # y given (redrawn), and y written obs=y with y None (a prediction)
        predictive(models.eight_schools_noncentered, ES, posterior, seed=0)
        predictive(models.eight_schools_noncentered, without_y, posterior, seed=0)


def _log_of_zero():
    mu = pb.sample("mu", dist.Normal(0.0, 1.0))
    pb.deterministic("d", np.log(mu - mu))


def test_a_floating_point_warning_in_the_model_points_at_the_model():
    """Not at probad's tracer, where numpy's own warning pointed."""
    for run in (lambda: prior_predictive(_log_of_zero, draws=2),
                lambda: predictive(_log_of_zero, None, {"mu": onp.zeros(2)})):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            run()
        found = [(w.filename, str(w.message)) for w in record if w.category is RuntimeWarning]
        assert found and set(found) == {(__file__, "divide by zero encountered in log")}
