"""Transforms and biject_to: round trips, Jacobians against autodiff, gradients."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import jacobian
from probad.ad.test_util import check_grads
from probad.distributions import constraints, transforms as T
from probad.distributions.transforms import biject_to


def _strict_lower(m):
    k = m.shape[-1]
    rows, cols = onp.tril_indices(k, -1)
    return m[..., rows, cols]


def _lower(m):
    k = m.shape[-1]
    rows, cols = onp.tril_indices(k)
    return m[..., rows, cols]


def _elementwise(y):
    return np.ravel(y)


# (name, transform, input shape, map from the output to its free coordinates)
CASES = [
    ("identity", T.IdentityTransform(), (4,), _elementwise),
    ("exp", T.ExpTransform(), (4,), _elementwise),
    ("sigmoid", T.SigmoidTransform(), (4,), _elementwise),
    ("softplus", T.SoftplusTransform(), (4,), _elementwise),
    ("affine", T.AffineTransform(onp.array([1.0, -2.0, 0.5, 3.0]), onp.array([2.0, 0.5, -1.5, 3.0])),
     (4,), _elementwise),
    ("stick_breaking", T.StickBreakingTransform(), (4,), lambda y: y[:-1]),
    ("ordered", T.OrderedTransform(), (4,), _elementwise),
    ("corr_cholesky", T.CorrCholeskyTransform(), (6,), _strict_lower),
    ("lower_cholesky", T.LowerCholeskyTransform(), (6,), _lower),
    ("positive_definite", biject_to(constraints.positive_definite), (6,), _lower),
    ("corr_matrix", biject_to(constraints.corr_matrix), (6,), _strict_lower),
    ("greater_than", biject_to(constraints.greater_than(1.5)), (4,), _elementwise),
    ("less_than", biject_to(constraints.less_than(-1.0)), (4,), _elementwise),
    ("interval", biject_to(constraints.interval(-2.0, 5.0)), (4,), _elementwise),
    ("positive_ordered", biject_to(constraints.positive_ordered_vector), (4,), _elementwise),
    ("independent_exp", T.IndependentTransform(T.ExpTransform(), 1), (4,), _elementwise),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,t,shape,free", CASES, ids=IDS)
def test_round_trip_and_codomain(name, t, shape, free):
    x = onp.random.default_rng(0).normal(size=(3,) + shape)
    y = t(x)
    assert y.shape == t.forward_shape(x.shape)
    assert t.inverse_shape(y.shape) == x.shape
    assert onp.all(t.codomain.check(y))
    onp.testing.assert_allclose(t.inv(y), x, atol=1e-9)


@pytest.mark.parametrize("name,t,shape,free", CASES, ids=IDS)
def test_log_abs_det_jacobian_matches_autodiff(name, t, shape, free):
    x = onp.random.default_rng(1).normal(size=(2,) + shape)
    ladj = t.log_abs_det_jacobian(x, t(x))
    # Elementwise transforms report one term per entry: a point's total is their sum.
    assert ladj.shape == x.shape[:x.ndim - t.domain.event_dim]
    ladj = ladj.reshape(2, -1).sum(-1)
    for i in range(2):
        jac = jacobian(lambda v: free(t(v)))(x[i])
        sign, logdet = onp.linalg.slogdet(jac)
        assert sign != 0
        onp.testing.assert_allclose(ladj[i], logdet, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name,t,shape,free", CASES, ids=IDS)
def test_gradients(name, t, shape, free):
    x = onp.random.default_rng(2).normal(size=shape)
    check_grads(lambda v: t(v), modes=["fwd", "rev"], order=1)(x)
    check_grads(lambda v: t.log_abs_det_jacobian(v, t(v)), modes=["fwd", "rev"], order=1)(x)


@pytest.mark.parametrize("t", [T.StickBreakingTransform(), T.CorrCholeskyTransform(),
                               T.SigmoidTransform()], ids=["stick_breaking", "corr_cholesky", "sigmoid"])
def test_second_order_gradients(t):
    x = onp.random.default_rng(3).normal(size=(3,))
    check_grads(lambda v: t.log_abs_det_jacobian(v, t(v)), modes=["fwd", "rev"], order=2)(x)
    check_grads(lambda v: np.sum(t(v) ** 2), modes=["rev"], order=2)(x)


@pytest.mark.parametrize("t", [T.StickBreakingTransform(), T.CorrCholeskyTransform(), T.SigmoidTransform(),
                               T.ExpTransform(), T.OrderedTransform(), T.SoftplusTransform()],
                         ids=lambda t: type(t).__name__)
def test_extreme_inputs_stay_finite(t):
    x = onp.array([-300.0, 40.0, 300.0, -40.0, 0.0, 700.0])
    with onp.errstate(over="raise", divide="raise", invalid="raise"):
        y = t(x[:3] if isinstance(t, T.CorrCholeskyTransform) else x)
        ladj = t.log_abs_det_jacobian(x[:3] if isinstance(t, T.CorrCholeskyTransform) else x, y)
    assert onp.all(onp.isfinite(y)) and onp.all(onp.isfinite(ladj))


def test_stick_breaking_zero_is_uniform():
    y = T.StickBreakingTransform()(onp.zeros(4))
    onp.testing.assert_allclose(y, onp.full(5, 0.2))


def test_corr_cholesky_gives_correlation_matrix():
    x = onp.random.default_rng(4).normal(size=(5, 10))
    L = T.CorrCholeskyTransform()(x)
    assert L.shape == (5, 5, 5)
    C = L @ onp.swapaxes(L, -1, -2)
    onp.testing.assert_allclose(onp.diagonal(C, 0, -2, -1), 1.0)
    assert onp.all(onp.linalg.eigvalsh(C) > 0)


def test_compose_sums_elementwise_terms_over_vector_events():
    # positive_ordered = Ordered (vector) then Exp (elementwise): the Exp terms
    # must be summed over the vector so the result has one entry per batch element.
    t = biject_to(constraints.positive_ordered_vector)
    x = onp.random.default_rng(5).normal(size=(3, 4))
    y = t(x)
    expected = onp.sum(x[:, 1:], -1) + onp.sum(onp.log(y), -1)
    onp.testing.assert_allclose(t.log_abs_det_jacobian(x, y), expected)
    assert t.domain.event_dim == 1 and t.codomain.event_dim == 1


# Every continuous constraint with the event shape of its unconstrained space.
CONTINUOUS = [
    (constraints.real, ()), (constraints.real_vector, (3,)), (constraints.real_matrix, (3, 2)),
    (constraints.positive, ()), (constraints.nonnegative, ()), (constraints.unit_interval, ()),
    (constraints.circular, ()), (constraints.simplex, (3,)), (constraints.ordered_vector, (3,)),
    (constraints.positive_ordered_vector, (3,)), (constraints.lower_cholesky, (6,)),
    (constraints.corr_cholesky, (6,)), (constraints.positive_definite, (6,)),
    (constraints.corr_matrix, (6,)), (constraints.greater_than(-3.0), ()),
    (constraints.less_than(2.0), ()), (constraints.interval(1.0, 4.0), ()),
    (constraints.independent(constraints.positive, 1), (3,)),
    (constraints.independent(constraints.simplex, 1), (2, 3)),
]


@pytest.mark.parametrize("c,event_shape", CONTINUOUS, ids=[repr(c) for c, _ in CONTINUOUS])
def test_biject_to_every_continuous_constraint(c, event_shape):
    t = biject_to(c)
    x = onp.random.default_rng(6).normal(size=(2,) + event_shape)
    y = t(x)
    assert onp.all(c.check(y)), f"biject_to({c}) left the constraint"
    onp.testing.assert_allclose(t.inv(y), x, atol=1e-8)
    assert t.log_abs_det_jacobian(x, y).shape == (2,) + event_shape[:len(event_shape) - t.domain.event_dim]
    assert t.codomain.event_dim == c.event_dim


@pytest.mark.parametrize("c", [constraints.boolean, constraints.nonnegative_integer,
                               constraints.integer_interval(0, 3), constraints.multinomial(4)], ids=repr)
def test_biject_to_discrete_raises(c):
    with pytest.raises(ValueError, match="discrete"):
        biject_to(c)


def test_biject_to_traced_bounds_is_differentiable():
    # Uniform(low, high) with latent bounds: biject_to must accept traced bounds.
    def f(low):
        t = biject_to(constraints.interval(low, low + 2.0))
        x = onp.array([-1.0, 0.5])
        return np.sum(t(x) + t.log_abs_det_jacobian(x, t(x)))
    check_grads(f, modes=["fwd", "rev"], order=1)(0.3)


@pytest.mark.parametrize("t,y", [
    (T.ExpTransform(), onp.array([0.0, 1.0])),
    (T.SigmoidTransform(), onp.array([0.0, 0.5, 1.0])),
    (T.SoftplusTransform(), onp.array([0.0, 1.0])),
    (T.StickBreakingTransform(), onp.array([0.0, 0.3, 0.0, 0.7])),
    (T.OrderedTransform(), onp.array([1.0, 1.0, 2.0])),
], ids=lambda v: type(v).__name__ if isinstance(v, T.Transform) else "")
def test_inverse_of_underflowed_boundary_values_is_finite(t, y):
    # Draws that underflowed to the boundary (e.g. a tiny-concentration
    # Dirichlet) must still map to finite unconstrained points, e.g. for
    # initialisation from prior draws.
    with onp.errstate(over="raise", divide="raise", invalid="raise"):
        assert onp.all(onp.isfinite(t.inv(y)))


@pytest.mark.parametrize("t, identity", [
    (T.IdentityTransform(), True),
    (T.IndependentTransform(T.IdentityTransform(), 1), True),
    (T.IndependentTransform(T.IndependentTransform(T.IdentityTransform(), 1), 1), True),
    (T.ExpTransform(), False),
    (T.IndependentTransform(T.ExpTransform(), 1), False),
    (biject_to(constraints.real), True),
    (biject_to(constraints.independent(constraints.real, 1)), True),
    (biject_to(constraints.positive), False),
    (biject_to(constraints.simplex), False),
])
def test_is_identity(t, identity):
    # ADVI and the autoguides give exact constrained moments where this holds.
    assert t.is_identity is identity
