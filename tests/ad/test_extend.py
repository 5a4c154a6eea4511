"""The extension API (``probad.ad.extend``): new primitives and their rules,
linear maps, sparse cotangents."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, make_jvp, make_vjp
from probad.ad.extend import (SparseObject, def_linear, defjvp, defjvp_argnum, defvjp, defvjp_argnum, primitive,
                              vspace)
from probad.ad.test_util import check_grads

R = onp.random.RandomState(0)


# ------------------------------------------------------ primitives and rules
@primitive
def cube(x):
    return x ** 3


defvjp(cube, lambda ans, x: lambda g: g * 3 * x ** 2)
defjvp(cube, lambda g, ans, x: g * 3 * x ** 2)


def test_primitive_with_defvjp_and_defjvp():
    x = R.randn(3)
    onp.testing.assert_allclose(grad(lambda x: np.sum(cube(x)))(x), 3 * x ** 2)
    onp.testing.assert_allclose(make_jvp(cube)(x)(onp.ones(3))[1], 3 * x ** 2)
    # The rules are written with probad.ad.numpy, so they differentiate again.
    check_grads(cube, modes=["fwd", "rev"], order=2)(x)
    assert cube(2.0) == 8.0 and cube.__name__ == "cube"


def test_defvjp_with_argnums_and_a_zero_derivative():
    @primitive
    def affine(a, x, b):
        return a * x + b

    defvjp(affine, lambda ans, a, x, b: lambda g: g * a, lambda ans, a, x, b: lambda g: g, argnums=(1, 2))
    assert grad(affine, (1, 2))(2.0, 3.0, 4.0) == (2.0, 1.0)
    with pytest.raises(NotImplementedError, match="'affine' with respect to argument 0"):
        grad(affine)(2.0, 3.0, 4.0)
    defvjp(affine, None)  # None: a zero derivative
    assert grad(affine)(2.0, 3.0, 4.0) == 0.0


def test_defvjp_argnum_and_defjvp_argnum():
    @primitive
    def sub(x, y, scale=1.0):
        return scale * (x - y)

    sign = {0: 1.0, 1: -1.0}
    defvjp_argnum(sub, lambda argnum, ans, x, y, scale=1.0: lambda g: sign[argnum] * scale * g)
    defjvp_argnum(sub, lambda argnum, g, ans, x, y, scale=1.0: sign[argnum] * scale * g)
    x, y = R.randn(2), R.randn(2)
    gx, gy = grad(lambda x, y: np.sum(sub(x, y, scale=3.0)), (0, 1))(x, y)
    onp.testing.assert_allclose(gx, 3.0)
    onp.testing.assert_allclose(gy, -3.0)
    check_grads(lambda x, y: sub(x, y, scale=3.0), modes=["fwd", "rev"], order=2)(x, y)


# ------------------------------------------------------------ linear maps
@primitive
def csum(x):
    return onp.cumsum(x)


def_linear(csum)


def test_def_linear_defines_forward_mode_only():
    x, v = R.randn(3), R.randn(3)
    _, tangent = make_jvp(csum)(x)(v)
    onp.testing.assert_allclose(tangent, onp.cumsum(v))
    check_grads(csum, modes=["fwd"], order=2)(x)
    # The VJP of a linear map is its transpose, which csum itself is not.
    with pytest.raises(NotImplementedError, match="'csum' with respect to argument 0"):
        grad(lambda x: np.sum(csum(x)))(x)


def test_def_linear_with_the_transpose_as_vjp():
    @primitive
    def cumsum(x):
        return onp.cumsum(x)

    def_linear(cumsum)
    defvjp(cumsum, lambda ans, x: lambda g: cumsum(g[::-1])[::-1])
    w = onp.array([1.0, 10.0, 100.0])
    onp.testing.assert_allclose(grad(lambda x: np.sum(cumsum(x) * w))(onp.ones(3)), [111.0, 110.0, 100.0])
    check_grads(cumsum, modes=["fwd", "rev"], order=2)(R.randn(4))


def test_def_linear_in_each_of_two_arguments():
    @primitive
    def outer(x, y):
        return onp.outer(x, y)

    def_linear(outer)  # bilinear: d outer = outer(dx, y) + outer(x, dy)
    x, y, dx, dy = R.randn(2), R.randn(3), R.randn(2), R.randn(3)
    _, tangent = make_jvp(lambda xy: outer(*xy))((x, y))((dx, dy))
    onp.testing.assert_allclose(tangent, onp.outer(dx, y) + onp.outer(x, dy))


# ------------------------------------------------------- sparse cotangents
@primitive
def take(x, i):
    return x[i]


def _take_vjp(ans, x, i):
    vs = vspace(x)

    def vjp(g):
        def mut_add(dense):
            dense[i] += g  # in place: the backward pass passes a buffer it owns
            return dense

        return SparseObject(vs, mut_add)

    return vjp


defvjp(take, _take_vjp, None)
W = onp.array([1.0, 10.0, 100.0])


@pytest.mark.parametrize("f, dense", [
    (lambda x: take(x, 1), lambda x: x[1]),
    (lambda x: np.sin(take(x, 1)) + take(x, 0) + take(x, 1), lambda x: np.sin(x[1]) + x[0] + x[1]),
    # sum's cotangent is a read-only broadcast view of g
    (lambda x: np.sum(x) + take(x, 1), lambda x: np.sum(x) + x[1]),
    # p and q get the very same cotangent array from the add below them
    (lambda x: (lambda p, q: np.sum((p + q) * W) + take(p, 1) * 1000 + take(q, 2))(x * 1.0, x * 1.0),
     lambda x: (lambda p, q: np.sum((p + q) * W) + p[1] * 1000 + q[2])(x * 1.0, x * 1.0)),
])
def test_sparse_cotangents_match_dense_ones(f, dense):
    x = onp.ones(3)
    onp.testing.assert_allclose(grad(f)(x), grad(dense)(x))
    check_grads(f, modes=["rev"], order=1)(R.randn(3))


def test_sparse_cotangent_leaves_the_callers_cotangent_alone():
    vjp, _ = make_vjp(lambda x: np.positive(x) + take(x, 0))(onp.ones(2))
    g = onp.array([1.0, 2.0])
    onp.testing.assert_allclose(vjp(g), [1.0 + 3.0, 2.0])
    assert g.tolist() == [1.0, 2.0]
