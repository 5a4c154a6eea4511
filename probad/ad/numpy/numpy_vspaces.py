"""Vector spaces of numpy arrays and scalars (real and complex)."""
from __future__ import annotations

import numpy as _np

from ..core import VSpace


class ArrayVSpace(VSpace):
    """Real arrays (and scalars) of one shape; integer and boolean values get
    float64 (co)tangents."""

    def __init__(self, value):
        value = _np.asarray(value)
        self.shape = value.shape
        self.dtype = value.dtype if value.dtype.kind in "fc" else _np.dtype(float)

    @classmethod
    def of(cls, shape, dtype):
        """The space of arrays of ``shape`` and ``dtype``, without an example value."""
        vs = cls.__new__(cls)
        vs.shape = tuple(shape)
        vs.dtype = dtype if dtype.kind in "fc" else _np.dtype(float)
        return vs

    @property
    def size(self):
        return int(_np.prod(self.shape))

    @property
    def ndim(self):
        return len(self.shape)

    def zeros(self):
        return _np.zeros(self.shape, dtype=self.dtype)

    def ones(self):
        return _np.ones(self.shape, dtype=self.dtype)

    def standard_basis(self):
        for idx in _np.ndindex(*self.shape):
            v = _np.zeros(self.shape, dtype=self.dtype)
            v[idx] = 1
            yield v

    def randn(self):
        return _np.asarray(_np.random.randn(*self.shape)).astype(self.dtype)

    def inner_prod(self, x, y):
        from . import numpy_wrapper as anp  # the wrapper imports us; avoid the cycle

        return anp.sum(anp.multiply(x, y))


class ComplexArrayVSpace(ArrayVSpace):
    """Complex numbers as pairs of reals: ``inner_prod`` is Re(conj(x)·y)."""

    iscomplex = True

    @property
    def size(self):
        return 2 * int(_np.prod(self.shape))

    def ones(self):
        return _np.ones(self.shape, dtype=self.dtype) + 1.0j * _np.ones(self.shape, dtype=self.dtype)

    def standard_basis(self):
        for idx in _np.ndindex(*self.shape):
            for v in (1.0, 1.0j):
                vec = _np.zeros(self.shape, dtype=self.dtype)
                vec[idx] = v
                yield vec

    def randn(self):
        return _np.asarray(_np.random.randn(*self.shape) + 1.0j * _np.random.randn(*self.shape)).astype(self.dtype)

    def inner_prod(self, x, y):
        from . import numpy_wrapper as anp

        return anp.real(anp.sum(anp.multiply(anp.conj(x), y)))

    def covector(self, x):
        from . import numpy_wrapper as anp

        return anp.conj(x)


_VSPACES: dict = {}


def _array_vspace(value):
    # vspace() runs whenever two cotangents meet in the backward pass, so the
    # (immutable) space of each shape and dtype is built once and reused.
    try:
        key = (value.shape, value.dtype)
    except AttributeError:  # a Python scalar
        key = ((), _np.result_type(value))
    try:
        return _VSPACES[key]
    except KeyError:
        pass
    vs = (ComplexArrayVSpace if key[1].kind == "c" else ArrayVSpace).of(*key)
    if len(_VSPACES) < 10_000:  # bounded: shapes seen by one program are few
        _VSPACES[key] = vs
    return vs


for _t in [float, int, bool, complex, _np.ndarray] + list(set(_np.sctypeDict.values())):
    if isinstance(_t, type) and issubclass(_t, (float, int, complex, _np.number, _np.bool_, _np.ndarray)):
        VSpace.register(_t, _array_vspace)
