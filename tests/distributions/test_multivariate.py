"""Multivariate distributions against scipy.stats: densities, moments, sampling, gradients."""
import itertools
import math

import numpy as onp
import pytest
import scipy.stats as st

import probad.ad.numpy as np
import probad.distributions as dist
from probad.ad import deriv
from probad.ad.test_util import check_grads
from probad.distributions.transforms import CorrCholeskyTransform
from tests.distributions.goodness_of_fit import chi_square_pvalue

N_DRAWS = 20_000


def _spd(rng, k, batch=()):
    a = rng.normal(size=batch + (k, k))
    return a @ onp.swapaxes(a, -1, -2) + k * onp.eye(k)


def _assert_gaussian(x, mean, cov, n=N_DRAWS):
    """Gaussian draws: sample mean and covariance within 5 standard errors
    (var of S_ij is (S_ii S_jj + S_ij^2) / n), and Kolmogorov-Smirnov tests
    (level 1e-3) of the squared Mahalanobis distance against chi2(k) and of
    the first coordinate against its normal marginal."""
    se_mean = onp.sqrt(onp.diag(cov) / n)
    assert onp.all(onp.abs(x.mean(0) - mean) < 5 * se_mean)
    se_cov = onp.sqrt((onp.outer(onp.diag(cov), onp.diag(cov)) + cov**2) / n)
    assert onp.all(onp.abs(onp.cov(x.T) - cov) < 5 * se_cov)
    white = onp.linalg.solve(onp.linalg.cholesky(cov), (x - mean).T)
    assert st.kstest(onp.sum(white**2, 0), st.chi2(len(mean)).cdf).pvalue > 1e-3
    assert st.kstest(x[:, 0], st.norm(mean[0], math.sqrt(cov[0, 0])).cdf).pvalue > 1e-3


def _assert_mean_and_variance(x, mean, var, excess_kurtosis, n=N_DRAWS):
    """Sample mean and variance of each coordinate within 5 standard errors:
    sqrt(var / n) and sqrt((mu4 - var^2) / n), mu4 = (kurtosis + 3) var^2."""
    assert onp.all(onp.abs(x.mean(0) - mean) < 5 * onp.sqrt(var / n))
    assert onp.all(onp.abs(x.var(0) - var) < 5 * onp.sqrt((excess_kurtosis + 2) * var**2 / n))


# ------------------------------------------------------------ MultivariateNormal
@pytest.mark.parametrize("param", ["covariance_matrix", "precision_matrix", "scale_tril"])
def test_mvn_log_prob_matches_scipy_with_broadcasting(param):
    rng = onp.random.default_rng(0)
    loc = rng.normal(size=(2, 1, 3))
    cov = _spd(rng, 3, (4,))
    matrix = {"covariance_matrix": cov, "precision_matrix": onp.linalg.inv(cov),
              "scale_tril": onp.linalg.cholesky(cov)}[param]
    d = dist.MultivariateNormal(loc, **{param: matrix})
    assert d.batch_shape == (2, 4) and d.event_shape == (3,)
    x = rng.normal(size=(5, 2, 4, 3))
    lp = d.log_prob(x)
    assert lp.shape == (5, 2, 4)
    for i in range(2):
        for j in range(4):
            expected = st.multivariate_normal(loc[i, 0], cov[j]).logpdf(x[:, i, j])
            onp.testing.assert_allclose(lp[:, i, j], expected, rtol=1e-10)
    onp.testing.assert_allclose(d.covariance_matrix, onp.broadcast_to(cov, (4, 3, 3)), rtol=1e-10)
    onp.testing.assert_allclose(d.precision_matrix, onp.broadcast_to(onp.linalg.inv(cov), (4, 3, 3)), rtol=1e-9)
    onp.testing.assert_allclose(d.variance, onp.broadcast_to(onp.diagonal(cov, 0, -2, -1), (2, 4, 3)))
    onp.testing.assert_allclose(d.entropy()[0], [st.multivariate_normal(cov=c).entropy() for c in cov])


def test_mvn_gradients():
    rng = onp.random.default_rng(1)
    loc, a, x = rng.normal(size=3), rng.normal(size=(3, 3)), rng.normal(size=(2, 3))

    def from_covariance(value, loc, a):
        return dist.MultivariateNormal(loc, covariance_matrix=a @ a.T + 3 * onp.eye(3)).log_prob(value)

    def from_precision(value, loc, a):
        return dist.MultivariateNormal(loc, precision_matrix=a @ a.T + 3 * onp.eye(3)).log_prob(value)

    onp.random.seed(0)
    check_grads(from_covariance, modes=["fwd", "rev"], order=2)(x, loc, a)
    check_grads(from_precision, modes=["fwd", "rev"], order=1)(x, loc, a)


def test_mvn_sampling_and_rsample():
    rng = onp.random.default_rng(2)
    loc, cov = rng.normal(size=3), _spd(rng, 3)
    d = dist.MultivariateNormal(loc, cov)
    x = d.sample(onp.random.default_rng(3), (N_DRAWS,))
    assert x.shape == (N_DRAWS, 3)
    _assert_gaussian(x, loc, cov)
    tril = onp.linalg.cholesky(cov)
    onp.random.seed(1)
    check_grads(lambda m, s: dist.MultivariateNormal(m, scale_tril=s, validate_args=False)
                .sample(onp.random.default_rng(4), (2,)), modes=["fwd", "rev"], order=1)(loc, tril)


def test_mvn_scalar_loc_broadcasts():
    d = dist.MultivariateNormal(0.0, onp.eye(2))
    assert d.event_shape == (2,) and d.batch_shape == ()
    onp.testing.assert_allclose(d.log_prob(onp.zeros(2)), -math.log(2 * math.pi))


# ------------------------------------------------------- LowRankMultivariateNormal
def test_low_rank_mvn_matches_full_covariance():
    rng = onp.random.default_rng(5)
    loc, w, diag = rng.normal(size=(2, 4)), rng.normal(size=(4, 2)), rng.uniform(0.5, 2.0, 4)
    d = dist.LowRankMultivariateNormal(loc, w, diag)
    cov = w @ w.T + onp.diag(diag)
    assert d.batch_shape == (2,) and d.event_shape == (4,)
    x = rng.normal(size=(3, 2, 4))
    for i in range(2):
        onp.testing.assert_allclose(d.log_prob(x)[:, i], st.multivariate_normal(loc[i], cov).logpdf(x[:, i]),
                                    rtol=1e-10)
    onp.testing.assert_allclose(d.covariance_matrix[0], cov, rtol=1e-12)
    onp.testing.assert_allclose(d.scale_tril[0], onp.linalg.cholesky(cov), rtol=1e-10)
    onp.testing.assert_allclose(d.variance[1], onp.diag(cov))
    onp.testing.assert_allclose(d.entropy(), st.multivariate_normal(cov=cov).entropy())
    onp.random.seed(2)
    check_grads(lambda v, m, w_, dg: dist.LowRankMultivariateNormal(m, w_, dg).log_prob(v),
                modes=["fwd", "rev"], order=1)(x[0], loc, w, diag)
    draws = dist.LowRankMultivariateNormal(loc[0], w, diag).sample(onp.random.default_rng(6), (N_DRAWS,))
    _assert_gaussian(draws, loc[0], cov)


# --------------------------------------------------------- MultivariateStudentT
def test_multivariate_student_t():
    rng = onp.random.default_rng(7)
    loc, cov, df = rng.normal(size=3), _spd(rng, 3), 6.5
    tril = onp.linalg.cholesky(cov)
    d = dist.MultivariateStudentT(onp.array([df, 3.0]), loc, tril)
    assert d.batch_shape == (2,)
    x = rng.normal(size=(4, 2, 3))
    for i, nu in enumerate([df, 3.0]):
        onp.testing.assert_allclose(d.log_prob(x)[:, i], st.multivariate_t(loc, cov, df=nu).logpdf(x[:, i]),
                                    rtol=1e-10)
    onp.testing.assert_allclose(d.covariance_matrix[0], df / (df - 2) * cov, rtol=1e-10)
    onp.testing.assert_allclose(d.variance[1], 3.0 * onp.diag(cov), rtol=1e-10)
    onp.testing.assert_allclose(d.entropy(), [st.multivariate_t(loc, cov, df=nu).entropy()
                                              for nu in (df, 3.0)], rtol=1e-10)
    onp.random.seed(9)
    check_grads(lambda nu, s: dist.MultivariateStudentT(nu, loc, s, validate_args=False).entropy(),
                modes=["fwd", "rev"], order=2)(onp.array([df, 3.0]), tril)
    onp.random.seed(3)
    check_grads(lambda v, nu, m, s: dist.MultivariateStudentT(nu, m, s, validate_args=False).log_prob(v),
                modes=["fwd", "rev"], order=1)(x[:, 0], df, loc, tril)
    # The squared Mahalanobis distance over k is F(k, df) distributed.
    single = dist.MultivariateStudentT(df, loc, tril)
    draws = single.sample(onp.random.default_rng(8), (N_DRAWS,))
    white = onp.linalg.solve(tril, (draws - loc).T)
    assert st.kstest(onp.sum(white**2, 0) / 3, st.f(3, df).cdf).pvalue > 1e-3
    # Each coordinate is a scaled t(df): excess kurtosis 6 / (df - 4).
    _assert_mean_and_variance(draws, loc, df / (df - 2) * onp.diag(cov), 6 / (df - 4))


def test_multivariate_student_t_df_gradient_is_unbiased():
    # E[x_0^2] = df / (df - 2) S_00 for loc 0
    tril = onp.array([[1.5, 0.0], [0.3, 0.8]])
    df = 7.0

    def second_moment(nu):
        x = dist.MultivariateStudentT(nu, 0.0, tril).sample(onp.random.default_rng(9), (N_DRAWS,))
        return x[:, 0] ** 2

    per_draw = deriv(second_moment)(df)
    expected = -2.0 / (df - 2.0) ** 2 * tril[0, 0] ** 2
    assert abs(per_draw.mean() - expected) < 5 * per_draw.std() / math.sqrt(N_DRAWS)


# -------------------------------------------------------------------- Dirichlet
def test_dirichlet():
    rng = onp.random.default_rng(10)
    alpha = rng.uniform(0.5, 3.0, (2, 4))
    d = dist.Dirichlet(alpha)
    assert d.batch_shape == (2,) and d.event_shape == (4,)
    x = rng.dirichlet(onp.ones(4), (3, 2))
    for i in range(2):
        ref = st.dirichlet(alpha[i])
        onp.testing.assert_allclose(d.log_prob(x)[:, i], ref.logpdf(x[:, i].T), rtol=1e-10)
        onp.testing.assert_allclose(d.mean[i], ref.mean(), rtol=1e-12)
        onp.testing.assert_allclose(d.variance[i], ref.var(), rtol=1e-12)
        onp.testing.assert_allclose(d.entropy()[i], ref.entropy(), rtol=1e-10)
    onp.random.seed(4)
    check_grads(lambda v, a: dist.Dirichlet(a).log_prob(v), modes=["fwd", "rev"], order=2)(x[0], alpha)


def test_dirichlet_sampling():
    alpha = onp.array([0.7, 2.0, 4.0])
    draws = dist.Dirichlet(alpha).sample(onp.random.default_rng(11), (N_DRAWS,))
    assert onp.all(dist.constraints.simplex.check(draws))
    assert st.kstest(draws[:, 0], st.beta(alpha[0], alpha[1:].sum()).cdf).pvalue > 1e-3
    # Coordinate i is Beta(alpha_i, sum(alpha) - alpha_i).
    mean, var, kurtosis = st.beta(alpha, alpha.sum() - alpha).stats(moments="mvk")
    _assert_mean_and_variance(draws, mean, var, kurtosis)


def test_dirichlet_tiny_concentrations_still_sample_the_simplex():
    draws = dist.Dirichlet(onp.full(5, 0.005)).sample(onp.random.default_rng(12), (200,))
    assert onp.all(onp.isfinite(draws))
    onp.testing.assert_allclose(draws.sum(-1), 1.0)


def test_dirichlet_implicit_gradient_is_unbiased():
    alpha = onp.array([0.7, 2.0, 4.0])
    rest = alpha[1:].sum()

    def first_weight(a0):
        concentration = np.concatenate([np.reshape(a0, (1,)), alpha[1:]])
        return dist.Dirichlet(concentration).sample(onp.random.default_rng(13), (N_DRAWS,))[:, 0]

    per_draw = deriv(first_weight)(alpha[0])
    expected = rest / alpha.sum() ** 2
    assert abs(per_draw.mean() - expected) < 5 * per_draw.std() / math.sqrt(N_DRAWS)


# ------------------------------------------------------------------ Multinomial
@pytest.mark.parametrize("form", ["probs", "logits"])
def test_multinomial(form):
    rng = onp.random.default_rng(14)
    probs = rng.dirichlet(onp.ones(4), 2)
    param = probs if form == "probs" else onp.log(probs) + 0.7
    d = dist.Multinomial(9, **{form: param})
    assert d.batch_shape == (2,) and d.event_shape == (4,)
    counts = rng.multinomial(9, probs, (3, 2))
    for i in range(2):
        onp.testing.assert_allclose(d.log_prob(counts)[:, i], st.multinomial(9, probs[i]).logpmf(counts[:, i]),
                                    rtol=1e-10)
    onp.testing.assert_allclose(d.mean, 9 * probs, rtol=1e-12)
    onp.testing.assert_allclose(d.variance, 9 * probs * (1 - probs), rtol=1e-12)
    onp.random.seed(5)
    check_grads(lambda p: dist.Multinomial(9, validate_args=False, **{form: p}).log_prob(counts),
                modes=["fwd", "rev"], order=1)(param)
    draws = d.sample(onp.random.default_rng(15), (N_DRAWS,))
    assert draws.shape == (N_DRAWS, 2, 4) and onp.all(d.support.check(draws))
    # Count i is Binomial(9, p_i).
    _assert_mean_and_variance(draws, *st.binom(9, probs).stats(moments="mvk"))
    # Chi-square over every count vector, numbered by reading it as a
    # base-10 number (counts are at most 9; lexicographic order is sorted).
    vectors = onp.array([c for c in itertools.product(range(10), repeat=4) if sum(c) == 9])
    radix = 10 ** onp.arange(3, -1, -1)
    for i in range(2):
        index = onp.searchsorted(vectors @ radix, draws[:, i] @ radix)
        pmf = st.multinomial(9, probs[i]).pmf(vectors)
        assert chi_square_pvalue(index, lambda k: pmf[k], len(vectors) - 1) > 1e-3


# ------------------------------------------------------------------ LKJCholesky
@pytest.mark.parametrize("eta", [0.6, 1.0, 3.0])
def test_lkj_cholesky_two_dimensions_is_a_scaled_beta(eta):
    r = onp.linspace(-0.95, 0.95, 7)
    L = onp.zeros((7, 2, 2))
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = 1.0, r, onp.sqrt(1 - r**2)
    expected = st.beta(eta, eta).logpdf((r + 1) / 2) - math.log(2)
    onp.testing.assert_allclose(dist.LKJCholesky(2, eta).log_prob(L), expected, rtol=1e-10)


@pytest.mark.parametrize("k,eta", [(3, 0.8), (4, 2.5), (5, 1.0)])
def test_lkj_cholesky_matches_the_c_vine_density(k, eta):
    # In the C-vine the partial correlations z_ij are independent with
    # (z + 1) / 2 ~ Beta(b_j, b_j), b_j = eta + (k - 2 - j) / 2. Pushing the
    # LKJ density through CorrCholeskyTransform (z = tanh x) must give exactly
    # that product of Betas times the tanh Jacobian.
    x = onp.random.default_rng(16).normal(size=(3, k * (k - 1) // 2))
    t = CorrCholeskyTransform()
    L = t(x)
    lhs = dist.LKJCholesky(k, eta).log_prob(L) + t.log_abs_det_jacobian(x, L)
    rows, cols = onp.tril_indices(k, -1)
    z = onp.tanh(x)
    b = eta + (k - 2 - cols) / 2
    rhs = onp.sum(st.beta(b, b).logpdf((z + 1) / 2) - math.log(2) + onp.log1p(-z**2), axis=-1)
    onp.testing.assert_allclose(lhs, rhs, rtol=1e-10)


def test_lkj_cholesky_sampling_marginals_and_gradients():
    k, eta = 4, 1.5
    d = dist.LKJCholesky(k, onp.array([eta, 0.5]))
    assert d.batch_shape == (2,) and d.event_shape == (4, 4)
    L = d.sample(onp.random.default_rng(17), (N_DRAWS,))
    assert L.shape == (N_DRAWS, 2, 4, 4) and onp.all(d.support.check(L))
    # Every off-diagonal correlation has the marginal 2 Beta(eta - 1 + k/2, .) - 1.
    corr = L[:, 0] @ onp.swapaxes(L[:, 0], -1, -2)
    b = eta - 1 + k / 2
    for i, j in [(1, 0), (3, 2)]:
        assert st.kstest((corr[:, i, j] + 1) / 2, st.beta(b, b).cdf).pvalue > 1e-3
    onp.random.seed(6)
    x = onp.random.default_rng(18).normal(size=6)
    check_grads(lambda v, e: dist.LKJCholesky(4, e).log_prob(CorrCholeskyTransform()(v)),
                modes=["fwd", "rev"], order=1)(x, 1.7)


# ------------------------------------------------------------- GaussianRandomWalk
def test_gaussian_random_walk():
    scale = onp.array([0.5, 2.0])
    d = dist.GaussianRandomWalk(scale, num_steps=6)
    assert d.batch_shape == (2,) and d.event_shape == (6,)
    x = onp.random.default_rng(19).normal(size=(3, 2, 6))
    steps = onp.diff(x, axis=-1, prepend=0.0)
    expected = st.norm(0.0, scale[:, None]).logpdf(steps).sum(-1)
    onp.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-12)
    # The walk is Gaussian with covariance scale^2 min(i, j) (1-based steps).
    steps = onp.arange(1, 7)
    onp.testing.assert_allclose(d.entropy(), [st.multivariate_normal(
        cov=s**2 * onp.minimum.outer(steps, steps)).entropy() for s in scale], rtol=1e-12)
    draws = d.sample(onp.random.default_rng(20), (N_DRAWS,))
    onp.testing.assert_allclose(d.variance, scale[:, None] ** 2 * onp.arange(1, 7))
    _assert_mean_and_variance(draws, d.mean, d.variance, 0.0)
    # The increments are independent Normal(0, scale) draws.
    for i, s in enumerate(scale):
        increments = onp.diff(draws[:, i], axis=-1, prepend=0.0).ravel()
        assert st.kstest(increments, st.norm(0.0, s).cdf).pvalue > 1e-3
    onp.random.seed(7)
    check_grads(lambda v, s: dist.GaussianRandomWalk(s, 6).log_prob(v), modes=["fwd", "rev"], order=1)(x, scale)
    check_grads(lambda s: dist.GaussianRandomWalk(s, 6).sample(onp.random.default_rng(0), (2,)),
                modes=["fwd", "rev"], order=1)(scale)
    check_grads(lambda s: dist.GaussianRandomWalk(s, 6).entropy(), modes=["fwd", "rev"],
                order=2)(scale)

