"""``probad.ad.numpy.fft``: numpy.fft, differentiable.

Every transform is linear, so its JVP is the transform of the tangent. The
VJPs use that the discrete Fourier matrix is symmetric: the transpose of a
complex transform is the same transform (same ``norm``), with the zero
padding or truncation implied by ``n``/``s`` undone afterwards. Real-input
and real-output transforms add the projection onto the half spectrum.
Derivatives follow this package's convention for complex numbers (that of
autograd), so real inputs get real gradients.
"""
from __future__ import annotations

import numpy as onp

from ..core import defjvp, defvjp
from ..tracer import getval, primitive
from . import numpy_wrapper as anp

__all__ = [
    "fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2",
    "irfft2", "rfftn", "irfftn", "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq",
]

fftfreq = onp.fft.fftfreq
rfftfreq = onp.fft.rfftfreq


# ------------------------------------------------------------ the transforms
@primitive
def _c2c(a, s, axes, norm, inverse):
    """Complex transform (inverse if ``inverse``) of shape ``s`` over ``axes``."""
    return (onp.fft.ifftn if inverse else onp.fft.fftn)(a, s=s, axes=axes, norm=norm)


@primitive
def _r2c(a, s, axes, norm):
    """Real-input transform: the non-negative frequencies of the last axis."""
    return onp.fft.rfftn(a, s=s, axes=axes, norm=norm)


@primitive
def _c2r(a, s, axes, norm):
    """Inverse of :func:`_r2c`: a Hermitian half spectrum to a real signal."""
    return onp.fft.irfftn(a, s=s, axes=axes, norm=norm)


def _resize(x, shape, axes):
    """Truncate or zero-pad ``x`` along ``axes`` to the sizes in ``shape``."""
    for axis in axes:
        have, want = x.shape[axis], shape[axis]
        if have > want:
            index = [slice(None)] * x.ndim
            index[axis] = slice(0, want)
            x = x[tuple(index)]
        elif have < want:
            pad_shape = list(x.shape)
            pad_shape[axis] = want - have
            x = anp.concatenate([x, onp.zeros(pad_shape, x.dtype)], axis=axis)
    return x


def _match_input(g, a, axes):
    """Bring a cotangent back to the shape (and realness) of the input ``a``."""
    g = _resize(g, onp.shape(a), axes)
    return g if onp.iscomplexobj(a) else anp.real(g)


def _half_weights(n, dtype):
    """Weights of the half spectrum in a real signal of length ``n``: the
    zero (and, for even ``n``, the Nyquist) frequency once, the others twice."""
    w = onp.full(n // 2 + 1, 2.0, dtype)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def _c2r_vjp(ans, a, s, axes, norm):
    half = s[-1] // 2 + 1
    last = axes[-1]
    shape = [1] * onp.ndim(ans)
    shape[last] = half
    weights = _half_weights(s[-1], onp.result_type(ans)).reshape(shape)

    def vjp(g):
        spectrum = _c2c(g, s, axes, norm, True)
        index = [slice(None)] * onp.ndim(ans)
        index[last] = slice(0, half)
        return _match_input(spectrum[tuple(index)] * weights, a, axes)

    return vjp


defvjp(_c2c, lambda ans, a, s, axes, norm, inverse:
       lambda g: _match_input(_c2c(g, s, axes, norm, inverse), a, axes))
defjvp(_c2c, lambda g, ans, a, s, axes, norm, inverse: _c2c(g, s, axes, norm, inverse))
defvjp(_r2c, lambda ans, a, s, axes, norm: lambda g: _match_input(_c2c(g, s, axes, norm, False), a, axes))
defjvp(_r2c, lambda g, ans, a, s, axes, norm: _r2c(g, s, axes, norm))
defvjp(_c2r, _c2r_vjp)
defjvp(_c2r, lambda g, ans, a, s, axes, norm: _c2r(g, s, axes, norm))


def _resolve(a, s, axes, real_output=False):
    """numpy's defaults for ``s`` and ``axes``, as tuples of non-negative axes."""
    shape = onp.shape(getval(a))
    if axes is None:
        axes = range(len(shape)) if s is None else range(len(shape) - len(s), len(shape))
    axes = tuple(ax % len(shape) for ax in axes)
    if s is None:
        s = [shape[ax] for ax in axes]
        if real_output:
            s[-1] = 2 * (s[-1] - 1)
    return tuple(s), axes


def _one_axis(n, axis):
    return (None if n is None else (n,)), (axis,)


# ------------------------------------------------------------ the public API
def fftn(a, s=None, axes=None, norm=None):
    """N-dimensional discrete Fourier transform (``numpy.fft.fftn``)."""
    return _c2c(a, *_resolve(a, s, axes), norm, False)


def ifftn(a, s=None, axes=None, norm=None):
    """N-dimensional inverse discrete Fourier transform."""
    return _c2c(a, *_resolve(a, s, axes), norm, True)


def rfftn(a, s=None, axes=None, norm=None):
    """N-dimensional transform of real input (half spectrum on the last axis)."""
    return _r2c(a, *_resolve(a, s, axes), norm)


def irfftn(a, s=None, axes=None, norm=None):
    """Inverse of :func:`rfftn`; ``s[-1]`` defaults to ``2 * (m - 1)``."""
    return _c2r(a, *_resolve(a, s, axes, real_output=True), norm)


def fft(a, n=None, axis=-1, norm=None):
    """One-dimensional discrete Fourier transform (``numpy.fft.fft``)."""
    return fftn(a, *_one_axis(n, axis), norm)


def ifft(a, n=None, axis=-1, norm=None):
    """One-dimensional inverse discrete Fourier transform."""
    return ifftn(a, *_one_axis(n, axis), norm)


def rfft(a, n=None, axis=-1, norm=None):
    """One-dimensional transform of real input."""
    return rfftn(a, *_one_axis(n, axis), norm)


def irfft(a, n=None, axis=-1, norm=None):
    """Inverse of :func:`rfft`."""
    return irfftn(a, *_one_axis(n, axis), norm)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    """Two-dimensional discrete Fourier transform."""
    return fftn(a, s, axes, norm)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """Two-dimensional inverse discrete Fourier transform."""
    return ifftn(a, s, axes, norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """Two-dimensional transform of real input."""
    return rfftn(a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """Inverse of :func:`rfft2`."""
    return irfftn(a, s, axes, norm)


# The Hermitian transforms are the real ones seen from the other side, with
# the normalisation direction swapped (as numpy defines them).
_SWAPPED_NORM = {None: "forward", "backward": "forward", "ortho": "ortho", "forward": "backward"}


def hfft(a, n=None, axis=-1, norm=None):
    """Transform of a Hermitian-symmetric signal given by its first half: a
    real spectrum of length ``n`` (default ``2 * (m - 1)``)."""
    return irfft(anp.conj(a), n, axis, _SWAPPED_NORM[norm])


def ihfft(a, n=None, axis=-1, norm=None):
    """Inverse of :func:`hfft`: the non-negative frequencies of a real signal's
    inverse transform."""
    return anp.conj(rfft(a, n, axis, _SWAPPED_NORM[norm]))


# ---------------------------------------------------------------- shifting
fftshift = primitive(onp.fft.fftshift, "fftshift")
ifftshift = primitive(onp.fft.ifftshift, "ifftshift")
defvjp(fftshift, lambda ans, x, axes=None: lambda g: ifftshift(g, axes))
defvjp(ifftshift, lambda ans, x, axes=None: lambda g: fftshift(g, axes))
defjvp(fftshift, "same")
defjvp(ifftshift, "same")
