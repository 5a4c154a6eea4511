"""The trace compiler: record a function once, replay it without Python overhead.

``compile(f)`` traces ``f`` into a flat tape of primitive calls
(:mod:`.tape`), turns the tape into straight-line Python calling raw numpy
(:mod:`.codegen`), and replays it on later calls with the same argument
signature (:mod:`.function`). Python decisions on traced values become
guards checked on replay; a failing guard means a new trace, never a stale
result. With ``backend="native"`` (or ``"auto"``, where the cost model says it
pays) the tape is instead lowered to data (:mod:`.native`) for one numba
interpreter shared by every model (:mod:`.interpreter`).
"""
from .codegen import GuardFailure, Tape
from .function import (CompileMismatchError, CompileWarning, Compiled, compile, compile_grad,
                       compile_hvp, compile_value_and_grad)
from .tape import Guard, Op, RecordTrace, Ref

__all__ = ["compile", "Compiled", "CompileWarning", "CompileMismatchError",
           "compile_value_and_grad", "compile_grad",
           "compile_hvp", "Tape", "Op", "Guard", "Ref", "RecordTrace", "GuardFailure"]
