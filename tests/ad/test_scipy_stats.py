"""probad.ad.scipy.stats: every function against scipy.stats, and derivatives
with respect to the value and every continuous parameter by check_grads
(both modes, second order)."""
import numpy as onp
import pytest
import scipy.stats as oss

from probad.ad import grad
from probad.ad.scipy import stats
from probad.ad.test_util import check_grads

MODES = ["fwd", "rev"]
CONTINUOUS_FUNCTIONS = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf"]


def rng():
    return onp.random.default_rng(0)


def uniform(lo, hi, size=4):
    return rng().uniform(lo, hi, size=size)


def check(fun, *args):
    check_grads(fun, modes=MODES, order=2)(*args)


# name -> (value, params): each array is differentiated.
CASES = {
    "norm": (rng().normal(size=4), (rng().normal(size=4), uniform(0.5, 2.0))),
    "t": (rng().normal(size=4) * 2, (uniform(1.0, 10.0), rng().normal(size=4), uniform(0.5, 2.0))),
    "beta": (uniform(0.1, 0.9), (uniform(0.6, 4.0), uniform(0.6, 4.0), 0.0, 1.0)),
    "gamma": (uniform(0.6, 5.0), (uniform(0.6, 4.0), 0.1, uniform(0.5, 2.0))),
    "chi2": (uniform(0.6, 5.0), (uniform(1.0, 6.0), 0.1, uniform(0.5, 2.0))),
}


@pytest.mark.parametrize("fn", CONTINUOUS_FUNCTIONS)
@pytest.mark.parametrize("dist", list(CASES))
def test_continuous(dist, fn):
    x, params = CASES[dist]
    ours, theirs = getattr(getattr(stats, dist), fn), getattr(getattr(oss, dist), fn)
    onp.testing.assert_allclose(ours(x, *params), theirs(x, *params), rtol=1e-10)
    check(ours, x, *params)


def test_beta_with_loc_and_scale():
    x, a, b = uniform(1.2, 2.8), uniform(0.6, 4.0), uniform(0.6, 4.0)
    for fn in ("logpdf", "cdf"):
        ours, theirs = getattr(stats.beta, fn), getattr(oss.beta, fn)
        onp.testing.assert_allclose(ours(x, a, b, 1.0, 2.0), theirs(x, a, b, 1.0, 2.0), rtol=1e-10)
        check(lambda x, loc, scale: ours(x, a, b, loc, scale), x, 1.0, 2.0)


def test_norm_ppf():
    q = uniform(0.05, 0.95)
    onp.testing.assert_allclose(stats.norm.ppf(q, 1.0, 2.0), oss.norm.ppf(q, 1.0, 2.0))
    check(stats.norm.ppf, q, 1.0, 2.0)


def test_t_cdf_is_smooth_at_its_centre():
    # The derivative in x at x = loc is the density; in df it is 0 there.
    assert grad(stats.t.cdf)(0.0, 3.0) == pytest.approx(oss.t.pdf(0.0, 3.0), rel=1e-12)
    assert grad(stats.t.cdf, 1)(0.0, 3.0) == 0.0
    check(stats.t.cdf, onp.array([-1e-3, 1e-3]), onp.array([2.0, 7.0]))


def test_t_cdf_far_tails_and_large_df():
    x = onp.array([-40.0, -3.0, 3.0, 40.0])
    for df in (1.5, 1e4):
        onp.testing.assert_allclose(stats.t.cdf(x, df), oss.t.cdf(x, df), rtol=1e-10)
        onp.testing.assert_allclose(stats.t.logsf(x, df), oss.t.logsf(x, df), rtol=1e-10)


@pytest.mark.parametrize("fn", ["logpmf", "pmf", "cdf", "logcdf", "sf", "logsf"])
def test_poisson(fn):
    k, mu = onp.array([0.0, 1.0, 3.0, 7.0]), uniform(0.5, 5.0)
    ours, theirs = getattr(stats.poisson, fn), getattr(oss.poisson, fn)
    onp.testing.assert_allclose(ours(k, mu), theirs(k, mu), rtol=1e-10)
    onp.testing.assert_allclose(ours(k, mu, 1), theirs(k, mu, 1), rtol=1e-10)
    check(lambda mu: ours(k, mu), mu)


def test_poisson_off_support():
    assert stats.poisson.logpmf(2.5, 3.0) == -onp.inf
    assert stats.poisson.logpmf(-1.0, 3.0) == -onp.inf
    assert stats.poisson.cdf(-1.0, 3.0) == 0.0
    assert stats.poisson.logpmf(0.0, 0.0) == 0.0
    assert grad(stats.poisson.logpmf, 1)(0.0, 0.0) == -1.0


def test_dirichlet():
    alpha = uniform(0.5, 3.0, size=3)
    x = rng().dirichlet(alpha, size=5).T  # components on the first axis, as scipy
    onp.testing.assert_allclose(stats.dirichlet.logpdf(x, alpha), oss.dirichlet.logpdf(x, alpha))
    onp.testing.assert_allclose(stats.dirichlet.pdf(x[:, 0], alpha), oss.dirichlet.pdf(x[:, 0], alpha))
    onp.testing.assert_allclose(stats.dirichlet.logpdf(x[:-1], alpha), oss.dirichlet.logpdf(x, alpha))
    # Perturbations of x must stay on the simplex: differentiate K - 1 components.
    check(stats.dirichlet.logpdf, x[:-1], alpha)
    with pytest.raises(ValueError, match="sum to 1"):
        stats.dirichlet.logpdf(x * 1.1, alpha)


COVARIANCES = {"full": lambda: _spd(3), "diagonal": lambda: uniform(0.5, 2.0, size=3), "scalar": lambda: 1.7}


def _spd(n):
    b = rng().normal(size=(n, n))
    return b @ b.T + onp.eye(n)


@pytest.mark.parametrize("allow_singular", [False, True])
@pytest.mark.parametrize("cov_kind", list(COVARIANCES))
@pytest.mark.parametrize("x_shape", [(3,), (5, 3), (2, 4, 3)], ids=str)
def test_multivariate_normal(x_shape, cov_kind, allow_singular):
    x, mean, cov = rng().normal(size=x_shape), rng().normal(size=3), COVARIANCES[cov_kind]()
    kw = dict(allow_singular=allow_singular)
    onp.testing.assert_allclose(stats.multivariate_normal.logpdf(x, mean, cov, **kw),
                                oss.multivariate_normal.logpdf(x, mean, cov, **kw), rtol=1e-10)
    onp.testing.assert_allclose(stats.multivariate_normal.pdf(x, mean, cov, **kw),
                                oss.multivariate_normal.pdf(x, mean, cov, **kw), rtol=1e-10)
    check(lambda x, m, c: stats.multivariate_normal.logpdf(x, m, c, **kw), x, mean, cov)


def test_multivariate_normal_gradient_in_cov_is_symmetric_textbook():
    x, mean, cov = rng().normal(size=3), rng().normal(size=3), _spd(3)
    r = onp.linalg.solve(cov, x - mean)
    expected = 0.5 * (onp.outer(r, r) - onp.linalg.inv(cov))
    onp.testing.assert_allclose(grad(stats.multivariate_normal.logpdf, 2)(x, mean, cov), expected, rtol=1e-10)


def test_multivariate_normal_singular_and_one_dimensional():
    v = rng().normal(size=(3, 2))
    cov = v @ v.T  # rank 2
    x = rng().normal(size=(4, 2)) @ v.T
    onp.testing.assert_allclose(stats.multivariate_normal.logpdf(x, cov=cov, allow_singular=True),
                                oss.multivariate_normal.logpdf(x, cov=cov, allow_singular=True), rtol=1e-8)
    points = onp.array([0.3, -1.0, 2.0])  # dimension 1: a 1-D x is a list of points
    onp.testing.assert_allclose(stats.multivariate_normal.logpdf(points, 0.5, 2.0),
                                oss.multivariate_normal.logpdf(points, 0.5, 2.0))


def test_invalid_parameters_give_nan_and_off_support_gives_zero_density():
    assert onp.isnan(stats.norm.logpdf(0.0, 0.0, -1.0))
    assert onp.isnan(stats.t.cdf(0.0, -2.0))
    assert onp.isnan(stats.gamma.logpdf(1.0, -1.0))
    assert onp.isnan(stats.beta.cdf(0.5, 0.0, 1.0))
    assert stats.gamma.logpdf(-1.0, 2.0) == -onp.inf
    assert stats.beta.logpdf(1.5, 2.0, 2.0) == -onp.inf
    assert stats.beta.cdf(1.5, 2.0, 2.0) == 1.0
    assert stats.gamma.logcdf(-1.0, 2.0) == -onp.inf
    assert grad(stats.gamma.logpdf, 1)(-1.0, 2.0) == 0.0
