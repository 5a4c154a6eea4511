"""The compiled callable: cache keys, dispatch to tapes, retracing, fallbacks.

A call looks up the tapes recorded for its *signature* (the nest structure
of the arguments, every array's type, shape and dtype, and the value of every
other argument) and replays the first one whose guards hold. When none does,
the function is traced again and the new path joins the cache. When a
recording cannot be trusted (random draws, traced values escaping into outer
state, an error only tracing hits), the function runs eagerly instead, with
one warning that says why. A result never comes from a tape whose guards fail.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import random as pyrandom
import sys
import threading
import time
import types
import warnings

import numpy as onp

from ..differential_operators import grad, make_jvp, value_and_grad
from ..floating_point import as_outside, reported_at_user_code
from ..numpy import random as ad_random
from ..tracer import Box, trace_scope
from .codegen import GuardFailure, Tape, build_tape, output_template
from .tape import RecordTrace, Ref

__all__ = ["compile", "Compiled", "CompileWarning", "CompileMismatchError",
           "compile_value_and_grad", "compile_grad", "compile_hvp", "CHECK_ENV"]

#: Environment variable that turns on ``check`` for every compiled function
#: built while it is set to ``1`` (those inside ``pb.hmc``'s potential too).
CHECK_ENV = "PROBAD_COMPILE_CHECK"
# How closely a checked replay must agree with eager evaluation: replays are
# meant to be bit-identical; a stale constant is off by far more than this.
_CHECK_RTOL, _CHECK_ATOL = 1e-9, 1e-12


class CompileWarning(UserWarning):
    """A compiled function runs eagerly (or partly eagerly), and why."""


class CompileMismatchError(AssertionError):
    """With ``check=True``: a replay disagreed with running the function eagerly."""


# ------------------------------------------------------------- signatures
_SCALAR_LEAVES = frozenset([float, complex] + [
    t for t in set(onp.sctypeDict.values())
    if issubclass(t, (onp.bool_, onp.number)) and not issubclass(t, onp.timedelta64)])
# Replayable outputs besides traced values: immutable scalars, strings, arrays.
_CONSTANT_OUTPUTS = (onp.ndarray, onp.generic, int, float, complex, str, bytes, type(None))


class _Traced(Exception):
    """An argument is a box: the call happens inside another transformation."""


def _is_array_leaf(x) -> bool:
    return type(x) in _SCALAR_LEAVES or isinstance(x, onp.ndarray) and x.dtype.kind in "biufc"


def _walk(x, parts: list, leaves: list) -> None:
    t = type(x)
    if t is onp.ndarray and x.dtype.kind in "biufc" or t in _SCALAR_LEAVES:
        # Scalars' types fix their dtypes; arrays need shape and dtype too.
        parts.append((t, x.shape, x.dtype) if t is onp.ndarray else t)
        leaves.append(x)
    elif t is tuple or t is list or isinstance(x, tuple) and hasattr(t, "_fields"):
        parts.append((t, len(x)))
        for e in x:
            _walk(e, parts, leaves)
    elif t is dict:
        parts.append((dict, tuple(x)))
        for e in x.values():
            _walk(e, parts, leaves)
    elif isinstance(x, onp.ndarray) and x.dtype.kind in "biufc":
        parts.append((t, x.shape, x.dtype))  # a subclass: tracing decides if it works
        leaves.append(x)
    elif isinstance(x, Box):
        raise _Traced
    else:
        # Static: the value itself is part of the key (with its type, so that
        # 1, 1.0 and True do not share tapes).
        parts.append((t, x))


def signature(args: tuple, kwargs: dict) -> tuple[tuple, list]:
    """``(key, leaves)``: the cache key of a call and its array leaves in order.

    Raises ``_Traced`` when an argument is a box of some trace.
    """
    parts: list = []
    leaves: list = []
    for x in args:
        _walk(x, parts, leaves)
    if kwargs:
        _walk(kwargs, parts, leaves)
    return tuple(parts), leaves


def _map_leaves(x, fn):
    """Rebuild a nest of tuples/lists/dicts/namedtuples with ``fn`` on its leaves."""
    t = type(x)
    if t is tuple or t is list:
        return t(_map_leaves(e, fn) for e in x)
    if t is dict:
        return {k: _map_leaves(v, fn) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(t, "_fields"):
        return t(*(_map_leaves(e, fn) for e in x))
    return fn(x)


def _unbox(x):
    while isinstance(x, Box):
        x = x._value
    return x


# ------------------------------------------------------------ safety nets
def _visible_generators(fun, args, kwargs) -> list:
    """numpy Generators/RandomStates a call can reach directly: arguments,
    closure variables and globals named by ``fun``, following the functions
    those hold (``value_and_grad(f)`` wraps ``f`` in a closure) a few levels."""
    found, seen = [], {}

    def visit(x, depth):
        if id(x) in seen:
            return
        seen[id(x)] = x  # kept alive, so that a temporary's id is not reused
        if isinstance(x, (onp.random.Generator, onp.random.RandomState)):
            found.append(x)
        elif type(x) in (tuple, list) or isinstance(x, tuple):
            for e in x:
                visit(e, depth)
        elif type(x) is dict:
            for e in x.values():
                visit(e, depth)
        elif depth < 4:
            if isinstance(x, types.MethodType):
                visit((x.__self__, x.__func__), depth + 1)
            elif isinstance(x, functools.partial):
                visit((x.func, x.args, x.keywords), depth + 1)
            elif isinstance(x, Compiled):
                visit(x.fun, depth + 1)
            elif isinstance(x, types.FunctionType):
                for cell in x.__closure__ or ():
                    with contextlib.suppress(ValueError):  # an empty cell
                        visit(cell.cell_contents, depth + 1)
                visit([x.__globals__.get(name) for name in x.__code__.co_names], depth + 1)
                visit(x.__dict__.get("__wrapped__"), depth + 1)

    visit(fun, 0)
    visit((args, kwargs), 0)
    return found


def _frozen(state):
    """A generator state in comparable form (states hold dicts and arrays)."""
    if isinstance(state, dict):
        return tuple((k, _frozen(v)) for k, v in state.items())
    if isinstance(state, (tuple, list)):
        return tuple(_frozen(v) for v in state)
    if isinstance(state, onp.ndarray):
        return state.dtype.str, state.shape, state.tobytes()
    return state


def _generator_states(generators: list) -> tuple:
    return _frozen([g.bit_generator.state if isinstance(g, onp.random.Generator)
                    else g.get_state() for g in generators])


def _numpy_global_state() -> tuple:
    return _frozen(onp.random.get_state())


class _OwnPythonDraws:
    """Whether the calling thread draws from Python's global generator (the
    ``random`` module) while inside: ``drew``.

    That generator is shared by the whole process, and a Dask worker's event
    loop draws from it (for jitter) in its own thread while a task traces in
    another, so a changed state alone does not say the traced function drew.
    ``sys.setprofile`` hooks only the calling thread, and every draw
    (``random.gauss``, ``random.choice``, ...) ends in a C method of the
    generator object. numpy's global generator has no such hook (its methods
    are Cython's, which the profiler does not see); it is compared as a whole.
    """

    def __init__(self):
        self.drew = False

    def _hook(self, frame, event, arg) -> None:
        if event == "c_call" and getattr(arg, "__self__", None) is pyrandom._inst:
            self.drew = True

    def __enter__(self):
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)


@contextlib.contextmanager
def _watch_randomness(trace: RecordTrace, generators: list):
    """Refuse the recording if the function draws random numbers: a replay
    would repeat the same draws. probad's random module announces each draw;
    numpy's and Python's global generators, and numpy generators the function
    can see, are compared before and after.

    Only this thread's draws count: other threads (a Dask worker's event loop,
    another chain) may draw meanwhile, and refusing for their draws would run
    the function eagerly, slower and with other rounding than its replay. So
    while other threads run, a change of Python's generator counts only if
    this thread called it (:class:`_OwnPythonDraws`); under another profiler
    that cannot be told, and any change counts.
    """
    tracing_thread = threading.get_ident()

    def on_draw(name: str):
        if threading.get_ident() == tracing_thread:
            trace.refuse(f"it draws random numbers (probad.ad.numpy.random: {name})")

    attribute = threading.active_count() > 1 and sys.getprofile() is None
    python_draws = _OwnPythonDraws() if attribute else contextlib.nullcontext()
    ad_random._draw_listeners.append(on_draw)
    before = pyrandom.getstate(), _numpy_global_state(), _generator_states(generators)
    try:
        with python_draws:
            yield
    finally:
        ad_random._draw_listeners.remove(on_draw)
    python_drew = pyrandom.getstate() != before[0] and (not attribute or python_draws.drew)
    if python_drew or _numpy_global_state() != before[1] or \
            _generator_states(generators) != before[2]:
        trace.refuse("it draws from a numpy or Python random generator")


def _escaped(boxes: list) -> bool:
    """Whether anything besides ``boxes`` still holds one of the trace's boxes
    (the function stored a traced value in an outer list, a global, an
    attribute, a cache): the stored value would silently go stale.

    Two kinds of reference are passing, not stored: garbage cycles (collected
    before the second look) and another thread's snapshot of this thread's
    stack (a sampling profiler, such as a Dask worker's, holds the frames of
    calls that have returned, and their locals, for a moment: 1 trace in 80
    gave up for it there). While other threads run, a few more looks a
    millisecond apart let such a snapshot go; a stored value stays.
    """
    looks = 5 if threading.active_count() > 1 else 2
    for attempt in range(looks):
        # A box held only by the list is referenced by the list, the loop
        # variable and getrefcount's own argument.
        if all(sys.getrefcount(b) <= 3 for b in boxes):
            return False
        if attempt == 0:
            gc.collect()  # references from garbage cycles do not count
        elif attempt < looks - 1:
            time.sleep(0.001)
    return True


def _stacklevel() -> int:
    """The stack level of the first frame outside the compiler package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        frame, level = frame.f_back, level + 1
    return level


def _native_pays(tape: Tape) -> bool:
    from . import native  # imports numba (0.5 s): only when a native backend is asked for

    if native.numpy_only_primitives(tape):
        return False  # runs in numpy by design: not worth lowering, nor a surprise to announce
    numpy_ns, native_ns = native.estimated_costs(tape)
    return native_ns < numpy_ns


# ---------------------------------------------------------------- compiled
class Compiled:
    """A function that replays recorded tapes; built by :func:`compile`.

    Attributes
    ----------
    fun : callable
        The original function.
    tapes : dict
        Cache key (see :meth:`cache_key`) -> list of :class:`Tape`, most
        recently used first.
    eager_keys : dict
        Cache key -> why calls with that key run eagerly.
    trace_count : int
        Number of times the function has been traced.
    max_tapes : int
        Most tapes (control-flow paths) kept per cache key.
    backend : {"numpy", "native", "auto"}
        What replays a tape (see :func:`compile`).
    check : bool
        Whether every replay is compared with eager evaluation (see :func:`compile`).
    """

    def __init__(self, fun, max_tapes: int = 8, backend: str = "numpy",
                 check: bool | None = None):
        if backend not in ("numpy", "native", "auto"):
            raise ValueError(f"backend must be 'numpy', 'native' or 'auto', got {backend!r}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.max_tapes = max_tapes
        self.backend = backend
        self.check = os.environ.get(CHECK_ENV) == "1" if check is None else bool(check)
        self.tapes: dict[tuple, list[Tape]] = {}
        self.eager_keys: dict[tuple, str] = {}
        self.trace_count = 0
        self._warned: set = set()

    def __getstate__(self):
        # Tapes are a cache of generated code: a copy (in another process, say)
        # starts empty and traces again, unless it adopts native_tapes().
        state = dict(self.__dict__)
        state.update(tapes={}, eager_keys={}, trace_count=0)
        return state

    def native_tapes(self) -> dict:
        """The tapes replayed natively, in a form that pickles, for a copy of
        this function in another process to :meth:`adopt` instead of tracing
        again (tracing and lowering a long tape takes seconds; a worker
        process of ``pb.hmc`` runs a chain in less). Cache key -> list of
        ``(program, guards, outputs, n_inputs, n_recorded, meta, positions)``;
        tapes on the numpy replay are left out (the copy traces those)."""
        return {key: [(t.native, t.guards, t.outputs, t.n_inputs, t.n_recorded, t.meta,
                       t.positions) for t in tapes if t.native is not None]
                for key, tapes in self.tapes.items()}

    def adopt(self, native_tapes: dict) -> None:
        """Replay the tapes of another copy's :meth:`native_tapes` (their
        programs unpickled here) for calls with their keys, as if traced here.

        An adopted tape holds its program, guards and outputs, not its ops or
        numpy source: a failed guard traces the function again, as always. A
        program lowered for another interpreter unpickles as None and is
        skipped."""
        for key, parts in native_tapes.items():
            adopted = []
            for program, guards, outputs, n_inputs, n_recorded, meta, positions in parts:
                if program is None:
                    continue
                tape = Tape([], guards, outputs, n_inputs, n_recorded, "", program.replay, meta,
                            positions)
                tape.native = program
                adopted.append(tape)
            if adopted:
                self.tapes[key] = adopted + self.tapes.get(key, [])

    def __get__(self, obj, objtype=None):
        # Decorating a method: bind the instance (a static argument).
        return self if obj is None else types.MethodType(self, obj)

    def __repr__(self):
        return f"<compiled {getattr(self.fun, '__qualname__', self.fun)!r}: " \
               f"{sum(map(len, self.tapes.values()))} tapes>"

    def cache_key(self, *args, **kwargs) -> tuple:
        """The cache key a call with these arguments would use."""
        return signature(args, kwargs)[0]

    def __call__(self, *args, **kwargs):
        try:
            key, leaves = signature(args, kwargs)
            tapes = self.tapes.get(key)
        except _Traced:
            # Inside another transformation (grad of a compiled function):
            # let that trace see every primitive call.
            return self.fun(*args, **kwargs)
        except TypeError:
            self._warn("unhashable", f"{self._name()}: an argument is neither an array nor "
                       "hashable, so it cannot be part of the cache key; running eagerly")
            return self.fun(*args, **kwargs)
        if tapes is not None:
            for i, tape in enumerate(tapes):
                try:
                    if tape.native is not None:  # compiled code: no numpy warning to report
                        out = tape.replay(*leaves)
                    else:
                        with reported_at_user_code():
                            out = tape.replay(*leaves)
                except GuardFailure:
                    continue
                except Exception:
                    # The recorded path failed where the function itself may
                    # not (it may catch the error): let the function decide.
                    return self.fun(*args, **kwargs)
                if i:
                    tapes.insert(0, tapes.pop(i))
                if self.check:
                    self._check(out, args, kwargs)
                return out
        elif key in self.eager_keys:
            return self.fun(*args, **kwargs)
        return self._trace(key, args, kwargs)

    # ------------------------------------------------------------ tracing
    def _trace(self, key, args, kwargs):
        tapes = self.tapes.get(key, ())
        if len(tapes) >= self.max_tapes:
            self._warn("max_tapes", f"{self._name()} took more than max_tapes={self.max_tapes} "
                       "control-flow paths for one argument signature; new paths run eagerly "
                       "(raise max_tapes if that many paths are expected)")
            return self.fun(*args, **kwargs)
        self.trace_count += 1
        error = None
        # Entered before the trace starts, as around a replay: the trace
        # records an op's errstate only where it differs from its own, so a
        # derivative inside entering the same context records none.
        with reported_at_user_code(), trace_scope(RecordTrace) as trace:
            baseline = trace.errstate
            boxed_args, boxed_kwargs = _map_leaves(
                (args, kwargs), lambda x: trace.new_input(x) if _is_array_leaf(x) else x)
            n_inputs = len(trace.meta)
            with _watch_randomness(trace, _visible_generators(self.fun, args, kwargs)):
                try:
                    out = self.fun(*boxed_args, **boxed_kwargs)
                except Exception as exc:
                    error = exc
            trace.close()
            for op in trace.ops:  # an errstate the function entered itself
                op.errstate = as_outside(op.errstate, baseline)
        if error is not None:
            del boxed_args, boxed_kwargs
            result = self.fun(*args, **kwargs)  # raises the function's own error, if any
            self._give_up(key, f"tracing raised an error that eager evaluation does not "
                          f"({type(error).__name__}: {error})", tag=type(error))
            return result

        outputs = output_template(out, lambda x: self._output_leaf(trace, x))
        result = _map_leaves(out, _unbox)
        del out, boxed_args, boxed_kwargs
        if trace.unreplayable is None and _escaped(trace.boxes):
            trace.refuse("it keeps traced values after returning (in an outer list, a "
                         "global, an attribute or a cache)")
        trace.boxes.clear()
        if trace.unreplayable is not None:
            self._give_up(key, trace.unreplayable)
            return result
        tape = build_tape(trace, n_inputs, outputs, self._name())
        if self.backend == "native" or self.backend == "auto" and _native_pays(tape):
            self._go_native(tape)
        self.tapes.setdefault(key, []).insert(0, tape)
        return result

    def _check(self, out, args, kwargs) -> None:
        """Raise CompileMismatchError if ``fun`` run eagerly gives another result."""
        difference = _difference(out, self.fun(*args, **kwargs), "the output")
        if difference is not None:
            raise CompileMismatchError(
                f"compiled {self._name()} disagrees with running it eagerly: {difference}. "
                "The usual cause is an array or global that the function reads and that "
                "changed after it was traced: a tape keeps the values it saw then. Pass such "
                "values as arguments, or compile the function again after changing them.")

    def _go_native(self, tape: Tape) -> None:
        """Replay ``tape`` natively, or keep its numpy replay with one warning
        per reason (naming the primitives the interpreter lacks)."""
        from . import native  # imports numba (0.5 s): only when a native backend is asked for

        try:
            tape.native = native.lower(tape)
        except native.Unsupported as why:
            self._warn(("native", str(why)), f"{self._name()}: replayed by numpy, not natively: "
                       f"no native lowering for {why}")
            return
        tape.replay = tape.native.replay

    @staticmethod
    def _output_leaf(trace, value):
        if isinstance(value, Box):
            if value._trace is trace:
                return Ref(value._node)
            trace.refuse("it returns a value traced by an enclosing transformation")
        elif not isinstance(value, _CONSTANT_OUTPUTS):
            trace.refuse(f"it returns a {type(value).__name__}, which may hold traced values")
        return value

    def _give_up(self, key, reason: str, tag=None) -> None:
        self.eager_keys[key] = reason
        self._warn(tag or reason, f"{self._name()} runs eagerly because {reason}")

    def _warn(self, tag, message: str) -> None:
        if tag not in self._warned:
            self._warned.add(tag)
            warnings.warn(message, CompileWarning, stacklevel=_stacklevel())

    def _name(self) -> str:
        return getattr(self.fun, "__name__", None) or type(self.fun).__name__


def _difference(got, want, where: str) -> str | None:
    """Where a replay's output ``got`` differs from the eager ``want``, or None."""
    if isinstance(want, (tuple, list, dict)):
        if type(got) is not type(want) or len(got) != len(want) or \
                isinstance(want, dict) and list(got) != list(want):
            return f"{where} has another structure ({_short(got)} against {_short(want)})"
        keys = list(want) if isinstance(want, dict) else range(len(want))
        for k in keys:
            found = _difference(got[k], want[k], f"{where}[{k!r}]")
            if found is not None:
                return found
        return None
    if not _is_array_leaf(want) and not isinstance(want, onp.ndarray):
        return None if got == want else f"{where} is {got!r} compiled, {want!r} eagerly"
    got_a, want_a = onp.asarray(got), onp.asarray(want)
    if got_a.shape != want_a.shape:
        return f"{where} has shape {got_a.shape} compiled, {want_a.shape} eagerly"
    close = onp.isclose(got_a, want_a, rtol=_CHECK_RTOL, atol=_CHECK_ATOL, equal_nan=True)
    if close.all():
        return None
    i = tuple(int(j) for j in onp.argwhere(~close)[0])
    at = f" at index {i}" if i else ""
    return (f"{where} is {got_a[i].item()!r} compiled, {want_a[i].item()!r} eagerly{at} "
            f"({int((~close).sum())} of {close.size} entries differ)")


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def compile(fun, max_tapes: int = 8, backend: str = "numpy",
            check: bool | None = None) -> Compiled:
    """Record ``fun`` into flat tapes of primitive calls and replay them.

    Parameters
    ----------
    fun : callable
        A function written with ``probad.ad.numpy``, or a derivative of one:
        ``compile(value_and_grad(f))`` records the backward pass too.
    max_tapes : int
        Most control-flow paths kept per argument signature; calls taking a
        new path beyond that run eagerly (with one warning).
    backend : {"numpy", "native", "auto"}
        ``"numpy"`` replays a tape as straight-line Python calling numpy, one
        call per primitive. ``"native"`` lowers it to data for a compiled
        interpreter (numba, see :mod:`probad.ad.compiler.native`): no Python
        call per primitive, results equal to the numpy replay's up to
        rounding. A tape using a primitive the interpreter lacks (or numba
        missing) stays on the numpy replay, with one warning naming it.
        ``"auto"`` is ``"native"`` for the tapes that a cost model
        (:func:`~probad.ad.compiler.native.estimated_costs`) predicts to run
        faster natively, and ``"numpy"`` for the others (long vectors of
        exp/log, where numpy's SIMD loops win). The choice depends on the
        tape only, so a seed gives the same draws on every run.
    check : bool, optional
        Debug mode: every replay also runs ``fun`` eagerly and raises
        :class:`CompileMismatchError`, naming the first output entry that
        differs (beyond a relative 1e-9), if the two disagree. It catches
        stale constants (see Notes) at the cost of an eager run per call.
        None (the default) reads the environment variable
        ``PROBAD_COMPILE_CHECK``: ``1`` turns it on for every compiled
        function built while it is set, those of ``pb.hmc``'s potential too.

    Returns
    -------
    Compiled
        A callable with ``fun``'s signature. Arrays (numpy arrays and
        scalars, Python floats and complex numbers) are inputs of the tape;
        their shapes and dtypes, and the values of all other arguments
        (ints, bools, strings, hashable objects), select the tapes. Values
        ``fun`` closes over are constants fixed at the first trace: create a
        new compiled function if they change.

    Notes
    -----
    Python decisions on traced values (``if x > 0``, ``int(n)``, ``.item()``,
    loop conditions) become guards, checked on replay where they were taken;
    when one fails the function is traced again along the new path. Output
    shapes that depend on values (boolean masks, ``nonzero``) are checked
    too. Each new argument signature gets its own tapes (the number of
    signatures is not bounded, as with ``jax.jit``).

    ``fun`` runs eagerly, with one :class:`CompileWarning` saying why, when a
    recording cannot be trusted: it draws random numbers, stores traced values
    outside itself, returns something other than arrays and constants, or
    fails under tracing only. Calls whose arguments are traced by another
    transformation (``grad`` of a compiled function) run ``fun`` directly.

    **Stale results.** Arrays and globals that ``fun`` reads without taking
    them as arguments are constants of the tape, copied when it is traced:
    if they change afterwards, replays go on using the old values. (A
    ``float(x)`` of a traced value is no such constant: it is a guard, which
    holds only for the value it saw.) The fix is to pass anything that
    changes as an argument, or to call ``compile`` again after changing it. ``check=True`` (or
    ``PROBAD_COMPILE_CHECK=1``) finds such cases: it compares every replay
    with eager evaluation.
    """
    return Compiled(fun, max_tapes, backend, check)


def compile_value_and_grad(fun, argnum=0, max_tapes: int = 8,
                           check: bool | None = None) -> Compiled:
    """Compiled ``value_and_grad(fun, argnum)``: one replay gives both."""
    return Compiled(value_and_grad(fun, argnum), max_tapes, check=check)


def compile_grad(fun, argnum=0, max_tapes: int = 8, check: bool | None = None) -> Compiled:
    """Compiled ``grad(fun, argnum)``."""
    return Compiled(grad(fun, argnum), max_tapes, check=check)


def compile_hvp(fun, argnum=0, max_tapes: int = 8, check: bool | None = None) -> Compiled:
    """Compiled Hessian-vector product ``hvp(*args, v) = H(args[argnum]) v``.

    Forward-over-reverse: a JVP of the gradient, so one replay costs a small
    multiple of a gradient and the Hessian is never formed.
    """
    grad_fun = grad(fun, argnum)

    def hvp(*args, **kwargs):
        *args, vector = args
        return make_jvp(grad_fun, argnum)(*args, **kwargs)(vector)[1]

    hvp.__name__ = f"hvp_{getattr(fun, '__name__', 'fun')}"
    return Compiled(hvp, max_tapes, check=check)
