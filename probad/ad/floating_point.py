"""numpy's floating-point warnings, reported at the user's line.

A ``log(0)`` inside a primitive makes numpy warn from the line that called
the ufunc: probad's tracer, a VJP rule or a compiled replay, none of which
the user wrote. :func:`reported_at_user_code` is entered once per outer call
(``grad`` and the other derivative operators, the functions ``make_vjp`` and
``make_jvp`` return, a compiled function's numpy replay; the native
interpreter issues no numpy warnings), not per primitive: inside
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

try:  # numpy >= 2 keeps the error state in a context variable: entered directly
    from numpy._core._ufunc_config import _extobj_contextvar as _EXTOBJ
    from numpy._core._ufunc_config import _make_extobj
except ImportError:  # numpy 1.x: numpy's errstate, ten times slower
    _EXTOBJ = None

# The error state seen last and the one to enter under it (None: nothing to
# report). States change rarely (a sampler enters one per transition), and
# building one costs more than a whole small gradient.
_last = (None, None)


class _Reporting:
    """Enters a prepared numpy error state (numpy's ``errstate`` rebuilds it
    from keywords at every entry)."""

    __slots__ = ("extobj", "token")

    def __init__(self, extobj):
        self.extobj = extobj

    def __enter__(self):
        self.token = _EXTOBJ.set(self.extobj)

    def __exit__(self, *exc_info):
        _EXTOBJ.reset(self.token)


def _reporting_modes() -> dict | None:
    """The current modes with "warn" made "call", or None if there is
    nothing to report (no "warn") or the caller handles calls itself."""
    modes = onp.geterr()
    if "call" in modes.values() or "warn" not in modes.values():
        return None
    return {kind: "call" for kind, mode in modes.items() if mode == "warn"}


def reported_at_user_code():
    """A context in which numpy's floating-point warnings name the primitive
    and point at the user's code (see the module docstring)."""
    global _last
    if _EXTOBJ is None:
        modes = _reporting_modes()
        return _NOTHING_TO_REPORT if modes is None else onp.errstate(call=_report, **modes)
    current = _EXTOBJ.get()
    seen, extobj = _last
    if current is extobj:  # inside this context already (a derivative of a derivative)
        return _NOTHING_TO_REPORT
    if current is not seen:
        modes = _reporting_modes()
        extobj = None if modes is None else _make_extobj(call=_report, **modes)
        _last = (current, extobj)
    return _NOTHING_TO_REPORT if extobj is None else _Reporting(extobj)


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
