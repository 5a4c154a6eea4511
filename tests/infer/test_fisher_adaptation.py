"""nutpie's (Fisher divergence) warmup: schedule, estimates, their wiring, and sampling with them."""

import math

import numpy as np
import pytest

from probad.infer import kernels
from probad.infer.chain import run_chain
from probad.infer.fisher_adaptation import (
    VARIANCE_LIMITS,
    clipped_variance,
    fisher_adaptation,
    fisher_dense,
    fisher_low_rank,
    fisher_schedule,
    initial_variance,
    spd_geometric_mean,
)
from probad.infer.fisher_moments import diagonal_estimate
from tests.infer.test_kernels import assert_metric_is


def fisher_diagonal(draws, grads, previous):
    """The diagonal estimate from all of an estimator's rows at once (numpy's
    two-pass variances), against which the warmup's running moments are checked."""
    return diagonal_estimate(np.var(draws, axis=0), np.var(grads, axis=0),
                             np.asarray(previous, dtype=np.float64), *VARIANCE_LIMITS)


def gaussian(cov):
    """Potential of N(0, cov) and its gradient, with the covariance's draws."""
    precision = np.linalg.inv(cov)

    def potential(q):
        grad = precision @ q
        return 0.5 * q.dot(grad), grad

    return potential, precision


def correlated_cov(dim, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + np.diag(np.logspace(-1, 1, dim))


# ---------------------------------------------------------------- schedule


def test_schedule_for_nutpie_default_warmup():
    # Early phase: 30% of 300 = 90 iterations, windows of 10 draws (the starting point
    # counts as the first, so the first window ends after iteration 8). Main phase: a
    # window of 80 would end at 168, but the next (120) would not fit before the final
    # 15% (45 iterations, from 255): no switch there, the foreground grows to the end.
    schedule = fisher_schedule(300)
    assert schedule.early_end == 90
    assert schedule.final_start == 255
    assert schedule.switches == (8, 18, 28, 38, 48, 58, 68, 78, 88)


def test_schedule_windows_grow_by_half():
    # 1000: early switches every 10 to 298; main windows 80 (-> 378), 120 (-> 498); a
    # 180 window would end at 678, but the 270 after it would pass 850: no more switches.
    schedule = fisher_schedule(1000)
    assert schedule.switches == tuple(range(8, 300, 10)) + (378, 498)
    assert (schedule.early_end, schedule.final_start) == (300, 850)


@pytest.mark.parametrize("num_warmup", [0, 1, 10, 20])
def test_short_warmup_has_no_windows(num_warmup):
    schedule = fisher_schedule(num_warmup)
    assert schedule.switches == ()
    assert schedule.final_start == num_warmup - int(0.15 * num_warmup)


# ---------------------------------------------------------------- estimates


def test_initial_variance_is_inverse_gradient_clipped():
    np.testing.assert_array_equal(
        initial_variance(np.array([2.0, -0.5, 0.0, 1e30])), [0.5, 2.0, 1e20, 1e-20]
    )


def test_diagonal_estimate_is_exact_for_a_gaussian():
    # grad = x / s^2, so Var(grad) = Var(x) / s^4 for any set of draws: the estimate is s^2.
    rng = np.random.default_rng(1)
    scales = np.array([1e-3, 0.1, 1.0, 30.0])
    draws = rng.standard_normal((7, 4)) * scales
    np.testing.assert_allclose(fisher_diagonal(draws, draws / scales**2, np.ones(4)), scales**2,
                               rtol=1e-12)


def test_diagonal_estimate_keeps_previous_value_where_undefined():
    draws = np.array([[1.0, 2.0, 0.0], [1.0, 3.0, 1.0], [1.0, 5.0, 2.0]])
    grads = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 1.0, 2.0]])
    # Column 0 never moved (ratio 0), column 1 has a constant gradient (ratio inf).
    np.testing.assert_allclose(fisher_diagonal(draws, grads, np.array([7.0, 8.0, 9.0])),
                               [7.0, 8.0, 1.0])


def test_clipped_variance_clips_and_keeps_previous_where_undefined():
    variance = np.array([1e-30, 0.0, np.inf, np.nan, 2.0, 1e30])
    np.testing.assert_array_equal(clipped_variance(variance, np.full(6, 7.0)),
                                  [1e-20, 7.0, 7.0, 7.0, 2.0, 1e20])


def test_variance_main_estimate_is_diagonal_only():
    with pytest.raises(ValueError, match="diagonal"):
        fisher_adaptation(100, kind="dense", main_estimate="variance")
    with pytest.raises(ValueError, match="main_estimate must be one of"):
        fisher_adaptation(100, main_estimate="stan")


def test_geometric_mean_solves_the_riccati_equation():
    rng = np.random.default_rng(2)
    a, b = (m @ m.T + 0.1 * np.eye(4) for m in rng.standard_normal((2, 4, 4)))
    c = spd_geometric_mean(a, b)
    np.testing.assert_allclose(c @ b @ c, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c, c.T)
    assert np.all(np.linalg.eigvalsh(c) > 0)
    np.testing.assert_allclose(spd_geometric_mean(np.diag([4.0, 1.0]), np.diag([1.0, 4.0])),
                               np.diag([2.0, 0.5]), rtol=1e-12)


def test_dense_estimate_is_exact_for_a_correlated_gaussian():
    # grad = P x gives Cov(grad) = P Cov(x) P: C = P^-1 solves C Cov(grad) C = Cov(x)
    # whatever the draws, up to the regularisation (relative 1e-5 / n per direction).
    cov = correlated_cov(5)
    _, precision = gaussian(cov)
    rng = np.random.default_rng(3)
    draws = rng.multivariate_normal(np.zeros(5), cov, size=50)
    grads = draws @ precision
    variance = fisher_diagonal(draws, grads, np.ones(5))
    np.testing.assert_allclose(fisher_dense(draws, grads, variance), cov, rtol=1e-4, atol=1e-6)


def test_low_rank_estimate_is_the_filtered_dense_one():
    # With more draws than dimensions the span is everything, so the low-rank estimate is
    # the dense one with eigenvalues in (1/2, 2) (in rescaled coordinates) set to 1.
    cov = correlated_cov(6, seed=4)
    _, precision = gaussian(cov)
    rng = np.random.default_rng(5)
    draws = rng.multivariate_normal(np.zeros(6), cov, size=40)
    grads = draws @ precision
    variance = fisher_diagonal(draws, grads, np.ones(6))
    scale = np.sqrt(variance)
    values, vectors = np.linalg.eigh(fisher_dense(draws, grads, variance) / np.outer(scale, scale))
    keep = (values > 2.0) | (values < 0.5)
    assert 0 < keep.sum() < 6  # the test exercises both kept and dropped directions
    expected = np.outer(scale, scale) * (np.eye(6) + (vectors[:, keep] * (values[keep] - 1)) @
                                         vectors[:, keep].T)
    low_rank = fisher_low_rank(draws, grads, variance)
    assert low_rank.values.shape == (keep.sum(),)
    np.testing.assert_allclose(low_rank.dense(), expected, rtol=1e-7, atol=1e-10)


def test_low_rank_directions_lie_in_the_span_of_few_draws():
    rng = np.random.default_rng(6)
    dim, n = 30, 5
    draws = rng.standard_normal((n, dim)) * np.linspace(0.5, 3.0, dim)
    grads = rng.standard_normal((n, dim))
    low_rank = fisher_low_rank(draws, grads, np.ones(dim))
    u = low_rank.vectors
    assert u.shape[1] <= 2 * n
    np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-10)
    span, _ = np.linalg.qr(np.vstack([draws - draws.mean(0), grads - grads.mean(0)]).T)
    np.testing.assert_allclose(span @ (span.T @ u), u, atol=1e-8)


# ---------------------------------------------------------------- low-rank metric in the kernels


def test_low_rank_metric_momentum_distribution_and_velocity():
    rng = np.random.default_rng(7)
    u, _ = np.linalg.qr(rng.standard_normal((4, 2)))
    inverse = kernels.LowRankInverseMetric(np.array([0.5, 1.0, 2.0, 3.0]), u, np.array([9.0, 0.2]))
    assert_metric_is(kernels.make_metric(inverse), inverse.dense(), rng)


@pytest.mark.parametrize(
    "scale, vectors, values",
    [([1.0, -1.0], np.zeros((2, 0)), []), ([1.0, 1.0], [[1.0], [0.0]], [0.0]),
     ([1.0, 1.0], [[2.0], [0.0]], [3.0]), ([1.0, np.nan], np.zeros((2, 0)), [])],
    ids=["negative-scale", "zero-value", "not-orthonormal", "nan"],
)
def test_make_metric_rejects_invalid_low_rank(scale, vectors, values):
    with pytest.raises(ValueError, match="low-rank inverse metric"):
        kernels.make_metric(kernels.LowRankInverseMetric(np.array(scale), np.array(vectors),
                                                        np.array(values)))


# ---------------------------------------------------------------- wiring


@pytest.mark.parametrize("main_estimate", ["fisher", "variance"])
def test_fisher_adaptation_bookkeeping(main_estimate):
    # Drive update() with synthetic draws, some repeated (the sampler stayed put), and
    # check the metric against the estimate over exactly the foreground's draws: the
    # Fisher one throughout, or from the main phase (iteration 30) on the draws' variance.
    num_warmup = 100  # switches after 8, 18, 28; early phase to 30; metric frozen from 85
    scales = np.array([0.5, 3.0])
    potential, _ = gaussian(np.diag(scales**2))
    rng = np.random.default_rng(8)
    positions = rng.normal(0.0, scales, size=(num_warmup, 2))
    stay = rng.uniform(size=num_warmup) < 0.2
    accept = rng.uniform(0.5, 1.0, num_warmup)
    adaptation = fisher_adaptation(num_warmup, main_estimate=main_estimate)
    assert adaptation.schedule.switches == (8, 18, 28)
    assert adaptation.schedule.early_end == 30
    state = kernels.init(np.array([1.0, -2.0]), potential)
    adapt_state = adaptation.init(rng, state, potential)
    np.testing.assert_array_equal(adapt_state.metric.inverse_metric, initial_variance(state.potential_grad))

    kept = [state.position]  # the starting point seeds both estimators
    foreground_start = background_start = 0
    restarts = 0
    for i in range(num_warmup):
        if not stay[i]:
            state = kernels.init(positions[i], potential)
        before = adapt_state
        adapt_state = adaptation.update(rng, adapt_state, state, accept[i], potential)
        if i < 85 and not stay[i]:
            kept.append(state.position)
        if i in (8, 18, 28):
            foreground_start, background_start = background_start, len(kept)
        metric = adapt_state.metric.inverse_metric
        if i >= 85:
            assert metric is before.metric.inverse_metric  # frozen
        elif len(kept) - foreground_start >= 3:
            rows = np.array(kept[foreground_start:])
            if main_estimate == "variance" and i >= 30:
                np.testing.assert_allclose(metric, np.var(rows, axis=0), rtol=1e-12)
            else:
                np.testing.assert_allclose(metric, scales**2, rtol=1e-12)  # exact for a Gaussian
                np.testing.assert_allclose(metric, fisher_diagonal(rows, rows / scales**2, metric))
        da = adapt_state.dual_averaging
        if da.count == 0:
            restarts += 1
            assert da.mu == pytest.approx(math.log(10 * adapt_state.step_size))
        else:
            assert da.count == before.dual_averaging.count + 1
            assert adapt_state.step_size == math.exp(da.log_step_size)
    assert restarts == 1  # after the first estimate only, never at a window end
    step_size, inverse_metric = adaptation.final(adapt_state)
    assert step_size == math.exp(adapt_state.dual_averaging.log_step_size_avg)
    np.testing.assert_array_equal(inverse_metric, adapt_state.metric.inverse_metric)


@pytest.mark.parametrize("adapt, dense", [("fisher", False), ("fisher", True),
                                          ("fisher-lowrank", False)])
def test_warmup_learns_a_gaussian_metric(adapt, dense):
    # Exact estimators (see above) make the adapted metric the target's covariance
    # up to the regularisation, whatever the draws, hence the tight tolerances.
    if dense or adapt == "fisher-lowrank":
        direction = np.linspace(-1.0, 1.0, 8)
        cov = correlated_cov(8, seed=9) + 20.0 * np.outer(direction, direction)  # a strong one
    else:
        cov = np.diag(np.array([0.01, 0.1, 1.0, 10.0, 100.0]) ** 2)
    potential, _ = gaussian(cov)
    result = run_chain(potential, np.ones(len(cov)), seed_or_rng=10, draws=10, tune=200,
                       adapt=adapt, dense_mass=dense)
    inverse = result.inverse_metric
    if adapt == "fisher-lowrank":
        inverse = inverse.dense()
        # Only directions whose rescaled variance is off by 2x are corrected: the rest of
        # the metric is the diagonal estimate, so the largest error is below that factor.
        ratio = np.linalg.eigvalsh(np.linalg.solve(np.linalg.cholesky(cov), np.linalg.solve(
            np.linalg.cholesky(cov), inverse).T))
        assert 0.5 < ratio.min() and ratio.max() < 2.0
    elif dense:
        np.testing.assert_allclose(inverse, cov, rtol=1e-3, atol=1e-6)
    else:
        np.testing.assert_allclose(inverse, np.diag(cov), rtol=1e-10)
    assert result.step_size > 0.3


def test_variance_main_estimate_learns_marginal_variances():
    # A correlated pair (rho = 0.95): Fisher's diagonal is the geometric mean of the
    # marginal (1) and conditional (1 - rho^2 = 0.0975) variances, 0.31; the draws'
    # variance is the marginal one, 1. Over seeds 14-19 the two gave 0.26-0.35 and
    # 0.67-1.22 (means 0.30 and 0.94, sd 0.035 and 0.21), so the bounds below sit at
    # least 2.5 sd from their means: a correct estimator fails them with probability
    # < 1% per coordinate, and each fails on the other's value.
    cov = np.array([[1.0, 0.95], [0.95, 1.0]])
    potential, _ = gaussian(cov)
    fisher, variance = (run_chain(potential, np.ones(2), seed_or_rng=14, draws=10, tune=400,
                                  adapt=adapt).inverse_metric
                        for adapt in ("fisher", "fisher-variance"))
    assert np.all(fisher < 0.5)
    assert np.all((0.4 < variance) & (variance < 2.0))


@pytest.mark.parametrize("adapt", ["fisher", "fisher-lowrank", "fisher-variance"])
def test_fisher_warmup_samples_a_correlated_gaussian(adapt):
    # Posterior check: 2 chains x 1000 draws; each mean and variance within 4 Monte Carlo
    # standard errors (ESS-based); the family of 2 x 8 checks fails for a correct sampler
    # with probability < 1e-3 (Bonferroni over 4-sigma two-sided tails of 6e-5 each).
    import arviz as az

    cov = correlated_cov(8, seed=11)
    potential, _ = gaussian(cov)
    draws = np.stack([run_chain(potential, np.full(8, 2.0), seed_or_rng=s, draws=1000, tune=300,
                                adapt=adapt).positions for s in (12, 13)])
    ess = az.ess(az.convert_to_dataset(draws))["x"].values
    mean = draws.reshape(-1, 8).mean(0)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(mean) < 4 * sd / np.sqrt(ess))
    ess_sq = az.ess(az.convert_to_dataset(draws**2))["x"].values
    var = (draws**2).reshape(-1, 8).mean(0)
    assert np.all(np.abs(var - sd**2) < 4 * np.sqrt(2) * sd**2 / np.sqrt(ess_sq))
