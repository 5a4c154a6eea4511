"""From a recorded trace to straight-line Python: optimise, then emit source.

The replay function has one line per kept op, ``v12 = f_exp(v3)``, calling
the raw numpy function (``prim.fun``) with no box, trace or rule in sight.
Guards are checked inline where they were taken, so nothing after a failed
guard runs. Three passes, each keeping results bit-for-bit identical:

1. *simplification* drops ops that provably return their operand unchanged
   (``reshape`` to the same shape, ``x * 1.0``, ``where`` on a constant
   condition, ...; not ``sum`` over no axes, which turns -0.0 into +0.0),
   each by the rewrite its primitive declares (``SIMPLIFICATIONS``),
   and repeated computations (common subexpressions: the backward pass
   recomputes what the forward pass had);
2. *dead-code elimination* keeps only ops that an output or a guard needs,
   and those that may raise (an unused Cholesky factor is a check);
   around it, two rewrites of what the backward pass leaves behind: an
   elementwise op reads a ``broadcast_to`` view's operand directly (a
   site's scalar ``scale`` broadcast over its plate is divided into each
   element as before, but its ``log`` is taken once, not once per element),
   and a sum of scatters into disjoint slices of zeros (each site's share
   of the gradient of ``q``) is written into one buffer;
3. *emission* writes arithmetic on float scalars as Python operators
   (IEEE ``+ - * /`` are correctly rounded, so numpy's scalar path gives the
   same bits as the ufunc at a tenth of the cost) and indexing as ``a[i]``.
"""
from __future__ import annotations

import builtins
import itertools
import linecache
import math
import re

import numpy as onp
from numpy.lib import NumpyVersion

from .. import builtins as containers
from ..numpy import numpy_wrapper as anp
from ..tracer import constant_key
from .tape import Guard, Op, Ref, shape_signature

__all__ = ["Tape", "GuardFailure", "build_tape", "SIMPLIFICATIONS"]


class GuardFailure(Exception):
    """Raised inside a replay when a guard does not hold: try another tape."""


class Tape:
    """One recorded path through a function, ready to replay.

    Attributes
    ----------
    ops : list of Op
        The primitive calls the replay makes, in order (after optimisation).
    guards : list of Guard
        The checks the replay makes; a failing one aborts the replay.
    outputs : nest of Ref and constants
        What the replay returns, in the function's output structure.
    n_inputs : int
        Number of array leaves the replay takes (slots ``v0 ..``).
    n_recorded : int
        Ops recorded before optimisation.
    source : str
        The generated Python source of ``replay``.
    replay : callable
        ``replay(*leaves)``: the compiled straight-line function.
    meta : list of tuple
        ``(type, shape, dtype)`` of every value slot (what other backends lower from).
    positions : list of int
        Where each op of ``ops`` was recorded (guards are checked by position).
    native : Program or None
        The tape lowered for the native interpreter, when ``replay`` runs it.
    """

    def __init__(self, ops, guards, outputs, n_inputs, n_recorded, source, replay, meta=None,
                 positions=None):
        self.meta = meta
        self.positions = positions
        self.native = None
        self.ops = ops
        self.guards = guards
        self.outputs = outputs
        self.n_inputs = n_inputs
        self.n_recorded = n_recorded
        self.source = source
        self.replay = replay

    def __repr__(self):
        return (f"<Tape: {self.n_inputs} inputs, {len(self.ops)} ops "
                f"({self.n_recorded} recorded), {len(self.guards)} guards>")


# --------------------------------------------------------------- peepholes
def _same_meta(meta, a, b) -> bool:
    ta, sa, da = meta[a]
    tb, sb, db = meta[b]
    return ta is tb and sa == sb and da == db


def _all_equal(const, target, *, positive_zero=False) -> bool:
    if isinstance(const, (onp.ndarray, onp.generic, float, int)) and not isinstance(const, bool):
        arr = onp.asarray(const)
        if arr.dtype.kind not in "fiu" or not onp.all(arr == target):
            return False
        return not (positive_zero and onp.any(onp.signbit(arr)))
    return False


def _is_float_ref(meta, arg) -> bool:
    return isinstance(arg, Ref) and getattr(meta[arg.index][2], "kind", None) == "f"


def _operand(op, meta):
    """Reshape, ravel, squeeze, broadcast_to, a cast: the operand itself when
    its type, shape and dtype come out unchanged."""
    return op.args[0]


def _identity_transpose(op, meta):
    """``transpose`` of a vector or scalar, or by the identity permutation."""
    x = op.args[0]
    if not isinstance(x, Ref):
        return None
    shape = meta[x.index][1]
    axes = op.args[1] if len(op.args) > 1 else op.kwargs.get("axes")
    if shape is not None and (len(shape) <= 1 or axes is not None
                              and tuple(int(a) for a in axes) == tuple(range(len(shape)))):
        return x
    return None


def _binary_plain(op):
    """The two operands of a call with no keywords, else None."""
    return None if len(op.args) != 2 or op.kwargs else op.args


def _times_one(op, meta):
    """``x * 1`` and ``1 * x`` on real floats."""
    args = _binary_plain(op)
    if args is not None:
        x, y = args
        if _is_float_ref(meta, x) and _all_equal(y, 1):
            return x
        if _is_float_ref(meta, y) and _all_equal(x, 1):
            return y
    return None


def _over_one(op, meta):
    """``x / 1`` on real floats."""
    args = _binary_plain(op)
    if args is not None and _is_float_ref(meta, args[0]) and _all_equal(args[1], 1):
        return args[0]
    return None


def _minus_zero(op, meta):
    """``x - (+0.0)`` on real floats (``x - (-0.0)`` turns -0.0 into +0.0)."""
    args = _binary_plain(op)
    if args is not None and _is_float_ref(meta, args[0]) and _all_equal(args[1], 0, positive_zero=True):
        return args[0]
    return None


def _constant_condition(op, meta):
    """``where(c, x, y)`` with a constant condition that picks one side everywhere
    (the backward pass of ``x ** 2`` makes ``where(2, ..., 0.0)``)."""
    if len(op.args) != 3 or op.kwargs or isinstance(op.args[0], Ref):
        return None
    cond = onp.asarray(op.args[0])
    if cond.dtype.kind not in "biuf":
        return None
    if onp.all(cond):
        return op.args[1]
    if not onp.any(cond):
        return op.args[2]
    return None


#: The rewrites a primitive may name as its ``simplify`` (``core.defprimitive``):
#: ``(op, meta) ->`` the operand the op provably returns unchanged, or None.
#: An answer counts only if that operand's type, shape and dtype are the
#: op's own (``_identity_operand``).
SIMPLIFICATIONS = {
    "operand": _operand,
    "transpose": _identity_transpose,
    "times_one": _times_one,
    "over_one": _over_one,
    "minus_zero": _minus_zero,
    "constant_condition": _constant_condition,
}


def _identity_operand(op: Op, meta):
    """The Ref that ``op`` provably returns unchanged, or None."""
    rule = op.prim.simplify
    if rule is None or op.shape is not None or op.errstate is not None or not op.args:
        return None
    ref = SIMPLIFICATIONS[rule](op, meta)
    if isinstance(ref, Ref) and _same_meta(meta, ref.index, op.out):
        return ref
    return None


def _frozen(array) -> bool:
    """Whether nothing can change ``array`` behind the tape's back: it is
    read-only, and so is every array whose memory it views. The tape's own
    snapshots of writeable constants (``RecordTrace._constant``) are such."""
    while isinstance(array, onp.ndarray):
        if array.flags.writeable:
            return False
        array = array.base
    return array is None


def _constant_key(value):
    """A constant compared by value where it cannot change (scalars, small
    frozen arrays: a one-hot mask that a loop builds afresh at every step is
    one constant, and tuples of these), by identity otherwise."""
    return constant_key(value, _frozen)


def _op_key(op):
    args = tuple(("ref", a.index) if isinstance(a, Ref) else _constant_key(a) for a in op.args)
    kwargs = tuple((k, _constant_key(v)) for k, v in op.kwargs.items())
    return id(op.prim.fun), args, kwargs, repr(op.errstate)


def _simplify(ops, meta):
    """Drop identity ops and repeated computations (common subexpressions);
    return ``(kept ops, alias map)`` where ``alias`` maps a dropped op's
    output to the slot holding the same value."""
    alias: dict[int, Ref] = {}
    seen: dict[tuple, int] = {}
    kept = []
    for op in ops:
        if alias:
            op.args = tuple(alias.get(a.index, a) if isinstance(a, Ref) else a for a in op.args)
        target = _identity_operand(op, meta)
        if target is None:
            key = _op_key(op)
            if key in seen:
                target = Ref(seen[key])
            else:
                seen[key] = op.out
                kept.append(op)
                continue
        alias[op.out] = target
    return kept, alias


def _live_ops(ops, roots):
    """Dead-code elimination: the ops an output or a guard depends on, and
    those that may raise (``primitive.may_raise``): an unused Cholesky factor
    still checks that its matrix is positive definite, as it did when the
    function ran."""
    live = set(roots)
    kept = []
    for op in reversed(ops):
        if op.out in live or op.prim.may_raise:
            kept.append(op)
            live.update(a.index for a in op.args if isinstance(a, Ref))
    kept.reverse()
    return kept


def _plain(op) -> bool:
    """No keywords, no replay-time shape check, no numpy error state of its own."""
    return not op.kwargs and op.shape is None and op.errstate is None


def _shape(arg, meta):
    return meta[arg.index][1] if isinstance(arg, Ref) else onp.shape(arg)


def _absorb_broadcasts(ops, meta, position, outputs):
    """Let elementwise ops read through ``broadcast_to`` views.

    A binary ufunc whose other operand already has the full shape gets the
    view's operand instead: numpy broadcasts it the same way, so every
    element is computed from the same two numbers. A unary ufunc of a view
    is computed once on the operand and broadcast afterwards (numpy's loops
    give the same bits for one element as for a strided array of copies);
    that broadcast may in turn be absorbed. A view no op reads any more is
    then dead code. An output keeps its own fresh array: the function's
    caller may write into it. Returns the new op list; ``position`` gets
    entries for the ops made here.
    """
    viewed: dict[int, Ref] = {}  # slot of a broadcast view -> the Ref it views
    kept = []
    for op in ops:
        fun = op.prim.fun
        if fun is _BROADCAST_TO and _plain(op) and len(op.args) == 2 \
                and isinstance(op.args[0], Ref):
            viewed[op.out] = op.args[0]
        elif isinstance(fun, onp.ufunc) and fun.nout == 1 and len(op.args) == fun.nin \
                and _plain(op) and meta[op.out][0] is onp.ndarray:
            args = op.args
            if fun.nin == 2:
                for i in (0, 1):
                    a = args[i]
                    if isinstance(a, Ref) and a.index in viewed:
                        x = viewed[a.index]
                        other, x_shape = _shape(args[1 - i], meta), meta[x.index][1]
                        if other is not None and x_shape is not None \
                                and onp.broadcast_shapes(other, x_shape) == meta[op.out][1]:
                            args = args[:i] + (x,) + args[i + 1:]
                op.args = args
            elif isinstance(args[0], Ref) and args[0].index in viewed and op.out not in outputs \
                    and meta[viewed[args[0].index].index][1] is not None:
                x = viewed[args[0].index]
                x_shape = meta[x.index][1]
                dtype = meta[op.out][2]
                # A ufunc returns a numpy scalar, not a 0-d array, for 0-d input.
                meta.append((onp.ndarray if x_shape else dtype.type, x_shape, dtype))
                inner = Op(op.prim, (x,), {}, len(meta) - 1)
                position[id(inner)] = position[id(op)]
                kept.append(inner)
                op.prim, op.args = anp.broadcast_to, (Ref(inner.out), meta[op.out][1])
                viewed[op.out] = Ref(inner.out)
        kept.append(op)
    return kept


def _fuse_scatters(ops, meta, roots):
    """Write sums of scatters into disjoint slices as one buffer.

    The gradient of ``q`` arrives as ``untake(g1, s1) + untake(g2, s2) +
    ...``: one array of zeros per site and a full-size add per site. When
    the slices are basic indices that share no element and each partial
    result feeds only the next add, one ``scatter_disjoint`` writes every
    ``g`` into one array of zeros, adding each to the zeros there (so the
    bits, signed zeros included, are those of the adds).
    """
    uses: dict[int, int] = {}
    for ref in itertools.chain(roots, (a.index for op in ops for a in op.args
                                       if isinstance(a, Ref))):
        uses[ref] = uses.get(ref, 0) + 1
    terms: dict[int, list] = {}  # slot -> [(index, g)] that it is the sum of scatters of
    target: dict[int, tuple] = {}  # slot -> (shape, dtype) of those zeros
    kept = []
    for op in ops:
        fun, args = op.prim.fun, op.args
        if fun is _UNTAKE and _plain(op) and len(args) == 4 and not isinstance(args[1], Ref) \
                and anp._is_basic_index(args[1]):
            terms[op.out] = [(args[1], args[0])]
            target[op.out] = (args[2], args[3])
        elif fun is onp.add and _plain(op) and len(args) == 2 \
                and all(isinstance(a, Ref) and uses[a.index] == 1 and a.index in terms
                        for a in args) \
                and target[args[0].index] == target[args[1].index]:
            a, b = args[0].index, args[1].index
            terms[op.out] = terms.pop(a) + terms.pop(b)
            target[op.out] = target[a]
        kept.append(op)
    fused = {slot: parts for slot, parts in terms.items()
             if len(parts) > 1 and _disjoint(target[slot][0], [i for i, _ in parts])}
    if not fused:
        return ops
    absorbed = {a.index for op in kept if op.out in fused for a in op.args}
    while absorbed:  # the untakes and adds inside a fused sum
        absorbed_ops = [op for op in kept if op.out in absorbed]
        kept = [op for op in kept if op.out not in absorbed]
        absorbed = {a.index for op in absorbed_ops if op.prim.fun is onp.add for a in op.args}
    for op in kept:
        if op.out in fused:
            shape, dtype = target[op.out]
            op.prim = scatter_disjoint
            op.args = (shape, dtype) + tuple(x for part in fused[op.out] for x in part)
    return kept


def _disjoint(shape, indices) -> bool:
    """Whether the basic ``indices`` into an array of ``shape`` share no element."""
    count = onp.zeros(shape, dtype=onp.intp)
    for index in indices:
        count[index] += 1
    return count.max(initial=0) <= 1


class _ScatterDisjoint:
    """The op ``_fuse_scatters`` makes: ``fun(shape, dtype, index1, g1, ...)``.
    ``fun`` states what the op computes for whoever reads a tape; the replay
    writes the same steps inline (``_emit_op``), saving a call and a loop."""

    __name__ = "scatter_disjoint"
    may_raise = False
    lowerings = {"native": "scatter_disjoint"}

    @staticmethod
    def fun(shape, dtype, *parts):
        out = onp.zeros(shape, dtype=dtype)
        for i in range(0, len(parts), 2):
            out[parts[i]] += parts[i + 1]
        return out


scatter_disjoint = _ScatterDisjoint()


# ---------------------------------------------------------------- emission
_BROADCAST_TO = anp.broadcast_to.fun
_UNTAKE = anp.untake.fun
_ARITHMETIC = {onp.add: "+", onp.subtract: "-", onp.multiply: "*", onp.divide: "/"}
_INDEXING = {anp.getitem.fun, containers.container_take.fun}
_WRAPPERS = {onp.sum: "sum", onp.mean: "mean", onp.reshape: "reshape", onp.expand_dims: "reshape",
             onp.squeeze: "squeeze", onp.transpose: "transpose", onp.swapaxes: "swapaxes"}
_FLOAT_SCALARS = (onp.float64, onp.float32)
_FLOAT_DTYPES = (onp.dtype(onp.float64), onp.dtype(onp.float32))
# Since numpy 2.3 (numpy PR 27901) the float power loop computes ``x * x``
# for a broadcast exponent of 2, so ``x * x`` is the ufunc's exact result.
# Not ``x ** 2``: numpy scalars' ``**`` calls libm pow, which differs in the
# last bit for about one input in a thousand.
_SQUARE_IS_PRODUCT = NumpyVersion(onp.__version__) >= "2.3.0"
_LITERAL_TYPES = (type(None), bool, int, str)


def _is_literal(value) -> bool:
    if type(value) in _LITERAL_TYPES:
        return True
    return type(value) is tuple and all(type(v) in _LITERAL_TYPES for v in value)


def _scalar_operand(arg, meta) -> bool:
    if isinstance(arg, Ref):
        return meta[arg.index][0] in _FLOAT_SCALARS
    t = type(arg)
    return t in _FLOAT_SCALARS or t is float or (t is int and abs(arg) <= 2**53) \
        or t is onp.ndarray and arg.shape == () and arg.dtype in _FLOAT_DTYPES


def _scalar_arg(em, arg) -> str:
    """A ``_scalar_operand`` in source; a 0-d array constant (a distribution's
    parameter) as the numpy scalar it holds: a ufunc returns a scalar either way."""
    return em.arg(arg[()] if type(arg) is onp.ndarray else arg)


def _is_square(op, meta) -> bool:
    """``power(x, 2)`` on a float32/float64 scalar or array ``x``."""
    if op.kwargs or len(op.args) != 2 or not isinstance(op.args[0], Ref) \
            or type(op.args[1]) not in (int, float) or op.args[1] != 2:
        return False
    x = op.args[0].index
    return meta[x][2] in _FLOAT_DTYPES and _same_meta(meta, x, op.out)


def _as_operator(op, meta) -> bool:
    """Whether Python's operator gives the ufunc's exact result (see module doc)."""
    if op.kwargs or len(op.args) != 2 or meta[op.out][0] not in _FLOAT_SCALARS:
        return False
    return all(_scalar_operand(a, meta) for a in op.args)


def same_value(a, b) -> bool:
    """Exact equality of concrete Python values: the sign of zero counts and
    NaN equals NaN, so a guard holds exactly when Python would see the same."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)
    if isinstance(a, complex):
        return same_value(a.real, b.real) and same_value(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


class _Emitter:
    """Names for functions and constants in the generated module namespace."""

    def __init__(self):
        self.namespace = {"__name__": __name__, "GuardFailure": GuardFailure,
                          "same_value": same_value, "shape_signature": shape_signature,
                          "errstate": onp.errstate, "__builtins__": builtins}
        self._names: dict[int, str] = {}
        self._counter = itertools.count()

    def reserve(self, prefix: str) -> str:
        """A fresh identifier based on ``prefix``, claimed in the namespace."""
        base = re.sub(r"\W", "_", prefix)
        name = base if base.isidentifier() and base not in self.namespace \
            else f"{base}_{next(self._counter)}"
        self.namespace[name] = None
        return name

    def bind(self, value, prefix: str) -> str:
        key = id(value)
        name = self._names.get(key)
        if name is None:
            name = self.reserve(prefix)
            self.namespace[name] = value
            self._names[key] = name
        return name

    def arg(self, value) -> str:
        if isinstance(value, Ref):
            return f"v{value.index}"
        if _is_literal(value):
            return repr(value)
        return self.bind(value, "c" + str(next(self._counter)))

    def fun(self, prim) -> str:
        return self.bind(prim.fun, "f_" + prim.__name__)


_REDUCTION_PARAMS = ("axis", "dtype", "out", "keepdims", "initial", "where")
_ADD_REDUCE = onp.add.reduce


def _as_method(em: _Emitter, op: Op, meta) -> str | None:
    """Numpy's Python-level wrappers that, for an exact ndarray, only call an
    ndarray method or ``add.reduce`` (see numpy's ``fromnumeric.py``): call
    that directly. The wrappers cost 1-3 us per call on small arrays."""
    fun, args, kwargs = op.prim.fun, op.args, op.kwargs
    if fun not in _WRAPPERS or not isinstance(args[0], Ref):
        return None
    kind = meta[args[0].index][0]
    if fun is onp.sum and len(args) == 1 and not kwargs and issubclass(kind, onp.generic):
        # The sum of a numpy scalar (a site's log density summed to one number)
        # is that scalar: add.reduce gives it, of the same type, for 1/5 the cost.
        return f"{em.bind(_ADD_REDUCE, 'add_reduce')}({em.arg(args[0])}, None)"
    # A numpy scalar's reshape method is what numpy.reshape calls for it too.
    if kind is not onp.ndarray and not (fun is onp.reshape and issubclass(kind, onp.generic)):
        return None
    x = em.arg(args[0])
    if fun is onp.sum:
        params = dict(zip(_REDUCTION_PARAMS, args[1:]))
        if len(args) > 7 or set(kwargs) - set(_REDUCTION_PARAMS) or set(params) & set(kwargs):
            return None
        params.update(kwargs)
        head = [em.arg(params.pop(k, None)) for k in ("axis", "dtype", "out")]
        tail = [f"{k}={em.arg(v)}" for k, v in params.items() if v is not onp._NoValue]
        return f"{em.bind(_ADD_REDUCE, 'add_reduce')}({', '.join([x] + head + tail)})"
    if fun is onp.expand_dims:
        return f"{x}.reshape({meta[op.out][1]!r})"
    if fun is onp.reshape:
        if len(args) != 2 or set(kwargs) - {"order", "copy"}:
            return None
        extra = f", copy={em.arg(kwargs['copy'])}" if kwargs.get("copy") is not None else ""
        return f"{x}.reshape({em.arg(args[1])}, order={em.arg(kwargs.get('order', 'C'))}{extra})"
    if fun is onp.squeeze:
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        return f"{x}.squeeze()" if axis is None else f"{x}.squeeze(axis={em.arg(axis)})"
    # transpose(a, axes), swapaxes(a, i, j), mean(a, axis, dtype, out, keepdims, *, where):
    # the method takes the same arguments after ``a`` (transpose and swapaxes
    # only positionally).
    if kwargs and fun is not onp.mean:
        return None
    parts = [em.arg(a) for a in args[1:]] + [f"{k}={em.arg(v)}" for k, v in kwargs.items()]
    return f"{x}.{_WRAPPERS[fun]}({', '.join(parts)})"


def _is_bincount(op, meta) -> bool:
    """An ``untake`` that ``bincount`` computes: float64 values scattered by a
    constant non-negative integer vector into a vector (a group-level
    gradient). Both add into zeros in index order, so the bits agree;
    bincount skips ``add.at``'s general machinery."""
    if not _plain(op) or len(op.args) != 4 or not isinstance(op.args[0], Ref):
        return False
    g, idx, shape, dtype = op.args
    return (type(idx) is onp.ndarray and idx.ndim == 1 and idx.dtype.kind in "iu"
            and idx.size > 0 and idx.min() >= 0 and type(shape) is tuple and len(shape) == 1
            and dtype == onp.float64 and meta[g.index] == (onp.ndarray, idx.shape, dtype))


def _emit_op(em: _Emitter, op: Op, meta) -> str:
    fun, args = op.prim.fun, op.args
    out = f"v{op.out}"
    if op.prim is scatter_disjoint:
        shape, dtype, *parts = args
        lines = [f"{out} = {em.bind(onp.zeros, 'zeros')}({em.arg(shape)}, {em.arg(dtype)})"]
        lines += [f"{out}[{em.arg(i)}] += {em.arg(g)}" for i, g in zip(parts[::2], parts[1::2])]
        return "\n    ".join(lines)
    if fun is _UNTAKE and _is_bincount(op, meta):
        g, idx, shape, _ = args
        return f"{out} = {em.bind(onp.bincount, 'bincount')}({em.arg(idx)}, {em.arg(g)}, {shape[0]})"
    method = _as_method(em, op, meta)
    if method is not None:
        return f"{out} = {method}"
    if fun is anp.where3.fun and not op.kwargs:
        return f"{out} = {em.bind(onp.where, 'f_where')}({', '.join(em.arg(a) for a in args)})"
    if fun in _INDEXING and not op.kwargs:
        return f"{out} = {em.arg(args[0])}[{em.arg(args[1])}]"
    if fun is anp.getitem_parts.fun and not op.kwargs:
        return f"{out} = {em.arg(args[0])}[({''.join(em.arg(a) + ', ' for a in args[1:])})]"
    if fun in _ARITHMETIC and _as_operator(op, meta):
        return f"{out} = {_scalar_arg(em, args[0])} {_ARITHMETIC[fun]} {_scalar_arg(em, args[1])}"
    if fun is onp.power and _SQUARE_IS_PRODUCT and _is_square(op, meta):
        x = em.arg(args[0])
        return f"{out} = {x} * {x}"  # for arrays, ndarray.__mul__ is the multiply ufunc
    if fun is onp.negative and len(args) == 1 and not op.kwargs \
            and meta[op.out][0] in _FLOAT_SCALARS and _scalar_operand(args[0], meta):
        return f"{out} = -{_scalar_arg(em, args[0])}"
    parts = [em.arg(a) for a in args] + [f"{k}={em.arg(v)}" for k, v in op.kwargs.items()]
    return f"{out} = {em.fun(op.prim)}({', '.join(parts)})"


def _emit_guard(em: _Emitter, guard: Guard) -> str:
    v = f"v{guard.ref}"
    if guard.kind is bool:
        check = f"not {v}" if guard.observed else v
    else:
        kind = em.bind(guard.kind, "k_" + getattr(guard.kind, "__name__", "kind"))
        if type(guard.observed) is int:
            check = f"{kind}({v}) != {guard.observed!r}"
        else:
            check = f"not same_value({kind}({v}), {em.arg(guard.observed)})"
    note = repr(guard)
    note = note if len(note) <= 72 else note[:69] + "..."
    return f"if {check}:  # {note}\n        raise GuardFailure"


def _emit_shape_check(em: _Emitter, op: Op, meta) -> str:
    v = f"v{op.out}"
    if meta[op.out][1] is not None:
        return f"if {v}.shape != {op.shape!r}:\n        raise GuardFailure"
    return f"if shape_signature({v}) != {em.arg(op.shape)}:\n        raise GuardFailure"


def _emit_output(em: _Emitter, node) -> str:
    if isinstance(node, Ref):
        return f"v{node.index}"
    if isinstance(node, _Node):
        items = [_emit_output(em, c) for c in node.children]
        if node.kind is tuple:
            return "(" + "".join(i + ", " for i in items) + ")"
        if node.kind is list:
            return "[" + ", ".join(items) + "]"
        if node.kind is dict:
            return "{" + ", ".join(f"{em.arg(k)}: {i}" for k, i in zip(node.keys, items)) + "}"
        return f"{em.bind(node.kind, node.kind.__name__)}(" + ", ".join(items) + ")"
    if isinstance(node, onp.ndarray):
        # A fresh array per call, as the function itself would return.
        return f"{em.arg(node)}.copy()"
    return em.arg(node)


class _Node:
    """A tuple/list/dict/namedtuple in an output template."""

    __slots__ = ("kind", "keys", "children")

    def __init__(self, kind, children, keys=None):
        self.kind = kind
        self.children = children
        self.keys = keys

    def __repr__(self):
        if self.kind is dict:
            return repr(dict(zip(self.keys, self.children)))
        return repr(self.kind(self.children)) if self.kind in (tuple, list) else \
            f"{self.kind.__name__}{tuple(self.children)!r}"


def output_template(value, leaf):
    """Map ``leaf`` over the leaves of a nest of tuples/lists/dicts/namedtuples."""
    t = type(value)
    if t is tuple or t is list:
        return _Node(t, [output_template(v, leaf) for v in value])
    if t is dict:
        return _Node(dict, [output_template(v, leaf) for v in value.values()], tuple(value))
    if isinstance(value, tuple) and hasattr(t, "_fields"):
        return _Node(t, [output_template(v, leaf) for v in value])
    return leaf(value)


def _map_template(node, fn):
    if isinstance(node, _Node):
        return _Node(node.kind, [_map_template(c, fn) for c in node.children], node.keys)
    return fn(node)


def template_refs(node):
    """The slot indices an output template reads, in order (with repeats)."""
    if isinstance(node, _Node):
        for c in node.children:
            yield from template_refs(c)
    elif isinstance(node, Ref):
        yield node.index


_source_ids = itertools.count()


def build_tape(trace, n_inputs: int, outputs, name: str) -> Tape:
    """Optimise the ops of a finished ``RecordTrace`` and compile the replay.

    ``outputs`` is an output template whose leaves are :class:`Ref` or
    constants.
    """
    meta = trace.meta
    ops, alias = _simplify(trace.ops, meta)
    if alias:
        outputs = _map_template(outputs,
                                lambda x: alias.get(x.index, x) if isinstance(x, Ref) else x)
        guards = [Guard(alias.get(g.ref, Ref(g.ref)).index, g.kind, g.observed, g.position)
                  for g in trace.guards]
    else:
        guards = list(trace.guards)
    position = {id(op): i for i, op in enumerate(trace.ops)}
    meta = list(meta)  # the passes add slots
    ops = _absorb_broadcasts(ops, meta, position, set(template_refs(outputs)))
    roots = [*template_refs(outputs), *(g.ref for g in guards)]
    ops = _fuse_scatters(_live_ops(ops, roots), meta, roots)

    em = _Emitter()
    fname = em.reserve(name or "replay")
    lines = [f"def {fname}({', '.join(f'v{i}' for i in range(n_inputs))}):"]
    pending = iter(guards)
    guard = next(pending, None)
    for op in ops:
        at = position[id(op)]
        while guard is not None and guard.position <= at:
            lines.append(_emit_guard(em, guard))
            guard = next(pending, None)
        line = _emit_op(em, op, meta)
        if op.errstate is not None:
            line = f"with errstate(**{em.arg(op.errstate)}):\n        {line}"
        lines.append(line)
        if op.shape is not None:
            lines.append(_emit_shape_check(em, op, meta))
    while guard is not None:
        lines.append(_emit_guard(em, guard))
        guard = next(pending, None)
    lines.append(f"return {_emit_output(em, outputs)}")
    source = "\n    ".join(lines) + "\n"

    # Register the source so that tracebacks through a replay show its lines.
    filename = f"<probad.compile {fname} #{next(_source_ids)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(builtins.compile(source, filename, "exec"), em.namespace)
    return Tape(ops, guards, outputs, n_inputs, len(trace.ops), source, em.namespace[fname],
                meta, [position[id(op)] for op in ops])
