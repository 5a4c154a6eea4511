"""From tape to replay (``compiler/codegen.py``): simplification, dead code,
the rewrites of what the backward pass leaves behind, and emission that
gives the same bits as the numpy calls."""
import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, value_and_grad
from probad.ad.compiler import compile
from probad.ad.extend import defprimitive, primitive
from tests.ad.compiler.eager_cases import assert_same, check_against_eager, only_tapes, rng, garch_loglik, X3


DATA = rng.normal(size=50)


def _bits(value):
    return [onp.asarray(v).tobytes() for v in value] if isinstance(value, tuple) \
        else onp.asarray(value).tobytes()


def test_garch_value_and_grad_matches_eager():
    y = rng.normal(size=60)
    inputs = [(onp.array([0.1, 0.2, 0.7]), y), (onp.array([0.2, 0.1, 0.6]), y)]
    compiled = check_against_eager(value_and_grad(garch_loglik), inputs)
    tape = only_tapes(compiled)[0]
    # Scalar arithmetic is emitted as Python operators: much of the tape is not a ufunc call.
    assert " * " in tape.source and " / " in tape.source


def test_peepholes_drop_identity_ops():
    def f(x):
        y = np.reshape(x, x.shape) * 1.0
        z = np.broadcast_to(y, (3,)) / 1.0 - 0.0
        return np.sum(z, axis=()) * 2.0

    compiled = compile(f)
    x = onp.array([1.0, -0.0, onp.nan])
    for _ in range(2):
        got = compiled(x)
        assert_same(got, f(x))
        assert onp.array_equal(onp.signbit(got), onp.signbit(f(x)))  # -0.0 stays -0.0
    tape = only_tapes(compiled)[0]
    # sum over no axes stays: it turns -0.0 into +0.0, so it is no identity
    assert [op.name for op in tape.ops] == ["sum", "multiply"]
    assert tape.n_recorded == 7


def test_dead_code_is_eliminated():
    def f(x):
        unused = np.exp(x) * 3.0  # noqa: F841
        return np.sin(x)

    tape = only_tapes(check_against_eager(f, [(X3,)]))[0]
    assert [op.name for op in tape.ops] == ["sin"]


@pytest.mark.parametrize("check", ["cholesky", "solve", "odeint"])
def test_unused_operations_that_may_raise_are_kept(check):
    # Before: a Cholesky factor computed only as a check was dead code, so the
    # replay returned a value where the function raises LinAlgError.
    from probad.ad.scipy.integrate import ODEintError, odeint

    def f(x):
        m = np.eye(2) + x * np.array([[0.0, 1.0], [1.0, 0.0]])
        if check == "cholesky":
            np.linalg.cholesky(m)
        elif check == "solve":
            np.linalg.solve(m, np.ones(2))
        else:  # blows up in finite time for x > 1: the solver gives up
            odeint(lambda y, t, k: k * y * y, onp.array([1.0]), onp.array([0.0, 1.0]), (x,), mxstep=50)
        return np.sum(m * x)

    for fun in (f, value_and_grad(f)):
        compiled = compile(fun)
        assert_same(compiled(0.5), fun(0.5))
        error = ODEintError if check == "odeint" else onp.linalg.LinAlgError
        for _ in range(2):  # a fresh trace, then a replay
            with pytest.raises(error):
                fun(1.0 if check == "solve" else 1.5)
            with pytest.raises(error):
                compiled(1.0 if check == "solve" else 1.5)
        assert compiled.trace_count == 1


def test_constant_outputs_are_fresh_arrays():
    compiled = compile(lambda x: (x * 2, onp.zeros(2), "tag"))
    compiled(1.0)
    first = compiled(1.0)
    first[1][:] = 5.0
    assert_same(compiled(1.0), (onp.float64(2.0), onp.zeros(2), "tag"))


def test_numpy_wrappers_called_as_methods_agree():
    def f(x):
        a = np.sum(x, axis=0, keepdims=True) + np.sum(x, 1)[:, None] + np.sum(x)
        b = np.transpose(x, axes=(1, 0)) @ np.swapaxes(x, 0, 1).T
        c = np.mean(x, axis=1, keepdims=True) * np.mean(x)
        d = np.squeeze(np.expand_dims(x, 0)) + np.reshape(x, (2, 3)).reshape(x.shape, order="F")
        return a, b, c, d, np.squeeze(x[:1], axis=0)

    x = rng.normal(size=(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_eager(f, [(x,), (x * 2,)])
        tape = only_tapes(check_against_eager(value_and_grad(lambda x: np.sum(f(x)[1])), [(x,)]))[0]
    assert "np.sum" not in tape.source and "add_reduce(" in tape.source


def test_the_sum_of_a_numpy_scalar_is_a_direct_reduction():
    # A scalar site's log density summed to one number: numpy.sum's wrapper
    # costs more than the value itself; add.reduce gives the same scalar.
    def f(x):
        return np.sum(np.sum(x) * 2.0) + np.sum(np.float32(1.5) * x[0])

    x = rng.normal(size=3)
    tapes = only_tapes(check_against_eager(f, [(x,), (x + 1,)]))
    source = tapes[0].source
    assert "f_sum" not in source and source.count("add_reduce(") == 3
    assert type(compile(f)(x)) is type(f(x))


def test_elementwise_ops_read_through_broadcasts():
    # A plate-wide density with a scalar scale: the scale is broadcast, then
    # divided into each element and its log taken. The log runs once.
    def f(q):
        scale = np.broadcast_to(np.exp(q[0]), (50,))
        z = (DATA - q[1]) / scale
        return np.sum(-0.5 * z * z - np.log(scale))

    q = onp.array([0.3, -0.2])
    eager = value_and_grad(f)(q)
    tape = only_tapes(check_against_eager(value_and_grad(f), [(q,), (q * 2,)]))[0]
    assert "broadcast_to" not in [op.name for op in tape.ops]
    (exp,) = [op for op in tape.ops if op.name == "exp"]
    (log,) = [op for op in tape.ops if op.name == "log"]
    assert log.args[0].index == exp.out  # the log of the scalar, not of its 50 copies
    assert _bits(compile(value_and_grad(f))(q)) == _bits(eager)  # the same bits


def test_unary_of_a_broadcast_still_broadcasts_where_needed():
    def f(x):
        b = np.exp(np.broadcast_to(x, (2, 3)))
        c = np.sin(np.broadcast_to(x, (2, 3)))
        return b, c * onp.ones((4, 2, 3))  # returned, and broadcast further

    check_against_eager(f, [(onp.float64(0.1),), (onp.float64(-2.0),)])
    x = onp.array([0.5, 1.0, 2.0])
    compiled = check_against_eager(f, [(x,), (x * 2,)])
    b, _ = compiled(x)
    b[0, 0] = 1.0  # an output is a fresh array, as eager gives, not a broadcast view
    tape = only_tapes(compiled)[0]
    assert [op.name for op in tape.ops] == ["broadcast_to", "exp", "sin", "multiply"]
    assert tape.ops[2].args[0].index == 0  # sin of x itself, its broadcast absorbed


def test_gradient_slices_are_written_into_one_buffer():
    # Sites are slices of q; their gradients come back as scatters into
    # zeros, summed: one buffer and one write per site instead.
    def f(q):
        a, b, c = np.reshape(q[0:1], ()), q[1:4], np.reshape(q[4:8], (2, 2))
        return a * np.sum(b ** 2) + np.sum(np.exp(c)) * a

    q = rng.normal(size=8)
    tape = only_tapes(check_against_eager(value_and_grad(f), [(q,), (q + 1,)]))[0]
    names = [op.name for op in tape.ops]
    assert names.count("scatter_disjoint") == 1 and "untake" not in names
    # a's gradient is a numpy scalar: reshaped by its method, not numpy's wrapper
    assert "f_reshape" not in tape.source
    assert _bits(compile(value_and_grad(f))(q)) == _bits(value_and_grad(f)(q))


def test_overlapping_or_fancy_scatters_are_left_alone():
    def f(q):
        return np.sum(q[:3] ** 2) + np.sum(np.sin(q[1:])) + np.sum(q[[0, 0, 2]] ** 3)

    q = rng.normal(size=4)
    tape = only_tapes(check_against_eager(grad(f), [(q,), (q * 3,)]))[0]
    assert "scatter_disjoint" not in [op.name for op in tape.ops]


def test_group_gradients_are_bincounts():
    # a[group]: its gradient scatters 50 values into 7 groups, in index order
    group = rng.integers(0, 7, size=50)

    def f(a):
        return np.sum(np.sin(a[group]) * DATA)

    a = rng.normal(size=7)
    tape = only_tapes(check_against_eager(grad(f), [(a,), (a * 2,)]))[0]
    assert "bincount(" in tape.source and "f_untake" not in tape.source
    assert _bits(compile(grad(f))(a)) == _bits(grad(f)(a))


def test_zero_d_constants_take_part_in_scalar_arithmetic():
    # Distribution parameters are 0-d arrays; with a scalar site value the
    # ufunc returns a numpy scalar, and so does Python's operator.
    loc, scale = onp.array(0.5), onp.array(2.0)

    def f(q):
        z = (q[0] - loc) / scale
        return -0.5 * z * z - np.log(scale)

    q = rng.normal(size=2)
    tape = only_tapes(check_against_eager(value_and_grad(f), [(q,), (q + 1,)]))[0]
    assert "f_subtract" not in tape.source and "f_divide" not in tape.source
    assert _bits(compile(value_and_grad(f))(q)) == _bits(value_and_grad(f)(q))


def test_a_primitive_declares_its_own_simplification():
    @primitive
    def copied(x):
        return onp.array(x, copy=True)

    defprimitive(copied, vjp=lambda g, ans, x: g, jvp="same", simplify="operand")
    f = lambda x: np.sum(np.sin(copied(x)))  # noqa: E731
    compiled = check_against_eager(f, [(X3,)])
    assert [op.name for op in only_tapes(compiled)[0].ops] == ["sin", "sum"]
    assert grad(f)(X3) == pytest.approx(onp.cos(X3))


def test_equal_small_constants_are_one_constant():
    # A loop that builds the same one-hot mask afresh at every step (as
    # Categorical.log_prob does for an enumerated value) computes it once.
    def f(x):
        total = 0.0
        for _ in range(5):
            mask = onp.arange(3) == 1
            total = total + np.sum(np.where(mask, x, 0.0))
        return total

    tape = only_tapes(check_against_eager(f, [(X3,), (X3 + 1.0,)]))[0]
    assert [op.name for op in tape.ops] == ["where3", "sum"] + ["add"] * 5


def test_constants_that_may_change_are_compared_by_identity():
    # A read-only view of a writeable array follows that array: two of them
    # that are equal when traced must stay two constants.
    base_a, base_b = onp.array([1.0, 2.0]), onp.array([1.0, 2.0])
    a, b = onp.broadcast_to(base_a, (2,)), onp.broadcast_to(base_b, (2,))

    def f(x):
        return np.sum(x * a) + np.sum(x * b)

    compiled = compile(f)
    x = onp.array([1.0, 1.0])
    assert compiled(x) == 6.0
    base_b[:] = 0.0
    assert compiled(x) == 3.0
