"""``probad.ad.scipy.signal``: differentiable convolution.

:func:`convolve` is ``scipy.signal.convolve`` extended (as autograd's) to
tensors: some axes are convolved, some contracted as in ``tensordot``, the
rest form an outer product. It is linear in each argument, so its JVP is
itself; its VJP with respect to one argument is a ``valid`` convolution of
the cotangent with the other argument flipped, again :func:`convolve`, so
derivatives of any order exist.
"""
from __future__ import annotations

import numpy as onp
from numpy.lib.stride_tricks import sliding_window_view

from ..core import defjvp, defvjp
from ..numpy import numpy_wrapper as anp
from ..tracer import getval, primitive

__all__ = ["convolve"]


def _ignored(ndim, *used):
    return [i for i in range(ndim) if not any(i in u for u in used)]


def _mode_slice(n_a, n_b, mode):
    """Where each mode's output sits in the full convolution along one axis."""
    if mode == "full":
        return slice(0, n_a + n_b - 1)
    if mode == "valid":
        return slice(min(n_a, n_b) - 1, max(n_a, n_b))
    if mode == "same":
        start = (n_b - 1) // 2
        return slice(start, start + n_a)
    raise ValueError(f"convolve: mode must be 'full', 'valid' or 'same', got {mode!r}")


@primitive
def _convolve(A, B, axes, dot_axes, mode):
    (a_conv, b_conv), (a_dot, b_dot) = axes, dot_axes
    a_ign, b_ign = _ignored(A.ndim, a_conv, a_dot), _ignored(B.ndim, b_conv, b_dot)
    A = onp.transpose(A, a_ign + list(a_dot) + list(a_conv))
    B = onp.transpose(B, b_ign + list(b_dot) + list(b_conv))
    n_a, n_b = A.shape[A.ndim - len(a_conv):], B.shape[B.ndim - len(b_conv):]
    # Full convolution: slide B (flipped) over A padded with len(B) - 1 zeros.
    lead = A.ndim - len(a_conv)
    A = onp.pad(A, [(0, 0)] * lead + [(n - 1, n - 1) for n in n_b])
    conv_axes = tuple(range(lead, A.ndim))
    windows = sliding_window_view(A, n_b, axis=conv_axes)
    B = B[(Ellipsis,) + (slice(None, None, -1),) * len(b_conv)]
    n_dot, n_conv = len(a_dot), len(a_conv)
    window_axes = list(range(len(a_ign), len(a_ign) + n_dot)) + \
        list(range(windows.ndim - n_conv, windows.ndim))
    b_axes = list(range(len(b_ign), B.ndim))
    out = onp.tensordot(windows, B, (window_axes, b_axes))
    # tensordot leaves (A ignored, conv, B ignored); we want (A ignored, B ignored, conv).
    order = list(range(len(a_ign))) + list(range(len(a_ign) + n_conv, out.ndim)) + \
        list(range(len(a_ign), len(a_ign) + n_conv))
    out = onp.transpose(out, order)
    index = (Ellipsis,) + tuple(_mode_slice(p, q, mode) for p, q in zip(n_a, n_b))
    return out[index]


def _embed_full(g, n_a, n_b, mode):
    """Zero-pad a cotangent of ``mode``'s output to the full output's shape."""
    for k, (p, q) in enumerate(zip(n_a, n_b)):
        where = _mode_slice(p, q, mode)
        axis = g.ndim - len(n_a) + k
        before, after = where.start, p + q - 1 - where.stop
        parts = []
        for size in (before, after):
            shape = list(g.shape)
            shape[axis] = size
            parts.append(onp.zeros(shape, g.dtype))
        if before or after:
            g = anp.concatenate([parts[0], g, parts[1]], axis=axis)
    return g


def _flip(x, axes):
    index = [slice(None)] * onp.ndim(x)
    for ax in axes:
        index[ax] = slice(None, None, -1)
    return x[tuple(index)]


def _convolve_vjp(argnum):
    def maker(ans, A, B, axes, dot_axes, mode):
        (a_conv, b_conv), (a_dot, b_dot) = axes, dot_axes
        a_ign, b_ign = _ignored(onp.ndim(A), a_conv, a_dot), _ignored(onp.ndim(B), b_conv, b_dot)
        n_a = [onp.shape(A)[i] for i in a_conv]
        n_b = [onp.shape(B)[i] for i in b_conv]
        # Axes of the cotangent: A ignored, B ignored, conv.
        g_a_ign = list(range(len(a_ign)))
        g_b_ign = list(range(len(a_ign), len(a_ign) + len(b_ign)))
        g_conv = list(range(len(a_ign) + len(b_ign), onp.ndim(ans)))
        if argnum == 0:
            other, other_conv, other_ign, g_dot = B, b_conv, b_ign, g_b_ign
            own_ign, own_dot, other_dot, own_conv = a_ign, a_dot, b_dot, a_conv
        else:
            other, other_conv, other_ign, g_dot = A, a_conv, a_ign, g_a_ign
            own_ign, own_dot, other_dot, own_conv = b_ign, b_dot, a_dot, b_conv
        # The result comes out as (own ignored, own dot in the other's axis
        # order, own conv); put those axes back where they were.
        current = list(own_ign) + [own_dot[list(other_dot).index(j)] for j in sorted(other_dot)] \
            + list(own_conv)
        inverse = list(onp.argsort(current))

        def vjp(g):
            g_full = _embed_full(g, n_a, n_b, mode)
            out = _convolve(g_full, _flip(other, other_conv), (tuple(g_conv), tuple(other_conv)),
                            (tuple(g_dot), tuple(other_ign)), "valid")
            return anp.transpose(out, inverse)

        return vjp

    return maker


defvjp(_convolve, _convolve_vjp(0), _convolve_vjp(1), None, None, None)
defjvp(_convolve, "same", "same", None, None, None)


def convolve(in1, in2, mode="full", method="auto", *, axes=None, dot_axes=((), ())):
    """N-dimensional convolution, differentiable in both inputs.

    Parameters
    ----------
    in1, in2 : array_like
        The arrays to convolve.
    mode : {'full', 'valid', 'same'}
        As in ``scipy.signal.convolve``, per convolved axis: the full
        convolution, the part computed without zero padding (one input must
        be at least as large as the other along every convolved axis), or
        the centre part with ``in1``'s size.
    method : str
        Accepted for compatibility; the convolution is always computed
        directly (sums over sliding windows).
    axes : pair of sequences of ints, optional
        ``(axes of in1, axes of in2)`` convolved together. Default: every
        axis of ``in1`` with the same axis of ``in2``.
    dot_axes : pair of sequences of ints
        ``(axes of in1, axes of in2)`` summed over, as in ``tensordot``.

    Returns
    -------
    array
        Axes in the order: ``in1``'s remaining axes, ``in2``'s remaining
        axes, then the convolved axes. With the defaults, exactly
        ``scipy.signal.convolve(in1, in2, mode)``.
    """
    ndim_a, ndim_b = onp.ndim(getval(in1)), onp.ndim(getval(in2))
    if axes is None:
        axes = (range(ndim_a), range(ndim_a))
    axes = tuple(tuple(int(i) % n for i in ax) for ax, n in zip(axes, (ndim_a, ndim_b)))
    dot_axes = tuple(tuple(int(i) % n for i in ax) for ax, n in zip(dot_axes, (ndim_a, ndim_b)))
    if len(axes[0]) != len(axes[1]) or len(dot_axes[0]) != len(dot_axes[1]):
        raise ValueError("convolve: axes and dot_axes must pair up axes of in1 and in2")
    if mode == "valid":
        shape_a, shape_b = onp.shape(getval(in1)), onp.shape(getval(in2))
        bigger = [shape_a[i] >= shape_b[j] for i, j in zip(*axes)]
        smaller = [shape_a[i] <= shape_b[j] for i, j in zip(*axes)]
        if not (all(bigger) or all(smaller)):
            raise ValueError("convolve: for 'valid' mode, one input must be at least as large "
                             "as the other along every convolved axis")
    return _convolve(in1, in2, axes, dot_axes, mode)
