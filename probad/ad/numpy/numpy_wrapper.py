"""Every public numpy function, wrapped as a primitive.

Functions with a meaningful derivative become :class:`primitive`; functions
whose derivative is zero or undefined (rounding, arg-reductions, comparisons,
predicates) become :class:`nondiff_primitive`; pure metadata queries (shape,
ndim, result_type) never see boxes at all. Derivative rules are attached in
``numpy_vjps.py`` and ``numpy_jvps.py``; a wrapped function without one raises
an error naming it when differentiated.
"""
from __future__ import annotations

import types

import numpy as _np

from ..tracer import Box, getval, nondiff_primitive, notrace_primitive, primitive

# Rounding, integer-valued, boolean and index-valued functions: zero derivative.
NONDIFF_NAMES = {
    "floor", "ceil", "round", "rint", "around", "fix", "trunc", "all", "any",
    "argmax", "argmin", "argpartition", "argsort", "argwhere", "nonzero",
    "flatnonzero", "count_nonzero", "searchsorted", "sign", "floor_divide",
    "logical_and", "logical_or", "logical_not", "logical_xor", "isfinite",
    "isinf", "isnan", "isneginf", "isposinf", "allclose", "isclose",
    "array_equal", "array_equiv", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "iscomplex", "isreal", "zeros_like",
    "ones_like", "empty_like", "bitwise_and", "bitwise_or", "bitwise_xor",
    "invert", "left_shift", "right_shift", "digitize", "bincount", "unique",
    "histogram", "histogram2d", "histogramdd", "heaviside", "signbit",
    "isin", "lexsort", "unravel_index", "ravel_multi_index", "gcd", "lcm",
    "packbits", "unpackbits", "tri", "indices", "nanargmax", "nanargmin",
    "unique_values", "unique_counts", "unique_inverse", "unique_all",
}
# Questions about metadata, answered from raw values and never recorded.
NOTRACE_NAMES = {
    "ndim", "shape", "size", "iscomplexobj", "isrealobj", "result_type",
    "isscalar", "can_cast", "min_scalar_type", "promote_types", "issubdtype",
    "isfortran", "may_share_memory", "shares_memory",
}
# Functions that return sequences or need special handling are re-implemented
# in terms of primitives below; others that make no sense to trace are skipped.
SKIP_NAMES = {
    "array", "asarray", "asanyarray", "ascontiguousarray", "concatenate",
    "stack", "hstack", "vstack", "dstack", "column_stack", "row_stack",
    "append", "split", "array_split", "hsplit", "vsplit", "dsplit", "where",
    "meshgrid", "broadcast_arrays", "atleast_1d", "atleast_2d",
    "atleast_3d", "einsum", "select", "piecewise", "vectorize", "frompyfunc",
    "linspace", "logspace", "geomspace", "diagonal", "block", "broadcast_to",
}


def _wrap_namespace(old: dict, new: dict) -> None:
    function_types = (types.FunctionType, types.BuiltinFunctionType, _np.ufunc)
    for name, obj in old.items():
        if name.startswith("_") or name in SKIP_NAMES:
            continue
        if name in NOTRACE_NAMES and callable(obj):
            new[name] = notrace_primitive(obj)
        elif name in NONDIFF_NAMES and callable(obj):
            new[name] = nondiff_primitive(obj, name)
        elif isinstance(obj, function_types) or type(obj).__name__ == "_ArrayFunctionDispatcher":
            new[name] = primitive(obj, name)
        elif isinstance(obj, type) or not isinstance(obj, types.ModuleType):
            new[name] = obj  # types, constants, dtypes


_wrap_namespace(vars(_np), globals())

# Bring public names back as module attributes for ``from ... import *``.
__all__ = [n for n in list(globals()) if not n.startswith("_") and n not in {
    "annotations", "types", "Box", "getval", "nondiff_primitive",
    "notrace_primitive", "primitive", "NONDIFF_NAMES", "NOTRACE_NAMES",
    "SKIP_NAMES"}]


def _contains_box(x) -> bool:
    if isinstance(x, Box):
        return True
    if isinstance(x, (list, tuple)):
        return any(_contains_box(e) for e in x)
    return False


# ---------------------------------------------------------------- creation
@primitive
def array_from_args(array_kwargs, *args):
    return _np.array(args, **array_kwargs)


def array(A, *args, **kwargs):
    """``numpy.array`` that accepts nested lists of traced values."""
    if isinstance(A, Box):
        out = A
        if kwargs.get("dtype") is not None:
            out = out.astype(kwargs["dtype"])
        return out
    if isinstance(A, (list, tuple)) and _contains_box(A):
        elements = [array(a, *args, **kwargs) for a in A]
        kw = {k: v for k, v in kwargs.items() if k == "dtype"}
        return array_from_args(kw, *elements)
    return _np.array(A, *args, **kwargs)


def asarray(A, *args, **kwargs):
    if isinstance(A, Box) and not args and kwargs.get("dtype") is None:
        return A
    return array(A, *args, **kwargs)


asanyarray = asarray
ascontiguousarray = asarray


# ----------------------------------------------------------- joining arrays
@primitive
def concatenate_args(axis, *args):
    return _np.concatenate(args, axis)


def concatenate(arrays, axis=0, **kwargs):
    arrays = list(arrays)
    if not any(isinstance(a, Box) for a in arrays):
        return _np.concatenate(arrays, axis=axis, **kwargs)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    return concatenate_args(axis, *arrays)


def stack(arrays, axis=0):
    arrays = [asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("need at least one array to stack")
    shape = _np.shape(getval(arrays[0]))
    ax = axis if axis >= 0 else axis + len(shape) + 1
    expanded = [expand_dims(a, ax) for a in arrays]
    return concatenate(expanded, axis=ax)


def atleast_1d(*arys):
    res = [reshape(a, (1,)) if _np.ndim(getval(a)) == 0 else a for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = []
    for a in arys:
        nd = _np.ndim(getval(a))
        res.append(reshape(a, (1, 1)) if nd == 0 else expand_dims(a, 0) if nd == 1 else a)
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys):
    res = []
    for a in arys:
        nd = _np.ndim(getval(a))
        if nd == 0:
            a = reshape(a, (1, 1, 1))
        elif nd == 1:
            a = expand_dims(expand_dims(a, 0), 2)
        elif nd == 2:
            a = expand_dims(a, 2)
        res.append(a)
    return res[0] if len(res) == 1 else res


def hstack(tup):
    arrs = atleast_1d(*tup) if len(tup) > 1 else [atleast_1d(tup[0])]
    axis = 0 if _np.ndim(getval(arrs[0])) == 1 else 1
    return concatenate(arrs, axis=axis)


def vstack(tup):
    arrs = atleast_2d(*tup) if len(tup) > 1 else [atleast_2d(tup[0])]
    return concatenate(arrs, axis=0)


row_stack = vstack


def dstack(tup):
    arrs = atleast_3d(*tup) if len(tup) > 1 else [atleast_3d(tup[0])]
    return concatenate(arrs, axis=2)


def column_stack(tup):
    cols = []
    for a in tup:
        if _np.ndim(getval(a)) < 2:
            a = reshape(a, (-1, 1))
        cols.append(a)
    return concatenate(cols, axis=1)


def append(arr, values, axis=None):
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def block(arrays):
    if isinstance(arrays, list):
        depth = 0
        inner = arrays
        while isinstance(inner, list):
            depth += 1
            inner = inner[0]

        def _block(a, d):
            if isinstance(a, list):
                parts = [_block(x, d + 1) for x in a]
                return concatenate(parts, axis=-(depth - d))
            return atleast_2d(a) if depth > 1 else atleast_1d(a)

        return _block(arrays, 0)
    return arrays


# ------------------------------------------------------------ splitting
def _split_generic(ary, indices_or_sections, axis, numpy_fn):
    pieces = numpy_fn(getval(ary), indices_or_sections, axis=axis)
    if not isinstance(ary, Box):
        return pieces
    out, start = [], 0
    for p in pieces:
        n = _np.shape(p)[axis]
        idx = [slice(None)] * _np.ndim(getval(ary))
        idx[axis] = slice(start, start + n)
        out.append(ary[tuple(idx)])
        start += n
    return out


def split(ary, indices_or_sections, axis=0):
    return _split_generic(ary, indices_or_sections, axis, _np.split)


def array_split(ary, indices_or_sections, axis=0):
    return _split_generic(ary, indices_or_sections, axis, _np.array_split)


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=1 if _np.ndim(getval(ary)) > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=2)


# ------------------------------------------------------------- selection
@primitive
def where3(condition, x, y):
    return _np.where(condition, x, y)


def where(condition, x=None, y=None):
    """``numpy.where``. With NaN or inf in the branch that is not taken, the
    gradient of the taken branch stays finite: the cotangent of each branch is
    masked by ``where`` itself, never multiplied by a 0/1 mask."""
    if x is None and y is None:
        return nonzero(condition)
    return where3(condition, x, y)


def select(condlist, choicelist, default=0):
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where(cond, choice, out)
    if not isinstance(out, Box):
        out = _np.asarray(out)
    return out


def piecewise(x, condlist, funclist, *args, **kw):
    if isinstance(condlist, _np.ndarray) and condlist.dtype == bool and condlist.ndim == _np.ndim(getval(x)):
        condlist = [condlist]
    condlist = list(condlist)
    if len(funclist) == len(condlist) + 1:
        cond_else = logical_not(any(_np.array([getval(c) for c in condlist]), axis=0))
        condlist.append(cond_else)
    out = _np.zeros(_np.shape(getval(x)), dtype=_np.result_type(getval(x), float))
    for cond, fn in zip(condlist, funclist):
        val = fn(x, *args, **kw) if callable(fn) else fn
        out = where(cond, val, out)
    return out


# --------------------------------------------------- grids and broadcasting
def meshgrid(*xi, indexing="xy", **kwargs):
    nd = len(xi)
    out = []
    shapes = [_np.size(getval(x)) for x in xi]
    if indexing == "xy" and nd > 1:
        shapes[0], shapes[1] = shapes[1], shapes[0]
    for i, x in enumerate(xi):
        shape = [1] * nd
        ax = i
        if indexing == "xy" and nd > 1 and i < 2:
            ax = 1 - i
        shape[ax] = -1
        out.append(broadcast_to(reshape(x, shape), shapes))
    return out


@primitive
def broadcast_to(array, shape, subok=False):
    return _np.broadcast_to(array, shape)


def broadcast_arrays(*args, **kwargs):
    shape = _np.broadcast_shapes(*[_np.shape(getval(a)) for a in args])
    return [broadcast_to(a, shape) for a in args]


# ------------------------------------------------------------------ misc
@primitive
def diagonal(a, offset=0, axis1=0, axis2=1):
    return _np.diagonal(a, offset, axis1, axis2)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if not (isinstance(start, Box) or isinstance(stop, Box)):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    step = _np.linspace(0.0, 1.0, num, endpoint)
    out = start + (stop - start) * step
    return (out, (stop - start) / max(num - int(endpoint), 1)) if retstep else out


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    return power(base, linspace(start, stop, num, endpoint))


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    return exp(linspace(log(start), log(stop), num, endpoint))


@primitive
def einsum(*operands, **kwargs):
    return _np.einsum(*operands, **kwargs)


__all__ += [
    "array", "asarray", "asanyarray", "ascontiguousarray", "concatenate",
    "stack", "hstack", "vstack", "dstack", "column_stack", "row_stack",
    "append", "split", "array_split", "hsplit", "vsplit", "dsplit", "where",
    "meshgrid", "broadcast_arrays", "atleast_1d", "atleast_2d", "atleast_3d",
    "einsum", "select", "piecewise", "linspace", "logspace", "geomspace",
    "diagonal", "block", "broadcast_to", "array_from_args", "concatenate_args",
    "where3",
]


# -------------------------------------------------- indexing and dtype casts
@primitive
def getitem(A, idx):
    return A[idx]


@primitive
def getitem_parts(A, *idx):
    """``A[idx]`` where parts of the index tuple are themselves traced."""
    return A[idx]


@primitive
def untake(g, idx, shape, dtype):
    """The adjoint of ``A[idx]``: scatter-add ``g`` into zeros of ``shape``."""
    out = _np.zeros(shape, dtype=dtype)
    _np.add.at(out, idx, g)
    return out


@primitive
def astype_float(x, dtype):
    return _np.asarray(x).astype(dtype)


@nondiff_primitive
def astype_discrete(x, dtype):
    return _np.asarray(x).astype(dtype)


def astype_(x, dtype):
    """``x.astype(dtype)``: differentiable into float/complex, zero otherwise."""
    if _np.dtype(dtype).kind in "fc":
        return astype_float(x, dtype)
    return astype_discrete(x, dtype)


__all__ += ["getitem", "getitem_parts", "untake", "astype_", "astype_float", "astype_discrete"]
