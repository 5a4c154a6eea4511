"""The autodiff engine: operators on traced values, the differential operators
against known answers, higher derivatives, control flow, errors and dtypes."""
import math
import re

import numpy as onp
import pytest

import probad.ad as ad
import probad.ad.numpy as np
from probad.ad import (checkpoint, deriv, elementwise_grad, grad, grad_and_aux, grad_named, hessian,
                       hessian_tensor_product, hessian_vector_product, holomorphic_grad, jacobian, make_ggnvp,
                       make_hvp, make_jvp, make_vjp, multigrad_dict, tensor_jacobian_product, value_and_grad,
                       vector_jacobian_product)
from probad.ad.extend import defjvp, defvjp, primitive
from probad.ad.test_util import check_grads
from probad.ad.tracer import Box

R = onp.random.RandomState(1)
A = R.randn(3, 3)
X = R.randn(3)


def quadratic(x):
    return np.dot(x, np.dot(A, x))


# ------------------------------------------------------ differential operators
def test_grad_of_a_quadratic_form():
    onp.testing.assert_allclose(grad(quadratic)(X), (A + A.T) @ X)


def test_grad_argnum_int_and_tuple_and_kwargs():
    def f(x, y, z=1.0):
        return np.sum(x * y ** 2) * z

    x, y = R.randn(2), R.randn(2)
    onp.testing.assert_allclose(grad(f)(x, y), y ** 2)
    onp.testing.assert_allclose(grad(f, 1)(x, y, z=3.0), 6 * x * y)
    gx, gy = grad(f, (0, 1))(x, y)
    onp.testing.assert_allclose(gx, y ** 2)
    onp.testing.assert_allclose(gy, 2 * x * y)
    gy2, gx2 = grad(f, (1, 0))(x, y)
    onp.testing.assert_allclose(gx2, gx)
    onp.testing.assert_allclose(gy2, gy)


def test_value_and_grad_and_grad_and_aux():
    value, g = value_and_grad(quadratic)(X)
    assert value == pytest.approx(X @ A @ X)
    onp.testing.assert_allclose(g, (A + A.T) @ X)
    g2, aux = grad_and_aux(lambda x: (np.sum(x ** 2), np.sqrt(np.sum(x ** 2))))(X)
    onp.testing.assert_allclose(g2, 2 * X)
    assert not isinstance(aux, Box) and float(aux) == pytest.approx(onp.linalg.norm(X))


def test_elementwise_grad_and_deriv():
    x = onp.linspace(-2, 2, 7)
    onp.testing.assert_allclose(elementwise_grad(np.tanh)(x), 1 - onp.tanh(x) ** 2)
    assert deriv(np.sin)(0.3) == pytest.approx(onp.cos(0.3))
    onp.testing.assert_allclose(deriv(lambda t: np.array([t, t ** 2, np.exp(t)]))(1.5), [1.0, 3.0, onp.exp(1.5)])


def test_jacobian_shapes_and_values():
    B = R.randn(2, 4, 3)
    J = jacobian(lambda x: np.tensordot(B, x, 1))(X)
    assert J.shape == (2, 4, 3)
    onp.testing.assert_allclose(J, B)
    Jm = jacobian(lambda m: m.T * 2.0)(R.randn(2, 3))
    assert Jm.shape == (3, 2, 2, 3)
    onp.testing.assert_allclose(Jm[1, 0, 0, 1], 2.0)
    assert jacobian(lambda x: np.sum(x ** 2))(X).shape == (3,)
    onp.testing.assert_allclose(jacobian(lambda x, y: x * y, 1)(X, X), onp.diag(X))


def test_hessian_and_hessian_vector_products():
    H = hessian(quadratic)(X)
    onp.testing.assert_allclose(H, A + A.T)
    v = R.randn(3)
    hvp, g = make_hvp(quadratic)(X)
    onp.testing.assert_allclose(g, (A + A.T) @ X)
    onp.testing.assert_allclose(hvp(v), (A + A.T) @ v)
    onp.testing.assert_allclose(hessian_tensor_product(quadratic)(X, v), (A + A.T) @ v)
    onp.testing.assert_allclose(hessian_vector_product(quadratic)(X, v), (A + A.T) @ v)
    # a tensor contracted with the Hessian of a matrix function
    M, V = R.randn(2, 2), R.randn(2, 2)
    onp.testing.assert_allclose(hessian_tensor_product(lambda m: np.sum(m ** 3))(M, V), 6 * M * V)


def test_forward_over_reverse_hessian_vector_product():
    def f(x):
        return np.sum(np.sin(x) * x ** 2) + quadratic(x)

    v = R.randn(3)
    _, hv = make_jvp(grad(f))(X)(v)
    onp.testing.assert_allclose(hv, hessian(f)(X) @ v)
    # and reverse over forward
    onp.testing.assert_allclose(grad(lambda x: make_jvp(f)(x)(v)[1])(X), hessian(f)(X) @ v)


def test_tensor_jacobian_products():
    B = R.randn(4, 3)
    u = R.randn(4)
    onp.testing.assert_allclose(tensor_jacobian_product(lambda x: np.dot(B, x))(X, u), u @ B)
    onp.testing.assert_allclose(vector_jacobian_product(lambda x: np.sin(x))(X, u[:3]), u[:3] * onp.cos(X))


def test_make_vjp_and_make_jvp():
    vjp, ans = make_vjp(lambda x: np.dot(A, x))(X)
    onp.testing.assert_allclose(ans, A @ X)
    u = R.randn(3)
    onp.testing.assert_allclose(vjp(u), A.T @ u)
    value, tangent = make_jvp(lambda x: np.dot(A, x))(X)(u)
    onp.testing.assert_allclose(value, A @ X)
    onp.testing.assert_allclose(tangent, A @ u)


def test_generalised_gauss_newton_vector_product():
    B = R.randn(4, 3)
    v = R.randn(3)
    # g(y) = 0.5 |y|^2 has identity Hessian, so GGN = B^T B
    onp.testing.assert_allclose(make_ggnvp(lambda x: np.dot(B, x))(X)(v), B.T @ B @ v)
    W = onp.diag([1.0, 2.0, 3.0, 4.0])
    ggnvp = make_ggnvp(lambda x: np.dot(B, x), lambda y: 0.5 * np.dot(y, np.dot(W, y)))(X)
    onp.testing.assert_allclose(ggnvp(v), B.T @ W @ B @ v)


def test_checkpoint_gives_the_same_derivatives():
    def block(x, w):
        return np.tanh(np.dot(w, x))

    w = R.randn(3, 3)
    plain = grad(lambda x: np.sum(block(block(x, w), w)))(X)
    saved = checkpoint(block)
    onp.testing.assert_allclose(grad(lambda x: np.sum(saved(saved(x, w), w)))(X), plain)
    onp.testing.assert_allclose(grad(lambda w: np.sum(saved(X, w)))(w), grad(lambda w: np.sum(block(X, w)))(w))
    check_grads(lambda x: np.sum(saved(x, w) ** 2), modes=["fwd", "rev"], order=2)(X)


def test_holomorphic_grad():
    z = 0.3 + 0.7j
    assert holomorphic_grad(lambda z: z ** 3)(z) == pytest.approx(3 * z ** 2)
    assert holomorphic_grad(np.exp)(z) == pytest.approx(onp.exp(z))
    with pytest.warns(UserWarning, match="not complex"):
        holomorphic_grad(np.sin)(0.5)


def test_grad_named_and_multigrad_dict():
    def f(a, b, c=2.0):
        return a * b ** 2 + c

    assert grad_named(f, "b")(3.0, 2.0) == pytest.approx(12.0)
    grads = multigrad_dict(f)(3.0, 2.0)
    assert set(grads) == {"a", "b", "c"}
    assert grads["a"] == pytest.approx(4.0) and grads["b"] == pytest.approx(12.0) and grads["c"] == pytest.approx(1.0)


# ------------------------------------------------------- higher derivatives
def test_sixth_derivative_of_tanh_matches_closed_form():
    # d/dx P(tanh x) = P'(tanh x) (1 - tanh^2 x): derivatives are polynomials in tanh
    poly = onp.polynomial.Polynomial([0.0, 1.0])
    one_minus_t2 = onp.polynomial.Polynomial([1.0, 0.0, -1.0])
    f = np.tanh
    x = onp.linspace(-2.0, 2.0, 9)
    for _ in range(6):
        poly = poly.deriv() * one_minus_t2
        f = elementwise_grad(f)
        onp.testing.assert_allclose(f(x), poly(onp.tanh(x)), rtol=1e-9, atol=1e-9)
    # the same by nesting grad on a scalar, and by forward mode
    g = np.tanh
    h = np.tanh
    for _ in range(6):
        g = grad(g)
        h = deriv(h)
    assert g(0.4) == pytest.approx(poly(onp.tanh(0.4)))
    assert h(0.4) == pytest.approx(poly(onp.tanh(0.4)))


def test_third_derivatives_mixing_modes():
    f = lambda x: np.exp(2 * x) * np.sin(x)  # noqa: E731
    # f''' = e^{2x} (2 sin x + 11 cos x)
    exact = onp.exp(1.0) * (2 * onp.sin(0.5) + 11 * onp.cos(0.5))
    assert grad(grad(grad(f)))(0.5) == pytest.approx(exact)
    assert deriv(grad(deriv(f)))(0.5) == pytest.approx(exact)
    assert grad(deriv(deriv(f)))(0.5) == pytest.approx(exact)


def test_nested_derivatives_do_not_confuse_perturbations():
    # d/dx [x * d/dy (x + y)] = 1 (the inner derivative is 1 whatever x is)
    assert grad(lambda x: x * grad(lambda y: x + y)(1.0))(2.0) == pytest.approx(1.0)
    assert grad(lambda x: grad(lambda y: x * y)(1.0) * x)(3.0) == pytest.approx(6.0)
    assert deriv(lambda x: x * deriv(lambda y: x + y)(1.0))(2.0) == pytest.approx(1.0)


# --------------------------------------------------------------- control flow
def test_loops_branches_recursion_and_closures():
    def power(x, n):
        return 1.0 if n == 0 else x * power(x, n - 1)

    assert grad(lambda x: power(x, 5))(1.3) == pytest.approx(5 * 1.3 ** 4)

    def piecewise(x):
        if x > 0:  # concretised: the branch taken is differentiated
            return x ** 2
        return -3.0 * x

    assert grad(piecewise)(2.0) == pytest.approx(4.0)
    assert grad(piecewise)(-2.0) == pytest.approx(-3.0)

    def loop(x):
        total = 0.0
        for i in range(4):
            total = total + np.sin(x * i)
            while total > 10.0:
                total = total - 1.0
        return total

    assert grad(loop)(0.3) == pytest.approx(sum(i * onp.cos(0.3 * i) for i in range(4)))

    def make_scaled(c):
        return lambda x: c * x ** 2

    scaled = make_scaled(onp.array([1.0, 2.0]))
    onp.testing.assert_allclose(grad(lambda x: np.sum(scaled(x)))(onp.ones(2)), [2.0, 4.0])
    # a closure over a traced value
    assert grad(lambda x: make_scaled(x)(3.0))(2.0) == pytest.approx(9.0)


def test_function_ignoring_its_input_has_zero_gradient():
    assert grad(lambda x: 3.0)(1.0) == 0.0
    onp.testing.assert_array_equal(grad(lambda x: np.sum(onp.ones(3)))(onp.ones(2)), onp.zeros(2))
    assert make_jvp(lambda x: 2.0)(1.0)(1.0) == (2.0, 0.0)


# ------------------------------------------------------------------ operators
def test_operators_of_traced_arrays():
    def f(x, y):
        out = (x + y) * (x - y) / (y ** 2 + 1.0) - (-x) ** 2 + abs(y)
        out = out + 2.0 ** x + x % 0.7 + (x @ y) + onp.arange(3.0) @ x + x.T @ onp.eye(3)
        return np.sum(out + (+x) - 1.0 / (1.0 + x * x) + (3.0 - y) * 2.0)

    check_grads(f, modes=["fwd", "rev"], order=2)(R.randn(3), R.randn(3))


def test_ndarray_methods_of_traced_arrays():
    def f(m):
        out = m.sum(0) + m.mean(axis=1).sum() + m.prod() + m.max(1).sum() + m.min() + m.var() + m.std(ddof=1)
        out = out + m.cumsum(1)[:, -1].sum() + m.cumprod(0)[-1] + m.ravel().dot(m.flatten()) + m.mT[:, 0]
        out = out + m.reshape(3, 2).T.sum(1).sum() + m.transpose().reshape((6,))[:3] + m.swapaxes(0, 1)[:, 1]
        out = out + m.clip(-0.5, 0.5).sum() + m.take([0, 2, 1], axis=1)[0] + m.compress([True, False], axis=0)[0]
        out = out + m.repeat(2, axis=1)[0, :3] + m.diagonal().sum() + m.trace() + m[None].squeeze(0)[1]
        return out + m.conj().real.sum() + m.astype(complex).imag[0] + divmod(m, 0.7)[1][0] + m.copy()[1]

    check_grads(f, modes=["fwd", "rev"], order=2)(R.randn(2, 3))

    def g(x):
        assert x.argmax() == 1 and x.argmin() == 0 and x.argsort().tolist() == [0, 2, 1]
        assert x.nonzero()[0].tolist() == [0, 1, 2] and x.searchsorted(0.5) == 1 and x.argpartition(1)[1] == 2
        assert (x > 0).any() and (x > 0).all() and ((x > 0) & (x < 3)).tolist() == [True, False, True]
        assert (~(x > 2) | (x > 5)).tolist() == [True, False, True] and ((x > 2) ^ True).tolist() == [True, False, True]
        return x.round(1).sum() * 0.0 + np.sum(x)

    onp.testing.assert_allclose(grad(g)(onp.array([0.1, 3.0, 1.0])), onp.ones(3))


@pytest.mark.parametrize("method, args", [("sort", ()), ("partition", (1,)), ("fill", (0.0,)), ("put", ([0], 1.0))])
def test_inplace_ndarray_methods_are_refused(method, args):
    with pytest.raises(TypeError, match="in place|functionally"):
        grad(lambda x: np.sum(getattr(x, method)(*args) or x))(onp.ones(3))


def test_comparisons_and_concrete_values_of_traced_arrays():
    def f(x):
        assert isinstance(x, Box)
        assert (x > 0).dtype == bool and not isinstance(x > 0, Box)
        assert x.shape == (3,) and x.ndim == 1 and x.size == 3 and len(x) == 3 and x.dtype == onp.float64
        # int and bool are piecewise constant: a constant is their exact derivative.
        assert int(x[1]) == 2 and bool(x[0] > 0) and [int(v) for v in x] == [1, 2, 3]
        assert x[1].astype(int).item() == 2 and x.astype(int).tolist() == [1, 2, 3]
        assert onp.ones(4)[x[0].astype(int)] == 1.0 and (range(5)[x[1].astype(int)] == 2)
        return np.sum(x ** 2)

    onp.testing.assert_allclose(grad(f)(onp.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])


@pytest.mark.parametrize("convert, name", [
    (float, "float()"), (complex, "complex()"), (math.exp, "float()"),
    (lambda v: v.item(), "x.item()"), (lambda v: v.tolist(), "x.tolist()")])
def test_conversions_that_drop_a_derivative_raise(convert, name):
    # Before: grad(lambda x: float(x) * 2)(1.0) returned 0.0, a derivative silently dropped.
    def f(x):
        return convert(x[0]) * x[1]

    for operator in (grad, lambda f: lambda x: make_jvp(f)(x)(onp.ones(2))):
        with pytest.raises(TypeError, match=re.escape(name) + r" of a traced value would drop "
                           r"its derivative \(at .*test_core.py:\d+: .*probad\.ad\.numpy"):
            operator(f)(onp.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="would drop its derivative"):
        grad(lambda x: float(x) * 2)(1.0)
    # An integer value has no derivative to drop.
    assert grad(lambda x, n: float(n) * x, 1)(2.0, 3) == 0


def test_traced_python_scalars_answer_metadata_queries():
    def f(x):
        assert x.shape == () and x.ndim == 0 and x.size == 1 and x.dtype == onp.float64
        return x * 2

    assert grad(f)(1.0) == 2.0


def test_numpy_ufunc_with_a_plain_array_on_the_left():
    # ndarray + box must give a box (the box's reflected operator), not an object array
    g = grad(lambda x: np.sum(onp.arange(3.0) * x + onp.ones(3) - x))(onp.ones(3))
    onp.testing.assert_allclose(g, [-1.0, 0.0, 1.0])


# --------------------------------------------------------------------- errors
def test_missing_derivative_names_the_function_and_argument():
    @primitive
    def cube(x, y):
        return x ** 3 * y

    defvjp(cube, lambda ans, x, y: lambda g: 3 * g * x ** 2 * y)
    assert grad(lambda x: cube(x, 2.0))(1.0) == pytest.approx(6.0)
    with pytest.raises(NotImplementedError, match=r"VJP\) of 'cube' with respect to argument 1"):
        grad(lambda y: cube(1.0, y))(2.0)
    with pytest.raises(NotImplementedError, match=r"JVP\) of 'cube' with respect to argument 0"):
        make_jvp(lambda x: cube(x, 2.0))(1.0)(1.0)
    defjvp(cube, lambda g, ans, x, y: 3 * g * x ** 2 * y)
    assert deriv(lambda x: cube(x, 2.0))(1.0) == pytest.approx(6.0)


def test_assignment_into_a_traced_array_is_a_type_error():
    def assign(x):
        x[0] = 1.0
        return np.sum(x)

    with pytest.raises(TypeError, match=r"cannot trace assignment into an array.*np\.where"):
        grad(assign)(onp.ones(3))


@pytest.mark.parametrize("dtype", [float, complex, int])
def test_storing_a_traced_value_into_a_numpy_array_is_refused(dtype):
    def store_scalar(x):
        out = onp.zeros(3, dtype)
        out[1] = x[0]
        return np.sum(x)

    def store_slice(x):
        out = onp.zeros(3, dtype)
        out[:2] = x[:2]
        return np.sum(x)

    for fun in (store_scalar, store_slice):
        with pytest.raises(TypeError) as info:
            grad(fun)(onp.ones(3))
        # numpy re-raises ours as the cause of "setting an array element with a
        # sequence"; grad raises ours, naming the line.
        assert isinstance(info.value, TypeError) and "np.where" in str(info.value)
        assert "test_core.py" in str(info.value) and "out[" in str(info.value)


def test_grad_of_a_non_scalar_function_suggests_alternatives():
    with pytest.raises(TypeError, match="elementwise_grad.*jacobian"):
        grad(lambda x: x * 2)(onp.ones(3))
    with pytest.raises(TypeError, match="holomorphic_grad"):
        grad(lambda x: x * 1j)(1.0)


def test_plain_numpy_on_a_traced_value_is_explained():
    with pytest.raises(TypeError, match="Use probad.ad.numpy in place of numpy"):
        grad(lambda x: onp.sum(onp.asarray(x)))(onp.ones(2))


def test_differentiating_a_non_numeric_value_is_a_type_error():
    with pytest.raises(TypeError, match="can't differentiate"):
        grad(lambda s: 1.0)("text")


# ---------------------------------------------------------------------- dtype
def test_dtype_is_preserved():
    x32 = onp.float32(0.5)
    assert onp.result_type(grad(lambda x: np.sin(x) * x)(x32)) == onp.float32
    assert grad(lambda x: np.sum(x ** 2))(onp.ones(3, onp.float32)).dtype == onp.float32
    assert hessian(lambda x: np.sum(x ** 3))(onp.ones(2, onp.float32)).dtype == onp.float32
    assert jacobian(lambda x: x * 2.0)(onp.ones(2, onp.float32)).dtype == onp.float32
    assert type(grad(lambda x: x * 2.0)(1.0)) in (float, onp.float64)
    z = onp.complex64(1 + 1j)
    assert onp.result_type(grad(lambda z: np.abs(z) ** 2)(z)) == onp.complex64


def test_check_grads_catches_a_wrong_rule():
    @primitive
    def bad_square(x):
        return x ** 2

    defvjp(bad_square, lambda ans, x: lambda g: g * 3 * x)
    defjvp(bad_square, lambda g, ans, x: g * 2 * x)
    check_grads(bad_square, modes=["fwd"], order=1)(1.3)
    with pytest.raises(AssertionError, match=r"\(VJP\) check of .* failed"):
        check_grads(bad_square, modes=["rev"], order=1)(1.3)


A32 = onp.random.RandomState(2).randn(3, 3).astype(onp.float32)


@pytest.mark.parametrize("f", [
    np.sin, np.exp, np.tanh, lambda x: np.sqrt(x * x + 1.0), lambda x: np.dot(A32, x),
    lambda x: np.sum(x ** 2) / np.sum(np.abs(x) + 1.0), lambda x: np.log(np.cosh(x)),
], ids=["sin", "exp", "tanh", "sqrt", "dot", "divide", "log-cosh"])
def test_check_grads_in_float32(f):
    # The finite-difference reference is taken in float64; the derivatives
    # under test are still computed (and checked to stay) in float32.
    x = onp.random.RandomState(3).randn(3).astype(onp.float32)
    assert make_vjp(f)(x)[0](onp.ones_like(f(x))).dtype == onp.float32
    check_grads(f, modes=["fwd", "rev"], order=2)(x)


def test_check_grads_in_complex64():
    z = (onp.random.RandomState(4).randn(2) + 1j * onp.random.RandomState(5).randn(2)).astype(onp.complex64)
    check_grads(lambda z: np.exp(z) * np.conj(z), modes=["fwd", "rev"], order=2)(z)


def test_check_grads_in_float32_still_catches_wrong_rules():
    @primitive
    def sin_slightly_off(x):
        return onp.sin(x)

    # a derivative wrong by 0.1 %, far above float32 rounding
    defvjp(sin_slightly_off, lambda ans, x: lambda g: g * np.cos(x) * onp.float32(1.001))
    defjvp(sin_slightly_off, lambda g, ans, x: g * np.cos(x))
    x = onp.float32([0.3, 1.2])
    check_grads(sin_slightly_off, modes=["fwd"], order=1)(x)
    with pytest.raises(AssertionError, match=r"\(VJP\) check of .* failed"):
        check_grads(sin_slightly_off, modes=["rev"], order=1)(x)

    @primitive
    def sin_widening(x):
        return onp.sin(x)

    # a float64 cotangent for a float32 argument is a dtype bug, not rounding
    defvjp(sin_widening, lambda ans, x: lambda g: onp.cos(onp.float64(x)) * g)
    with pytest.raises(AssertionError, match="vector spaces differ"):
        check_grads(sin_widening, modes=["rev"], order=1)(x)


def test_public_api_names():
    for name in ["grad", "value_and_grad", "grad_and_aux", "elementwise_grad", "jacobian", "hessian",
                 "make_vjp", "make_jvp", "deriv", "make_hvp", "hessian_tensor_product",
                 "hessian_vector_product", "tensor_jacobian_product", "make_ggnvp", "checkpoint",
                 "holomorphic_grad", "grad_named", "multigrad_dict", "tuple", "list", "dict", "isinstance"]:
        assert callable(getattr(ad, name)), name


def test_plain_numpy_on_a_traced_value_says_use_probad_ad_numpy():
    # Before: "operand 'ArrayBox' does not support ufuncs (__array_ufunc__=None)".
    for operator in (grad, lambda f: lambda x: make_jvp(f)(x)(onp.ones(2))):
        with pytest.raises(TypeError, match=r"numpy function was called on a traced value "
                           r"\(at .*test_core.py:\d+: .*onp\.exp.*use probad\.ad\.numpy"):
            operator(lambda x: onp.sum(onp.exp(x)))(onp.ones(2))


def test_grad_of_a_function_returning_none_names_the_output():
    # Before: "can't differentiate with respect to a NoneType", which reads as the input.
    def no_return(x):
        np.sum(x ** 2)

    for operator in (grad, value_and_grad, lambda f: lambda x: make_jvp(f)(x)(1.0)):
        with pytest.raises(TypeError, match="returned None: its output, not its input"):
            operator(no_return)(1.0)
