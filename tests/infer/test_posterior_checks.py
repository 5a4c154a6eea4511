"""Tests of the posterior checks themselves (``tests/posterior_checks.py``).

A check that cannot fail is worse than none: the sampler is broken on purpose
here and the posteriordb rule must catch it. The rule's own statistics are
checked for calibration, and the repeat rule for its logic.
"""
import warnings

import numpy as onp
import pytest

import probad as pb
import probad.infer.kernels as kernels
from tests.posterior_checks import SEEDS, assert_passes_on_repeat, reference_failures, z_scores
from tests.posteriordb_models import POSTERIORS, model_and_data, reference_draws, scalar_draws

SCHOOLS = "eight_schools-eight_schools_noncentered"


def _ar1(rng, phi, shape):
    """AR(1) chains with unit marginal variance, started in stationarity."""
    x = onp.empty(shape)
    x[..., 0] = rng.standard_normal(shape[:-1])
    noise = rng.standard_normal(shape) * onp.sqrt(1 - phi**2)
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + noise[..., t]
    return x


@pytest.mark.parametrize("phi", [-0.5, 0.0, 0.5])
def test_z_scores_are_standard_normal_for_correlated_draws(phi):
    # Antithetic draws (phi < 0, as NUTS often gives) have an ESS above the
    # number of draws, while their squared deviations do not: the sd's error
    # must come from the ESS of the squares. The old rule (the ESS of x)
    # makes the sd's z about 1.6 times too wide at phi = -0.5.
    rng = onp.random.default_rng(1)
    z = onp.array([z_scores(_ar1(rng, phi, (4, 1000)), rng.standard_normal((10, 1000)))
                   for _ in range(200)])
    # 200 replicates estimate each sd to about 5% (relative), so the band
    # [0.8, 1.25] is about 4 of those standard errors wide on each side.
    spread = z.std(axis=0)
    assert onp.all((0.8 < spread) & (spread < 1.25)), spread


def test_repeat_rule_fails_only_on_a_check_that_fails_on_every_seed():
    runs = []

    def flaky(seed):  # a different check fails each time: a correct sampler's luck
        runs.append(seed)
        return {f"check {len(runs)}": "x"}

    assert_passes_on_repeat(flaky)
    assert runs == list(SEEDS[:2])

    runs.clear()

    def persistent(seed):
        runs.append(seed)
        return {"z of the mean of mu": "9.0", f"R-hat run {len(runs)}": "1.02"}

    with pytest.raises(AssertionError, match="z of the mean of mu"):
        assert_passes_on_repeat(persistent)
    assert runs == list(SEEDS)


def _schools_failures(seed):
    model, data = model_and_data(SCHOOLS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # One process, and the Python kernel: the sampler is broken by
        # monkeypatching kernels.py here, which neither a worker process nor
        # the compiled kernel would see. Trees of at most 2**6 - 1 steps: a
        # broken integrator never turns, and 1023 Python leapfrog steps per
        # draw would take an hour to be caught.
        idata = pb.hmc(model, data, seed=seed, progress=False, cores=1, kernel_backend="python",
                       max_tree_depth=6)
    return reference_failures(idata, scalar_draws(idata, POSTERIORS[SCHOOLS][2]),
                              reference_draws(SCHOOLS))


def _momentum_too_wide(make_metric):
    # Momenta refreshed from N(0, 1.5^2 M) while the kinetic energy assumes
    # N(0, M): the chain no longer leaves the posterior invariant.
    def broken(inverse_metric):
        metric = make_metric(inverse_metric)
        return metric._replace(sample_momentum=lambda rng: 1.5 * metric.sample_momentum(rng))
    return broken


def _leapfrog_wrong_sign(leapfrog):
    # The position moves against the velocity: no longer Hamiltonian dynamics.
    def broken(state, step_size, metric, potential_fn):
        flipped = metric._replace(velocity=lambda p: -metric.velocity(p))
        return leapfrog(state, step_size, flipped, potential_fn)
    return broken


@pytest.mark.slow
@pytest.mark.parametrize("name, break_", [("make_metric", _momentum_too_wide),
                                          ("leapfrog", _leapfrog_wrong_sign)])
def test_a_broken_sampler_fails_the_posteriordb_rule(monkeypatch, name, break_):
    monkeypatch.setattr(kernels, name, break_(getattr(kernels, name)))
    with pytest.raises(AssertionError, match="checks failed on all"):
        assert_passes_on_repeat(_schools_failures)
