"""Explaining a traced value used where its derivative cannot follow.

Python and plain numpy can take a traced value apart without asking the
trace: ``float(x)`` and ``math.exp(x)`` (through ``__float__``), ``numpy.exp(x)``
and ``a[i] = x``. Under a derivative the result is a constant where a
derivative should flow, so each of these raises :class:`TracedValueError`
(a ``TypeError``, as autograd raises) that says what happened, where in the
user's code, and what to write instead. numpy wraps or words some of these
errors its own way; :func:`explain` recovers ours at the entry points of
``probad.ad`` (``make_vjp``, ``make_jvp``).

numpy's floating-point warnings (``log(0)``) would point at the line of
probad that called the ufunc; :func:`floating_point_warnings_at_user` makes
them point at the user's line and name the primitive or derivative.
"""
from __future__ import annotations

import contextlib
import linecache
import os
import sys
import warnings

import numpy as onp

__all__ = ["TracedValueError", "user_location", "explain", "floating_point_warnings_at_user"]

# Frames in these directories are probad's own (the package root: probad.ad is
# used from the model layer too) or numpy's; the first other frame is the user's.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMPY_HINT = "use probad.ad.numpy (import probad.ad.numpy as np) in place of numpy"


class TracedValueError(TypeError):
    """A traced value was converted or handed to code that drops its derivative.

    Attributes
    ----------
    box : Box or None
        The traced value, when known (the model layer uses it to name the
        latent sites the value depends on).
    location : str
        ``"file:line: source"`` of the user's code that did it, or ``""``.
    """

    def __init__(self, message: str, box=None, location: str = ""):
        super().__init__(message)
        self.box = box
        self.location = location


def _is_internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE + os.sep) or f"{os.sep}numpy{os.sep}" in path \
        or f"{os.sep}scipy{os.sep}" in path


def _describe(filename: str, lineno: int) -> str:
    line = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno}: {line}" if line else f"{filename}:{lineno}"


def user_location(frames=None) -> str:
    """``"file:line: source"`` of the innermost frame outside probad, numpy and scipy.

    ``frames`` is a traceback's frame summaries, innermost last; without it,
    the current call stack is searched.
    """
    if frames is not None:
        for frame in reversed(frames):
            if not _is_internal(frame.filename):
                return _describe(frame.filename, frame.lineno)
        return ""
    frame = sys._getframe(1)
    while frame is not None:
        if not _is_internal(frame.f_code.co_filename):
            return _describe(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return ""


def at(location: str) -> str:
    """`` (at file:line: source)`` for a message, or nothing."""
    return f" (at {location})" if location else ""


def lost_derivative(box, conversion: str) -> TracedValueError:
    """The error for ``float(x)``, ``math.exp(x)``, ``x.item()``... under a derivative."""
    location = user_location()
    return TracedValueError(
        f"{conversion} of a traced value would drop its derivative{at(location)}: the result "
        "is a constant where the derivative should flow. Compute with the traced value itself "
        "(np.exp(x), not math.exp(x); x, not float(x)); for a decision, compare it directly "
        f"(if x > 0:). Use probad.ad.numpy (import probad.ad.numpy as np) in place of math "
        "and numpy", box, location)


def explain(exc: BaseException) -> TracedValueError | None:
    """The :class:`TracedValueError` behind ``exc``, or None if there is none.

    numpy turns an error raised by ``float(x)`` while storing ``x`` into an
    array into ``ValueError: setting an array element with a sequence`` (ours
    is its cause), and refuses a ufunc on a box with ``operand 'ArrayBox' does
    not support ufuncs``.
    """
    if isinstance(exc, TracedValueError):
        return None  # already says what it should
    if isinstance(exc, ValueError) and isinstance(exc.__cause__, TracedValueError):
        return exc.__cause__
    if type(exc) is TypeError and "does not support ufuncs" in str(exc) and "Box'" in str(exc):
        import traceback

        location = user_location(traceback.extract_tb(exc.__traceback__))
        return TracedValueError(
            f"a numpy function was called on a traced value{at(location)}; numpy cannot "
            f"follow its derivative: {_NUMPY_HINT}, e.g. np.exp(x) for numpy.exp(x)",
            None, location)
    return None


# ------------------------------------------------ floating-point warnings
_TRACER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tracer.py")
_CORE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core.py")
_NO_CONTEXT = contextlib.nullcontext()


def _floating_point_warning(kind: str, flag: int) -> None:
    """numpy's error callback: the RuntimeWarning numpy would give, located at
    the user's line instead of probad's, naming the primitive (or the
    derivative being taken) where it happened. Its *module* stays that of the
    probad code that called numpy, as for numpy's own warning, so that
    filters on probad's modules still apply."""
    caller = frame = sys._getframe(1)  # the frame that called the ufunc
    primitive = derivative = None
    while frame is not None and _is_internal(frame.f_code.co_filename):
        code = frame.f_code
        if code.co_filename == _TRACER_FILE and primitive is None \
                and code.co_name in ("__call__", "_call_traced"):
            primitive = getattr(frame.f_locals.get("self"), "__name__", None)
        elif code.co_filename == _CORE_FILE and derivative is None \
                and code.co_name in ("backward", "record"):
            fun = frame.f_locals.get("fun")
            mode = "VJP" if code.co_name == "backward" else "JVP"
            derivative = f"the derivative ({mode}) of '{getattr(fun, '__name__', fun)}'"
        frame = frame.f_back
    where = derivative or (f"'{primitive}'" if primitive else "a numpy operation")
    user = frame or caller
    warnings.warn_explicit(f"{kind} encountered in {where}", RuntimeWarning,
                           user.f_code.co_filename, user.f_lineno,
                           module=caller.f_globals.get("__name__", "probad"),
                           registry=user.f_globals.setdefault("__warningregistry__", {}))


def floating_point_warnings_at_user(outermost: bool):
    """A context in which numpy's floating-point *warnings* (the modes set to
    ``"warn"``; ``"ignore"`` and ``"raise"`` stay as they are) point at the
    user's code. Only the ``outermost`` transformation installs it: the
    compiler records each op's error state, and must see the user's."""
    if not outermost:
        return _NO_CONTEXT
    modes = {k: "call" for k, v in onp.geterr().items() if v == "warn"}
    return onp.errstate(call=_floating_point_warning, **modes) if modes else _NO_CONTEXT
