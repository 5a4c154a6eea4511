"""Recording one run of a function as a flat tape of primitive calls.

:class:`RecordTrace` is the compiler's trace kind (see ``tracer.py``). Every
primitive call that touches one of its boxes becomes an :class:`Op`; every
time Python asks for a concrete value of a box (``bool``, ``int``,
``float``, ``.item()``, use as an index), a :class:`Guard` remembers what it
saw. Anything computed without touching a box never reaches the trace: it is
a constant, folded into the tape by construction.

The trace also notes why a recording must not be replayed (a value of an
enclosing trace leaked in, a primitive raised and the function carried on);
``function.py`` decides what to do about it.
"""
from __future__ import annotations

import numpy as onp

from ..tracer import Box, Trace, new_box, traced_arguments

__all__ = ["Ref", "Op", "Guard", "RecordTrace", "describe", "shape_signature"]

class Ref:
    """A value slot of the tape: an input (``0 .. n_inputs-1``) or an op's output."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __repr__(self):
        return f"v{self.index}"


class Op:
    """One primitive call ``v{out} = prim.fun(*args, **kwargs)``.

    ``args`` holds :class:`Ref` for traced values and the constants
    themselves otherwise. ``shape`` is the observed output shape when it must
    be checked on replay (else ``None``); ``errstate`` is the numpy error
    state the call ran under when it differed from the caller's.
    """

    __slots__ = ("prim", "args", "kwargs", "out", "shape", "errstate")

    def __init__(self, prim, args, kwargs, out, shape=None, errstate=None):
        self.prim = prim
        self.args = args
        self.kwargs = kwargs
        self.out = out
        self.shape = shape
        self.errstate = errstate

    @property
    def name(self) -> str:
        return self.prim.__name__

    def __repr__(self):
        parts = [repr(a) if isinstance(a, Ref) else _short(a) for a in self.args]
        parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"v{self.out} = {self.name}({', '.join(parts)})"


class Guard:
    """A Python decision on a traced value: on replay, ``kind(v{ref})`` must
    equal ``observed`` again. ``position`` counts the ops recorded before it,
    which is where the replay checks it."""

    __slots__ = ("ref", "kind", "observed", "position")

    def __init__(self, ref: int, kind, observed, position: int):
        self.ref = ref
        self.kind = kind
        self.observed = observed
        self.position = position

    def __repr__(self):
        name = getattr(self.kind, "__name__", repr(self.kind)).lstrip("_")
        return f"guard {name}(v{self.ref}) == {self.observed!r}"


def describe(value) -> tuple:
    """``(type, shape, dtype)``: what the code generator may rely on about a value."""
    return type(value), getattr(value, "shape", None), getattr(value, "dtype", None)


def shape_signature(value):
    """The shape of an array, or the shapes inside a tuple/list of arrays."""
    if isinstance(value, (tuple, list)):
        return tuple(shape_signature(v) for v in value)
    return getattr(value, "shape", None)


def _short(value) -> str:
    if isinstance(value, onp.ndarray):
        return f"array{value.shape}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_discrete(value) -> bool:
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return dtype.kind in "biu"
    return isinstance(value, int)


class RecordTrace(Trace):
    """The compiler's trace: keeps every call (non-differentiable ones too)."""

    records_nondiff = True

    def __init__(self, level):
        super().__init__(level)
        self.ops: list[Op] = []
        self.guards: list[Guard] = []
        self.meta: list[tuple] = []  # describe() of every value slot
        self.boxes: list[Box] = []  # every box handed out, to find escapes afterwards
        self.errstate = onp.geterr()
        self.unreplayable: str | None = None
        self.closed = False
        self._snapshots: dict[int, tuple] = {}

    # ------------------------------------------------------------ values
    def new_input(self, value) -> Box:
        return self._new_value(value)

    def _new_value(self, value) -> Box:
        box = new_box(value, self, len(self.meta))
        self.meta.append(describe(value))
        self.boxes.append(box)
        return box

    def close(self) -> None:
        """Stop recording: boxes that outlive the trace act as their values."""
        self.closed = True

    def refuse(self, reason: str) -> None:
        """Mark the recording as not replayable (the first reason wins)."""
        if self.unreplayable is None:
            self.unreplayable = reason

    # ---------------------------------------------------------- recording
    def record(self, fun, ans, args, kwargs, argnums, boxes):
        if self.closed:
            return ans
        argnums, boxes = traced_arguments(argnums, boxes)
        inputs = list(args)
        for i, value in enumerate(inputs):
            if i not in argnums:
                inputs[i] = self._constant(value)
        for i, box in zip(argnums, boxes):
            inputs[i] = Ref(box._node)
        if kwargs:
            kwargs = {k: self._constant(v) for k, v in kwargs.items()}
        shape = None
        # The output shape is checked on replay where it may depend on values:
        # a primitive declared ``value_shaped``, or one taking a traced
        # integer or boolean array (a mask, indices, counts, a shape).
        if fun.value_shaped or any(_is_discrete(b._value) for b in boxes):
            shape = shape_signature(ans)
        err = onp.geterr()
        self.ops.append(Op(fun, tuple(inputs), kwargs, len(self.meta), shape,
                           None if err == self.errstate else err))
        if isinstance(ans, Box):
            self.refuse(f"'{fun.__name__}' returned a value traced by an enclosing "
                        "transformation")
        return self._new_value(ans)

    def concretize(self, box, kind):
        try:
            value = kind(box._value)
        except Exception:
            # Value-dependent (int(nan)); as for a raising primitive.
            self.refuse(f"converting a traced value with {getattr(kind, '__name__', kind)} "
                        "raised an exception that the function handled")
            raise
        if not self.closed:
            # Evaluated again so that a caller mutating ``value`` (a list from
            # tolist()) cannot change what the guard compares against.
            self.guards.append(Guard(box._node, kind, kind(box._value), len(self.ops)))
        return value

    def primitive_raised(self, fun) -> None:
        # If the function catches the error and carries on, the tape would
        # bake in the except-branch with nothing to check on replay.
        self.refuse(f"'{fun.__name__}' raised an exception that the function handled")

    def _constant(self, value):
        """A constant argument as the tape keeps it.

        A box of this trace can only sit in a constant when nested in it
        (``x[:n]`` with a traced ``n``) or passed as a keyword; numpy then
        concretised it, which recorded a guard, so its value is kept. Boxes of
        other traces cannot be replayed. Writeable arrays are copied once so
        that mutating a captured array later cannot disagree with the
        constants already folded from it.
        """
        if isinstance(value, Box):
            if value._trace is self:
                return value._value
            self.refuse("it uses a value traced by an enclosing transformation "
                        "(a closure over a variable being differentiated?)")
            return value
        if type(value) in (tuple, list):
            if any(isinstance(v, (Box, tuple, list, slice, dict)) for v in value):
                return type(value)(self._constant(v) for v in value)
            return value
        if isinstance(value, slice):
            if any(isinstance(v, Box) for v in (value.start, value.stop, value.step)):
                return slice(*(self._constant(v) for v in (value.start, value.stop, value.step)))
            return value
        if isinstance(value, dict):
            return {k: self._constant(v) for k, v in value.items()}
        if isinstance(value, onp.ndarray) and value.flags.writeable:
            return self._snapshot(value)
        return value

    def _snapshot(self, array: onp.ndarray) -> onp.ndarray:
        """A read-only copy of ``array``, made once per array. Views of one
        array (``X`` and ``X.T``) share one copy of it, laid out the same."""
        root = array
        while isinstance(root.base, onp.ndarray):
            root = root.base
        key = id(root)
        if key not in self._snapshots:
            copy = root.copy(order="K")
            copy.flags.writeable = False
            # Keep the original alive so that its id is not reused.
            self._snapshots[key] = (root, copy)
        copy = self._snapshots[key][1]
        if root is array:
            return copy
        offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        if copy.strides != root.strides or offset < 0:
            # The root is not a plain block of memory (e.g. a view of a buffer).
            copy = array.copy(order="K")
            copy.flags.writeable = False
            return copy
        return onp.ndarray(array.shape, array.dtype, buffer=copy, offset=offset,
                           strides=array.strides)
