"""The extension API (``probad.ad.extend``): new primitives and their rules,
linear maps, untraced helpers, a new value type, sparse cotangents."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, make_jvp, make_vjp
from probad.ad.compiler import compile
from probad.ad.extend import (Box, SparseObject, VSpace, def_linear, defjvp, defjvp_argnum, defjvp_argnums,
                              defprimitive, defvjp, defvjp_argnum, defvjp_argnums, defvjp_rule, primitive,
                              unbroadcast_f, vspace)
from probad.ad.tracer import ReverseTrace, ValueMeta, trace_scope
from probad.ad.misc import const_graph
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


def test_defvjp_rule_takes_the_cotangent_with_the_arguments():
    @primitive
    def scaled_square(x, scale=1.0):
        return scale * x ** 2

    calls = []

    def rule(g, ans, x, scale=1.0):
        calls.append(scale)
        return g * 2 * scale * x

    defvjp_rule(scaled_square, rule)
    defjvp(scaled_square, lambda g, ans, x, scale=1.0: g * 2 * scale * x)
    x = R.randn(3)
    onp.testing.assert_allclose(grad(lambda x: np.sum(scaled_square(x, scale=3.0)))(x), 6.0 * x)
    assert calls == [3.0]
    check_grads(lambda x: scaled_square(x, scale=3.0), modes=["fwd", "rev"], order=2)(x)
    defvjp_rule(scaled_square, None)  # None: a zero derivative
    onp.testing.assert_allclose(grad(lambda x: np.sum(scaled_square(x)))(x), onp.zeros(3))


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


def test_defvjp_argnums_and_defjvp_argnums_follow_autograd():
    # autograd's most general forms: the maker gets argnums, args and kwargs
    # unsplatted, and returns every asked-for cotangent at once.
    @primitive
    def mul(x, y):
        return x * y

    partner = {0: 1, 1: 0}
    defvjp_argnums(mul, lambda argnums, ans, args, kwargs: lambda g: [g * args[partner[i]] for i in argnums])
    defjvp_argnums(mul, lambda argnums, gs, ans, args, kwargs: sum(
        g * args[partner[i]] for i, g in zip(argnums, gs)))
    x, y = R.randn(3), R.randn(3)
    gx, gy = grad(lambda x, y: np.sum(mul(x, y)), (0, 1))(x, y)
    onp.testing.assert_allclose(gx, y)
    onp.testing.assert_allclose(gy, x)
    check_grads(mul, modes=["fwd", "rev"], order=2)(x, y)


def test_defprimitive_declares_rules_keeps_and_shape_in_one_call():
    @primitive
    def positives(x):
        return x[x > 0]

    @primitive
    def scale(x, a):
        return a * x

    defprimitive(scale, vjp=(lambda g, ans, x, a: g * a, lambda g, ans, x, a: np.sum(g * x)),
                 jvp=(lambda g, ans, x, a: g * a, lambda g, ans, x, a: g * x),
                 keeps=lambda argnums: (False, tuple(1 - i for i in argnums)))
    # A backend reads its own keyword: declaring a lowering for a new one is local.
    defprimitive(positives, value_shaped=True, my_backend="positives_kernel")
    assert positives.value_shaped and positives.lowerings == {"my_backend": "positives_kernel"}
    assert primitive.lowerings == {}  # declared on the instance, not on every primitive
    x = R.randn(200)  # large enough (1600 bytes) for the tape to drop it
    check_grads(lambda x, a: scale(x, a), modes=["fwd", "rev"], order=1)(x, 1.5)
    with trace_scope(ReverseTrace) as trace:
        scale(trace.new_start(x), 2.0)
    (_, ans, args, _, argnum, _) = trace.tape[1]
    assert argnum == 0 and ans is None and type(args[0]) is ValueMeta and args[1] == 2.0
    # value_shaped: the replay checks the shape, so a new count of positives retraces
    f = compile(lambda x: np.sum(positives(x) * 2.0))
    assert f(onp.array([1.0, -1.0])) == 2.0
    assert f(onp.array([1.0, 1.0])) == 4.0
    assert f.trace_count == 2


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


def test_const_graph_records_once_and_replays():
    calls = []

    def f(x, c, power=2):
        calls.append(1)
        return np.sum(np.sin(x) * c) ** power

    g = const_graph(f, power=3)
    assert g.__name__ == "f"
    x, c = R.randn(3), R.randn(3)
    for _ in range(3):
        onp.testing.assert_allclose(g(x, c), f(x, c, power=3))
        x = x + 1.0
    assert len(calls) == 1 + 3  # traced on the first call only
    # Replays check the recorded path, so branching on a value is safe.
    h = const_graph(lambda x: x if x > 0 else -x)
    assert h(2.0) == 2.0 and h(-3.0) == 3.0
    onp.testing.assert_allclose(grad(lambda x: g(x, c))(x), grad(lambda x: f(x, c, power=3))(x))


# ---------------------------------------------------------- a new value type
class Point:
    """An immutable point in the plane, traceable with ``PointBox``."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


@primitive
def make_point(x, y):
    return Point(x, y)


@primitive
def point_x(p):
    return p.x


@primitive
def point_y(p):
    return p.y


class PointBox(Box):
    __slots__ = ()
    x = property(point_x)
    y = property(point_y)


class PointVSpace(VSpace):
    def __init__(self, value):
        pass

    def zeros(self):
        return Point(0.0, 0.0)

    def ones(self):
        return Point(1.0, 1.0)

    def standard_basis(self):
        return iter([Point(1.0, 0.0), Point(0.0, 1.0)])

    def randn(self):
        return Point(*R.randn(2))

    def add(self, p, q):
        return make_point(p.x + q.x, p.y + q.y)

    def scalar_mul(self, p, a):
        return make_point(a * p.x, a * p.y)

    def inner_prod(self, p, q):
        return p.x * q.x + p.y * q.y


PointBox.register(Point)
VSpace.register(Point, PointVSpace)
defvjp(make_point, lambda ans, x, y: lambda g: g.x, lambda ans, x, y: lambda g: g.y)
defjvp(make_point, lambda g, ans, x, y: make_point(g, 0.0), lambda g, ans, x, y: make_point(0.0, g))
defvjp(point_x, lambda ans, p: lambda g: make_point(g, 0.0))
defjvp(point_x, lambda g, ans, p: g.x)
defvjp(point_y, lambda ans, p: lambda g: make_point(0.0, g))
defjvp(point_y, lambda g, ans, p: g.y)


def test_a_registered_type_is_traced_and_differentiated():
    def potential(p):
        return p.x ** 2 * p.y + np.sin(p.y)  # reads both fields: cotangents meet in PointVSpace.add

    p = Point(1.5, -0.5)
    assert grad(potential)(p) == Point(2 * 1.5 * -0.5, 1.5 ** 2 + onp.cos(-0.5))
    assert make_jvp(potential)(p)(Point(1.0, 0.0))[1] == pytest.approx(2 * 1.5 * -0.5)
    # and as an output: the gradient of a scalar function that builds a point
    assert grad(lambda t: potential(make_point(t, 2 * t)))(0.3) == pytest.approx(
        2 * 0.3 * 0.6 + 2 * 0.3 ** 2 + 2 * onp.cos(0.6))
    check_grads(potential, modes=["fwd", "rev"], order=1)(p)
    # second order: d/dp of the x component 2xy of the gradient
    assert grad(lambda p: grad(potential)(p).x)(p) == Point(2 * -0.5, 2 * 1.5)


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


# ---------------------------------------- the VJP of a broadcasting primitive
@primitive
def scaled_shift(x, a):
    return a * x + a


defvjp(scaled_shift, lambda ans, x, a: unbroadcast_f(x, lambda g: g * a),
       lambda ans, x, a: unbroadcast_f(a, lambda g: g * (x + 1)))


@pytest.mark.parametrize("x_shape, a_shape", [((3,), ()), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2,))])
def test_unbroadcast_f_returns_the_cotangent_in_the_arguments_shape(x_shape, a_shape):
    x, a = R.randn(*x_shape), R.randn(*a_shape)
    gx, ga = grad(lambda x, a: np.sum(scaled_shift(x, a)), (0, 1))(x, a)
    assert onp.shape(gx) == x_shape and onp.shape(ga) == a_shape
    check_grads(scaled_shift, modes=["rev"], order=1)(x, a)
