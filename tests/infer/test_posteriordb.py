"""NUTS against the eight posteriordb reference posteriors.

The rule (tests/data/posteriordb/README.md): with 4 chains of 1000 draws after
``pb.hmc``'s default warmup (nutpie's Fisher warmup, 400 iterations), every
reported scalar has |z| < 4 for its mean and its sd, R-hat < 1.01, and there
are no divergences. Stan's warmup (``adapt="stan"``, 1000 iterations, the
default before) is held to the same rule on the fast models. Seeds are fixed,
so these tests are deterministic.
"""
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as onp
import pytest

import probad as pb
from tests.posteriordb_models import (POSTERIORS, model_and_data, reference_draws,
                                      reference_summary, scalar_draws, z_scores, z_scores_exact)

FAST = {"eight_schools-eight_schools_noncentered", "sblrc-blr", "wells_data-wells_dist"}

# What a Stan user does when the sampler reports divergences, done here too.
# gp_pois_regr: the data pin f down while the non-centred f_tilde sees it
# through an ill-conditioned Cholesky factor (x spaced 2 apart, rho ~ 6), so
# the curvature varies sharply. At the default target_accept=0.8 NUTS
# diverges a few times in 4000 draws, and NumPyro's NUTS does the same at the
# same step sizes (0.021-0.035, seeds 0-2: 1-39 divergences per run); at 0.95
# the step size falls by a quarter and no divergences remain.
OPTIONS = {"gp_pois_regr-gp_pois_regr": {"target_accept": 0.95}}


def _sample(name, **options):
    model, data = model_and_data(name)
    # Chains run two at a time in worker processes (CI has two cores); the
    # draws are the same as sequential ones with this seed.
    with warnings.catch_warnings(), ProcessPoolExecutor(2) as pool:
        warnings.simplefilter("error", pb.infer.SamplingWarning)  # any diagnostic problem fails
        return pb.hmc(model, data, draws=1000, chains=4, seed=20261121, progress=False,
                      executor=pool if name not in FAST else None,
                      **OPTIONS.get(name, {}), **options)


def _check_rhat_and_divergences(idata):
    import arviz as az

    assert int(idata.sample_stats["diverging"].sum()) == 0
    rhat = az.rhat(idata.posterior)
    worst = max(float(onp.nanmax(rhat[v].values)) for v in rhat.data_vars)
    assert worst < 1.01, f"R-hat {worst:.4f}"


def _marks(name):
    return [] if name in FAST else [pytest.mark.slow]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in POSTERIORS])
def test_nuts_matches_reference(name):
    _check_against_reference(name, _sample(name))


@pytest.mark.parametrize("name", sorted(FAST))
def test_nuts_with_stan_warmup_matches_reference(name):
    _check_against_reference(name, _sample(name, adapt="stan", tune=1000))


def _check_against_reference(name, idata):
    _check_rhat_and_divergences(idata)
    ours = scalar_draws(idata, POSTERIORS[name][2])
    failures = []
    if name == "wells_data-wells_dist":
        ref = reference_summary(name)
        for key, mean in ref["mean"].items():
            zm, zs = z_scores_exact(ours[key], mean, ref["sd"][key])
            if abs(zm) >= 4 or abs(zs) >= 4:
                failures.append(f"{key}: z_mean={zm:.2f} z_sd={zs:.2f}")
    else:
        ref = reference_draws(name)
        assert set(ref) <= set(ours), f"missing {set(ref) - set(ours)}"
        for key, r in ref.items():
            zm, zs = z_scores(ours[key], r)
            if abs(zm) >= 4 or abs(zs) >= 4:
                failures.append(f"{key}: z_mean={zm:.2f} z_sd={zs:.2f}")
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("name", list(POSTERIORS))
def test_compiled_potential_matches_eager(name):
    # These models hold the suite's loops (arK, arma11's recursion, the HMM's
    # forward algorithm): replayed tapes must give the eager numbers.
    from probad.infer.density import potential

    model, data = model_and_data(name)
    eager, compiled = potential(model, data, compile=False), potential(model, data)
    for seed in range(3):  # the first call records, the others replay
        q = eager.initial_point(seed=seed)
        value, grad = compiled.value_and_grad(q)
        ref_value, ref_grad = eager.value_and_grad(q)
        assert value == pytest.approx(ref_value, rel=1e-12, abs=1e-12)
        onp.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-12 * onp.abs(ref_grad).max())
    assert compiled._energy_and_grad.trace_count == 1
