"""The base class and structural distributions: shapes, expand, to_event, mask,
transformed, Delta, Unit, ImproperUniform, mixtures, validation."""
import math

import numpy as onp
import pytest
import scipy.stats as st

import probad.ad.numpy as np
import probad.distributions as dist
from probad import constraints
from probad.ad import grad
from probad.ad.test_util import check_grads
from probad.distributions import transforms as T


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("make,message", [
    (lambda: dist.Normal(0, -1), "Normal: parameter 'scale' must satisfy positive, got -1.0"),
    (lambda: dist.Bernoulli(probs=1.5), "Bernoulli: parameter 'probs' must satisfy interval(0, 1), got 1.5"),
    (lambda: dist.Normal(onp.nan, 1.0), "Normal: parameter 'loc' must satisfy real, got nan"),
    (lambda: dist.Normal(0.0, [1.0, -2.0, 3.0, -4.0]),
     "Normal: parameter 'scale' must satisfy positive, got -2.0 at index (1,) (2 of 4 invalid)"),
    (lambda: dist.Uniform(2.0, 1.0), "Uniform: parameter 'high' must satisfy greater_than(2), got 1.0"),
    (lambda: dist.Dirichlet([1.0, 0.0]), "Dirichlet: parameter 'concentration' must satisfy "
     "independent(positive, 1), got [1., 0.]"),
    (lambda: dist.MultivariateNormal(onp.zeros(2), covariance_matrix=[[1.0, 2.0], [2.0, 1.0]]),
     "MultivariateNormal: parameter 'covariance_matrix' must satisfy positive_definite, got [[1., 2.], [2., 1.]]"),
    (lambda: dist.Categorical(probs=[0.5, 0.6]), "Categorical: parameter 'probs' must satisfy simplex"),
    (lambda: dist.Binomial(2.5, probs=0.3), "Binomial: parameter 'total_count' must satisfy nonnegative_integer"),
    (lambda: dist.OrderedLogistic(0.0, [1.0, 0.0]),
     "OrderedLogistic: parameter 'cutpoints' must satisfy ordered_vector"),
    (lambda: dist.NegativeBinomial2(-1.0, 2.0), "NegativeBinomial2: parameter 'mean' must satisfy positive"),
    (lambda: dist.LKJCholesky(3, 0.0), "LKJCholesky: parameter 'concentration' must satisfy positive"),
])
def test_invalid_parameters_raise_readable_errors(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_validation_can_be_switched_off():
    dist.enable_validation(False)
    try:
        assert not dist.is_validation_enabled()
        dist.Normal(0.0, -1.0)
    finally:
        dist.enable_validation(True)
    dist.Normal(0.0, -1.0, validate_args=False)
    with pytest.raises(ValueError):
        dist.Normal(0.0, -1.0)


def test_traced_parameters_are_never_validated(monkeypatch):
    # Python decisions on traced values would become compiler guards, so a
    # distribution built from traced parameters must not validate them.
    def refuse(value):
        raise AssertionError("validated")

    monkeypatch.setattr(constraints.positive, "check", refuse)
    with pytest.raises(AssertionError):
        dist.Normal(0.0, 1.0)
    assert onp.isfinite(grad(lambda scale: dist.Normal(0.0, scale).log_prob(0.5))(2.0))


def test_wrappers_validate_what_they_wrap():
    bad = dist.Normal(0.0, -1.0, validate_args=False)
    for wrapped in (bad.expand((3,)), bad.expand((3,)).to_event(1), bad.mask(onp.array([True, False])),
                    dist.TransformedDistribution(bad, T.ExpTransform()),
                    dist.MixtureSameFamily(dist.Categorical(logits=onp.zeros(2)), bad.expand((2,)))):
        with pytest.raises(ValueError, match="parameter 'scale' must satisfy positive"):
            wrapped.validate_args()


def test_check_support_names_the_first_bad_position():
    expected = r"Poisson: value must satisfy nonnegative_integer, got -1 at index \(2,\)"
    with pytest.raises(ValueError, match=expected):
        dist.Poisson(3.0).check_support(onp.array([1, 2, -1, 4]))
    with pytest.raises(ValueError, match="Bernoulli: value must satisfy boolean, got 1.2"):
        dist.Bernoulli(probs=0.5).check_support(1.2)
    with pytest.raises(ValueError, match="got nan"):
        dist.Normal(0.0, 1.0).check_support(onp.array([0.0, onp.nan]))
    dist.Normal(0.0, 1.0).check_support(onp.array([0.0, 1.0]))


# ---------------------------------------------------------------------- shapes
def test_shape_expand_and_to_event():
    d = dist.Normal(onp.zeros(3), 1.0)
    assert d.shape((5,)) == (5, 3)
    assert d.expand((3,)) is d
    e = d.expand((4, 3))
    assert isinstance(e, dist.ExpandedDistribution) and e.batch_shape == (4, 3)
    assert e.log_prob(onp.zeros((2, 4, 3))).shape == (2, 4, 3)
    i = e.to_event(1)
    assert i.batch_shape == (4,) and i.event_shape == (3,)
    onp.testing.assert_allclose(i.log_prob(onp.zeros((4, 3))), 3 * st.norm.logpdf(0.0))
    assert i.to_event().batch_shape == () and i.to_event().event_shape == (4, 3)
    assert isinstance(i.to_event().base_dist, dist.ExpandedDistribution)  # nested Independent flattened
    assert d.to_event(0) is d
    with pytest.raises(ValueError, match="cannot expand"):
        d.expand((2,))
    with pytest.raises(ValueError, match="cannot reinterpret 2 batch dimensions"):
        d.to_event(2)


def test_expanded_samples_are_independent_along_new_and_grown_axes():
    base = dist.Normal(onp.zeros((3, 1)), 1.0)
    e = base.expand((2, 3, 4))
    x = e.sample(onp.random.default_rng(0), (1000,))
    assert x.shape == (1000, 2, 3, 4)
    flat = x.reshape(1000, -1)
    corr = onp.corrcoef(flat.T)
    off_diagonal = corr[~onp.eye(24, dtype=bool)]
    # 24 independent standard normals: correlations ~ N(0, 1/1000).
    assert onp.max(onp.abs(off_diagonal)) < 5 / math.sqrt(1000)
    onp.testing.assert_allclose(e.mean, onp.zeros((2, 3, 4)))
    assert e.has_rsample


def test_expanded_rsample_keeps_gradients():
    def f(loc):
        return dist.Normal(loc, 1.0).expand((2, 3)).sample(onp.random.default_rng(0), (2,))

    check_grads(f, modes=["fwd", "rev"], order=1)(onp.array([0.5, -1.0, 2.0]))


def test_independent_of_multivariate_event():
    d = dist.MultivariateNormal(onp.zeros((4, 2)), onp.eye(2)).to_event(1)
    assert d.batch_shape == () and d.event_shape == (4, 2)
    assert d.support.event_dim == 2
    onp.testing.assert_allclose(d.log_prob(onp.zeros((4, 2))), 4 * -math.log(2 * math.pi))
    onp.testing.assert_allclose(d.entropy(), 4 * (1 + math.log(2 * math.pi)))


# ------------------------------------------------------------------------ mask
def test_mask():
    d = dist.Normal(onp.zeros(3), 1.0)
    assert d.mask(True) is d
    mask = onp.array([True, False, True])
    lp = d.mask(mask).log_prob(onp.ones(3))
    onp.testing.assert_allclose(lp, [st.norm.logpdf(1.0), 0.0, st.norm.logpdf(1.0)])
    onp.testing.assert_allclose(d.mask(False).log_prob(onp.ones((2, 3))), onp.zeros((2, 3)))
    grown = dist.Normal(0.0, 1.0).mask(onp.array([[True], [False]]))
    assert grown.batch_shape == (2, 1)
    assert grown.sample(onp.random.default_rng(0), (5,)).shape == (5, 2, 1)
    # The masked entry contributes no gradient.
    g = grad(lambda loc: np.sum(dist.Normal(loc, 1.0).mask(mask).log_prob(onp.ones(3))))(onp.zeros(3))
    onp.testing.assert_allclose(g, [1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="mask must be boolean"):
        d.mask(onp.array([1, 0, 1]))


# ------------------------------------------------------- TransformedDistribution
def test_transformed_normal_is_log_normal():
    base = dist.Normal(onp.array([0.2, -0.5]), onp.array([0.7, 1.3]))
    d = dist.TransformedDistribution(base, T.ExpTransform())
    x = onp.array([[0.5, 2.0], [1.5, 0.1]])
    onp.testing.assert_allclose(d.log_prob(x), dist.LogNormal(base.loc, base.scale).log_prob(x), rtol=1e-12)
    assert d.support is constraints.positive and d.has_rsample
    assert d.sample(onp.random.default_rng(0), (3,)).shape == (3, 2)


def test_transformed_with_vector_transform_reinterprets_batch_dimensions():
    # A batch of normals pushed through stick-breaking: one event of size K.
    base = dist.Normal(onp.zeros(3), 1.0)
    d = dist.TransformedDistribution(base, [T.StickBreakingTransform()])
    assert d.batch_shape == () and d.event_shape == (4,)
    assert d.support is constraints.simplex
    x = onp.random.default_rng(1).normal(size=3)
    y = T.StickBreakingTransform()(x)
    expected = onp.sum(st.norm.logpdf(x)) - T.StickBreakingTransform().log_abs_det_jacobian(x, y)
    onp.testing.assert_allclose(d.log_prob(y), expected, rtol=1e-10)


def test_transformed_affine_matches_normal_and_composes():
    shift_then_shrink = T.ComposeTransform([T.AffineTransform(1.0, 2.0), T.AffineTransform(-3.0, 0.5)])
    d = dist.TransformedDistribution(dist.Normal(0.0, 1.0), shift_then_shrink)
    onp.testing.assert_allclose(d.log_prob(0.7), st.norm(-2.5, 1.0).logpdf(0.7))
    check_grads(lambda v: d.log_prob(v), modes=["fwd", "rev"], order=2)(0.7)


# ------------------------------------------------------- Delta, Unit, Improper
def test_delta():
    d = dist.Delta(onp.array([1.0, 2.0]), log_density=-0.5)
    onp.testing.assert_allclose(d.log_prob(onp.array([1.0, 3.0])), [-0.5, -onp.inf])
    assert d.sample(onp.random.default_rng(0), (3,)).shape == (3, 2)
    v = dist.Delta(onp.ones((2, 3)), event_dim=1)
    assert v.batch_shape == (2,) and v.event_shape == (3,)
    onp.testing.assert_allclose(v.log_prob(onp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])), [0.0, -onp.inf])
    check_grads(lambda x: dist.Delta(x).sample(None, (2,)), modes=["fwd", "rev"], order=1)(onp.array([0.3, 0.4]))


def test_unit():
    d = dist.Unit(onp.array([-1.0, 2.0]))
    assert d.batch_shape == (2,) and d.event_shape == (0,)
    assert d.sample(onp.random.default_rng(0)).shape == (2, 0)
    onp.testing.assert_allclose(d.log_prob(onp.zeros((2, 0))), [-1.0, 2.0])
    onp.testing.assert_allclose(dist.Unit(-3.0).log_prob(onp.zeros(0)), -3.0)


def test_improper_uniform():
    d = dist.ImproperUniform(constraints.real_vector, (3,), (2,))
    assert d.batch_shape == (3,) and d.event_shape == (2,) and d.support.event_dim == 1
    onp.testing.assert_allclose(d.log_prob(onp.ones((4, 3, 2))), onp.zeros((4, 3)))
    p = dist.ImproperUniform(constraints.positive, (), (2,))
    assert p.support.event_dim == 1
    with pytest.raises(NotImplementedError, match="init strategy"):
        d.sample(onp.random.default_rng(0))
    with pytest.raises(ValueError, match="event_dim"):
        dist.ImproperUniform(constraints.simplex, (), ())


# -------------------------------------------------------------------- mixtures
def test_mixture_of_normals():
    weights = onp.array([0.2, 0.5, 0.3])
    locs, scales = onp.array([-2.0, 0.0, 3.0]), onp.array([0.5, 1.0, 2.0])
    d = dist.MixtureSameFamily(dist.Categorical(probs=weights), dist.Normal(locs, scales))
    assert d.batch_shape == () and d.event_shape == ()
    x = onp.linspace(-4, 6, 7)
    expected = onp.log(onp.sum(weights * st.norm(locs, scales).pdf(x[:, None]), -1))
    onp.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-12)
    onp.testing.assert_allclose(d.cdf(x), onp.sum(weights * st.norm(locs, scales).cdf(x[:, None]), -1))
    mean = onp.sum(weights * locs)
    var = onp.sum(weights * (scales**2 + locs**2)) - mean**2
    onp.testing.assert_allclose([d.mean, d.variance], [mean, var])
    n = 20_000
    draws = d.sample(onp.random.default_rng(0), (n,))
    assert st.kstest(draws, d.cdf).pvalue > 1e-3
    check_grads(lambda lg, m, s, v: dist.MixtureSameFamily(dist.Categorical(logits=lg), dist.Normal(m, s))
                .log_prob(v), modes=["fwd", "rev"], order=1)(onp.log(weights), locs, scales, x)


def test_mixture_of_multivariate_normals_with_batch():
    rng = onp.random.default_rng(1)
    logits = rng.normal(size=(4, 2))
    locs = rng.normal(size=(4, 2, 3))
    d = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.MultivariateNormal(locs, onp.eye(3)))
    assert d.batch_shape == (4,) and d.event_shape == (3,)
    x = rng.normal(size=(5, 4, 3))
    w = onp.exp(logits) / onp.exp(logits).sum(-1, keepdims=True)
    dens = onp.stack([st.multivariate_normal(cov=onp.eye(3)).pdf(x - locs[:, k]) for k in range(2)], -1)
    onp.testing.assert_allclose(d.log_prob(x), onp.log(onp.sum(w * dens, -1)), rtol=1e-10)
    assert d.sample(onp.random.default_rng(2), (6,)).shape == (6, 4, 3)
    onp.testing.assert_allclose(d.mean, onp.sum(w[..., None] * locs, -2))


def test_mixture_shape_errors():
    with pytest.raises(ValueError, match="3 mixture weights but 2 components"):
        dist.MixtureSameFamily(dist.Categorical(logits=onp.zeros(3)), dist.Normal(onp.zeros(2), 1.0))
    with pytest.raises(TypeError, match="must be a Categorical"):
        dist.MixtureSameFamily(dist.Normal(0.0, 1.0), dist.Normal(onp.zeros(2), 1.0))


# --------------------------------------------------------------- constraints
def test_constraint_reprs_and_flags():
    assert repr(constraints.positive) == "positive"
    assert repr(constraints.interval(0, 1)) == "interval(0, 1)"
    assert repr(constraints.real_vector) == "real_vector"
    assert repr(constraints.integer_interval(0, 3)) == "integer_interval(0, 3)"
    assert constraints.simplex.event_dim == 1 and constraints.corr_cholesky.event_dim == 2
    assert constraints.boolean.is_discrete and not constraints.positive.is_discrete
    assert constraints.independent(constraints.nonnegative_integer, 1).is_discrete


@pytest.mark.parametrize("c,good,bad", [
    (constraints.real, 1.0, onp.inf),
    (constraints.positive, 0.1, 0.0),
    (constraints.nonnegative, 0.0, -0.1),
    (constraints.greater_than(2.0), 2.1, 2.0),
    (constraints.less_than(2.0), 1.9, 2.0),
    (constraints.interval(-1.0, 1.0), 1.0, 1.1),
    (constraints.circular, 3.0, 3.2),
    (constraints.boolean, 1, 2),
    (constraints.nonnegative_integer, 3, 2.5),
    (constraints.positive_integer, 1, 0),
    (constraints.integer_interval(0, 3), 3, 4),
    (constraints.simplex, [0.2, 0.8], [0.3, 0.8]),
    (constraints.ordered_vector, [-1.0, 2.0], [2.0, 2.0]),
    (constraints.positive_ordered_vector, [1.0, 2.0], [-1.0, 2.0]),
    (constraints.lower_cholesky, [[1.0, 0.0], [2.0, 1.0]], [[1.0, 0.5], [2.0, 1.0]]),
    (constraints.corr_cholesky, [[1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [0.6, 0.9]]),
    (constraints.positive_definite, [[2.0, 1.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 1.0]]),
    (constraints.corr_matrix, [[1.0, 0.5], [0.5, 1.0]], [[2.0, 0.5], [0.5, 1.0]]),
    (constraints.multinomial(3), [1, 2, 0], [1, 1, 0]),
    (constraints.real_vector, [1.0, 2.0], [1.0, onp.nan]),
], ids=lambda v: repr(v) if isinstance(v, constraints.Constraint) else "")
def test_constraint_checks(c, good, bad):
    assert bool(c.check(onp.asarray(good)))
    assert not bool(c.check(onp.asarray(bad)))


def test_constraint_check_is_batched():
    x = onp.array([[0.2, 0.8], [0.5, 0.6], [1.0, 0.0]])
    onp.testing.assert_array_equal(constraints.simplex.check(x), [True, False, True])
    onp.testing.assert_array_equal(constraints.positive.check(onp.array([1.0, -1.0])), [True, False])
