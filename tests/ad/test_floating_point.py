"""numpy's floating-point warnings inside probad.ad point at the user's line
and name the primitive (issue 19: they pointed at probad/ad/tracer.py)."""
from __future__ import annotations

import warnings

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, make_jvp
from probad.ad.compiler import compile


def log_sum(x):
    return np.sum(np.log(x))


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [(w.filename, str(w.message)) for w in record if w.category is RuntimeWarning]


def test_a_gradient_through_log_0_warns_at_the_users_line_naming_the_primitive():
    found = _warnings_of(lambda: grad(log_sum)(onp.array([0.0, 1.0])))
    assert found == [(__file__, "divide by zero encountered in log"),
                     (__file__, "divide by zero encountered in the derivative (VJP) of log")]


def test_numpy_1s_errstate_path_reports_the_same(monkeypatch):
    """Without numpy 2's error-state context variable, numpy's errstate does it."""
    from probad.ad import floating_point

    monkeypatch.setattr(floating_point, "_EXTOBJ", None)
    found = _warnings_of(lambda: grad(log_sum)(onp.array([0.0, 1.0])))
    assert found == [(__file__, "divide by zero encountered in log"),
                     (__file__, "divide by zero encountered in the derivative (VJP) of log")]


def test_forward_mode_warns_at_the_users_line():
    found = _warnings_of(lambda: make_jvp(log_sum)(onp.array([0.0, 1.0]))(onp.ones(2)))
    assert found and all(filename == __file__ for filename, _ in found)
    assert found[0][1] == "divide by zero encountered in log"


def test_a_compiled_replay_warns_at_the_callers_line_quoting_the_replay():
    compiled = compile(grad(log_sum))
    compiled(onp.array([1.0, 2.0]))  # recorded here; replayed below
    found = _warnings_of(lambda: compiled(onp.array([0.0, 1.0])))
    assert found and all(filename == __file__ for filename, _ in found)
    # The derivative of log divides by x: the replay's line says so.
    assert found[0][1].startswith("divide by zero encountered in the compiled replay of "
                                  "grad_of_log_sum")


def test_the_callers_errstate_is_respected():
    x = onp.array([0.0, 1.0])
    with onp.errstate(all="ignore"):
        assert _warnings_of(lambda: grad(log_sum)(x)) == []
    with onp.errstate(divide="raise"), pytest.raises(FloatingPointError):
        grad(log_sum)(x)
    seen = []
    with onp.errstate(divide="call", call=lambda kind, flag: seen.append(kind)):
        grad(log_sum)(x)
    assert seen == ["divide by zero", "divide by zero"]


def log_ignoring_divide(x):
    with onp.errstate(divide="ignore"):
        logs = np.log(x)
    return np.sum(logs * x)


def test_an_errstate_inside_a_compiled_function_is_replayed_as_written():
    """The replay sets what the function set (divide ignored) and leaves the
    rest to the caller: silenced under its errstate(all="ignore"), reported
    at its line otherwise, never a numpy error for a missing call-back."""
    compiled = compile(log_ignoring_divide)
    compiled(onp.array([1.0, 2.0]))
    with onp.errstate(all="ignore"):
        assert _warnings_of(lambda: compiled(onp.array([0.0, onp.inf]))) == []
    found = _warnings_of(lambda: compiled(onp.array([0.0, onp.inf])))
    assert [message.split(" encountered")[0] for _, message in found] == ["invalid value"]
    assert found[0][0] == __file__
