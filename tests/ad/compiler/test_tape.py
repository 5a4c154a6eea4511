"""Recording (``compiler/tape.py``): what the trace keeps as constants and
guards, and which recordings it refuses to replay."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, value_and_grad
from probad.ad.compiler import CompileWarning, compile
from probad.ad.extend import primitive
from probad.ad.tracer import primitive as primitive_class
from tests.ad.compiler.eager_cases import assert_same, check_against_eager, only_tapes, rng, boolean_mask


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


def test_calls_under_another_trace_run_through():
    compiled = compile(lambda x: np.sin(x) * x)
    assert grad(compiled)(0.3) == grad(lambda x: np.sin(x) * x)(0.3)
    assert compiled.trace_count == 0


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


def test_captured_arrays_are_fixed_at_trace_time():
    data = onp.array([1.0, 2.0])
    compiled = compile(lambda x: x * data + data.sum())
    assert_same(compiled(1.0), onp.array([4.0, 5.0]))
    data[:] = 10.0  # the tape holds a snapshot: direct and folded uses agree
    assert_same(compiled(1.0), onp.array([4.0, 5.0]))
