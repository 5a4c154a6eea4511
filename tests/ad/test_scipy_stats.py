"""probad.ad.scipy.stats: every function against scipy.stats, and derivatives
with respect to the value and every continuous parameter by check_grads
(both modes, second order)."""
import numpy as onp
import pytest
import scipy.integrate as si
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


@pytest.mark.parametrize("cov_kind", list(COVARIANCES))
def test_multivariate_normal_entropy(cov_kind):
    mean, cov = rng().normal(size=3), COVARIANCES[cov_kind]()
    assert stats.multivariate_normal.entropy(mean, cov) == pytest.approx(oss.multivariate_normal.entropy(mean, cov),
                                                                         rel=1e-12)
    check(lambda c: stats.multivariate_normal.entropy(mean, c), cov)
    if cov_kind == "full":
        onp.testing.assert_allclose(grad(stats.multivariate_normal.entropy, 1)(mean, cov), 0.5 * onp.linalg.inv(cov),
                                    rtol=1e-12)


@pytest.mark.parametrize("cov_kind", list(COVARIANCES))
@pytest.mark.parametrize("x_shape", [(2,), (5, 2), (2, 3, 2)], ids=str)
def test_multivariate_normal_cdf_two_dimensions(x_shape, cov_kind):
    cov = {"full": onp.array([[2.0, -0.7], [-0.7, 1.0]]), "diagonal": onp.array([0.8, 1.7]),
           "scalar": 1.3}[cov_kind]
    x, mean = rng().normal(size=x_shape), rng().normal(size=2)
    onp.testing.assert_allclose(stats.multivariate_normal.cdf(x, mean, cov),
                                oss.multivariate_normal.cdf(x, mean, cov), rtol=1e-12)
    check_grads(stats.multivariate_normal.cdf, modes=MODES, order=3)(x, mean, cov)


def test_multivariate_normal_cdf_one_dimension():
    x = onp.array([-1.3, 0.2, 2.0])  # a list of points
    onp.testing.assert_allclose(stats.multivariate_normal.cdf(x, 0.5, 2.0), oss.norm.cdf(x, 0.5, onp.sqrt(2.0)),
                                rtol=1e-12)
    check(stats.multivariate_normal.cdf, x, 0.5, 2.0)


def _plackett(h, k, rho):
    """Phi_2(h, k; rho) = Phi(h) Phi(k) + int_0^rho phi_2(h, k; t) dt, by quadrature."""
    def density(t):
        return onp.exp(-(h * h - 2 * t * h * k + k * k) / (2 * (1 - t * t))) / (2 * onp.pi * onp.sqrt(1 - t * t))
    return oss.norm.cdf(h) * oss.norm.cdf(k) + si.quad(density, 0, rho, epsabs=1e-15, epsrel=1e-13)[0]


def test_bivariate_normal_cdf_against_quadrature():
    # Owen's T formula, including its 0/0 and sign cases at h = 0 or k = 0.
    from probad.ad.scipy.stats.multivariate_normal import _bivariate_standard_cdf
    for h in (-3.0, -1.2, 0.0, 0.4, 2.5):
        for k in (-2.0, 0.0, 0.7, 3.0):
            for rho in (-0.95, -0.5, 0.0, 0.3, 0.9):
                assert _bivariate_standard_cdf(onp.array(h), onp.array(k), rho) == pytest.approx(
                    _plackett(h, k, rho), abs=1e-15)


def _trivariate_cdf(r, cov):
    """P(X <= r) for X ~ N(0, cov) in 3-D by quadrature over X_1 of the
    conditional bivariate distribution function (Plackett's integral)."""
    c = cov[1:, 0] / cov[0, 0]
    cond = cov[1:, 1:] - onp.outer(c, cov[0, 1:])
    sd = onp.sqrt(onp.diag(cond))
    rho = cond[0, 1] / (sd[0] * sd[1])

    def integrand(t):
        h, k = (r[1:] - c * t) / sd
        return oss.norm.pdf(t, scale=onp.sqrt(cov[0, 0])) * _plackett(h, k, rho)

    return si.quad(integrand, -onp.inf, r[0], epsabs=1e-14, epsrel=1e-12)[0]


def test_multivariate_normal_cdf_three_dimensions():
    # The value is scipy's quasi-Monte Carlo estimate; the first derivatives
    # come from exact 2-D (and 1-D) distribution functions.
    cov = onp.array([[2.0, 0.6, 0.3], [0.6, 1.0, -0.2], [0.3, -0.2, 1.5]])
    x, mean = onp.array([0.3, -0.4, 0.9]), onp.array([0.1, 0.2, -0.3])
    cdf = stats.multivariate_normal.cdf
    assert cdf(x, mean, cov) == pytest.approx(_trivariate_cdf(x - mean, cov), abs=1e-5)
    h = 1e-4
    basis = onp.eye(3)
    fd_x = [(_trivariate_cdf(x - mean + h * e, cov) - _trivariate_cdf(x - mean - h * e, cov)) / (2 * h)
            for e in basis]
    onp.testing.assert_allclose(grad(cdf)(x, mean, cov), fd_x, rtol=1e-7)
    onp.testing.assert_allclose(grad(cdf, 1)(x, mean, cov), -onp.array(fd_x), rtol=1e-7)
    sym = onp.outer(basis[0], basis[2]) + onp.outer(basis[2], basis[0])  # a symmetric direction
    fd_cov = (_trivariate_cdf(x - mean, cov + h * sym) - _trivariate_cdf(x - mean, cov - h * sym)) / (2 * h)
    assert onp.sum(grad(cdf, 2)(x, mean, cov) * sym) == pytest.approx(fd_cov, rel=1e-7)
    # The gradient is exact, so its own derivatives can be checked by finite differences.
    check(lambda x, m, c: grad(cdf)(x, m, c), x, mean, cov)


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
