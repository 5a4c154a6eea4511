"""Explaining a traced value used where its derivative cannot follow.

Python and plain numpy can take a traced value apart without asking the
trace: ``float(x)`` and ``math.exp(x)`` (through ``__float__``), ``numpy.exp(x)``
and ``a[i] = x``. Under a derivative the result is a constant where a
derivative should flow, so each of these raises :class:`TracedValueError`
(a ``TypeError``, as autograd raises) that says what happened, where in the
user's code, and what to write instead. numpy wraps or words some of these
errors its own way; :func:`explain` recovers ours at the entry points of
``probad.ad`` (``make_vjp``, ``make_jvp``).
"""
from __future__ import annotations

import linecache
import os
import sys
import warnings

__all__ = ["TracedValueError", "user_frame", "user_location", "warn_at_user_code", "at",
           "lost_derivative", "explain"]

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
    if filename.startswith("<probad."):  # a compiled replay's generated code
        return True
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
    frame = user_frame(sys._getframe(1))
    return "" if frame is None else _describe(frame.f_code.co_filename, frame.f_lineno)


def user_frame(frame):
    """The innermost frame outside probad, numpy and scipy, from ``frame``
    outwards, or None."""
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def warn_at_user_code(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the innermost frame outside probad, numpy
    and scipy, however deep inside probad the caller is."""
    frame = user_frame(sys._getframe(1))
    if frame is None:
        warnings.warn(message, category, stacklevel=2)
        return
    globals_ = frame.f_globals
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           module=globals_.get("__name__"),
                           registry=globals_.setdefault("__warningregistry__", {}))


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
