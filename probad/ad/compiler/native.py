"""The native backend: a recorded tape lowered to data for the compiled interpreter.

``compile(f, backend="native")`` records tapes as the numpy backend does
(same guards, same optimisation passes) and then *lowers* each tape: every
value slot gets a place in one float64 workspace, every op becomes an
instruction of :mod:`.interpreter` with integer operands. Shapes are known at
record time, so broadcasting, reductions over axes and indexing with constant
indices become explicit strides and element positions. Ops that only
rearrange elements (reshape, transpose, basic indexing, broadcast_to, flip,
diagonal) are resolved here: the slot of the result is a strided *view* of
its operand's place, or, when no strides describe it, one gather.

A constant of one repeated number (the backward pass's broadcast seeds) is
stored once and read with stride 0, and an elementwise op whose operands
are all such broadcasts is computed once: a parameter check on a scale
broadcast over a plate costs one comparison, not one per row. Sums over
evenly spaced elements are numpy's pairwise sums (``SUM``), and a long
gather or an index adjoint reads its contiguous side as a block.

Ops on at most a few elements become scalar instructions, and the repeated
runs of scalar instructions that a Python loop leaves (its iterations) are
re-rolled into calls of compiled loops (:mod:`.reroll`) when the program is
built.

Each primitive declares its lowering where it is defined, with its
derivative rules (``defprimitive(prim, native="unary:exp")``); the names it
may use are the lowerings here, :data:`LOWERINGS`, and the interpreter's
elementwise kernels. Adding a native primitive means that declaration and,
for a new elementwise function, a branch in the interpreter's scalar kernel.

Booleans live in the workspace as 0.0/1.0; integer-valued slots, float32,
complex values and primitives with no lowering leave the tape on the numpy
replay, with one warning naming the primitives.

Guard failures. A failing guard stops the interpreter with ``status[0] ==
1``. The Python replay then raises ``GuardFailure``, so the compiled
function retraces exactly as the numpy replay does. The native potential
(:class:`NativePotential`, the interface the compiled NUTS uses) documents
its sentinel: ``fn`` returns NaN and leaves ``prog[3][0] == 1``
(``NativePotential.guard_failed()``); the caller then evaluates the
potential through Python (``Potential.value_and_grad(q)``), which retraces,
and reads ``Potential.native`` again for the new program. Every other NaN
energy is returned as +inf, as is a failed linear-algebra routine (numpy's
``LinAlgError``): the proposal is rejected, and counted in the program's
``status``; the first of each kind is returned as NaN instead, so that the
caller evaluates the point through Python, which says where it happened.
"""
from __future__ import annotations

import math

import numpy as onp

from ..numpy import numpy_wrapper as anp
from ..numpy.numpy_boxes import _index, _item
from ..scipy import special as ad_special
from . import interpreter as interp
from .codegen import GuardFailure, _Node, template_refs
from .reroll import calls_of, interpreter_stamp, relocate, reroll
from .tape import Ref

__all__ = ["Program", "NativePotential", "lower", "LOWERINGS", "lowering_of", "Unsupported",
           "estimated_costs", "REJECTION_KINDS", "NUMPY_ONLY", "numpy_only_primitives"]

_OP, _UN, _BIN, _TER, _RED = interp.OP, interp.UNARY, interp.BINARY, interp.TERNARY, interp.REDUCE
_F8 = onp.dtype(onp.float64)
_BOOL = onp.dtype(bool)
_MAXDIM = 4
# Elementwise ops of at most this many elements, and sums and logsumexps of
# at most twice as many, are lowered to scalar instructions: one costs ~3 ns
# where a vector instruction costs ~25 ns on tiny arrays, and a loop of them
# (an HMM's forward algorithm on 2 states) is then re-rolled into compiled code.
_SCALARISE = 4
# A move of at least this many elements into one block is a GATHER (shorter
# ones stay MOVEs, which consecutive moves extend: ``np.array`` of scalars).
_GATHER_MIN = 16
_ARITHMETIC = {_BIN["add"]: _OP["S_ADD"], _BIN["subtract"]: _OP["S_SUB"],
               _BIN["multiply"]: _OP["S_MUL"], _BIN["divide"]: _OP["S_DIV"]}


#: What ``Program.status[1 + i]`` counts: the evaluations of the native
#: potential that returned +inf for each reason, as ``Potential.rejections``
#: names them (the compiled NUTS calls it where Python cannot count).
#: ``status[1 + len(REJECTION_KINDS) + i]`` is 1 once the first of a kind
#: was handed to Python instead (NaN, as a failed guard: Python evaluates the
#: point again, and counts and describes it).
REJECTION_KINDS = ("invalid parameter or NaN", "linear algebra failed")


class Unsupported(Exception):
    """An op (named in the message) that the interpreter cannot run."""


class _View:
    """Where a slot's elements live: ``ws[base + sum(i_k * strides_k)]``."""

    __slots__ = ("base", "shape", "strides")

    def __init__(self, base, shape, strides):
        self.base, self.shape, self.strides = int(base), tuple(shape), tuple(strides)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def positions(self) -> onp.ndarray:
        """The workspace index of every element, as an int64 array of the slot's shape."""
        pos = onp.full(self.shape, self.base, dtype=onp.int64)
        for k, (n, s) in enumerate(zip(self.shape, self.strides)):
            if s and n > 1:
                pos += (onp.arange(n, dtype=onp.int64) * s).reshape(
                    (n,) + (1,) * (len(self.shape) - k - 1))
        return pos

    @property
    def uniform(self) -> bool:
        """One element, or one element broadcast (every stride 0)."""
        return not any(s for n, s in zip(self.shape, self.strides) if n > 1)

    def contiguous(self) -> bool:
        expect, ok = 1, True
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            ok = ok and (n == 1 or s == expect)
            expect *= n
        return ok

    def padded(self, shape) -> list[int]:
        """Strides when broadcast to ``shape`` (at most 4-d), right-aligned, 4 of them."""
        lead = len(shape) - len(self.shape)
        strides = [0] * lead + [0 if n == 1 and m != 1 else s
                                for n, m, s in zip(self.shape, shape[lead:], self.strides)]
        return [0] * (_MAXDIM - len(strides)) + strides


def _as_view(pos: onp.ndarray) -> _View | None:
    """A strided view whose positions are ``pos``, if one exists."""
    pos = onp.asarray(pos)
    if pos.size == 0:
        return None
    base = int(pos.flat[0])
    strides = []
    for k, n in enumerate(pos.shape):
        index = [0] * pos.ndim
        if n > 1:
            index[k] = 1
            strides.append(int(pos[tuple(index)]) - base)
        else:
            strides.append(0)
    view = _View(base, pos.shape, strides)
    return view if onp.array_equal(view.positions(), pos) else None


class Program:
    """A tape lowered for the interpreter, with its Python-callable replay.

    Attributes
    ----------
    code, ints, ws, status : numpy arrays
        The interpreter's instruction stream, position table, workspace
        (inputs, constants and intermediates) and status: ``status[0]`` the
        flag of the last run, then the rejections of
        :func:`.interpreter.potential_fn` (see :data:`REJECTION_KINDS`).
    inputs : list of (offset, size)
        Where each array leaf of a call is written.

    A program pickles, for another process (a copy lowered for another
    interpreter source unpickles as None): its compiled loops are found
    there by their structure (:func:`.reroll.relocate`), and its status
    starts at zero, so the copy counts its own rejections.
    """

    def __init__(self, code, ints, ws, inputs, outputs, out_views, out_meta):
        self.code = code
        self.ints = ints
        self.ws = ws
        self.status = onp.zeros(1 + 2 * len(REJECTION_KINDS), dtype=onp.int64)
        self.inputs = inputs
        self._outputs = outputs
        self._views = out_views  # slot -> (positions, meta)
        self._meta = out_meta
        self._build = self._builder(outputs)

    def replay(self, *leaves):
        """The tape's function on new array leaves (what ``Tape.replay`` is)."""
        ws = self.ws
        for (at, size), leaf in zip(self.inputs, leaves):
            if size == 1:
                ws[at] = leaf if type(leaf) is float else onp.asarray(leaf).reshape(())
            else:
                ws[at:at + size] = leaf.ravel() if type(leaf) is onp.ndarray else onp.ravel(leaf)
        flag = interp.run(self.code, self.ints, ws, self.status)
        if flag == 1:
            raise GuardFailure
        if flag == 2:
            raise onp.linalg.LinAlgError("the native replay's linear algebra failed (a matrix "
                                         "that is not positive definite, or singular)")
        return self._build(ws)

    def __reduce__(self):
        # CALL instructions hold addresses of compiled loops in this process:
        # the copy gets the loops' structures, and zeros where the addresses were.
        code = self.code.copy()
        calls = calls_of(code)
        for word, _ in calls:
            code[word] = 0
        return _unpickled_program, (interpreter_stamp(), code, calls, self.ints, self.ws,
                                    self.inputs, self._outputs, self._views, self._meta)

    def _builder(self, node):
        """A function ``ws -> output`` for an output template (made once: the
        replay of a small model is mostly this Python). Arrays are copies,
        never views of the workspace, which the next call overwrites."""
        if isinstance(node, Ref):
            return self._leaf_builder(node)
        if isinstance(node, _Node):
            parts = [self._builder(c) for c in node.children]
            kind = node.kind
            if kind is tuple and len(parts) == 2:
                first, second = parts
                return lambda ws: (first(ws), second(ws))
            if kind is dict:
                keys = node.keys
                return lambda ws: dict(zip(keys, [part(ws) for part in parts]))
            if kind in (tuple, list):
                return lambda ws: kind([part(ws) for part in parts])
            return lambda ws: kind(*[part(ws) for part in parts])
        if isinstance(node, onp.ndarray):
            return lambda ws: node.copy()
        return lambda ws: node

    def _leaf_builder(self, ref: Ref):
        pos = self._views[ref.index]
        kind, shape, dtype = self._meta[ref.index]
        if dtype != _BOOL and pos.size:
            at = int(pos[0])
            if kind is float or kind is int:
                return lambda ws: kind(ws[at])
            end = at + pos.size
            if kind is onp.ndarray and onp.array_equal(pos, onp.arange(at, end)):
                return lambda ws: ws[at:end].reshape(shape).copy()
        if kind is onp.ndarray:
            return lambda ws: self._elements(ws, pos, dtype).reshape(shape)
        if kind in (float, int, bool):
            return lambda ws: kind(self._elements(ws, pos, dtype)[0])
        return lambda ws: dtype.type(self._elements(ws, pos, dtype)[0])

    @staticmethod
    def _elements(ws, pos, dtype):
        values = ws[pos]
        return values != 0.0 if dtype == _BOOL else values

    def output_positions(self, ref: Ref) -> onp.ndarray:
        """Workspace positions of an output slot's elements, in C order."""
        return self._views[ref.index]


def _unpickled_program(stamp, code, calls, ints, ws, inputs, outputs, out_views, out_meta):
    """A pickled :class:`Program` in this process, or None if it was lowered
    for another interpreter (whose op codes may mean other things)."""
    if stamp != interpreter_stamp():
        return None
    relocate(code, calls)
    return Program(code, ints, ws, inputs, outputs, out_views, out_meta)


class NativePotential:
    """The interface the compiled NUTS calls: ``fn(q, grad_out, prog) -> U``.

    ``fn`` is :func:`.interpreter.potential_fn` (one numba dispatcher for
    every model) and ``prog`` the tuple ``(code, ints, ws, status, io)`` it
    needs. See the module docstring for NaN, +inf and guard failures.
    """

    __slots__ = ("fn", "prog", "_q", "_value", "_grad")

    def __init__(self, program: Program, value: Ref, grad: Ref, q_at: int):
        self.fn = interp.potential_fn
        grad_at = program.output_positions(grad)
        io = onp.concatenate([[q_at, program.output_positions(value)[0]], grad_at]
                             ).astype(onp.int64)
        self.prog = (program.code, program.ints, program.ws, program.status, io)
        self._q = slice(q_at, q_at + grad_at.size)
        self._value = int(io[1])
        self._grad = slice(grad_at[0], grad_at[0] + grad_at.size) \
            if grad_at.size and _is_block(grad_at) else grad_at

    def value_and_grad(self, q: onp.ndarray) -> tuple[float, onp.ndarray] | None:
        """``(U, dU/dq)`` from a complete run of the program at ``q`` (a
        float64 vector), through the interpreter Python calls anyway (no
        second compiled entry point); None where the caller must evaluate
        ``q`` through Python: a failed guard or linear algebra, a NaN
        energy. Counts nothing."""
        code, ints, ws, status, _ = self.prog
        ws[self._q] = q
        if interp.run(code, ints, ws, status) != 0:
            return None
        value = float(ws[self._value])
        if value != value:
            return None
        grad = ws[self._grad]
        return value, grad.copy() if type(self._grad) is slice else grad

    @classmethod
    def of(cls, tape) -> NativePotential | None:
        """The native form of a ``value_and_grad`` tape of ``q``, or None when
        the tape is not native or ``U`` or its gradient does not depend on ``q``."""
        out = tape.outputs
        if tape.native is None or not isinstance(out, _Node) or len(out.children) != 2 \
                or not all(isinstance(c, Ref) for c in out.children):
            return None
        return cls(tape.native, *out.children, tape.native.inputs[0][0])

    def guard_failed(self) -> bool:
        """Whether the last call of ``fn`` stopped at a failing guard."""
        return bool(self.prog[3][0] == 1)


# ------------------------------------------------------------- lowering
class _Lowerer:
    """Builds a program: allocates workspace, emits instructions."""

    def __init__(self, meta):
        self.meta = meta
        self.views: dict[int, _View] = {}
        self.code: list[int] = []
        self.ints: list[onp.ndarray] = []
        self.n_ints = 0
        self.init: list[tuple[int, onp.ndarray]] = []  # constants: (offset, values)
        self.size = 0
        self._constants: dict = {}
        # The buffer plan: an op's result gets a block that an earlier result,
        # no longer read, has freed (same size), so that a long tape runs in a
        # workspace that stays in cache. A slot's *home* is the block its
        # elements live in (a view's is its operand's); a block is freed when
        # no live slot has it as home.
        self._home: dict[int, int] = {}
        self._tenants: dict[int, int] = {}  # block start -> live slots living there
        self._free: dict[int, list[int]] = {}  # block size -> free block starts
        self._block_size: dict[int, int] = {}
        self._move_end = -1  # len(self.code) right after the last MOVE

    # -- workspace
    def alloc(self, shape, reuse: bool = False) -> _View:
        shape = tuple(int(n) for n in shape)
        if len(shape) > _MAXDIM:
            raise Unsupported(f"a {len(shape)}-d value")
        size = max(math.prod(shape), 1)
        free = self._free.get(size) if reuse else None
        if free:
            base = free.pop()
        else:
            base = self.size
            self.size += size
        return _View(base, shape, _c_strides(shape))

    def settle(self, slot: int, home: int | None) -> None:
        """Record that ``slot``'s elements live in the block starting at ``home``."""
        if home is not None:
            self._home[slot] = home
            self._tenants[home] = self._tenants.get(home, 0) + 1

    def release(self, slot: int) -> None:
        """``slot`` is read no more: free its block if nothing else lives there."""
        home = self._home.pop(slot, None)
        if home is not None:
            self._tenants[home] -= 1
            if not self._tenants[home]:
                del self._tenants[home]
                self._free.setdefault(self._block_size[home], []).append(home)

    def view_of(self, op, view: _View, x) -> None:
        """``op``'s result is ``view``, a view of the place of ``x``."""
        self.views[op.out] = view
        self.settle(op.out, self._home.get(x.index) if isinstance(x, Ref) else None)

    def constant(self, value) -> _View:
        key = (id(value), type(value))
        if key in self._constants:
            return self._constants[key][0]
        arr = onp.asarray(value)
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind in "iu" and arr.size
                                            and onp.abs(arr).max() > 2**53):
            raise Unsupported(f"a constant of dtype {arr.dtype}")
        values = arr.astype(onp.float64).ravel()
        bits = values.view(onp.int64)
        if values.size > 1 and len(arr.shape) <= _MAXDIM and (bits == bits[0]).all():
            # one number repeated (a broadcast seed of the backward pass, a
            # scale): stored once, read with stride 0
            one = self.alloc(())
            view = _View(one.base, arr.shape, (0,) * arr.ndim)
            values = values[:1]
        else:
            view = self.alloc(arr.shape)
        self.init.append((view.base, values))
        self._constants[key] = (view, value)  # keeps value alive: its id stays unique
        return view

    def view(self, arg) -> _View:
        """Where an op's argument lives: a slot, a constant, or an explicit view."""
        if isinstance(arg, _View):
            return arg
        return self.views[arg.index] if isinstance(arg, Ref) else self.constant(arg)

    def table(self, values) -> int:
        """Append int64 ``values`` to the position table; return where they start."""
        at = self.n_ints
        values = onp.ascontiguousarray(values, dtype=onp.int64).ravel()
        self.ints.append(values)
        self.n_ints += values.size
        return at

    def emit(self, *words) -> None:
        self.code.extend(int(w) for w in words)

    def out(self, op) -> _View:
        """A fresh contiguous place for ``op``'s result."""
        _, shape, dtype = self.meta[op.out]
        _check_dtype(dtype, op)
        view = self.alloc(() if shape is None else shape, reuse=True)
        self.views[op.out] = view
        self._block_size[view.base] = max(view.size, 1)
        self.settle(op.out, view.base)
        return view

    # -- instruction helpers
    def move(self, dst: onp.ndarray, src: onp.ndarray) -> None:
        pairs = onp.stack([onp.ravel(dst), onp.ravel(onp.broadcast_to(src, dst.shape))], axis=1)
        if not pairs.size:
            return
        if len(pairs) >= _GATHER_MIN and _is_block(pairs[:, 0]):
            self.emit(_OP["GATHER"], pairs[0, 0], len(pairs), self.table(pairs[:, 1]))
            return
        at = self.table(pairs)
        # a move right after a move whose pairs end where these start extends
        # it (``np.array`` of T scalars: one instruction, not T)
        if self._move_end == len(self.code) and self.code[-1] + 2 * self.code[-2] == at:
            self.code[-2] += len(pairs)
        else:
            self.emit(_OP["MOVE"], len(pairs), at)
        self._move_end = len(self.code)

    def contiguous(self, view: _View) -> _View:
        """``view`` itself if its elements are one contiguous block, else a copy."""
        if view.contiguous():
            return view
        copy = self.alloc(view.shape)
        self.move(copy.positions(), view.positions())
        return copy

    def scalar(self, kind: str, f: int, o: int, *args: int) -> None:
        """``ws[o] = f(ws[args...])`` as one scalar instruction."""
        if kind == "UN":
            self.emit(_OP["S_UN"], f, o, *args)
        elif f in _ARITHMETIC:
            self.emit(_ARITHMETIC[f], o, *args)
        else:
            self.emit(_OP["S_BIN"], f, o, *args)

    def elementwise(self, op, kind: str, f: int, args) -> None:
        views = [self.view(a) for a in args]
        _, shape, dtype = self.meta[op.out]
        shape = () if shape is None else tuple(shape)
        if math.prod(shape) > 1 and all(v.uniform for v in views):
            # every operand one number broadcast (a site's scale, a parameter
            # check on a broadcast scalar): the result is one number too,
            # computed once and broadcast, the same value in every element
            _check_dtype(dtype, op)
            o = self.alloc((), reuse=True)
            self._block_size[o.base] = 1
            self.settle(op.out, o.base)
            self.views[op.out] = _View(o.base, shape, (0,) * len(shape))
            if kind == "TER":
                self.emit(_OP["TER"], f, o.base, 1, 1, 1, 1,
                          *[w for v in views for w in [v.base, 0, 0, 0, 0]])
            else:
                self.scalar(kind, f, o.base, *[v.base for v in views])
            return
        o = self.out(op)
        shape = o.shape
        n = o.size
        if n == 0:
            return
        if n <= _SCALARISE and kind in ("UN", "BIN"):
            # one scalar instruction per element (see _SCALARISE)
            places = [onp.broadcast_to(v.positions(), shape).ravel() for v in views]
            for k in range(n):
                self.scalar(kind, f, o.base + k, *[int(p[k]) for p in places])
            return
        steps = []
        for v in views:
            if v.uniform:
                steps.append(0)
            elif v.shape == shape and v.contiguous():
                steps.append(1)
            else:
                steps = None
                break
        if steps is not None and kind in ("UN", "BIN"):
            words = [w for v, s in zip(views, steps) for w in (v.base, s)]
            self.emit(_OP["V_" + kind], f, o.base, n, *words)
            return
        padded = [1] * (_MAXDIM - len(shape)) + list(shape)
        self.emit(_OP[kind], f, o.base, *padded,
                  *[w for v in views for w in [v.base] + v.padded(shape)])

    def reduce(self, op, f: int, x, axis, keepdims: bool) -> None:
        v = self.view(x)
        ndim = len(v.shape)
        axes = set(range(ndim)) if axis is None else \
            {int(a) % ndim for a in (axis if isinstance(axis, tuple) else (axis,))} if ndim \
            else set()
        kept = [i for i in range(ndim) if i not in axes]
        reduced = sorted(axes)
        pos = v.positions().transpose(kept + reduced)
        flat = pos.reshape(math.prod(pos.shape[:len(kept)]), -1)
        o = self.out(op)
        if flat.shape[0] != o.size:
            raise Unsupported(f"'{op.name}' (result shape)")
        if f in (_RED["sum"], _RED["logsumexp"]) and flat.shape[1] \
                and flat.size <= 2 * _SCALARISE:
            # as RED computes it, in scalar instructions: from the first
            # element (a sum from 0.0 + it), then one step per element
            zero = self.constant(0.0).base
            for k, row in enumerate(flat.tolist()):
                if f == _RED["sum"]:
                    self.scalar("BIN", _BIN["add"], o.base + k, zero, row[0])
                else:
                    self.scalar("UN", _UN["copy"], o.base + k, row[0])
                step = _BIN["add"] if f == _RED["sum"] else _BIN["logaddexp"]
                for x in row[1:]:
                    self.scalar("BIN", step, o.base + k, o.base + k, x)
            return
        bases = flat[:, :1] if flat.shape[1] else onp.zeros((flat.shape[0], 1), onp.int64)
        offsets = flat[0] - bases[0] if len(flat) else onp.zeros(1, onp.int64)
        step = int(offsets[1]) if offsets.size > 1 else 0
        if f == _RED["sum"] and reduced == list(range(len(kept), ndim)) \
                and onp.array_equal(offsets, step * onp.arange(offsets.size)):
            # the trailing axes, evenly spaced: numpy's pairwise sum (numpy
            # sums a leading axis one row after another, as RED does)
            self.emit(_OP["SUM"], o.base, o.size, flat.shape[1], self.table(bases), step)
            return
        self.emit(_OP["RED"], f, o.base, o.size, flat.shape[1], self.table(bases),
                  self.table(offsets))

    def rearrange(self, op, fun, x, *rest, **kwargs) -> None:
        """An op that only picks and moves elements: ``fun`` applied to the
        positions of ``x`` gives the positions of the result."""
        pos = onp.asarray(fun(self.view(x).positions(), *rest, **kwargs))
        _, shape, dtype = self.meta[op.out]
        _check_dtype(dtype, op)
        if pos.shape != (() if shape is None else shape):
            raise Unsupported(f"'{op.name}' (result shape)")
        view = _as_view(pos) if pos.ndim <= _MAXDIM else None
        if view is not None:
            self.view_of(op, view, x)
        else:
            o = self.out(op)
            self.move(o.positions(), pos)

    def scatter(self, op, shape, parts, add: bool) -> None:
        """Zeros of ``shape``, then each ``(index, value)`` of ``parts`` written
        (or added) at ``index``."""
        o = self.out(op)
        if tuple(shape) != o.shape:
            raise Unsupported(f"'{op.name}' (result shape)")
        grid = o.positions()
        dst, src = [], []
        for index, value in parts:
            d = onp.asarray(index(grid))
            dst.append(d.ravel())
            src.append(onp.broadcast_to(self.view(value).positions(), d.shape).ravel())
        pairs = onp.stack([onp.concatenate(dst), onp.concatenate(src)], axis=1)
        if len(pairs) and _is_block(pairs[:, 1]):
            self.emit(_OP["SCATTER_FROM"], o.base, o.size, int(add), len(pairs),
                      self.table(pairs[:, 0]), pairs[0, 1])
        else:
            self.emit(_OP["SCATTER"], o.base, o.size, int(add), len(pairs), self.table(pairs))

    def build(self):
        # loops of scalar instructions become calls of compiled loops
        self.code = reroll(self.code, self.table)
        ws = onp.zeros(max(self.size, 1))
        for at, values in self.init:
            ws[at:at + values.size] = values
        ints = onp.concatenate(self.ints) if self.ints else onp.zeros(1, dtype=onp.int64)
        return onp.asarray(self.code, dtype=onp.int64), ints, ws


def _is_block(positions: onp.ndarray) -> bool:
    """Whether ``positions`` are consecutive, ascending."""
    return bool(onp.array_equal(positions, positions[0] + onp.arange(len(positions))))


def _c_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _check_dtype(dtype, op) -> None:
    if dtype is not None and dtype != _F8 and dtype != _BOOL:
        raise Unsupported(f"'{op.name}' (a {dtype} result)")


def _constants(op, first=1) -> None:
    if any(isinstance(a, Ref) for a in op.args[first:]) \
            or any(isinstance(v, Ref) for v in op.kwargs.values()):
        raise Unsupported(f"'{op.name}' (with a traced index or parameter)")


# ------------------------------------------------------- the lowerings
def _elementwise(kind, f):
    def lower(lw, op):
        if op.kwargs:
            raise Unsupported(f"'{op.name}' (keyword arguments)")
        lw.elementwise(op, kind, f, op.args)
    return lower


def _rearranging(lw, op):
    _constants(op)
    lw.rearrange(op, op.prim.fun, *op.args, **op.kwargs)


def _reduction_params(op):
    params = dict(zip(("axis", "dtype", "out", "keepdims"), op.args[1:]))
    params.update(op.kwargs)
    if set(params) - {"axis", "dtype", "out", "keepdims"} or params.get("out") is not None \
            or params.get("dtype") not in (None, onp.float64):
        raise Unsupported(f"'{op.name}' (its parameters)")
    axis = params.get("axis")
    keepdims = params.get("keepdims", False)
    return axis, bool(keepdims) if keepdims is not onp._NoValue else False


def _sum(lw, op):
    _constants(op)
    axis, keepdims = _reduction_params(op)
    lw.reduce(op, _RED["sum"], op.args[0], axis, keepdims)


def _mean(lw, op):
    _constants(op)
    axis, keepdims = _reduction_params(op)
    shape = lw.view(op.args[0]).shape
    total = Ref(op.out)  # reduce into the result, then divide it in place
    lw.reduce(op, _RED["sum"], op.args[0], axis, keepdims)
    count = math.prod(shape) // max(lw.views[op.out].size, 1)
    o = lw.views[total.index]
    c = lw.constant(float(count))
    for i in range(o.size):
        lw.emit(_OP["S_BIN"], _BIN["divide"], o.base + i, o.base + i, c.base)


def _logsumexp(lw, op):
    a, b, axis, keepdims, return_sign = op.args
    if b is not None or return_sign or isinstance(axis, Ref):
        raise Unsupported("'logsumexp' (with b= or return_sign=)")
    lw.reduce(op, _RED["logsumexp"], a, axis, keepdims)


def _softmax_weights(lw, op):
    a, lse, shape = op.args
    # lse reshaped to ``shape`` (a's shape with the summed axes kept as 1)
    reshaped = _as_view(lw.view(lse).positions().reshape(shape))
    lw.elementwise(op, "BIN", _BIN["softmax_weight"], (a, reshaped))


def _matmul(lw, op):
    if op.kwargs or len(op.args) != 2:
        raise Unsupported("'matmul' (keyword arguments)")
    a, b = (lw.view(x) for x in op.args)
    if not a.shape or not b.shape:
        raise Unsupported("'matmul' (0-d operands)")
    # vectors as (1, k) and (k, 1) matrices; stacks of matrices one product each
    a_mat = a if len(a.shape) >= 2 else _View(a.base, (1,) + a.shape, (0,) + a.strides)
    b_mat = b if len(b.shape) >= 2 else _View(b.base, b.shape + (1,), b.strides + (0,))
    m, k = a_mat.shape[-2:]
    n = b_mat.shape[-1]
    batch = onp.broadcast_shapes(a_mat.shape[:-2], b_mat.shape[:-2])
    a_at = onp.broadcast_to(a_mat.positions()[..., 0, 0], batch).ravel()
    b_at = onp.broadcast_to(b_mat.positions()[..., 0, 0], batch).ravel()
    o = lw.out(op)
    for i, (pa, pb) in enumerate(zip(a_at, b_at)):
        lw.emit(_OP["MATMUL"], o.base + i * m * n, m, k, n, pa, *a_mat.strides[-2:], pb,
                *b_mat.strides[-2:])


def _untake(lw, op):
    g, idx, shape, _dtype = op.args
    _constants(op)
    lw.scatter(op, shape, [(lambda grid: grid[idx], g)], add=not anp._is_basic_index(idx))


def _scatter_disjoint(lw, op):
    shape, _dtype, *parts = op.args
    pairs = [((lambda grid, i=i: grid[i]), g) for i, g in zip(parts[::2], parts[1::2])]
    lw.scatter(op, shape, pairs, add=True)


def _diagonal_adjoint(lw, op):
    d, shape, *rest = op.args
    _constants(op)
    lw.scatter(op, shape, [(lambda grid: anp.diagonal.fun(grid, *rest), d)], add=False)


def _concatenate(lw, op):
    axis, *args = op.args
    o = lw.out(op)
    grid = o.positions()
    bounds = onp.cumsum([lw.view(a).shape[axis] for a in args])[:-1]
    for piece, arg in zip(onp.split(grid, bounds, axis=axis), args):
        lw.move(piece, lw.view(arg).positions())


def _array_from_args(lw, op):
    kwargs, *args = op.args
    if set(kwargs) - {"dtype"} or kwargs.get("dtype") not in (None, float, onp.float64):
        raise Unsupported("'array' (its parameters)")
    o = lw.out(op)
    grid = o.positions()
    for i, arg in enumerate(args):
        lw.move(grid[i], lw.view(arg).positions())


def _cumsum(lw, op):
    _constants(op)
    params = dict(zip(("axis", "dtype", "out"), op.args[1:]))
    params.update(op.kwargs)
    if params.get("dtype") is not None or params.get("out") is not None:
        raise Unsupported("'cumsum' (its parameters)")
    v = lw.view(op.args[0])
    axis = params.get("axis")
    pos = v.positions().ravel() if axis is None else v.positions()
    axis = 0 if axis is None else int(axis) % max(pos.ndim, 1)
    o = lw.out(op)
    lw.move(o.positions(), pos)
    shape = pos.shape
    lw.emit(_OP["CUMSUM"], o.base, math.prod(shape[:axis]), shape[axis],
            math.prod(shape[axis + 1:]))


def _cholesky(lw, op):
    params = dict(zip(("a", "upper"), op.args))
    params.update(op.kwargs)
    if set(params) - {"a", "upper"} or params.get("upper", False):
        raise Unsupported("'cholesky' (upper=True)")
    a = lw.contiguous(lw.view(op.args[0]))
    if len(a.shape) != 2:
        raise Unsupported("'cholesky' (batched)")
    o = lw.out(op)
    lw.emit(_OP["CHOL"], o.base, a.base, a.shape[0])


def _solve(lw, op):
    if op.kwargs or len(op.args) != 2:
        raise Unsupported("'solve' (keyword arguments)")
    a, b = (lw.contiguous(lw.view(x)) for x in op.args)
    if len(a.shape) != 2 or len(b.shape) not in (1, 2):
        raise Unsupported("'solve' (batched)")
    o = lw.out(op)
    lw.emit(_OP["SOLVE"], o.base, a.base, b.base, a.shape[0],
            b.shape[1] if len(b.shape) == 2 else 1)


def _solve_triangular(lw, op):
    a, b, trans, lower, unit = op.args
    _constants(op, 2)
    a, b = lw.contiguous(lw.view(a)), lw.contiguous(lw.view(b))
    if len(a.shape) != 2 or trans not in (0, 1) or not b.shape:
        raise Unsupported("'solve_triangular' (a batch of matrices, or conjugate)")
    o = lw.out(op)
    n = a.shape[0]
    m = b.shape[-1] if len(b.shape) >= 2 else 1
    # a batch of right-hand sides: one solve per (n, m) block
    for i in range(b.size // (n * m)):
        lw.emit(_OP["TRSOLVE"], o.base + i * n * m, a.base, b.base + i * n * m, n, m, trans,
                int(bool(lower)), int(bool(unit)))


def _where(lw, op):
    lw.elementwise(op, "TER", _TER["where"], op.args)


def _clip(lw, op):
    lw.elementwise(op, "TER", _TER["clip"], op.args)


def _same(lw, op):
    """``astype_float`` to float64, ``real`` of a real value: the operand itself."""
    if op.prim.fun is anp.astype_float.fun and onp.dtype(op.args[1]) != _F8:
        raise Unsupported("'astype' (to a dtype other than float64)")
    _, shape, dtype = lw.meta[op.out]
    _check_dtype(dtype, op)
    v = lw.view(op.args[0])
    if v.shape != (() if shape is None else shape):
        raise Unsupported(f"'{op.name}' (result shape)")
    lw.view_of(op, v, op.args[0])


#: What a primitive's ``native=`` declaration (``core.defprimitive``) may
#: name: ``"unary:<kernel>"`` and ``"binary:<kernel>"`` for the interpreter's
#: elementwise kernels, else one of the lowerings above. A lowering is
#: ``lowering(lowerer, op)``.
LOWERINGS = {
    "unary": lambda kernel: _elementwise("UN", _UN[kernel]),
    "binary": lambda kernel: _elementwise("BIN", _BIN[kernel]),
    "where": _where,
    "clip": _clip,
    "sum": _sum,
    "mean": _mean,
    "logsumexp": _logsumexp,
    "softmax_weights": _softmax_weights,
    "matmul": _matmul,
    "untake": _untake,
    "scatter_disjoint": _scatter_disjoint,
    "diagonal_adjoint": _diagonal_adjoint,
    "concatenate": _concatenate,
    "array_from_args": _array_from_args,
    "cumsum": _cumsum,
    "cholesky": _cholesky,
    "solve": _solve,
    "solve_triangular": _solve_triangular,
    "same": _same,
    "rearrange": _rearranging,
}
_KERNELS = {"unary": _UN, "binary": _BIN}
_RESOLVED: dict = {}  # declaration -> lowering

#: The declaration ``native=NUMPY_ONLY``: the primitive runs in numpy by design
#: (it calls into a library, as ``odeint`` calls scipy's solver), so a tape that
#: uses it keeps the numpy replay. ``backend="auto"`` then does not try to lower
#: the tape and says nothing: that is a choice, not a missing lowering.
NUMPY_ONLY = "numpy"


def lowering_of(prim):
    """The lowering that ``prim`` declares for this backend, or None."""
    spec = prim.lowerings.get("native")
    if spec is None or spec == NUMPY_ONLY:
        return None
    try:
        return _RESOLVED[spec]
    except KeyError:
        kind, _, kernel = spec.partition(":")
        kernels = _KERNELS.get(kind)
        if kind not in LOWERINGS or not (kernel in kernels if kernels is not None else not kernel):
            raise ValueError(f"'{prim.__name__}' declares native={spec!r}, which names no lowering "
                             "(see probad.ad.compiler.native.LOWERINGS)") from None
        found = _RESOLVED[spec] = LOWERINGS[kind](kernel) if kernel else LOWERINGS[kind]
        return found


# The cost model behind ``backend="auto"``: nanoseconds per op and per
# element, measured on an AVX-512 machine (numpy 2.4, numba 0.68). numpy pays
# ~1 us of Python per call but has SIMD exp/log (~1 ns an element); the
# interpreter pays ~20 ns an instruction but calls the C library's scalar
# exp/log (~15 ns). Long vectors of transcendental functions (a regression
# on 10,000 rows) are therefore faster on numpy, loops over scalars and
# short vectors on the interpreter.
_TRANSCENDENTAL = {onp.exp, onp.log, onp.log1p, onp.expm1, onp.tanh, onp.power, onp.logaddexp,
                   onp.sin, onp.cos, onp.sinh, onp.cosh, onp.arctan, onp.log2, onp.log10,
                   onp.exp2, onp.arctan2, onp.hypot, ad_special.expit.fun,
                   ad_special.softplus.fun, ad_special.log_expit.fun, ad_special.xlogy.fun,
                   ad_special.xlog1py.fun, ad_special._logsumexp.fun, ad_special.gammaln.fun,
                   ad_special.digamma.fun,
                   ad_special._softmax_weights.fun}
_NUMPY_NS = (1000.0, 1.0, 4.0)  # per op, per element, per transcendental element
_NATIVE_NS = (20.0, 3.0, 45.0)


def estimated_costs(tape) -> tuple[float, float]:
    """``(numpy, native)``: the cost model's estimate of one replay, in ns."""
    numpy_ns = native_ns = 0.0
    for op in tape.ops:
        n = max([_size(tape.meta[op.out][1])] + [_size(tape.meta[a.index][1])
                                                  for a in op.args if isinstance(a, Ref)])
        heavy = op.prim.fun in _TRANSCENDENTAL
        numpy_ns += _NUMPY_NS[0] + n * _NUMPY_NS[2 if heavy else 1]
        native_ns += _NATIVE_NS[0] + n * _NATIVE_NS[2 if heavy else 1]
    return numpy_ns, native_ns


def _size(shape) -> int:
    return 1 if shape is None else math.prod(shape)


_GUARDS = {bool: interp.GUARD_KINDS["bool"], int: interp.GUARD_KINDS["int"],
           _index: interp.GUARD_KINDS["int"], float: interp.GUARD_KINDS["float"]}


def _guard(lw, guard) -> None:
    view = lw.views.get(guard.ref)
    kind = _GUARDS.get(guard.kind)
    if guard.kind is _item and type(guard.observed) in (bool, int, float):
        kind = _GUARDS[type(guard.observed)]
    if view is None or view.size != 1 or kind is None \
            or type(guard.observed) not in (bool, int, float) \
            or (type(guard.observed) is int and abs(guard.observed) > 2**53):
        raise Unsupported(f"a guard '{guard!r}'")
    want = lw.constant(float(guard.observed))
    lw.emit(_OP["GUARD"], kind, view.base, want.base)


def numpy_only_primitives(tape) -> list[str]:
    """Names of the tape's primitives declared ``native=NUMPY_ONLY``."""
    return sorted({op.name for op in tape.ops if op.prim.lowerings.get("native") == NUMPY_ONLY})


def unsupported_primitives(tape) -> list[str]:
    """Names of the tape's primitives that have no native lowering."""
    return sorted({op.name for op in tape.ops if lowering_of(op.prim) is None})


def lower(tape) -> Program:
    """Lower an optimised :class:`~.codegen.Tape` to a :class:`Program`.

    Guards are checked where they were taken (``tape.positions``). Raises
    :class:`Unsupported` naming what the interpreter cannot run.
    """
    if not interp.AVAILABLE:
        raise Unsupported("numba is not installed")
    missing = unsupported_primitives(tape)
    if missing:
        raise Unsupported(", ".join(f"'{m}'" for m in missing))
    meta = tape.meta
    lw = _Lowerer(meta)
    inputs = []
    for i in range(tape.n_inputs):
        kind, shape, dtype = meta[i]
        if dtype != _F8 and dtype != _BOOL and kind is not float:
            raise Unsupported(f"an input of dtype {dtype}")
        view = lw.alloc(() if shape is None else shape)
        lw.views[i] = view
        inputs.append((view.base, view.size))
    pending = iter(tape.guards)
    guard = next(pending, None)
    last_use = _last_uses(tape)
    dying: dict[int, list[int]] = {}
    for slot, i in last_use.items():
        dying.setdefault(i, []).append(slot)
    for i, (op, at) in enumerate(zip(tape.ops, tape.positions)):
        while guard is not None and guard.position <= at:
            _guard(lw, guard)
            guard = next(pending, None)
        lowering_of(op.prim)(lw, op)
        for slot in dying.get(i, ()):
            lw.release(slot)
    while guard is not None:
        _guard(lw, guard)
        guard = next(pending, None)
    out_views = {}
    for ref in template_refs(tape.outputs):
        _check_dtype(meta[ref][2], _Named(f"output v{ref}"))
        out_views[ref] = lw.views[ref].positions().ravel()
    code, ints, ws = lw.build()
    return Program(code, ints, ws, inputs, tape.outputs, out_views, meta)


def _last_uses(tape) -> dict[int, int]:
    """Slot -> index of the last op that reads it (a guard counts as the op it
    precedes); the tape's outputs and guarded slots after the last op never die."""
    last = {op.out: i for i, op in enumerate(tape.ops)}
    for i, op in enumerate(tape.ops):
        for a in op.args:
            if isinstance(a, Ref):
                last[a.index] = i
    keep = set(template_refs(tape.outputs))
    for guard in tape.guards:
        after = [i for i, at in enumerate(tape.positions) if at >= guard.position]
        if after:
            last[guard.ref] = max(last.get(guard.ref, 0), after[0])
        else:
            keep.add(guard.ref)
    return {slot: i for slot, i in last.items() if slot not in keep}


class _Named:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


