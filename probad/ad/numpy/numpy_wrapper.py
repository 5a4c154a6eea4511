"""Every public numpy function, wrapped for tracing.

Each public name of ``numpy`` lands in one of these groups:

- a :class:`primitive`: the numpy function itself, recorded when called on a
  traced value; its derivative rules, and what the compiler and its
  backends need to know about it, are declared in ``numpy_vjps.py``;
- a :class:`nondiff_primitive` (``NONDIFF_NAMES``): rounding, comparisons,
  predicates, arg-reductions, constructors from shapes. Their derivative is
  zero: under ``grad`` their outputs are plain arrays, never boxes;
- a metadata, printing or I/O helper (``NOTRACE_NAMES``) that only ever sees
  raw values;
- an in-place function (``MUTATING_NAMES``) that raises ``TypeError`` with a
  functional alternative when handed a traced array;
- a function without derivative rules (``UNSUPPORTED``, with the reason),
  which may be called on traced values but raises, naming itself, when a
  derivative has to flow through it;
- a *composite* defined below in terms of other primitives (``stack``,
  ``sort``, ``median``, ``cov``, ...). A composite calls plain numpy when no
  argument is traced. Inside a composite, anything that depends on *values*
  (an ``argsort``, a mask, a count of NaNs) is computed with the wrapped
  functions, so that the compiler records it; ``onp``/``getval`` are used
  only for shapes and dtypes.

Careful: in this module ``sum``, ``max``, ``all``, ``any``, ``abs``, ... are
numpy's; Python's own are spelled ``builtins.any`` and so on.
"""
from __future__ import annotations

import builtins
import functools
import types

import numpy as _np

from ..tracer import Box, getval, nondiff_primitive, notrace_primitive, primitive

# Zero derivative: rounding, integer-valued, boolean and index-valued functions,
# and constructors whose arguments are shapes or integers.
NONDIFF_NAMES = {
    "floor", "ceil", "round", "rint", "around", "fix", "trunc", "all", "any",
    "argmax", "argmin", "argpartition", "argsort", "argwhere", "nonzero",
    "flatnonzero", "count_nonzero", "searchsorted", "sign", "floor_divide",
    "logical_and", "logical_or", "logical_not", "logical_xor", "isfinite",
    "isinf", "isnan", "isneginf", "isposinf", "allclose", "isclose",
    "array_equal", "array_equiv", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "iscomplex", "isreal", "zeros_like",
    "ones_like", "empty_like", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_count", "bitwise_invert", "bitwise_not", "bitwise_left_shift",
    "bitwise_right_shift", "invert", "left_shift", "right_shift", "digitize",
    "heaviside", "signbit", "isin", "lexsort", "unravel_index",
    "ravel_multi_index", "gcd", "lcm", "packbits", "unpackbits", "tri",
    "indices", "nanargmax", "nanargmin", "spacing", "nextafter", "isnat",
    "is_busday", "busday_count", "busday_offset", "arange", "empty", "eye",
    "identity", "ones", "zeros", "diag_indices", "diag_indices_from",
    "tril_indices", "tril_indices_from", "triu_indices", "triu_indices_from",
    "mask_indices", "ix_", "bartlett", "blackman", "hamming", "hanning",
    # These return the distinct values together with integer counts or
    # indices; the values come back as constants.
    "unique_all", "unique_counts", "unique_inverse",
}

# Results whose shape depends on the input values: a compiled replay checks
# their shape (``primitive.value_shaped``).
VALUE_SHAPED_NAMES = {
    "arange", "nonzero", "flatnonzero", "argwhere", "unique", "unique_values",
    "unique_counts", "unique_inverse", "unique_all", "histogram", "histogram_bin_edges",
    "histogram2d", "histogramdd",
}

# Questions about metadata, printing, I/O and configuration: answered from raw
# values and never recorded.
NOTRACE_NAMES = {
    "ndim", "shape", "size", "iscomplexobj", "isrealobj", "result_type",
    "isscalar", "can_cast", "min_scalar_type", "promote_types", "issubdtype",
    "isfortran", "may_share_memory", "shares_memory", "isdtype",
    "broadcast_shapes", "common_type", "mintypecode", "typename", "iterable",
    "einsum_path", "nested_iters", "frompyfunc", "array2string", "array_repr",
    "array_str", "base_repr", "binary_repr", "format_float_positional",
    "format_float_scientific", "datetime_as_string", "datetime_data",
    "from_dlpack", "frombuffer", "fromfile", "fromiter", "fromregex",
    "fromstring", "genfromtxt", "load", "loadtxt", "save", "savetxt", "savez",
    "savez_compressed", "get_include", "get_printoptions", "set_printoptions",
    "printoptions", "getbufsize", "setbufsize", "geterr", "seterr",
    "geterrcall", "seterrcall", "info", "show_config", "show_runtime",
}

# In-place functions, and what to write instead when the array is traced.
MUTATING_NAMES = {
    "copyto": "np.where(mask, src, dst)",
    "place": "np.where(mask, values, arr)",
    "putmask": "np.where(mask, values, a)",
    "put": "np.where(np.arange(a.size) == i, v, np.ravel(a)) (then reshape)",
    "put_along_axis": "np.where with a mask comparing np.arange along the axis to the indices",
    "fill_diagonal": "np.where(np.eye(n, dtype=bool), value, a)",
}

# Differentiable in principle, but without derivative rules here.
UNSUPPORTED = {
    "i0": "its derivative is the Bessel function I1, which numpy lacks; use "
          "probad.ad.scipy.special.i0e(x) * np.exp(np.abs(x))",
    "kaiser": "the derivative in beta needs the Bessel function I1; pass a constant beta",
    "polyfit": "it is a least-squares solve; use np.linalg.lstsq (or solve the normal "
               "equations) on np.vander(x, deg + 1)",
    "roots": "it is an eigenvalue problem; use np.linalg.eigvals of the companion matrix",
    "unique": "the output's size depends on the values; apply it to untraced data",
    "unique_values": "the output's size depends on the values; apply it to untraced data",
    "intersect1d": "set operations select values by equality; apply them to untraced data",
    "setdiff1d": "set operations select values by equality; apply them to untraced data",
    "setxor1d": "set operations select values by equality; apply them to untraced data",
    "union1d": "set operations select values by equality; apply them to untraced data",
    "histogram": "counts are piecewise constant and bin edges depend on the data; "
                 "apply it to untraced data",
    "histogram2d": "counts are piecewise constant and bin edges depend on the data; "
                   "apply it to untraced data",
    "histogramdd": "counts are piecewise constant and bin edges depend on the data; "
                   "apply it to untraced data",
    "histogram_bin_edges": "use np.linspace(np.min(a), np.max(a), bins + 1), which is differentiable",
    "asmatrix": "numpy.matrix is not supported; use 2-d arrays and the @ operator",
    "bmat": "numpy.matrix is not supported; use np.block",
}

# Defined below in terms of other primitives (or re-implemented so that they
# take traced arguments); the raw numpy versions are not wrapped.
COMPOSITE_NAMES = {
    "array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray",
    "asarray_chkfinite", "require", "copy", "astype", "full", "full_like",
    "concatenate", "concat", "stack", "hstack", "vstack", "dstack",
    "column_stack", "row_stack", "append", "block", "split", "array_split",
    "hsplit", "vsplit", "dsplit", "unstack", "broadcast_arrays", "meshgrid",
    "atleast_1d", "atleast_2d", "atleast_3d", "permute_dims",
    "matrix_transpose", "rollaxis", "diag", "diagflat", "trace", "repeat",
    "tile", "resize", "delete", "insert", "pad", "take", "take_along_axis",
    "compress", "extract", "choose", "trim_zeros", "sort", "sort_complex",
    "partition", "where", "select", "piecewise", "clip", "divmod", "ptp",
    "average", "median", "percentile", "quantile", "nanmedian",
    "nanpercentile", "nanquantile", "nansum", "nanprod", "nanmean", "nanvar",
    "nanstd", "nanmax", "nanmin", "nancumsum", "nancumprod", "cumulative_sum",
    "cumulative_prod", "cov", "corrcoef", "trapezoid", "diff", "ediff1d",
    "gradient", "unwrap", "interp", "bincount", "inner", "vdot", "vecdot",
    "matvec", "vecmat", "kron", "cross", "einsum", "correlate", "polyval",
    "polyadd", "polysub", "polymul", "polyder", "polyint", "polydiv", "poly",
    "vander", "linspace", "logspace", "geomspace", "apply_along_axis",
    "apply_over_axes",
}

# numpy's own function works unchanged with traced values (it only calls back
# into user code).
PASSTHROUGH_NAMES = {"fromfunction"}


def _wrap_namespace(old: dict, new: dict) -> None:
    function_types = (types.FunctionType, types.BuiltinFunctionType, _np.ufunc)
    wrapped = {}  # one primitive per numpy object, so aliases share rules
    for name, obj in old.items():
        if name.startswith("_") or name in COMPOSITE_NAMES:
            continue
        is_function = isinstance(obj, function_types) or type(obj).__name__ == "_ArrayFunctionDispatcher"
        if name in PASSTHROUGH_NAMES or not is_function:
            if not isinstance(obj, types.ModuleType):
                new[name] = obj  # types, constants, dtypes
            continue
        if id(obj) not in wrapped:
            canonical = getattr(obj, "__name__", name)
            if name in NOTRACE_NAMES:
                wrapped[id(obj)] = notrace_primitive(obj)
            elif name in MUTATING_NAMES:
                wrapped[id(obj)] = _refuse_traced(obj, name, MUTATING_NAMES[name])
            elif name in NONDIFF_NAMES:
                wrapped[id(obj)] = nondiff_primitive(obj, canonical)
            else:
                wrapped[id(obj)] = primitive(obj, canonical)
            if name in VALUE_SHAPED_NAMES:
                wrapped[id(obj)].value_shaped = True
        new[name] = wrapped[id(obj)]


def _has_box(x) -> bool:
    if isinstance(x, Box):
        return True
    if isinstance(x, (list, tuple)):
        return builtins.any(_has_box(e) for e in x)
    return False


def _refuse_traced(fun, name, alternative):
    @functools.wraps(fun)
    def refuse(*args, **kwargs):
        if _has_box(args) or _has_box(tuple(kwargs.values())):
            raise TypeError(
                f"numpy.{name} modifies an array in place, which probad.ad cannot trace; "
                f"build the result functionally instead, e.g. {alternative}"
            )
        return fun(*args, **kwargs)

    return refuse


_wrap_namespace(vars(_np), globals())


def _numpy_unless_traced(np_fun):
    """Decorator for composites: run ``np_fun`` itself when no argument is traced."""

    def decorate(impl):
        @functools.wraps(impl)
        def dispatch(*args, **kwargs):
            if _has_box(args) or _has_box(tuple(kwargs.values())):
                return impl(*args, **kwargs)
            return np_fun(*args, **kwargs)

        return dispatch

    return decorate


def _shape(x):
    return _np.shape(getval(x))


def _ndim(x):
    return _np.ndim(getval(x))


def _dtype(x):
    return _np.result_type(getval(x))


def _axis(axis, ndim):
    return axis + ndim if axis < 0 else axis


def _along(axis, ndim, index):
    """An index tuple applying ``index`` along ``axis`` only."""
    return (slice(None),) * _axis(axis, ndim) + (index,)


def _index(a, idx):
    """``a[idx]`` where ``idx`` may hold traced index arrays (compiler)."""
    if isinstance(idx, tuple) and _has_box(idx):
        return getitem_parts(a, *idx)
    return getitem(a, idx)


def _gather(a, index_map):
    """Rearrange ``a`` by a numpy function applied to the positions of its
    elements: ``index_map(arange(a.size).reshape(a.shape))`` names, for each
    output element, the input element it copies. Every function that only
    moves, repeats or drops elements is such a gather."""
    positions = _np.arange(int(_np.prod(_shape(a)))).reshape(_shape(a))
    return getitem(ravel(a), index_map(positions))


# ----------------------------------------------------- indexing and casts
@primitive
def getitem(A, idx):
    """``A[idx]`` (what indexing a traced array records)."""
    return A[idx]


@primitive
def getitem_parts(A, *idx):
    """``A[idx]`` where parts of the index tuple are themselves traced."""
    return A[idx]


def _is_basic_index(idx):
    if type(idx) is int or type(idx) is slice:  # the common cases (``x[t]``, ``q[a:b]``), quickly
        return True
    parts = idx if isinstance(idx, tuple) else (idx,)
    return builtins.all(p is None or p is Ellipsis or isinstance(p, (int, _np.integer, slice)) for p in parts)


@primitive
def untake(g, idx, shape, dtype):
    """The adjoint of ``A[idx]``: ``g`` scattered (and summed) into zeros of ``shape``."""
    out = _np.zeros(shape, dtype=dtype)
    if _is_basic_index(idx):
        out[idx] = g  # a basic index never repeats an element
    else:
        _np.add.at(out, idx, g)
    return out


@primitive
def astype_float(x, dtype):
    """A cast to a float or complex dtype (differentiable)."""
    return _np.asarray(x).astype(dtype)


@nondiff_primitive
def astype_discrete(x, dtype):
    """A cast to an integer or boolean dtype (zero derivative)."""
    return _np.asarray(x).astype(dtype)


def astype_(x, dtype):
    """``x.astype(dtype)``: differentiable into float/complex, zero derivative otherwise."""
    if _np.dtype(dtype).kind in "fc":
        return astype_float(x, dtype)
    return astype_discrete(x, dtype)


@primitive
def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal`` (positional arguments, so they are recorded as given)."""
    return _np.diagonal(a, offset, axis1, axis2)


@primitive
def diagonal_adjoint(d, shape, offset=0, axis1=0, axis2=1):
    """Zeros of ``shape`` with ``d`` on the diagonal that ``diagonal(., offset,
    axis1, axis2)`` would read: the transpose of ``diagonal``."""
    out = _np.zeros(shape, dtype=_np.result_type(d))
    moved = _np.moveaxis(out, (axis1, axis2), (-2, -1))  # a view: writes land in out
    k = _np.shape(d)[-1]
    rows = _np.arange(k) + builtins.max(-offset, 0)
    moved[..., rows, rows + offset] = d
    return out


def make_diagonal(D, offset=0, axis1=0, axis2=1):
    """Arrays with ``D``'s last axis on a diagonal: the inverse of
    ``diagonal(., offset, axis1, axis2)`` (autograd's ``make_diagonal``).

    The result has one more axis than ``D``; ``axis1`` and ``axis2`` index
    it, both of length ``D.shape[-1] + abs(offset)``, and ``D``'s other axes
    fill the remaining positions in order. Off the diagonal it is zero.
    """
    shape = _shape(D)
    ndim = len(shape) + 1
    a1, a2 = axis1 % ndim, axis2 % ndim
    if a1 == a2:
        raise ValueError(f"make_diagonal: axis1 and axis2 must differ, got {axis1} and {axis2}")
    batch = iter(shape[:-1])
    size = shape[-1] + builtins.abs(offset)
    return diagonal_adjoint(D, tuple(size if i in (a1, a2) else next(batch) for i in range(ndim)),
                            offset, axis1, axis2)


@primitive
def broadcast_to(array, shape, subok=False):
    """``numpy.broadcast_to`` (a read-only view)."""
    if type(shape) is tuple and type(array) in _FLOAT_SCALARS and builtins.min(shape, default=0) >= 0:
        # A scalar spread over an array (a sum's gradient): a view with zero
        # strides made directly costs a tenth of numpy's general function.
        value = _np.asarray(array)
        out = _np.ndarray(shape, value.dtype, value, 0, (0,) * len(shape))
        out.flags.writeable = False
        return out
    return _np.broadcast_to(array, shape)


_FLOAT_SCALARS = (float, _np.float64, _np.float32)


@primitive
def convolve(a, v, mode="full"):
    """``numpy.convolve``, differentiable in both sequences."""
    return _np.convolve(a, v, mode)


@primitive
def _einsum(subscripts, *operands, **kwargs):
    # Subscripts are always explicit here (see ``einsum``), which the VJP relies on.
    return _np.einsum(subscripts, *operands, **kwargs)


_einsum.__name__ = "einsum"


# ------------------------------------------------- creation and conversion
@primitive
def array_from_args(array_kwargs, *args):
    """``numpy.array`` of a list of (traced) elements."""
    return _np.array(args, **array_kwargs)


def array(A, dtype=None, copy=True, order="K", subok=False, ndmin=0, **kwargs):
    """``numpy.array`` that also accepts (nested lists of) traced values."""
    if isinstance(A, Box) and isinstance(getval(A), (list, tuple)):
        A = builtins.list(A)  # a traced tuple (e.g. what grad returns for one): its elements
    if isinstance(A, Box):
        out = A if dtype is None else astype_(A, dtype)
        if ndmin > _ndim(out):
            out = reshape(out, (1,) * (ndmin - _ndim(out)) + _shape(out))
        return out
    if isinstance(A, (list, tuple)) and _has_box(A):
        elements = [array(a, dtype=dtype) for a in A]
        out = array_from_args({} if dtype is None else {"dtype": dtype}, *elements)
        return array(out, ndmin=ndmin)
    return _np.array(A, dtype=dtype, copy=copy, order=order, subok=subok, ndmin=ndmin, **kwargs)


def asarray(a, dtype=None, order=None, **kwargs):
    """``numpy.asarray``; traced values pass through (cast if ``dtype`` asks)."""
    if isinstance(a, Box):
        if isinstance(getval(a), (list, tuple)):  # a traced tuple: an array of its elements
            return array(a, dtype=dtype)
        if dtype is None or _np.dtype(dtype) == _dtype(a):
            return a
    if _has_box(a):
        return array(a, dtype=dtype)
    return _np.asarray(a, dtype=dtype, order=order, **kwargs)


asanyarray = asarray
ascontiguousarray = asarray
primitive.pack_sequence = staticmethod(array)  # np.mean([x, x + 2]) and the like


@_numpy_unless_traced(_np.asfortranarray)
def asfortranarray(a, dtype=None, **kwargs):
    """``numpy.asfortranarray``: memory layout does not matter to a traced value."""
    return asarray(a, dtype=dtype)


@_numpy_unless_traced(_np.require)
def require(a, dtype=None, requirements=None, **kwargs):
    """``numpy.require``: memory requirements do not matter to a traced value."""
    return asarray(a, dtype=dtype)


@_numpy_unless_traced(_np.copy)
def copy(a, order="K", subok=False):
    """``numpy.copy``: traced values are never mutated, so this is ``asarray``."""
    return asarray(a)


@_numpy_unless_traced(_np.asarray_chkfinite)
def asarray_chkfinite(a, dtype=None, order=None):
    """``numpy.asarray_chkfinite``: raises ValueError on inf or NaN."""
    a = asarray(a, dtype=dtype)
    if not all(isfinite(a)):
        raise ValueError("array must not contain infs or NaNs")
    return a


@_numpy_unless_traced(_np.astype)
def astype(x, dtype, /, *, copy=True, device=None):
    """``numpy.astype``; differentiable into float and complex dtypes."""
    return astype_(x, dtype)


@_numpy_unless_traced(_np.full)
def full(shape, fill_value, dtype=None, order="C", **kwargs):
    """``numpy.full``, differentiable in ``fill_value``."""
    fill_value = asarray(fill_value)
    if dtype is not None:
        fill_value = astype_(fill_value, dtype)
    return broadcast_to(fill_value, tuple(shape) if _np.iterable(shape) else (shape,))


@_numpy_unless_traced(_np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    """``numpy.full_like``, differentiable in ``fill_value`` (not in ``a``)."""
    if not _has_box(fill_value):
        return _np.full_like(getval(a), fill_value, dtype=dtype, order=order, subok=subok, shape=shape)
    dtype = _dtype(a) if dtype is None else dtype
    return full(_shape(a) if shape is None else shape, fill_value, dtype=dtype)


# ----------------------------------------------------------- joining arrays
@primitive
def concatenate_args(axis, *args):
    """``numpy.concatenate`` with the arrays as separate (traceable) arguments."""
    return _np.concatenate(args, axis)


def concatenate(arrays, axis=0, out=None, **kwargs):
    """``numpy.concatenate`` of arrays some of which may be traced."""
    arrays = list(arrays)
    if not _has_box(arrays):
        return _np.concatenate(arrays, axis=axis, out=out, **kwargs)
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    return concatenate_args(axis, *arrays)


concat = concatenate


def stack(arrays, axis=0, out=None, **kwargs):
    """``numpy.stack`` of arrays some of which may be traced."""
    arrays = list(arrays)
    if not _has_box(arrays):
        return _np.stack(arrays, axis=axis, out=out, **kwargs)
    if not arrays:
        raise ValueError("need at least one array to stack")
    arrays = [asarray(a) for a in arrays]
    shapes = {_shape(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError("all input arrays must have the same shape")
    ax = _axis(axis, len(shapes.pop()) + 1)
    return concatenate_args(ax, *[expand_dims(a, ax) for a in arrays])


def atleast_1d(*arys):
    """``numpy.atleast_1d``."""
    res = tuple(reshape(a, (1,)) if _ndim(a) == 0 else asarray(a) for a in arys)
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    """``numpy.atleast_2d``: prepends unit axes."""
    res = tuple(reshape(a, (1,) * (2 - _ndim(a)) + _shape(a)) if _ndim(a) < 2 else asarray(a)
                for a in arys)
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys):
    """``numpy.atleast_3d``: ``(N,)`` becomes ``(1, N, 1)``, ``(M, N)`` becomes ``(M, N, 1)``."""
    res = []
    for a in arys:
        shape = _shape(a)
        new = {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}.get(len(shape))
        res.append(asarray(a) if new is None else reshape(a, new))
    return res[0] if len(res) == 1 else tuple(res)


def hstack(tup, **kwargs):
    """``numpy.hstack``."""
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if arrs and _ndim(arrs[0]) == 1 else 1)


def vstack(tup, **kwargs):
    """``numpy.vstack``."""
    return concatenate([atleast_2d(a) for a in tup], axis=0)


row_stack = vstack


def dstack(tup):
    """``numpy.dstack``."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


def column_stack(tup):
    """``numpy.column_stack``: 1-d arrays become columns."""
    return concatenate([reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in tup], axis=1)


def append(arr, values, axis=None):
    """``numpy.append``."""
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def block(arrays):
    """``numpy.block``: the innermost lists join along the last axis, the next
    ones along the one before, and so on."""
    if not _has_box(arrays):
        return _np.block(arrays)

    def depth_and_ndim(x):
        if isinstance(x, list):
            inner = [depth_and_ndim(e) for e in x]
            return 1 + inner[0][0], builtins.max(n for _, n in inner)
        return 0, _ndim(x)

    depth, max_ndim = depth_and_ndim(arrays)
    ndim = builtins.max(depth, max_ndim)

    def build(x, level):
        if isinstance(x, list):
            return concatenate([build(e, level + 1) for e in x], axis=level - depth)
        return reshape(x, (1,) * (ndim - _ndim(x)) + _shape(x))

    return build(arrays, 0)


# ------------------------------------------------------------ splitting
def _split_generic(ary, indices_or_sections, axis, numpy_fn):
    pieces = numpy_fn(getval(ary), indices_or_sections, axis=axis)
    if not isinstance(ary, Box):
        return pieces
    out, start = [], 0
    for p in pieces:
        n = _np.shape(p)[axis]
        out.append(getitem(ary, _along(axis, _ndim(ary), slice(start, start + n))))
        start += n
    return out


def split(ary, indices_or_sections, axis=0):
    """``numpy.split``: the pieces are slices of ``ary``."""
    return _split_generic(ary, indices_or_sections, axis, _np.split)


def array_split(ary, indices_or_sections, axis=0):
    """``numpy.array_split``: the pieces are slices of ``ary``."""
    return _split_generic(ary, indices_or_sections, axis, _np.array_split)


def hsplit(ary, indices_or_sections):
    """``numpy.hsplit``."""
    return split(ary, indices_or_sections, axis=1 if _ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """``numpy.vsplit``."""
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    """``numpy.dsplit``."""
    return split(ary, indices_or_sections, axis=2)


@_numpy_unless_traced(_np.unstack)
def unstack(x, /, *, axis=0):
    """``numpy.unstack``: the slices along ``axis``, as a tuple."""
    return tuple(getitem(x, _along(axis, _ndim(x), i)) for i in range(_shape(x)[axis]))


# --------------------------------------------------- grids and broadcasting
def broadcast_arrays(*args, subok=False):
    """``numpy.broadcast_arrays``."""
    shape = _np.broadcast_shapes(*[_shape(a) for a in args])
    return tuple(broadcast_to(a, shape) for a in args)


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """``numpy.meshgrid`` of possibly traced coordinate vectors."""
    nd = len(xi)
    out = []
    for i, x in enumerate(xi):
        shape = [1] * nd
        shape[1 - i if indexing == "xy" and nd > 1 and i < 2 else i] = -1
        out.append(reshape(x, shape))
    if not sparse:
        out = list(broadcast_arrays(*out))
    return tuple(out)


@_numpy_unless_traced(_np.permute_dims)
def permute_dims(a, axes=None):
    """``numpy.permute_dims``, i.e. ``transpose``."""
    return transpose(a, axes)


@_numpy_unless_traced(_np.matrix_transpose)
def matrix_transpose(x, /):
    """``numpy.matrix_transpose``: swap the last two axes."""
    if _ndim(x) < 2:
        raise ValueError("matrix_transpose requires an array of at least two dimensions")
    return swapaxes(x, -1, -2)


@_numpy_unless_traced(_np.rollaxis)
def rollaxis(a, axis, start=0):
    """``numpy.rollaxis``, as the equivalent ``moveaxis``."""
    n = _ndim(a)
    axis, start = _axis(axis, n), _axis(start, n)
    return moveaxis(a, axis, start - 1 if start > axis else start)


# --------------------------------------------- diagonals and rearrangements
@_numpy_unless_traced(_np.diag)
def diag(v, k=0):
    """``numpy.diag``: the k-th diagonal of a matrix, or a matrix with ``v`` on it."""
    if _ndim(v) == 1:
        n = _shape(v)[0] + builtins.abs(k)
        return diagonal_adjoint(v, (n, n), k, 0, 1)
    if _ndim(v) == 2:
        return diagonal(v, k)
    raise ValueError("Input must be 1- or 2-d.")


@_numpy_unless_traced(_np.diagflat)
def diagflat(v, k=0):
    """``numpy.diagflat``: a matrix with the flattened input on its k-th diagonal."""
    return diag(ravel(v), k)


@_numpy_unless_traced(_np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``numpy.trace``: sums of diagonals."""
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@_numpy_unless_traced(_np.repeat)
def repeat(a, repeats, axis=None):
    """``numpy.repeat``, as one gather."""
    return _gather(a, lambda pos: _np.repeat(pos, repeats, axis=axis))


@_numpy_unless_traced(_np.tile)
def tile(A, reps):
    """``numpy.tile``, as one gather."""
    return _gather(A, lambda pos: _np.tile(pos, reps))


@_numpy_unless_traced(_np.resize)
def resize(a, new_shape):
    """``numpy.resize``, as one gather."""
    return _gather(a, lambda pos: _np.resize(pos, new_shape))


@_numpy_unless_traced(_np.delete)
def delete(arr, obj, axis=None):
    """``numpy.delete``, as one gather."""
    return _gather(arr, lambda pos: _np.delete(pos, obj, axis=axis))


@_numpy_unless_traced(_np.insert)
def insert(arr, obj, values, axis=None):
    """``numpy.insert``: a gather from the elements of ``arr`` followed by those of ``values``."""
    values = asarray(values)
    size = int(_np.prod(_shape(arr)))
    positions = _np.arange(size).reshape(_shape(arr))
    markers = size + _np.arange(int(_np.prod(_shape(values)))).reshape(_shape(values))
    source = concatenate([ravel(arr), ravel(values)])
    out = getitem(source, _np.insert(positions, obj, markers, axis=axis))
    return out if _dtype(out) == _dtype(arr) else astype_(out, _dtype(arr))


_PAD_GATHER_MODES = {"edge", "reflect", "symmetric", "wrap"}


@_numpy_unless_traced(_np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """``numpy.pad`` for the modes that copy elements ('constant', 'empty',
    'edge', 'reflect', 'symmetric', 'wrap'), as one gather; traced
    ``constant_values`` are differentiable too."""
    array = asarray(array)
    shape, ndim = _shape(array), _ndim(array)
    positions = _np.arange(int(_np.prod(shape))).reshape(shape)
    if mode in _PAD_GATHER_MODES and kwargs.get("reflect_type", "even") == "even":
        return getitem(ravel(array), _np.pad(positions, pad_width, mode=mode, **kwargs))
    if mode in ("constant", "empty"):
        # Pad with markers naming entries of a (ndim, 2) table of fill values.
        values = kwargs.get("constant_values", 0) if mode == "constant" else 0
        table = broadcast_to(astype_(asarray(values), _dtype(array)), (ndim, 2))
        markers = positions.size + _np.arange(2 * ndim).reshape(ndim, 2)
        idx = _np.pad(positions, pad_width, mode="constant", constant_values=markers)
        return getitem(concatenate([ravel(array), ravel(table)]), idx)
    raise ValueError(
        f"np.pad(mode={mode!r}, {kwargs}) is not differentiable in probad.ad; the differentiable "
        "modes are 'constant', 'empty', 'edge', 'wrap', and 'reflect'/'symmetric' with reflect_type='even'"
    )


@_numpy_unless_traced(_np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    """``numpy.take``: indexing along one axis."""
    if axis is None:
        a, axis = ravel(a), 0
    n = _shape(a)[axis]
    if mode == "wrap":
        indices = mod(indices, n)
    elif mode == "clip":
        indices = clip(indices, 0, n - 1)
    return _index(a, _along(axis, _ndim(a), indices))


@_numpy_unless_traced(_np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """``numpy.take_along_axis``, as fancy indexing (traced indices allowed)."""
    if axis is None:
        arr, axis = ravel(arr), 0
    ndim = _ndim(arr)
    axis = _axis(axis, ndim)
    idx = []
    for d in range(ndim):
        if d == axis:
            idx.append(indices)
        else:
            shape = [1] * ndim
            shape[d] = -1
            idx.append(_np.arange(_shape(arr)[d]).reshape(shape))
    return _index(arr, tuple(idx))


@_numpy_unless_traced(_np.compress)
def compress(condition, a, axis=None, out=None):
    """``numpy.compress``: the slices where ``condition`` holds."""
    return take(a, nonzero(condition)[0], axis=axis)


@_numpy_unless_traced(_np.extract)
def extract(condition, arr):
    """``numpy.extract``: the elements where ``condition`` holds."""
    return take(ravel(arr), nonzero(ravel(condition))[0])


@_numpy_unless_traced(_np.choose)
def choose(a, choices, out=None, mode="raise"):
    """``numpy.choose``: element ``i`` comes from ``choices[a[i]]``."""
    choices = list(choices)
    n = len(choices)
    if mode == "wrap":
        a = mod(a, n)
    elif mode == "clip":
        a = clip(a, 0, n - 1)
    elif any(logical_or(less(a, 0), greater_equal(a, n))):
        raise ValueError("invalid entry in choice array")
    out = choices[-1]
    for i in range(n - 2, -1, -1):
        out = where3(equal(a, i), choices[i], out)
    return broadcast_to(out, _np.broadcast_shapes(_shape(a), _shape(out)))


@_numpy_unless_traced(_np.trim_zeros)
def trim_zeros(filt, trim="fb", axis=None):
    """``numpy.trim_zeros``: a slice of ``filt`` (its bounds depend on the values)."""
    ndim = _ndim(filt)
    axes = range(ndim) if axis is None else [_axis(a, ndim) for a in ((axis,) if isinstance(axis, int) else axis)]
    idx = [slice(None)] * ndim
    for ax in axes:
        others = tuple(d for d in range(ndim) if d != ax)
        nonzero_along = flatnonzero(any(not_equal(filt, 0), axis=others) if others else filt)
        if len(nonzero_along) == 0:
            idx[ax] = slice(0, 0)
            continue
        start = int(nonzero_along[0]) if "f" in trim.lower() else 0
        stop = int(nonzero_along[-1]) + 1 if "b" in trim.lower() else _shape(filt)[ax]
        idx[ax] = slice(start, stop)
    return getitem(filt, tuple(idx))


@_numpy_unless_traced(_np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """``numpy.sort``: a gather by ``argsort``, so the derivative routes each
    element's cotangent back to where it came from."""
    if axis is None:
        a, axis = ravel(a), -1
    return take_along_axis(a, argsort(a, axis=axis, kind=kind, stable=stable), axis)


@_numpy_unless_traced(_np.sort_complex)
def sort_complex(a):
    """``numpy.sort_complex``: sort (lexicographically) as complex numbers."""
    return sort(astype_(a, _np.result_type(_dtype(a), _np.complex64)))


@_numpy_unless_traced(_np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """``numpy.partition``, as a gather by ``argpartition``. The element at
    ``kth`` is the one numpy gives; the order within either side may differ."""
    if axis is None:
        a, axis = ravel(a), -1
    return take_along_axis(a, argpartition(a, kth, axis=axis, kind=kind), axis)


# ------------------------------------------------------------- selection
@primitive
def where3(condition, x, y):
    """``numpy.where(condition, x, y)``."""
    return _np.where(condition, x, y)


def where(condition, x=None, y=None):
    """``numpy.where``.

    Both branches are evaluated everywhere; what the branch not taken does at
    a point reaches the derivative as follows.

    - Forward mode (``make_jvp``, ``deriv``, forward over forward): ``where``
      selects the tangent of the taken branch, so NaN or inf in the other
      never reaches the result.
    - Reverse mode (``grad`` and every operator built on it): the branch not
      taken receives a zero cotangent, and each primitive in it multiplies
      that by its local derivative; ``0 * inf`` and ``0 * nan`` are NaN. So
      ``where(x > 0, log(x), 1.0)`` and ``where(x > 0, 1 / x, 1.0)`` at 0,
      or ``where(x > 1, x, exp(1000 * x))`` at 4, have NaN gradients. The
      exceptions are the rules that keep a zero cotangent zero whatever the
      derivative: ``sqrt`` and ``cbrt``, ``x ** y`` (in ``x``),
      ``arcsin``/``arccos`` and ``arccosh``. A branch made of these is safe
      at their singular points to second order (``where(x > 0, sqrt(x), 0.0)``
      at 0), and where their value is NaN (``sqrt`` of a negative number) to
      first order.
    - For any other branch, keep its input away from the bad points with a
      second ``where``, as JAX recommends:
      ``safe = where(x > 0, x, 1.0); where(x > 0, log(safe), 1.0)``.
    """
    if x is None and y is None:
        return nonzero(condition)
    return where3(condition, x, y)


def select(condlist, choicelist, default=0):
    """``numpy.select``: the first condition that holds picks the choice."""
    if not _has_box(list(condlist)) and not _has_box(list(choicelist)) and not _has_box(default):
        return _np.select(condlist, choicelist, default)
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = where3(cond, choice, out)
    return out


def piecewise(x, condlist, funclist, *args, **kw):
    """``numpy.piecewise``: each function sees only the elements its condition
    selects (so a branch is never evaluated where it could overflow)."""
    if not _has_box(x) and not _has_box(list(funclist)):
        return _np.piecewise(x, condlist, funclist, *args, **kw)
    x = asarray(x)
    # numpy's rule for telling one condition from a list of them
    if _np.isscalar(getval(condlist)) or (
            not isinstance(condlist[0], (list, _np.ndarray, Box)) and _ndim(x) != 0):
        condlist = [condlist]
    condlist = [broadcast_to(asarray(c), _shape(x)) for c in condlist]
    if len(funclist) == len(condlist) + 1:
        condlist.append(logical_not(any(stack(condlist), axis=0)))
    shape, dtype = _shape(x), _dtype(x)
    out = _np.zeros(shape, dtype=dtype)
    taken = _np.zeros(shape, dtype=bool)
    # Later conditions win where several hold, as in numpy.
    for cond, fn in reversed(list(zip(condlist, funclist))):
        cond = logical_and(cond, logical_not(taken))
        taken = logical_or(taken, cond)
        idx = nonzero(cond)
        vals = fn(_index(x, idx), *args, **kw) if callable(fn) else fn
        vals = broadcast_to(astype_(asarray(vals), dtype), _shape(idx[0]))
        out = out + untake(vals, idx, shape, dtype)
    return out


@primitive
def _clip(a, a_min, a_max):
    # Bounds are positional so that traced bounds are recorded too.
    return _np.clip(a, a_min, a_max)


_clip.__name__ = "clip"


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    """``numpy.clip``, differentiable in the array and in both bounds."""
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if not _has_box((a, lo, hi)):
        return _np.clip(a, lo, hi, out=out, **kwargs)
    return _clip(a, lo, hi)


@_numpy_unless_traced(_np.divmod)
def divmod(x1, x2, /, *args, **kwargs):
    """``numpy.divmod``: ``(floor_divide(x1, x2), mod(x1, x2))``."""
    return floor_divide(x1, x2), mod(x1, x2)


# ---------------------------------------------------------- statistics
def _reduced_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(_axis(a, ndim) for a in axes))


def _to_last_axis(a, axis):
    """Move the axes in ``axis`` to the end and merge them into one. Returns
    the reshaped array and the kept shape with unit axes where reduced
    (for keepdims)."""
    shape, ndim = _shape(a), _ndim(a)
    axes = _reduced_axes(axis, ndim)
    kept = [d for d in range(ndim) if d not in axes]
    moved = transpose(a, kept + list(axes)) if kept + list(axes) != list(range(ndim)) else a
    n = int(_np.prod([shape[d] for d in axes]))
    keepdims_shape = tuple(1 if d in axes else shape[d] for d in range(ndim))
    return reshape(moved, tuple(shape[d] for d in kept) + (n,)), keepdims_shape


def _lerp(a, b, t):
    # Exact at both ends: b - (b - a) * (1 - t) for t >= 0.5.
    diff_ = b - a
    return where3(t >= 0.5, b - diff_ * (1 - t), a + diff_ * t)


def _quantile_positions(n, q, method):
    """Lower sorted index and interpolation weight for the ``method``
    (Hyndman & Fan's sample quantiles, as numpy names them)."""
    continuous = {"linear": (1.0, 1.0), "hazen": (0.5, 0.5), "weibull": (0.0, 0.0),
                  "median_unbiased": (1 / 3, 1 / 3), "normal_unbiased": (3 / 8, 3 / 8),
                  "interpolated_inverted_cdf": (0.0, 1.0)}
    if method in continuous:
        alpha, beta = continuous[method]
        v = n * q + (alpha + q * (1 - alpha - beta)) - 1
        v = clip(v, 0, maximum(n - 1, 0))
        lo = floor(v)
        return lo, v - lo
    v = (n - 1) * q
    if method == "lower":
        return floor(v), 0.0
    if method == "higher":
        return ceil(v), 0.0
    if method == "nearest":
        return around(v), 0.0
    if method == "midpoint":
        lo = floor(v)
        return lo, where3(equal(v, lo), 0.0, 0.5)
    nq = n * q
    if method == "inverted_cdf":
        return ceil(nq) - 1, 0.0
    if method == "averaged_inverted_cdf":
        lo = ceil(nq) - 1
        return lo, where3(equal(nq, floor(nq)), 0.5, 0.0)
    if method == "closest_observation":
        return around(nq) - 1, 0.0
    raise ValueError(f"{method!r} is not a valid method")


def _quantile(a, q, axis, method, keepdims, ignore_nan):
    a = asarray(a)
    x, keepdims_shape = _to_last_axis(a, axis)
    n_full = _shape(x)[-1]
    nan_mask = isnan(x)
    x_sorted = sort(x, axis=-1)  # NaNs sort last
    if ignore_nan:
        n = sum(logical_not(nan_mask), axis=-1)  # per slice, shape B
    else:
        n = _np.full(_shape(x)[:-1], n_full)
    q_arr = asarray(q)
    q_shape = _shape(q_arr)
    q_b = reshape(q_arr, q_shape + (1,) * (_ndim(x) - 1))
    lo, gamma = _quantile_positions(n, q_b, method)
    last = maximum(n - 1, 0)
    lo_i = astype_discrete(clip(lo, 0, last), _np.intp)
    hi_i = astype_discrete(clip(lo + 1, 0, last), _np.intp)
    src = broadcast_to(x_sorted, q_shape + _shape(x_sorted))
    below = take_along_axis(src, expand_dims(broadcast_to(lo_i, q_shape + _shape(x)[:-1]), -1), -1)[..., 0]
    above = take_along_axis(src, expand_dims(broadcast_to(hi_i, q_shape + _shape(x)[:-1]), -1), -1)[..., 0]
    out = _lerp(below, above, gamma)
    # A NaN in a slice makes its quantile NaN (or, ignoring NaNs, an all-NaN slice).
    undefined = equal(n, 0) if ignore_nan else any(nan_mask, axis=-1)
    out = where3(undefined, _np.nan, out)
    if keepdims:
        out = reshape(out, q_shape + keepdims_shape)
    return out


@_numpy_unless_traced(_np.quantile)
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
             weights=None):
    """``numpy.quantile`` of traced data (every method but weighted ones),
    as gathers from ``sort``; differentiable in ``a`` and in ``q``."""
    if weights is not None:
        raise ValueError("np.quantile with weights is not differentiable in probad.ad")
    return _quantile(a, q, axis, method, keepdims, ignore_nan=False)


@_numpy_unless_traced(_np.percentile)
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
               weights=None):
    """``numpy.percentile``: ``quantile`` of ``q / 100``."""
    return quantile(a, true_divide(q, 100), axis, method=method, keepdims=keepdims, weights=weights)


@_numpy_unless_traced(_np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``numpy.median``: the 0.5 quantile."""
    return quantile(a, 0.5, axis, keepdims=keepdims)


@_numpy_unless_traced(_np.nanquantile)
def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                weights=None):
    """``numpy.nanquantile``: quantiles of the non-NaN elements."""
    if weights is not None:
        raise ValueError("np.nanquantile with weights is not differentiable in probad.ad")
    return _quantile(a, q, axis, method, keepdims, ignore_nan=True)


@_numpy_unless_traced(_np.nanpercentile)
def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
                  weights=None):
    """``numpy.nanpercentile``."""
    return nanquantile(a, true_divide(q, 100), axis, method=method, keepdims=keepdims, weights=weights)


@_numpy_unless_traced(_np.nanmedian)
def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``numpy.nanmedian``."""
    return nanquantile(a, 0.5, axis, keepdims=keepdims)


@_numpy_unless_traced(_np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    """``numpy.ptp``: ``max - min``."""
    return max(a, axis=axis, keepdims=keepdims) - min(a, axis=axis, keepdims=keepdims)


@_numpy_unless_traced(_np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """``numpy.average``, differentiable in the data and the weights."""
    a = asarray(a)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        scale = _np.prod(_shape(a)) / _np.prod(_shape(avg)) if _np.size(getval(avg)) else 0
        scale = _np.full(_shape(avg), scale, dtype=_dtype(avg))
    else:
        w = asarray(weights)
        if _shape(w) != _shape(a):
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            axes = _reduced_axes(axis, _ndim(a))
            if _shape(w) != tuple(_shape(a)[d] for d in axes):
                raise ValueError("Shape of weights must be consistent with shape of a along specified axis.")
            w = reshape(w, tuple(_shape(a)[d] if d in axes else 1 for d in range(_ndim(a))))
        scale = sum(broadcast_to(w, _np.broadcast_shapes(_shape(w), _shape(a))), axis=axis, keepdims=keepdims)
        if _np.any(getval(scale) == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = sum(a * w, axis=axis, keepdims=keepdims) / scale
    if returned:
        return avg, broadcast_to(scale, _shape(avg))
    return avg


def _not_nan(a):
    return logical_not(isnan(a))


@_numpy_unless_traced(_np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.nansum``: NaNs count as zero."""
    return sum(where3(isnan(a), 0, a), axis=axis, dtype=dtype, keepdims=keepdims, **kwargs)


@_numpy_unless_traced(_np.nanprod)
def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.nanprod``: NaNs count as one."""
    return prod(where3(isnan(a), 1, a), axis=axis, dtype=dtype, keepdims=keepdims, **kwargs)


def _nan_count_and_sum(a, axis, keepdims):
    count = sum(_not_nan(a), axis=axis, keepdims=keepdims)
    return count, sum(where3(isnan(a), 0, a), axis=axis, keepdims=keepdims)


@_numpy_unless_traced(_np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.nanmean``: the mean of the non-NaN elements (NaN for none)."""
    count, total = _nan_count_and_sum(a, axis, keepdims)
    empty = equal(count, 0)
    return where3(empty, _np.nan, total / where3(empty, 1, count))


@_numpy_unless_traced(_np.nanvar)
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """``numpy.nanvar``: the variance of the non-NaN elements."""
    ddof = kwargs.get("correction", ddof)
    count, total = _nan_count_and_sum(a, axis, True)
    mu = total / where3(equal(count, 0), 1, count)
    centred = where3(isnan(a), 0, a - mu)
    squares = real(centred * conj(centred)) if iscomplexobj(a) else centred * centred
    dof = sum(_not_nan(a), axis=axis, keepdims=keepdims) - ddof
    total_sq = sum(squares, axis=axis, keepdims=keepdims)
    bad = less_equal(dof, 0)
    return where3(bad, _np.nan, total_sq / where3(bad, 1, dof))


@_numpy_unless_traced(_np.nanstd)
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """``numpy.nanstd``; like ``std``, its gradient is zero where all the
    non-NaN elements are equal."""
    v = nanvar(a, axis=axis, ddof=ddof, keepdims=keepdims, **kwargs)
    zero = equal(v, 0)
    return where3(zero, 0.0, sqrt(where3(zero, 1.0, v)))


def _nan_extremum(reduce, fill, a, axis, keepdims, kwargs):
    masked = where3(isnan(a), fill, a)
    m = reduce(masked, axis=axis, keepdims=keepdims, **kwargs)
    all_nan = all(isnan(a), axis=axis, keepdims=keepdims)
    return where3(all_nan, _np.nan, m)


@_numpy_unless_traced(_np.nanmax)
def nanmax(a, axis=None, out=None, keepdims=False, **kwargs):
    """``numpy.nanmax``: the maximum ignoring NaNs (NaN for an all-NaN slice)."""
    return _nan_extremum(max, -_np.inf, a, axis, keepdims, kwargs)


@_numpy_unless_traced(_np.nanmin)
def nanmin(a, axis=None, out=None, keepdims=False, **kwargs):
    """``numpy.nanmin``: the minimum ignoring NaNs (NaN for an all-NaN slice)."""
    return _nan_extremum(min, _np.inf, a, axis, keepdims, kwargs)


@_numpy_unless_traced(_np.nancumsum)
def nancumsum(a, axis=None, dtype=None, out=None):
    """``numpy.nancumsum``: NaNs count as zero."""
    return cumsum(where3(isnan(a), 0, a), axis=axis, dtype=dtype)


@_numpy_unless_traced(_np.nancumprod)
def nancumprod(a, axis=None, dtype=None, out=None):
    """``numpy.nancumprod``: NaNs count as one."""
    return cumprod(where3(isnan(a), 1, a), axis=axis, dtype=dtype)


def _cumulative(accumulate, initial, x, axis, dtype, include_initial):
    if axis is None:
        if _ndim(x) > 1:
            raise ValueError("For arrays which have more than one dimension ``axis`` argument is required.")
        x, axis = atleast_1d(x), 0
    out = accumulate(x, axis=axis, dtype=dtype)
    if include_initial:
        shape = list(_shape(out))
        shape[_axis(axis, len(shape))] = 1
        out = concatenate([_np.full(shape, initial, dtype=_dtype(out)), out], axis=axis)
    return out


@_numpy_unless_traced(_np.cumulative_sum)
def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """``numpy.cumulative_sum``."""
    return _cumulative(cumsum, 0, x, axis, dtype, include_initial)


@_numpy_unless_traced(_np.cumulative_prod)
def cumulative_prod(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    """``numpy.cumulative_prod``."""
    return _cumulative(cumprod, 1, x, axis, dtype, include_initial)


@_numpy_unless_traced(_np.cov)
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    """``numpy.cov``, differentiable in the data and in the weights."""
    X = atleast_2d(asarray(m))
    if not rowvar and _shape(X)[0] != 1:
        X = transpose(X)
    if y is not None:
        Y = atleast_2d(asarray(y))
        if not rowvar and _shape(Y)[0] != 1:
            Y = transpose(Y)
        X = concatenate([X, Y], axis=0)
    if dtype is not None:
        X = astype_(X, dtype)
    if ddof is None:
        ddof = 0 if bias else 1
    w = None
    if fweights is not None:
        w = asarray(fweights)
    if aweights is not None:
        w = asarray(aweights) if w is None else w * asarray(aweights)
    if w is None:
        avg = mean(X, axis=1)
        fact = _shape(X)[1] - ddof
    else:
        avg, w_sum = average(X, axis=1, weights=w, returned=True)
        w_sum = w_sum[0]
        if ddof == 0:
            fact = w_sum
        elif aweights is None:
            fact = w_sum - ddof
        else:
            fact = w_sum - ddof * sum(w * asarray(aweights)) / w_sum
    fact = maximum(fact, 0.0) if isinstance(fact, Box) else float(builtins.max(fact, 0))
    centred = X - expand_dims(avg, 1)
    weighted = centred if w is None else centred * w
    c = dot(centred, conj(transpose(weighted))) / fact
    return squeeze(c)


@_numpy_unless_traced(_np.corrcoef)
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """``numpy.corrcoef``: the covariance scaled to unit diagonal."""
    c = cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return c / c
    d = sqrt(real(diagonal(c)))
    c = c / expand_dims(d, 1) / expand_dims(d, 0)
    if iscomplexobj(c):
        return clip(real(c), -1, 1) + 1j * clip(imag(c), -1, 1)
    return clip(c, -1, 1)


@_numpy_unless_traced(_np.trapezoid)
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """``numpy.trapezoid``: the trapezoidal rule."""
    y = asarray(y)
    nd = _ndim(y)
    if x is None:
        d = dx
    else:
        x = asarray(x)
        if _ndim(x) == 1:
            shape = [1] * nd
            shape[axis] = _shape(x)[0] - 1
            d = reshape(diff(x), shape)
        else:
            d = diff(x, axis=axis)
    upper = getitem(y, _along(axis, nd, slice(1, None)))
    lower = getitem(y, _along(axis, nd, slice(None, -1)))
    return sum(d * (upper + lower) / 2.0, axis=axis)


@_numpy_unless_traced(_np.diff)
def diff(a, n=1, axis=-1, prepend=None, append=None):
    """``numpy.diff``: repeated differences of neighbours."""
    if n < 0:
        raise ValueError("order must be non-negative but got " + repr(n))
    a = asarray(a)
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    parts = []
    for extra, at_end in ((prepend, False), (append, True)):
        if extra is not None:
            extra = asarray(extra)
            if _ndim(extra) == 0:
                shape = list(_shape(a))
                shape[axis] = 1
                extra = broadcast_to(extra, tuple(shape))
            parts.append((at_end, extra))
    if parts:
        a = concatenate([e for end, e in parts if not end] + [a] + [e for end, e in parts if end], axis=axis)
    upper, lower = _along(axis, nd, slice(1, None)), _along(axis, nd, slice(None, -1))
    for _ in range(n):
        a = getitem(a, upper) - getitem(a, lower)
    return a


@_numpy_unless_traced(_np.ediff1d)
def ediff1d(ary, to_end=None, to_begin=None):
    """``numpy.ediff1d``."""
    parts = [diff(ravel(ary))]
    if to_begin is not None:
        parts.insert(0, ravel(asarray(to_begin)))
    if to_end is not None:
        parts.append(ravel(asarray(to_end)))
    return concatenate(parts)


def _gradient_along(f, axis, spacing, edge_order):
    nd, n = _ndim(f), _shape(f)[axis]
    if n < edge_order + 1:
        raise ValueError("Shape of array too small to calculate a numerical gradient, "
                         "at least (edge_order + 1) elements are required.")

    def sl(start, stop=None):
        return getitem(f, _along(axis, nd, slice(start, stop)))

    def along_axis(v):  # reshape a 1-d coefficient array to broadcast along `axis`
        shape = [1] * nd
        shape[axis] = -1
        return reshape(v, shape)

    if _ndim(spacing) == 0:
        h = spacing
        interior = (sl(2, None) - sl(0, -2)) / (2.0 * h)
        if edge_order == 1:
            first = (sl(1, 2) - sl(0, 1)) / h
            last = (sl(-1, None) - sl(-2, -1)) / h
        else:
            first = (-1.5 * sl(0, 1) + 2.0 * sl(1, 2) - 0.5 * sl(2, 3)) / h
            last = (0.5 * sl(-3, -2) - 2.0 * sl(-2, -1) + 1.5 * sl(-1, None)) / h
    else:
        # Second-order differences on a non-uniform grid with steps dx.
        dx = diff(asarray(spacing))
        dx1, dx2 = along_axis(dx[:-1]), along_axis(dx[1:])
        a = -dx2 / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        interior = a * sl(0, -2) + b * sl(1, -1) + c * sl(2, None)
        if edge_order == 1:
            first = (sl(1, 2) - sl(0, 1)) / dx[0]
            last = (sl(-1, None) - sl(-2, -1)) / dx[-1]
        else:
            d1, d2 = dx[0], dx[1]
            first = (-(2.0 * d1 + d2) / (d1 * (d1 + d2)) * sl(0, 1) + (d1 + d2) / (d1 * d2) * sl(1, 2)
                     - d1 / (d2 * (d1 + d2)) * sl(2, 3))
            d1, d2 = dx[-2], dx[-1]
            last = (d2 / (d1 * (d1 + d2)) * sl(-3, -2) - (d2 + d1) / (d1 * d2) * sl(-2, -1)
                    + (2.0 * d2 + d1) / (d2 * (d1 + d2)) * sl(-1, None))
    return concatenate([first, interior, last], axis=axis)


@_numpy_unless_traced(_np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1):
    """``numpy.gradient``: central differences inside, one-sided ones (of
    ``edge_order``) at the ends; spacings may be scalars or coordinates."""
    f = asarray(f)
    if not _np.issubdtype(_dtype(f), _np.inexact):
        f = astype_(f, float)
    nd = _ndim(f)
    axes = tuple(range(nd)) if axis is None else \
        tuple(_axis(a, nd) for a in ((axis,) if isinstance(axis, int) else axis))
    if len(varargs) == 0:
        spacings = [1.0] * len(axes)
    elif len(varargs) == 1 and _ndim(varargs[0]) == 0:
        spacings = list(varargs) * len(axes)
    elif len(varargs) == len(axes):
        spacings = list(varargs)
    else:
        raise TypeError("invalid number of arguments")
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    out = tuple(_gradient_along(f, ax, h, edge_order) for ax, h in zip(axes, spacings))
    return out[0] if len(out) == 1 else out


@_numpy_unless_traced(_np.unwrap)
def unwrap(p, discont=None, axis=-1, *, period=2 * _np.pi):
    """``numpy.unwrap``: add multiples of ``period`` to remove jumps; the
    corrections are locally constant, so the derivative is the identity."""
    p = asarray(p)
    nd = _ndim(p)
    dd = diff(p, axis=axis)
    if discont is None:
        discont = period / 2
    high = period / 2
    low = -high
    ddmod = mod(dd - low, period) + low
    ddmod = where3(logical_and(equal(ddmod, low), greater(dd, 0)), high, ddmod)
    correction = where3(less(abs(dd), discont), 0.0, ddmod - dd)
    head = getitem(p, _along(axis, nd, slice(None, 1)))
    tail = getitem(p, _along(axis, nd, slice(1, None))) + cumsum(correction, axis=axis)
    return concatenate([head, tail], axis=axis)


@_numpy_unless_traced(_np.interp)
def interp(x, xp, fp, left=None, right=None, period=None):
    """``numpy.interp``: piecewise-linear interpolation, differentiable in
    ``x``, the knots ``xp`` and the values ``fp``."""
    x, xp, fp = asarray(x), asarray(xp), asarray(fp)
    if period is not None:
        if period == 0:
            raise ValueError("period must be a non-zero value")
        period = builtins.abs(period)
        left = right = None
        x, xp = mod(x, period), mod(xp, period)
        order = argsort(xp)
        xp, fp = take(xp, order), take(fp, order)
        xp = concatenate([xp[-1:] - period, xp, xp[0:1] + period])
        fp = concatenate([fp[-1:], fp, fp[0:1]])
    n = _shape(xp)[0]
    left = fp[0] if left is None else left
    right = fp[-1] if right is None else right
    if n == 1:
        inside = fp[0] + 0 * x
    else:
        j = clip(searchsorted(xp, x, side="right") - 1, 0, n - 2)
        x0, x1, f0, f1 = take(xp, j), take(xp, j + 1), take(fp, j), take(fp, j + 1)
        width = x1 - x0
        flat = equal(width, 0)
        slope = where3(flat, 0.0, (f1 - f0) / where3(flat, 1.0, width))
        inside = where3(equal(x, xp[-1]), fp[-1], f0 + slope * (x - x0))
    return where3(less(x, xp[0]), left, where3(greater(x, xp[-1]), right, inside))


@_numpy_unless_traced(_np.bincount)
def bincount(x, /, weights=None, minlength=0):
    """``numpy.bincount``, differentiable in ``weights``."""
    if weights is None:
        return _np.bincount(getval(x), minlength=minlength)
    length = _np.maximum(int(max(x)) + 1 if _np.size(getval(x)) else 0, minlength)
    weights = asarray(weights)
    return untake(weights, x, (length,), _np.result_type(_dtype(weights), float))


# ------------------------------------------------------------- products
@_numpy_unless_traced(_np.inner)
def inner(a, b, /):
    """``numpy.inner``: contract the last axes (no conjugation)."""
    if _ndim(a) == 0 or _ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([_ndim(a) - 1], [_ndim(b) - 1]))


@_numpy_unless_traced(_np.vdot)
def vdot(a, b, /):
    """``numpy.vdot``: the flattened dot product, conjugating ``a``."""
    return dot(conj(ravel(a)), ravel(b))


@_numpy_unless_traced(_np.vecdot)
def vecdot(x1, x2, /, *, axis=-1, keepdims=False, **kwargs):
    """``numpy.vecdot``: ``sum(conj(x1) * x2, axis)``."""
    return sum(conj(x1) * x2, axis=axis, keepdims=keepdims)


@_numpy_unless_traced(_np.matvec)
def matvec(x1, x2, /, **kwargs):
    """``numpy.matvec``: stacked matrix times stacked vector."""
    return matmul(x1, expand_dims(x2, -1))[..., 0]


@_numpy_unless_traced(_np.vecmat)
def vecmat(x1, x2, /, **kwargs):
    """``numpy.vecmat``: conjugated stacked vector times stacked matrix."""
    return matmul(expand_dims(conj(x1), -2), x2)[..., 0, :]


@_numpy_unless_traced(_np.kron)
def kron(a, b):
    """``numpy.kron``: an outer product with interleaved axes, reshaped."""
    a, b = asarray(a), asarray(b)
    nd = _np.maximum(_ndim(a), _ndim(b))
    sa = (1,) * (nd - _ndim(a)) + _shape(a)
    sb = (1,) * (nd - _ndim(b)) + _shape(b)
    a_inter = reshape(a, tuple(x for n in sa for x in (n, 1)))
    b_inter = reshape(b, tuple(x for n in sb for x in (1, n)))
    return reshape(a_inter * b_inter, tuple(m * n for m, n in zip(sa, sb)))


@_numpy_unless_traced(_np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``numpy.cross`` of 3-vectors (or a 2-vector with a 3-vector)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(asarray(a), axisa, -1), moveaxis(asarray(b), axisb, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    if na == 2 and nb == 2:  # numpy's (deprecated) scalar cross product
        return a0 * b1 - a1 * b0
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    c = stack(broadcast_arrays(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), axis=-1)
    return moveaxis(c, -1, axisc)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _explicit_einsum(subscripts, shapes):
    """Rewrite einsum subscripts without ellipses and with an explicit output."""
    subscripts = subscripts.replace(" ", "")
    inputs, arrow, output = subscripts.partition("->")
    inputs = inputs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError("fewer operands provided to einstein sum function than specified in the subscripts string")
    free = [c for c in _LETTERS if c not in subscripts]
    n_ell = _np.max([len(s) - len(i.replace("...", "")) for i, s in zip(inputs, shapes) if "..." in i] or [0])
    ell = "".join(free[:n_ell])
    resolved = []
    for sub, shape in zip(inputs, shapes):
        if "..." in sub:
            k = len(shape) - len(sub.replace("...", ""))
            sub = sub.replace("...", ell[n_ell - k:] if k else "")
        resolved.append(sub)
    if arrow:
        output = output.replace("...", ell)
    else:
        counts = {}
        for c in "".join(resolved):
            counts[c] = counts.get(c, 0) + 1
        output = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    return ",".join(resolved) + "->" + output


def _sublist_subscripts(operands):
    """einsum(op0, sublist0, op1, sublist1, ..., [sublistout]) as a string."""
    def letters(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)

    ops, subs = list(operands[0::2]), [letters(s) for s in operands[1::2]]
    if len(operands) % 2:
        ops.pop()
        return ",".join(subs[: len(ops)]) + "->" + letters(operands[-1]), ops
    return ",".join(subs), ops


def einsum(*operands, **kwargs):
    """``numpy.einsum`` (any subscripts, ellipses, implicit output, or the
    sublist form), differentiable in every operand."""
    if not _has_box(operands):
        return _np.einsum(*operands, **kwargs)
    if isinstance(operands[0], str):
        subscripts, ops = operands[0], list(operands[1:])
    else:
        subscripts, ops = _sublist_subscripts(operands)
    kwargs = {k: v for k, v in kwargs.items() if k in ("dtype", "casting", "optimize")}
    return _einsum(_explicit_einsum(subscripts, [_shape(o) for o in ops]), *ops, **kwargs)


@_numpy_unless_traced(_np.correlate)
def correlate(a, v, mode="valid"):
    """``numpy.correlate``: a convolution with the conjugated, reversed ``v``."""
    return convolve(a, conj(flip(asarray(v))), mode)


# ---------------------------------------------------------- polynomials
@_numpy_unless_traced(_np.polyval)
def polyval(p, x):
    """``numpy.polyval`` by Horner's rule."""
    p = asarray(p)
    y = _np.zeros(_shape(x))
    for i in range(_shape(p)[0]):
        y = y * x + p[i]
    return y


def _poly_pair(a1, a2):
    a1, a2 = atleast_1d(asarray(a1)), atleast_1d(asarray(a2))
    n = _np.maximum(_shape(a1)[0], _shape(a2)[0])
    return (pad(a1, (n - _shape(a1)[0], 0)), pad(a2, (n - _shape(a2)[0], 0)))


@_numpy_unless_traced(_np.polyadd)
def polyadd(a1, a2):
    """``numpy.polyadd``."""
    x, y = _poly_pair(a1, a2)
    return x + y


@_numpy_unless_traced(_np.polysub)
def polysub(a1, a2):
    """``numpy.polysub``."""
    x, y = _poly_pair(a1, a2)
    return x - y


@_numpy_unless_traced(_np.polymul)
def polymul(a1, a2):
    """``numpy.polymul``: a convolution of the coefficients."""
    return convolve(atleast_1d(asarray(a1)), atleast_1d(asarray(a2)))


@_numpy_unless_traced(_np.polyder)
def polyder(p, m=1):
    """``numpy.polyder``."""
    p = atleast_1d(asarray(p))
    for _ in range(m):
        n = _shape(p)[0] - 1
        p = p[:-1] * _np.arange(n, 0, -1) if n > 0 else p * 0.0
    return p


@_numpy_unless_traced(_np.polyint)
def polyint(p, m=1, k=None):
    """``numpy.polyint``: integration constants ``k`` may be traced."""
    p = atleast_1d(asarray(p))
    k = _np.zeros(m) if k is None else k
    k = atleast_1d(asarray(k))
    if _shape(k)[0] == 1 and m > 1:
        k = broadcast_to(k, (m,))
    for i in range(m):
        n = _shape(p)[0]
        p = concatenate([true_divide(p, _np.arange(n, 0, -1)), k[i:i + 1]])
    return p


@_numpy_unless_traced(_np.polydiv)
def polydiv(u, v):
    """``numpy.polydiv``: synthetic division, returning quotient and remainder."""
    u, v = atleast_1d(asarray(u)) + 0.0, atleast_1d(asarray(v)) + 0.0
    m, n = _shape(u)[0] - 1, _shape(v)[0] - 1
    scale = 1.0 / v[0]
    r = u
    q = []
    for k in range(m - n + 1):
        d = scale * r[k]
        q.append(d)
        update = pad(d * v, (k, m - n - k))
        r = r - update
    q = stack(q) if q else _np.zeros(1)
    while allclose(r[0], 0, rtol=1e-14) and _shape(r)[-1] > 1:
        r = r[1:]
    return q, r


@_numpy_unless_traced(_np.poly)
def poly(seq_of_zeros):
    """``numpy.poly`` of a sequence of (traced) roots."""
    roots = atleast_1d(asarray(seq_of_zeros))
    if _ndim(roots) != 1:
        raise ValueError("probad.ad differentiates np.poly of a sequence of roots; for a matrix "
                         "pass np.linalg.eigvals(A)")
    a = _np.ones(1)
    for i in range(_shape(roots)[0]):
        a = convolve(a, stack([1.0, -roots[i]]))
    if iscomplexobj(roots):
        r = getval(roots)
        if _np.all(_np.sort(r) == _np.sort(_np.conj(r))):
            a = real(a)
    return a


@_numpy_unless_traced(_np.vander)
def vander(x, N=None, increasing=False):
    """``numpy.vander``: columns of powers, built by a cumulative product
    (as numpy does) so the values agree exactly."""
    x = asarray(x)
    n = _shape(x)[0]
    N = n if N is None else N
    if N == 0:
        return _np.zeros((n, 0), dtype=_dtype(x))
    factors = concatenate([_np.ones((n, 1), dtype=_dtype(x)), broadcast_to(expand_dims(x, 1), (n, N - 1))],
                          axis=1)
    powers = cumprod(factors, axis=1)
    return powers if increasing else flip(powers, axis=1)


# ----------------------------------------------------------------- ranges
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """``numpy.linspace``, differentiable in ``start`` and ``stop``."""
    if not _has_box((start, stop)):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    start, stop = asarray(start), asarray(stop)
    div = num - 1 if endpoint else num
    delta = stop - start
    extra = len(_np.broadcast_shapes(_shape(start), _shape(stop)))
    ramp = _np.arange(num, dtype=float).reshape((-1,) + (1,) * extra)
    step = delta / div if div > 0 else delta * _np.nan
    y = ramp * step + start if div > 0 else ramp * delta + start
    if endpoint and num > 1:
        y = concatenate([y[:-1], expand_dims(broadcast_to(stop, _shape(y)[1:]), 0)], axis=0)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None:
        y = astype_(y, dtype)
    return (y, step) if retstep else y


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """``numpy.logspace``, differentiable in ``start``, ``stop`` and ``base``."""
    if not _has_box((start, stop, base)):
        return _np.logspace(start, stop, num, endpoint, base, dtype, axis)
    y = linspace(start, stop, num, endpoint, axis=axis)
    base = asarray(base)
    if _ndim(base):
        base = expand_dims(base, axis)
    y = power(base, y)
    return y if dtype is None else astype_(y, dtype)


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """``numpy.geomspace`` (real endpoints of one sign), differentiable in both."""
    if not _has_box((start, stop)):
        return _np.geomspace(start, stop, num, endpoint, dtype, axis)
    start, stop = asarray(start), asarray(stop)
    y = logspace(log10(abs(start)), log10(abs(stop)), num, endpoint, axis=0) * sign(start)
    if num > 0:
        parts = [expand_dims(broadcast_to(start, _shape(y)[1:]), 0)]
        if endpoint and num > 1:
            parts += [y[1:-1], expand_dims(broadcast_to(stop, _shape(y)[1:]), 0)]
        else:
            parts.append(y[1:])
        y = concatenate(parts, axis=0)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    return y if dtype is None else astype_(y, dtype)


# ---------------------------------------------------- applying functions
@_numpy_unless_traced(_np.apply_along_axis)
def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """``numpy.apply_along_axis`` of a (differentiable) Python function."""
    arr = asarray(arr)
    nd = _ndim(arr)
    axis = _axis(axis, nd)
    moved = moveaxis(arr, axis, -1)
    batch = _shape(moved)[:-1]
    results = [asarray(func1d(moved[idx], *args, **kwargs)) for idx in _np.ndindex(*batch)]
    out = reshape(stack(results), batch + _shape(results[0]))
    # The function's own axes replace `axis`.
    k = _ndim(results[0])
    return moveaxis(out, tuple(range(len(batch), len(batch) + k)), tuple(range(axis, axis + k)))


@_numpy_unless_traced(_np.apply_over_axes)
def apply_over_axes(func, a, axes):
    """``numpy.apply_over_axes``: ``func(a, axis)`` for each axis in turn,
    keeping the number of dimensions."""
    val = asarray(a)
    nd = _ndim(val)
    for axis in (axes,) if isinstance(axes, int) else axes:
        res = func(val, _axis(axis, nd))
        if _ndim(res) == _ndim(val):
            val = res
        elif _ndim(res) == _ndim(val) - 1:
            val = expand_dims(res, _axis(axis, nd))
        else:
            raise ValueError("function is not returning an array of the correct shape")
    return val


# ------------------------------------------------- index-expression builders
class _Concatenator:
    """``np.r_[...]`` and ``np.c_[...]`` that accept traced pieces.

    numpy's own object lays the pieces out (slices, scalars, 1-d columns,
    string directives and all): it is run on stand-ins holding each traced or
    constant element's position in one flat vector of every element, and the
    result says where each output element comes from, a gather.
    """

    def __init__(self, numpy_concatenator):
        self._numpy = numpy_concatenator

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not _has_box(items):
            return self._numpy[key]
        values, stand_ins, count = [], [], 0
        for item in items:
            if isinstance(item, str):
                stand_ins.append(item)  # a directive ("r", "0,2", ...)
                continue
            if isinstance(item, slice):
                item = self._numpy[item]  # a range: a constant piece
            value = asarray(item)
            n = int(_np.prod(_shape(value)))
            values.append(ravel(value))
            stand_ins.append(_np.arange(count, count + n).reshape(_shape(value)))
            count += n
        positions = self._numpy[tuple(stand_ins)]
        return getitem(concatenate(values), positions)


r_ = _Concatenator(_np.r_)
c_ = _Concatenator(_np.c_)


# Bring public names back as module attributes for ``from ... import *``.
__all__ = sorted(n for n in list(globals()) if not n.startswith("_") and n not in {
    "annotations", "builtins", "functools", "types", "Box", "getval", "nondiff_primitive",
    "notrace_primitive", "primitive", "NONDIFF_NAMES", "NOTRACE_NAMES",
    "MUTATING_NAMES", "UNSUPPORTED", "COMPOSITE_NAMES", "PASSTHROUGH_NAMES"})
