"""ArrayBox: a traced numpy array that behaves like one.

Operators and methods route through the wrapped numpy primitives, so ordinary
array code is recorded without change. Python asking for a concrete value
(``bool``, ``int``, ``float``, ``.item()``, use as an index) goes through the
trace's ``concretize``, which is where the compiler records a guard.
"""
from __future__ import annotations

import dis
import sys

import numpy as _np

from ..core import plus_adds
from ..misuse import TracedValueError, at, user_location
from ..tracer import LOSSY_CONVERSIONS, Box, ValueMeta
from . import numpy_wrapper as anp

_ASSIGN_HELP = (
    "probad.ad cannot trace assignment into an array: rebuild the array "
    "functionally instead, e.g. with np.where(mask, new, x), np.concatenate, "
    "np.stack, or x + np.eye(n)[i] * (v - x[i])"
)


_STORE_HELP = (
    "a traced value cannot be stored into a numpy array{at} (a[i] = value would drop its "
    "derivative); build the array functionally instead, e.g. np.stack or np.concatenate "
    "of the pieces, np.where(mask, value, a), or a + np.eye(n)[i] * (value - a[i])"
)
_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]


def _store_error(box) -> TracedValueError:
    """numpy reports it as the cause of its own ``ValueError`` (see ``misuse.explain``)."""
    location = user_location()
    return TracedValueError(_STORE_HELP.format(at=at(location)), box, location)


def _storing_into_array() -> bool:
    """Whether a box is being converted because numpy stores it into an array.

    numpy turns the value of ``a[i] = box`` into a number with ``float(box)``
    (or int/complex), which is indistinguishable from a deliberate ``float(x)``
    except that the calling frame is executing an item assignment.
    """
    frame = sys._getframe(2)  # 0: here, 1: the conversion method, 2: its caller
    return frame.f_code.co_code[frame.f_lasti] == _STORE_SUBSCR


class ArrayBox(Box):
    __slots__ = ()
    # Make ndarray's binary operators defer to ours (ndarray + box -> box.__radd__).
    __array_ufunc__ = None

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and _np.dtype(dtype).kind in "iub" and not _storing_into_array():
            # ``np.int64(x)``, ``np.asarray(x, dtype=int)``: a cast to integers
            # (an index), whose derivative is zero, as under autograd. The
            # trace sees only what the cast keeps (the compiler records it as
            # a guard, which then holds while the cast's result is unchanged).
            kept = _nonzero if _np.dtype(dtype).kind == "b" else _truncated
            return _np.asarray(self._trace.concretize(self, kept), dtype=dtype)
        location = user_location()
        raise TracedValueError(
            f"a traced value reached plain numpy or was assigned into a numpy array{at(location)}. "
            "Use probad.ad.numpy in place of numpy inside differentiated code; " + _ASSIGN_HELP,
            self, location)

    def __setitem__(self, idx, value):
        raise TypeError(_ASSIGN_HELP)

    def __array_namespace__(self, *, api_version=None):
        # Array containers (xarray) keep a value with a namespace as it is,
        # instead of converting it to an ndarray, so it stays traced inside.
        return anp

    def __getitem__(self, idx):
        if isinstance(idx, tuple) and any(isinstance(i, Box) for i in idx):
            return anp.getitem_parts(self, *idx)
        return anp.getitem(self, idx)

    # Metadata is static: shapes and dtypes never depend on traced values.
    # (A traced Python scalar answers like a 0-d array.)
    @property
    def shape(self):
        try:
            return self._value.shape
        except AttributeError:
            return ()

    @property
    def dtype(self):
        try:
            return self._value.dtype
        except AttributeError:
            return _np.result_type(self._value)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(_np.prod(self.shape)))
    T = property(lambda self: anp.transpose(self))

    def __len__(self):
        return len(self._value)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __hash__(self):
        return id(self)

    # Concrete values: the trace decides (the compiler records a guard).
    def __int__(self):
        if _storing_into_array():
            raise _store_error(self)
        return self._trace.concretize(self, int)

    def __float__(self):
        if _storing_into_array():
            raise _store_error(self)
        return self._trace.concretize(self, float)

    def __complex__(self):
        if _storing_into_array():
            raise _store_error(self)
        return self._trace.concretize(self, complex)

    def __index__(self):
        if _storing_into_array():
            raise _store_error(self)
        return self._trace.concretize(self, _index)

    def item(self, *args):
        if args:
            return self[args if len(args) > 1 else args[0]].item()
        return self._trace.concretize(self, _item)

    def tolist(self):
        return self._trace.concretize(self, _tolist)

    def __neg__(self): return anp.negative(self)
    def __pos__(self): return self
    def __abs__(self): return anp.abs(self)
    def __add__(self, other): return anp.add(self, other)
    def __sub__(self, other): return anp.subtract(self, other)
    def __mul__(self, other): return anp.multiply(self, other)
    def __pow__(self, other): return anp.power(self, other)
    def __truediv__(self, other): return anp.divide(self, other)
    def __floordiv__(self, other): return anp.floor_divide(self, other)
    def __mod__(self, other): return anp.mod(self, other)
    def __matmul__(self, other): return anp.matmul(self, other)
    def __radd__(self, other): return anp.add(other, self)
    def __rsub__(self, other): return anp.subtract(other, self)
    def __rmul__(self, other): return anp.multiply(other, self)
    def __rpow__(self, other): return anp.power(other, self)
    def __rtruediv__(self, other): return anp.divide(other, self)
    def __rfloordiv__(self, other): return anp.floor_divide(other, self)
    def __rmod__(self, other): return anp.mod(other, self)
    def __rmatmul__(self, other): return anp.matmul(other, self)
    def __eq__(self, other): return anp.equal(self, other)
    def __ne__(self, other): return anp.not_equal(self, other)
    def __gt__(self, other): return anp.greater(self, other)
    def __ge__(self, other): return anp.greater_equal(self, other)
    def __lt__(self, other): return anp.less(self, other)
    def __le__(self, other): return anp.less_equal(self, other)
    def __divmod__(self, other): return anp.divmod(self, other)
    def __rdivmod__(self, other): return anp.divmod(other, self)
    # As for ndarray, these are bitwise (logical on booleans); they have no derivative.
    def __invert__(self): return anp.invert(self)
    def __and__(self, other): return anp.bitwise_and(self, other)
    def __or__(self, other): return anp.bitwise_or(self, other)
    def __xor__(self, other): return anp.bitwise_xor(self, other)
    def __rand__(self, other): return anp.bitwise_and(other, self)
    def __ror__(self, other): return anp.bitwise_or(other, self)
    def __rxor__(self, other): return anp.bitwise_xor(other, self)

    # The common ndarray methods, as their numpy functions.
    def sum(self, *a, **k): return anp.sum(self, *a, **k)
    def mean(self, *a, **k): return anp.mean(self, *a, **k)
    def prod(self, *a, **k): return anp.prod(self, *a, **k)
    def max(self, *a, **k): return anp.max(self, *a, **k)
    def min(self, *a, **k): return anp.min(self, *a, **k)
    def var(self, *a, **k): return anp.var(self, *a, **k)
    def std(self, *a, **k): return anp.std(self, *a, **k)
    def cumsum(self, *a, **k): return anp.cumsum(self, *a, **k)
    def cumprod(self, *a, **k): return anp.cumprod(self, *a, **k)
    def dot(self, other): return anp.dot(self, other)
    def ravel(self, *a, **k): return anp.ravel(self, *a, **k)
    def flatten(self): return anp.ravel(self)
    def squeeze(self, *a, **k): return anp.squeeze(self, *a, **k)
    def clip(self, *a, **k): return anp.clip(self, *a, **k)
    def conj(self): return anp.conj(self)
    def conjugate(self): return anp.conj(self)
    def swapaxes(self, a, b): return anp.swapaxes(self, a, b)
    def repeat(self, *a, **k): return anp.repeat(self, *a, **k)
    def trace(self, *a, **k): return anp.trace(self, *a, **k)
    def diagonal(self, *a, **k): return anp.diagonal(self, *a, **k)
    def argmax(self, *a, **k): return anp.argmax(self, *a, **k)
    def argmin(self, *a, **k): return anp.argmin(self, *a, **k)
    def argsort(self, *a, **k): return anp.argsort(self, *a, **k)
    def any(self, *a, **k): return anp.any(self, *a, **k)
    def all(self, *a, **k): return anp.all(self, *a, **k)
    def round(self, *a, **k): return anp.round(self, *a, **k)
    def astype(self, dtype, *a, **k): return anp.astype_(self, dtype)
    def copy(self, *a, **k): return self
    def take(self, *a, **k): return anp.take(self, *a, **k)
    def compress(self, *a, **k): return anp.compress(a[0], self, *a[1:], **k)
    def nonzero(self): return anp.nonzero(self)
    def searchsorted(self, *a, **k): return anp.searchsorted(self, *a, **k)
    def argpartition(self, *a, **k): return anp.argpartition(self, *a, **k)
    mT = property(lambda self: anp.matrix_transpose(self))

    # ndarray's in-place methods have functional counterparts.
    def sort(self, *a, **k):
        raise TypeError("x.sort() sorts in place, which probad.ad cannot trace; use np.sort(x)")

    def partition(self, *a, **k):
        raise TypeError("x.partition() works in place, which probad.ad cannot trace; use np.partition(x, kth)")

    def fill(self, value):
        raise TypeError("x.fill() works in place, which probad.ad cannot trace; use np.full_like(x, value)")

    def put(self, *a, **k):
        raise TypeError(_ASSIGN_HELP)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return anp.reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return anp.transpose(self, axes or None)

    @property
    def real(self):
        return anp.real(self)

    @property
    def imag(self):
        return anp.imag(self)


def _index(x):
    return _np.asarray(x).__index__()


def _item(x):
    return _np.asarray(x).item()


def _tolist(x):
    return _np.asarray(x).tolist()


def _truncated(x):
    """What a cast to integers keeps of ``x``: piecewise constant, so no derivative is lost."""
    return _np.trunc(x).tolist()


def _nonzero(x):
    """What a cast to booleans keeps of ``x``."""
    return (_np.asarray(x) != 0).tolist()


LOSSY_CONVERSIONS.update({_item: "x.item()", _tolist: "x.tolist()"})


for _t in [float, _np.ndarray, complex] + list(set(_np.sctypeDict.values())):
    if isinstance(_t, type) and issubclass(_t, (float, complex, _np.generic, _np.ndarray)) \
            and not issubclass(_t, (_np.str_, _np.bytes_, _np.void, _np.object_, _np.datetime64,
                                    _np.timedelta64)):
        ArrayBox.register(_t)
ArrayBox.register(int)
ArrayBox.register(bool)

# Cotangents of these types add with ``+`` (core.add_outgrads' fast path).
plus_adds.update(t for t, box in Box.type_mappings.items()
                 if box is ArrayBox and t not in (bool, int, _np.bool_))
ValueMeta.stub_types.add(_np.ndarray)
