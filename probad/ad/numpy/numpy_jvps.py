"""Forward-mode rules (JVPs) for the wrapped numpy functions.

Each rule takes ``(g, ans, *args, **kwargs)`` where ``g`` is the tangent of
one argument, and returns the tangent of the output. Functions that are linear
in an argument reuse themselves (``"same"``).
"""
from __future__ import annotations

import numpy as onp

from ..core import defjvp, defjvp_argnum
from . import numpy_wrapper as anp
from .numpy_vjps import balanced_eq, _count, repeat_to_match_shape


def _bcast(g, ans):
    """Broadcast an argument's tangent to the output's shape."""
    if anp.shape(g) == onp.shape(ans):
        return g
    return anp.broadcast_to(g, onp.shape(ans))


# --------------------------------------------------------- binary operators
defjvp(anp.add, lambda g, ans, x, y: _bcast(g, ans), lambda g, ans, x, y: _bcast(g, ans))
defjvp(anp.subtract, lambda g, ans, x, y: _bcast(g, ans), lambda g, ans, x, y: _bcast(-g, ans))
defjvp(anp.multiply, lambda g, ans, x, y: _bcast(g * y, ans), lambda g, ans, x, y: _bcast(x * g, ans))
defjvp(anp.divide, lambda g, ans, x, y: _bcast(g / y, ans), lambda g, ans, x, y: _bcast(-g * x / y**2, ans))
defjvp(anp.maximum, lambda g, ans, x, y: _bcast(g * balanced_eq(x, ans, y), ans),
       lambda g, ans, x, y: _bcast(g * balanced_eq(y, ans, x), ans))
defjvp(anp.minimum, lambda g, ans, x, y: _bcast(g * balanced_eq(x, ans, y), ans),
       lambda g, ans, x, y: _bcast(g * balanced_eq(y, ans, x), ans))
defjvp(anp.fmax, lambda g, ans, x, y: _bcast(g * balanced_eq(x, ans, y), ans),
       lambda g, ans, x, y: _bcast(g * balanced_eq(y, ans, x), ans))
defjvp(anp.fmin, lambda g, ans, x, y: _bcast(g * balanced_eq(x, ans, y), ans),
       lambda g, ans, x, y: _bcast(g * balanced_eq(y, ans, x), ans))
defjvp(anp.logaddexp, lambda g, ans, x, y: _bcast(g * anp.exp(x - ans), ans),
       lambda g, ans, x, y: _bcast(g * anp.exp(y - ans), ans))
defjvp(anp.logaddexp2, lambda g, ans, x, y: _bcast(g * 2 ** (x - ans), ans),
       lambda g, ans, x, y: _bcast(g * 2 ** (y - ans), ans))
defjvp(anp.mod, lambda g, ans, x, y: _bcast(g, ans), lambda g, ans, x, y: _bcast(-g * anp.floor(x / y), ans))
defjvp(anp.hypot, lambda g, ans, x, y: _bcast(g * x / ans, ans), lambda g, ans, x, y: _bcast(g * y / ans, ans))
defjvp(anp.arctan2, lambda g, ans, x, y: _bcast(g * y / (x**2 + y**2), ans),
       lambda g, ans, x, y: _bcast(g * -x / (x**2 + y**2), ans))


def _power_jvp_x(g, ans, x, y):
    return _bcast(g * anp.where(y, y * x ** anp.where(y, y - 1, 1.0), 0.0), ans)


def _power_jvp_y(g, ans, x, y):
    if anp.iscomplexobj(x) or anp.iscomplexobj(y):
        return _bcast(g * ans * anp.log(anp.where(x, x, 1.0)), ans)
    safe = anp.where(x > 0, x, 1.0)
    return _bcast(g * anp.where(x > 0, ans * anp.log(safe), 0.0), ans)


defjvp(anp.power, _power_jvp_x, _power_jvp_y)

# ------------------------------------------------------- elementwise unary
defjvp(anp.negative, "same")
defjvp(anp.positive, "same")
defjvp(anp.abs, lambda g, ans, x: anp.real(g * anp.conj(x)) / anp.where(ans == 0, 1.0, ans)
       if anp.iscomplexobj(x) else g * anp.sign(x))
defjvp(anp.fabs, lambda g, ans, x: g * anp.sign(x))
defjvp(anp.exp, lambda g, ans, x: g * ans)
defjvp(anp.exp2, lambda g, ans, x: g * ans * onp.log(2))
defjvp(anp.expm1, lambda g, ans, x: g * (ans + 1))
defjvp(anp.log, lambda g, ans, x: g / x)
defjvp(anp.log2, lambda g, ans, x: g / (x * onp.log(2)))
defjvp(anp.log10, lambda g, ans, x: g / (x * onp.log(10)))
defjvp(anp.log1p, lambda g, ans, x: g / (x + 1))
defjvp(anp.sin, lambda g, ans, x: g * anp.cos(x))
defjvp(anp.cos, lambda g, ans, x: -g * anp.sin(x))
defjvp(anp.tan, lambda g, ans, x: g / anp.cos(x) ** 2)
defjvp(anp.arcsin, lambda g, ans, x: g / anp.sqrt(1 - x**2))
defjvp(anp.arccos, lambda g, ans, x: -g / anp.sqrt(1 - x**2))
defjvp(anp.arctan, lambda g, ans, x: g / (1 + x**2))
defjvp(anp.sinh, lambda g, ans, x: g * anp.cosh(x))
defjvp(anp.cosh, lambda g, ans, x: g * anp.sinh(x))
defjvp(anp.tanh, lambda g, ans, x: g * (1 - ans**2))
defjvp(anp.arcsinh, lambda g, ans, x: g / anp.sqrt(x**2 + 1))
defjvp(anp.arccosh, lambda g, ans, x: g / anp.sqrt(x**2 - 1))
defjvp(anp.arctanh, lambda g, ans, x: g / (1 - x**2))
defjvp(anp.square, lambda g, ans, x: g * 2 * x)
defjvp(anp.reciprocal, lambda g, ans, x: -g * ans**2)
defjvp(anp.sinc, lambda g, ans, x: g * anp.where(
    x == 0, 0.0, (anp.cos(onp.pi * x) * onp.pi * x - anp.sin(onp.pi * x)) / (onp.pi * anp.where(x == 0, 1.0, x) ** 2)))
defjvp(anp.deg2rad, "same")
defjvp(anp.rad2deg, "same")


def _sqrt_jvp(g, ans, x):
    if anp.iscomplexobj(ans):
        return g * 0.5 / ans
    at_zero = ans == 0
    safe = anp.where(at_zero, 1.0, ans)
    return anp.where(at_zero, anp.where(g == 0, 0.0, anp.copysign(onp.inf, g)), g * 0.5 / safe)


defjvp(anp.sqrt, _sqrt_jvp)
defjvp(anp.cbrt, lambda g, ans, x: g / (3 * ans**2))
defjvp(anp.real_if_close, "same")
defjvp(anp.real, "same")
defjvp(anp.imag, "same")
defjvp(anp.conj, "same")
defjvp(anp.angle, lambda g, ans, x: anp.real(g * anp.conj(x * 1j)) / anp.abs(x) ** 2 if anp.iscomplexobj(x)
       else anp.zeros_like(x) * 0.0)
defjvp(anp.clip, lambda g, ans, x, a_min=None, a_max=None, **kw: _bcast(g, ans) * anp.logical_and(
    ans != (a_min if a_min is not None else onp.nan), ans != (a_max if a_max is not None else onp.nan)))

# ------------------------------------------------------------- reductions
defjvp(anp.sum, "same")
defjvp(anp.mean, "same")


def _var_jvp(g, ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    n = _count(onp.shape(x), axis)
    centred = x - anp.mean(x, axis=axis, keepdims=True)
    return 2.0 * anp.real(anp.sum(anp.conj(centred) * g, axis=axis, keepdims=keepdims)) / (n - ddof)


def _std_jvp(g, ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return _var_jvp(g, ans**2, x, axis=axis, ddof=ddof, keepdims=keepdims) / (2 * ans)


def _extremum_jvp(g, ans, x, axis=None, keepdims=False, **kw):
    full_ans = repeat_to_match_shape(ans, onp.shape(x), axis, keepdims)
    winners = x == full_ans
    return anp.sum(g * winners, axis=axis, keepdims=keepdims) / anp.sum(winners, axis=axis, keepdims=keepdims)


def _prod_jvp(g, ans, x, axis=None, keepdims=False, **kw):
    if axis is None and onp.ndim(x) > 0:
        flat, gf = anp.ravel(x), anp.ravel(g)
        n = onp.size(flat)
        terms = [anp.prod(anp.concatenate([flat[:i], flat[i + 1:]])) * gf[i] for i in range(n)]
        return anp.sum(anp.stack(terms)) if n <= 64 else ans * anp.sum(gf / flat)
    return ans * anp.sum(g / x, axis=axis, keepdims=keepdims)


defjvp(anp.var, _var_jvp)
defjvp(anp.std, _std_jvp)
for _f in (anp.max, anp.min, anp.amax, anp.amin):
    defjvp(_f, _extremum_jvp)
defjvp(anp.prod, _prod_jvp)

# ------------------------------------------------------- shape and layout
for _f in (anp.reshape, anp.ravel, anp.squeeze, anp.expand_dims, anp.broadcast_to, anp.transpose,
           anp.swapaxes, anp.moveaxis, anp.getitem):
    defjvp(_f, "same")
defjvp(anp.astype_float, "same")
defjvp_argnum(anp.getitem_parts, lambda argnum, g, ans, A, *idx: anp.getitem(g, tuple(idx))
              if argnum == 0 else anp.zeros_like(ans) * 0.0)
defjvp(anp.untake, "same")

# --------------------------------------------------------------- selection


def _where_jvp(argnum, g, ans, c, x=None, y=None):
    if argnum == 0:
        return onp.zeros(onp.shape(ans), dtype=onp.result_type(ans, float))
    zero = onp.zeros((), dtype=onp.result_type(g, float))
    return _bcast(anp.where3(c, g, zero) if argnum == 1 else anp.where3(c, zero, g), ans)


defjvp_argnum(anp.where3, _where_jvp)

# ------------------------------------------------- joining and linear maps


def _concatenate_jvp(argnum, g, ans, axis, *args):
    parts = [g if i == argnum - 1 else onp.zeros(onp.shape(a), dtype=onp.result_type(ans))
             for i, a in enumerate(args)]
    return anp.concatenate_args(axis, *parts)


defjvp_argnum(anp.concatenate_args, _concatenate_jvp)


def _array_from_args_jvp(argnum, g, ans, array_kwargs, *args):
    parts = [g if i == argnum - 1 else onp.zeros(onp.shape(a), dtype=onp.result_type(ans))
             for i, a in enumerate(args)]
    return anp.array_from_args(array_kwargs, *parts)


defjvp_argnum(anp.array_from_args, _array_from_args_jvp)
for _f in (anp.dot, anp.matmul, anp.tensordot, anp.outer):
    defjvp(_f, "same", "same")
