"""numpy's floating-point warnings, reported at the user's line.

A ``log(0)`` inside a primitive makes numpy warn from the line that called
the ufunc: probad's tracer, a VJP rule or a compiled replay, none of which
the user wrote. :func:`reported_at_user_code` is entered once per outer call
(``make_vjp``'s forward and backward passes, ``make_jvp``, a compiled
replay), not per primitive (numpy's ``errstate`` costs microseconds): inside
it, the warnings numpy would issue go to :func:`_report`, which issues one
``RuntimeWarning`` naming the primitive and pointing at the first frame
outside probad, numpy and scipy.

Floating-point errors that the caller silences (``errstate(all="ignore")``,
as the samplers and ``Potential`` do: there a bad point is a counted,
rejected proposal), turns into errors (``"raise"``) or handles itself
(``"call"``) are left alone.
"""
from __future__ import annotations

import contextlib
import linecache
import sys

import numpy as onp

from .misuse import warn_at_user_code

__all__ = ["reported_at_user_code", "as_outside"]

_NOTHING_TO_REPORT = contextlib.nullcontext()


def reported_at_user_code():
    """A context in which numpy's floating-point warnings name the primitive
    and point at the user's code (see the module docstring)."""
    modes = onp.geterr()
    if "call" in modes.values() or "warn" not in modes.values():
        return _NOTHING_TO_REPORT
    return onp.errstate(call=_report, **{kind: "call" for kind, mode in modes.items()
                                         if mode == "warn"})


def as_outside(errstate: dict | None, baseline: dict) -> dict | None:
    """A recorded errstate with the modes that :func:`reported_at_user_code`
    set (``"call"`` where ``baseline``, the state it made, has it) put back to
    ``"warn"``: a replay must not set ``"call"`` where no call-back may be
    set (it runs under the caller's errstate, and inside this context again
    when that has warnings to report)."""
    if errstate is None or onp.geterrcall() is not _report:
        return errstate
    return {kind: "warn" if mode == "call" and baseline[kind] == "call" else mode
            for kind, mode in errstate.items()}


def _origin(frame) -> str:
    """What probad was doing in ``frame`` (the one that called the ufunc) or
    the frames around it: which primitive, forward or backward."""
    from .tracer import primitive  # the tracer imports the numpy layer, which imports this

    while frame is not None:
        local = frame.f_locals
        code = frame.f_code
        if code.co_filename.startswith("<probad."):  # a compiled replay: its source line
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            return f"the compiled replay of {code.co_name} (`{line}`)"
        if code.co_name == "backward" and isinstance(local.get("fun"), primitive):
            return f"the derivative (VJP) of {local['fun'].__name__}"
        if isinstance(local.get("self"), primitive):
            return local["self"].__name__
        frame = frame.f_back
    return "a probad.ad function"


def _report(kind: str, flag: int) -> None:
    """numpy's ``errstate`` call-back: one RuntimeWarning for ``kind`` ("divide
    by zero", "overflow", "underflow", "invalid value") at the user's line."""
    warn_at_user_code(f"{kind} encountered in {_origin(sys._getframe(1))}", RuntimeWarning)
