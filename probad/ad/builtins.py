"""Differentiable containers: tuples, lists and dicts of traced values.

Gradients with respect to a nest of arrays come back as the same nest. A
container that holds boxes is itself boxed (``SequenceBox``/``DictBox``) when
it is an argument being differentiated, and indexing it is a primitive whose
VJP puts the cotangent back in the right slot.
"""
from __future__ import annotations

import builtins as _py

from .core import VSpace, defjvp, defjvp_argnum, defprimitive, defvjp, defvjp_argnum, vspace
from .tracer import Box, primitive

__all__ = ["tuple", "list", "dict", "isinstance", "type", "SequenceBox", "DictBox",
           "container_take", "make_sequence", "make_dict"]

_isinstance = _py.isinstance
_type = _py.type


# ----------------------------------------------------------------- primitives
@primitive
def container_take(A, idx):
    return A[idx]


@primitive
def container_untake(x, idx, vs):
    """A container of zeros shaped like ``vs`` with ``x`` at ``idx``."""
    if _isinstance(idx, slice):
        return vs.with_slice(idx, x)
    return vs.with_item(idx, x)


@primitive
def make_sequence(seq_type, *args):
    return seq_type(args)


@primitive
def make_dict(keys, *values):
    return _py.dict(zip(keys, values))


defvjp(container_take, lambda ans, A, idx: (lambda vs: lambda g: container_untake(g, idx, vs))(vspace(A)))
defjvp(container_take, "same")
defprimitive(container_take, native="rearrange")
defvjp(container_untake, lambda ans, x, idx, vs: lambda g: container_take(g, idx))
defjvp(container_untake, "same")
defvjp_argnum(make_sequence, lambda argnum, ans, seq_type, *args: lambda g: g[argnum - 1])
defjvp_argnum(make_sequence, lambda argnum, g, ans, seq_type, *args: make_sequence(
    seq_type, *[g if i == argnum - 1 else vspace(a).zeros() for i, a in enumerate(args)]))
defvjp_argnum(make_dict, lambda argnum, ans, keys, *values: lambda g: g[keys[argnum - 1]])
defjvp_argnum(make_dict, lambda argnum, g, ans, keys, *values: make_dict(
    keys, *[g if i == argnum - 1 else vspace(v).zeros() for i, v in enumerate(values)]))


# --------------------------------------------------------------------- boxes
class SequenceBox(Box):
    __slots__ = ()

    def __getitem__(self, idx):
        return container_take(self, idx)

    def __len__(self):
        return len(self._value)

    def __iter__(self):
        return (container_take(self, i) for i in range(len(self._value)))

    def __add__(self, other):
        return make_sequence(_type(self._value), *(_py.list(self) + _py.list(other)))

    def __radd__(self, other):
        return make_sequence(_type(self._value), *(_py.list(other) + _py.list(self)))

    def index(self, value):
        return self._value.index(value)


class DictBox(Box):
    __slots__ = ()

    def __getitem__(self, key):
        return container_take(self, key)

    def __len__(self):
        return len(self._value)

    def __iter__(self):
        return iter(self._value)

    def __contains__(self, key):
        return key in self._value

    def keys(self):
        return self._value.keys()

    def values(self):
        return [self[k] for k in self._value]

    def items(self):
        return [(k, self[k]) for k in self._value]

    def get(self, key, default=None):
        return self[key] if key in self._value else default


SequenceBox.register(_py.tuple)
SequenceBox.register(_py.list)
DictBox.register(_py.dict)


# -------------------------------------------------------------- vector spaces
class SequenceVSpace(VSpace):
    def __init__(self, value):
        self.shape = [vspace(x) for x in value]
        self.seq_type = _type(value)

    @property
    def size(self):
        return _py.sum(vs.size for vs in self.shape)

    def zeros(self):
        return self.seq_type(vs.zeros() for vs in self.shape)

    def ones(self):
        return self.seq_type(vs.ones() for vs in self.shape)

    def standard_basis(self):
        for i, vs in enumerate(self.shape):
            for v in vs.standard_basis():
                yield self.with_item(i, v)

    def randn(self):
        return self.seq_type(vs.randn() for vs in self.shape)

    def add(self, x, y):
        return _build_seq(self.seq_type, [vs.add(a, b) for vs, a, b in zip(self.shape, x, y)])

    def scalar_mul(self, x, a):
        return _build_seq(self.seq_type, [vs.scalar_mul(e, a) for vs, e in zip(self.shape, x)])

    def inner_prod(self, x, y):
        return _py.sum(vs.inner_prod(a, b) for vs, a, b in zip(self.shape, x, y))

    def covector(self, x):
        return _build_seq(self.seq_type, [vs.covector(e) for vs, e in zip(self.shape, x)])

    def with_item(self, idx, x):
        out = [vs.zeros() for vs in self.shape]
        out[idx] = x
        return self.seq_type(out)

    def with_slice(self, idx, xs):
        out = [vs.zeros() for vs in self.shape]
        out[idx] = _py.list(xs)
        return self.seq_type(out)


class DictVSpace(VSpace):
    def __init__(self, value):
        self.shape = {k: vspace(v) for k, v in value.items()}

    @property
    def size(self):
        return _py.sum(vs.size for vs in self.shape.values())

    def zeros(self):
        return {k: vs.zeros() for k, vs in self.shape.items()}

    def ones(self):
        return {k: vs.ones() for k, vs in self.shape.items()}

    def standard_basis(self):
        for k, vs in self.shape.items():
            for v in vs.standard_basis():
                yield self.with_item(k, v)

    def randn(self):
        return {k: vs.randn() for k, vs in self.shape.items()}

    def add(self, x, y):
        return _build_dict({k: vs.add(x[k], y[k]) for k, vs in self.shape.items()})

    def scalar_mul(self, x, a):
        return _build_dict({k: vs.scalar_mul(x[k], a) for k, vs in self.shape.items()})

    def inner_prod(self, x, y):
        return _py.sum(vs.inner_prod(x[k], y[k]) for k, vs in self.shape.items())

    def covector(self, x):
        return _build_dict({k: vs.covector(x[k]) for k, vs in self.shape.items()})

    def with_item(self, key, x):
        out = self.zeros()
        out[key] = x
        return out


VSpace.register(_py.tuple, SequenceVSpace)
VSpace.register(_py.list, SequenceVSpace)
VSpace.register(_py.dict, DictVSpace)


# ----------------------------------------------- container constructors
def _has_box(items):
    return _py.any(_isinstance(x, Box) for x in items)


def _build_seq(seq_type, items):
    return make_sequence(seq_type, *items) if _has_box(items) else seq_type(items)


def _build_dict(d):
    return make_dict(_py.tuple(d.keys()), *d.values()) if _has_box(d.values()) else d


def pack(value):
    """Turn a nest of containers holding boxes into one boxed container, so a
    function may return tuples, lists and dicts of traced values."""
    if _isinstance(value, (_py.tuple, _py.list)) and not _isinstance(value, Box):
        return _build_seq(_type(value), [pack(v) for v in value])
    if _isinstance(value, _py.dict):
        return _build_dict({k: pack(v) for k, v in value.items()})
    return value


class _ContainerMeta(_type):
    # isinstance(x, probad.ad.tuple) should hold for ordinary tuples too.
    def __instancecheck__(cls, instance):
        return _isinstance(instance, cls.__mro__[1])


class tuple(_py.tuple, metaclass=_ContainerMeta):
    """``tuple`` that builds a differentiable tuple from traced elements."""

    def __new__(cls, xs=()):
        xs = _py.list(xs)
        return make_sequence(_py.tuple, *xs) if _has_box(xs) else _py.tuple(xs)


class list(_py.list, metaclass=_ContainerMeta):
    """``list`` that builds a differentiable list from traced elements."""

    def __new__(cls, xs=()):
        xs = _py.list(xs)
        return make_sequence(_py.list, *xs) if _has_box(xs) else _py.list(xs)


class dict(_py.dict, metaclass=_ContainerMeta):
    """``dict`` that builds a differentiable dict from traced values."""

    def __new__(cls, *args, **kwargs):
        d = _py.dict(*args, **kwargs)
        if _has_box(d.values()):
            return make_dict(_py.tuple(d.keys()), *d.values())
        return d


def isinstance(obj, classinfo):
    """``isinstance`` that looks through boxes."""
    while _isinstance(obj, Box):
        obj = obj._value
    return _isinstance(obj, classinfo)


def type(obj):
    """``type`` that looks through boxes."""
    while _isinstance(obj, Box):
        obj = obj._value
    return _type(obj)
