"""probad.ad as a drop-in for autograd: the idioms autograd's users and
extension authors write, checked against autograd's documented behaviour and,
where it is installed, against autograd itself (the oracle: the same function
differentiated by both must agree)."""
from __future__ import annotations

import re
import sys

import numpy as onp
import pytest
import xarray as xr  # installed with arviz, a core dependency

import probad.ad as ag
import probad.ad.numpy as np
from probad.ad import autograd_alias, grad, make_jvp
from probad.ad.extend import defjvp, defvjp, primitive
from probad.ad.test_util import check_grads

try:
    import autograd
    import autograd.numpy as anp
except ImportError:  # the `test` extra installs it
    autograd = anp = None

needs_autograd = pytest.mark.skipif(autograd is None, reason="autograd (the oracle) is not installed")

rng = onp.random.default_rng(15)


# ------------------------------------------------------- modules and names
def test_wrap_util_names_results_as_autograd_does():
    from probad.ad.wrap_util import unary_to_nary, wrap_nary_f, wraps

    @unary_to_nary
    def double_grad(fun, x):
        return 2 * grad(fun)(x)

    def loss(a, b):
        """A loss."""
        return a * b ** 2

    g = double_grad(loss, 1)
    assert g.__name__ == "double_grad_of_loss_wrt_argnum_1"
    assert g(3.0, 2.0) == pytest.approx(2 * 2 * 3.0 * 2.0)
    # A tuple argnum: the operator sees the tuple of those arguments.
    @unary_to_nary
    def gradient(fun, x):
        return grad(fun)(x)

    assert tuple(gradient(lambda a, b: a * b ** 2, (0, 1))(3.0, 2.0)) == pytest.approx((4.0, 12.0))
    assert grad(loss).__name__ == "grad_of_loss_wrt_argnum_0"

    @wraps(loss, "new_{fun}", "{doc} (wrapped)")
    def other():
        pass

    assert other.__name__ == "new_loss" and other.__doc__ == "A loss. (wrapped)"
    named = wrap_nary_f(loss, double_grad, 0)(lambda: None)
    assert named.__name__ == "double_grad_of_loss_wrt_argnum_0"


def test_core_exports_autograds_names():
    from probad.ad import core

    for name in ["make_vjp", "make_jvp", "primitive_vjps", "primitive_jvps", "defvjp", "defvjp_argnum",
                 "defvjp_argnums", "defjvp", "defjvp_argnum", "defjvp_argnums", "def_linear", "VSpace", "vspace",
                 "SparseObject", "add_outgrads", "sum_outgrads", "translate_vjp", "translate_jvp", "identity_vjp",
                 "identity_jvp", "primitive", "Box", "Node", "trace", "getval", "isbox", "func", "subval"]:
        assert hasattr(core, name), name
    assert core.sum_outgrads([1.0, 2.0, 3.0]) == 6.0
    assert core.subval((1, 2, 3), 1, 9) == (1, 9, 3)


def test_primitive_vjps_reads_probads_rules():
    from probad.ad.core import primitive_vjps, primitive_jvps

    assert np.sin in primitive_vjps and np.sin in primitive_jvps
    assert np.sin in set(primitive_vjps)  # iterating lists the primitives that have rules
    x = 0.3
    (g,) = primitive_vjps[np.sin]((0,), np.sin(x), (x,), {})(2.0)
    assert g == pytest.approx(2.0 * onp.cos(x))
    assert primitive_jvps[np.sin]((0,), (2.0,), np.sin(x), (x,), {}) == pytest.approx(2.0 * onp.cos(x))

    @primitive
    def plain(x):
        return x

    assert plain not in primitive_vjps
    with pytest.raises(KeyError):
        primitive_vjps[plain]


def test_primitive_vjps_assignment_defines_and_copies_rules():
    from probad.ad.core import primitive_vjps, primitive_jvps

    @primitive
    def my_sin(x):
        return onp.sin(x)

    primitive_vjps[my_sin] = primitive_vjps[np.sin]  # copying an entry shares the rules
    primitive_jvps[my_sin] = primitive_jvps[np.sin]
    check_grads(my_sin, modes=["fwd", "rev"], order=2)(0.7)

    @primitive
    def cube(x):
        return x ** 3

    # autograd's most general forms: a VJP maker over argnums, a JVP rule over them.
    primitive_vjps[cube] = lambda argnums, ans, args, kwargs: lambda g: [3 * args[0] ** 2 * g for _ in argnums]
    primitive_jvps[cube] = lambda argnums, gs, ans, args, kwargs: 3 * args[0] ** 2 * gs[0]
    check_grads(cube, modes=["fwd", "rev"], order=1)(1.3)


def test_scalar_close_and_check_equivalent():
    from probad.ad.test_util import check_equivalent, scalar_close

    assert scalar_close(1.0, 1.0 + 1e-7) and scalar_close(1e6, 1e6 * (1 + 1e-7))
    assert not scalar_close(1.0, 1.001)
    check_equivalent((onp.ones(2), 1.0), (onp.ones(2) + 1e-9, 1.0))
    with pytest.raises(AssertionError):
        check_equivalent(onp.ones(2), onp.ones(2) * 1.1)
    with pytest.raises(AssertionError, match="VSpace mismatch"):
        check_equivalent(onp.ones(2), onp.ones(3))


def test_check_grads_failure_messages_name_the_mode_and_function():
    @primitive
    def foo(x):
        return x ** 2

    defvjp(foo, lambda ans, x: lambda g: g * 3 * x)  # wrong on purpose: 3x instead of 2x
    defjvp(foo, lambda g, ans, x: g * 3 * x)
    with pytest.raises(AssertionError, match=re.escape("(VJP) check of foo failed")):
        check_grads(foo, modes=["rev"], order=1)(1.3)
    with pytest.raises(AssertionError, match=re.escape("(JVP) check of foo failed")):
        check_grads(foo, modes=["fwd"], order=1)(1.3)


@needs_autograd
def test_numpy_version_and_linalg_helpers_match_autograd():
    assert np.__version__ == onp.__version__ == anp.__version__
    from autograd.numpy import linalg as agl

    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))
    v = rng.normal(size=(2, 3))
    onp.testing.assert_allclose(np.linalg._dot(a, b), agl._dot(a, b))
    m = rng.normal(size=(2, 3, 3))
    onp.testing.assert_allclose(np.linalg._diag(m), agl._diag(m))
    onp.testing.assert_allclose(np.linalg._diag(v[0]), agl._diag(v[0]))
    onp.testing.assert_allclose(np.linalg._matrix_diag(v), agl._matrix_diag(v))
    onp.testing.assert_allclose(np.linalg.T(a), agl.T(a))
    onp.testing.assert_allclose(np.linalg.add2d(v), agl.add2d(v))
    assert np.linalg._primitive_norm(v) == pytest.approx(agl._primitive_norm(v))
    check_grads(np.linalg._dot, argnum=(0, 1), modes=["fwd", "rev"], order=1)(a, b)


# ---------------------------------------- traced values inside containers
@needs_autograd
@pytest.mark.parametrize("name", ["mean", "std", "var"])
def test_reductions_of_lists_of_traced_values(name):
    def make(n):
        return lambda x: getattr(n, name)([x, x * x + 2, n.sin(x)])

    assert grad(make(np))(0.7) == pytest.approx(autograd.grad(make(anp))(0.7), rel=1e-12)
    check_grads(make(np), modes=["fwd", "rev"], order=2)(0.7)


@needs_autograd
def test_norm_of_a_list_of_traced_values():
    def make(n):
        return lambda x: n.linalg.norm([x, 2 * x, n.exp(x)])

    assert grad(make(np))(0.4) == pytest.approx(autograd.grad(make(anp))(0.4), rel=1e-12)
    check_grads(make(np), modes=["fwd", "rev"], order=2)(0.4)


def test_nested_higher_order_grad_through_a_tuple():
    """autograd's test_nested_higher_order: ``np.array`` of the tuple that
    ``grad`` returns, inside an outer ``grad``, in both modes."""
    def outer_fun(x):
        def inner_fun(y):
            return y[0] * y[1]

        return np.sum(np.sin(np.array(grad(inner_fun)(ag.tuple((x, x))))))

    check_grads(outer_fun)(5.0)
    check_grads(grad(outer_fun))(10.0)
    check_grads(grad(grad(outer_fun)))(10.0)
    # d/dx sum(sin([x, x])) = 2 cos(x)
    assert grad(outer_fun)(0.3) == pytest.approx(2 * onp.cos(0.3))
    value, tangent = make_jvp(lambda x: np.asarray(grad(lambda y: y[0] * y[1])(ag.tuple((x, 2 * x)))))(1.5)(1.0)
    onp.testing.assert_allclose(value, [3.0, 1.5])
    onp.testing.assert_allclose(tangent, [2.0, 1.0])


R_C_CASES = {
    "r_ pieces, scalars and a slice": lambda n, x: n.r_[x, 1.0, x[:2], 0:3],
    "r_ of scalars": lambda n, x: n.r_[x[0], 2.0, x[1]],
    "r_ complex-step range": lambda n, x: n.r_[-1:1:3j, x],
    "r_ directive": lambda n, x: n.r_["0,2", x, x * 2],
    "c_ columns": lambda n, x: n.c_[x, onp.ones(3), x ** 2],
    "c_ of scalars": lambda n, x: n.c_[x[0], 2.0, x[1]],
}


@needs_autograd
@pytest.mark.filterwarnings("ignore:.* is slow for array inputs")  # autograd's warning
@pytest.mark.parametrize("case", list(R_C_CASES))
def test_r_and_c_with_traced_pieces(case):
    build = R_C_CASES[case]
    x = onp.array([0.5, 1.5, 2.5])
    ours, theirs = build(np, x), build(anp, x)
    assert ours.dtype == theirs.dtype and onp.array_equal(ours, theirs)
    w = rng.normal(size=theirs.shape)
    g = grad(lambda x: np.sum(build(np, x) ** 2 * w))(x)
    onp.testing.assert_allclose(g, autograd.grad(lambda x: anp.sum(build(anp, x) ** 2 * w))(x), rtol=1e-13)
    check_grads(lambda x: build(np, x), modes=["fwd", "rev"], order=1)(x)


# ------------------------------------------------------------------- casts
@needs_autograd
def test_integer_cast_of_a_traced_array_is_an_index_without_gradient():
    def make(n):
        def f(x):
            i = n.int64(x)
            assert isinstance(i, onp.ndarray) and i.dtype == onp.int64
            return n.sum(x[i] * x)
        return f

    x = onp.array([0.3, 1.7, 0.1, 2.2])
    assert make(np)(x) == make(anp)(x)
    onp.testing.assert_allclose(grad(make(np))(x), autograd.grad(make(anp))(x))
    # A cast in the middle of a chain passes no derivative: d/dx (x * int(x)) = int(x).
    assert grad(lambda x: x * np.int64(x))(2.7) == 2.0


# ------------------------------------------ missing functions and signatures
@needs_autograd
def test_make_diagonal_matches_autograd_and_generalises():
    D = rng.normal(size=(2, 3))
    onp.testing.assert_array_equal(np.make_diagonal(D, 0, -1, -2), anp.make_diagonal(D, 0, -1, -2))
    for offset, axis1, axis2 in [(0, -1, -2), (0, 0, 1), (1, 0, 2), (-2, 2, 0)]:
        M = np.make_diagonal(D, offset, axis1, axis2)
        onp.testing.assert_array_equal(onp.diagonal(M, offset, axis1, axis2), D)
        assert onp.count_nonzero(M) == onp.count_nonzero(D)
        check_grads(lambda D: np.make_diagonal(D, offset, axis1, axis2), modes=["fwd", "rev"], order=2)(D)
    with pytest.raises(ValueError, match="must differ"):
        np.make_diagonal(D, 0, 1, 1)


def test_diagonal_and_swapaxes_with_keyword_axes():
    x = rng.normal(size=(2, 3, 3))
    check_grads(lambda x: np.diagonal(x, axis1=1, axis2=2), modes=["fwd", "rev"], order=2)(x)
    check_grads(lambda x: np.swapaxes(x, axis1=0, axis2=2), modes=["fwd", "rev"], order=2)(x)
    check_grads(lambda x: x.swapaxes(0, 1), modes=["fwd", "rev"], order=1)(x)


def test_einsum_with_a_zero_length_broadcast_axis():
    a, b = onp.ones((0, 2, 3)), onp.ones((0, 3, 4))
    out = np.einsum("...ij,...jk->...ik", a, b)
    assert out.shape == (0, 2, 4)
    g = grad(lambda a: np.sum(np.einsum("...ij,...jk->...ik", a, b)))(a)
    assert g.shape == (0, 2, 3)
    # And a broadcast (length-1) batch axis against a nonzero one still sums back.
    c, d = rng.normal(size=(1, 2, 3)), rng.normal(size=(4, 3, 2))
    check_grads(lambda c: np.einsum("...ij,...jk->...ik", c, d), modes=["fwd", "rev"], order=1)(c)


def test_dirichlet_rvs_draws_but_has_no_derivative():
    from probad.ad.scipy.stats import dirichlet

    alpha = onp.array([1.0, 2.0, 3.0])
    draws = dirichlet.rvs(alpha, size=5, random_state=0)
    assert draws.shape == (5, 3)
    onp.testing.assert_allclose(draws.sum(axis=1), 1.0)
    with pytest.raises(NotImplementedError, match="rvs"):  # as in autograd: no VJP is defined
        grad(lambda a: np.sum(dirichlet.rvs(a, random_state=0)[0] ** 2))(alpha)


# --------------------------------------------------- derivative plumbing
@needs_autograd
def test_imag_jvp_is_real_for_complex_input():
    x = onp.array([1.0 + 2.0j, -0.5 + 0.1j])
    v = onp.array([0.3 - 1.0j, 2.0 + 0.5j])
    value, tangent = make_jvp(np.imag)(x)(v)
    theirs = autograd.make_jvp(anp.imag)(x)(v)[1]
    assert not onp.iscomplexobj(tangent) and not onp.iscomplexobj(theirs)
    onp.testing.assert_array_equal(tangent, v.imag)
    onp.testing.assert_array_equal(tangent, theirs)
    check_grads(np.imag, modes=["fwd", "rev"], order=2)(x)


# ------------------------------------- array-likes with __array_ufunc__

BASE, OTHER = onp.array([0.5, -1.0, 1.5]), onp.array([4.0, 5.0, 6.0])
DATAARRAY_CASES = {
    "box * DataArray": lambda n, x: x * xr.DataArray(BASE),
    "DataArray * box": lambda n, x: xr.DataArray(BASE) * x,
    "abs": lambda n, x: n.abs(xr.DataArray(BASE) * x),
    "sin": lambda n, x: n.sin(xr.DataArray(BASE) * x),
    "exp": lambda n, x: n.exp(xr.DataArray(BASE) * x),
    "two holding boxes": lambda n, x: (xr.DataArray(BASE) * x) * (xr.DataArray(OTHER) * x),
    "plus a plain DataArray": lambda n, x: (xr.DataArray(BASE) * x) + xr.DataArray(OTHER),
    "times an ndarray": lambda n, x: (xr.DataArray(BASE) * x) * OTHER,
    "times a float": lambda n, x: (xr.DataArray(BASE) * x) * 5.0,
    "division": lambda n, x: xr.DataArray(BASE) / x,
    "maximum": lambda n, x: n.maximum(xr.DataArray(BASE) * x, 0.0),
    "box * DataArray holding a box": lambda n, x: x * (xr.DataArray(BASE) * x),
}


@pytest.mark.parametrize("case", list(DATAARRAY_CASES))
def test_a_traced_value_inside_a_dataarray_keeps_tracing(case):
    build = DATAARRAY_CASES[case]

    def f(x):
        out = build(np, x)
        assert isinstance(out, xr.DataArray)
        return np.sum(out.data)

    x0 = 1.7
    assert f(x0) == pytest.approx(float(onp.sum(build(onp, x0).data)), rel=1e-14)
    check_grads(f, modes=["fwd", "rev"], order=2)(x0)
    if autograd is not None:
        assert grad(f)(x0) == pytest.approx(autograd.grad(lambda x: anp.sum(build(anp, x).data))(x0), rel=1e-13)


def test_dataarray_of_an_array_valued_box():
    coeffs = onp.array([2.0, 3.0, 4.0])
    g = grad(lambda x: np.sum((xr.DataArray(coeffs) * x).data))(onp.array([1.0, -1.0, 0.5]))
    onp.testing.assert_array_equal(g, coeffs)


def test_plain_numpy_on_a_traced_value_still_refuses():
    """Dispatch to containers does not make numpy itself accept traced values."""
    with pytest.raises(TypeError):
        grad(lambda x: onp.exp(x))(1.0)


# -------------------------------------------- extension authors' idioms
def test_node_trace_sees_every_primitive_call():
    from probad.ad.tracer import Node, trace

    class RecordingNode(Node):
        def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
            self.calls = parents[0].calls
            self.calls.append((fun.__name__, tuple(parent_argnums)))

        def initialize_root(self):
            self.calls = []

    root = RecordingNode.new_root()
    value, end = trace(root, lambda x: np.sin(x + x) * 2.0, 1.2)
    assert value == pytest.approx(2 * onp.sin(2.4))
    assert end.calls == [("add", (0, 1)), ("sin", (0,)), ("multiply", (0,))]
    with pytest.warns(UserWarning, match="independent of input"):
        assert trace(RecordingNode.new_root(), lambda x: 3.0, 1.2) == (3.0, None)


def test_primitive_as_a_method_and_a_vspace_with_autograds_underscored_methods():
    """The shape of autograd's RKHS example: a primitive method of a value
    class, a Box and a VSpace for that class defining ``_add`` and friends."""
    from probad.ad.extend import Box, VSpace

    class Weights:
        def __init__(self, w):
            self.w = w

        @primitive
        def dot(self, x):
            return self.w @ x

    class WeightsBox(Box, Weights):
        pass

    class WeightsVSpace(VSpace):
        def __init__(self, value):
            self.n = len(value.w)

        def zeros(self):
            return Weights(onp.zeros(self.n))

        def _add(self, a, b):
            return Weights(a.w + b.w)

        def _scalar_mul(self, a, c):
            return Weights(a.w * c)

        def _inner_prod(self, a, b):
            return a.w @ b.w

    WeightsBox.register(Weights)
    WeightsVSpace.register(Weights)
    defvjp(Weights.dot, lambda ans, self, x: lambda g: Weights(g * x))
    x = onp.array([1.0, 2.0, 3.0])
    g = grad(lambda W: W.dot(x) + 2 * W.dot(x))(Weights(onp.ones(3)))
    onp.testing.assert_array_equal(g.w, 3 * x)


def test_fixed_point_gradients_to_second_order():
    from probad.ad.misc.fixed_points import fixed_point

    def newton_sqrt(a):
        return fixed_point(lambda a: lambda x: 0.5 * (x + a / x), a, 1.0, lambda x, y: np.abs(x - y), 1e-12)

    assert newton_sqrt(2.0) == pytest.approx(onp.sqrt(2.0), rel=1e-14)
    # d sqrt(a) = 1 / (2 sqrt a), d2 = -1 / (4 a^1.5); the fixed point is
    # converged to 1e-12, so the derivatives agree to about that.
    assert grad(newton_sqrt)(2.0) == pytest.approx(0.5 / onp.sqrt(2.0), rel=1e-10)
    assert grad(grad(newton_sqrt))(2.0) == pytest.approx(-0.25 * 2.0 ** -1.5, rel=1e-8)


def test_odeint_with_a_nest_of_parameters():
    """autograd's ODE-net idiom: ``args`` holds a list of ``(W, b)`` pairs."""
    from probad.ad.misc.flatten import flatten
    from probad.ad.scipy.integrate import odeint

    params = [(0.3 * rng.normal(size=(2, 3)), 0.1 * rng.normal(size=3)),
              (0.3 * rng.normal(size=(3, 2)), 0.1 * rng.normal(size=2))]

    def dynamics(y, t, params):
        for W, b in params:
            y = np.tanh(np.dot(y, W) + b)
        return y

    def loss(params):
        return np.sum(odeint(dynamics, onp.array([1.0, -0.5]), onp.linspace(0, 1, 4),
                             ag.tuple((params,)), rtol=1e-10, atol=1e-10) ** 2)

    flat, unflatten = flatten(params)
    g_flat, _ = flatten(grad(loss)(params))
    direction = rng.normal(size=flat.shape)
    eps = 1e-5
    fd = (loss(unflatten(flat + eps * direction)) - loss(unflatten(flat - eps * direction))) / (2 * eps)
    # Tolerances 1e-10 make the adjoint gradient good to ~1e-8 relative.
    assert onp.dot(g_flat, direction) == pytest.approx(fd, rel=1e-6)


# ------------------------------------------------------------ the alias
def test_the_alias_resolves_autograd_to_probad_and_restores_it():
    before = sys.modules.get("autograd")
    with autograd_alias.aliased():
        import autograd as aliased
        import autograd.misc.optimizers as optimizers
        import autograd.numpy.random as npr
        from autograd.scipy.stats import norm
        from autograd.util import func  # autograd's util resolves to wrap_util

        assert aliased is ag and npr is np.random and optimizers.adam is ag.misc.optimizers.adam
        assert norm.logpdf(0.0) == pytest.approx(-0.5 * onp.log(2 * onp.pi))
        assert func(len) is len
        with pytest.raises(ModuleNotFoundError):
            import autograd.no_such_module  # noqa: F401
    assert sys.modules.get("autograd") is before
