"""Forward-mode rules (JVPs) for the wrapped numpy functions.

Each rule takes ``(g, ans, *args, **kwargs)`` where ``g`` is the tangent of
one argument and returns the tangent of the output, with the output's shape
and dtype. Elementwise functions are declared whole in ``numpy_vjps`` (one
derivative serves both modes); functions linear in an argument reuse
themselves (``"same"``).
"""
from __future__ import annotations

import numpy as onp

from ..core import defjvp, defjvp_argnum
from . import numpy_wrapper as anp
from .numpy_vjps import (_safe_divide, _unsupported, _where_count, centred, clip_masks, exclusive_cumprod, fit,
                         linear_scan, match_dtype, prod_factors, repeat_to_match_shape)


# ------------------------------------------------------------ elementwise
# (functions of one or two arguments are declared in ``numpy_vjps``)
def _abs_jvp(g, ans, x):
    if anp.iscomplexobj(x):
        return anp.real(g * anp.conj(x)) * _safe_divide(1.0, ans)
    return fit(g * anp.sign(x), ans)


def _angle_jvp(g, ans, x):
    if anp.iscomplexobj(x):
        return anp.imag(anp.conj(x) * g) * _safe_divide(1.0, anp.real(x * anp.conj(x)))
    return fit(anp.real(g) * 0.0, ans)


defjvp(anp.abs, _abs_jvp)
defjvp(anp.angle, _angle_jvp)
defjvp(anp.real, "same")
defjvp(anp.imag, "same")
defjvp(anp.conj, "same")
defjvp(anp.real_if_close, lambda g, ans, x, **kw: match_dtype(g, ans))
defjvp(anp.modf, lambda g, ans, x: (match_dtype(g, ans[0]), match_dtype(g * 0.0, ans[1])))
defjvp(anp.frexp, lambda g, ans, x: (anp.ldexp(g, -ans[1]), onp.zeros(anp.shape(ans[1]))))
defjvp_argnum(anp._clip, lambda argnum, g, ans, x, lo, hi: fit(
    anp.where3(clip_masks(x, ans, lo, hi)[argnum], g, 0.0), ans))

# ------------------------------------------------------------- reductions
defjvp(anp.sum, lambda g, ans, x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None:
       anp.sum(g, axis=axis, dtype=dtype, keepdims=keepdims, **({} if where is None else {"where": where})))
defjvp(anp.mean, "same")


def _var_jvp(g, ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, correction=None):
    ddof = ddof if correction is None else correction
    dof = _where_count(x, axis, where) - ddof
    total = 2.0 * anp.real(anp.sum(anp.conj(centred(x, axis, where)) * g, axis=axis, keepdims=True)) / dof
    return match_dtype(total if keepdims else anp.reshape(total, anp.shape(ans)), ans)


def _std_jvp(g, ans, x, **kwargs):
    return _safe_divide(_var_jvp(g, ans**2, x, **kwargs), 2 * ans)


def _extremum_jvp(g, ans, x, axis=None, out=None, keepdims=False, initial=None, where=None):
    winners = anp.equal(x, repeat_to_match_shape(ans, anp.shape(x), axis, keepdims))
    if where is not None:
        winners = anp.logical_and(winners, where)
    counts = anp.sum(winners, axis=axis, keepdims=keepdims)
    total = anp.sum(anp.where3(winners, g, 0.0), axis=axis, keepdims=keepdims)
    return fit(_safe_divide(total, counts), ans)


def _prod_jvp(g, ans, x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    total = anp.sum(g * prod_factors(x, axis, initial, where), axis=axis, keepdims=keepdims)
    return fit(total, ans)


def _cumprod_jvp(g, ans, x, axis=None, dtype=None, out=None):
    # T[j] = x[j] * T[j-1] + g[j] * prod(x[:j])
    if axis is None:
        x, g, axis = anp.ravel(x), anp.ravel(g), 0
    return fit(linear_scan(x, g * exclusive_cumprod(x, axis), axis), ans)


defjvp(anp.var, _var_jvp)
defjvp(anp.std, _std_jvp)
for _f in (anp.max, anp.min, anp.amax, anp.amin):
    defjvp(_f, _extremum_jvp)
defjvp(anp.prod, _prod_jvp)
defjvp(anp.cumsum, "same")
defjvp(anp.cumprod, _cumprod_jvp)

# ------------------------------------------------------- shape and layout
for _f in (anp.reshape, anp.ravel, anp.squeeze, anp.expand_dims, anp.broadcast_to, anp.transpose,
           anp.swapaxes, anp.moveaxis, anp.flip, anp.fliplr, anp.flipud, anp.roll, anp.rot90,
           anp.tril, anp.triu, anp.diagonal, anp.diagonal_adjoint, anp.getitem, anp.untake,
           anp.astype_float):
    defjvp(_f, "same")
defjvp_argnum(anp.getitem_parts, lambda argnum, g, ans, A, *idx: anp.getitem(g, tuple(idx)) if argnum == 0
              else onp.zeros(anp.shape(ans), anp.result_type(ans, float)))

# --------------------------------------------------------------- selection


def _where_jvp(argnum, g, ans, c, x=None, y=None):
    if argnum == 0:
        return onp.zeros(anp.shape(ans), anp.result_type(ans, float))
    return fit(anp.where3(c, g, 0.0) if argnum == 1 else anp.where3(c, 0.0, g), ans)


defjvp_argnum(anp.where3, _where_jvp)

# ------------------------------------------------- joining and linear maps


def _concatenate_jvp(argnum, g, ans, axis, *args):
    dtype = anp.result_type(ans)
    parts = [match_dtype(g, ans) if i == argnum - 1 else onp.zeros(anp.shape(a), dtype)
             for i, a in enumerate(args)]
    return anp.concatenate_args(axis, *parts)


def _array_from_args_jvp(argnum, g, ans, array_kwargs, *args):
    dtype = anp.result_type(ans)
    parts = [match_dtype(g, ans) if i == argnum - 1 else onp.zeros(anp.shape(a), dtype)
             for i, a in enumerate(args)]
    return anp.array_from_args(array_kwargs, *parts)


defjvp_argnum(anp.concatenate_args, _concatenate_jvp)
defjvp_argnum(anp.array_from_args, _array_from_args_jvp)
for _f in (anp.dot, anp.matmul, anp.tensordot, anp.outer, anp.convolve):
    defjvp(_f, "same", "same")


def _einsum_jvp(argnum, g, ans, subscripts, *operands, **kwargs):
    ops = list(operands)
    ops[argnum - 1] = g
    return fit(anp._einsum(subscripts, *ops, **kwargs), ans)


defjvp_argnum(anp._einsum, _einsum_jvp)

# --------------------------------------------- functions without derivatives
for _name, _reason in anp.UNSUPPORTED.items():
    defjvp_argnum(getattr(anp, _name), lambda argnum, g, ans, *a, _r=_unsupported(_name, _reason), **k: _r())

