"""The ELBO ascent loop of probad.infer.optimise, on potentials given directly.

Through ``pb.advi`` the loop is tested in test_advi.py; here it runs on a
Gaussian potential, where the exact answer is the potential itself.
"""
import numpy as onp
import pytest

from probad.infer.gaussian import gaussian_family
from probad.infer.optimise import BLOCK, NonFiniteELBO, finite_mean, optimise

MEAN = onp.array([1.0, -2.0, 0.5])
SD = onp.array([0.1, 3.0, 1.0])


def _gaussian_potential(q):
    r = (q - MEAN) / SD
    return 0.5 * float(r @ r), r / SD


def _run(value_and_grad, method="meanfield", steps=20_000, tol=0.05, seed=0):
    family = gaussian_family(method, len(MEAN), None)
    rng = onp.random.default_rng(seed)
    theta0 = family.initial_params(onp.zeros(len(MEAN)), 0.1, rng)
    return family, optimise(value_and_grad, family, theta0, rng=rng, steps=steps,
                            learning_rate=0.1, num_particles=1, tol=tol, clip_norm=None,
                            bar=None)


@pytest.mark.parametrize("method", ["meanfield", "fullrank"])
def test_converges_to_a_gaussian_potential(method):
    family, run = _run(_gaussian_potential, method)
    assert run.converged, run.reason
    assert run.num_steps % BLOCK == 0 and run.num_steps < 20_000
    # The target is in both families, so only Monte Carlo error is left. At the
    # stop it is below tol / 2 = 0.025, RMS over the 3 coordinates: at most
    # sqrt(3) * 0.025 = 0.043 on one coordinate, so 0.15 is at least 3.5
    # standard errors (two-sided Gaussian false-failure rate below 5e-4 per
    # coordinate, ~2e-9 when the error is spread evenly).
    z_mean = (family.loc(run.theta) - MEAN) / SD
    log_sd_ratio = onp.log(family.marginal_sd(run.theta) / SD)
    assert onp.abs(z_mean).max() < 0.15, z_mean
    assert onp.abs(log_sd_ratio).max() < 0.15, log_sd_ratio
    # The reported guide averages the last two quarters (whole blocks) of the run.
    blocks = run.num_steps // BLOCK
    assert run.averaged_from == run.num_steps - 2 * (blocks // 4) * BLOCK
    assert run.history["loc"].shape == (run.num_steps // BLOCK, len(MEAN))


def test_tol_none_runs_every_step():
    _, run = _run(_gaussian_potential, steps=350, tol=None)
    assert run.num_steps == 350 and not run.converged
    assert "tol=None" in run.reason
    assert onp.isfinite(run.elbo).all() and run.num_skipped == 0


def test_a_potential_that_is_never_finite_raises_with_the_last_draw():
    def nan_potential(q):
        return float("nan"), onp.full_like(q, onp.nan)

    with onp.errstate(all="ignore"), pytest.raises(NonFiniteELBO) as info:
        _run(nan_potential, steps=500)
    assert info.value.z.shape == (1, len(MEAN))


def test_finite_mean_ignores_nan_and_inf():
    assert finite_mean(onp.array([1.0, onp.nan, 3.0, onp.inf])) == 2.0
    assert onp.isnan(finite_mean(onp.array([onp.nan])))
