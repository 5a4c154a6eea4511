"""Derivatives of every differentiable function in ``probad.ad.numpy``.

Each case in ``CASES`` is a function of numpy arrays written with
``probad.ad.numpy``. For each one we check that

- evaluated on traced arguments it gives numpy's own result (composites are
  re-implementations, so this matters), and
- its derivatives match finite differences in forward and reverse mode, up to
  second order (``check_grads(..., modes=["fwd", "rev"], order=2)``).

Case ids start with the numpy name they exercise; ``test_every_function_has_a_case``
makes sure no differentiable name is left out.
"""
import types

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import deriv, elementwise_grad, grad, make_jvp, make_vjp
from probad.ad.numpy import numpy_wrapper
from probad.ad.test_util import check_grads
from probad.ad.tracer import Box, primitive

R = onp.random.RandomState(0)


def randn(*shape):
    return R.randn(*shape)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape)


def unit(*shape):
    return R.uniform(-0.9, 0.9, shape)


def cplx(*shape):
    return R.randn(*shape) + 1j * R.randn(*shape)


CASES = []


def case(name, fun, *args, values=True):
    """Register ``fun(*args)`` under ``name`` (``values=False``: the traced result
    may legitimately differ from numpy's, e.g. ``partition``)."""
    CASES.append(pytest.param(fun, args, values, id=f"{name}-{sum(1 for c in CASES if c.id.split('-')[0] == name)}"))


# ------------------------------------------------------------ elementwise
UNARY = {  # name: (input sampler, also test complex inputs)
    "exp": (randn, True), "exp2": (randn, True), "expm1": (randn, True), "log": (pos, True),
    "log2": (pos, True), "log10": (pos, True), "log1p": (pos, True), "sin": (randn, True),
    "cos": (randn, True), "tan": (unit, True), "arcsin": (unit, True), "arccos": (unit, True),
    "arctan": (randn, True), "sinh": (randn, True), "cosh": (randn, True), "tanh": (randn, True),
    "arcsinh": (randn, True), "arccosh": (lambda *s: 1 + pos(*s), True), "arctanh": (unit, True),
    "square": (randn, True), "reciprocal": (pos, True), "sqrt": (pos, True), "cbrt": (pos, False),
    "deg2rad": (randn, False), "rad2deg": (randn, False), "radians": (randn, False),
    "degrees": (randn, False), "sinc": (randn, True), "fabs": (randn, False), "negative": (randn, True),
    "positive": (randn, True), "abs": (randn, True), "absolute": (randn, True), "conj": (cplx, True),
    "conjugate": (cplx, True), "real": (cplx, True), "imag": (cplx, True), "angle": (cplx, True),
    "nan_to_num": (randn, True), "real_if_close": (cplx, False), "acos": (unit, False),
    "asin": (unit, False), "atan": (randn, False), "acosh": (lambda *s: 1 + pos(*s), False),
    "asinh": (randn, False), "atanh": (unit, False),
}
for _name, (_sample, _complex) in UNARY.items():
    _f = getattr(np, _name)
    case(_name, lambda x, f=_f: f(x), _sample(3))
    case(_name, lambda x, f=_f: f(x), _sample(2, 3))
    case(_name, lambda x, f=_f: f(x), onp.asarray(_sample()).item())  # a Python scalar
    case(_name, lambda x, f=_f: f(x), onp.asarray(_sample()))  # a 0-d array
    if _complex:
        case(_name, lambda x, f=_f: f(x), cplx(3) * 0.5 + (1.5 if _name == "arccosh" else 0.0))
case("real", lambda x: np.real(x), randn(3))
case("imag", lambda x: np.imag(x), randn(3))
case("angle", lambda x: np.angle(x), randn(3))
case("modf", lambda x: np.modf(x), randn(4) * 3)
case("modf", lambda x: np.modf(x)[0] * np.modf(x)[1], randn(4) * 3)
case("frexp", lambda x: np.frexp(x), randn(4) * 10)
case("frexp", lambda x: np.frexp(x)[0] ** 2, randn(2, 2) * 10)

BINARY = {  # name: (sampler for x, sampler for y)
    "add": (randn, randn), "subtract": (randn, randn), "multiply": (randn, randn),
    "divide": (randn, pos), "true_divide": (randn, pos), "power": (pos, randn), "pow": (pos, randn),
    "float_power": (pos, randn), "maximum": (randn, randn), "minimum": (randn, randn),
    "fmax": (randn, randn), "fmin": (randn, randn), "logaddexp": (randn, randn),
    "logaddexp2": (randn, randn), "mod": (lambda *s: 10 * randn(*s), pos),
    "remainder": (lambda *s: 10 * randn(*s), pos), "fmod": (lambda *s: 10 * randn(*s), pos),
    "hypot": (randn, randn), "arctan2": (randn, randn), "atan2": (randn, randn),
}
for _name, (_sx, _sy) in BINARY.items():
    _f = getattr(np, _name)
    for _shape_x, _shape_y in [((3,), (3,)), ((3,), (2, 3)), ((2, 1), (1, 3)), ((), (3,)), ((2, 3), ()),
                               ((1,), (3, 1)), ((2, 0), (0,))]:
        case(_name, lambda x, y, f=_f: f(x, y), _sx(*_shape_x), _sy(*_shape_y))
    case(_name, lambda x, f=_f, y=float(_sy()): f(x, y), _sx(3))
    case(_name, lambda y, f=_f, x=float(_sx()): f(x, y), _sy(3))
for _name in ["add", "subtract", "multiply", "divide", "power"]:
    _f = getattr(np, _name)
    case(_name, lambda x, y, f=_f: f(x, y), cplx(3) + 2, cplx(2, 3))
    case(_name, lambda x, y, f=_f: f(x, y), pos(3), cplx(2, 3))
case("power", lambda x: x ** 2, randn(3))
case("power", lambda x: x ** 3.5, pos(3))
case("power", lambda x: np.power(x, 0.5), pos(3))
case("power", lambda x: x ** 1, randn(3))
case("power", lambda y: 2.0 ** y, randn(3))
case("copysign", lambda x, y: np.copysign(x, y), randn(4), randn(4))
case("copysign", lambda x: np.copysign(x, -1.0), randn(2, 2))
case("ldexp", lambda x: np.ldexp(x, onp.array([1, -2, 3])), randn(3))

# Arithmetic through the operators of traced arrays.
case("operators", lambda x, y: (x + y) * (x - y) / (1 + y * y) - (-x) ** 2 + abs(y) @ x, randn(3), randn(3))
case("operators", lambda x, y: 2.0 - x + 3.0 * y / 4.0 % 5 + 1 / x + 2 ** y + onp.ones(3) @ x, pos(3), randn(3))
case("operators", lambda x: onp.arange(3.0) * x + onp.arange(3.0) / x - onp.ones(3) - x, pos(3))
case("operators", lambda x: x.T @ x + x.sum(axis=0).mean() + x.reshape(6).prod() + x.reshape(3, 2).var(),
     randn(2, 3))
case("operators", lambda x: x.max() + x.min(axis=0) + x.std() + x.cumsum(1) + x.cumprod() [-1]
     + x.ravel().dot(x.flatten()) + x.squeeze() + x.transpose(1, 0).T + x.swapaxes(0, 1).T
     + x.clip(-0.5, 0.5) + x.diagonal().sum() + x.trace() + x.repeat(1, axis=0) + x.copy()
     + x.astype(float) + x.conj().real + x.imag + x.round(), randn(2, 3))

# ------------------------------------------------------------- reductions
X3 = randn(2, 3, 4)
for _name in ["sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "ptp", "median",
              "nansum", "nanmean", "nanvar", "nanstd", "nanmax", "nanmin", "nanprod", "nanmedian"]:
    _f = getattr(np, _name)
    case(_name, lambda x, f=_f: f(x), X3)
    case(_name, lambda x, f=_f: f(x), randn(5))
    case(_name, lambda x, f=_f: f(x, axis=1), X3)
    case(_name, lambda x, f=_f: f(x, axis=-1, keepdims=True), X3)
    case(_name, lambda x, f=_f: f(x, axis=(0, 2)), X3)
    case(_name, lambda x, f=_f: f(x, axis=0), randn(1, 3))
    if _name not in ("ptp",):
        case(_name, lambda x, f=_f: f(x), onp.array(1.3))
for _name in ["sum", "mean", "var", "std", "prod"]:
    case(_name, lambda x, f=getattr(np, _name): f(x, axis=1), cplx(2, 3))
for _name in ["var", "std", "nanvar", "nanstd"]:
    case(_name, lambda x, f=getattr(np, _name): f(x, axis=0, ddof=1), randn(4, 2))
case("sum", lambda x: np.sum(x, axis=1, where=onp.array([True, False, True])), randn(2, 3))
case("sum", lambda x: np.sum(x, dtype=onp.float64, initial=2.0), randn(2, 3))
case("sum", lambda x: np.sum(x, axis=0), randn(0, 3))
case("mean", lambda x: np.mean(x, axis=1), randn(0, 3))
case("prod", lambda x: np.prod(x, axis=1, keepdims=True), randn(2, 0))
case("max", lambda x: np.max(x, axis=1), randn(0, 3))
case("mean", lambda x: np.mean(x, axis=1, where=onp.array([True, False, True])), randn(2, 3))
case("var", lambda x: np.var(x, axis=1, where=onp.array([True, False, True, True])), randn(2, 4))
case("std", lambda x: np.std(x, axis=1, correction=1, where=onp.array([True, False, True, True])), randn(2, 4))
case("max", lambda x: np.max(x, axis=0, initial=0.0, where=onp.array([True, False, True])), randn(2, 3))
case("max", lambda x: np.max(x, initial=10.0), randn(2, 3))
case("prod", lambda x: np.prod(x, axis=1, where=onp.array([True, False, True]), initial=2.0), randn(2, 3))
case("prod", lambda x: np.prod(x), onp.array([1.5, 0.0, -2.0, 0.7]))
case("prod", lambda x: np.prod(x, axis=0), onp.array([[1.5, 0.0], [0.0, 2.0], [3.0, 4.0]]))
_WITH_NAN = onp.array([[0.3, onp.nan, -1.2, 0.8], [onp.nan, onp.nan, onp.nan, onp.nan], [1.0, 2.0, onp.nan, -0.5]])
for _name in ["nansum", "nanmean", "nanvar", "nanstd", "nanmax", "nanmin", "nanprod", "nanmedian", "nancumsum",
              "nancumprod"]:
    case(_name, lambda x, f=getattr(np, _name): f(x[[0, 2]], axis=1), _WITH_NAN)
    case(_name, lambda x, f=getattr(np, _name): f(x[[0, 2]]), _WITH_NAN)
case("nanpercentile", lambda x: np.nanpercentile(x[[0, 2]], [10.0, 65.0], axis=1), _WITH_NAN)
case("nanquantile", lambda x: np.nanquantile(x[[0, 2]], 0.3, axis=1, keepdims=True), _WITH_NAN)
case("nanquantile", lambda x: np.nanquantile(x[[0, 2]], 0.3, axis=0), _WITH_NAN)
case("nancumsum", lambda x: np.nancumsum(x, axis=0), randn(3, 2))
case("nancumprod", lambda x: np.nancumprod(x, axis=1), randn(3, 2))
case("average", lambda x: np.average(x), X3)
case("average", lambda x: np.average(x, axis=1, keepdims=True), X3)
case("average", lambda x, w: np.average(x, axis=1, weights=w), X3, pos(3))
case("average", lambda x, w: np.average(x, axis=(0, 2), weights=w, returned=True), X3, pos(2, 4))
case("average", lambda x, w: np.average(x, weights=w), X3, pos(2, 3, 4))
case("average", lambda w, x: np.average(x, axis=-1, weights=w), pos(4), X3)
for _method in ["linear", "lower", "higher", "nearest", "midpoint", "hazen", "weibull", "median_unbiased",
                "normal_unbiased", "inverted_cdf", "averaged_inverted_cdf", "closest_observation",
                "interpolated_inverted_cdf"]:
    case("quantile", lambda x, m=_method: np.quantile(x, [0.03, 0.2, 0.37, 0.55, 0.8, 0.99], method=m), randn(9))
    case("quantile", lambda x, m=_method: np.quantile(x, 0.41, axis=0, method=m), randn(7, 2))
case("quantile", lambda x: np.quantile(x, onp.array([[0.2, 0.7], [0.4, 0.9]]), axis=(1, 2)), X3)
case("quantile", lambda x: np.quantile(x, 0.3, axis=1, keepdims=True), X3)
case("quantile", lambda q, x: np.quantile(x, q), onp.array([0.23, 0.61]), randn(6))
case("percentile", lambda x: np.percentile(x, [12.5, 50.0, 99.0], axis=-1), X3)
case("percentile", lambda x: np.percentile(x, 30.0, method="nearest"), randn(10))
case("median", lambda x: np.median(x, axis=(0, 1), keepdims=True), X3)
case("cumsum", lambda x: np.cumsum(x), randn(2, 3))
case("cumsum", lambda x: np.cumsum(x, axis=1), randn(2, 3))
case("cumsum", lambda x: np.cumsum(x, axis=-3), X3)
case("cumprod", lambda x: np.cumprod(x), randn(2, 3))
case("cumprod", lambda x: np.cumprod(x, axis=0), randn(5, 2))
case("cumprod", lambda x: np.cumprod(x, axis=1), pos(2, 13))
case("cumprod", lambda x: np.cumprod(x), onp.array([1.5, 0.0, -2.0, 0.0, 0.7, 1.2]))
case("cumprod", lambda x: np.cumprod(x, axis=1), cplx(2, 3))
case("cumulative_sum", lambda x: np.cumulative_sum(x, axis=1, include_initial=True), randn(2, 3))
case("cumulative_sum", lambda x: np.cumulative_sum(x), randn(4))
case("cumulative_prod", lambda x: np.cumulative_prod(x, axis=0, include_initial=True), randn(3, 2))
case("cumulative_prod", lambda x: np.cumulative_prod(x), randn(4))

# ------------------------------------------------------- shape and layout
case("reshape", lambda x: np.reshape(x, (3, -1)), X3)
case("reshape", lambda x: np.reshape(x, (4, 6), order="F"), X3)
case("reshape", lambda x: x.reshape(4, 6), X3)
case("ravel", lambda x: np.ravel(x), X3)
case("ravel", lambda x: np.ravel(x, order="F"), X3)
case("squeeze", lambda x: np.squeeze(x), randn(1, 3, 1))
case("squeeze", lambda x: np.squeeze(x, axis=2), randn(1, 3, 1))
case("expand_dims", lambda x: np.expand_dims(x, 1), randn(2, 3))
case("expand_dims", lambda x: np.expand_dims(x, (0, -1)), randn(2, 3))
case("transpose", lambda x: np.transpose(x), X3)
case("transpose", lambda x: np.transpose(x, (1, -1, 0)), X3)
case("permute_dims", lambda x: np.permute_dims(x, (2, 0, 1)), X3)
case("matrix_transpose", lambda x: np.matrix_transpose(x), X3)
case("swapaxes", lambda x: np.swapaxes(x, 0, -1), X3)
case("moveaxis", lambda x: np.moveaxis(x, 0, -1), X3)
case("moveaxis", lambda x: np.moveaxis(x, (0, 1), (2, 0)), X3)
case("rollaxis", lambda x: np.rollaxis(x, 2), X3)
case("rollaxis", lambda x: np.rollaxis(x, 0, 3), X3)
case("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)), randn(3, 1))
case("broadcast_to", lambda x: np.broadcast_to(x, (2, 3)), 1.5)
case("broadcast_arrays", lambda x, y: np.broadcast_arrays(x, y), randn(3, 1), randn(2))
case("flip", lambda x: np.flip(x), X3)
case("flip", lambda x: np.flip(x, axis=(0, 2)), X3)
case("fliplr", lambda x: np.fliplr(x), randn(2, 3))
case("flipud", lambda x: np.flipud(x), randn(2, 3))
case("roll", lambda x: np.roll(x, 2), X3)
case("roll", lambda x: np.roll(x, (1, -2), axis=(0, 2)), X3)
case("rot90", lambda x: np.rot90(x), randn(2, 3))
case("rot90", lambda x: np.rot90(x, 3, axes=(2, 0)), X3)
case("tril", lambda x: np.tril(x), randn(3, 4))
case("tril", lambda x: np.tril(x, -1), X3)
case("tril", lambda x: np.tril(x, 1), randn(3))
case("triu", lambda x: np.triu(x, 1), randn(3, 4))
case("triu", lambda x: np.triu(x), X3)
case("diagonal", lambda x: np.diagonal(x), randn(3, 4))
case("diagonal", lambda x: np.diagonal(x, 1, 0, 2), X3)
case("diagonal", lambda x: np.diagonal(x, -1, -1, 1), X3)
case("diag", lambda x: np.diag(x), randn(3))
case("diag", lambda x: np.diag(x, -2), randn(3))
case("diag", lambda x: np.diag(x, 1), randn(3, 4))
case("diagflat", lambda x: np.diagflat(x, 1), randn(2, 2))
case("trace", lambda x: np.trace(x), randn(3, 4))
case("trace", lambda x: np.trace(x, 1, 0, 2), X3)
case("repeat", lambda x: np.repeat(x, 2), randn(2, 3))
case("repeat", lambda x: np.repeat(x, [1, 0, 3], axis=1), randn(2, 3))
case("tile", lambda x: np.tile(x, 2), randn(2, 3))
case("tile", lambda x: np.tile(x, (2, 1, 2)), randn(2, 3))
case("resize", lambda x: np.resize(x, (4, 4)), randn(2, 3))
case("delete", lambda x: np.delete(x, [0, 2], axis=1), randn(2, 4))
case("delete", lambda x: np.delete(x, 3), randn(2, 4))
case("insert", lambda x, v: np.insert(x, 1, v, axis=1), randn(2, 3), randn(2))
case("insert", lambda x, v: np.insert(x, [0, 2, 2], v), randn(4), randn(3))
case("insert", lambda v, x: np.insert(x, 2, v, axis=0), randn(), randn(3, 2))
for _mode in ["constant", "edge", "reflect", "symmetric", "wrap"]:
    case("pad", lambda x, m=_mode: np.pad(x, ((1, 2), (3, 0)), mode=m), randn(3, 4))
case("pad", lambda x: np.pad(x, 2), randn(3))
case("pad", lambda x, c: np.pad(x, 1, constant_values=c), randn(2, 2), randn())
case("pad", lambda x, c: np.pad(x, ((1, 0), (0, 2)), constant_values=c), randn(2, 2), randn(2, 2))
case("take", lambda x: np.take(x, [2, 0, 2]), randn(2, 3))
case("take", lambda x: np.take(x, onp.array([[1, 0], [1, 1]]), axis=1), randn(2, 3))
case("take", lambda x: np.take(x, [5, -1], axis=0, mode="wrap"), randn(3))
case("take", lambda x: np.take(x, [5, -1], axis=0, mode="clip"), randn(3))
case("take_along_axis", lambda x: np.take_along_axis(x, onp.array([[2, 0, 0], [1, 1, 2]]), axis=1), randn(2, 3))
case("take_along_axis", lambda x: np.take_along_axis(x, onp.array([[1], [0], [1]]), axis=0), randn(3, 2))
case("take_along_axis", lambda x: np.take_along_axis(x, onp.array([3, 0, 0]), axis=None), randn(2, 2))
case("compress", lambda x: np.compress([True, False, True], x, axis=1), randn(2, 3))
case("compress", lambda x: np.compress([False, True], x), randn(2, 3))
case("extract", lambda x: np.extract(onp.array([[True, False, True], [False, False, True]]), x), randn(2, 3))
case("choose", lambda x, y: np.choose(onp.array([0, 1, 1, 0]), [x, y]), randn(4), randn(4))
case("choose", lambda x, y: np.choose(onp.array([[0, 3], [1, 2]]), [x, y, x * 2, y], mode="clip"),
     randn(2), randn(2, 2))
case("trim_zeros", lambda x: np.trim_zeros(x * onp.array([0, 0, 1, 1, 0])), pos(5))
case("trim_zeros", lambda x: np.trim_zeros(x * onp.array([0, 1, 1, 0]), trim="f"), pos(4))
case("trim_zeros", lambda x: np.trim_zeros(x * onp.array([[0, 0, 0], [0, 1, 0], [0, 1, 1]])), pos(3, 3))
case("sort", lambda x: np.sort(x), randn(5))
case("sort", lambda x: np.sort(x, axis=0), X3)
case("sort", lambda x: np.sort(x, axis=None), randn(2, 3))
case("sort", lambda x: np.sort(x), cplx(4))
case("sort_complex", lambda x: np.sort_complex(x), randn(4))
case("sort_complex", lambda x: np.sort_complex(x), cplx(4))
case("partition", lambda x: np.partition(x, 2)[2], randn(6))
case("partition", lambda x: np.partition(x, 1, axis=0)[1], randn(4, 3))
case("partition", lambda x: np.sort(np.partition(x, (1, 3))), randn(6))
case("partition", lambda x: np.partition(x, 1, axis=0), randn(4, 3), values=False)
case("unstack", lambda x: np.unstack(x, axis=1), randn(2, 3))

# ------------------------------------------------------- joining, splitting
case("concatenate", lambda x, y: np.concatenate([x, y]), randn(2, 3), randn(1, 3))
case("concatenate", lambda x, y: np.concatenate([x, onp.ones((2, 1)), y], axis=-1), randn(2, 3), randn(2, 2))
case("concatenate", lambda x, y: np.concatenate((x, y), axis=None), randn(2, 3), randn(4))
case("concat", lambda x, y: np.concat([x, y], axis=1), randn(2, 3), randn(2, 1))
case("concatenate", lambda x, y: np.concatenate([x, y]), randn(0, 2), randn(3, 2))
case("stack", lambda x, y: np.stack([x, y]), randn(2, 3), randn(2, 3))
case("stack", lambda x, y: np.stack([x, onp.ones((2, 3)), y], axis=-1), randn(2, 3), randn(2, 3))
case("hstack", lambda x, y: np.hstack([x, y]), randn(3), randn(2))
case("hstack", lambda x, y: np.hstack((x, y)), randn(2, 3), randn(2, 1))
case("vstack", lambda x, y: np.vstack([x, y]), randn(3), randn(2, 3))
case("row_stack", lambda x, y: np.row_stack([x, y]), randn(3), randn(3))
case("dstack", lambda x, y: np.dstack([x, y]), randn(3), randn(1, 3))
case("column_stack", lambda x, y: np.column_stack([x, y]), randn(3), randn(3, 2))
case("append", lambda x, y: np.append(x, y), randn(2, 2), randn(3))
case("append", lambda x, y: np.append(x, y, axis=0), randn(2, 2), randn(1, 2))
case("block", lambda x, y: np.block([[x, y], [y, x]]), randn(2, 2), randn(2, 2))
case("block", lambda x, y: np.block([x, y, 1.0]), randn(2), randn(3))
case("block", lambda x, y: np.block([[[x]], [[y]]]), randn(2, 2), randn(2, 2))
case("split", lambda x: np.split(x, 3), randn(6))
case("split", lambda x: np.split(x, [1, 3], axis=1), randn(2, 4))
case("array_split", lambda x: np.array_split(x, 3, axis=1), randn(2, 4))
case("hsplit", lambda x: np.hsplit(x, 2), randn(2, 4))
case("vsplit", lambda x: np.vsplit(x, [1]), randn(3, 2))
case("dsplit", lambda x: np.dsplit(x, 2), X3)
case("atleast_1d", lambda x: np.atleast_1d(x), 1.5)
case("atleast_1d", lambda x, y: np.atleast_1d(x, y), onp.array(1.5), randn(2, 2))
case("atleast_2d", lambda x: np.atleast_2d(x), randn(3))
case("atleast_2d", lambda x, y: np.atleast_2d(x, y), 1.5, randn(2, 2))
case("atleast_3d", lambda x: np.atleast_3d(x), randn(3))
case("atleast_3d", lambda x, y: np.atleast_3d(x, y), randn(2, 3), 2.0)
case("meshgrid", lambda x, y: np.meshgrid(x, y), randn(3), randn(2))
case("meshgrid", lambda x, y, z: np.meshgrid(x, y, z, indexing="ij"), randn(3), randn(2), randn(2))
case("meshgrid", lambda x, y: np.meshgrid(x, y, sparse=True), randn(3), randn(2))

# ---------------------------------------------------------- creation, casts
case("array", lambda x, y: np.array([x, y, 1.0]), randn(), randn())
case("array", lambda x, y: np.array([[x, 2.0], [y, x * y]]), randn(), randn())
case("array", lambda x: np.array(x, ndmin=3), randn(2))
case("asarray", lambda x, y: np.asarray([x, y]), randn(2), randn(2))
case("asanyarray", lambda x: np.asanyarray(x), randn(2))
case("ascontiguousarray", lambda x: np.ascontiguousarray(x), randn(2))
case("asfortranarray", lambda x: np.asfortranarray(x), randn(2, 2))
case("asarray_chkfinite", lambda x: np.asarray_chkfinite(x), randn(2, 2))
case("require", lambda x: np.require(x, requirements="C"), randn(2, 2))
case("copy", lambda x: np.copy(x), randn(2, 2))
case("astype", lambda x: np.astype(x, onp.complex128), randn(3))
case("astype", lambda x: np.astype(x * 2, onp.float64), randn(3))
case("astype", lambda x: x.astype(onp.complex128) * 1j, randn(3))
case("astype_", lambda x: np.astype_(x, onp.complex128), randn(3))
case("astype_float", lambda x: np.astype_float(x, onp.complex128), randn(3))
case("full", lambda x: np.full((2, 3), x), randn())
case("full", lambda x: np.full(3, x, dtype=onp.complex128), randn())
case("full_like", lambda x, y: np.full_like(y, x), randn(), randn(2, 2))
case("full_like", lambda x: np.full_like(x, 2.0), randn(2, 2))
case("linspace", lambda a, b: np.linspace(a, b, 5), randn(), randn())
case("linspace", lambda a, b: np.linspace(a, b, 4, endpoint=False, retstep=True), randn(), randn())
case("linspace", lambda a, b: np.linspace(a, b, 3, axis=-1), randn(2), randn(3, 1))
case("linspace", lambda b: np.linspace(0.0, b, 1), randn())
case("logspace", lambda a, b: np.logspace(a, b, 4), randn(), randn())
case("logspace", lambda a, base: np.logspace(a, 1.0, 4, base=base), randn(), pos())
case("geomspace", lambda a, b: np.geomspace(a, b, 5), pos(), pos())
case("geomspace", lambda a, b: np.geomspace(-a, -b, 4, endpoint=False), pos(2), pos(2))

# --------------------------------------------------------------- selection
case("where", lambda c, x, y: np.where(c > 0, x, y), randn(3), randn(2, 3), randn(3))
case("where", lambda x: np.where(x > 0, x, 0.0), randn(2, 3))
case("where", lambda x: np.where(x > 0, 1.0, x * 2), randn(2, 3))
case("where3", lambda x, y: np.where3(onp.array([True, False]), x, y), randn(2), randn(2))
case("select", lambda x, y: np.select([x > 0, y > 0], [x, y], default=x * y), randn(4), randn(4))
case("select", lambda x: np.select([x > 0], [x ** 2]), randn(4))
case("piecewise", lambda x: np.piecewise(x, [x < 0, x >= 0], [lambda v: v ** 2, lambda v: np.sin(v)]), randn(5))
case("piecewise", lambda x: np.piecewise(x, [x < -0.5, x > 0.5], [lambda v: -v, 1.0, lambda v: v * 3]), randn(6))
case("piecewise", lambda x: np.piecewise(x, [x > 0], [lambda v: np.log(v), 0.0]), randn(2, 3))
case("piecewise", lambda x: np.piecewise(x, x > 0, [lambda v: np.log(v), 0.0]), randn(4))
case("clip", lambda x: np.clip(x, -0.5, 0.5), randn(2, 3))
case("clip", lambda x, lo, hi: np.clip(x, lo, hi), randn(2, 3), randn(3) - 0.5, randn(2, 1) + 0.5)
case("clip", lambda x, hi: np.clip(x, None, hi), randn(4), randn(4))
case("clip", lambda x, lo: np.clip(x, min=lo), randn(4), randn())
case("clip", lambda x, lo, hi: np.clip(x, lo, hi), randn(4), randn(4) + 1, randn(4) - 1)
case("divmod", lambda x, y: np.divmod(x, y), randn(3) * 5, pos(3))

# ------------------------------------------------------------ differences
case("diff", lambda x: np.diff(x), randn(5))
case("diff", lambda x: np.diff(x, n=2, axis=0), X3)
case("diff", lambda x, p: np.diff(x, prepend=p, append=0.5), randn(4), randn())
case("diff", lambda x, p: np.diff(x, axis=0, prepend=p), randn(3, 2), randn(1, 2))
case("ediff1d", lambda x, e: np.ediff1d(x, to_end=e, to_begin=[1.0, 2.0]), randn(2, 3), randn(2))
case("gradient", lambda f: np.gradient(f), randn(6))
case("gradient", lambda f: np.gradient(f, 0.3, edge_order=2), randn(6))
case("gradient", lambda f: np.gradient(f, axis=1), randn(3, 4))
case("gradient", lambda f: np.gradient(f, 2.0, onp.array([0.0, 0.5, 1.5, 1.7])), randn(3, 4))
case("gradient", lambda f, x: np.gradient(f, x, edge_order=2), randn(5), onp.cumsum(pos(5)))
case("gradient", lambda f, x: np.gradient(f, x, axis=0), randn(4, 2), onp.cumsum(pos(4)))
case("unwrap", lambda p: np.unwrap(p), onp.cumsum(randn(8) * 2.5))
case("unwrap", lambda p: np.unwrap(p, axis=0, period=4.0), onp.cumsum(randn(6, 2) * 2, axis=0))
case("interp", lambda x, xp, fp: np.interp(x, xp, fp), R.uniform(-0.5, 4.5, 7), onp.cumsum(pos(5)) - 0.5, randn(5))
case("interp", lambda x, fp: np.interp(x, onp.array([0.0, 1.0, 2.0]), fp, left=-3.0, right=fp[0]),
     onp.array([-1.0, 0.3, 1.7, 1.99, 2.5]), randn(3))
case("interp", lambda x, fp: np.interp(x, onp.array([0.0, 1.0, 2.5]), fp, period=3.0), randn(4) * 5, randn(3))
case("interp", lambda x, fp: np.interp(x, onp.array([1.0]), fp), onp.array([0.5, 1.5]), randn(1))
case("interp", lambda x, fp: np.interp(x, onp.array([0.0, 1.0, 2.0]), fp), randn(4), cplx(3))
case("trapezoid", lambda y: np.trapezoid(y), randn(5))
case("trapezoid", lambda y, x: np.trapezoid(y, x, axis=0), randn(4, 2), onp.cumsum(pos(4)))
case("trapezoid", lambda y: np.trapezoid(y, dx=0.3, axis=1), randn(2, 3))
case("trapezoid", lambda y, x: np.trapezoid(y, x), randn(2, 3), onp.cumsum(pos(2, 3), axis=1))
case("bincount", lambda w: np.bincount(onp.array([0, 3, 3, 1]), weights=w), randn(4))
case("bincount", lambda w: np.bincount(onp.array([0, 2]), w, minlength=5), randn(2))
case("cov", lambda m: np.cov(m), randn(3, 5))
case("cov", lambda m, y: np.cov(m, y, rowvar=False, bias=True), randn(5, 2), randn(5))
case("cov", lambda m, w: np.cov(m, aweights=w, ddof=2), randn(2, 5), pos(5))
case("cov", lambda m, w: np.cov(m, fweights=onp.array([1, 2, 1, 3, 1]), aweights=w), randn(2, 5), pos(5))
case("cov", lambda m: np.cov(m), randn(4))
case("cov", lambda m: np.cov(m, fweights=onp.array([1, 2, 1, 3])), randn(2, 4))
case("corrcoef", lambda x: np.corrcoef(x), randn(3, 6))
case("corrcoef", lambda x, y: np.corrcoef(x, y), randn(6), randn(6))
case("corrcoef", lambda x: np.corrcoef(x), cplx(2, 5))

# ---------------------------------------------------------------- products
for _sa, _sb in [((), ()), ((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (3,)), ((2, 3), (4, 3, 2)), ((2, 2, 3), (1, 3, 2))]:
    case("dot", lambda a, b: np.dot(a, b), randn(*_sa), randn(*_sb))
    if _sa and _sb:
        case("matmul", lambda a, b: np.matmul(a, b), randn(*_sa), randn(*_sb))
        case("inner", lambda a, b: np.inner(a, b), randn(*_sa), randn(*(_sb[:-1] + _sa[-1:])))
case("dot", lambda a, b: np.dot(a, b), cplx(2, 3), cplx(3))
case("matmul", lambda a, b: a @ b, randn(5, 1, 2, 3), randn(4, 3, 2))
case("matmul", lambda a, b: np.matmul(a, b), cplx(2, 3), randn(3, 2))
case("matmul", lambda a, b: np.matmul(a, b), randn(3), randn(2, 3, 4))
case("tensordot", lambda a, b: np.tensordot(a, b), randn(2, 3, 4), randn(3, 4, 2))
case("tensordot", lambda a, b: np.tensordot(a, b, axes=0), randn(2), randn(3))
case("tensordot", lambda a, b: np.tensordot(a, b, axes=1), randn(2, 3), randn(3, 2))
case("tensordot", lambda a, b: np.tensordot(a, b, axes=([2, 0], [0, -1])), X3, randn(4, 3, 2))
case("tensordot", lambda a, b: np.tensordot(a, b, axes=(1, 0)), cplx(2, 3), cplx(3))
case("outer", lambda a, b: np.outer(a, b), randn(3), randn(2, 2))
case("outer", lambda a, b: np.outer(a, b), cplx(2), randn(3))
case("inner", lambda a, b: np.inner(a, b), randn(), randn(2, 3))
case("inner", lambda a, b: np.inner(a, b), cplx(2, 3), cplx(3))
case("vdot", lambda a, b: np.vdot(a, b), randn(2, 3), randn(6))
case("vdot", lambda a, b: np.vdot(a, b), cplx(3), cplx(3))
case("vecdot", lambda a, b: np.vecdot(a, b), randn(2, 3), randn(3))
case("vecdot", lambda a, b: np.vecdot(a, b, axis=0), cplx(3, 2), cplx(3, 1))
case("matvec", lambda a, b: np.matvec(a, b), randn(2, 3, 4), randn(4))
case("vecmat", lambda a, b: np.vecmat(a, b), cplx(3), randn(2, 3, 4))
case("kron", lambda a, b: np.kron(a, b), randn(2, 3), randn(3, 2))
case("kron", lambda a, b: np.kron(a, b), randn(2), randn(2, 3))
case("kron", lambda a, b: np.kron(a, b), randn(), randn(3))
case("cross", lambda a, b: np.cross(a, b), randn(3), randn(3))
case("cross", lambda a, b: np.cross(a, b), randn(4, 3), randn(3))
case("cross", lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0), randn(3, 2), randn(2, 3))
case("cross", lambda a, b: np.cross(a, b, axis=0), randn(3, 2), randn(3, 2))
for _subs, _shapes in [
        ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]), ("ii", [(3, 3)]),
        ("iji->j", [(2, 3, 2)]), ("ij->", [(2, 3)]), ("i,i->i", [(3,), (3,)]), ("i,j->ij", [(2,), (3,)]),
        ("ba", [(2, 3)]), ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]), ("i...->...", [(2, 3, 4)]),
        ("...i,...i", [(2, 3), (2, 1, 3)]), ("ij,ij->ij", [(3, 1), (3, 4)]), (",i->i", [(), (3,)]),
        ("bij,bjk,bkl->bil", [(2, 2, 3), (2, 3, 2), (2, 2, 2)]), ("i,i,i", [(3,), (3,), (3,)]),
        ("ijk,ilk->jl", [(2, 3, 4), (2, 2, 4)]), ("Aa,aB->AB", [(2, 3), (3, 2)]), ("ij,j->i", [(2, 3), (1,)])]:
    case("einsum", lambda *ops, s=_subs: np.einsum(s, *ops), *[randn(*s) for s in _shapes])
case("einsum", lambda a, b: np.einsum("ij,jk->ik", a, b, optimize=True), cplx(2, 3), randn(3, 2))
case("einsum", lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [0, 2]), randn(2, 3), randn(3, 4))
case("einsum", lambda a, b: np.einsum(a, [Ellipsis, 1], b, [1]), randn(2, 3), randn(3))
for _mode in ["full", "same", "valid"]:
    case("convolve", lambda a, v, m=_mode: np.convolve(a, v, m), randn(5), randn(3))
    case("convolve", lambda a, v, m=_mode: np.convolve(a, v, m), randn(3), randn(6))
    case("correlate", lambda a, v, m=_mode: np.correlate(a, v, m), randn(5), randn(3))
    case("correlate", lambda a, v, m=_mode: np.correlate(a, v, m), cplx(3), cplx(4))
case("convolve", lambda a, v: np.convolve(a, v), cplx(4), randn(2))

# ------------------------------------------------------------ polynomials
case("polyval", lambda p, x: np.polyval(p, x), randn(4), randn(3))
case("polyval", lambda p, x: np.polyval(p, x), randn(3), randn())
case("polyadd", lambda a, b: np.polyadd(a, b), randn(3), randn(5))
case("polysub", lambda a, b: np.polysub(a, b), randn(4), randn(2))
case("polymul", lambda a, b: np.polymul(a, b), randn(3), randn(2))
case("polyder", lambda p: np.polyder(p), randn(4))
case("polyder", lambda p: np.polyder(p, 2), randn(4))
case("polyint", lambda p: np.polyint(p), randn(3))
case("polyint", lambda p, k: np.polyint(p, 2, k), randn(3), randn(2))
case("polydiv", lambda u, v: np.polydiv(u, v), randn(5), pos(2) + 1)
case("polydiv", lambda u, v: np.polydiv(u, v), randn(3), pos(3))
case("poly", lambda r: np.poly(r), randn(3))
case("poly", lambda r: np.real(np.poly(r)), onp.array([1 + 2j, 1 - 2j, 0.5 + 0j]))
case("vander", lambda x: np.vander(x), randn(3))
case("vander", lambda x: np.vander(x, 4, increasing=True), randn(3))

# ------------------------------------------------------ applying functions
case("apply_along_axis", lambda x: np.apply_along_axis(lambda v: np.sum(v ** 2), 1, x), randn(2, 3))
case("apply_along_axis", lambda x: np.apply_along_axis(lambda v: np.outer(v, v), 0, x), randn(2, 3))
case("apply_over_axes", lambda x: np.apply_over_axes(np.sum, x, [0, 2]), X3)

# ------------------------------------------------------- indexing (internal)
case("getitem", lambda x: x[1:, ::-1, 0], X3)
case("getitem", lambda x: x[[0, 0, 1], ..., None], X3)
case("getitem", lambda x: x[x > 0], randn(6))
case("getitem", lambda x: x[onp.array([0, 1, 0]), onp.array([2, 2, 1])], randn(2, 3))
case("getitem", lambda x: np.getitem(x, 1), randn(2, 3))
case("getitem_parts", lambda x: np.getitem_parts(x, onp.array([0, 1, 1]), slice(None)), randn(2, 3))
case("untake", lambda g: np.untake(g, onp.array([0, 2, 0]), (4,), onp.float64), randn(3))
case("untake", lambda g: np.untake(g, (slice(1, 3),), (4, 2), onp.float64), randn(2, 2))
case("diagonal_adjoint", lambda d: np.diagonal_adjoint(d, (2, 3, 4), 1, 2, 0), randn(3, 1))
case("make_diagonal", lambda d: np.make_diagonal(d, 0, -1, -2), randn(2, 3))  # autograd's only form
case("make_diagonal", lambda d: np.make_diagonal(d, -1, 2, 0), randn(2, 3))
case("array_from_args", lambda x, y: np.array_from_args({}, x, y), randn(2), randn(2))
case("concatenate_args", lambda x, y: np.concatenate_args(0, x, y), randn(2), randn(3))
case("iteration", lambda x: sum(v for v in x) * len(x), randn(3, 2))


@pytest.fixture(autouse=True)
def _seed():
    onp.random.seed(0)  # check_grads draws random directions


def _assert_same_values(traced, expected):
    if isinstance(expected, (tuple, list)):
        assert isinstance(traced, (tuple, list)) and len(traced) == len(expected)
        for t, e in zip(traced, expected):
            _assert_same_values(t, e)
        return
    assert onp.shape(traced) == onp.shape(expected)
    assert onp.result_type(traced).kind == onp.result_type(expected).kind
    onp.testing.assert_allclose(traced, expected, rtol=1e-10, atol=1e-12)


def _unbox(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_unbox(e) for e in x)
    while isinstance(x, Box):
        x = x._value
    return x


@pytest.mark.parametrize("fun, args, values", CASES)
def test_derivatives(fun, args, values):
    if values:
        expected = fun(*args)
        for i in range(len(args)):  # trace one argument at a time: composites must agree with numpy
            _, traced = make_vjp(fun, i)(*args)
            _assert_same_values(_unbox(traced), expected)
    check_grads(fun, modes=["fwd", "rev"], order=2)(*args)


# ------------------------------------------------------------------ coverage
def _public_callables():
    return {name: getattr(np, name) for name in np.__all__
            if isinstance(getattr(np, name), (primitive, types.FunctionType))}


def _has_rules(p):
    # defvjp_argnum/defjvp_argnum install a dict subclass that answers every argument
    return all(bool(rules) or type(rules) is not dict for rules in (p.vjps, p.jvps))


def test_every_primitive_has_rules_or_a_reason():
    missing = []
    for name, fun in _public_callables().items():
        if isinstance(fun, primitive) and fun.differentiable:
            if name in numpy_wrapper.UNSUPPORTED:
                continue
            if not _has_rules(fun):
                missing.append(name)
    assert not missing, f"differentiable primitives without VJP+JVP rules: {missing}"


def test_unsupported_list_is_small_and_raises_with_reason():
    assert len(numpy_wrapper.UNSUPPORTED) <= 20
    with pytest.raises(NotImplementedError, match="numpy.i0: its derivative is the Bessel function I1"):
        grad(lambda x: np.sum(np.i0(x)))(onp.ones(2))
    with pytest.raises(NotImplementedError, match="numpy.unique"):
        make_jvp(lambda x: np.unique(x))(onp.ones(2))(onp.ones(2))
    # calling them on traced values is fine when no derivative flows through
    assert grad(lambda x: np.sum(x) + int(np.sum(np.unique(x))))(onp.ones(3)).tolist() == [1.0, 1.0, 1.0]


def test_every_function_has_a_case():
    tested = {c.id.split("-")[0] for c in CASES}
    nondiff = numpy_wrapper.NONDIFF_NAMES | set(numpy_wrapper.NOTRACE_NAMES) | set(numpy_wrapper.MUTATING_NAMES)
    untested = []
    for name, fun in _public_callables().items():
        if name in nondiff or name in numpy_wrapper.UNSUPPORTED or name in numpy_wrapper.PASSTHROUGH_NAMES:
            continue
        if isinstance(fun, primitive) and not fun.differentiable:
            continue
        if name not in tested:
            untested.append(name)
    assert not untested, f"no derivative test for {sorted(untested)}"


# ------------------------------------------------------ non-differentiable
NONDIFF_CASES = [
    ("floor", lambda x: np.floor(x)), ("ceil", lambda x: np.ceil(x)), ("round", lambda x: np.round(x, 1)),
    ("rint", lambda x: np.rint(x)), ("trunc", lambda x: np.trunc(x)), ("sign", lambda x: np.sign(x)),
    ("argmax", lambda x: np.argmax(x)), ("argsort", lambda x: np.argsort(x)), ("greater", lambda x: x > 0),
    ("equal", lambda x: x == x[0]), ("isnan", lambda x: np.isnan(x)), ("floor_divide", lambda x: x // 0.3),
    ("zeros_like", lambda x: np.zeros_like(x)), ("searchsorted", lambda x: np.searchsorted(onp.arange(3.), x)),
    ("nonzero", lambda x: np.nonzero(x > 0)[0]), ("heaviside", lambda x: np.heaviside(x, 0.5)),
    ("unique_counts", lambda x: np.unique_counts(x).counts),
]


@pytest.mark.parametrize("name, fun", NONDIFF_CASES, ids=[n for n, _ in NONDIFF_CASES])
def test_nondifferentiable_functions_have_zero_derivative(name, fun):
    x = onp.array([0.3, -1.7, 2.2])
    assert name in numpy_wrapper.NONDIFF_NAMES or name in ("greater", "equal")
    seen = []

    def f(x):
        out = fun(x)
        seen.append(out)
        return np.sum(x * np.sum(np.asarray(out, dtype=float)))

    g = grad(f)(x)
    assert not isinstance(seen[0], Box), "outputs of non-differentiable functions are not traced"
    onp.testing.assert_allclose(g, onp.full(3, onp.sum(onp.asarray(seen[0], dtype=float))))
    assert onp.all(make_jvp(lambda x: np.asarray(fun(x), dtype=float) * 1.0)(x)(onp.ones(3))[1] == 0)


@pytest.mark.parametrize("name", sorted(numpy_wrapper.MUTATING_NAMES))
def test_inplace_functions_refuse_traced_arrays(name):
    calls = {"copyto": lambda a: np.copyto(onp.zeros(3), a), "place": lambda a: np.place(a, a > 0, 1.0),
             "putmask": lambda a: np.putmask(a, a > 0, 1.0), "put": lambda a: np.put(a, [0], 1.0),
             "put_along_axis": lambda a: np.put_along_axis(a, onp.array([0]), 1.0, axis=0),
             "fill_diagonal": lambda a: np.fill_diagonal(np.reshape(a, (1, 3)), 0.0)}
    with pytest.raises(TypeError, match=f"numpy.{name} modifies an array in place.*np.where"):
        grad(lambda x: np.sum(calls[name](x) or x))(onp.ones(3))
    out = onp.zeros(3)
    np.copyto(out, onp.ones(3))  # still plain numpy on plain arrays
    assert out.tolist() == [1.0, 1.0, 1.0]


# ------------------------------------------------------------- conventions
def test_where_with_nan_and_inf_in_the_branch_not_taken():
    x = onp.array([-1.0, 0.0, 4.0])

    def f(x):
        safe = np.where(x > 0, x, 1.0)
        return np.sum(np.where(x > 0, np.sqrt(safe) * np.log(safe), 0.0) + np.where(x > 0, 1 / safe, np.inf))

    g = grad(f)(x)
    assert onp.all(onp.isfinite(g))
    onp.testing.assert_allclose(g[2], (0.5 / 2.0) * onp.log(4.0) + 2.0 / 4.0 - 1 / 16)
    assert g[0] == 0.0
    # the naive form: sqrt and 1/x evaluated everywhere, their cotangents masked
    with onp.errstate(divide="ignore", invalid="ignore"):
        g2 = grad(lambda x: np.sum(np.where(x > 0, np.sqrt(x), 0.0)))(x)
    assert g2.tolist() == [0.0, 0.0, 0.25]


# (naive branch, the same with its input made safe by a second where, point, derivative there)
WHERE_SINGULAR = {
    "log": (lambda x: np.where(x > 0, np.log(x), 1.0),
            lambda x: np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), 1.0), 0.0, 0.0),
    "reciprocal": (lambda x: np.where(x > 0, 1 / x, 1.0),
                   lambda x: np.where(x > 0, 1 / np.where(x > 0, x, 1.0), 1.0), 0.0, 0.0),
    "exp-overflow": (lambda x: np.where(x > 1, x, np.exp(1000 * x)),
                     lambda x: np.where(x > 1, x, np.exp(1000 * np.where(x > 1, 0.0, x))), 4.0, 1.0),
}


@pytest.mark.parametrize("name", WHERE_SINGULAR)
def test_where_reverse_mode_is_nan_with_a_singular_branch_not_taken(name):
    # What where's docstring says: reverse mode multiplies the zero cotangent
    # of the branch not taken by an infinite derivative; forward mode does
    # not; a second where on the branch's input fixes reverse mode.
    naive, safe, x, expected = WHERE_SINGULAR[name]
    with onp.errstate(divide="ignore", invalid="ignore", over="ignore"):
        assert onp.isnan(grad(naive)(x))
        assert deriv(naive)(x) == expected
        assert deriv(deriv(naive))(x) == 0.0
    assert grad(safe)(x) == deriv(safe)(x) == expected
    assert grad(grad(safe))(x) == deriv(grad(safe))(x) == 0.0


@pytest.mark.parametrize("f, x", [
    (lambda x: np.where(x > 0, np.sqrt(x), 0.0), 0.0), (lambda x: np.where(x > 0, np.cbrt(x), 0.0), 0.0),
    (lambda x: np.where(x > 0, x ** 0.5, 0.0), 0.0), (lambda x: np.where(x > 0, x ** -1.5, 0.0), 0.0),
    (lambda x: np.where(x < 1, np.arcsin(x), 0.0), 1.0), (lambda x: np.where(x > -1, np.arccos(x), 0.0), -1.0),
    (lambda x: np.where(x > 1, np.arccosh(x), 0.0), 1.0),
], ids=["sqrt", "cbrt", "power-0.5", "power--1.5", "arcsin", "arccos", "arccosh"])
def test_where_with_a_safe_rule_in_the_branch_not_taken(f, x):
    # sqrt & co. keep a zero cotangent zero at their singular points, in
    # either mode and to second order.
    with onp.errstate(divide="ignore", invalid="ignore"):
        derivatives = [grad(f)(x), deriv(f)(x)] + [outer(inner(f))(x) for outer in (grad, deriv)
                                                   for inner in (grad, deriv)]
    assert derivatives == [0.0] * 6


def test_where_with_sqrt_of_a_negative_number_not_taken():
    f = lambda x: np.where(x > 0, np.sqrt(x), 0.0)  # noqa: E731
    assert grad(f)(4.0) == 0.25 and grad(grad(f))(4.0) == -1 / 32
    with onp.errstate(invalid="ignore"):
        assert grad(f)(-1.0) == deriv(f)(-1.0) == deriv(deriv(f))(-1.0) == 0.0
        # in reverse mode, safe at first order only: the second order meets sqrt's NaN value
        assert onp.isnan(grad(grad(f))(-1.0))


def test_interp_at_the_knots_and_partition_at_kth():
    xp, fp = onp.array([0.0, 1.0, 2.5]), onp.array([3.0, -1.0, 2.0])
    x = onp.array([0.0, 1.0, 2.5, -1.0, 3.0])
    _, out = make_vjp(lambda fp: np.interp(x, xp, fp))(fp)
    onp.testing.assert_array_equal(out, onp.interp(x, xp, fp))
    a = R.randn(7)
    _, out = make_vjp(lambda a: np.partition(a, 3))(a)
    assert out[3] == onp.partition(a, 3)[3]
    assert onp.all(out[:3] <= out[3]) and onp.all(out[4:] >= out[3])


def test_sqrt_at_zero_convention():
    assert grad(lambda x: np.sqrt(x))(0.0) == onp.inf
    assert make_jvp(lambda x: np.sqrt(x))(0.0)(1.0)[1] == onp.inf
    assert grad(lambda x: np.sqrt(x) * 0.0)(0.0) == 0.0
    assert grad(lambda x: x ** 0.5)(0.0) == onp.inf
    assert grad(lambda x: x ** 1.5)(0.0) == 0.0
    assert grad(lambda x: np.arcsin(x))(1.0) == onp.inf
    assert grad(grad(lambda x: np.sqrt(x ** 2 + 1.0)))(0.0) == 1.0
    # A zero cotangent is masked only where the derivative is infinite: elsewhere
    # the derivative of the cotangent with respect to a zero factor stays.
    assert grad(lambda x: grad(lambda y: np.sqrt(y) * x)(2.0))(0.0) == pytest.approx(0.5 / onp.sqrt(2.0))
    assert grad(lambda x: grad(lambda y: np.arcsin(y) * x)(0.6))(0.0) == pytest.approx(1.25)


def test_norm_like_functions_at_zero_have_zero_gradient():
    assert grad(lambda x: np.hypot(x, 0.0))(0.0) == 0.0
    assert grad(lambda x: np.std(x))(onp.ones(3)).tolist() == [0.0, 0.0, 0.0]
    assert grad(lambda x: np.sum(np.abs(x)))(onp.zeros(2)).tolist() == [0.0, 0.0]
    assert grad(lambda x: np.abs(x))(0j) == 0.0
    assert grad(lambda x: np.arctan2(x, 0.0))(0.0) == 0.0


def test_max_splits_gradient_between_ties():
    assert grad(lambda x: np.max(x))(onp.array([1.0, 3.0, 3.0])).tolist() == [0.0, 0.5, 0.5]
    assert grad(lambda x: np.maximum(x, 1.0))(1.0) == 0.5
    assert grad(lambda x: np.sum(np.clip(x, 0.0, 1.0)))(onp.array([0.0, 0.5, 1.0, 2.0])).tolist() == \
        [1.0, 1.0, 1.0, 0.0]


def test_complex_gradient_convention():
    # grad of a real function of z = x + iy is df/dx - i df/dy
    z = 0.3 + 0.4j
    assert onp.isclose(grad(lambda z: np.abs(z) ** 2)(z), 2 * onp.conj(z))
    assert onp.isclose(grad(lambda z: np.real(z * z))(z), 2 * onp.conj(z).conjugate())
    assert onp.isclose(grad(lambda z: np.imag(z))(z), -1j)
    assert onp.isclose(grad(lambda z: np.angle(z))(z), -1j * onp.conj(z) / abs(z) ** 2)


# ------------------------------------------------------------------- dtype
FLOAT32_CASES = [
    ("exp", lambda x: np.sum(np.exp(x))), ("log", lambda x: np.sum(np.log(x))),
    ("sqrt", lambda x: np.sum(np.sqrt(x))), ("power", lambda x: np.sum(x ** 2.5 + 2.0 ** x)),
    ("arcsin", lambda x: np.sum(np.arcsin(x / 4))), ("tanh", lambda x: np.sum(np.tanh(x))),
    ("exp2", lambda x: np.sum(np.exp2(x) + np.log2(x) + np.log10(x))),
    ("multiply", lambda x: np.sum(x * onp.arange(3.0) + x / onp.float64(2.0))),
    ("maximum", lambda x: np.sum(np.maximum(x, 1.0) + np.minimum(x, onp.ones(3)))),
    ("hypot", lambda x: np.sum(np.hypot(x, 1.0) + np.arctan2(x, 2.0) + np.logaddexp(x, 0.0))),
    ("mean", lambda x: np.mean(x) + np.var(x) + np.std(x) + np.max(x) + np.prod(x)),
    ("cumprod", lambda x: np.sum(np.cumprod(x) + np.cumsum(x))),
    ("sort", lambda x: np.sum(np.sort(x) * onp.arange(3.0)) + np.median(x) + np.quantile(x, 0.3)),
    ("matmul", lambda x: np.sum(onp.ones((2, 3)) @ x) + np.dot(x, onp.ones(3)) + np.sum(np.outer(x, x))),
    ("einsum", lambda x: np.einsum("i,i", x, onp.ones(3)) + np.sum(np.tensordot(x, onp.ones((3, 2)), 1))),
    ("where", lambda x: np.sum(np.where(x > 1, x, 0.0) + np.clip(x, 0.5, 1.5))),
    ("getitem", lambda x: x[0] * x[1:].sum() + np.concatenate([x, onp.ones(2)]).sum() + np.stack([x, x]).sum()),
    ("complex", lambda x: np.abs(np.sum(x * (1 + 2j))) + np.real(np.sum(np.exp(1j * x)))),
    ("convolve", lambda x: np.sum(np.convolve(x, onp.ones(2)) + np.diff(x).sum() + np.cov(x))),
]


@pytest.mark.parametrize("name, fun", FLOAT32_CASES, ids=[n for n, _ in FLOAT32_CASES])
def test_float32_gradients_stay_float32(name, fun):
    x64 = onp.array([0.7, 1.9, 1.2])
    x32 = x64.astype(onp.float32)
    g32 = grad(fun)(x32)
    assert g32.dtype == onp.float32
    # float32 rounding (eps ~ 6e-8) over a few dozen operations
    onp.testing.assert_allclose(g32, grad(fun)(x64), rtol=2e-5, atol=1e-6)
    value, tangent = make_jvp(fun)(x32)(onp.ones(3, onp.float32))
    assert onp.result_type(tangent) == onp.result_type(value)  # float64 where x meets a float64
    assert elementwise_grad(lambda x: fun(x) * x)(x32).dtype == onp.float32


def test_float32_second_derivatives_stay_float32():
    x = onp.float32(0.5)
    assert onp.result_type(grad(grad(lambda x: np.tanh(x) * x ** 2))(x)) == onp.float32


def test_complex64_and_mixed_precision():
    z = onp.array([0.5 + 1j, -0.2 + 0.1j], dtype=onp.complex64)
    g = grad(lambda z: np.sum(np.abs(z * 2.0) ** 2))(z)
    assert g.dtype == onp.complex64
    x32 = onp.ones(2, onp.float32)
    assert grad(lambda x: np.sum(x * onp.ones(2, onp.float64)))(x32).dtype == onp.float32
    assert grad(lambda x: np.real(np.sum(x * z)))(x32).dtype == onp.float32


def test_integer_inputs_get_float_gradients():
    g = grad(lambda x: np.sum(x * 1.5))(onp.arange(3))
    assert g.dtype == onp.float64 and g.tolist() == [1.5, 1.5, 1.5]
