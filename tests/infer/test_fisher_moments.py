"""The Fisher warmup's running moments (Welford) and its diagonal rule, against numpy."""

import numpy as np
import pytest

from probad.infer.fisher_adaptation import VARIANCE_LIMITS
from probad.infer.fisher_moments import M2_GRAD, M2_X, MEAN_GRAD, MEAN_X, ROWS, add_draw, \
    diagonal_estimate


def test_running_moments_match_numpy_far_from_zero():
    # Draws at 1e6 with unit spread: the condition number of the variance is
    # kappa = sqrt(1 + mean^2 / var) ~ 1e6. Welford's update has a relative error
    # below about n * kappa * eps = 100 * 1e6 * 2.2e-16 = 2.2e-8 (Chan, Golub and
    # LeVeque 1983), hence rtol 1e-7; a sum / sum-of-squares update would be off by
    # about kappa^2 * eps = 2e-4 and fail.
    rng = np.random.default_rng(0)
    n, dim = 100, 3
    draws = 1e6 + rng.standard_normal((n, dim)) * [1.0, 2.0, 0.5]
    grads = rng.standard_normal((n, dim)) * 1e-3 - 5.0
    moments, counts = np.zeros((2, ROWS, dim)), np.zeros(2, dtype=np.int64)
    previous = np.full(dim, np.nan)
    for x, g in zip(draws, grads):
        assert add_draw(moments, counts, x, g, previous)
        previous = x
    np.testing.assert_array_equal(counts, [n, n])
    for m in moments:
        np.testing.assert_allclose(m[MEAN_X], draws.mean(axis=0), rtol=1e-15)
        np.testing.assert_allclose(m[MEAN_GRAD], grads.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(m[M2_X] / n, draws.var(axis=0), rtol=1e-7)
        np.testing.assert_allclose(m[M2_GRAD] / n, grads.var(axis=0), rtol=1e-7)


def test_an_unmoved_draw_is_not_added():
    moments, counts = np.zeros((2, ROWS, 2)), np.zeros(2, dtype=np.int64)
    x = np.array([1.0, 2.0])
    assert add_draw(moments, counts, x, x, np.full(2, np.nan))
    before = moments.copy()
    assert not add_draw(moments, counts, x.copy(), x + 1.0, x)  # equal position, new gradient
    np.testing.assert_array_equal(moments, before)
    np.testing.assert_array_equal(counts, [1, 1])
    assert add_draw(moments, counts, np.array([1.0, 2.5]), x, x)  # one coordinate moved
    np.testing.assert_array_equal(counts, [2, 2])


def test_diagonal_rule_clips_and_keeps_previous_where_undefined():
    previous = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    spread_x = np.array([4.0, 0.0, 1.0, -1e-30, 1e-60, 1e300])
    spread_grad = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1e-300])
    # ratio 2; 0 (never moved); inf (constant gradient); NaN (a rounding-negative
    # spread); 1e-30 clipped up to 1e-20; 1e300 overflowing to inf.
    expected = [2.0, 2.0, 3.0, 4.0, VARIANCE_LIMITS[0], 6.0]
    np.testing.assert_array_equal(
        diagonal_estimate(spread_x, spread_grad, previous, *VARIANCE_LIMITS), expected)


@pytest.mark.parametrize("kind, buffered", [("diag", False), ("dense", True),
                                            ("low_rank", True)])
def test_only_matrix_estimates_keep_the_draws(kind, buffered):
    from probad.infer import kernels
    from probad.infer.fisher_adaptation import fisher_adaptation

    def potential(q):
        return 0.5 * q.dot(q), q

    adaptation = fisher_adaptation(50, kind=kind)
    state = kernels.init(np.ones(3), potential)
    adapt_state = adaptation.init(np.random.default_rng(0), state, potential)
    assert (adapt_state.draws is not None) == buffered
    assert (adapt_state.grads is not None) == buffered
