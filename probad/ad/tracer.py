"""Tracing: primitives, boxes and traces.

A *primitive* is a wrapped function whose derivative rules we know. Calling a
primitive on a :class:`Box` (a value being traced) computes the raw result and
asks the box's *trace* to record the call. Three kinds of trace share this one
mechanism:

- :class:`ReverseTrace` appends an entry to a flat tape; because entries are
  appended in execution order, walking the tape backwards is a valid
  topological order for the backward pass (``core.backward``);
- ``core.ForwardTrace`` pushes a tangent through each call at once (JVPs);
- the compiler's recording trace (``compiler.tape.RecordTrace``) keeps every
  call, including non-differentiable ones, so that the tape can be replayed on
  new inputs.

Traces nest: every trace has a ``level``, a call is recorded by the highest
trace among its boxed arguments, and the unboxed values are passed down to the
same primitive again so that lower traces record it too. That recursion is all
it takes for derivatives of any order and for forward-over-reverse products.
"""
from __future__ import annotations

import functools
import threading
import types
import warnings
import weakref

import numpy as onp

from .misuse import lost_derivative

__all__ = [
    "Box", "primitive", "notrace_primitive", "nondiff_primitive", "register_notrace",
    "new_box", "isbox", "getval", "trace_scope", "Node", "trace", "shared_calls", "constant_key",
]


class Box:
    """A value under a trace.

    ``_value`` is the raw value (or a box of a lower trace), ``_trace`` the
    trace that owns the box, and ``_node`` what that trace needs to know about
    it: its position on the tape in reverse mode (and in the compiler), its
    tangent in forward mode.
    """

    __slots__ = ("_value", "_trace", "_node")
    type_mappings: dict = {}
    types: set = set()

    def __init__(self, value, trace, node):
        self._value = value
        self._trace = trace
        self._node = node

    def __bool__(self):
        return self._trace.concretize(self, bool)

    def __repr__(self):
        return f"{type(self).__name__}({self._value!r}, level={self._trace.level})"

    @classmethod
    def register(cls, value_type):
        """Make ``value_type`` traceable with boxes of class ``cls``."""
        Box.types.add(cls)
        Box.type_mappings[value_type] = cls
        Box.type_mappings[cls] = cls


def new_box(value, trace, node):
    try:
        return Box.type_mappings[type(value)](value, trace, node)
    except KeyError:
        raise TypeError(
            f"can't differentiate with respect to a value of type {type(value).__name__}; "
            "probad.ad traces numpy arrays, Python floats/complex and containers of them"
        ) from None


def isbox(x) -> bool:
    """Whether ``x`` is a traced value (a :class:`Box`)."""
    return isinstance(x, Box)


def getval(x):
    """The raw value under any number of boxes."""
    while isinstance(x, Box):
        x = x._value
    return x


class ValueMeta:
    """What a VJP may still ask of an argument whose value the tape dropped:
    its shape and dtype."""

    __slots__ = ("shape", "dtype")
    stub_types: set = set()  # value types that may be replaced (registered by the numpy layer)

    def __init__(self, value):
        self.shape = value.shape
        self.dtype = value.dtype

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


# The same set, read by ``record`` as a global (cheaper, once per dropped argument).
_stub_types = ValueMeta.stub_types
# Smaller values are kept as they are: a stub costs more time than such an
# array costs memory (a tape entry itself takes a few hundred bytes).
_STUB_MIN_BYTES = 1024


#: Conversions that return a value with the derivative of the identity (the
#: number itself), kind -> how to name it: on a float or complex box they
#: would silently drop that derivative. ``bool``, ``int`` and ``__index__``
#: are piecewise constant, so a constant is their exact derivative; they stay
#: allowed, for control flow and sizes. (The numpy layer adds ``.item()``.)
LOSSY_CONVERSIONS: dict = {float: "float()", complex: "complex()"}


def _inexact(value) -> bool:
    if isinstance(value, (float, complex)):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and dtype.kind in "fc"


class Trace:
    """Base class of traces; subclasses decide what a primitive call leaves behind.

    A subclass defines ``record(fun, ans, args, kwargs, argnums, boxes)``:
    record the call ``fun(*args, **kwargs) -> ans`` (``args`` holds raw
    values) and return what the caller gets, a box of ``ans``. ``argnums``
    are the positions of this trace's boxes and ``boxes`` those boxes: an int
    and a Box when exactly one argument is traced (the common case, spared
    two 1-tuples), else two sequences; :func:`traced_arguments` gives
    sequences either way.
    """

    records_nondiff = False  # only the compiler needs non-differentiable calls kept

    def __init__(self, level):
        self.level = level

    def concretize(self, box, kind):
        """Python asked for a concrete value (``bool``/``int``/``float``/...).

        A derivative trace refuses a conversion in ``LOSSY_CONVERSIONS`` of a
        float or complex value (autograd's boxes raise TypeError there too):
        the number would leave the trace with no derivative.
        """
        if kind in LOSSY_CONVERSIONS and _inexact(getval(box)):
            raise lost_derivative(box, LOSSY_CONVERSIONS[kind])
        value = box._value
        if isinstance(value, Box):
            # Pass the question down: a lower trace (the compiler's) may need
            # to record it, and ``kind`` may not accept a box (``.item()``).
            return value._trace.concretize(value, kind)
        return kind(value)

    def primitive_raised(self, fun):
        """A call of ``fun`` on this trace's boxes raised; the compiler's trace
        refuses to replay a recording in which the function caught that."""


def traced_arguments(argnums, boxes) -> tuple[tuple, tuple]:
    """``Trace.record``'s ``argnums`` and ``boxes`` as two sequences."""
    if type(argnums) is int:
        return (argnums,), (boxes,)
    return argnums, boxes


class ReverseTrace(Trace):
    """Reverse mode: each box's ``_node`` is its position on a flat tape.

    A tape entry is the tuple ``(fun, ans, args, kwargs, argnums, parents)``
    (``parents``: the positions of the traced arguments at ``argnums``; two
    ints rather than 1-tuples when one argument is traced); a plain tuple
    because one is made per primitive call, and a class's ``__init__`` costs
    more than the rest of the entry. Derivative closures are
    *not* built here: the backward pass applies the VJP rules only to entries
    that receive a gradient, which keeps the forward pass cheap.
    """

    __slots__ = ("level", "tape")

    def __init__(self, level):
        super().__init__(level)
        self.tape = [None]  # position 0 is the start, which has no entry

    def new_start(self, value):
        return new_box(value, self, 0)

    def record(self, fun, ans, args, kwargs, argnums, boxes):
        """Append the call to the tape. ``args`` is a list made for this call,
        which the tape keeps (with dropped values replaced in place). One
        traced argument, the common case, is kept as two ints (``argnum``
        and its parent's position), not 1-tuples."""
        ans_kept = ans if fun.tape_plans is None else _drop_unread(fun, ans, args, argnums)
        tape = self.tape
        index = len(tape)
        tape.append((fun, ans_kept, args, kwargs, argnums,
                     boxes._node if type(argnums) is int else (boxes[0]._node, boxes[1]._node)
                     if len(boxes) == 2 else tuple(b._node for b in boxes)))
        try:
            return Box.type_mappings[type(ans)](ans, self, index)
        except KeyError:
            return new_box(ans, self, index)


def _drop_unread(fun, ans, args, argnums):
    """Keep only the values the VJP reads (autograd's closures do the same):
    the other arguments become shape/dtype stubs in ``args``, so memory is
    released. Returns ``ans``, or None if the VJP does not read it."""
    key = argnums, len(args)
    try:
        keep_ans, dropped = fun.tape_plans[key]
    except KeyError:
        keep_ans, dropped = fun.tape_plans[key] = fun.tape_plan(
            (argnums,) if type(argnums) is int else argnums, len(args))
    for i in dropped:
        a = args[i]
        if type(a) in _stub_types and a.nbytes > _STUB_MIN_BYTES:
            args[i] = ValueMeta(a)
    return ans if keep_ans else None


class trace_scope:
    """``with trace_scope(TraceClass) as trace``: a new trace one level above
    every trace currently open (a plain class: cheaper than a generator)."""

    depth = 0
    __slots__ = ("trace",)

    def __init__(self, trace_class, *args):
        trace_scope.depth += 1
        self.trace = trace_class(trace_scope.depth, *args)

    def __enter__(self):
        return self.trace

    def __exit__(self, *exc):
        trace_scope.depth -= 1


#: ``notrace`` of a nondiff_primitive: every trace that keeps only
#: differentiable calls (all but the compiler's).
_DERIVATIVE_TRACES = object()


class primitive:
    """Wrap ``fun`` so that calls on boxes are recorded.

    ``vjp_keeps``, when set, is ``argnums -> (keep_ans, kept_arg_positions)``:
    what the VJP rules read beyond shapes and dtypes, so the tape can drop
    the rest.

    Derivative rules live on the primitive itself: ``vjps[argnum]`` is a rule
    ``(g, ans, *args, **kwargs) -> cotangent`` and ``jvps[argnum]`` a rule
    ``(g, ans, *args, **kwargs) -> tangent`` (``core.defvjp`` turns autograd's
    VJP makers into the first form). So do the facts the compiler and its
    backends need; ``core.defprimitive`` declares them all in one call.
    """

    differentiable = True
    # Whether the call can raise on some input *values* (a Cholesky factor of
    # a matrix that is not positive definite, a failed ODE solve): the
    # compiler then keeps the call even when its result is unused, so that a
    # replay fails where the function itself fails.
    may_raise = False
    # Whether the result's shape may depend on the input values (``nonzero``):
    # the compiler then checks it on replay.
    value_shaped = False
    # The compiler's rewrite that finds when the call returns an operand
    # unchanged (a name in ``compiler.codegen.SIMPLIFICATIONS``), or None.
    simplify = None
    # backend name -> how that backend runs the primitive (``core.defprimitive``).
    lowerings: dict = {}
    # ``tape_plan``'s answers by ``(argnums, number of arguments)``, filled in
    # as the tape asks (a primitive meets few distinct ones); None when
    # ``vjp_keeps`` is not declared, so that every value is kept.
    tape_plans = None
    # Traces that pass over this primitive (call it on raw values and record
    # nothing): None for none, the common case and the only one the call
    # path tests; _DERIVATIVE_TRACES for a nondiff_primitive; else a set of
    # trace types (register_notrace).
    notrace = None
    # Makes one traced array of a (nested) list or tuple holding traced
    # values; set by the numpy layer.
    pack_sequence = None
    # Whether equal arguments give an equal result (not so for random draws):
    # only such calls are shared under ``shared_calls``.
    pure = True
    # Every primitive made, for autograd's ``primitive_vjps`` registry view.
    instances = weakref.WeakSet()

    def __init__(self, fun, name=None):
        primitive.instances.add(self)
        self.fun = fun
        self.vjps = {}
        self.jvps = {}
        functools.update_wrapper(self, fun, updated=())
        if name is not None:
            self.__name__ = name
        self.__name__ = getattr(self, "__name__", None) or getattr(fun, "__name__", repr(fun))

    @property
    def vjp_keeps(self):
        return self.__dict__.get("_vjp_keeps")

    @vjp_keeps.setter
    def vjp_keeps(self, keeps):
        self._vjp_keeps = keeps
        self.tape_plans = None if keeps is None else {}

    def tape_plan(self, argnums, n_args):
        """``(keep_ans, dropped)``: whether the tape keeps the result, and the
        positions of the arguments it may replace with stubs, for a call with
        ``n_args`` positional arguments traced at ``argnums``."""
        keep_ans, keep_args = self.vjp_keeps(argnums)
        return keep_ans, tuple(i for i in range(n_args) if i not in keep_args)

    def __call__(self, *args, **kwargs):
        boxed = None
        i = 0
        for a in args:
            if isinstance(a, Box):
                if boxed is not None:
                    boxed = -1  # several traced arguments
                    break
                boxed = i
            i += 1
        if _SHARED and boxed is not None and self.pure:
            memo = _SHARED.get(threading.get_ident())
            if memo is not None:
                return _shared_call(self, memo, args, kwargs)
        if boxed is None:
            try:
                return self.fun(*args, **kwargs)
            except TypeError:
                # Off the fast path, once numpy has refused traced values:
                # inside an array container (an xarray DataArray) or inside
                # a list or tuple that numpy would make an array (``np.mean([x, x + 2])``).
                out = self._defer_to_container(args, kwargs)
                if out is not NotImplemented:
                    return out
                if self.pack_sequence is None or not _holds_box((args, kwargs)):
                    raise
            pack = self.pack_sequence
            return self(*[pack(a) if _holds_box(a) else a for a in args],
                        **{k: pack(v) if _holds_box(v) else v for k, v in kwargs.items()})
        if boxed >= 0 and not isinstance(args[boxed]._value, Box):
            # The common case: exactly one traced argument, not nested;
            # ``record`` takes it as an int and a Box.
            argnums = boxed
            boxes = args[boxed]
            top = boxes._trace
            if i == 1:
                argvals = [boxes._value]
            else:
                argvals = list(args)
                argvals[boxed] = boxes._value
            nested = False
        else:
            top, argnums, boxes, argvals, nested = _traced_call(args)
        try:
            if nested:
                # Boxes of lower traces remain: the call records with them too.
                ans = self(*argvals, **kwargs)
            else:
                # Without keywords, the call skips building a dict for them.
                ans = self.fun(*argvals, **kwargs) if kwargs else self.fun(*argvals)
        except Exception:
            return self._container_or_raise(args, kwargs, top)
        if self.notrace is not None and (not top.records_nondiff if self.notrace is _DERIVATIVE_TRACES
                                         else type(top) in self.notrace):
            return ans
        try:
            return top.record(self, ans, argvals, kwargs, argnums, boxes)
        except TypeError:  # the result may be an array container, which cannot be traced
            return self._container_or_raise(args, kwargs)

    def _container_or_raise(self, args, kwargs, trace=None):
        """In an ``except`` block: the call handed to an array container
        among the arguments, else the exception re-raised (``trace`` told
        first that the primitive raised)."""
        out = self._defer_to_container(args, kwargs)
        if out is NotImplemented:
            if trace is not None:
                trace.primitive_raised(self)
            raise  # the exception being handled
        return out

    def _defer_to_container(self, args, kwargs):
        """Have an array container among the arguments (an xarray
        ``DataArray``) apply this ufunc through its ``__array_ufunc__``, which
        calls the primitive on the values it holds, traced ones included; the
        result is a container holding a box, as under autograd. NotImplemented
        if this is not a ufunc or no argument is such a container.
        """
        if not hasattr(self.fun, "signature") or not hasattr(self.fun, "nout"):
            return NotImplemented
        for a in args:
            handler = getattr(type(a), "__array_ufunc__", None)
            if handler is not None and not isinstance(a, Box) and type(a).__module__ != "numpy":
                return handler(a, _AsUfunc(self), "__call__", *args, **kwargs)
        return NotImplemented

    def __get__(self, obj, objtype=None):
        # A primitive defined in a class body is a method, as a function would be.
        return self if obj is None else types.MethodType(self, obj)

    def __repr__(self):
        return f"<primitive {self.__name__}>"


# ----------------------------------------------------- shared repeated calls
#: thread id -> memo of the innermost ``shared_calls`` block open in that thread.
_SHARED: dict[int, dict] = {}
#: Largest array compared by value in a call's key; a larger one by identity.
VALUE_KEY_BYTES = 4096


def constant_key(value, by_value=lambda array: True):
    """A hashable stand-in for an argument that is not traced here: by value
    for Python and numpy scalars (bit pattern, so 0.0 and -0.0 differ), for
    numeric arrays of at most :data:`VALUE_KEY_BYTES` that ``by_value``
    accepts, and for tuples of these; by identity for anything else (the
    caller keeps such an object alive while the key is in use)."""
    t = type(value)
    if t in (type(None), bool, int, str):
        return t, value
    if t is float or isinstance(value, onp.generic) and value.dtype.kind in "biufc":
        return t, onp.asarray(value).tobytes()
    if t is tuple:  # an index: (1, True) is not (1, 1)
        return t, tuple(constant_key(v, by_value) for v in value)
    if t is onp.ndarray and value.dtype.kind in "biufc" and value.nbytes <= VALUE_KEY_BYTES \
            and by_value(value):
        return t, value.dtype.str, value.shape, value.tobytes()
    return "id", id(value)


def _shared_call(prim, memo, args, kwargs):
    """``prim(*args, **kwargs)``, or the result of an earlier call with the
    same boxes and equal constants in this ``shared_calls`` block."""
    key = (prim, tuple(("box", id(a)) if isinstance(a, Box) else constant_key(a) for a in args),
           tuple((k, constant_key(v)) for k, v in kwargs.items()))
    hit = memo.get(key)
    if hit is not None:
        return hit[0]
    token = _SHARED.pop(threading.get_ident())  # the call itself runs unshared
    try:
        ans = prim(*args, **kwargs)
    finally:
        _SHARED[threading.get_ident()] = token
    if isinstance(ans, Box):  # a raw result (a mask) may be changed in place by its user
        memo[key] = (ans, args, kwargs)  # the arguments keep the ids in the key unique
    return ans


class shared_calls:
    """Within this block (in this thread), a pure primitive called again on
    the same boxes with equal other arguments returns the first call's result
    instead of recording a second call.

    A model whose Python loop repeats a computation (``theta[x]`` at every
    step of an enumerated Markov chain, with ``x`` the same support each
    time) then has one node for it on every trace: a compiled replay
    computes it, and the backward pass differentiates it, once, with the
    gradients of its uses summed first (which may round differently from
    differentiating each use and summing after).
    """

    __slots__ = ("_outer",)

    def __enter__(self):
        ident = threading.get_ident()
        self._outer = _SHARED.get(ident)
        _SHARED[ident] = {}
        return self

    def __exit__(self, *exc):
        ident = threading.get_ident()
        if self._outer is None:
            del _SHARED[ident]
        else:
            _SHARED[ident] = self._outer


def _traced_call(args):
    """``(top, argnums, boxes, argvals, nested)`` for a primitive call with
    several traced arguments or nested traces: the highest trace among the
    boxes records the call, ``argnums`` and ``boxes`` are its boxes' positions
    and the boxes (a tuple and a list), ``argvals`` the arguments with those
    boxes opened, and ``nested`` whether boxes of lower traces remain in them."""
    boxed = [i for i, a in enumerate(args) if isinstance(a, Box)]
    top = args[boxed[0]]._trace
    nested = False
    for i in boxed[1:]:
        t = args[i]._trace
        if t is not top:
            nested = True
            if t.level > top.level:
                top = t
    argnums = tuple(i for i in boxed if args[i]._trace is top) if nested else tuple(boxed)
    argvals = list(args)
    boxes = []
    for i in argnums:
        b = args[i]
        boxes.append(b)
        v = argvals[i] = b._value
        if isinstance(v, Box):
            nested = True
    return top, argnums, boxes, argvals, nested


class _AsUfunc:
    """A ufunc primitive presented as the numpy ufunc it wraps, to a
    container's ``__array_ufunc__``: same signature, calls the primitive."""

    __slots__ = ("primitive", "signature", "nin", "nout", "__name__")

    def __init__(self, prim):
        self.primitive = prim
        self.signature, self.nin, self.nout = prim.fun.signature, prim.fun.nin, prim.fun.nout
        self.__name__ = prim.fun.__name__

    def __call__(self, *args, **kwargs):
        return self.primitive(*args, **kwargs)


def _holds_box(x) -> bool:
    """Whether a list, tuple or dict (nested) holds a :class:`Box`."""
    if isinstance(x, dict):
        x = tuple(x.values())
    if type(x) in (list, tuple):
        return any(isinstance(e, Box) or _holds_box(e) for e in x)
    return False


class nondiff_primitive(primitive):
    """A function with zero derivative (floor, argmax, comparisons, ...).

    Derivative traces drop its boxes; the compiler still records it because
    its result may feed later computation (an index, a mask, a guard).
    """

    differentiable = False
    notrace = _DERIVATIVE_TRACES


def register_notrace(trace_type, fun: primitive):
    """Have traces of ``trace_type`` pass over the primitive ``fun``.

    Such a trace calls ``fun`` on raw values and does not record the call, so
    to it the result is a constant (autograd's ``register_notrace``). Other
    traces, lower ones included, still record it.

    Parameters
    ----------
    trace_type : type
        A :class:`Trace` subclass, e.g. ``ReverseTrace`` or ``ForwardTrace``.
    fun : primitive
        The primitive to pass over. A ``nondiff_primitive`` is passed over by
        every derivative trace already and is left as it is.
    """
    if fun.notrace is not _DERIVATIVE_TRACES:
        fun.notrace = frozenset(fun.notrace or ()) | {trace_type}


def notrace_primitive(fun):
    """Wrap ``fun`` so it always sees raw values and is never recorded.

    Use for helpers whose output never depends on traced values in a way that
    matters (shape queries, dtype checks). The compiler cannot see through
    such a call, so do not use it for computation on values.
    """

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        return fun(*[getval(a) for a in args], **kwargs)

    return wrapped


# ------------------------------------------------- autograd's Node interface
class Node:
    """What a custom trace keeps per traced value (autograd's ``tracer.Node``).

    Subclass it, define ``__init__(self, value, fun, args, kwargs,
    parent_argnums, parents)`` (called for each primitive call on traced
    values; ``args`` holds the raw values, ``parents`` the nodes of the traced
    ones) and ``initialize_root(self, *args)``, then run :func:`trace`.
    """

    __slots__ = ()

    def __init__(self, value, fun, args, kwargs, parent_argnums, parents):
        raise NotImplementedError(f"{type(self).__name__} must define __init__")

    def initialize_root(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define initialize_root")

    @classmethod
    def new_root(cls, *args, **kwargs):
        """A node for the start of a trace: ``initialize_root`` instead of ``__init__``."""
        root = cls.__new__(cls)
        root.initialize_root(*args, **kwargs)
        return root


class NodeTrace(Trace):
    """Calls each traced primitive call's node class on it (see :class:`Node`)."""

    __slots__ = ("node_type",)

    def __init__(self, level, node_type):
        super().__init__(level)
        self.node_type = node_type

    def record(self, fun, ans, args, kwargs, argnums, boxes):
        argnums, boxes = traced_arguments(argnums, boxes)
        node = self.node_type(ans, fun, tuple(args), kwargs, argnums, tuple(b._node for b in boxes))
        return new_box(ans, self, node)


def trace(start_node, fun, x):
    """Evaluate ``fun(x)`` with ``x`` traced from ``start_node``; return
    ``(value, end_node)``, ``end_node`` None (with a warning) if the output
    does not depend on ``x``."""
    with trace_scope(NodeTrace, type(start_node)) as t:
        end = fun(new_box(x, t, start_node))
        if isinstance(end, Box) and end._trace is t:
            return end._value, end._node
        warnings.warn("Output seems independent of input.", stacklevel=2)
        return end, None

