"""``probad.ad.scipy.special``: special functions with derivatives.

Every function here is a :class:`~probad.ad.extend.primitive` (or a
composition of them) with both a reverse-mode (VJP) and a forward-mode (JVP)
rule. Rules are written with differentiable functions, so derivatives of
any order exist. The derivatives of the incomplete gamma and beta functions
with respect to their shape parameters are computed numerically, to any
order too (see :func:`gammainc_da` and :func:`betainc_dab`).

Integer-valued arguments (the order ``n`` of ``polygamma``, ``jn``, ``yn``
and the order ``v`` of the Bessel functions) are not differentiable.

Conventions where a function is singular, chosen so that no NaN appears in
a gradient that does not need one and no numpy warning is raised:

- ``xlogy(0, y)`` and ``xlog1py(0, y)`` are 0 for every ``y``, with zero
  gradient with respect to both arguments, including at ``y = 0``
  (``y = -1``);
- ``logsumexp`` over entries that are all ``-inf`` is ``-inf`` with zero
  gradient; single ``-inf`` entries get zero weight;
- ``entr(0) = 0`` with derivative ``+inf``; ``entr`` is constant (``-inf``)
  for negative arguments, with derivative 0.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import numpy as onp
import scipy.special as _sp

from .. import numpy as np
from ..core import defjvp, defprimitive, defvjp
from ..numpy.numpy_vjps import unbroadcast, unbroadcast_f
from ..tracer import getval, nondiff_primitive, primitive

__all__ = [
    "gamma", "gammaln", "loggamma", "rgamma", "gammasgn", "digamma", "psi",
    "polygamma", "multigammaln", "beta", "betaln", "betainc", "betaincc",
    "gammainc", "gammaincc", "erf", "erfc", "erfcx", "erfinv", "erfcinv",
    "ndtr", "log_ndtr", "ndtri", "expit", "logit", "log_expit", "softplus",
    "logsumexp", "softmax", "log_softmax", "xlogy", "xlog1py", "entr",
    "rel_entr", "kl_div", "i0", "i1", "i0e", "i1e", "iv", "ive", "k0", "k1",
    "k0e", "k1e", "kv", "kve", "j0", "j1", "jn", "jv", "y0", "y1", "yn", "yv",
    "log1p", "expm1", "exp2", "exp10", "cbrt",
]

# Python floats, not numpy scalars: those would promote float32 to float64.
_SQRT_PI = float(onp.sqrt(onp.pi))
_SQRT_2PI = float(onp.sqrt(2 * onp.pi))
_LOG_PI = float(onp.log(onp.pi))
_LOG_10 = float(onp.log(10.0))


def _elementwise(fun: primitive, *partials: Callable | None, **lowerings: str) -> None:
    """Attach a VJP and a JVP for each argument of an elementwise ``fun``.

    ``partials[i](ans, *args, **kwargs)`` is the partial derivative of
    ``fun`` with respect to argument ``i`` (``None``: not differentiable).
    Cotangents are summed back over broadcast axes; tangents are broadcast
    to the output. ``lowerings`` are passed to ``defprimitive`` (the native
    interpreter's kernel).
    """
    if lowerings:
        defprimitive(fun, **lowerings)
    for argnum, partial in enumerate(partials):
        if partial is None:
            defvjp(fun, None, argnums=[argnum])
            defjvp(fun, None, argnums=[argnum])
            continue
        defvjp(fun, _vjp_maker(argnum, partial), argnums=[argnum])
        defjvp(fun, _jvp_rule(partial), argnums=[argnum])


def _vjp_maker(argnum, partial):
    def maker(ans, *args, **kwargs):
        return unbroadcast_f(args[argnum], lambda g: g * partial(ans, *args, **kwargs))
    return maker


def _jvp_rule(partial):
    def rule(g, ans, *args, **kwargs):
        out = g * partial(ans, *args, **kwargs)
        return out if onp.shape(out) == onp.shape(ans) else np.broadcast_to(out, onp.shape(ans))
    return rule


def _float_dtype(*args):
    """The floating dtype results should have: float32 stays float32, and
    Python numbers alone give float64 (as numpy's own functions do)."""
    values = [getval(a) for a in args]
    if all(isinstance(v, (bool, int, float)) for v in values):
        return onp.dtype(float)
    return onp.result_type(*values, onp.float16)


def _const(value, *like):
    """``value`` as a 0-d array of the arguments' float dtype, for ``where``
    branches that are both constants (which numpy would make float64)."""
    return onp.asarray(value, _float_dtype(*like))


def _wrap(name: str, fun: Callable | None = None) -> primitive:
    return primitive(fun if fun is not None else getattr(_sp, name), name)


# -------------------------------------------------------------- gamma family
gamma = _wrap("gamma")
gammaln = _wrap("gammaln")
loggamma = _wrap("loggamma")
digamma = _wrap("digamma")
psi = digamma
gammasgn = nondiff_primitive(_sp.gammasgn, "gammasgn")


def _polygamma(n, x):
    # scipy computes polygamma in float64 whatever the input; keep the input's.
    return onp.asarray(_sp.polygamma(n, x)).astype(_float_dtype(x))[()]


polygamma = primitive(_polygamma, "polygamma")
polygamma.__doc__ = "``scipy.special.polygamma(n, x)``: the n-th derivative of digamma."


def _rgamma_derivative(ans, x):
    # 1/Gamma has simple zeros at x = 0, -1, -2, ... where digamma is
    # infinite; there the derivative is (-1)**n * n! with n = -x.
    pole = (x <= 0) & (x == np.floor(x))
    regular = np.where(pole, 0.5, x)
    at_pole = np.where(pole, x, 0.5)
    return np.where(pole, np.cos(onp.pi * at_pole) * gamma(1 - at_pole),
                    -digamma(regular) * rgamma(regular))


rgamma = _wrap("rgamma")
_elementwise(gamma, lambda ans, x: ans * digamma(x))
_elementwise(gammaln, lambda ans, x: digamma(x), native="unary:gammaln")
_elementwise(loggamma, lambda ans, x: digamma(x))
_elementwise(digamma, lambda ans, x: polygamma(1, x), native="unary:digamma")
_elementwise(polygamma, None, lambda ans, n, x: polygamma(n + 1, x))
_elementwise(rgamma, _rgamma_derivative)


def multigammaln(a, d: int):
    """Log of the multivariate gamma function of dimension ``d``.

    ``log Gamma_d(a) = d (d-1)/4 log(pi) + sum_j gammaln(a - j/2)``, for
    ``a > (d - 1)/2``; a ValueError otherwise, as in scipy.
    """
    if np.any(np.asarray(a) <= 0.5 * (d - 1)):
        raise ValueError(f"multigammaln: every element of a must be greater than (d-1)/2 = {0.5 * (d - 1)}")
    shifts = onp.arange(d) / 2.0
    terms = gammaln(np.expand_dims(a, -1) - shifts.astype(_float_dtype(a)))
    return np.sum(terms, axis=-1) + 0.25 * d * (d - 1) * _LOG_PI


beta = _wrap("beta")
betaln = _wrap("betaln")
_elementwise(beta, lambda ans, a, b: ans * (digamma(a) - digamma(a + b)),
             lambda ans, a, b: ans * (digamma(b) - digamma(a + b)))
_elementwise(betaln, lambda ans, a, b: digamma(a) - digamma(a + b),
             lambda ans, a, b: digamma(b) - digamma(a + b))


# ------------------------------------------------- error function and normal
erf = _wrap("erf")
erfc = _wrap("erfc")
erfcx = _wrap("erfcx")
erfinv = _wrap("erfinv")
erfcinv = _wrap("erfcinv")
ndtr = _wrap("ndtr")
log_ndtr = _wrap("log_ndtr")
ndtri = _wrap("ndtri")
_elementwise(erf, lambda ans, x: (2 / _SQRT_PI) * np.exp(-x * x))
_elementwise(erfc, lambda ans, x: (-2 / _SQRT_PI) * np.exp(-x * x))
_elementwise(erfcx, lambda ans, x: 2 * x * ans - 2 / _SQRT_PI)
_elementwise(erfinv, lambda ans, x: (_SQRT_PI / 2) * np.exp(ans * ans))
_elementwise(erfcinv, lambda ans, x: (-_SQRT_PI / 2) * np.exp(ans * ans))
_elementwise(ndtr, lambda ans, x: np.exp(-0.5 * x * x) / _SQRT_2PI)
# phi(x) / Phi(x) in log space: no overflow for very negative x.
_elementwise(log_ndtr, lambda ans, x: np.exp(-0.5 * x * x - ans) / _SQRT_2PI)
_elementwise(ndtri, lambda ans, x: _SQRT_2PI * np.exp(0.5 * ans * ans))


# ------------------------------------------------------------ logistic family
def _safe_reciprocal(den):
    """``1/den`` with ``+inf`` where ``den == 0`` and no division warning."""
    zero = den == 0
    return np.where(zero, onp.inf, 1 / np.where(zero, 1, den))


expit = _wrap("expit")
logit = _wrap("logit")
log_expit = _wrap("log_expit")
def _softplus_raw(x, **kwargs):
    # max(x, 0) + log1p(exp(-|x|)) is exact to rounding and ~6x faster than
    # numpy's logaddexp(0, x), whose ufunc loop is not vectorised.
    x = onp.asarray(x, dtype=_float_dtype(x))
    return onp.maximum(x, 0) + onp.log1p(onp.exp(-onp.abs(x)))


softplus = _wrap("softplus", _softplus_raw)
softplus.__doc__ = "``log(1 + exp(x))``, computed stably as ``max(x, 0) + log1p(exp(-|x|))``."
_elementwise(expit, lambda ans, x: ans * (1 - ans), native="unary:expit")
_elementwise(logit, lambda ans, x: _safe_reciprocal(x * (1 - x)))
_elementwise(log_expit, lambda ans, x: expit(-x), native="unary:log_expit")
_elementwise(softplus, lambda ans, x: expit(x), native="unary:softplus")


# ---------------------------------------------------------------- logsumexp
def _keepdims_shape(shape, axis):
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


# Up to this many entries, logsumexp is one ufunc reduction (logaddexp): the
# max-shift form's five numpy calls cost ~10 us, which dominates a model that
# calls logsumexp on a handful of states per step of a loop (an HMM). Past it,
# the max-shift form is faster: one exp per entry instead of an exp and a log1p.
# The same bound decides when a NaN/inf check runs in Python on a list
# (~0.3 us) rather than as a numpy reduction (~3 us).
_SMALL = 64


def _small_sum(x) -> float:
    """The sum of a small array's entries as a Python float: NaN if one is
    NaN (or if +inf meets -inf), never a numpy warning."""
    return sum(x.ravel().tolist())


@primitive
def _logsumexp(a, b, axis, keepdims, return_sign):
    if b is None and not return_sign:
        # The common case, directly: scipy's array-API dispatch costs ~20 us a call.
        a = onp.asarray(a)
        if 0 < a.size <= _SMALL and a.dtype.kind == "f":
            # logaddexp warns on a NaN entry (scipy, below, does not)
            if not math.isnan(_small_sum(a)):
                return onp.logaddexp.reduce(a, axis=axis, keepdims=keepdims)
        elif a.size:
            m = a.max(axis=axis, keepdims=True)
            if onp.isfinite(m).all():
                s = onp.exp(a - m).sum(axis=axis, keepdims=keepdims)
                return onp.log(s) + (m if keepdims else m.reshape(onp.shape(s)))
    out = _sp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    return tuple(out) if return_sign else out


@primitive
def _softmax_weights(a, lse, shape):
    """``exp(a - lse)``, ``lse`` reshaped to ``shape`` (``a``'s shape with the
    summed axes kept as 1); 0 on slices whose ``lse`` is not finite.

    One primitive for what the VJP and JVP of logsumexp need, rather than the
    six calls (and guards) of the NaN-safe ``where`` form: in an HMM's loop it
    runs once per step.
    """
    lse = onp.asarray(lse)
    if math.isfinite(_small_sum(lse)) if lse.size <= _SMALL else onp.isfinite(lse).all():
        return onp.exp(a - lse.reshape(shape))
    # exp(-inf) = 0 on those slices: nothing there can overflow or be NaN.
    lse = lse.reshape(shape)
    finite = onp.isfinite(lse)
    return onp.exp(onp.where(finite, a - onp.where(finite, lse, 0), -onp.inf))


def _summed_axes(shape):
    return tuple(i for i, n in enumerate(shape) if n == 1)


# d exp(a - lse) = exp(a - lse) (da - dlse); the weights are 0 where lse is not
# finite, and so are these derivatives.
defvjp(_softmax_weights,
       lambda ans, a, lse, shape: lambda g: g * ans,
       lambda ans, a, lse, shape: lambda g: -np.reshape(
           np.sum(g * ans, axis=_summed_axes(shape)), onp.shape(lse)),
       None)
defjvp(_softmax_weights,
       lambda g, ans, a, lse, shape: g * ans,
       lambda g, ans, a, lse, shape: -np.reshape(g, shape) * ans,
       None)
defprimitive(_softmax_weights, native="softmax_weights")


def _lse_weights(ans, a, b, axis, keepdims, return_sign):
    """``sign * exp(a - lse)`` (to be multiplied by ``b``), shaped like ``a``.

    Slices whose sum is zero (all entries ``-inf`` or zero weight) have
    ``lse = -inf``; their weights are 0 rather than ``exp(-inf + inf)``.
    """
    lse, sign = ans if return_sign else (ans, 1.0)
    shape = _keepdims_shape(onp.shape(a), axis)
    e = _softmax_weights(a, lse, shape)
    if return_sign:
        e = e * np.reshape(sign, shape)
    return e, shape


def _logsumexp_vjp(argnum, ans, a, b, axis, keepdims, return_sign):
    e, shape = _lse_weights(ans, a, b, axis, keepdims, return_sign)
    a_shape = onp.shape(a)

    def vjp(g):
        if return_sign:
            g = g[0]
        g = np.reshape(g, shape)
        if argnum == 0:
            return np.broadcast_to(g * e if b is None else g * e * b, a_shape)
        return unbroadcast(g * e, b)

    return vjp


def _logsumexp_jvp(argnum, g, ans, a, b, axis, keepdims, return_sign):
    e, _ = _lse_weights(ans, a, b, axis, keepdims, return_sign)
    if argnum == 0:
        w = e if b is None else e * b
    else:
        w = e
    tangent = np.sum(w * g, axis=axis, keepdims=keepdims)
    if return_sign:
        return tangent, np.zeros(onp.shape(ans[1]), onp.result_type(ans[1], onp.float16))
    return tangent


defvjp(_logsumexp, lambda ans, *args: _logsumexp_vjp(0, ans, *args),
       lambda ans, *args: _logsumexp_vjp(1, ans, *args), None, None, None)
defjvp(_logsumexp, lambda g, ans, *args: _logsumexp_jvp(0, g, ans, *args),
       lambda g, ans, *args: _logsumexp_jvp(1, g, ans, *args), None, None, None)
defprimitive(_logsumexp, native="logsumexp")


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a), axis))`` without overflow, as in scipy.

    Parameters
    ----------
    a : array_like
        Exponents; ``-inf`` entries contribute nothing (and get zero gradient).
    axis : None, int or tuple of ints
        Axes summed over (all by default).
    b : array_like, optional
        Weights broadcast against ``a``; differentiable too.
    keepdims : bool
        Keep the reduced axes with size one.
    return_sign : bool
        If true, return ``(log|sum|, sign(sum))`` so negative weights work.

    Returns
    -------
    lse : array, or ``(lse, sign)`` with ``return_sign``.
        A slice whose sum is zero gives ``-inf`` with zero gradient.
    """
    if isinstance(axis, list):
        axis = tuple(axis)
    return _logsumexp(a, b, axis, keepdims, return_sign)


def softmax(x, axis=None):
    """``exp(x) / sum(exp(x), axis)``, computed as ``exp(x - logsumexp(x))``."""
    return np.exp(x - logsumexp(x, axis=axis, keepdims=True))


def log_softmax(x, axis=None):
    """``x - logsumexp(x, axis)``."""
    return x - logsumexp(x, axis=axis, keepdims=True)


# ------------------------------------------------------- x log y and entropies
def _xlog_partials(shift):
    """Partials of ``x * log(y + shift)`` (``shift`` 0: xlogy, 1: xlog1py) with
    the convention that ``x = 0`` gives zero gradient for every ``y``."""
    def dx(ans, x, y):
        z = y + shift
        pos = z > 0
        log_z = np.log(np.where(pos, z, 1))
        at_zero = np.where(x == 0, _const(0, x, y), _const(-onp.inf, x, y))
        return np.where(pos, log_z, np.where(z == 0, at_zero, onp.nan))

    def dy(ans, x, y):
        z = y + shift
        zero = z == 0
        ratio = x / np.where(zero, 1, z)
        at_zero = np.where(x == 0, 0.0, np.where(x > 0, _const(onp.inf, x, y), -onp.inf))
        return np.where(zero, at_zero, ratio)

    return dx, dy


xlogy = _wrap("xlogy")
xlog1py = _wrap("xlog1py")
_elementwise(xlogy, *_xlog_partials(0), native="binary:xlogy")
_elementwise(xlog1py, *_xlog_partials(1), native="binary:xlog1py")


def _entr_derivative(ans, x):
    pos = x > 0
    return np.where(pos, -np.log(np.where(pos, x, 1)) - 1, np.where(x == 0, _const(onp.inf, x), 0.0))


def _log_ratio(x, y):
    """``log(x / y)`` where both are positive; 0 elsewhere (masked by callers)."""
    both = (x > 0) & (y > 0)
    return np.log(np.where(both, x, 1)) - np.log(np.where(both, y, 1)), both


def _rel_entr_dx(ans, x, y):
    lr, both = _log_ratio(x, y)
    return np.where(both, lr + 1, np.where((x == 0) & (y > 0), _const(-onp.inf, x, y), 0.0))


def _kl_div_dx(ans, x, y):
    lr, both = _log_ratio(x, y)
    return np.where(both, lr, np.where((x == 0) & (y > 0), _const(-onp.inf, x, y), 0.0))


def _ratio(x, y):
    pos = y > 0
    return np.where(pos, x / np.where(pos, y, 1), 0.0)


entr = _wrap("entr")
rel_entr = _wrap("rel_entr")
kl_div = _wrap("kl_div")
_elementwise(entr, _entr_derivative)
_elementwise(rel_entr, _rel_entr_dx, lambda ans, x, y: -_ratio(x, y))
_elementwise(kl_div, _kl_div_dx, lambda ans, x, y: 1 - _ratio(x, y))


# --------------------------------------------------------- Bessel functions
i0, i1, i0e, i1e = (_wrap(n) for n in ("i0", "i1", "i0e", "i1e"))
iv, ive, kv, kve = (_wrap(n) for n in ("iv", "ive", "kv", "kve"))
k0, k1, k0e, k1e = (_wrap(n) for n in ("k0", "k1", "k0e", "k1e"))
j0, j1, y0, y1 = (_wrap(n) for n in ("j0", "j1", "y0", "y1"))
jv, yv, yn = (_wrap(n) for n in ("jv", "yv", "yn"))
jn = _wrap("jn", _sp.jv)

# Recurrences I'_v = (I_{v-1} + I_{v+1})/2 and friends avoid dividing by x.
_elementwise(i0, lambda ans, x: i1(x))
_elementwise(i1, lambda ans, x: 0.5 * (i0(x) + iv(2, x)))
_elementwise(i0e, lambda ans, x: i1e(x) - np.sign(x) * ans)
_elementwise(i1e, lambda ans, x: 0.5 * (i0e(x) + ive(2, x)) - np.sign(x) * ans)
_elementwise(iv, None, lambda ans, v, x: 0.5 * (iv(v - 1, x) + iv(v + 1, x)))
_elementwise(ive, None, lambda ans, v, x: 0.5 * (ive(v - 1, x) + ive(v + 1, x)) - np.sign(x) * ans)
_elementwise(k0, lambda ans, x: -k1(x))
_elementwise(k1, lambda ans, x: -0.5 * (k0(x) + kv(2, x)))
_elementwise(k0e, lambda ans, x: ans - k1e(x))
_elementwise(k1e, lambda ans, x: ans - 0.5 * (k0e(x) + kve(2, x)))
_elementwise(kv, None, lambda ans, v, x: -0.5 * (kv(v - 1, x) + kv(v + 1, x)))
_elementwise(kve, None, lambda ans, v, x: ans - 0.5 * (kve(v - 1, x) + kve(v + 1, x)))
_elementwise(j0, lambda ans, x: -j1(x))
_elementwise(j1, lambda ans, x: 0.5 * (j0(x) - jv(2, x)))
_elementwise(y0, lambda ans, x: -y1(x))
_elementwise(y1, lambda ans, x: 0.5 * (y0(x) - yv(2, x)))
for _f, _g in ((jv, jv), (jn, jn), (yv, yv), (yn, yn)):
    _elementwise(_f, None, (lambda g: lambda ans, v, x: 0.5 * (g(v - 1, x) - g(v + 1, x)))(_g))


# ------------------------------------------------- elementary, scipy flavour
log1p, expm1, exp2, cbrt = np.log1p, np.expm1, np.exp2, np.cbrt
exp10 = _wrap("exp10")
_elementwise(exp10, lambda ans, x: ans * _LOG_10)


# ===================================== incomplete gamma and beta functions
#
# Derivatives with respect to the argument x are closed-form densities. Those
# with respect to the shape parameters have no closed form; we obtain them by
# carrying Taylor coefficients through the same series and continued
# fractions that evaluate the functions (Numerical Recipes' gser/gcf/betacf),
# i.e. forward-mode differentiation of the algorithm with truncated Taylor
# arithmetic ("jets") to the order asked for. The series converge uniformly
# near the point, so the differentiated iterations converge to the
# derivatives; iteration stops once every coefficient has converged to
# double precision. A derivative of order n is a primitive whose derivative
# is the one of order n + 1, so derivatives of every order exist.

_EPS = onp.finfo(float).eps
_FPMIN = onp.finfo(float).tiny / _EPS
_MAX_ITER = 100_000


@functools.lru_cache(maxsize=None)
def _jet_layout(k, n):
    """Monomials of total degree <= n in k variables (constant first), their
    positions, and the matrix taking the outer product of two coefficient
    vectors to that of the truncated product."""
    monomials = sorted((alpha for alpha in itertools.product(range(n + 1), repeat=k) if sum(alpha) <= n),
                       key=sum)
    position = {alpha: i for i, alpha in enumerate(monomials)}
    m = len(monomials)
    product = onp.zeros((m, m * m))
    for i, p in enumerate(monomials):
        for j, q in enumerate(monomials):
            target = tuple(u + v for u, v in zip(p, q))
            if target in position:
                product[position[target], i * m + j] = 1.0
    return monomials, position, product


class _Jet:
    """A truncated Taylor series in ``k`` variables to total order ``n``, elementwise.

    ``c`` has shape ``(m,) + S``: the coefficients ``d^alpha f / alpha!`` of
    the monomials of :func:`_jet_layout` (``c[0]`` is the value). Arithmetic
    truncates at order ``n``.
    """

    __slots__ = ("c", "k", "n")
    __array_ufunc__ = None  # make ``ndarray op jet`` defer to the jet's reflected operator

    def __init__(self, c, k, n):
        self.c, self.k, self.n = c, k, n

    @staticmethod
    def variable(v, index, k, n):
        """The ``index``-th of ``k`` variables, at the values ``v``."""
        v = onp.asarray(v, float)
        monomials, position, _ = _jet_layout(k, n)
        c = onp.zeros((len(monomials),) + v.shape)
        c[0] = v
        c[position[tuple(int(i == index) for i in range(k))]] = 1.0
        return _Jet(c, k, n)

    def constant(self, v):
        """The constant ``v`` with this jet's variables and order."""
        c = onp.zeros_like(self.c)
        c[0] = v
        return _Jet(c, self.k, self.n)

    def with_value(self, v):
        """This jet with its constant term replaced by ``v``."""
        c = self.c.copy()
        c[0] = v
        return _Jet(c, self.k, self.n)

    def derivative(self, alpha):
        """``d^alpha f`` for the multi-index ``alpha``."""
        return math.prod(math.factorial(a) for a in alpha) * self.c[_jet_layout(self.k, self.n)[1][alpha]]

    def __add__(self, other):
        if isinstance(other, _Jet):
            return _Jet(self.c + other.c, self.k, self.n)
        return self.with_value(self.c[0] + other)

    __radd__ = __add__

    def __neg__(self):
        return _Jet(-self.c, self.k, self.n)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, _Jet):
            return _Jet(self.c * other, self.k, self.n)
        m = self.c.shape[0]
        outer = (self.c[:, None] * other.c[None, :]).reshape((m * m,) + self.c.shape[1:])
        return _Jet(onp.tensordot(_jet_layout(self.k, self.n)[2], outer, axes=1), self.k, self.n)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (other.reciprocal() if isinstance(other, _Jet) else 1.0 / other)

    def __rtruediv__(self, other):
        return self.reciprocal() * other

    def _compose(self, coefficients):
        """``f(self)`` from the Taylor coefficients ``f^(j)(v) / j!`` of ``f``
        at the value ``v``, j = 0..n: the sum of ``coefficients[j] h^j`` for
        ``h`` this jet less its value."""
        h = self.with_value(0.0)
        out, power = self.constant(coefficients[0]), None
        for coefficient in coefficients[1:]:
            power = h if power is None else power * h
            out = out + power * coefficient
        return out

    def reciprocal(self):
        r = 1.0 / self.c[0]  # powers of 1/v: they underflow where those of v would overflow
        return self._compose([(-r) ** j * r for j in range(self.n + 1)])

    def exp(self):
        e = onp.exp(self.c[0])
        return self._compose([e / math.factorial(j) for j in range(self.n + 1)])

    def gammaln(self):
        v = self.c[0]
        return self._compose([_sp.gammaln(v)] + [_sp.polygamma(j - 1, v) / math.factorial(j)
                                                 for j in range(1, self.n + 1)])

    def select(self, mask, other):
        """Elementwise ``where(mask, self, other)``."""
        return _Jet(onp.where(mask, self.c, other.c), self.k, self.n)

    def converged(self, total):
        """Whether this increment is negligible against ``total`` everywhere."""
        return onp.abs(self.c).sum(0) <= _EPS * onp.abs(total.c).sum(0)


def _iterate(step, state, done):
    """Run ``state, finished = step(n, state)`` for n = 1, 2, ... until every
    element has finished; finished elements keep their state."""
    for n in range(1, _MAX_ITER):
        new_state, finished = step(n, state)
        state = tuple(old.select(done, new) for new, old in zip(new_state, state))
        done = done | finished
        if done.all():
            break
    return state


def _gammainc_series(a: _Jet, x):
    """Lower regularised P(a, x) as a jet, by its power series (x < a + 1)."""
    term = a.constant(onp.ones_like(x))
    total = term

    def step(n, state):
        term, total = state
        term = term * x / (a + n)
        return (term, total + term), term.converged(total)

    _, total = _iterate(step, (term, total), onp.zeros(x.shape, bool))
    log_front = a * onp.log(x) - x - (a + 1).gammaln()
    return log_front.exp() * total


def _gammainc_cf(a: _Jet, x):
    """Upper regularised Q(a, x) as a jet, by Lentz's continued fraction (x >= a + 1)."""
    b = x + 1 - a
    c = a.constant(onp.full(x.shape, 1 / _FPMIN))
    d = b.reciprocal()
    h = d

    def step(i, state):
        b, c, d, h = state
        an = -i * (i - a)
        b = b + 2
        d = (an * d + b).reciprocal()
        c = b + an / c
        delta = d * c
        new_h = h * delta
        return (b, c, d, new_h), (new_h - h).converged(h)

    _, _, _, h = _iterate(step, (b, c, d, h), onp.zeros(x.shape, bool))
    log_front = a * onp.log(x) - x - a.gammaln()
    return log_front.exp() * h


@primitive
def gammainc_da(a, x, n=1):
    """The ``n``-th derivative (n >= 1) of :func:`gammainc` with respect to
    the shape ``a``.

    Computed by differentiating the series (x < a + 1) or continued fraction
    (x >= a + 1) that evaluates P(a, x); accurate to ~1e-13 relative for the
    first derivative. Its own derivative in ``a`` is the one of order n + 1.
    """
    dtype = _float_dtype(a, x)
    a, x = onp.broadcast_arrays(onp.asarray(a, float), onp.asarray(x, float))
    out = onp.full(a.shape, onp.nan)
    valid = (a > 0) & (x >= 0)
    out[valid & (x == 0)] = 0.0  # P(a, 0) = 0 for every a
    for use_series in (True, False):
        region = valid & (x > 0) & ((x < a + 1) if use_series else (x >= a + 1))
        if region.any():
            aj = _Jet.variable(a[region], 0, 1, n)
            jet = _gammainc_series(aj, x[region]) if use_series else -_gammainc_cf(aj, x[region])
            out[region] = jet.derivative((n,))
    return out.astype(dtype)[()]


def _exp_partials(g, p, q):
    """``d^p/da^p d^q/db^q exp(G) / exp(G)`` given ``g(i, j)``, the partial
    derivatives of G (i + j >= 1), by Leibniz's rule on ``d exp(G) = dG exp(G)``."""
    memo = {(0, 0): 1.0}

    def e(p, q):
        if (p, q) not in memo:
            if p:  # d/da of the (p-1, q) partial of G_a exp(G)
                memo[p, q] = sum(math.comb(p - 1, i) * math.comb(q, j) * g(i + 1, j) * e(p - 1 - i, q - j)
                                 for i in range(p) for j in range(q + 1))
            else:
                memo[p, q] = sum(math.comb(q - 1, j) * g(0, j + 1) * e(0, q - 1 - j) for j in range(q))
        return memo[p, q]

    return e(p, q)


def _gamma_density(a, x):
    """``x**(a-1) exp(-x) / Gamma(a)``: dP(a, x)/dx, with its limit at x = 0."""
    pos = x > 0
    safe = np.where(pos, x, 1)
    inside = np.exp((a - 1) * np.log(safe) - safe - gammaln(a))
    at_zero = np.where(a == 1, 1.0, np.where(a < 1, _const(onp.inf, a, x), 0.0))
    return np.where(pos, inside, np.where(x == 0, at_zero, 0.0))


def _gamma_density_da(a, x, n):
    """d^n/da^n of :func:`_gamma_density` (n >= 1); 0 at x <= 0."""
    pos = x > 0
    log_x = np.log(np.where(pos, x, 1))

    def g(i, j):  # partials of log density = (a - 1) log x - x - gammaln(a)
        return log_x - digamma(a) if i == 1 else -polygamma(i - 1, a)

    return np.where(pos, _gamma_density(a, x) * _exp_partials(g, n, 0), 0.0)


gammainc = _wrap("gammainc")
gammaincc = _wrap("gammaincc")
gammainc.__doc__ = """Regularised lower incomplete gamma function P(a, x).

Differentiable in ``x`` (closed form) and in ``a`` (see :func:`gammainc_da`
for the numerical method), to any order."""
gammaincc.__doc__ = "Regularised upper incomplete gamma function Q(a, x) = 1 - P(a, x); see :func:`gammainc`."
_elementwise(gammainc, lambda ans, a, x: gammainc_da(a, x), lambda ans, a, x: _gamma_density(a, x))
_elementwise(gammaincc, lambda ans, a, x: -gammainc_da(a, x), lambda ans, a, x: -_gamma_density(a, x))
_elementwise(gammainc_da, lambda ans, a, x, n=1: gammainc_da(a, x, n + 1),
             lambda ans, a, x, n=1: _gamma_density_da(a, x, n), None)


def _betacf(a: _Jet, b: _Jet, x):
    """The continued fraction of I_x(a, b) (Lentz), as a jet; x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1, a - 1

    def guard(jet):
        # Lentz's method replaces an exactly vanishing denominator by a tiny one.
        return jet.with_value(onp.where(onp.abs(jet.c[0]) < _FPMIN, _FPMIN, jet.c[0]))

    c = a.constant(onp.ones_like(x))
    d = guard(1 - qab * x / qap).reciprocal()
    h = d

    def step(m, state):
        c, d, h = state
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = guard(1 + aa * d).reciprocal()
        c = guard(1 + aa / c)
        h = h * d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = guard(1 + aa * d).reciprocal()
        c = guard(1 + aa / c)
        new_h = h * d * c
        return (c, d, new_h), (new_h - h).converged(h)

    _, _, h = _iterate(step, (c, d, h), onp.zeros(x.shape, bool))
    return h


def _betainc_jet(a: _Jet, b: _Jet, x):
    """I_x(a, b) as a jet where the continued fraction converges fast."""
    log_front = a * onp.log(x) + b * onp.log1p(-x) - (a.gammaln() + b.gammaln() - (a + b).gammaln())
    return log_front.exp() * _betacf(a, b, x) / a


@primitive
def betainc_dab(a, b, x, na, nb):
    """The derivative ``d^na/da^na d^nb/db^nb`` (na + nb >= 1) of
    :func:`betainc` with respect to its shapes.

    Computed by differentiating the continued fraction that evaluates
    I_x(a, b) (with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)). Its own
    derivatives in ``a`` and ``b`` are those of one order more.
    """
    dtype = _float_dtype(a, b, x)
    a, b, x = onp.broadcast_arrays(*(onp.asarray(v, float) for v in (a, b, x)))
    out = onp.full(a.shape, onp.nan)
    valid = (a > 0) & (b > 0) & (x >= 0) & (x <= 1)
    edge = valid & ((x == 0) | (x == 1))
    out[edge] = 0.0  # I_0 = 0 and I_1 = 1 for every shape
    direct = (a + 1) / (a + b + 2)
    for flipped in (False, True):
        region = valid & ~edge & ((x >= direct) if flipped else (x < direct))
        if not region.any():
            continue
        aj, bj = _Jet.variable(a[region], 0, 2, na + nb), _Jet.variable(b[region], 1, 2, na + nb)
        if flipped:  # I_x(a, b) = 1 - I_{1-x}(b, a): the fraction converges there
            jet = -_betainc_jet(bj, aj, 1 - x[region])
        else:
            jet = _betainc_jet(aj, bj, x[region])
        out[region] = jet.derivative((na, nb))
    return out.astype(dtype)[()]


def _beta_density(a, b, x):
    """``x**(a-1) (1-x)**(b-1) / B(a, b)``: dI_x(a, b)/dx, with its limits at 0 and 1."""
    inside = (x > 0) & (x < 1)
    safe = np.where(inside, x, 0.5)
    value = np.exp((a - 1) * np.log(safe) + (b - 1) * np.log1p(-safe) - betaln(a, b))

    def at_end(p):  # limit of the density at x = 0 (p = a) or x = 1 (p = b)
        return np.where(p == 1, np.exp(-betaln(a, b)), np.where(p < 1, _const(onp.inf, a, b, x), 0.0))

    return np.where(inside, value, np.where(x == 0, at_end(a), np.where(x == 1, at_end(b), 0.0)))


def _beta_density_dab(a, b, x, na, nb):
    """``d^na/da^na d^nb/db^nb`` of :func:`_beta_density` (na + nb >= 1); 0 at the ends."""
    inside = (x > 0) & (x < 1)
    safe = np.where(inside, x, 0.5)

    def g(i, j):  # partials of log density = (a-1) log x + (b-1) log(1-x) - betaln(a, b)
        if (i, j) == (1, 0):
            return np.log(safe) - digamma(a) + digamma(a + b)
        if (i, j) == (0, 1):
            return np.log1p(-safe) - digamma(b) + digamma(a + b)
        order = i + j - 1
        return polygamma(order, a + b) - (polygamma(order, a) if j == 0 else 0.0) \
            - (polygamma(order, b) if i == 0 else 0.0)

    return np.where(inside, _beta_density(a, b, x) * _exp_partials(g, na, nb), 0.0)


betainc = _wrap("betainc")
betaincc = _wrap("betaincc")
betainc.__doc__ = """Regularised incomplete beta function I_x(a, b).

Differentiable in ``x`` (closed form) and in ``a`` and ``b`` (see
:func:`betainc_dab` for the numerical method), to any order."""
betaincc.__doc__ = "Complement 1 - I_x(a, b) of :func:`betainc`, with the same derivatives negated."
_elementwise(betainc, lambda ans, a, b, x: betainc_dab(a, b, x, 1, 0),
             lambda ans, a, b, x: betainc_dab(a, b, x, 0, 1),
             lambda ans, a, b, x: _beta_density(a, b, x))
_elementwise(betaincc, lambda ans, a, b, x: -betainc_dab(a, b, x, 1, 0),
             lambda ans, a, b, x: -betainc_dab(a, b, x, 0, 1),
             lambda ans, a, b, x: -_beta_density(a, b, x))
_elementwise(betainc_dab, lambda ans, a, b, x, na, nb: betainc_dab(a, b, x, na + 1, nb),
             lambda ans, a, b, x, na, nb: betainc_dab(a, b, x, na, nb + 1),
             lambda ans, a, b, x, na, nb: _beta_density_dab(a, b, x, na, nb), None, None)
