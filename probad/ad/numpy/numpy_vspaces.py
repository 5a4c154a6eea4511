"""Vector spaces of numpy arrays and scalars (real and complex)."""
from __future__ import annotations

import numpy as _np

from ..core import VSpace


class ArrayVSpace(VSpace):
    def __init__(self, value):
        value = _np.asarray(value)
        self.shape = value.shape
        self.dtype = value.dtype
        if not (_np.issubdtype(self.dtype, _np.floating) or _np.issubdtype(self.dtype, _np.complexfloating)):
            self.dtype = _np.dtype(float)  # ints and bools get real-valued cotangents

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
        return (_np.random.randn(*self.shape) + 1.0j * _np.random.randn(*self.shape)).astype(self.dtype)

    def inner_prod(self, x, y):
        from . import numpy_wrapper as anp

        return anp.real(anp.sum(anp.multiply(anp.conj(x), y)))

    def covector(self, x):
        from . import numpy_wrapper as anp

        return anp.conj(x)


def _array_vspace(value):
    value = _np.asarray(value)
    if _np.iscomplexobj(value):
        return ComplexArrayVSpace(value)
    return ArrayVSpace(value)


for _t in [float, int, bool, complex, _np.ndarray] + list(set(_np.sctypeDict.values())):
    if isinstance(_t, type) and issubclass(_t, (float, int, complex, _np.number, _np.bool_, _np.ndarray)):
        VSpace.register(_t, _array_vspace)
