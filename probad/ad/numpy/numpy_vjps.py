"""Reverse-mode rules (VJPs) for the wrapped numpy functions.

Each maker takes ``(ans, *args, **kwargs)`` and returns ``g -> cotangent``.
Rules are written with the wrapped (differentiable) functions, so the
backward pass can itself be traced: that is how higher derivatives work.
"""
from __future__ import annotations

import numpy as onp

from ..core import defvjp, defvjp_argnum
from . import numpy_wrapper as anp

# ------------------------------------------------------------- broadcasting


def _shape(x):
    try:
        return x.shape
    except AttributeError:
        return onp.shape(x)


def _iscomplex(x):
    try:
        return x.dtype.kind == "c"
    except AttributeError:
        return isinstance(x, complex)


def unbroadcast(g, target):
    """Sum ``g`` down to the shape of ``target`` (undoing numpy broadcasting)
    and drop the imaginary part when the target is real."""
    target_shape = _shape(target)
    g_shape = _shape(g)
    if g_shape != target_shape:
        extra = len(g_shape) - len(target_shape)
        if extra > 0:
            g = anp.sum(g, axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(target_shape) if n == 1 and _shape(g)[i] != 1)
        if axes:
            g = anp.sum(g, axis=axes, keepdims=True)
    if _iscomplex(g) and not _iscomplex(target):
        g = anp.real(g)
    return g


def unbroadcast_f(target, f):
    return lambda g: unbroadcast(f(g), target)


def balanced_eq(x, z, y):
    """Share the gradient of max/min equally between tied arguments."""
    return (x == z) / (1.0 + (x == y))


# --------------------------------------------------------- binary operators
defvjp(anp.add, lambda ans, x, y: unbroadcast_f(x, lambda g: g),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g))
defvjp(anp.subtract, lambda ans, x, y: unbroadcast_f(x, lambda g: g),
       lambda ans, x, y: unbroadcast_f(y, anp.negative))
defvjp(anp.multiply, lambda ans, x, y: unbroadcast_f(x, lambda g: y * g),
       lambda ans, x, y: unbroadcast_f(y, lambda g: x * g))
defvjp(anp.divide, lambda ans, x, y: unbroadcast_f(x, lambda g: g / y),
       lambda ans, x, y: unbroadcast_f(y, lambda g: -g * x / y**2))
anp.true_divide = anp.divide
defvjp(anp.maximum, lambda ans, x, y: unbroadcast_f(x, lambda g: g * balanced_eq(x, ans, y)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * balanced_eq(y, ans, x)))
defvjp(anp.minimum, lambda ans, x, y: unbroadcast_f(x, lambda g: g * balanced_eq(x, ans, y)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * balanced_eq(y, ans, x)))
defvjp(anp.fmax, lambda ans, x, y: unbroadcast_f(x, lambda g: g * balanced_eq(x, ans, y)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * balanced_eq(y, ans, x)))
defvjp(anp.fmin, lambda ans, x, y: unbroadcast_f(x, lambda g: g * balanced_eq(x, ans, y)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * balanced_eq(y, ans, x)))
defvjp(anp.logaddexp, lambda ans, x, y: unbroadcast_f(x, lambda g: g * anp.exp(x - ans)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * anp.exp(y - ans)))
defvjp(anp.logaddexp2, lambda ans, x, y: unbroadcast_f(x, lambda g: g * 2 ** (x - ans)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * 2 ** (y - ans)))
defvjp(anp.mod, lambda ans, x, y: unbroadcast_f(x, lambda g: g),
       lambda ans, x, y: unbroadcast_f(y, lambda g: -g * anp.floor(x / y)))
anp.remainder = anp.mod
defvjp(anp.hypot, lambda ans, x, y: unbroadcast_f(x, lambda g: g * x / ans),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * y / ans))
defvjp(anp.arctan2, lambda ans, x, y: unbroadcast_f(x, lambda g: g * y / (x**2 + y**2)),
       lambda ans, x, y: unbroadcast_f(y, lambda g: g * -x / (x**2 + y**2)))


def _power_vjp_x(ans, x, y):
    # y * x**(y-1) without forming 0**(-1) when y == 0.
    return unbroadcast_f(x, lambda g: g * anp.where(y, y * x ** anp.where(y, y - 1, 1.0), 0.0))


def _power_vjp_y(ans, x, y):
    # log(x) only where x > 0 (or complex); 0 ** y contributes 0.
    if anp.iscomplexobj(x) or anp.iscomplexobj(y):
        return unbroadcast_f(y, lambda g: g * ans * anp.log(anp.where(x, x, 1.0)))
    safe = anp.where(x > 0, x, 1.0)
    return unbroadcast_f(y, lambda g: g * anp.where(x > 0, ans * anp.log(safe), 0.0))


defvjp(anp.power, _power_vjp_x, _power_vjp_y)

# ------------------------------------------------------- elementwise unary
defvjp(anp.negative, lambda ans, x: lambda g: -g)
defvjp(anp.positive, lambda ans, x: lambda g: g)
defvjp(anp.abs, lambda ans, x: lambda g: g * anp.conj(x) / anp.where(ans == 0, 1.0, ans) if anp.iscomplexobj(x)
       else g * anp.sign(x))
anp.absolute = anp.abs
defvjp(anp.fabs, lambda ans, x: lambda g: g * anp.sign(x))
defvjp(anp.exp, lambda ans, x: lambda g: g * ans)
defvjp(anp.exp2, lambda ans, x: lambda g: g * ans * onp.log(2))
defvjp(anp.expm1, lambda ans, x: lambda g: g * (ans + 1))
defvjp(anp.log, lambda ans, x: lambda g: g / x)
defvjp(anp.log2, lambda ans, x: lambda g: g / (x * onp.log(2)))
defvjp(anp.log10, lambda ans, x: lambda g: g / (x * onp.log(10)))
defvjp(anp.log1p, lambda ans, x: lambda g: g / (x + 1))
defvjp(anp.sin, lambda ans, x: lambda g: g * anp.cos(x))
defvjp(anp.cos, lambda ans, x: lambda g: -g * anp.sin(x))
defvjp(anp.tan, lambda ans, x: lambda g: g / anp.cos(x) ** 2)
defvjp(anp.arcsin, lambda ans, x: lambda g: g / anp.sqrt(1 - x**2))
defvjp(anp.arccos, lambda ans, x: lambda g: -g / anp.sqrt(1 - x**2))
defvjp(anp.arctan, lambda ans, x: lambda g: g / (1 + x**2))
defvjp(anp.sinh, lambda ans, x: lambda g: g * anp.cosh(x))
defvjp(anp.cosh, lambda ans, x: lambda g: g * anp.sinh(x))
defvjp(anp.tanh, lambda ans, x: lambda g: g * (1 - ans**2))
defvjp(anp.arcsinh, lambda ans, x: lambda g: g / anp.sqrt(x**2 + 1))
defvjp(anp.arccosh, lambda ans, x: lambda g: g / anp.sqrt(x**2 - 1))
defvjp(anp.arctanh, lambda ans, x: lambda g: g / (1 - x**2))
defvjp(anp.square, lambda ans, x: lambda g: g * 2 * x)
defvjp(anp.reciprocal, lambda ans, x: lambda g: -g * ans**2)
defvjp(anp.sinc, lambda ans, x: lambda g: g * anp.where(
    x == 0, 0.0, (anp.cos(onp.pi * x) * onp.pi * x - anp.sin(onp.pi * x)) / (onp.pi * anp.where(x == 0, 1.0, x) ** 2)))
defvjp(anp.deg2rad, lambda ans, x: lambda g: g * onp.pi / 180)
defvjp(anp.rad2deg, lambda ans, x: lambda g: g * 180 / onp.pi)
anp.radians, anp.degrees = anp.deg2rad, anp.rad2deg


def _sqrt_vjp(ans, x):
    # Convention at 0: the derivative is +inf, except that a zero cotangent
    # stays zero, so sqrt inside a where() branch not taken (or sqrt(x**2) at
    # 0) never turns gradients into NaN. No division by zero is evaluated.
    if anp.iscomplexobj(ans):
        return lambda g: g * 0.5 / anp.conj(ans)
    at_zero = ans == 0
    safe = anp.where(at_zero, 1.0, ans)
    return lambda g: anp.where(at_zero, anp.where(g == 0, 0.0, anp.copysign(onp.inf, g)), g * 0.5 / safe)


defvjp(anp.sqrt, _sqrt_vjp)
defvjp(anp.cbrt, lambda ans, x: lambda g: g / (3 * ans**2))
defvjp(anp.real_if_close, lambda ans, x: lambda g: g)
defvjp(anp.real, lambda ans, x: lambda g: anp.real(g) if not anp.iscomplexobj(x) else g + 0j)
defvjp(anp.imag, lambda ans, x: lambda g: -1j * g)
defvjp(anp.conj, lambda ans, x: lambda g: anp.conj(g))
anp.conjugate = anp.conj
defvjp(anp.angle, lambda ans, x: lambda g: g * anp.conj(x * 1j) / anp.abs(x) ** 2 if anp.iscomplexobj(x)
       else anp.zeros_like(x) * g)
defvjp(anp.clip, lambda ans, x, a_min=None, a_max=None, **kw: unbroadcast_f(
    x, lambda g: g * anp.logical_and(ans != (a_min if a_min is not None else onp.nan),
                                    ans != (a_max if a_max is not None else onp.nan))),
    None, None)

# ------------------------------------------------------------- reductions


def _reduction_shape(x_shape, axis, keepdims):
    if keepdims or axis is None and not x_shape:
        return x_shape
    axes = range(len(x_shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    axes = {a % len(x_shape) for a in axes}
    return tuple(1 if i in axes else n for i, n in enumerate(x_shape))


def repeat_to_match_shape(g, x_shape, axis, keepdims):
    """Broadcast a reduced cotangent back over the reduced axes."""
    if x_shape == ():
        return g
    return anp.broadcast_to(anp.reshape(g, _reduction_shape(x_shape, axis, keepdims)), x_shape)


def _count(x_shape, axis):
    if axis is None:
        return int(onp.prod(x_shape))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(onp.prod([x_shape[a] for a in axes]))


def _sum_vjp(ans, x, axis=None, dtype=None, keepdims=False, **kw):
    shape = onp.shape(x)
    return lambda g: repeat_to_match_shape(g, shape, axis, keepdims)


def _mean_vjp(ans, x, axis=None, dtype=None, keepdims=False, **kw):
    shape = onp.shape(x)
    n = _count(shape, axis)
    return lambda g: repeat_to_match_shape(g, shape, axis, keepdims) / n


def _var_vjp(ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    shape = onp.shape(x)
    n = _count(shape, axis)
    centred = x - anp.mean(x, axis=axis, keepdims=True)
    return lambda g: 2.0 * repeat_to_match_shape(g, shape, axis, keepdims) * anp.conj(centred) / (n - ddof)


def _std_vjp(ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    shape = onp.shape(x)
    n = _count(shape, axis)
    centred = x - anp.mean(x, axis=axis, keepdims=True)
    return lambda g: repeat_to_match_shape(g / ans, shape, axis, keepdims) * anp.conj(centred) / (n - ddof)


def _extremum_vjp(ans, x, axis=None, keepdims=False, **kw):
    shape = onp.shape(x)
    full_ans = repeat_to_match_shape(ans, shape, axis, keepdims)
    winners = x == full_ans
    n_winners = anp.sum(winners, axis=axis, keepdims=True)
    return lambda g: repeat_to_match_shape(g, shape, axis, keepdims) * winners / n_winners


def _prod_vjp(ans, x, axis=None, keepdims=False, **kw):
    shape = onp.shape(x)
    # Correct when some entries are zero: product of the others, computed directly.
    if axis is None and onp.ndim(x) > 0:
        flat = anp.ravel(x)
        n = onp.size(flat)
        others = anp.stack([anp.prod(anp.concatenate([flat[:i], flat[i + 1:]])) for i in range(n)]) \
            if n <= 64 else ans / flat
        return lambda g: anp.reshape(g * others, shape)
    return lambda g: repeat_to_match_shape(g * ans, shape, axis, keepdims) / x


defvjp(anp.sum, _sum_vjp)
defvjp(anp.mean, _mean_vjp)
defvjp(anp.var, _var_vjp)
defvjp(anp.std, _std_vjp)
defvjp(anp.max, _extremum_vjp)
defvjp(anp.min, _extremum_vjp)
defvjp(anp.amax, _extremum_vjp)
defvjp(anp.amin, _extremum_vjp)
defvjp(anp.prod, _prod_vjp)

# ------------------------------------------------------- shape and layout
defvjp(anp.reshape, lambda ans, x, shape, order=None: lambda g: anp.reshape(g, onp.shape(x), order=order))
defvjp(anp.ravel, lambda ans, x, order=None: lambda g: anp.reshape(g, onp.shape(x), order=order))
defvjp(anp.squeeze, lambda ans, x, axis=None: lambda g: anp.reshape(g, onp.shape(x)))
defvjp(anp.expand_dims, lambda ans, x, axis: lambda g: anp.reshape(g, onp.shape(x)))
defvjp(anp.broadcast_to, lambda ans, x, shape, subok=False: lambda g: unbroadcast(g, x))


def _transpose_vjp(ans, x, axes=None):
    inverse = None if axes is None else onp.argsort(axes)
    return lambda g: anp.transpose(g, inverse)


defvjp(anp.transpose, _transpose_vjp)
defvjp(anp.swapaxes, lambda ans, x, a, b: lambda g: anp.swapaxes(g, a, b))
defvjp(anp.moveaxis, lambda ans, x, source, destination: lambda g: anp.moveaxis(g, destination, source))
defvjp(anp.astype_float, lambda ans, x, dtype: lambda g: anp.astype_(unbroadcast(g, x), onp.result_type(x))
       if onp.result_type(x).kind in "fc" else anp.real(g))

# ----------------------------------------------------------------- indexing
defvjp(anp.getitem, lambda ans, A, idx: (lambda shape, dtype: lambda g: anp.untake(g, idx, shape, dtype))(
    onp.shape(A), onp.result_type(A, float)), None)


def _getitem_parts_vjp(argnum, ans, A, *idx):
    if argnum != 0:
        return lambda g: onp.zeros(onp.shape(idx[argnum - 1]))
    shape, dtype = onp.shape(A), onp.result_type(A, float)
    return lambda g: anp.untake(g, tuple(idx), shape, dtype)


defvjp_argnum(anp.getitem_parts, _getitem_parts_vjp)
defvjp(anp.untake, lambda ans, g, idx, shape, dtype: lambda h: anp.getitem(h, idx), None, None, None)

# --------------------------------------------------------------- selection


def _where_vjp(argnum, ans, c, x=None, y=None):
    if argnum == 0:
        return lambda g: onp.zeros(onp.shape(c))
    target = x if argnum == 1 else y
    zero = onp.zeros((), dtype=onp.result_type(target, float))
    if argnum == 1:
        return lambda g: unbroadcast(anp.where3(c, g, zero), target)
    return lambda g: unbroadcast(anp.where3(c, zero, g), target)


defvjp_argnum(anp.where3, _where_vjp)

# ------------------------------------------------------ joining arrays


def _concatenate_vjp(argnum, ans, axis, *args):
    if argnum == 0:
        return lambda g: 0.0
    sizes = [onp.shape(a)[axis] for a in args]
    start = sum(sizes[: argnum - 1])
    stop = start + sizes[argnum - 1]
    ndim = onp.ndim(ans)

    def vjp(g):
        idx = [slice(None)] * ndim
        idx[axis] = slice(start, stop)
        return g[tuple(idx)]

    return vjp


defvjp_argnum(anp.concatenate_args, _concatenate_vjp)


def _array_from_args_vjp(argnum, ans, array_kwargs, *args):
    if argnum == 0:
        return lambda g: 0.0
    return lambda g: g[argnum - 1]


defvjp_argnum(anp.array_from_args, _array_from_args_vjp)

# ---------------------------------------------------------- linear algebra


def _dot_vjp_0(ans, A, B):
    A_ndim, B_ndim = onp.ndim(A), onp.ndim(B)
    if A_ndim == 0 or B_ndim == 0:
        return unbroadcast_f(A, lambda g: anp.sum(g * B) if A_ndim == 0 else g * B)
    if B_ndim == 1:
        return lambda g: anp.multiply.outer(g, B) if A_ndim > 1 else g * B
    # g has shape A.shape[:-1] + B.shape[:-2] + B.shape[-1:]
    def vjp(g):
        axes_g = list(range(A_ndim - 1, onp.ndim(g)))
        axes_b = [i for i in range(B_ndim) if i != B_ndim - 2]
        return anp.tensordot(g, B, (axes_g, axes_b))
    return vjp


def _dot_vjp_1(ans, A, B):
    A_ndim, B_ndim = onp.ndim(A), onp.ndim(B)
    if A_ndim == 0 or B_ndim == 0:
        return unbroadcast_f(B, lambda g: anp.sum(g * A) if B_ndim == 0 else g * A)
    if A_ndim == 1 and B_ndim == 1:
        return lambda g: g * A
    if B_ndim == 1:
        return lambda g: anp.tensordot(A, g, (list(range(A_ndim - 1)), list(range(A_ndim - 1))))

    def vjp(g):
        # result axes: A[:-1], B[:-2], B[-1]
        a_lead = A_ndim - 1
        g_ = anp.tensordot(A, g, (list(range(a_lead)), list(range(a_lead))))
        # g_ has axes (A[-1], B[:-2], B[-1]); move A[-1] to position B_ndim-2
        return anp.moveaxis(g_, 0, B_ndim - 2)
    return vjp


defvjp(anp.dot, _dot_vjp_0, _dot_vjp_1)


def _matmul_vjp_0(ans, A, B):
    if onp.ndim(B) == 1:
        if onp.ndim(A) == 1:
            return lambda g: g * B
        return unbroadcast_f(A, lambda g: anp.expand_dims(g, -1) * B)
    if onp.ndim(A) == 1:
        return lambda g: unbroadcast(anp.matmul(B, anp.expand_dims(g, -1))[..., 0], A) \
            if onp.ndim(B) > 2 else anp.matmul(B, g)
    return unbroadcast_f(A, lambda g: anp.matmul(g, anp.swapaxes(B, -1, -2)))


def _matmul_vjp_1(ans, A, B):
    if onp.ndim(A) == 1:
        if onp.ndim(B) == 1:
            return lambda g: g * A
        return unbroadcast_f(B, lambda g: anp.expand_dims(A, -1) * anp.expand_dims(g, -2))
    if onp.ndim(B) == 1:
        return unbroadcast_f(B, lambda g: anp.matmul(anp.swapaxes(A, -1, -2), g) if onp.ndim(A) == 2
                             else anp.sum(anp.swapaxes(A, -1, -2) * anp.expand_dims(g, -2), axis=-1))
    return unbroadcast_f(B, lambda g: anp.matmul(anp.swapaxes(A, -1, -2), g))


defvjp(anp.matmul, _matmul_vjp_0, _matmul_vjp_1)


def _tensordot_axes(A_ndim, B_ndim, axes):
    if onp.isscalar(axes) or isinstance(axes, int):
        axes = int(axes)
        return list(range(A_ndim - axes, A_ndim)), list(range(axes))
    a, b = axes
    a = [a] if isinstance(a, int) else list(a)
    b = [b] if isinstance(b, int) else list(b)
    return [x % A_ndim for x in a], [x % B_ndim for x in b]


def _tensordot_vjp_0(ans, A, B, axes=2):
    A_ndim, B_ndim = onp.ndim(A), onp.ndim(B)
    a_ax, b_ax = _tensordot_axes(A_ndim, B_ndim, axes)
    a_free = [i for i in range(A_ndim) if i not in a_ax]
    b_free = [i for i in range(B_ndim) if i not in b_ax]

    def vjp(g):
        # g axes: a_free..., b_free...
        g_b_axes = list(range(len(a_free), len(a_free) + len(b_free)))
        out = anp.tensordot(g, B, (g_b_axes, b_free))  # axes: a_free..., b_ax (in B order)
        # current order of A's axes in `out`
        current = a_free + [a_ax[b_ax.index(j)] for j in sorted(b_ax)]
        return anp.transpose(out, onp.argsort(current))
    return vjp


def _tensordot_vjp_1(ans, A, B, axes=2):
    A_ndim, B_ndim = onp.ndim(A), onp.ndim(B)
    a_ax, b_ax = _tensordot_axes(A_ndim, B_ndim, axes)
    a_free = [i for i in range(A_ndim) if i not in a_ax]
    b_free = [i for i in range(B_ndim) if i not in b_ax]

    def vjp(g):
        g_a_axes = list(range(len(a_free)))
        out = anp.tensordot(A, g, (a_free, g_a_axes))  # axes: a_ax (in A order)..., b_free...
        current = [b_ax[a_ax.index(i)] for i in sorted(a_ax)] + b_free
        return anp.transpose(out, onp.argsort(current))
    return vjp


defvjp(anp.tensordot, _tensordot_vjp_0, _tensordot_vjp_1)
defvjp(anp.outer, lambda ans, a, b: lambda g: anp.reshape(anp.dot(g, anp.ravel(b)), onp.shape(a)),
       lambda ans, a, b: lambda g: anp.reshape(anp.dot(anp.ravel(a), g), onp.shape(b)))
