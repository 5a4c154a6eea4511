"""MAP and the Laplace approximation (probad.infer.laplace)."""
import sys

import arviz  # noqa: F401  (slow first import: paid at collection, not inside a test)
import numpy as onp
import pytest

import probad as pb
from probad import constraints
from probad import distributions as dist
from probad.infer.laplace import LaplaceFit, MAPResult, laplace
from probad.infer.laplace import map as find_map
from tests import models
from tests.posteriordb_models import model_and_data, reference_summary

def test_potential_hessian_matches_analytic():
    # Latent a ~ N(0, 1) and log-normal b: U(q) = 0.5 a^2 + 0.5 q_b^2 with
    # b = exp(q_b) and LogNormal(0, 1)'s Jacobian cancelling, so H = I.
    def model():
        pb.sample("a", dist.Normal(0.0, 1.0))
        pb.sample("b", dist.LogNormal(0.0, 1.0))

    pot = pb.potential(model)
    q = onp.array([0.3, -1.2])
    onp.testing.assert_allclose(pot.hessian(q), onp.eye(2), atol=1e-12)


def test_laplace_is_exact_for_a_gaussian_posterior():
    mean, cov, _ = models.conjugate_linreg_posterior()
    fit = laplace(models.conjugate_linreg, models.LINREG)
    assert isinstance(fit, LaplaceFit)
    # Stan's optimizer tolerances find the mode to ~2e-8 from any start
    # (scipy's defaults stopped ~3e-6 away in one start of 40).
    onp.testing.assert_allclose(fit.loc, mean, rtol=1e-7)
    onp.testing.assert_allclose(fit.cov, cov, rtol=1e-5)
    assert fit.mean["a"] == pytest.approx(mean[0], rel=1e-7)
    assert fit.std["b"] == pytest.approx(onp.sqrt(cov[1, 1]), rel=1e-5)
    onp.testing.assert_allclose(fit.marginal_sd, onp.sqrt(onp.diag(cov)), rtol=1e-5)


def test_wells_laplace_matches_quadrature():
    """Logistic regression on raw distances: N = 3020 makes the posterior
    close to Gaussian; the approximation's means are within 0.05 sd and its
    sds within 10% of the exact (quadrature) values."""
    model, data = model_and_data("wells_data-wells_dist")
    ref = reference_summary("wells_data-wells_dist")
    ref_mean = onp.array([ref["mean"]["beta[1]"], ref["mean"]["beta[2]"]])
    ref_sd = onp.array([ref["sd"]["beta[1]"], ref["sd"]["beta[2]"]])
    fit = laplace(model, data)
    assert onp.all(onp.abs(fit.mean["beta"] - ref_mean) / ref_sd < 0.05)
    assert onp.all(onp.abs(fit.std["beta"] / ref_sd - 1) < 0.10)


# A Gamma posterior for a precision: prior Gamma(2, 1), y_i ~ N(0, 1/sqrt(tau)).
Y_PREC = onp.random.default_rng(5).normal(0.0, 0.5, 12)


def precision_model(y):
    tau = pb.sample("tau", dist.Gamma(2.0, 1.0))
    pb.deterministic("sigma", 1.0 / pb.ad.numpy.sqrt(tau))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(0.0, 1.0 / pb.ad.numpy.sqrt(tau)), obs=y)


def test_map_with_and_without_jacobian():
    shape, rate = 2.0 + len(Y_PREC) / 2, 1.0 + (Y_PREC**2).sum() / 2
    mode = find_map(precision_model, {"y": Y_PREC})
    assert isinstance(mode, MAPResult) and mode.success
    # Mode of Gamma(shape, rate) over tau; over log tau (Jacobian tau) it is shape/rate.
    assert mode["tau"] == pytest.approx((shape - 1) / rate, rel=1e-5)
    assert mode["sigma"] == pytest.approx(mode["tau"] ** -0.5)
    assert set(mode) == {"tau", "sigma"}
    onp.testing.assert_allclose(mode.q, onp.log(mode["tau"]))
    assert mode.potential.dim == 1
    over_q = find_map(precision_model, {"y": Y_PREC}, jacobian=True)
    assert over_q["tau"] == pytest.approx(shape / rate, rel=1e-5)


def test_map_of_a_scaled_model():
    # Scaling the model squares its density: the constrained mode stays put;
    # over q the scaled Jacobian tau^2 moves it exactly where it is unscaled.
    shape, rate = 2.0 + len(Y_PREC) / 2, 1.0 + (Y_PREC**2).sum() / 2
    scaled = pb.handlers.scale(precision_model, scale=2.0)
    assert find_map(scaled, {"y": Y_PREC})["tau"] == pytest.approx((shape - 1) / rate, rel=1e-5)
    over_q = find_map(scaled, {"y": Y_PREC}, jacobian=True)
    assert over_q["tau"] == pytest.approx(shape / rate, rel=1e-5)


def test_map_runs_on_probad_optimize_with_its_options(monkeypatch):
    import probad.optimize

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return probad.optimize.minimize(*args, **kwargs)

    # The module, not the function pb.infer.laplace that shadows its name.
    monkeypatch.setattr(sys.modules["probad.infer.laplace"], "minimize", spy)
    with pytest.warns(UserWarning, match="did not report convergence"):
        short = find_map(precision_model, {"y": Y_PREC}, options={"maxiter": 1})
    assert short.num_iterations == 1 and not short.success
    assert calls[-1] == {"args": (False,), "method": "L-BFGS-B", "compile": True, "maxiter": 1,
                         "ftol": 1e4 * onp.finfo(float).eps, "gtol": 1e-8}  # Stan's tolerances
    compiled = find_map(precision_model, {"y": Y_PREC}, method="Newton-CG", seed=0)
    eager = find_map(precision_model, {"y": Y_PREC}, method="Newton-CG", seed=0, compile=False)
    assert calls[-1]["compile"] is False
    onp.testing.assert_allclose(eager.q, compiled.q, rtol=1e-12)
    assert compiled["tau"] == pytest.approx((1.0 + len(Y_PREC) / 2) / (1.0 + (Y_PREC**2).sum() / 2),
                                            rel=1e-6)


def gamma_kernel():
    # The log density of Gamma(3, 1) up to a constant, written so that it is
    # NaN for x <= 0: optimiser steps can land there.
    x = pb.sample("x", dist.ImproperUniform(constraints.real, (), ()))
    pb.factor("kernel", 2.0 * pb.ad.numpy.log(x) - x)


@pytest.mark.parametrize("fit", [find_map, laplace])
def test_no_convergence_is_a_warning_at_the_callers_line(fit):
    with pytest.warns(UserWarning, match=f"{fit.__name__}: the optimiser did not report") as record:
        fit(precision_model, {"y": Y_PREC}, options={"maxiter": 1})
    assert record[0].filename == __file__


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS"])
@pytest.mark.parametrize("start", [30.0, 10.0])
def test_map_steps_back_from_undefined_points(method, start):
    # L-BFGS-B used to be told +inf there, stopped at x = 9 (from 30) or
    # x = 5 (from 10), and reported success.
    mode = find_map(gamma_kernel, init={"x": start}, method=method)
    assert mode.success
    assert mode["x"] == pytest.approx(2.0, abs=1e-4)


def test_laplace_sample_and_transformed_summaries():
    fit = laplace(precision_model, {"y": Y_PREC}, seed=0)
    idata = fit.sample(400, seed=1)
    assert idata.posterior["tau"].shape == (1, 400)
    assert float(idata.posterior["tau"].min()) > 0
    assert idata.log_likelihood["y"].shape == (1, 400, len(Y_PREC))
    # log tau ~ N(q*, 1/H): tau is log-normal, with known moments.
    s2 = fit.cov[0, 0]
    mean = onp.exp(fit.loc[0] + s2 / 2)
    sd = mean * onp.sqrt(onp.expm1(s2))
    # 2000 summary draws: errors of sd/45 for the mean, ~2% for the sd.
    assert abs(fit.mean["tau"] - mean) < 4 * sd / 45
    assert fit.std["tau"] == pytest.approx(sd, rel=0.08)
    assert "sigma" in fit.mean


def test_non_positive_definite_hessian_names_the_sites():
    with pytest.raises(ValueError, match="not positive definite") as info:
        laplace(models.ridge, {"y": onp.array([0.3, 0.5])})
    direction = [line for line in str(info.value).splitlines() if "along a direction" in line]
    assert len(direction) == 1
    assert "a (50%)" in direction[0] and "b (50%)" in direction[0] and "c (" not in direction[0]


@pytest.mark.parametrize("fit", [find_map, laplace], ids=["map", "laplace"])
def test_a_model_without_latent_sites_is_said_plainly(fit):
    def fixed(y):
        pb.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"pb\.(map|laplace): the model has no latent sites "
                                         r"\(every sample site is observed; observed sites: 'y'\)"):
        fit(fixed, {"y": onp.ones(3)})


@pytest.mark.parametrize("fit", [find_map, laplace], ids=["map", "laplace"])
def test_an_init_for_a_site_the_model_lacks_is_an_error(fit):
    with pytest.raises(ValueError, match=r"init names 'aa', not a latent site of the model; its "
                                         r"latent sites are 'a', 'b'"):
        fit(models.conjugate_linreg, models.LINREG, init={"aa": 0.0})
