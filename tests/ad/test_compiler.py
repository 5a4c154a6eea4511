"""The trace compiler: replays agree with eager evaluation, guards retrace,
unsafe recordings fall back to eager with one warning, tapes are inspectable."""
import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, hessian, value_and_grad
from probad.ad.compiler import (CompileMismatchError, CompileWarning, compile, compile_grad,
                                compile_hvp, compile_value_and_grad)
from probad.ad.decorators import function, gradient, hessian_vector
from probad.ad.extend import primitive
from probad.ad.tracer import primitive as primitive_class


# ---------------------------------------------------------------- helpers
def assert_same(got, want):
    """Same nest, same types and dtypes, values equal to 1e-12 (relative)."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (onp.ndarray, onp.generic)):
        assert got.dtype == want.dtype and onp.shape(got) == onp.shape(want)
        onp.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    else:
        assert got == want or (got != got and want != want)


def check_against_eager(fun, inputs, **compile_kwargs):
    """Call the compiled ``fun`` twice per input (trace or replay, then replay)
    and compare with eager evaluation."""
    compiled = compile(fun, **compile_kwargs)
    for args in inputs:
        want = fun(*args)
        for _ in range(2):
            assert_same(compiled(*args), want)
    return compiled


def only_tapes(compiled):
    (tapes,) = compiled.tapes.values()
    return tapes


rng = onp.random.default_rng(0)


# ------------------------------------------------- test functions (eager)
def loop_fixed(x):
    total = 0.0
    for k in range(5):
        total = total + np.sin(k * x).sum()
    return total


def loop_traced_trip_count(x):
    while x > 1:
        x = x / 2
    return x * 3.0


def branch_on_sum(x):
    if x.sum() > 0:
        return np.log1p(np.exp(x)).sum()
    return (x ** 2).sum()


def recursion(x, depth):
    if depth == 0:
        return np.tanh(x).sum()
    return recursion(np.sin(x) + 0.5 * x, depth - 1) * 0.9


def int_as_range(x):
    n = int(np.floor(x[0]))
    acc = x[1]
    for _ in range(n):
        acc = acc * 1.5 + np.cos(acc)
    return acc


def item_and_float(x):
    big = x.max().item()
    s = float(x.sum())
    scale = 2.0 if big > 0.5 else 0.5
    return np.exp(x * scale).sum() + s


def comparisons(x):
    y = np.where(x > 0.2, x, -x)
    if (y > 0.5).any():
        return (y ** 3).sum()
    return y.sum()


def boolean_mask(x):
    return np.sum(x[x > 0] ** 2) + x.mean()


def containers(params, data):
    mu, log_sigma = params["mu"], params["log_sigma"]
    z = (data[0] - mu) / np.exp(log_sigma)
    return -0.5 * np.sum(z ** 2) - data[1] * log_sigma, [mu, z.sum()]


def closure_factory(weights):
    offset = np.exp(weights).sum()  # input-independent: folded into the tape

    def f(x):
        return np.dot(weights, np.tanh(x)) + offset

    return f


def garch_loglik(params, y):
    omega, alpha, beta = params[0], params[1], params[2]
    sigma2 = np.var(y)
    ll = 0.0
    for t in range(1, len(y)):
        sigma2 = omega + alpha * y[t - 1] ** 2 + beta * sigma2
        ll = ll - 0.5 * (np.log(2 * onp.pi * sigma2) + y[t] ** 2 / sigma2)
    return ll


X3 = rng.normal(size=3)
CASES = [
    (loop_fixed, [(X3,), (X3 + 1,)]),
    (loop_traced_trip_count, [(onp.float64(3.0),), (onp.float64(3.5),), (onp.float64(40.0),),
                              (onp.float64(0.5),)]),
    (branch_on_sum, [(X3,), (-X3 - 1,), (X3 + 2,)]),
    (lambda x: recursion(x, 3), [(X3,), (X3 * 2,)]),
    (int_as_range, [(onp.array([2.5, 0.3]),), (onp.array([2.7, 0.1]),), (onp.array([4.1, 0.2]),)]),
    (item_and_float, [(onp.array([0.1, 0.9]),), (onp.array([0.1, 0.2]),),
                      (onp.array([0.1, 0.9]),)]),
    (comparisons, [(onp.array([0.1, 0.3]),), (onp.array([0.1, 0.9]),), (onp.array([-0.1, 0.3]),)]),
    (boolean_mask, [(onp.array([1.0, -2.0, 3.0]),), (onp.array([1.0, 2.0, 3.0]),),
                    (onp.array([-1.0, -2.0, 3.0]),)]),
    (closure_factory(onp.array([0.3, -0.2, 0.5])), [(X3,), (X3 - 1,)]),
]
IDS = ["loop", "while", "branch", "recursion", "int_range", "item_float", "compare", "mask",
       "closure"]


@pytest.mark.parametrize("fun, inputs", CASES, ids=IDS)
def test_values_match_eager(fun, inputs):
    check_against_eager(fun, inputs)


# float() and .item() of a traced value have no derivative to give (see
# test_float_of_a_traced_value_raises_under_grad); the other cases do.
GRAD_CASES = [(case, name) for case, name in zip(CASES, IDS) if name != "item_float"]


@pytest.mark.parametrize("fun, inputs", [c for c, _ in GRAD_CASES], ids=[n for _, n in GRAD_CASES])
def test_value_and_grad_match_eager(fun, inputs):
    check_against_eager(value_and_grad(fun), inputs)


def test_float_of_a_traced_value_raises_under_grad():
    # Before: float(x.sum()) was a constant, so its derivative silently went missing.
    x = onp.array([0.1, 0.9])
    for fun in (value_and_grad(item_and_float), compile(value_and_grad(item_and_float))):
        with pytest.raises(TypeError, match=r"item\(\) of a traced value would drop its derivative"):
            fun(x)


def test_containers_in_and_out():
    params = {"mu": onp.array([0.1, 0.2]), "log_sigma": onp.float64(0.3)}
    data = (rng.normal(size=(4, 2)), 4)
    check_against_eager(containers, [(params, data), ({"mu": params["mu"] + 1, "log_sigma": 0.1},
                                                      data)])
    vg = value_and_grad(lambda p, d: containers(p, d)[0])
    check_against_eager(vg, [(params, data)])


def test_garch_value_and_grad_matches_eager():
    y = rng.normal(size=60)
    inputs = [(onp.array([0.1, 0.2, 0.7]), y), (onp.array([0.2, 0.1, 0.6]), y)]
    compiled = check_against_eager(value_and_grad(garch_loglik), inputs)
    tape = only_tapes(compiled)[0]
    # Scalar arithmetic is emitted as Python operators: much of the tape is not a ufunc call.
    assert " * " in tape.source and " / " in tape.source


# ----------------------------------------------------------- retracing
def test_guard_failure_retraces_and_reuses_tapes():
    compiled = compile(branch_on_sum)
    pos, neg = onp.array([1.0, 2.0]), onp.array([-1.0, -2.0])
    compiled(pos)
    compiled(pos + 1)
    assert compiled.trace_count == 1
    compiled(neg)
    assert compiled.trace_count == 2
    for x in (pos, neg, pos * 3, neg * 3):
        assert_same(compiled(x), branch_on_sum(x))
    assert compiled.trace_count == 2
    assert len(only_tapes(compiled)) == 2


def test_while_loop_trip_count_is_guarded():
    compiled = compile(loop_traced_trip_count)
    assert compiled(3.0) == 0.75 * 3  # two halvings
    assert compiled(3.9) == 3.9 / 4 * 3  # same path: replay
    assert compiled.trace_count == 1
    assert compiled(9.0) == 9.0 / 16 * 3  # four halvings: a new path
    assert compiled.trace_count == 2
    tape = only_tapes(compiled)[0]
    assert len(tape.guards) == 5  # four "x > 1" True, one False


def test_tolist_and_complex_guards():
    def f(x):
        first, second = x.tolist()
        return x * complex(x[0]).real if first < second else x * 3.0

    compiled = check_against_eager(f, [(onp.array([1.0, 2.0]),), (onp.array([2.0, 1.0]),),
                                       (onp.array([1.0, 2.0]),)])
    assert compiled.trace_count == 2
    assert all(len(tape.guards) == 2 for tape in only_tapes(compiled)[:1])


def test_keyword_arguments_namedtuples_and_float_tuples():
    from collections import namedtuple

    Params = namedtuple("Params", "loc log_scale")

    def f(params, data, *, weight=1.0):
        z = (data - params.loc) / np.exp(params.log_scale)
        return weight * np.sum(z ** 2) + params.log_scale

    data = rng.normal(size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_eager(f, [(Params(0.1, 0.2), data)])
        compiled = compile(f)
        for params, weight in [(Params(0.1, 0.2), 2.0), (Params(0.3, 0.2), 3.0)]:
            assert_same(compiled(params, data, weight=weight), f(params, data, weight=weight))
        assert compiled.trace_count == 1  # a float keyword is an input, not part of the key
        vg = value_and_grad(lambda p: f(Params(*p), data))
        check_against_eager(vg, [((0.1, 0.2),), ((0.5, -0.2),)])


def test_pickled_copies_start_without_tapes():
    import pickle

    compiled = compile(loop_fixed)
    compiled(X3)
    copy = pickle.loads(pickle.dumps(compiled))
    assert copy.tapes == {} and copy.trace_count == 0
    assert_same(copy(X3), loop_fixed(X3))


def test_data_dependent_shape_is_guarded():
    compiled = compile(value_and_grad(boolean_mask))
    x = onp.array([1.0, -2.0, 3.0])
    compiled(x)
    source = only_tapes(compiled)[0].source
    assert ".shape != (2,)" in source
    y = onp.array([1.0, 2.0, 3.0])  # same signs count changes the mask size
    assert_same(compiled(y), value_and_grad(boolean_mask)(y))
    assert compiled.trace_count == 2


def test_traced_index_into_constant_is_guarded():
    table = onp.arange(10.0) ** 2

    def f(x):
        return table[np.argmax(x)] * x.sum()

    compiled = check_against_eager(f, [(onp.array([0.0, 3.0, 1.0]),), (onp.array([0.0, 1.0, 3.0]),),
                                       (onp.array([0.0, 3.0, 2.0]),)])
    assert compiled.trace_count == 2


def test_bounded_cache_falls_back_with_one_warning():
    compiled = compile(int_as_range, max_tapes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled(onp.array([1.5, 0.1]))
        compiled(onp.array([2.5, 0.1]))
    with pytest.warns(CompileWarning, match="max_tapes=2") as record:
        for n in (3.5, 4.5, 5.5):
            x = onp.array([n, 0.1])
            assert_same(compiled(x), int_as_range(x))
    assert len(record) == 1
    assert len(only_tapes(compiled)) == 2
    assert compiled.trace_count == 2


# ----------------------------------------------------------- cache keys
def test_static_arguments_are_part_of_the_key():
    calls = []

    def f(x, n, mode="sum"):
        calls.append(n)
        y = x * n
        return y.sum() if mode == "sum" else y.max()

    compiled = compile(f)
    x = onp.array([1.0, 2.0])
    assert compiled(x, 2) == 6.0
    assert compiled(x + 1, 2) == 10.0
    assert compiled(x, 3) == 9.0
    assert compiled(x, 3, mode="max") == 6.0
    assert compiled(x, True) == 3.0
    assert compiled.trace_count == 4  # (2), (3), (3, max), (True); 1 and True differ
    assert len(compiled.tapes) == 4
    assert compiled.cache_key(x, 2) != compiled.cache_key(x, 3)
    assert compiled.cache_key(x, 2) != compiled.cache_key(onp.ones(3), 2)
    assert compiled.cache_key(x, 2) != compiled.cache_key(x.astype(onp.float32), 2)
    assert compiled.cache_key(x, 2) != compiled.cache_key(list(x), 2)


def test_unhashable_static_argument_runs_eagerly():
    compiled = compile(lambda x, opts: x * opts["scale"].pop())
    with pytest.warns(CompileWarning, match="hashable"):
        assert compiled(2.0, {"scale": {3.0}}) == 6.0
    assert compiled.trace_count == 0


def test_float32_is_preserved():
    x = onp.array([0.5, -1.5, 2.0], dtype=onp.float32)
    fun = value_and_grad(lambda x: np.sum(np.tanh(x) * x * x) / 3.0)
    compiled = check_against_eager(fun, [(x,), (x * 2,)])
    value, g = compiled(x)
    assert value.dtype == onp.float32 and g.dtype == onp.float32
    s = onp.float32(0.7)  # float32 scalars take the Python-operator path
    check_against_eager(lambda s: s * s / 3.0 - s, [(s,), (onp.float32(0.2),)])


# ----------------------------------------------------------- fallbacks
def test_randomness_runs_eagerly_with_one_warning():
    def noisy(x):
        return x + np.random.normal(size=x.shape)

    compiled = compile(noisy)
    x = onp.zeros(3)
    with pytest.warns(CompileWarning, match="random") as record:
        draws = [compiled(x) for _ in range(3)]
        compiled(onp.zeros(4))
    assert len(record) == 1
    assert not onp.array_equal(draws[0], draws[1])  # never a frozen draw
    assert compiled.tapes == {}


@pytest.mark.parametrize("how", ["global", "argument", "closure", "under grad"])
def test_plain_numpy_generators_are_detected(how):
    generator = onp.random.default_rng(0)
    if how == "global":
        fun = lambda x: x + onp.random.standard_normal()  # noqa: E731
    elif how == "argument":
        fun = lambda x, rng: x + rng.normal()  # noqa: E731
    else:
        fun = lambda x: x * generator.normal()  # noqa: E731
        fun = value_and_grad(fun) if how == "under grad" else fun
    compiled = compile(fun)
    args = (1.0, generator) if how == "argument" else (1.0,)
    with pytest.warns(CompileWarning, match="random generator"):
        a, b = compiled(*args), compiled(*args)
    assert not onp.array_equal(a, b)


def _while_another_thread_draws(fun):
    """Trace ``fun`` while another thread draws from Python's global generator,
    as a Dask worker's event loop does while a task traces in its thread pool
    (numpy's global generator has no per-thread hook: a change of it by another
    thread still stops compiling, the safe side)."""
    import random
    import threading

    started, drawn = threading.Event(), threading.Event()

    def other():
        started.wait(10)
        random.random()
        drawn.set()

    def traced(x):
        started.set()
        assert drawn.wait(10)  # the other thread draws in the middle of the trace
        return fun(x)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        compiled = compile(traced)
        result = compiled(onp.array([1.0, 2.0]))
    finally:
        started.set()
        thread.join()
    return compiled, result


def test_another_threads_draws_do_not_stop_compiling():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled, result = _while_another_thread_draws(lambda x: np.sin(x) * 2.0)
    assert compiled.eager_keys == {} and len(compiled.tapes) == 1
    onp.testing.assert_array_equal(compiled(onp.array([0.5, 1.5])), onp.sin([0.5, 1.5]) * 2.0)


@pytest.mark.parametrize("draw", ["python", "numpy"])
def test_own_global_draws_are_detected_while_another_thread_draws(draw):
    import random

    def noisy(x):
        return x + (random.gauss(0.0, 1.0) if draw == "python" else onp.random.standard_normal())

    with pytest.warns(CompileWarning, match="random generator"):
        compiled, _ = _while_another_thread_draws(noisy)
    assert compiled.tapes == {}


def test_error_only_under_tracing_falls_back():
    table = onp.arange(5.0)

    def f(x):
        return table[np.argsort(x)] @ x  # plain numpy cannot index with a traced array

    x = onp.array([0.3, 0.1, 0.2, 0.5, 0.4])
    compiled = compile(f)
    with pytest.warns(CompileWarning, match="tracing raised") as record:
        assert compiled(x) == f(x)
        assert compiled(x[::-1].copy()) == f(x[::-1].copy())
    assert len(record) == 1


def test_genuine_errors_propagate_and_nothing_is_cached():
    def f(x):
        if x.sum() > 0:
            raise ValueError("positive")
        return x

    compiled = compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="positive"):
            compiled(onp.ones(2))
    assert compiled.tapes == {} and compiled.eager_keys == {}


def test_escaping_boxes_fall_back():
    stored = []

    def f(x):
        y = np.exp(x)
        stored.append(y)
        return y.sum()

    compiled = compile(f)
    with pytest.warns(CompileWarning, match="keeps traced values") as record:
        compiled(onp.ones(2))
        assert compiled(onp.zeros(2)) == 2.0
    assert len(record) == 1
    assert isinstance(stored[-1], onp.ndarray)  # eager calls store plain arrays
    assert_same(stored[0] * 2.0, onp.exp(onp.ones(2)) * 2.0)  # the stale box acts as its value


def test_exception_handled_by_the_function():
    @primitive
    def checked_sqrt(x):
        if onp.any(x < 0):
            raise ValueError("negative")
        return onp.sqrt(x)

    def f(x):
        try:
            return checked_sqrt(x).sum()
        except ValueError:
            return -onp.inf

    compiled = compile(f)
    assert compiled(onp.array([4.0])) == 2.0
    assert compiled(onp.array([-4.0])) == -onp.inf  # the tape raises: eager decides
    assert compiled(onp.array([9.0])) == 3.0
    first_bad = compile(f)
    with pytest.warns(CompileWarning, match="raised an exception"):
        assert first_bad(onp.array([-4.0])) == -onp.inf
    assert first_bad(onp.array([9.0])) == 3.0


def test_errstate_inside_the_function_is_replayed():
    def f(x):
        with onp.errstate(divide="ignore"):
            return np.log(x)

    compiled = compile(f)
    for _ in range(2):
        assert_same(compiled(onp.array([0.0, 1.0])), onp.array([-onp.inf, 0.0]))


def test_calls_under_another_trace_run_through():
    compiled = compile(lambda x: np.sin(x) * x)
    assert grad(compiled)(0.3) == grad(lambda x: np.sin(x) * x)(0.3)
    assert compiled.trace_count == 0


def test_non_replayable_output_falls_back():
    compiled = compile(lambda x: (x * 2, lambda: x))
    with pytest.warns(CompileWarning, match="returns a function"):
        compiled(1.0)


# ------------------------------------------------------------ the tapes
def test_input_independent_work_is_folded(monkeypatch):
    def f(x):
        basis = np.exp(np.linspace(0.0, 1.0, 5))  # no input involved: computed once
        scale = np.sum(basis * basis) / basis.size
        return np.dot(basis, np.tanh(x)) * scale

    calls = []
    original = primitive_class.__call__

    def counting(self, *args, **kwargs):
        calls.append(self.__name__)
        return original(self, *args, **kwargs)

    x = rng.normal(size=5)
    monkeypatch.setattr(primitive_class, "__call__", counting)
    f(x)
    monkeypatch.undo()

    compiled = check_against_eager(f, [(x,)])
    tape = only_tapes(compiled)[0]
    assert [op.name for op in tape.ops] == ["tanh", "dot", "multiply"]
    assert len(tape.ops) < len(calls)
    basis = onp.exp(onp.linspace(0.0, 1.0, 5))
    assert_same(tape.ops[1].args[0], basis)  # folded constants
    assert tape.ops[2].args[1] == onp.sum(basis * basis) / 5
    assert tape.guards == []
    assert "def f(v0):" in tape.source


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


def test_captured_arrays_are_fixed_at_trace_time():
    data = onp.array([1.0, 2.0])
    compiled = compile(lambda x: x * data + data.sum())
    assert_same(compiled(1.0), onp.array([4.0, 5.0]))
    data[:] = 10.0  # the tape holds a snapshot: direct and folded uses agree
    assert_same(compiled(1.0), onp.array([4.0, 5.0]))


def test_check_mode_catches_a_stale_global(monkeypatch):
    # Before: a compiled function went on returning results for the old value,
    # and nothing could tell.
    scale = {"now": 2.0}

    def f(x):
        return np.sum(x * scale["now"]), {"grad": x}

    for compiled in (compile(f, check=True), compile(value_and_grad(lambda x: f(x)[0]), check=True)):
        scale["now"] = 2.0
        first = compiled(onp.ones(2))
        assert_same(compiled(onp.ones(2)), first)  # a replay that agrees
        scale["now"] = 3.0
        with pytest.raises(CompileMismatchError, match=r"disagrees with running it eagerly: the "
                           r"output\[0\] is 4\.0 compiled, 6\.0 eagerly.*Pass such values as "
                           r"arguments, or compile the function again"):
            compiled(onp.ones(2))
    assert not compile(f).check
    monkeypatch.setenv("PROBAD_COMPILE_CHECK", "1")
    assert compile(f).check and not compile(f, check=False).check


@pytest.mark.parametrize("fun, inputs", CASES, ids=IDS)
def test_check_mode_passes_where_replays_are_right(fun, inputs):
    compiled = check_against_eager(fun, inputs, check=True)
    assert compiled.check


def test_constant_outputs_are_fresh_arrays():
    compiled = compile(lambda x: (x * 2, onp.zeros(2), "tag"))
    compiled(1.0)
    first = compiled(1.0)
    first[1][:] = 5.0
    assert_same(compiled(1.0), (onp.float64(2.0), onp.zeros(2), "tag"))


# ------------------------------------------------- derivative operators
def test_compiled_hvp_matches_hessian():
    def f(x):
        return np.sum(np.sin(x) * x[::-1] ** 2) + np.prod(x)

    hvp = compile_hvp(f)
    x, v = rng.normal(size=4), rng.normal(size=4)
    want = hessian(f)(x) @ v
    for _ in range(2):
        onp.testing.assert_allclose(hvp(x, v), want, rtol=1e-12)
    assert hvp.trace_count == 1


def test_compile_grad_and_value_and_grad_with_argnums():
    def f(a, b, c):
        return np.sum(a * np.exp(b)) * c

    a, b = rng.normal(size=3), rng.normal(size=3)
    check_against_eager(value_and_grad(f, (0, 1)), [(a, b, 2.0), (b, a, 3.0)])
    g = compile_grad(f, 2)
    c = onp.float64(2.0)
    assert_same(g(a, b, c), grad(f, 2)(a, b, c))
    vg = compile_value_and_grad(f, 1)
    assert_same(vg(a, b, 2.0), value_and_grad(f, 1)(a, b, 2.0))


def test_compiled_method():
    class Model:
        def __init__(self, scale):
            self.scale = scale

        @compile
        def energy(self, x):
            return self.scale * np.sum(x ** 2)

    m = Model(2.0)
    assert m.energy(onp.ones(3)) == 6.0
    assert m.energy(onp.ones(3) * 2) == 24.0
    assert Model.energy.trace_count == 1


# ------------------------------------------------------------ decorators
def test_function_decorator():
    @function
    def f(x):
        return np.sum(np.sin(x))

    @function(max_tapes=1)
    def g(x):
        return x * 2 if x > 0 else x

    assert_same(f(X3), onp.sum(onp.sin(X3)))
    assert f.trace_count == 1 and g.max_tapes == 1


def test_gradient_decorator_by_name():
    def model(x, y, n=2):
        return np.sum(x * y ** n) + np.sum(np.exp(y))

    x, y = rng.normal(size=3), rng.normal(size=3)
    grad_y = gradient(wrt="y")(model)
    assert_same(grad_y(x, y), grad(model, 1)(x, y))
    assert_same(grad_y(x, y=y, n=3), grad(model, 1)(x, y, 3))
    both = gradient(wrt=["y", "x"])(model)
    assert_same(both(x, y), (grad(model, 1)(x, y), grad(model, 0)(x, y)))
    every_float = gradient(model)
    assert_same(every_float(x, y), (grad(model, 0)(x, y), grad(model, 1)(x, y)))
    assert_same(gradient(lambda x, k: k * np.sum(x ** 2))(x, 3), 6 * x)  # int k: static
    grad_y(x, y)
    assert grad_y.compiled.trace_count == 2  # (x, y) and (x, y, n=3)
    with pytest.raises(TypeError, match="no argument named 'z'"):
        gradient(wrt="z")(model)(x, y)


def test_hessian_vector_decorator():
    def f(a, x):
        return a * np.sum(np.sin(x) * x ** 3)

    x, v = rng.normal(size=4), rng.normal(size=4)
    hv = hessian_vector(wrt="x")(f)
    onp.testing.assert_allclose(hv(2.0, x, v), hessian(lambda x: f(2.0, x))(x) @ v, rtol=1e-12)

    @hessian_vector
    def quadratic(x):
        return 0.5 * np.sum(x ** 2) * 3.0

    onp.testing.assert_allclose(quadratic(x, v), 3.0 * v, rtol=1e-15)


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


DATA = rng.normal(size=50)


def _bits(value):
    return [onp.asarray(v).tobytes() for v in value] if isinstance(value, tuple) \
        else onp.asarray(value).tobytes()


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


def test_value_dependent_conversion_errors_are_not_baked_in():
    def f(x):
        try:
            n = int(x)
        except ValueError:  # int(nan)
            n = 0
        return x * n

    compiled = compile(f)
    with pytest.warns(CompileWarning, match="converting a traced value"):
        assert onp.isnan(compiled(onp.float64(onp.nan)))
    assert compiled(onp.float64(2.5)) == 5.0
