"""``compile`` (``compiler/function.py``): replays agree with eager evaluation,
guards retrace, cache keys hold, unsafe recordings fall back to eager with one
warning, and the compiled derivative operators."""
import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, hessian, value_and_grad
from probad.ad.compiler import interpreter
from probad.ad.compiler import CompileMismatchError, CompileWarning, compile, compile_grad, compile_hvp, compile_value_and_grad
from tests.ad.compiler.eager_cases import assert_same, check_against_eager, only_tapes, rng, loop_fixed, loop_traced_trip_count, branch_on_sum, int_as_range, item_and_float, containers, X3, CASES, IDS


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


def test_errstate_inside_the_function_is_replayed():
    def f(x):
        with onp.errstate(divide="ignore"):
            return np.log(x)

    compiled = compile(f)
    for _ in range(2):
        assert_same(compiled(onp.array([0.0, 1.0])), onp.array([-onp.inf, 0.0]))


def test_non_replayable_output_falls_back():
    compiled = compile(lambda x: (x * 2, lambda: x))
    with pytest.warns(CompileWarning, match="returns a function"):
        compiled(1.0)


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


# numba is a dependency, but probad also runs without it (on the numpy replay,
# interpreter.AVAILABLE False); only the native backend's own tests need it.
@pytest.mark.skipif(not interpreter.AVAILABLE, reason="numba is not installed")
def test_a_copy_adopts_native_tapes_instead_of_tracing_again():
    import cloudpickle as pickle

    fn = compile(value_and_grad(branch_on_sum), backend="native")
    x = onp.array([0.3, -0.1, 0.5])
    fn(x)
    copy = pickle.loads(pickle.dumps(fn))  # another process's copy starts empty
    copy.adopt(pickle.loads(pickle.dumps(fn.native_tapes())))
    new = onp.array([0.2, 0.4, -0.1])
    assert_same(copy(new), fn(new))
    assert copy.trace_count == 0
    # Its guards hold as they did: the other branch traces again.
    negative = -onp.ones(3)
    assert_same(copy(negative), value_and_grad(branch_on_sum)(negative))
    assert copy.trace_count == 1
