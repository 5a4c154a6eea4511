"""The native interpreter of lowered tapes: one numba function for all models.

A tape lowered by :mod:`.native` is *data*: an int64 instruction stream
(``code``), an int64 table of element positions (``ints``, for gathers and
scatters with constant indices), a float64 workspace (``ws``) holding every
input, constant and intermediate value at a fixed offset, and a one-element
int64 ``status``. :func:`run` executes the stream. It is compiled once, cached
on disk, and shared by every model; building a model's program is a few
milliseconds of numpy at record time, never a numba compilation.

Why an interpreter rather than generated code: numba compiles one unrolled
tape in time growing with its length (100 ops took 10 s, 500 ops 74 s), and
a model's Python loop unrolls into thousands of ops. The interpreter's cost
per op is a branch on the op code (a few ns), which is small beside the
microsecond a numpy call costs. Where the tape repeats itself (the
iterations of a model's Python loop), :mod:`.reroll` goes further: the
repeated scalar instructions become one ``CALL`` of a small compiled loop.

Instructions (every operand an int64; offsets index ``ws``; "4-d" shapes are
right-aligned and padded with 1, strides are in elements and 0 where a
dimension is broadcast):

======================  ====================================================
``S_UN f o a``          ``ws[o] = unary_f(ws[a])`` (scalars)
``S_BIN f o a b``       ``ws[o] = binary_f(ws[a], ws[b])``
``S_ADD o a b``         ``ws[o] = ws[a] + ws[b]`` (and ``S_SUB``, ``S_MUL``, ``S_DIV``)
``V_UN f o n a sa``     ``n`` contiguous outputs, input stride ``sa`` (0/1)
``V_BIN f o n a sa b sb``
``UN f o shape4 a st4``, ``BIN f o shape4 a st4 b st4``,
``TER f o shape4 a st4 b st4 c st4``: general strided elementwise, output
contiguous
``RED f o size count pb po``: output ``k`` (of ``size``) reduces the
``count`` elements at ``ints[pb + k] + ints[po + j]``, in order
``SUM o size count pb step``: output ``k`` sums the ``count`` elements at
``ints[pb + k] + j * step``, pairwise as numpy sums
``MATMUL o m k n a as0 as1 b bs0 bs1``: ``(m, k) @ (k, n)``
``MOVE n p``            ``ws[ints[p + 2i]] = ws[ints[p + 2i + 1]]``
``GATHER o n p``        ``ws[o + i] = ws[ints[p + i]]`` (a long move into a block)
``SCATTER o size add n p``: zero ``size`` outputs, then assign (or add)
``ws[src]`` into ``ws[dst]`` for the ``n`` pairs at ``ints[p:]``
``SCATTER_FROM o size add n p s``: the same from the block at ``s``:
``ws[s + i]`` into ``ws[ints[p + i]]``
``CUMSUM o outer n inner``: in place, along the middle axis
``CHOL o a n``, ``SOLVE o a b n m``, ``TRSOLVE o a b n m trans lower unit``
``GUARD kind a c``      the guard ``kind(ws[a]) == ws[c]`` (else status 1)
``CALL f p``            call the compiled function at address ``f`` with
                        ``(ws, ints + p)``: a re-rolled loop (:mod:`.reroll`)
======================  ====================================================

``status[0]`` is 0 after a complete run, 1 when a guard failed (the run
stops there: nothing after it is meaningful) and 2 when a linear-algebra
routine failed (a matrix not positive definite, a singular system), where
numpy would raise ``LinAlgError``.

Results differ from numpy's in the last bits, not more: transcendental
functions come from the C library (numpy may use its own SIMD versions);
sums over other than evenly spaced elements (and products, maxima and
minima) run in index order where numpy may sum pairwise; matmul uses BLAS;
logsumexp is always a sequential ``logaddexp`` reduction (probad's numpy
logsumexp shifts by the maximum past 64 entries); and a vector divided by a
number is multiplied by its reciprocal (within one ulp of the quotient).
Sums of evenly spaced elements (``SUM``) are numpy's pairwise sums, bit for
bit.
"""
from __future__ import annotations

import math

import numpy as onp

try:
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic
except ImportError:  # numba is a dependency, but a platform may lack a wheel
    numba = None

__all__ = ["AVAILABLE", "run", "potential_fn", "OP", "WIDTH", "UNARY", "BINARY", "TERNARY",
           "REDUCE", "GUARD_KINDS"]

AVAILABLE = numba is not None
#: The compiled interpreter calls no other module of probad: editing this
#: file alone recompiles it (see native_cache).
NUMBA_CACHE_DEPENDS = ()


# ------------------------------------------------------------- op codes
# Instruction kinds, then the function codes each kind takes. The numbers are
# baked into the compiled interpreter; the lowering (native.py) uses the names.
OP = dict(S_UN=1, S_BIN=2, V_UN=3, V_BIN=4, UN=5, BIN=6, TER=7, RED=8, MATMUL=9, MOVE=10,
          SCATTER=11, CUMSUM=12, CHOL=13, SOLVE=14, TRSOLVE=15, GUARD=16, S_ADD=17, S_SUB=18,
          S_MUL=19, S_DIV=20, CALL=21, SUM=22, GATHER=23, SCATTER_FROM=24)
#: words per instruction, the op code included
WIDTH = {1: 4, 2: 5, 3: 6, 4: 8, 5: 12, 6: 17, 7: 22, 8: 7, 9: 11, 10: 3, 11: 6, 12: 5, 13: 4,
         14: 6, 15: 9, 16: 4, 17: 4, 18: 4, 19: 4, 20: 4, 21: 3, 22: 6, 23: 4,
         24: 7}
UNARY = dict(copy=0, negative=1, exp=2, log=3, log1p=4, expm1=5, sqrt=6, absolute=7, sign=8,
             tanh=9, expit=10, softplus=11, isfinite=12, logical_not=13, sin=14, cos=15,
             square=16, reciprocal=17, isnan=18, log_expit=19, sinh=20, cosh=21, arctan=22,
             log2=23, log10=24, exp2=25, floor=26, ceil=27, rint=28, trunc=29, gammaln=30,
             digamma=31)
BINARY = dict(add=0, subtract=1, multiply=2, divide=3, power=4, logaddexp=5, xlogy=6,
              xlog1py=7, equal=8, not_equal=9, less=10, less_equal=11, greater=12,
              greater_equal=13, logical_and=14, logical_or=15, maximum=16, minimum=17,
              softmax_weight=18, fmax=19, fmin=20, arctan2=21, hypot=22, logical_xor=23)
TERNARY = dict(where=0, clip=1)
REDUCE = dict(sum=0, logsumexp=1, max=2, min=3, prod=4)
GUARD_KINDS = dict(bool=0, int=1, float=2)

_S_UN, _S_BIN, _V_UN, _V_BIN, _UN, _BIN, _TER, _RED, _MATMUL, _MOVE, _SCATTER, _CUMSUM, \
    _CHOL, _SOLVE, _TRSOLVE, _GUARD, _S_ADD, _S_SUB, _S_MUL, _S_DIV, _CALL, _SUM, _GATHER, _SCATTER_FROM = range(1, 25)
assert list(OP.values()) == list(range(1, 25)) == list(WIDTH)


# ------------------------------------------------------- numba on-disk cache
if AVAILABLE:
    from . import native_cache  # noqa: F401  (compiled code goes to the user's cache directory)

    def _jit(fn):
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)

    def _kernel(fn):
        # Inlined into the interpreter. Only the arithmetic loops are: inlining
        # the scalar kernels too made one HMM gradient 25% faster but tripled
        # the one-time compilation (7 s -> 22 s of CPU).
        return numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")(fn)
    @intrinsic
    def _call(typingctx, address, ws, ints, at):
        """Call the C function at ``address`` with ``(&ws[0], &ints[at])``."""
        def codegen(context, builder, signature, args):
            ws_data = context.make_array(signature.args[1])(context, builder, args[1]).data
            ints_data = context.make_array(signature.args[2])(context, builder, args[2]).data
            fnty = ir.FunctionType(ir.VoidType(), [ws_data.type, ints_data.type])
            fn = builder.inttoptr(args[0], fnty.as_pointer())
            builder.call(fn, [ws_data, builder.gep(ints_data, [args[3]])])
            return context.get_dummy_value()
        return types.void(types.int64, ws, ints, types.int64), codegen
else:
    def _jit(fn):
        return fn

    _kernel = _jit


# -------------------------------------------------------- scalar kernels
@_jit
def _unary(f, x):
    if f == 0:
        return x
    if f == 1:
        return -x
    if f == 2:
        return math.exp(x)
    if f == 3:
        return math.log(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan)
    if f == 4:
        return math.log1p(x) if x > -1.0 else (-math.inf if x == -1.0 else math.nan)
    if f == 5:
        return math.expm1(x)
    if f == 6:
        return math.sqrt(x) if x >= 0.0 else math.nan
    if f == 7:
        return abs(x)
    if f == 8:
        if x > 0.0:
            return 1.0
        if x < 0.0:
            return -1.0
        return x  # 0.0, -0.0 or NaN, as numpy
    if f == 9:
        return math.tanh(x)
    if f == 10:  # expit, as scipy: 1 / (1 + exp(-x))
        return 1.0 / (1.0 + math.exp(-x))
    if f == 11:  # softplus as probad computes it: max(x, 0) + log1p(exp(-|x|))
        return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x))) if x == x else x
    if f == 12:
        return 1.0 if math.isfinite(x) else 0.0
    if f == 13:
        return 1.0 if x == 0.0 else 0.0
    if f == 14:
        return math.sin(x)
    if f == 15:
        return math.cos(x)
    if f == 16:
        return x * x
    if f == 17:
        return 1.0 / x
    if f == 18:
        return 1.0 if x != x else 0.0
    if f == 19:  # log_expit = -softplus(-x)
        y = -x
        return -((y if y > 0.0 else 0.0) + math.log1p(math.exp(-abs(y)))) if x == x else x
    if f == 20:
        return math.sinh(x)
    if f == 21:
        return math.cosh(x)
    if f == 22:
        return math.atan(x)
    if f == 23:
        return math.log2(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan)
    if f == 24:
        return math.log10(x) if x > 0.0 else (-math.inf if x == 0.0 else math.nan)
    if f == 25:
        return 2.0 ** x
    if f == 26:
        return math.floor(x) if math.isfinite(x) else x
    if f == 27:
        return math.ceil(x) if math.isfinite(x) else x
    if f == 28:
        return float(onp.rint(x))
    if f == 29:
        return math.trunc(x) if math.isfinite(x) else x
    if f == 30:  # as scipy's gammaln: +inf at the poles, -inf at -inf
        if x == -math.inf:
            return x
        if x <= 0.0 and x == math.floor(x):
            return math.inf
        return math.lgamma(x)
    return _digamma(x)


@_jit
def _digamma(x):
    # scipy's values at the special points; elsewhere the recurrence
    # psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series to
    # the x**-14 term (truncation error below 1e-17 relative there).
    if x != x or x == math.inf:
        return x
    if x == 0.0:
        return -math.copysign(math.inf, x)
    if x == -math.inf or (x < 0.0 and x == math.floor(x)):
        return math.nan
    r = 0.0
    if x < 0.0:  # reflection: psi(x) = psi(1 - x) - pi / tan(pi x)
        r = -math.pi / math.tan(math.pi * x)
        x = 1.0 - x
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (
        1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760 - f / 12.0))))))
    return r + math.log(x) - 0.5 / x - series


@_jit
def _logaddexp(x, y):
    # numpy's npy_logaddexp, step for step
    if x == y:
        return x + math.log(2.0)
    d = x - y
    if d > 0.0:
        return x + math.log1p(math.exp(-d))
    if d <= 0.0:
        return y + math.log1p(math.exp(d))
    return d  # NaN


@_jit
def _binary(f, x, y):
    if f == 0:
        return x + y
    if f == 1:
        return x - y
    if f == 2:
        return x * y
    if f == 3:
        return x / y
    if f == 4:
        # numpy >= 2.3 computes x * x for an exponent of 2 (numpy PR 27901)
        if y == 2.0:
            return x * x
        if x < 0.0 and y != math.floor(y) and math.isfinite(y):
            return math.nan
        if x == 0.0 and y < 0.0:
            return math.copysign(math.inf, x) if y == math.floor(y) and y % 2.0 == 1.0 \
                else math.inf
        return x ** y
    if f == 5:
        return _logaddexp(x, y)
    if f == 6:  # xlogy, as scipy: 0 where x == 0 and y is not NaN
        if x == 0.0 and y == y:
            return 0.0
        return x * (math.log(y) if y > 0.0 else (-math.inf if y == 0.0 else math.nan))
    if f == 7:
        if x == 0.0 and y == y:
            return 0.0
        return x * (math.log1p(y) if y > -1.0 else (-math.inf if y == -1.0 else math.nan))
    if f == 8:
        return 1.0 if x == y else 0.0
    if f == 9:
        return 1.0 if x != y else 0.0
    if f == 10:
        return 1.0 if x < y else 0.0
    if f == 11:
        return 1.0 if x <= y else 0.0
    if f == 12:
        return 1.0 if x > y else 0.0
    if f == 13:
        return 1.0 if x >= y else 0.0
    if f == 14:
        return 1.0 if (x != 0.0 and y != 0.0) else 0.0
    if f == 15:
        return 1.0 if (x != 0.0 or y != 0.0) else 0.0
    if f == 16:  # maximum propagates NaN
        if x != x or y != y:
            return x + y
        return x if x >= y else y
    if f == 17:
        if x != x or y != y:
            return x + y
        return x if x <= y else y
    if f == 18:  # probad's _softmax_weights: exp(a - lse), 0 where lse is not finite
        return math.exp(x - y) if math.isfinite(y) else 0.0
    if f == 19:
        return y if x != x or y > x else x
    if f == 20:
        return y if x != x or y < x else x
    if f == 21:
        return math.atan2(x, y)
    if f == 22:
        return math.hypot(x, y)
    return 1.0 if ((x != 0.0) != (y != 0.0)) else 0.0


@_jit
def _ternary(f, x, y, z):
    if f == 0:
        return y if x != 0.0 else z
    # clip: numpy's minimum(maximum(x, lo), hi), NaN propagating
    if x != x:
        return x
    if y != y or z != z:
        return y + z
    r = x if x >= y else y
    return r if r <= z else z


# -------------------------------------------------------------- the loop
@_jit
def _reduce_init(f):
    if f == 1 or f == 2:
        return -math.inf
    if f == 3:
        return math.inf
    if f == 4:
        return 1.0
    return 0.0


@_jit
def _reduce_step(f, acc, x):
    if f == 0:
        return acc + x
    if f == 1:
        return _logaddexp(acc, x)
    if f == 2:
        return x if (x > acc or x != x) and acc == acc else acc
    if f == 3:
        return x if (x < acc or x != x) and acc == acc else acc
    return acc * x


@_jit
def _cholesky(ws, o, a, n):
    # Cholesky-Banachiewicz by rows, lower factor; the upper triangle is zeroed
    # as numpy's is. Returns False when the matrix is not positive definite.
    for i in range(n):
        for j in range(n):
            ws[o + i * n + j] = 0.0
    for i in range(n):
        for j in range(i + 1):
            s = ws[a + i * n + j]
            for k in range(j):
                s -= ws[o + i * n + k] * ws[o + j * n + k]
            if i == j:
                if not s > 0.0:  # also catches NaN
                    return False
                ws[o + i * n + i] = math.sqrt(s)
            else:
                ws[o + i * n + j] = s / ws[o + j * n + j]
    return True


@_jit
def _solve(ws, o, a, b, n, m):
    # Gaussian elimination with partial pivoting, as LAPACK's gesv; False if singular.
    lu = onp.empty((n, n))
    x = onp.empty((n, m))
    for i in range(n):
        for j in range(n):
            lu[i, j] = ws[a + i * n + j]
        for j in range(m):
            x[i, j] = ws[b + i * m + j]
    for c in range(n):
        p = c
        big = abs(lu[c, c])
        for r in range(c + 1, n):
            if abs(lu[r, c]) > big:
                big = abs(lu[r, c])
                p = r
        if not big > 0.0:
            return False
        if p != c:
            for j in range(n):
                t = lu[c, j]
                lu[c, j] = lu[p, j]
                lu[p, j] = t
            for j in range(m):
                t = x[c, j]
                x[c, j] = x[p, j]
                x[p, j] = t
        for r in range(c + 1, n):
            factor = lu[r, c] / lu[c, c]
            for j in range(c + 1, n):
                lu[r, j] -= factor * lu[c, j]
            for j in range(m):
                x[r, j] -= factor * x[c, j]
    for c in range(n - 1, -1, -1):
        for j in range(m):
            s = x[c, j]
            for k in range(c + 1, n):
                s -= lu[c, k] * x[k, j]
            x[c, j] = s / lu[c, c]
    for i in range(n):
        for j in range(m):
            ws[o + i * m + j] = x[i, j]
    return True


@_jit
def _trsolve(ws, o, a, b, n, m, trans, lower, unit):
    # op(A) x = b with op(A) = A or A^T; A's (row, col) read as (col, row) when
    # transposed, which flips which triangle is "lower".
    low = (lower != 0) != (trans != 0)
    for j in range(m):
        for step in range(n):
            i = step if low else n - 1 - step
            s = ws[b + i * m + j]
            for k in range(n):
                if (low and k < i) or (not low and k > i):
                    aik = ws[a + k * n + i] if trans != 0 else ws[a + i * n + k]
                    s -= aik * ws[o + k * m + j]
            ws[o + i * m + j] = s if unit != 0 else s / ws[a + i * n + i]
    return True


# Gathers and scatters with one side a block: slices, so that the block's
# side needs neither a position from the table nor a wrap-around check.
@_jit
def _gather(ws, at, out):
    for i in range(out.shape[0]):
        out[i] = ws[at[i]]


@_jit
def _scatter_from(ws, at, o, size, add, values):
    for i in range(size):
        ws[o + i] = 0.0
    if add != 0:
        for i in range(values.shape[0]):
            ws[at[i]] += values[i]
    else:
        for i in range(values.shape[0]):
            ws[at[i]] = values[i]


@_jit
def _pairwise_sum(ws, a, n, step):
    """The sum of ``ws[a + j * step]`` for ``j < n`` in numpy's order
    (``pairwise_sum`` of its add loops, from a -0.0): eight running sums
    over blocks of up to 128 numbers, blocks halved (in multiples of eight)
    and added pairwise. Besides matching numpy bit for bit, the eight sums
    are independent, so the loop is not one chain of dependent additions."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += ws[a + i * step]
        return res
    if n <= 128:
        r0, r1, r2, r3 = ws[a], ws[a + step], ws[a + 2 * step], ws[a + 3 * step]
        r4, r5, r6, r7 = ws[a + 4 * step], ws[a + 5 * step], ws[a + 6 * step], \
            ws[a + 7 * step]
        i = 8
        end = n - n % 8
        while i < end:
            at = a + i * step
            r0 += ws[at]
            r1 += ws[at + step]
            r2 += ws[at + 2 * step]
            r3 += ws[at + 3 * step]
            r4 += ws[at + 4 * step]
            r5 += ws[at + 5 * step]
            r6 += ws[at + 6 * step]
            r7 += ws[at + 7 * step]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += ws[a + i * step]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(ws, a, half, step) + _pairwise_sum(ws, a + half * step, n - half, step)


#: A divisor of at least this magnitude and at most its reciprocal, 2**1020,
#: has a normal reciprocal that stays normal when multiplied back.
_RECIPROCAL_SAFE = 2.0 ** -1020


# + - * / over contiguous runs, one loop per case so that LLVM vectorises
# each (a stride known only at run time would make every load a gather).
# The loops index slices of ``ws``, not ``ws[o + i]``: an index that may be
# negative gets numba's wrap-around check on every access, which stops the
# vectorisation (4x slower measured on 919 elements).
@_kernel
def _arith_vv(ws, f, o, n, a, b):
    z, x, y = ws[o:o + n], ws[a:a + n], ws[b:b + n]
    if f == 0:
        for i in range(n):
            z[i] = x[i] + y[i]
    elif f == 1:
        for i in range(n):
            z[i] = x[i] - y[i]
    elif f == 2:
        for i in range(n):
            z[i] = x[i] * y[i]
    else:
        for i in range(n):
            z[i] = x[i] / y[i]


@_kernel
def _arith_vs(ws, f, o, n, a, y):
    z, x = ws[o:o + n], ws[a:a + n]
    if f == 0:
        for i in range(n):
            z[i] = x[i] + y
    elif f == 1:
        for i in range(n):
            z[i] = x[i] - y
    elif f == 2:
        for i in range(n):
            z[i] = x[i] * y
    elif _RECIPROCAL_SAFE <= abs(y) <= 1.0 / _RECIPROCAL_SAFE:
        # times the reciprocal: a division costs ~8 multiplications, and
        # with y and 1/y both normal numbers the result is within one ulp
        # of x / y (the one place where native and numpy results differ by
        # more than libm's last bit and the order of a sum)
        r = 1.0 / y
        for i in range(n):
            z[i] = x[i] * r
    else:  # 0, inf, NaN, or 1/y not normal: divide
        for i in range(n):
            z[i] = x[i] / y


@_kernel
def _arith_sv(ws, f, o, n, x, b):
    z, y = ws[o:o + n], ws[b:b + n]
    if f == 0:
        for i in range(n):
            z[i] = x + y[i]
    elif f == 1:
        for i in range(n):
            z[i] = x - y[i]
    elif f == 2:
        for i in range(n):
            z[i] = x * y[i]
    else:
        for i in range(n):
            z[i] = x / y[i]


@_kernel
def _unary_v(ws, f, o, n, a):
    # contiguous input: negation, copies and squares inline (vectorised),
    # the rest through the scalar kernel
    z, x = ws[o:o + n], ws[a:a + n]
    if f == 1:
        for i in range(n):
            z[i] = -x[i]
    elif f == 0:
        for i in range(n):
            z[i] = x[i]
    elif f == 16:
        for i in range(n):
            z[i] = x[i] * x[i]
    else:
        for i in range(n):
            z[i] = _unary(f, x[i])


@_jit
def run(code, ints, ws, status):
    """Execute the instruction stream ``code`` on the workspace ``ws``.

    Sets ``status[0]`` to 0 (done), 1 (a guard failed) or 2 (linear algebra
    failed) and returns it.
    """
    status[0] = 0
    pc = 0
    end = code.shape[0]
    while pc < end:
        op = code[pc]
        # scalar arithmetic first and without a call: most of a loop's ops
        if op == _S_ADD:
            ws[code[pc + 1]] = ws[code[pc + 2]] + ws[code[pc + 3]]
            pc += 4
        elif op == _S_MUL:
            ws[code[pc + 1]] = ws[code[pc + 2]] * ws[code[pc + 3]]
            pc += 4
        elif op == _S_SUB:
            ws[code[pc + 1]] = ws[code[pc + 2]] - ws[code[pc + 3]]
            pc += 4
        elif op == _S_DIV:
            ws[code[pc + 1]] = ws[code[pc + 2]] / ws[code[pc + 3]]
            pc += 4
        elif op == _CALL:
            _call(code[pc + 1], ws, ints, code[pc + 2])
            pc += 3
        elif op == _S_BIN:
            ws[code[pc + 2]] = _binary(code[pc + 1], ws[code[pc + 3]], ws[code[pc + 4]])
            pc += 5
        elif op == _S_UN:
            ws[code[pc + 2]] = _unary(code[pc + 1], ws[code[pc + 3]])
            pc += 4
        elif op == _V_BIN:
            f, o, n, a, sa, b, sb = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], \
                code[pc + 5], code[pc + 6], code[pc + 7]
            if f <= 3 and sa == 1 and sb == 1:
                _arith_vv(ws, f, o, n, a, b)
            elif f <= 3 and sa == 1 and sb == 0:
                _arith_vs(ws, f, o, n, a, ws[b])
            elif f <= 3 and sa == 0 and sb == 1:
                _arith_sv(ws, f, o, n, ws[a], b)
            else:
                for i in range(n):
                    ws[o + i] = _binary(f, ws[a + i * sa], ws[b + i * sb])
            pc += 8
        elif op == _V_UN:
            f, o, n, a, sa = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], code[pc + 5]
            if sa == 1:
                _unary_v(ws, f, o, n, a)
            else:
                for i in range(n):
                    ws[o + i] = _unary(f, ws[a + i * sa])
            pc += 6
        elif op == _UN or op == _BIN or op == _TER:
            f, o = code[pc + 1], code[pc + 2]
            n0, n1, n2, n3 = code[pc + 3], code[pc + 4], code[pc + 5], code[pc + 6]
            a = code[pc + 7]
            a0, a1, a2, a3 = code[pc + 8], code[pc + 9], code[pc + 10], code[pc + 11]
            b, b0, b1, b2, b3 = 0, 0, 0, 0, 0
            c, c0, c1, c2, c3 = 0, 0, 0, 0, 0
            if op != _UN:
                b = code[pc + 12]
                b0, b1, b2, b3 = code[pc + 13], code[pc + 14], code[pc + 15], code[pc + 16]
            if op == _TER:
                c = code[pc + 17]
                c0, c1, c2, c3 = code[pc + 18], code[pc + 19], code[pc + 20], code[pc + 21]
            k = o
            for i0 in range(n0):
                for i1 in range(n1):
                    for i2 in range(n2):
                        for i3 in range(n3):
                            x = ws[a + i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3]
                            if op == _UN:
                                ws[k] = _unary(f, x)
                            else:
                                y = ws[b + i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3]
                                # + - * / inline, not a call of _binary per
                                # element (an HMM's matrix minus a broadcast row)
                                if op == _BIN and f == 0:
                                    ws[k] = x + y
                                elif op == _BIN and f == 1:
                                    ws[k] = x - y
                                elif op == _BIN and f == 2:
                                    ws[k] = x * y
                                elif op == _BIN and f == 3:
                                    ws[k] = x / y
                                elif op == _BIN:
                                    ws[k] = _binary(f, x, y)
                                else:
                                    z = ws[c + i0 * c0 + i1 * c1 + i2 * c2 + i3 * c3]
                                    ws[k] = _ternary(f, x, y, z)
                            k += 1
            pc += 12 if op == _UN else (17 if op == _BIN else 22)
        elif op == _MOVE:
            n, p = code[pc + 1], code[pc + 2]
            for i in range(n):
                ws[ints[p + 2 * i]] = ws[ints[p + 2 * i + 1]]
            pc += 3
        elif op == _RED:
            # output k reduces ws[ints[pb + k] + ints[po + j]] for j < count, in
            # order, from the first element rather than the identity (saving
            # logsumexp an exp and a log1p per output)
            f, o, size, count, pb, po = code[pc + 1], code[pc + 2], code[pc + 3], \
                code[pc + 4], code[pc + 5], code[pc + 6]
            for k in range(size):
                base = ints[pb + k]
                if count == 0:
                    ws[o + k] = _reduce_init(f)
                    continue
                acc = ws[base + ints[po]]
                if f == 0:
                    acc = 0.0 + acc  # numpy adds onto +0.0: a sum of -0.0 is +0.0
                for j in range(1, count):
                    acc = _reduce_step(f, acc, ws[base + ints[po + j]])
                ws[o + k] = acc
            pc += 7
        elif op == _SUM:
            o, size, count, pb, step = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], \
                code[pc + 5]
            for k in range(size):
                # numpy adds the pairwise sum onto +0.0: a sum of -0.0 is +0.0
                ws[o + k] = 0.0 + _pairwise_sum(ws, ints[pb + k], count, step)
            pc += 6
        elif op == _SCATTER:
            o, size, add, n, p = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], \
                code[pc + 5]
            for i in range(size):
                ws[o + i] = 0.0
            if add != 0:
                for i in range(n):
                    ws[ints[p + 2 * i]] += ws[ints[p + 2 * i + 1]]
            else:
                for i in range(n):
                    ws[ints[p + 2 * i]] = ws[ints[p + 2 * i + 1]]
            pc += 6
        elif op == _SCATTER_FROM:
            o, size, add, n, p, src = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], \
                code[pc + 5], code[pc + 6]
            _scatter_from(ws, ints[p:p + n], o, size, add, ws[src:src + n])
            pc += 7
        elif op == _GATHER:
            o, n, p = code[pc + 1], code[pc + 2], code[pc + 3]
            _gather(ws, ints[p:p + n], ws[o:o + n])
            pc += 4
        elif op == _MATMUL:
            o, m, kk, n = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4]
            a, as0, as1 = code[pc + 5], code[pc + 6], code[pc + 7]
            b, bs0, bs1 = code[pc + 8], code[pc + 9], code[pc + 10]
            for i in range(m):
                for j in range(n):
                    s = 0.0
                    for q in range(kk):
                        s += ws[a + i * as0 + q * as1] * ws[b + q * bs0 + j * bs1]
                    ws[o + i * n + j] = s
            pc += 11
        elif op == _CUMSUM:
            o, outer, n, inner = code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4]
            for i in range(outer):
                for j in range(1, n):
                    for k in range(inner):
                        base = o + (i * n + j) * inner + k
                        ws[base] += ws[base - inner]
            pc += 5
        elif op == _CHOL:
            if not _cholesky(ws, code[pc + 1], code[pc + 2], code[pc + 3]):
                status[0] = 2
                return 2
            pc += 4
        elif op == _SOLVE:
            if not _solve(ws, code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4],
                          code[pc + 5]):
                status[0] = 2
                return 2
            pc += 6
        elif op == _TRSOLVE:
            _trsolve(ws, code[pc + 1], code[pc + 2], code[pc + 3], code[pc + 4], code[pc + 5],
                     code[pc + 6], code[pc + 7], code[pc + 8])
            pc += 9
        else:  # _GUARD
            kind, x, want = code[pc + 1], ws[code[pc + 2]], ws[code[pc + 3]]
            if kind == 0:
                ok = (x != 0.0) == (want != 0.0)
            elif kind == 1:
                ok = math.isfinite(x) and math.trunc(x) == want
            else:  # the same float, the sign of zero included; NaN matches NaN
                ok = (x == want and math.copysign(1.0, x) == math.copysign(1.0, want)) \
                    or (x != x and want != want)
            if not ok:
                status[0] = 1
                return 1
            pc += 4
    return 0


@_jit
def _rejected(status, kind):
    """+inf, a rejected proposal, counted in ``status[kind]``; but NaN the
    first time (marked in ``status[kind + 2]``), which makes the caller
    evaluate the point through Python: that names the site and the cause."""
    if status[kind + 2] == 0:
        status[kind + 2] = 1
        return math.nan
    status[kind] += 1
    return math.inf


@_jit
def potential_fn(q, grad_out, prog):
    """``U(q)`` of a lowered potential, with ``dU/dq`` written into ``grad_out``.

    ``prog`` is ``(code, ints, ws, status, io)``; ``io`` holds the offset of
    ``q`` in ``ws``, the offset of ``U`` and then the position of each
    gradient entry. Returns +inf where the energy is not a number (NaN or
    invalid parameters, a failed Cholesky factorisation: a rejected
    proposal), counted in ``status[1]`` and ``status[2]`` respectively
    (``native.REJECTION_KINDS``), except the first of each kind (see
    :func:`_rejected`); and NaN with ``status[0] == 1`` when a guard failed
    (see :mod:`.native`).
    """
    code, ints, ws, status, io = prog
    q_at = io[0]
    for i in range(q.shape[0]):
        ws[q_at + i] = q[i]
    flag = run(code, ints, ws, status)
    if flag == 1:
        return math.nan
    for i in range(grad_out.shape[0]):
        grad_out[i] = ws[io[2 + i]]
    if flag == 2:
        return _rejected(status, 2)
    u = ws[io[1]]
    return _rejected(status, 1) if u != u else u
