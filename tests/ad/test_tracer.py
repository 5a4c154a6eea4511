"""Tracing (``tracer.py``): how a primitive call is recorded by the highest
trace among its arguments and passed down to lower ones, what a reverse tape
entry holds and drops, and the helpers that see under or past a trace."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, make_jvp
from probad.ad.core import ForwardTrace
from probad.ad.extend import defjvp, defvjp, getval, isbox, nondiff_primitive, notrace_primitive, primitive, \
    register_notrace
from probad.ad.tracer import Box, ReverseTrace, ValueMeta, trace_scope, traced_arguments

BIG = onp.linspace(0.1, 1.0, 200)  # 1600 bytes: large enough for the tape to drop it


def test_one_traced_argument_is_recorded_as_two_ints():
    with trace_scope(ReverseTrace) as trace:
        x = trace.new_start(BIG)
        y = np.multiply(2.0, x)
    fun, ans, args, kwargs, argnum, parent = trace.tape[1]
    assert fun is np.multiply and (argnum, parent) == (1, 0) and kwargs == {}
    assert y._node == 1 and y._trace is trace


def test_several_traced_arguments_are_recorded_as_tuples():
    with trace_scope(ReverseTrace) as trace:
        x = trace.new_start(BIG)
        y = np.sin(x)
        np.add(x, y)
        np.concatenate([x, y, x])
    assert trace.tape[2][4:] == ((0, 1), (0, 1))
    assert trace.tape[3][4:] == ((1, 2, 3), (0, 1, 0))  # concatenate_args(axis, *arrays)


def test_the_tape_drops_what_a_vjp_does_not_read():
    # exp's VJP reads its result, log's its argument, add's neither.
    with trace_scope(ReverseTrace) as trace:
        x = trace.new_start(BIG)
        np.exp(x)
        np.log(x)
        np.add(x, BIG)
    (_, exp_ans, exp_args, *_), (_, log_ans, log_args, *_), (_, add_ans, add_args, *_) = trace.tape[1:]
    assert exp_ans is not None and type(exp_args[0]) is ValueMeta and exp_args[0].shape == BIG.shape
    assert log_ans is None and log_args[0] is BIG
    assert add_ans is None and all(type(a) is ValueMeta for a in add_args)
    # a small array costs less memory than a stub costs time: kept
    with trace_scope(ReverseTrace) as trace:
        np.exp(trace.new_start(onp.ones(3)))
    assert type(trace.tape[1][2][0]) is onp.ndarray


def test_nested_traces_record_the_call_in_each():
    with trace_scope(ReverseTrace) as outer:
        x = outer.new_start(2.0)
        with trace_scope(ReverseTrace) as inner:
            y = inner.new_start(3.0)
            z = np.multiply(x, y)
    # the higher (inner) trace records y's argument; the call passed down to
    # the outer trace, with y's value, records x's
    assert z._trace is inner and isinstance(z._value, Box) and z._value._trace is outer
    assert inner.tape[1][4:] == ((1,), (0,))
    assert outer.tape[1][4:] == (0, 0)
    assert getval(z) == 6.0


def test_traced_arguments_gives_sequences_either_way():
    box = object()
    assert traced_arguments(2, box) == ((2,), (box,))
    assert traced_arguments((0, 2), [box, box]) == ((0, 2), [box, box])


def test_a_primitive_that_raises_on_a_box_raises_the_same():
    with pytest.raises(ValueError, match="cannot reshape"):
        grad(lambda x: np.sum(np.reshape(x, (4,))))(onp.ones(3))
    with pytest.raises(ValueError, match="cannot reshape"):
        grad(lambda x: np.sum(np.reshape(x, (4,)) * x))(onp.ones(3))


def test_notrace_primitive_sees_raw_values():
    seen = []

    @notrace_primitive
    def n_elements(x):
        seen.append(type(x))
        return onp.size(x)

    g = grad(lambda x: np.sum(x) / n_elements(x))(onp.ones(4))
    onp.testing.assert_allclose(g, 0.25)
    assert seen == [onp.ndarray]


def test_register_notrace_passes_over_a_primitive_in_one_mode():
    @primitive
    def double(x):
        return 2 * x

    defvjp(double, lambda ans, x: lambda g: 2 * g)
    defjvp(double, lambda g, ans, x: 2 * g)
    f = lambda x: double(x) + x  # noqa: E731
    assert grad(f)(1.0) == 3.0
    register_notrace(ReverseTrace, double)
    assert grad(f)(1.0) == 1.0  # a constant to reverse mode
    assert make_jvp(f)(1.0)(1.0) == (3.0, 3.0)  # forward mode still records it
    register_notrace(ForwardTrace, double)
    assert make_jvp(f)(1.0)(1.0) == (3.0, 1.0)
    # Nested traces: the outer (forward) trace passes over it, the inner
    # (reverse) one too, so the Hessian of double(x) * x is that of 2x * const.
    assert make_jvp(grad(lambda x: double(x) * x))(1.0)(1.0) == (2.0, 0.0)
    # A nondiff_primitive stays passed over by every derivative trace.
    step = nondiff_primitive(onp.floor, "step")
    register_notrace(ReverseTrace, step)
    assert make_jvp(lambda x: step(x) + x)(1.5)(1.0) == (2.5, 1.0)


def test_getval_and_isbox_see_under_the_trace():
    seen = []

    def f(x):
        seen.append((isbox(x), type(getval(x))))
        return np.sum(x ** 2)

    grad(f)(onp.ones(2))
    f(onp.ones(2))
    assert seen == [(True, onp.ndarray), (False, onp.ndarray)]



def test_shared_calls_trace_a_repeated_computation_once():
    import threading

    from probad.ad import value_and_grad
    from probad.ad.tracer import shared_calls

    masked = primitive(lambda x, mask: onp.where(mask, x, 0.0))
    vjp_calls = []
    defvjp(masked, lambda ans, x, mask: lambda g: vjp_calls.append(1) or np.where(mask, g, 0.0))
    x0 = onp.array([0.5, -1.5, 2.0])

    def f(x):
        # A fresh (equal) mask at every step, as a loop would build it.
        return sum(np.sum(masked(np.exp(x), onp.arange(3) > 0)) * w for w in (1.0, 2.0, 3.0))

    u, g = value_and_grad(f)(x0)
    assert len(vjp_calls) == 3
    vjp_calls.clear()
    with shared_calls():
        u_shared, g_shared = value_and_grad(f)(x0)
        other_thread = []
        thread = threading.Thread(target=lambda: other_thread.append(value_and_grad(f)(x0)))
        thread.start()
        thread.join()
    assert len(vjp_calls) == 1 + 3  # this thread's run shares; the other thread's does not
    # The same derivative, the gradients of the three uses summed before the VJP.
    assert u_shared == pytest.approx(u, rel=1e-15)
    onp.testing.assert_allclose(g_shared, g, rtol=1e-15)
    vjp_calls.clear()
    value_and_grad(f)(x0)
    assert len(vjp_calls) == 3  # sharing ends with the block


def test_shared_calls_never_share_random_draws():
    from probad.ad import grad
    from probad.ad.tracer import shared_calls

    def f(loc):
        with shared_calls():
            a, b = np.random.normal(loc), np.random.normal(loc)
        assert a != b
        return loc * 1.0

    onp.random.seed(0)
    grad(f)(0.5)


def test_shared_calls_give_a_fresh_raw_result_each_time():
    # A comparison of a traced value is a raw array to a derivative trace;
    # its user may change it in place, so it is never handed out twice.
    from probad.ad import grad
    from probad.ad.tracer import shared_calls

    def f(x):
        with shared_calls():
            first = np.greater(x, 0.0)
            first[:] = False
            assert np.greater(x, 0.0).all()
        return np.sum(x)

    grad(f)(onp.ones(2))
