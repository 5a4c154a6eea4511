"""``probad.ad.scipy.linalg``: scipy.linalg, differentiable.

Triangular and banded solves, Cholesky helpers, the matrix exponential and
square root and the Sylvester equation, each with a VJP and a JVP written with
differentiable functions (derivatives of any order). Stacks of matrices
``(..., M, M)`` work as in scipy; ``b`` is read as a vector only when it is
1-D. ``inv``, ``det`` and ``solve`` are numpy's (same mathematics).
"""
from __future__ import annotations

import numpy as onp
import scipy.linalg as _sl

from ..core import defjvp, defprimitive, defvjp
from ..numpy import linalg as _nla
from ..numpy import numpy_wrapper as anp
from ..numpy.numpy_vjps import unbroadcast
from ..tracer import primitive

__all__ = [
    "solve_triangular", "solve_banded", "cho_factor", "cho_solve", "cholesky", "sqrtm", "expm",
    "solve_sylvester", "inv", "det", "solve",
]

inv = _nla.inv
det = _nla.det
solve = _nla.solve


def _T(x):
    return anp.swapaxes(x, -1, -2)


_TRANS_CODES = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}


# ------------------------------------------------------------ triangular solve
@primitive
def _solve_triangular(a, b, trans, lower, unit_diagonal):
    return _sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal)


def _triangle_mask(a, lower, unit_diagonal):
    """Entries of ``a`` that the solve reads (the diagonal only if not unit)."""
    n = onp.shape(a)[-1]
    mask = onp.tril(onp.ones((n, n)), -1 if unit_diagonal else 0)
    mask = mask if lower else mask.T
    return mask.astype(_nla._real_dtype(a))


def _op(a, trans):
    """``op(a)``: ``a``, its transpose or its conjugate transpose."""
    if trans == 0:
        return a
    return _T(a) if trans == 1 else anp.conj(_T(a))


def _transpose_solve(a, g, trans, lower, unit_diagonal, vec):
    """``op(a)^-T g``, the transpose of ``b -> op(a)^-1 b``: N and T swap, and
    for C it is a solve with ``conj(a)`` untransposed."""
    g = anp.expand_dims(g, -1) if vec else g
    if trans == 2:
        out = _solve_triangular(anp.conj(a), g, 0, lower, unit_diagonal)
    else:
        out = _solve_triangular(a, g, 1 - trans, lower, unit_diagonal)
    return out[..., 0] if vec else out


def _solve_triangular_vjp_b(ans, a, b, trans, lower, unit_diagonal):
    vec = onp.ndim(b) == 1
    return lambda g: unbroadcast(_transpose_solve(a, g, trans, lower, unit_diagonal, vec), b)


def _solve_triangular_vjp_a(ans, a, b, trans, lower, unit_diagonal):
    vec = onp.ndim(b) == 1
    mask = _triangle_mask(a, lower, unit_diagonal)
    x_col = anp.expand_dims(ans, -1) if vec else ans

    def vjp(g):
        gb = _transpose_solve(a, g, trans, lower, unit_diagonal, vec)
        gb_col = anp.expand_dims(gb, -1) if vec else gb
        op_cotangent = -anp.matmul(gb_col, _T(x_col))
        if trans == 1:
            op_cotangent = _T(op_cotangent)
        elif trans == 2:
            op_cotangent = anp.conj(_T(op_cotangent))
        return unbroadcast(op_cotangent * mask, a)

    return vjp


def _solve_triangular_jvp_a(g, ans, a, b, trans, lower, unit_diagonal):
    vec = onp.ndim(b) == 1
    x_col = anp.expand_dims(ans, -1) if vec else ans
    rhs = -anp.matmul(_op(g * _triangle_mask(a, lower, unit_diagonal), trans), x_col)
    out = _solve_triangular(a, rhs, trans, lower, unit_diagonal)
    return out[..., 0] if vec else out


defvjp(_solve_triangular, _solve_triangular_vjp_a, _solve_triangular_vjp_b, None, None, None)
defprimitive(_solve_triangular, native="solve_triangular")
defjvp(_solve_triangular, _solve_triangular_jvp_a,
       lambda g, ans, a, b, trans, lower, unit_diagonal: _solve_triangular(a, g, trans, lower, unit_diagonal),
       None, None, None)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """Solve ``op(a) x = b`` for triangular ``a``, reading one triangle only.

    Parameters
    ----------
    a : (..., M, M) array_like
        Triangular matrices; only the ``lower`` (or upper) triangle is read,
        and its diagonal is taken as ones if ``unit_diagonal``. The gradient
        with respect to ``a`` is zero elsewhere.
    b : (M,) or (..., M, K) array_like
        Right-hand side (a vector only when 1-D, as in scipy).
    trans : {0, 1, 2, 'N', 'T', 'C'}
        ``op(a)`` is ``a``, ``a.T`` or ``a.conj().T``.
    lower, unit_diagonal : bool
        As in scipy.
    overwrite_b, check_finite : bool
        Accepted for compatibility; the solve never overwrites and always checks.

    Returns
    -------
    x : array with the shape of ``b`` (broadcast against ``a``'s batch).
    """
    return _solve_triangular(a, b, _TRANS_CODES[trans], bool(lower), bool(unit_diagonal))


# ------------------------------------------------------------ banded solve
#
# A banded matrix is stored as scipy does, by diagonals: ab[u + i - j, j] = a[i, j]
# (row k holds the diagonal j - i = u - k). Each operation on the band below
# reads, in row k, the entries of another array shifted by a row-dependent
# amount: one gather, differentiable, that never forms the dense matrix.

def _shift_rows(z, shifts):
    """``out[..., k, j, :] = z[..., k, j + shifts[k], :]``, zero where that
    column is outside ``z`` (the unused corners of a band)."""
    m = onp.shape(z)[-2]
    cols = onp.arange(m) + onp.asarray(shifts)[:, None]
    inside = (cols >= 0) & (cols < m)
    rows = onp.arange(len(shifts))[:, None]
    return z[..., rows, onp.clip(cols, 0, m - 1), :] * inside[:, :, None].astype(_nla._real_dtype(z))


def _band_transpose(lower, upper, ab):
    """The band of ``a.T`` (which has ``upper`` sub- and ``lower`` super-diagonals)."""
    flipped = anp.flip(ab, -2)  # row k of a.T's band is row l + u - k of a's, shifted
    return _shift_rows(anp.expand_dims(flipped, -1), onp.arange(lower + upper + 1) - lower)[..., 0]


def _band_matmul(upper, ab, x):
    """``a @ x`` for the band ``ab`` and columns ``x`` (..., M, K)."""
    terms = anp.expand_dims(ab, -1) * anp.expand_dims(x, -3)  # a[i, j] x[j] at [u + i - j, j]
    return anp.sum(_shift_rows(terms, upper - onp.arange(onp.shape(ab)[-2])), axis=-3)


def _band_of_outer(upper, rows, w, x):
    """The band (``rows`` diagonals) of ``w @ x.T`` for columns ``w``, ``x`` (..., M, K)."""
    shape = onp.shape(w)[:-2] + (rows,) + onp.shape(w)[-2:]
    w_rows = anp.broadcast_to(anp.expand_dims(w, -3), shape)
    return anp.sum(_shift_rows(w_rows, onp.arange(rows) - upper) * anp.expand_dims(x, -3), axis=-1)


@primitive
def _solve_banded(l_and_u, ab, b):
    return _sl.solve_banded(l_and_u, ab, b)


def _columns(x, vec):
    return anp.expand_dims(x, -1) if vec else x


def _banded_transpose_solve(l_and_u, ab, g, vec):
    """``a^-T g``: a solve with the transposed band."""
    lower, upper = l_and_u
    out = _solve_banded((upper, lower), _band_transpose(lower, upper, ab), _columns(g, vec))
    return out[..., 0] if vec else out


def _solve_banded_vjp_ab(ans, l_and_u, ab, b):
    vec = onp.ndim(b) == 1

    def vjp(g):
        w = _columns(_banded_transpose_solve(l_and_u, ab, g, vec), vec)
        return unbroadcast(-_band_of_outer(l_and_u[1], onp.shape(ab)[-2], w, _columns(ans, vec)), ab)

    return vjp


def _solve_banded_vjp_b(ans, l_and_u, ab, b):
    vec = onp.ndim(b) == 1
    return lambda g: unbroadcast(_banded_transpose_solve(l_and_u, ab, g, vec), b)


def _solve_banded_jvp_ab(g, ans, l_and_u, ab, b):
    # d x = -a^-1 (da x)
    vec = onp.ndim(b) == 1
    out = -_solve_banded(l_and_u, ab, _band_matmul(l_and_u[1], g, _columns(ans, vec)))
    return out[..., 0] if vec else out


defvjp(_solve_banded, None, _solve_banded_vjp_ab, _solve_banded_vjp_b)
defjvp(_solve_banded, None, _solve_banded_jvp_ab,
       lambda g, ans, l_and_u, ab, b: _solve_banded(l_and_u, ab, g))


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """Solve ``a x = b`` for a banded ``a`` given by its diagonals.

    Parameters
    ----------
    l_and_u : (int, int)
        Numbers of non-zero lower and upper diagonals ``(l, u)``.
    ab : (..., l + u + 1, M) array_like
        The band, ``ab[u + i - j, j] = a[i, j]``; the unused corners are not
        read, and their gradient is zero.
    b : (M,) or (..., M, K) array_like
        Right-hand side (a vector only when 1-D, as in scipy).
    overwrite_ab, overwrite_b, check_finite : bool
        Accepted for compatibility; the solve never overwrites and always checks.

    Returns
    -------
    x : array with the shape of ``b`` (broadcast against ``ab``'s batch).

    Differentiable in ``ab`` and ``b`` (real or complex), to any order.
    """
    lower, upper = l_and_u
    return _solve_banded((int(lower), int(upper)), ab, b)


# --------------------------------------------------------------- Cholesky
def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """Cholesky factor as scipy: upper by default, reading that triangle of ``a``."""
    return _nla.cholesky(a, upper=not lower)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """``(c, lower)`` for :func:`cho_solve`. Unlike scipy, the unused triangle
    of ``c`` is zero rather than left over from ``a``."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """Solve ``a x = b`` given ``cho_factor(a)``: two triangular solves."""
    c, lower = c_and_lower
    if lower:  # a = L L^T
        return solve_triangular(c, solve_triangular(c, b, lower=True), trans=1, lower=True)
    return solve_triangular(c, solve_triangular(c, b, trans=1, lower=False), lower=False)


# ------------------------------------------------------------ Sylvester
solve_sylvester = primitive(_sl.solve_sylvester, "solve_sylvester")
solve_sylvester.__doc__ = """Solve ``a x + x b = q`` for ``x`` (stacks of matrices too).

Differentiable in ``a``, ``b`` and ``q``: the tangent solves the same
equation with right-hand side ``dq - da x - x db``; the cotangent of ``q``
solves the transposed equation."""


def _sylvester_cotangent(a, b):
    return lambda g: solve_sylvester(_T(a), _T(b), g)


defvjp(solve_sylvester,
       lambda ans, a, b, q: lambda g: -anp.matmul(_sylvester_cotangent(a, b)(g), _T(ans)),
       lambda ans, a, b, q: lambda g: -anp.matmul(_T(ans), _sylvester_cotangent(a, b)(g)),
       lambda ans, a, b, q: _sylvester_cotangent(a, b))
defjvp(solve_sylvester,
       lambda g, ans, a, b, q: solve_sylvester(a, b, -anp.matmul(g, ans)),
       lambda g, ans, a, b, q: solve_sylvester(a, b, -anp.matmul(ans, g)),
       lambda g, ans, a, b, q: solve_sylvester(a, b, g))


# ------------------------------------------------------- matrix functions
expm = primitive(_sl.expm, "expm")
expm.__doc__ = """Matrix exponential of each matrix in a stack.

Its derivative is the Frechet derivative ``L(A, E)``, read off the upper
right block of ``expm([[A, E], [0, A]])``; the adjoint of ``L(A, .)`` is
``L(A.T, .)``. Both are expm again, so derivatives of any order exist."""


def _expm_frechet(a, e):
    """``L(a, e)`` by the block-triangular identity."""
    n = onp.shape(a)[-1]
    zeros = onp.zeros(onp.shape(a), onp.result_type(a, e))
    block = anp.concatenate([anp.concatenate([a, e], axis=-1),
                             anp.concatenate([zeros, a], axis=-1)], axis=-2)
    return expm(block)[..., :n, n:]


defvjp(expm, lambda ans, a: lambda g: _expm_frechet(_T(a), g))
defjvp(expm, lambda g, ans, a: _expm_frechet(a, g))

sqrtm = primitive(lambda A: _sl.sqrtm(A), "sqrtm")
sqrtm.__doc__ = """Principal square root ``X`` (``X @ X = A``) of each matrix in a stack.

The tangent solves the Sylvester equation ``X dX + dX X = dA``; the
cotangent the transposed one."""
defvjp(sqrtm, lambda ans, A: lambda g: solve_sylvester(_T(ans), _T(ans), g))
defjvp(sqrtm, lambda g, ans, A: solve_sylvester(ans, ans, g))


# Singular or non-finite input raises (LinAlgError, or ValueError from scipy's
# finiteness check): a compiled replay keeps these calls even when unused.
for _prim in (_solve_triangular, _solve_banded, solve_sylvester, sqrtm):
    _prim.may_raise = True
