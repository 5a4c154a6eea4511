"""Derivative rules of the wrapped numpy functions, each primitive's in one place.

A VJP maker takes ``(ans, *args, **kwargs)`` and returns ``g -> cotangent``
(a rule registered with ``defprimitive(vjp=...)``/``defvjp_rule`` takes
``(g, ans, *args, **kwargs)`` directly); a JVP rule takes ``(g, ans, *args,
**kwargs)`` where ``g`` is the tangent of one argument and returns the
tangent of the output, with the output's shape and dtype. Rules are written
with the wrapped (differentiable) functions, so the backward pass can itself
be traced: that is how higher derivatives work.

Conventions:

- complex numbers follow autograd: the cotangent of ``x * y`` with respect to
  ``x`` is ``g * y`` (no conjugate), so for real ``f`` of complex ``z`` the
  gradient is ``df/dx - i df/dy``;
- a cotangent has its argument's shape and dtype (float32 in, float32 out;
  a real argument gets a real cotangent);
- where a derivative is infinite (``sqrt`` at 0, ``arcsin`` at 1, ...), a zero
  cotangent still gives zero, so a function in the branch of ``np.where`` not
  taken never turns a gradient into NaN;
- functions linear in an argument are their own JVP there (``"same"``).

An elementwise function is declared on one line (``_unary``, ``_binary``):
its derivative ``g -> g * f'(x)``, which serves as VJP and JVP alike, what
the VJP reads (so the tape can drop the rest) and the native interpreter's
kernel for it. Every other primitive has its VJP, its JVP and a
``defprimitive`` line for the rest (what the VJP reads, the compiler's
simplification, the native lowering) together in its section below.
"""
from __future__ import annotations

import math

import numpy as onp

from ..core import defjvp, defjvp_argnum, defprimitive, defvjp, defvjp_argnum
from . import numpy_wrapper as anp

LN2, LN10 = math.log(2.0), math.log(10.0)

# ------------------------------------------- fitting a cotangent to its argument


def match_dtype(g, target):
    """Cast ``g`` to the dtype a (co)tangent of ``target`` must have: real for
    a real target, complex for a complex one, in the target's precision."""
    gd = getattr(g, "dtype", None)
    if gd is None:
        return g  # a Python scalar fits any target
    td = getattr(target, "dtype", None)
    if gd is td:
        return g
    if td is None:  # a Python scalar target
        if isinstance(target, complex):
            return g if gd.kind == "c" else anp.astype_float(g, onp.complex128)
        return anp.real(g) if gd.kind == "c" else g
    if td.kind not in "fc":  # ints and bools get float64 cotangents
        return anp.real(g) if gd.kind == "c" else g
    if gd.kind == "c" and td.kind == "f":
        g = anp.real(g)
        gd = g.dtype
    return g if gd == td else anp.astype_float(g, td)


def unbroadcast(g, target):
    """Sum ``g`` down to the shape of ``target`` (undoing numpy broadcasting)
    and give it ``target``'s dtype (see :func:`match_dtype`)."""
    try:
        if g.shape == target.shape and g.dtype is target.dtype:
            return g  # the common case: nothing to do
    except AttributeError:  # a Python scalar on either side
        pass
    t_shape = getattr(target, "shape", ())
    g_shape = getattr(g, "shape", ())
    if g_shape == t_shape:
        if getattr(g, "dtype", None) is getattr(target, "dtype", None):
            return g  # Python scalars
    else:
        extra = len(g_shape) - len(t_shape)
        if extra < 0:
            g = anp.broadcast_to(g, t_shape)
        else:
            if extra:
                g = anp.sum(g, axis=tuple(range(extra)))
            axes = tuple(i for i, n in enumerate(t_shape) if n == 1 and g_shape[extra + i] != 1)
            if axes:
                g = anp.sum(g, axis=axes, keepdims=True)
    return match_dtype(g, target)


def unbroadcast_f(target, f):
    """The VJP ``g -> unbroadcast(f(g), target)``: wrap the VJP ``f`` of an
    argument that numpy broadcast, so the cotangent comes back in the shape
    and dtype of ``target``, that argument."""
    return lambda g: unbroadcast(f(g), target)


def balanced_eq(x, z, y):
    """Share the gradient of max/min equally between tied arguments."""
    return anp.where3(anp.equal(x, z), anp.where3(anp.equal(x, y), 0.5, 1.0), 0.0)


def _safe_reciprocal(den):
    """``1 / den``, but ``inf`` where ``den`` is zero, without a warning."""
    at_zero = anp.equal(den, 0)
    return anp.where3(at_zero, onp.inf, 1.0 / anp.where3(at_zero, 1.0, den))


def times_singular(g, d):
    """``g * d`` for a derivative ``d`` that may be infinite: zero where ``g``
    is zero and ``d`` is not finite (never ``0 * inf = NaN``). Where ``d`` is
    finite the product is left alone, so that its derivative with respect to
    ``g`` (taken by higher-order derivatives) is ``d`` even at ``g = 0``."""
    return g * anp.where3(anp.logical_and(anp.equal(g, 0), anp.logical_not(anp.isfinite(d))), 0.0, d)


def _safe_divide(num, den):
    """``num / den``, zero where ``den`` is zero (used at removable points)."""
    at_zero = anp.equal(den, 0)
    return anp.where3(at_zero, 0.0, num / anp.where3(at_zero, 1.0, den))


# --------------------------------------------------- elementwise derivatives
def _sinc_derivative(x):
    safe = anp.where3(anp.equal(x, 0), 1.0, x)
    px = onp.pi * safe
    return anp.where3(anp.equal(x, 0), 0.0, (anp.cos(px) * px - anp.sin(px)) / (onp.pi * safe**2))


def fit(g, ans):
    """Broadcast a tangent to the output's shape and give it the output's dtype."""
    if getattr(g, "shape", ()) != getattr(ans, "shape", ()):
        g = anp.broadcast_to(g, anp.shape(ans))
    return match_dtype(g, ans)


# What a VJP rule reads beyond shapes and dtypes (``defprimitive``'s ``keeps``),
# for the traced ``argnums``: ``(keeps the result, kept argument positions)``.
def reads_nothing(argnums):
    return False, ()


def reads_ans(argnums):
    return True, ()


def reads_x(argnums):
    return False, (0,)


def _native(kind, kernel):
    """``native=`` for an elementwise function with an interpreter kernel."""
    return {} if kernel is None else {"native": f"{kind}:{kernel}"}


def _unary(fun, d, keeps=None, native=None):
    """Declare an elementwise function of one argument by ``d``, ``(g, ans,
    x) -> g * f'(x)``: it is the VJP (``g`` has the dtype of ``ans``, so of
    ``x``; ``d`` takes and ignores a ufunc's keywords) and, cast to the
    output's dtype, the JVP."""
    defprimitive(fun, vjp=d, jvp=lambda g, ans, x, **kw: match_dtype(d(g, ans, x), ans), keeps=keeps,
                 **_native("unary", native))


def _binary(fun, dx, dy, keeps=None, native=None, simplify=None):
    """Declare an elementwise function of two arguments by ``dx`` and
    ``dy``, ``(g, ans, x, y) -> g * df/dx`` (and ``/dy``; None for a zero
    derivative), shared by the VJPs (unbroadcast to each argument) and the
    JVPs (broadcast to the output)."""
    vjps = (None if dx is None else lambda g, ans, x, y, **kw: unbroadcast(dx(g, ans, x, y), x),
            None if dy is None else lambda g, ans, x, y, **kw: unbroadcast(dy(g, ans, x, y), y))
    jvps = tuple(None if d is None else lambda g, ans, x, y, d=d, **kw: fit(d(g, ans, x, y), ans)
                 for d in (dx, dy))
    defprimitive(fun, vjp=vjps, jvp=jvps, keeps=keeps, simplify=simplify, **_native("binary", native))


# Each function: its derivative, what its VJP reads, its native interpreter
# kernel (and, for some binary ones, the compiler's rewrite of an identity).
_unary(anp.negative, lambda g, ans, x, **_: -g, reads_nothing, "negative")
_unary(anp.positive, lambda g, ans, x, **_: g, reads_nothing, "copy")
_unary(anp.exp, lambda g, ans, x, **_: g * ans, reads_ans, "exp")
_unary(anp.exp2, lambda g, ans, x, **_: g * ans * LN2, reads_ans, "exp2")
_unary(anp.expm1, lambda g, ans, x, **_: g * (ans + 1), reads_ans, "expm1")
_unary(anp.log, lambda g, ans, x, **_: g / x, reads_x, "log")
_unary(anp.log2, lambda g, ans, x, **_: g / (x * LN2), reads_x, "log2")
_unary(anp.log10, lambda g, ans, x, **_: g / (x * LN10), reads_x, "log10")
_unary(anp.log1p, lambda g, ans, x, **_: g / (x + 1), reads_x, "log1p")
_unary(anp.sin, lambda g, ans, x, **_: g * anp.cos(x), reads_x, "sin")
_unary(anp.cos, lambda g, ans, x, **_: -g * anp.sin(x), reads_x, "cos")
_unary(anp.tan, lambda g, ans, x, **_: g * (1 + ans**2), reads_ans)
_unary(anp.arcsin, lambda g, ans, x, **_: times_singular(g, _safe_reciprocal(anp.sqrt(1 - x**2))), reads_x)
_unary(anp.arccos, lambda g, ans, x, **_: times_singular(-g, _safe_reciprocal(anp.sqrt(1 - x**2))), reads_x)
_unary(anp.arctan, lambda g, ans, x, **_: g / (1 + x**2), reads_x, "arctan")
_unary(anp.sinh, lambda g, ans, x, **_: g * anp.cosh(x), reads_x, "sinh")
_unary(anp.cosh, lambda g, ans, x, **_: g * anp.sinh(x), reads_x, "cosh")
_unary(anp.tanh, lambda g, ans, x, **_: g * (1 - ans**2), reads_ans, "tanh")
_unary(anp.arcsinh, lambda g, ans, x, **_: g / anp.sqrt(x**2 + 1), reads_x)
# sqrt(x - 1) * sqrt(x + 1) rather than sqrt(x**2 - 1): right on every complex branch.
_unary(anp.arccosh, lambda g, ans, x, **_: times_singular(g, _safe_reciprocal(anp.sqrt(x - 1) * anp.sqrt(x + 1))),
       reads_x)
_unary(anp.arctanh, lambda g, ans, x, **_: g / (1 - x**2), reads_x)
_unary(anp.square, lambda g, ans, x, **_: g * 2 * x, reads_x, "square")
_unary(anp.reciprocal, lambda g, ans, x, **_: -g * ans**2, reads_ans, "reciprocal")
# Convention at 0: the derivative is +inf (the one-sided limit), but a zero
# cotangent stays zero, so sqrt in the branch of a where() not taken, or
# multiplied by 0, contributes 0 rather than NaN; no division by zero is
# evaluated. (Like every library, sqrt(x**2) at 0 is still inf * 0: use abs.)
_unary(anp.sqrt, lambda g, ans, x, **_: times_singular(g, _safe_reciprocal(2 * ans)), reads_ans, "sqrt")
_unary(anp.cbrt, lambda g, ans, x, **_: times_singular(g, _safe_reciprocal(3 * ans**2)), reads_ans)
_unary(anp.deg2rad, lambda g, ans, x, **_: g * (onp.pi / 180))
_unary(anp.radians, lambda g, ans, x, **_: g * (onp.pi / 180))
_unary(anp.rad2deg, lambda g, ans, x, **_: g * (180 / onp.pi))
_unary(anp.degrees, lambda g, ans, x, **_: g * (180 / onp.pi))
_unary(anp.sinc, lambda g, ans, x, **_: g * _sinc_derivative(x))
_unary(anp.fabs, lambda g, ans, x, **_: g * anp.sign(x))
_unary(anp.nan_to_num, lambda g, ans, x, **_: anp.where3(anp.isfinite(x), g, 0.0))


def _power_dx(g, ans, x, y):
    """``g * y * x**(y - 1)``, with the limits at ``x == 0`` (0 for y > 1 or
    y == 0, 1 for y == 1, inf for y < 1) and no 0 ** negative evaluated."""
    if isinstance(y, (int, float)) and (y >= 1 or y == 0):
        return g * 0.0 if y == 0 else g if y == 1 else g * 2 * x if y == 2 else g * y * x ** (y - 1)
    at_zero = anp.equal(x, 0)
    safe_x = anp.where3(at_zero, 1.0, x)
    y_real = anp.real(y)
    limit = anp.where3(anp.logical_or(anp.greater(y_real, 1), anp.equal(y_real, 0)), 0.0,
                       anp.where3(anp.equal(y_real, 1), 1.0, onp.inf))
    return times_singular(g, anp.where3(at_zero, limit, y * safe_x ** (y - 1)))


def _power_dy(g, ans, x, y):
    """``g * x**y * log(x)``; where ``x**y`` has no real logarithm (x <= 0)
    its contribution is 0, as is 0**y's (y > 0)."""
    if anp.iscomplexobj(x) or anp.iscomplexobj(y):
        nonzero = anp.not_equal(x, 0)
        return g * anp.where3(nonzero, ans * anp.log(anp.where3(nonzero, x, 1.0)), 0.0)
    positive = anp.greater(x, 0)
    return g * anp.where3(positive, ans * anp.log(anp.where3(positive, x, 1.0)), 0.0)


def _mod_quotient(x, y, rounding):
    nonzero = anp.not_equal(y, 0)
    return anp.where3(nonzero, rounding(x / anp.where3(nonzero, y, 1.0)), 0.0)


def _copysign_dx(g, ans, x, y):
    return g * anp.where3(anp.equal(anp.signbit(x), anp.signbit(ans)), 1.0, -1.0)


def _balanced(x_first):
    """The derivative of max/min (and fmax/fmin) in one argument: ties share."""
    if x_first:
        return lambda g, ans, x, y: g * balanced_eq(x, ans, y)
    return lambda g, ans, x, y: g * balanced_eq(y, ans, x)


_binary(anp.add, lambda g, ans, x, y: g, lambda g, ans, x, y: g, reads_nothing, "add")
_binary(anp.subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: -g, reads_nothing, "subtract", "minus_zero")
_binary(anp.multiply, lambda g, ans, x, y: g * y, lambda g, ans, x, y: x * g,
        lambda argnums: (False, tuple(1 - i for i in argnums)), "multiply", "times_one")
_binary(anp.divide, lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y,
        lambda argnums: (1 in argnums, (1,)), "divide", "over_one")
for _f, _kernel in ((anp.maximum, "maximum"), (anp.minimum, "minimum"), (anp.fmax, "fmax"),
                    (anp.fmin, "fmin")):
    _binary(_f, _balanced(True), _balanced(False), native=_kernel)
_binary(anp.logaddexp, lambda g, ans, x, y: g * anp.exp(x - ans), lambda g, ans, x, y: g * anp.exp(y - ans),
        native="logaddexp")
_binary(anp.logaddexp2, lambda g, ans, x, y: g * anp.exp2(x - ans), lambda g, ans, x, y: g * anp.exp2(y - ans))
_binary(anp.mod, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * _mod_quotient(x, y, anp.floor))
_binary(anp.fmod, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * _mod_quotient(x, y, anp.trunc))
# hypot and arctan2 are smooth except at the origin; their gradient there is
# taken to be 0 (as for a norm at zero).
_binary(anp.hypot, lambda g, ans, x, y: g * _safe_divide(x, ans), lambda g, ans, x, y: g * _safe_divide(y, ans),
        native="hypot")
_binary(anp.arctan2, lambda g, ans, x, y: g * _safe_divide(y, x**2 + y**2),
        lambda g, ans, x, y: g * _safe_divide(-x, x**2 + y**2), native="arctan2")
_binary(anp.power, _power_dx, _power_dy, native="power")
_binary(anp.float_power, _power_dx, _power_dy)
_binary(anp.copysign, _copysign_dx, None)
_binary(anp.ldexp, lambda g, ans, x, y: anp.ldexp(g, y), None)


# The non-holomorphic elementwise functions.
def _abs_vjp(ans, x):
    if anp.iscomplexobj(x):
        return lambda g: g * anp.conj(x) * _safe_divide(1.0, ans)
    return lambda g: g * anp.sign(x)


def _angle_vjp(ans, x):
    if anp.iscomplexobj(x):
        return lambda g: g * -1j * anp.conj(x) * _safe_divide(1.0, anp.real(x * anp.conj(x)))
    return lambda g: match_dtype(g * 0.0, x)


defvjp(anp.abs, _abs_vjp)
defprimitive(anp.abs, native="unary:absolute")
defvjp(anp.angle, _angle_vjp)
defvjp(anp.real, lambda ans, x: lambda g: match_dtype(g, x))
defprimitive(anp.real, simplify="operand", native="same")
defvjp(anp.imag, lambda ans, x: lambda g: match_dtype(-1j * g, x))
defvjp(anp.conj, lambda ans, x: lambda g: anp.conj(g))
defvjp(anp.real_if_close, lambda ans, x, **kw: lambda g: match_dtype(g, x))
defvjp(anp.modf, lambda ans, x: lambda g: match_dtype(g[0], x))
defvjp(anp.frexp, lambda ans, x: lambda g: match_dtype(anp.ldexp(g[0], -ans[1]), x))


def clip_masks(x, ans, lo, hi):
    """Which of (x, a_min, a_max) each element of ``clip(x, lo, hi)`` follows.
    The three masks partition the output, so the gradients add up to g; a
    value exactly on a bound follows x, and NaN follows x."""
    lo_wins = anp.less(x, lo) if lo is not None else False
    hi_wins = anp.greater(x, hi) if hi is not None else False
    if lo is not None and hi is not None:
        crossed = anp.greater(lo, hi)  # numpy returns a_max when the bounds cross
        hi_wins = anp.logical_or(hi_wins, anp.logical_and(lo_wins, crossed))
        lo_wins = anp.logical_and(lo_wins, anp.logical_not(crossed))
    x_wins = anp.logical_not(anp.logical_or(lo_wins, hi_wins))
    return x_wins, lo_wins, hi_wins


def _clip_vjp(argnum, ans, x, lo, hi):
    target = (x, lo, hi)[argnum]
    return lambda g: unbroadcast(anp.where3(clip_masks(x, ans, lo, hi)[argnum], g, 0.0), target)


defvjp_argnum(anp._clip, _clip_vjp)
defprimitive(anp._clip, native="clip")


# Forward mode of the functions above.
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
def reduced_axes(axis, ndim):
    """``axis`` (None, int or tuple, possibly negative) as a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim if ndim else a for a in axes))


def repeat_to_match_shape(g, x_shape, axis, keepdims):
    """Broadcast a reduced (co)tangent back over the reduced axes."""
    if x_shape == ():
        return g
    if not keepdims and axis is not None:
        # Put the reduced axes back as ones. (A full reduction's scalar, and
        # a kept-dims result, broadcast as they are.)
        axes = reduced_axes(axis, len(x_shape))
        g = anp.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(x_shape)))
    return anp.broadcast_to(g, x_shape)


def _count(x_shape, axis):
    return int(onp.prod([x_shape[a] for a in reduced_axes(axis, len(x_shape))]))


def _real_dtype(x):
    dtype = anp.result_type(x)
    return onp.empty(0, dtype).real.dtype if dtype.kind in "fc" else onp.dtype(float)


def _as_real(mask_or_count, x):
    """A boolean or integer array as floats of ``x``'s precision."""
    return anp.astype_float(mask_or_count, _real_dtype(x))


def _sum_vjp(g, ans, x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    g = repeat_to_match_shape(g, anp.shape(x), axis, keepdims)
    return match_dtype(g if where is None else anp.where3(where, g, 0.0), x)


def _where_count(x, axis, where):
    if where is None:
        return _count(anp.shape(x), axis)
    mask = anp.broadcast_to(where, anp.shape(x))
    return _as_real(anp.sum(mask, axis=axis, keepdims=True), x)


def _mean_vjp(ans, x, axis=None, dtype=None, out=None, keepdims=False, where=None):
    shape = anp.shape(x)
    n = _where_count(x, axis, where)
    if where is None:
        return lambda g: match_dtype(repeat_to_match_shape(g, shape, axis, keepdims) / n, x)
    return lambda g: match_dtype(anp.where3(where, repeat_to_match_shape(g, shape, axis, keepdims), 0.0) / n, x)


def centred(x, axis, where=None):
    """``x - mean(x)`` over ``axis`` (0 outside ``where``)."""
    if where is None:
        return x - anp.mean(x, axis=axis, keepdims=True)
    return anp.where3(where, x - anp.mean(x, axis=axis, keepdims=True, where=where), 0.0)


def _var_vjp(ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, correction=None):
    ddof = ddof if correction is None else correction
    shape = anp.shape(x)
    dof = _where_count(x, axis, where) - ddof
    c = anp.conj(centred(x, axis, where))
    return lambda g: match_dtype(2.0 * repeat_to_match_shape(g, shape, axis, keepdims) * c / dof, x)


def _std_vjp(ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, correction=None):
    # Where every element is equal the std has a kink; its gradient there is 0.
    ddof = ddof if correction is None else correction
    shape = anp.shape(x)
    dof = _where_count(x, axis, where) - ddof
    c = anp.conj(centred(x, axis, where))
    return lambda g: match_dtype(
        repeat_to_match_shape(_safe_divide(g, ans), shape, axis, keepdims) * c / dof, x)


def _extremum_vjp(ans, x, axis=None, out=None, keepdims=False, initial=None, where=None):
    # Ties share the gradient equally; if `initial` wins, x gets none.
    shape = anp.shape(x)
    winners = anp.equal(x, repeat_to_match_shape(ans, shape, axis, keepdims))
    if where is not None:
        winners = anp.logical_and(winners, where)
    counts = anp.sum(winners, axis=axis, keepdims=True)
    share = _as_real(winners, x) / _as_real(anp.where3(anp.equal(counts, 0), 1, counts), x)
    return lambda g: match_dtype(repeat_to_match_shape(g, shape, axis, keepdims) * share, x)


def shift_along(x, d, axis, fill=0.0):
    """``x`` shifted by ``d`` along ``axis``, filled with ``fill`` at the start."""
    shape = list(anp.shape(x))
    shape[axis] = min(d, shape[axis])
    head = onp.full(shape, fill, dtype=anp.result_type(x))
    body = anp.getitem(x, (slice(None),) * (axis % len(shape)) + (slice(None, -d),))
    return anp.concatenate([head, body], axis=axis)


def exclusive_cumprod(x, axis):
    """The product of the elements strictly before each one along ``axis``."""
    return anp.cumprod(shift_along(x, 1, axis, fill=1.0), axis=axis)


def linear_scan(a, b, axis):
    """``T`` with ``T[j] = a[j] * T[j-1] + b[j]`` (``T[-1] = 0``) along
    ``axis``, by recursive doubling: log2(n) rounds of shifted products, no
    division, differentiable again."""
    n = anp.shape(b)[axis]
    d = 1
    while d < n:
        b = b + a * shift_along(b, d, axis)
        a = a * shift_along(a, d, axis)
        d *= 2
    return b


def products_of_others(x, axis):
    """The product of all elements but each one along ``axis``, without
    dividing (so zeros are fine): exclusive prefix times exclusive suffix."""
    prefix = exclusive_cumprod(x, axis)
    suffix = anp.flip(exclusive_cumprod(anp.flip(x, axis), axis), axis)
    return prefix * suffix


def reduce_to_last_axis(x, axis):
    """Move the reduced axes of ``x`` to the end and merge them: returns the
    reshaped array and a function mapping such an array back to ``x``'s layout."""
    shape = anp.shape(x)
    ndim = len(shape)
    axes = reduced_axes(axis, ndim)
    kept = [d for d in range(ndim) if d not in axes]
    perm = kept + list(axes)
    moved_shape = tuple(shape[d] for d in perm)
    merged = anp.reshape(anp.transpose(x, perm), tuple(shape[d] for d in kept) + (-1,))

    def restore(y):
        return anp.transpose(anp.reshape(y, moved_shape), onp.argsort(perm))

    return merged, restore


def prod_factors(x, axis, initial, where):
    """For ``prod(x, axis)``: d ans / d x, as the product of the others."""
    if where is not None:
        x = anp.where3(where, x, 1.0)
    merged, restore = reduce_to_last_axis(x, axis)
    others = restore(products_of_others(merged, -1))
    if initial is not None:
        others = others * initial
    if where is not None:
        others = anp.where3(where, others, 0.0)
    return others


def _prod_vjp(ans, x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    shape = anp.shape(x)
    others = prod_factors(x, axis, initial, where)
    return lambda g: match_dtype(repeat_to_match_shape(g, shape, axis, keepdims) * others, x)


def _cumsum_vjp(ans, x, axis=None, dtype=None, out=None):
    if axis is None:
        shape = anp.shape(x)
        return lambda g: match_dtype(anp.reshape(anp.flip(anp.cumsum(anp.flip(g))), shape), x)
    return lambda g: match_dtype(anp.flip(anp.cumsum(anp.flip(g, axis), axis), axis), x)


def _cumprod_vjp(ans, x, axis=None, dtype=None, out=None):
    # x̄[i] = prod(x[:i]) * R[i], with R[i] = g[i] + x[i+1] * R[i+1].
    shape = anp.shape(x)
    if axis is None:
        x, axis = anp.ravel(x), 0
    before = exclusive_cumprod(x, axis)
    following = shift_along(anp.flip(x, axis), 1, axis)

    def vjp(g):
        if anp.shape(g) != anp.shape(x):
            g = anp.reshape(g, anp.shape(x))
        r = anp.flip(linear_scan(following, anp.flip(g, axis), axis), axis)
        return match_dtype(anp.reshape(before * r, shape), x)

    return vjp


defprimitive(anp.sum, vjp=_sum_vjp, keeps=reads_nothing, native="sum")
defvjp(anp.mean, _mean_vjp)
defprimitive(anp.mean, keeps=reads_nothing, native="mean")
defvjp(anp.var, _var_vjp)
defvjp(anp.std, _std_vjp)
for _f in (anp.max, anp.min, anp.amax, anp.amin):
    defvjp(_f, _extremum_vjp)
defvjp(anp.prod, _prod_vjp)
defvjp(anp.cumsum, _cumsum_vjp)
defprimitive(anp.cumsum, native="cumsum")
defvjp(anp.cumprod, _cumprod_vjp)

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
defvjp(anp.reshape, lambda ans, x, *a, order="C", **kw: lambda g: anp.reshape(g, anp.shape(x), order=order))
defvjp(anp.ravel, lambda ans, x, order="C": lambda g: anp.reshape(g, anp.shape(x), order=order))
defvjp(anp.squeeze, lambda ans, x, axis=None: lambda g: anp.reshape(g, anp.shape(x)))
defvjp(anp.expand_dims, lambda ans, x, axis: lambda g: anp.reshape(g, anp.shape(x)))
defvjp(anp.broadcast_to, lambda ans, x, shape, subok=False: lambda g: unbroadcast(g, x))
# Results that only rearrange their operand's elements: the native backend
# makes them views; the compiler drops them when nothing moves.
for _f in (anp.reshape, anp.ravel, anp.squeeze, anp.broadcast_to):
    defprimitive(_f, simplify="operand", native="rearrange")
defprimitive(anp.expand_dims, native="rearrange")


def _transpose_vjp(ans, x, axes=None):
    if axes is None:
        return lambda g: anp.transpose(g)
    inverse = onp.argsort([a % anp.ndim(x) for a in axes])
    return lambda g: anp.transpose(g, inverse)


defvjp(anp.transpose, _transpose_vjp)
defprimitive(anp.transpose, simplify="transpose", native="rearrange")
defvjp(anp.swapaxes, lambda ans, x, axis1, axis2: lambda g: anp.swapaxes(g, axis1, axis2))
defvjp(anp.moveaxis, lambda ans, x, source, destination: lambda g: anp.moveaxis(g, destination, source))
defvjp(anp.flip, lambda ans, x, axis=None: lambda g: anp.flip(g, axis))
for _f in (anp.swapaxes, anp.moveaxis, anp.flip):
    defprimitive(_f, native="rearrange")
defvjp(anp.fliplr, lambda ans, x: lambda g: anp.fliplr(g))
defvjp(anp.flipud, lambda ans, x: lambda g: anp.flipud(g))
defvjp(anp.roll, lambda ans, x, shift, axis=None: lambda g: anp.roll(g, anp.negative(shift), axis))
defvjp(anp.rot90, lambda ans, x, k=1, axes=(0, 1): lambda g: anp.rot90(g, -k, axes))
defvjp(anp.tril, lambda ans, x, k=0: lambda g: unbroadcast(anp.tril(g, k), x))
defvjp(anp.triu, lambda ans, x, k=0: lambda g: unbroadcast(anp.triu(g, k), x))
defvjp(anp.diagonal, lambda ans, x, offset=0, axis1=0, axis2=1:
       lambda g: anp.diagonal_adjoint(g, anp.shape(x), offset, axis1, axis2))
defvjp(anp.diagonal_adjoint, lambda ans, d, shape, offset=0, axis1=0, axis2=1:
       lambda g: anp.diagonal(g, offset, axis1, axis2))
defprimitive(anp.diagonal, native="rearrange")
defprimitive(anp.diagonal_adjoint, native="diagonal_adjoint")
defvjp(anp.astype_float, lambda ans, x, dtype: lambda g: match_dtype(g, x))
defprimitive(anp.astype_float, simplify="operand", native="same")

# ----------------------------------------------------------------- indexing


def _cotangent_dtype(x):
    dtype = anp.result_type(x)
    return dtype if dtype.kind in "fc" else onp.dtype(float)


def _getitem_vjp(ans, A, idx):
    shape, dtype = anp.shape(A), _cotangent_dtype(A)
    return lambda g: anp.untake(match_dtype(g, A), idx, shape, dtype)


def _getitem_parts_vjp(argnum, ans, A, *idx):
    if argnum != 0:
        return lambda g: onp.zeros(anp.shape(idx[argnum - 1]))
    shape, dtype = anp.shape(A), _cotangent_dtype(A)
    return lambda g: anp.untake(match_dtype(g, A), tuple(idx), shape, dtype)


defvjp(anp.getitem, _getitem_vjp, None)
defvjp_argnum(anp.getitem_parts, _getitem_parts_vjp)
defvjp(anp.untake, lambda ans, g, idx, shape, dtype: lambda h: match_dtype(anp.getitem(h, idx), g),
       None, None, None)
defprimitive(anp.getitem, native="rearrange")
defprimitive(anp.untake, native="untake")

for _f in (anp.reshape, anp.ravel, anp.squeeze, anp.expand_dims, anp.broadcast_to, anp.transpose,
           anp.swapaxes, anp.moveaxis, anp.flip, anp.fliplr, anp.flipud, anp.roll, anp.rot90,
           anp.tril, anp.triu, anp.diagonal, anp.diagonal_adjoint, anp.getitem, anp.untake,
           anp.astype_float):
    defjvp(_f, "same")
defjvp_argnum(anp.getitem_parts, lambda argnum, g, ans, A, *idx: anp.getitem(g, tuple(idx)) if argnum == 0
              else onp.zeros(anp.shape(ans), anp.result_type(ans, float)))


# --------------------------------------------------------------- selection


def _where_vjp(argnum, ans, c, x=None, y=None):
    if argnum == 0:
        return lambda g: onp.zeros(anp.shape(c))
    target = x if argnum == 1 else y
    if argnum == 1:
        return lambda g: unbroadcast(anp.where3(c, g, 0.0), target)
    return lambda g: unbroadcast(anp.where3(c, 0.0, g), target)


defvjp_argnum(anp.where3, _where_vjp)
defprimitive(anp.where3, simplify="constant_condition", native="where")

def _where_jvp(argnum, g, ans, c, x=None, y=None):
    if argnum == 0:
        return onp.zeros(anp.shape(ans), anp.result_type(ans, float))
    return fit(anp.where3(c, g, 0.0) if argnum == 1 else anp.where3(c, 0.0, g), ans)


defjvp_argnum(anp.where3, _where_jvp)


# ------------------------------------------------------ joining arrays


def _concatenate_vjp(argnum, ans, axis, *args):
    sizes = [anp.shape(a)[axis] for a in args]
    start = sum(sizes[: argnum - 1])
    idx = (slice(None),) * (axis % anp.ndim(ans)) + (slice(start, start + sizes[argnum - 1]),)
    target = args[argnum - 1]
    return lambda g: match_dtype(anp.getitem(g, idx), target)


defvjp_argnum(anp.concatenate_args, _concatenate_vjp)
defprimitive(anp.concatenate_args, native="concatenate")
defvjp_argnum(anp.array_from_args,
              lambda argnum, ans, array_kwargs, *args: lambda g: match_dtype(g[argnum - 1], args[argnum - 1]))
defprimitive(anp.array_from_args, native="array_from_args")

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


# ---------------------------------------------------------- linear algebra


def tensordot_axes(a_ndim, b_ndim, axes):
    """``tensordot``'s ``axes`` argument as two lists of non-negative axes."""
    if isinstance(axes, (int, onp.integer)):
        return list(range(a_ndim - axes, a_ndim)), list(range(axes))
    a, b = axes
    a = [a] if isinstance(a, (int, onp.integer)) else list(a)
    b = [b] if isinstance(b, (int, onp.integer)) else list(b)
    return [i % a_ndim for i in a], [i % b_ndim for i in b]


def _tensordot_adjoints(A, B, a_ax, b_ax):
    """The VJPs of ``tensordot(A, B, (a_ax, b_ax))`` for A and for B."""
    a_free = [i for i in range(anp.ndim(A)) if i not in a_ax]
    b_free = [i for i in range(anp.ndim(B)) if i not in b_ax]

    def vjp_a(g):
        # contract g's B-part with B's free axes; the result's axes are
        # A's free axes, then A's contracted ones in the order of B's axes
        g_b = list(range(len(a_free), len(a_free) + len(b_free)))
        out = anp.tensordot(g, B, (g_b, b_free))
        order = a_free + [a_ax[b_ax.index(j)] for j in sorted(b_ax)]
        return match_dtype(anp.transpose(out, onp.argsort(order)), A)

    def vjp_b(g):
        out = anp.tensordot(A, g, (a_free, list(range(len(a_free)))))
        order = [b_ax[a_ax.index(i)] for i in sorted(a_ax)] + b_free
        return match_dtype(anp.transpose(out, onp.argsort(order)), B)

    return vjp_a, vjp_b


def _tensordot_vjp(argnum, ans, A, B, axes=2):
    a_ax, b_ax = tensordot_axes(anp.ndim(A), anp.ndim(B), axes)
    return _tensordot_adjoints(A, B, a_ax, b_ax)[argnum]


def dot_axes(a_ndim, b_ndim):
    """``dot(A, B)`` as ``tensordot(A, B, axes)``."""
    if a_ndim == 0 or b_ndim == 0:
        return [], []
    return [a_ndim - 1], [0 if b_ndim == 1 else b_ndim - 2]


def _dot_rule(argnum):
    def rule(g, ans, A, B):
        a_ndim, b_ndim = anp.ndim(A), anp.ndim(B)
        if 1 <= a_ndim <= 2 and 1 <= b_ndim <= 2:
            # Vectors and matrices (the common case): the adjoint is one more
            # product, ``g B^T`` for A and ``A^T g`` for B (an outer product or
            # a scaling when the other operand is a vector), far cheaper than
            # tensordot's general axis bookkeeping.
            if argnum == 0:
                out = anp.dot(g, anp.transpose(B)) if b_ndim == 2 else anp.outer(g, B) if a_ndim == 2 else g * B
            else:
                out = anp.dot(anp.transpose(A), g) if a_ndim == 2 else anp.outer(A, g) if b_ndim == 2 else g * A
            return match_dtype(out, (A, B)[argnum])
        return _tensordot_adjoints(A, B, *dot_axes(a_ndim, b_ndim))[argnum](g)

    return rule


defvjp(anp.tensordot, lambda ans, A, B, axes=2: _tensordot_vjp(0, ans, A, B, axes),
       lambda ans, A, B, axes=2: _tensordot_vjp(1, ans, A, B, axes))
defprimitive(anp.dot, vjp=(_dot_rule(0), _dot_rule(1)), native="matmul")


def _matmul_vjp(argnum, ans, A, B):
    # Treat vectors as (1, n) / (n, 1) matrices, then undo batch broadcasting.
    a_vec, b_vec = anp.ndim(A) == 1, anp.ndim(B) == 1
    A2 = anp.expand_dims(A, 0) if a_vec else A
    B2 = anp.expand_dims(B, 1) if b_vec else B

    def as_matrix(g):
        if a_vec and b_vec:
            return anp.reshape(g, (1, 1))
        if a_vec:
            return anp.expand_dims(g, -2)
        return anp.expand_dims(g, -1) if b_vec else g

    if argnum == 0:
        def vjp(g):
            out = unbroadcast(anp.matmul(as_matrix(g), anp.swapaxes(B2, -1, -2)), A2)
            return anp.reshape(out, anp.shape(A)) if a_vec else out
    else:
        def vjp(g):
            out = unbroadcast(anp.matmul(anp.swapaxes(A2, -1, -2), as_matrix(g)), B2)
            return anp.reshape(out, anp.shape(B)) if b_vec else out
    return vjp


defvjp(anp.matmul, lambda ans, A, B: _matmul_vjp(0, ans, A, B), lambda ans, A, B: _matmul_vjp(1, ans, A, B))
defprimitive(anp.matmul, native="matmul")
defvjp(anp.outer,
       lambda ans, a, b: lambda g: match_dtype(anp.reshape(anp.dot(g, anp.ravel(b)), anp.shape(a)), a),
       lambda ans, a, b: lambda g: match_dtype(anp.reshape(anp.dot(anp.ravel(a), g), anp.shape(b)), b))


def _einsum_vjp(argnum, ans, subscripts, *operands, **kwargs):
    """The cotangent of one operand is itself an einsum: the output's
    cotangent against the other operands, with the operand's indices as
    output. Repeated indices (diagonals) get identity matrices, indices summed
    away in this operand alone get vectors of ones, and axes of length 1 that
    were broadcast are summed back."""
    inputs, output = subscripts.split("->")
    inputs = inputs.split(",")
    k = argnum - 1
    target, target_shape = inputs[k], anp.shape(operands[k])
    sizes = {}
    for sub, op in zip(inputs, operands):
        for c, n in zip(sub, anp.shape(op)):
            # The broadcast size: a length 1 gives way to any other, 0 included.
            sizes[c] = n if sizes.get(c, 1) == 1 else sizes[c]
    others = [(s, op) for i, (s, op) in enumerate(zip(inputs, operands)) if i != k]
    spare = iter(c for c in anp._LETTERS if c not in subscripts)
    real = _real_dtype(ans)
    out_letters, extra_subs, extra_ops = [], [], []
    for c in target:
        if c in out_letters:
            fresh = next(spare)
            out_letters.append(fresh)
            extra_subs.append(c + fresh)
            extra_ops.append(onp.eye(sizes[c], dtype=real))
        else:
            out_letters.append(c)
    reachable = set(output + "".join(s for s, _ in others) + "".join(extra_subs))
    for c in dict.fromkeys(target):
        if c not in reachable:
            extra_subs.append(c)
            extra_ops.append(onp.ones(sizes[c], dtype=real))
    spec = ",".join([output] + [s for s, _ in others] + extra_subs) + "->" + "".join(out_letters)
    full_shape = tuple(sizes[c] for c in target)
    summed = tuple(i for i, (n, m) in enumerate(zip(target_shape, full_shape)) if n != m)
    opts = {k_: v for k_, v in kwargs.items() if k_ == "optimize"}

    def vjp(g):
        out = anp._einsum(spec, g, *[op for _, op in others], *extra_ops, **opts)
        if anp.shape(out) != full_shape:
            out = anp.broadcast_to(out, full_shape)
        if summed:
            out = anp.sum(out, axis=summed, keepdims=True)
        return match_dtype(out, operands[k])

    return vjp


defvjp_argnum(anp._einsum, _einsum_vjp)

_CONVOLVE_OFFSET = {"full": lambda n, m: 0, "same": lambda n, m: (min(n, m) - 1) // 2,
                    "valid": lambda n, m: min(n, m) - 1}


def _convolve_vjp(argnum, ans, a, v, mode="full"):
    # The cotangent of one factor is the (valid) convolution of the full-length
    # output cotangent with the other factor reversed.
    n, m = anp.shape(a)[0], anp.shape(v)[0]
    length = n + m - 1
    offset = _CONVOLVE_OFFSET[mode](n, m)
    other, target = (v, a) if argnum == 0 else (a, v)

    def vjp(g):
        pad_after = length - offset - anp.shape(g)[0]
        if offset or pad_after:
            dtype = anp.result_type(g)
            g = anp.concatenate([onp.zeros(offset, dtype), g, onp.zeros(pad_after, dtype)])
        return match_dtype(anp.convolve(g, anp.flip(other), "valid"), target)

    return vjp


defvjp(anp.convolve, lambda ans, a, v, mode="full": _convolve_vjp(0, ans, a, v, mode),
       lambda ans, a, v, mode="full": _convolve_vjp(1, ans, a, v, mode))


for _f in (anp.dot, anp.matmul, anp.tensordot, anp.outer, anp.convolve):
    defjvp(_f, "same", "same")


def _einsum_jvp(argnum, g, ans, subscripts, *operands, **kwargs):
    ops = list(operands)
    ops[argnum - 1] = g
    return fit(anp._einsum(subscripts, *ops, **kwargs), ans)


defjvp_argnum(anp._einsum, _einsum_jvp)


# --------------------------------------------- functions without derivatives
# Zero derivative (``NONDIFF_NAMES``), but the native interpreter runs them.
for _f, _kernel in ((anp.sign, "sign"), (anp.isfinite, "isfinite"), (anp.isnan, "isnan"),
                    (anp.logical_not, "logical_not"), (anp.floor, "floor"), (anp.ceil, "ceil"),
                    (anp.rint, "rint"), (anp.trunc, "trunc")):
    defprimitive(_f, native=f"unary:{_kernel}")
for _f in (anp.equal, anp.not_equal, anp.less, anp.less_equal, anp.greater, anp.greater_equal,
           anp.logical_and, anp.logical_or, anp.logical_xor):
    defprimitive(_f, native=f"binary:{_f.__name__}")


def _unsupported(name, reason):
    def raise_(*args, **kwargs):
        raise NotImplementedError(f"probad.ad cannot differentiate numpy.{name}: {reason}")
    return raise_


for _name, _reason in anp.UNSUPPORTED.items():
    defvjp_argnum(getattr(anp, _name), lambda argnum, ans, *a, _r=_unsupported(_name, _reason), **k: _r())
    defjvp_argnum(getattr(anp, _name), lambda argnum, g, ans, *a, _r=_unsupported(_name, _reason), **k: _r())
