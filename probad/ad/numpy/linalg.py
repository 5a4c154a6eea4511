"""``probad.ad.numpy.linalg``: numpy.linalg, differentiable.

Every function works on stacks of matrices (``(..., M, N)``) as numpy does,
and has both a reverse-mode (VJP) and a forward-mode (JVP) rule written with
differentiable functions, so derivatives of any order exist.

Conventions worth knowing:

- Functions that return several arrays (``eigh``, ``eig``, ``svd``, ``qr``,
  ``slogdet``) return plain tuples, not numpy's named tuples, so that they can
  be traced.
- ``cholesky`` and ``eigh`` read one triangle of their input, as numpy does
  (the lower one by default), and, for complex input, only the real part of
  its diagonal (LAPACK ignores the imaginary part). Their derivatives are
  those of that function: the gradient is zero on the unread triangle and
  counts each off-diagonal entry of the read triangle for both of its
  (conjugate) symmetric positions. For a matrix built Hermitian
  (``A = B @ B.conj().T``) this is the usual gradient.
- Derivatives of eigenvectors and singular vectors are undefined where
  eigenvalues (singular values) repeat; the coupling terms between equal
  values are set to zero, which is exact for functions of the invariant
  subspaces (``eigh`` inside ``logdet``, ``pinv``, ...).
- Complex eigenvectors of ``eigh`` and singular vectors of ``svd`` are
  defined up to a phase per column (for ``svd``, the same phase on ``u``
  and ``vh``), which LAPACK fixes in no differentiable way. The derivatives
  choose the phase that keeps ``v^H dv`` (``vh dvh^H``) free of diagonal;
  they are exact for functions that do not depend on the phase, such as
  eigenvalues, ``abs(v) ** 2`` or ``v @ diag(f(w)) @ v.conj().T``.
- ``norm`` is NaN-safe: the gradient of a 2-norm (or Frobenius norm) at the
  zero vector is 0, a subgradient, instead of ``0/0``.
- Every function is differentiable for complex input too, with autograd's
  convention for complex derivatives: a VJP is the transpose of the JVP
  under the pairing ``Re(sum(g * t))``, so where a JVP has a conjugate
  transpose ``X^H`` its VJP has ``conj(X)`` factors.
"""
from __future__ import annotations

import numpy as onp

from ..core import defjvp, defprimitive, defvjp
from ..tracer import getval, nondiff_primitive, primitive
from . import numpy_wrapper as anp
from .numpy_vjps import unbroadcast

__all__ = [
    "cholesky", "cond", "cross", "det", "diagonal", "eig", "eigh", "eigvals",
    "eigvalsh", "inv", "lstsq", "matmul", "matrix_norm", "matrix_power",
    "matrix_rank", "matrix_transpose", "multi_dot", "norm", "outer", "pinv",
    "qr", "slogdet", "solve", "svd", "svdvals", "tensordot", "tensorinv",
    "tensorsolve", "trace", "vecdot", "vector_norm", "LinAlgError",
]

LinAlgError = onp.linalg.LinAlgError


# ------------------------------------------------------------------ helpers
def _T(x):
    return anp.swapaxes(x, -1, -2)


def _conj(x):
    """``conj(x)``, without a (no-op) call for real ``x``."""
    return anp.conj(x) if onp.iscomplexobj(x) else x


def _real(x):
    """``real(x)``, without a (no-op) call for real ``x``."""
    return anp.real(x) if onp.iscomplexobj(x) else x


def _H(x):
    """Conjugate transpose of each matrix in a stack."""
    return _conj(_T(x))


def _real_dtype(x):
    """The real floating dtype matching ``x``'s precision (float32 stays float32)."""
    x = getval(x)
    if isinstance(x, (bool, int, float, complex)):
        return onp.dtype(float)
    return onp.finfo(onp.result_type(x, onp.float16)).dtype


def _eye(n, like):
    return onp.eye(n, dtype=_real_dtype(like))


def _diag_part(a):
    """The diagonal of each matrix in a stack: ``(..., n, n) -> (..., n)``."""
    return anp.sum(a * _eye(a.shape[-1], a), axis=-1)


def _diag_embed(v):
    """Diagonal matrices from a stack of vectors: ``(..., n) -> (..., n, n)``."""
    return anp.expand_dims(v, -1) * _eye(v.shape[-1], v)


def _trace(a):
    return anp.sum(_diag_part(a), axis=-1)


# autograd's numpy/linalg.py defines these helpers, and code written for
# autograd imports them (or copies their uses) from there.
def T(x):
    """Transpose of each matrix in a stack (the last two axes swapped)."""
    return _T(x)


def add2d(x):
    """``x`` with two trailing axes of length 1 (a stack of 1x1 matrices)."""
    return anp.reshape(x, anp.shape(x) + (1, 1))


def _dot(a, b):
    """Matrix product of stacks, broadcasting the leading axes (autograd's ``_dot``)."""
    return anp.einsum("...ij,...jk->...ik", a, b)


def _diag(a):
    """``eye(n) * a``: a vector becomes a diagonal matrix, a matrix keeps its diagonal."""
    return anp.eye(anp.shape(a)[-1]) * a


_matrix_diag = _diag_embed  # a stack of vectors -> a stack of diagonal matrices


def _phi(x):
    """Lower triangle with the diagonal halved (the inverse of ``L -> L + L^H``
    on lower-triangular matrices with a real diagonal)."""
    n = x.shape[-1]
    return x * (onp.tril(onp.ones((n, n), _real_dtype(x)), -1) + 0.5 * _eye(n, x))


def _hermitian_from(x, lower):
    """The Hermitian matrix a triangle-reading routine sees: ``x``'s strict
    lower (or upper) triangle mirrored and conjugated, and the real part of
    its diagonal."""
    n = x.shape[-1]
    mask = onp.tril(onp.ones((n, n), _real_dtype(x)), -1)
    strict = x * mask if lower else x * mask.T
    return strict + _H(strict) + _real(x) * _eye(n, x)


def _hermitian_fold(g, lower):
    """The transpose of :func:`_hermitian_from`: a cotangent of the Hermitian
    matrix gathered onto the triangle read (``g_ij + conj(g_ji)`` there, the
    real part of ``g`` on the diagonal)."""
    both = g + _H(g)
    return _phi(both) if lower else _T(_phi(_T(both)))


def _gap_reciprocal(w):
    """``F[..., i, j] = 1 / (w_j - w_i)`` off the diagonal, 0 on it and where
    values are equal (see the module notes)."""
    diff = anp.expand_dims(w, -2) - anp.expand_dims(w, -1)
    equal = diff == 0
    return anp.where(equal, 0.0, 1 / anp.where(equal, 1.0, diff))


def _as_column(b, is_vector):
    return anp.expand_dims(b, -1) if is_vector else b


def _from_column(x, is_vector):
    return x[..., 0] if is_vector else x


# ------------------------------------------------------------ inv and solve
inv = primitive(onp.linalg.inv, "inv")
defvjp(inv, lambda ans, a: lambda g: -anp.matmul(_T(ans), anp.matmul(g, _T(ans))))
defjvp(inv, lambda g, ans, a: -anp.matmul(ans, anp.matmul(g, ans)))

solve = primitive(onp.linalg.solve, "solve")


def _solve_vjp_a(ans, a, b):
    # numpy >= 2 reads b as a vector only when it is 1-D.
    vec = onp.ndim(b) == 1

    def vjp(g):
        gb = solve(_T(a), _as_column(g, vec))
        return unbroadcast(-anp.matmul(gb, _T(_as_column(ans, vec))), a)

    return vjp


def _solve_vjp_b(ans, a, b):
    vec = onp.ndim(b) == 1
    return lambda g: unbroadcast(_from_column(solve(_T(a), _as_column(g, vec)), vec), b)


defvjp(solve, _solve_vjp_a, _solve_vjp_b)
defprimitive(solve, native="solve")
defjvp(solve,
       lambda g, ans, a, b: -_from_column(solve(a, anp.matmul(g, _as_column(ans, onp.ndim(b) == 1))),
                                          onp.ndim(b) == 1),
       lambda g, ans, a, b: solve(a, g))


# ---------------------------------------------------------------- determinants
det = primitive(onp.linalg.det, "det")


def _as_matrix_scalar(x):
    return anp.reshape(x, onp.shape(x) + (1, 1))


defvjp(det, lambda ans, a: lambda g: _as_matrix_scalar(g * ans) * _T(inv(a)))
defjvp(det, lambda g, ans, a: ans * _trace(solve(a, g)))


@primitive
def slogdet(a):
    """``(sign, log|det a|)`` of each matrix in a stack (a plain tuple)."""
    sign, logabsdet = onp.linalg.slogdet(a)
    return sign, logabsdet


def _slogdet_vjp(ans, a):
    sign = ans[0]

    def vjp(g):
        g_sign, g_log = g
        # d log|det| = Re t and d sign = i sign Im t, with t = tr(a^-1 da).
        c = g_log + 1j * anp.imag(g_sign * sign) if onp.iscomplexobj(a) else g_log
        return _as_matrix_scalar(c) * _T(inv(a))

    return vjp


def _slogdet_jvp(g, ans, a):
    sign, logabsdet = ans
    t = _trace(solve(a, g))
    if onp.iscomplexobj(a):
        return 1j * sign * anp.imag(t), anp.real(t)
    return onp.zeros(onp.shape(sign), onp.result_type(sign)), t


defvjp(slogdet, _slogdet_vjp)
defjvp(slogdet, _slogdet_jvp)


# ------------------------------------------------------------------ Cholesky
@primitive
def cholesky(a, upper=False):
    """Cholesky factor of each matrix in a stack, reading the lower (upper)
    triangle only. See the module notes for the derivative convention."""
    return onp.linalg.cholesky(a, upper=upper)


def _cholesky_lower_jvp(L, da):
    # dL = L phi(L^-1 S L^-H), S the Hermitian matrix seen through the lower
    # triangle: L^-1 dL is lower triangular with a real diagonal.
    s = _hermitian_from(da, lower=True)
    return anp.matmul(L, _phi(solve(L, _H(solve(L, s)))))


def _cholesky_lower_vjp(L, g):
    # The transpose of the JVP: S_bar = L^-T phi(L^T g) conj(L)^-1, folded
    # onto the lower triangle.
    p = _phi(anp.matmul(_T(L), g))
    s = solve(_T(L), _T(solve(_H(L), _T(p))))
    return _hermitian_fold(s, lower=True)


def _cholesky_vjp(ans, a, upper=False):
    if upper:  # upper factor of a = transposed lower factor of a.T
        return lambda g: _T(_cholesky_lower_vjp(_T(ans), _T(g)))
    return lambda g: _cholesky_lower_vjp(ans, g)


def _cholesky_jvp(g, ans, a, upper=False):
    if upper:
        return _T(_cholesky_lower_jvp(_T(ans), _T(g)))
    return _cholesky_lower_jvp(ans, g)


defvjp(cholesky, _cholesky_vjp)
defprimitive(cholesky, native="cholesky")
defjvp(cholesky, _cholesky_jvp)


# ----------------------------------------------------- symmetric eigenproblem
@primitive
def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors of Hermitian (real symmetric)
    matrices, reading the ``UPLO`` triangle; returns the tuple ``(w, v)``."""
    w, v = onp.linalg.eigh(a, UPLO)
    return w, v


def _eigh_vjp(ans, a, UPLO="L"):
    w, v = ans
    f = _gap_reciprocal(w)

    def vjp(g):
        gw, gv = g
        inner = _diag_embed(gw) + f * anp.matmul(_T(v), gv)
        return _hermitian_fold(anp.matmul(_conj(v), anp.matmul(inner, _T(v))), UPLO == "L")

    return vjp


def _eigh_jvp(g, ans, a, UPLO="L"):
    # C = V^H dA V is Hermitian: dw is its (real) diagonal, and V^H dV = F * C
    # has a zero diagonal (the phase choice of the module notes).
    w, v = ans
    c = anp.matmul(_H(v), anp.matmul(_hermitian_from(g, lower=UPLO == "L"), v))
    return _real(_diag_part(c)), anp.matmul(v, _gap_reciprocal(w) * c)


defvjp(eigh, _eigh_vjp)
defjvp(eigh, _eigh_jvp)


def eigvalsh(a, UPLO="L"):
    """Eigenvalues of Hermitian (real symmetric) matrices (see :func:`eigh`)."""
    return eigh(a, UPLO)[0]


# ------------------------------------------------------- general eigenproblem
@primitive
def eig(a):
    """Eigenvalues and right eigenvectors ``(w, v)`` of square matrices.

    As numpy, the result is real when every eigenvalue is real, and each
    eigenvector has unit 2-norm with its largest component real (LAPACK's
    normalisation, which the derivative of ``v`` respects). Derivatives
    assume distinct eigenvalues.
    """
    w, v = onp.linalg.eig(a)
    return w, v


def _largest_component_mask(v):
    """Mask of each eigenvector's largest-modulus component (the one LAPACK
    makes real). A comparison, so a constant for derivatives, but computed
    with primitives so that a compiled tape recomputes it."""
    size = anp.abs(v)
    return size == anp.max(size, axis=-2, keepdims=True)


def _eig_jvp(g, ans, a):
    w, v = ans
    c = anp.matmul(solve(v, g), v)
    u = anp.matmul(v, _gap_reciprocal(w) * c)
    # Add multiples of each eigenvector to keep LAPACK's normalisation:
    # Re(v^H dv) = 0 (unit norm) and Im(dv) = 0 at the largest component.
    if onp.iscomplexobj(v):
        mask = _largest_component_mask(v)
        v_k = anp.sum(v * mask, axis=-2)
        u_k = anp.sum(u * mask, axis=-2)
        alpha = -anp.real(anp.sum(anp.conj(v) * u, axis=-2)) - 1j * anp.imag(u_k) / v_k
    else:
        alpha = -anp.sum(v * u, axis=-2)
    return _diag_part(c), u + v * anp.expand_dims(alpha, -2)


def _eig_vjp(ans, a):
    w, v = ans
    f = _gap_reciprocal(w)
    v_inv_t = _T(inv(v))

    def vjp(g):
        gw, gv = g
        s = anp.sum(gv * v, axis=-2)  # the transpose of the normalisation step
        if onp.iscomplexobj(v):
            mask = _largest_component_mask(v)
            v_k = anp.sum(v * mask, axis=-2)
            gv = gv - anp.expand_dims(anp.real(s), -2) * anp.conj(v) \
                - 1j * mask * anp.expand_dims(anp.imag(s) / v_k, -2)
        else:
            gv = gv - anp.expand_dims(s, -2) * v
        inner = _diag_embed(gw) + f * anp.matmul(_T(v), gv)
        out = anp.matmul(v_inv_t, anp.matmul(inner, _T(v)))
        return out if onp.iscomplexobj(a) else anp.real(out)

    return vjp


defvjp(eig, _eig_vjp)
defjvp(eig, _eig_jvp)


def eigvals(a):
    """Eigenvalues of square matrices (see :func:`eig`)."""
    return eig(a)[0]


# ------------------------------------------------------------------------ SVD
@primitive
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition; the tuple ``(u, s, vh)``, or ``s`` alone.

    Derivatives of ``u`` and ``vh`` need ``full_matrices=False`` (or square
    matrices): the extra columns of a full basis are not unique. With
    ``hermitian=True`` numpy reads the lower triangle only, and so do the
    derivatives (as for :func:`eigh`).
    """
    out = onp.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian)
    return tuple(out) if compute_uv else out


def _check_svd_args(a, full_matrices):
    m, n = onp.shape(a)[-2:]
    if full_matrices and m != n:
        raise ValueError("probad.ad.numpy.linalg.svd: derivatives of u and vh need full_matrices=False "
                         "for non-square matrices (the extra basis vectors are not unique)")


def _svd_terms(s):
    """``F[i, j] = 1/(s_j^2 - s_i^2)`` (0 where equal) and ``1/s``."""
    return _gap_reciprocal(s * s), 1 / s


def _fold_if_hermitian(vjp, hermitian):
    """Routines told ``hermitian=True`` read the lower triangle only."""
    if not hermitian:
        return vjp
    return lambda g: _hermitian_fold(vjp(g), lower=True)


def _imag_diagonal(x, scale=1.0):
    """``diag(1j * imag(diag(x)) / scale)`` for each matrix in a stack (zero,
    and no call, for real ``x``)."""
    return 1j * _diag_embed(anp.imag(_diag_part(x)) / scale) if onp.iscomplexobj(x) else 0.0


def _svd_vjp(ans, a, full_matrices=True, compute_uv=True, hermitian=False):
    return _fold_if_hermitian(_svd_vjp_general(ans, a, full_matrices, compute_uv, hermitian), hermitian)


def _svd_vjp_general(ans, a, full_matrices, compute_uv, hermitian):
    # The transpose of the JVP below, term by term.
    if not compute_uv:
        u, _, vh = svd(a, full_matrices=False, hermitian=hermitian)
        return lambda g: anp.matmul(_conj(u) * anp.expand_dims(g, -2), _conj(vh))
    _check_svd_args(a, full_matrices)
    u, s, vh = ans
    v = _H(vh)
    f, s_inv = _svd_terms(s)

    def vjp(g):
        gu, gs, gvh = g
        gv = _H(gvh)
        ut_gu = anp.matmul(_T(u), gu)
        j = f * ut_gu
        k = f * anp.matmul(_T(v), gv)
        inner = (j + _H(j)) * anp.expand_dims(s, -2) + _diag_embed(gs) \
            + anp.expand_dims(s, -1) * (k + _H(k)) + _imag_diagonal(ut_gu, s)
        out = anp.matmul(_conj(u), anp.matmul(inner, _conj(vh)))
        # Components outside the spans of u and v (rectangular matrices).
        gu_perp = (gu - anp.matmul(_conj(u), ut_gu)) * anp.expand_dims(s_inv, -2)
        gv_perp = (gv - anp.matmul(_conj(v), anp.matmul(_T(v), gv))) * anp.expand_dims(s_inv, -2)
        return out + anp.matmul(gu_perp, _conj(vh)) + anp.matmul(_conj(u), _H(gv_perp))

    return vjp


def _svd_jvp(g, ans, a, full_matrices=True, compute_uv=True, hermitian=False):
    if hermitian:
        g = _hermitian_from(g, lower=True)
    if not compute_uv:
        u, _, vh = svd(a, full_matrices=False, hermitian=hermitian)
        return _real(anp.sum(_conj(u) * anp.matmul(g, _H(vh)), axis=-2))
    _check_svd_args(a, full_matrices)
    # With dP = U^H dA V: ds = Re diag(dP); off the diagonal, U^H dU and V^H dV
    # follow from dP S + S dP^H and S dP + dP^H S; the imaginary part of
    # diag(dP) goes to U^H dU (the phase choice of the module notes).
    u, s, vh = ans
    v = _H(vh)
    f, s_inv = _svd_terms(s)
    dp = anp.matmul(_H(u), anp.matmul(g, v))
    s_row, s_col = anp.expand_dims(s, -2), anp.expand_dims(s, -1)
    du = anp.matmul(u, f * (dp * s_row + s_col * _H(dp)) + _imag_diagonal(dp, s))
    dv = anp.matmul(v, f * (s_col * dp + _H(dp) * s_row))
    g_v = anp.matmul(g, v)
    gh_u = anp.matmul(_H(g), u)
    du = du + (g_v - anp.matmul(u, anp.matmul(_H(u), g_v))) * anp.expand_dims(s_inv, -2)
    dv = dv + (gh_u - anp.matmul(v, anp.matmul(vh, gh_u))) * anp.expand_dims(s_inv, -2)
    return du, _real(_diag_part(dp)), _H(dv)


defvjp(svd, _svd_vjp)
defjvp(svd, _svd_jvp)


def svdvals(x):
    """Singular values of each matrix in a stack, in descending order."""
    return svd(x, compute_uv=False)


# ------------------------------------------------------------ pseudo-inverse
@primitive
def pinv(a, rcond=None, hermitian=False, **kwargs):
    """Moore-Penrose pseudo-inverse. Its derivative holds where the rank is
    constant (no singular value crosses the cutoff)."""
    return onp.linalg.pinv(a, rcond=rcond, hermitian=hermitian, **kwargs)


def _pinv_vjp(ans, a, rcond=None, hermitian=False, **kwargs):
    return _fold_if_hermitian(_pinv_vjp_general(ans, a), hermitian)


def _pinv_vjp_general(ans, a):
    x, xc = ans, _conj(ans)
    m, n = onp.shape(a)[-2:]

    def vjp(g):
        # Transpose of dX = -X dA X + X X^H dA^H (I - A X) + (I - X A) dA^H X^H X.
        left = _eye(m, a) - anp.matmul(_conj(a), xc)
        right = _eye(n, a) - anp.matmul(xc, _conj(a))
        out = -anp.matmul(_T(x), anp.matmul(g, _T(x)))
        out = out + anp.matmul(left, anp.matmul(_H(g), anp.matmul(xc, _T(x))))
        return out + anp.matmul(anp.matmul(_T(x), xc), anp.matmul(_H(g), right))

    return vjp


def _pinv_jvp(g, ans, a, rcond=None, hermitian=False, **kwargs):
    if hermitian:
        g = _hermitian_from(g, lower=True)
    x = ans
    m, n = onp.shape(a)[-2:]
    left = _eye(m, a) - anp.matmul(a, x)
    right = _eye(n, a) - anp.matmul(x, a)
    out = -anp.matmul(x, anp.matmul(g, x))
    out = out + anp.matmul(anp.matmul(x, _H(x)), anp.matmul(_H(g), left))
    return out + anp.matmul(right, anp.matmul(_H(g), anp.matmul(_H(x), x)))


defvjp(pinv, _pinv_vjp)
defjvp(pinv, _pinv_jvp)


# ------------------------------------------------------------------------ QR
@primitive
def _qr_reduced(a):
    q, r = onp.linalg.qr(a, mode="reduced")
    return q, r


def _qr_tall_jvp(q, r, da):
    # A = QR with Q^H Q = I and a real diagonal in R (LAPACK's): M = Q^H dA R^-1
    # is Q^H dQ (anti-Hermitian) plus dR R^-1 (upper, with a real diagonal).
    da_rinv = _T(solve(_T(r), _T(da)))
    m = anp.matmul(_H(q), da_rinv)
    n = m.shape[-1]
    low = m * onp.tril(onp.ones((n, n), _real_dtype(m)), -1)
    omega = low - _H(low) + _imag_diagonal(m)
    return anp.matmul(q, omega - m) + da_rinv, anp.matmul(m - omega, r)


def _qr_tall_vjp(q, r, gq, gr):
    n = r.shape[-1]
    b = anp.matmul(_T(q), gq) - anp.matmul(gr, _T(r))
    nn = (b - _H(b)) * onp.tril(onp.ones((n, n), _real_dtype(b)), -1) + _imag_diagonal(b) - b
    return _T(solve(r, _T(gq + anp.matmul(_conj(q), nn))))


def _qr_vjp(ans, a):
    q, r = ans
    m, n = onp.shape(a)[-2:]

    def vjp(g):
        gq, gr = g
        if m >= n:
            return _qr_tall_vjp(q, r, gq, gr)
        # Wide: A = [X Y], X = Q R1 square and R2 = Q^H Y.
        y, gr1, gr2 = a[..., :, m:], gr[..., :, :m], gr[..., :, m:]
        gx = _qr_tall_vjp(q, r[..., :, :m], gq + anp.matmul(_conj(y), _H(gr2)), gr1)
        return anp.concatenate([gx, anp.matmul(_conj(q), gr2)], axis=-1)

    return vjp


def _qr_jvp(g, ans, a):
    q, r = ans
    m, n = onp.shape(a)[-2:]
    if m >= n:
        return _qr_tall_jvp(q, r, g)
    dq, dr1 = _qr_tall_jvp(q, r[..., :, :m], g[..., :, :m])
    dr2 = anp.matmul(_H(dq), a[..., :, m:]) + anp.matmul(_H(q), g[..., :, m:])
    return dq, anp.concatenate([dr1, dr2], axis=-1)


defvjp(_qr_reduced, _qr_vjp)
defjvp(_qr_reduced, _qr_jvp)


def _qr_without_derivative(a, mode):
    out = onp.linalg.qr(a, mode=mode)
    return tuple(out) if isinstance(out, tuple) else out


_qr_other_modes = primitive(_qr_without_derivative, "qr")


def qr(a, mode="reduced"):
    """QR decomposition of each matrix in a stack.

    Differentiable for ``mode="reduced"`` (the tuple ``(q, r)``), ``"r"`` and
    for ``"complete"`` when ``M <= N`` (where it equals ``"reduced"``).
    ``"complete"`` with ``M > N`` (extra columns of Q are not unique) and
    ``"raw"`` (LAPACK's internal form) compute values but have no derivative.
    """
    m, n = onp.shape(getval(a))[-2:]
    if mode in ("reduced", "r") or (mode == "complete" and m <= n):
        q, r = _qr_reduced(a)
        return r if mode == "r" else (q, r)
    return _qr_other_modes(a, mode)


# ----------------------------------------------------------------------- norms
def _vector_norm_weights(ans, x, ord, axis, keepdims):
    """``w`` with ``d norm = Re(sum(w * dx))``: the norm's gradient in the
    convention of this package (conjugated for complex ``x``)."""
    shape = onp.shape(x)
    kshape = tuple(1 for _ in shape) if axis is None else _keepdims_shape(shape, axis)
    norm_k = anp.reshape(ans, kshape)
    absx = anp.abs(x)
    nonzero = absx != 0
    unit = anp.where(nonzero, anp.conj(x) / anp.where(nonzero, absx, 1), 0) \
        if onp.iscomplexobj(x) else anp.sign(x)
    if ord in (onp.inf, -onp.inf):
        winners = absx == norm_k
        return unit * winners / anp.sum(winners, axis=axis, keepdims=True), kshape
    if ord == 0:  # the count of non-zero entries is locally constant
        return onp.zeros(shape, _real_dtype(x)), kshape
    p = 2.0 if ord is None else float(ord)
    positive = norm_k != 0
    safe_norm = anp.where(positive, norm_k, 1)
    if p == 2:
        scale = absx / safe_norm
    elif p == 1:
        scale = 1.0
    else:  # |x|^(p-1) / norm^(p-1); entries at 0 get 0 (infinite slope if p < 1)
        safe_abs = anp.where(nonzero, absx, 1)
        scale = anp.where(nonzero, (safe_abs / safe_norm) ** (p - 1), 0)
    return anp.where(positive, unit * scale, 0), kshape


def _keepdims_shape(shape, axis):
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


@primitive
def _vector_norm(x, ord, axis, keepdims):
    return onp.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else ord)


def _vector_norm_vjp(ans, x, ord, axis, keepdims):
    w, kshape = _vector_norm_weights(ans, x, ord, axis, keepdims)
    return lambda g: anp.reshape(g, kshape) * w


def _vector_norm_jvp(g, ans, x, ord, axis, keepdims):
    w, _ = _vector_norm_weights(ans, x, ord, axis, keepdims)
    return anp.real(anp.sum(w * g, axis=axis, keepdims=keepdims))


defvjp(_vector_norm, _vector_norm_vjp)
defjvp(_vector_norm, _vector_norm_jvp)


def vector_norm(x, axis=None, keepdims=False, ord=2):
    """Vector p-norm over ``axis`` (an int, a tuple, or None for all entries)."""
    if isinstance(axis, list):
        axis = tuple(axis)
    return _vector_norm(x, ord, axis, keepdims)


def _matrix_norm(x, ord, axes, keepdims):
    ndim = onp.ndim(getval(x))
    row, col = (a % ndim for a in axes)
    if ord in ("fro", None):
        out = _vector_norm(x, 2, (row, col), False)
    elif ord in ("nuc", 2, -2):
        s = svd(anp.moveaxis(x, (row, col), (-2, -1)), compute_uv=False)
        reduce = {"nuc": anp.sum, 2: anp.max, -2: anp.min}[ord]
        out = reduce(s, axis=-1)
    elif ord in (1, -1, onp.inf, -onp.inf):
        sum_axis, pick_axis = (row, col) if ord in (1, -1) else (col, row)
        sums = anp.sum(anp.abs(x), axis=sum_axis)
        pick = pick_axis - 1 if pick_axis > sum_axis else pick_axis
        out = anp.max(sums, axis=pick) if ord in (1, onp.inf) else anp.min(sums, axis=pick)
    else:
        raise ValueError(f"Invalid norm order {ord!r} for matrices")
    if keepdims:
        out = anp.expand_dims(anp.expand_dims(out, min(row, col)), max(row, col))
    return out


def norm(x, ord=None, axis=None, keepdims=False):
    """Matrix or vector norm, as ``numpy.linalg.norm``, differentiable.

    Every ``ord`` numpy accepts is supported. The gradient of the 2-norm
    (and Frobenius norm) at zero is 0; for ``ord=inf`` ties share the
    gradient equally; for ``0 < ord < 1`` entries equal to 0 get gradient 0.
    Matrix norms 2, -2 and ``'nuc'`` go through :func:`svd`. ``x`` may be a
    list of traced values.
    """
    x = anp.asarray(x)
    ndim = onp.ndim(getval(x))
    if isinstance(axis, list):
        axis = tuple(axis)
    if axis is None:
        if ord is None:
            out = _vector_norm(x, 2, None, False)
            return anp.reshape(out, (1,) * ndim) if keepdims else out
        if ndim == 1:
            return _vector_norm(x, ord, None, keepdims)
        if ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError("Improper number of dimensions to norm.")
    if isinstance(axis, int) or len(axis) == 1:
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        return _vector_norm(x, ord, axis if isinstance(axis, int) else axis[0], keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


_primitive_norm = norm  # autograd's name for the norm that lists are first made arrays for


def matrix_norm(x, keepdims=False, ord="fro"):
    """Matrix norm over the last two axes (numpy >= 2 API)."""
    return _matrix_norm(x, ord, (-2, -1), keepdims)


def cond(x, p=None):
    """Condition number: ratio of extreme singular values (``p`` None, 2, -2),
    else ``norm(x, p) * norm(inv(x), p)``."""
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        return s[..., 0] / s[..., -1] if p in (None, 2) else s[..., -1] / s[..., 0]
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


# ----------------------------------------------------------- compositions
def matrix_power(a, n: int):
    """``a`` multiplied by itself ``n`` times (``inv(a)`` for negative ``n``),
    by repeated squaring."""
    if n < 0:
        a, n = inv(a), -n
    if n == 0:
        shape = onp.shape(getval(a))
        return onp.broadcast_to(onp.eye(shape[-1], dtype=onp.result_type(getval(a))), shape).copy()
    result, square = None, a
    while n:
        if n & 1:
            result = square if result is None else anp.matmul(result, square)
        n >>= 1
        if n:
            square = anp.matmul(square, square)
    return result


def multi_dot(arrays):
    """Product of several matrices (first and last may be vectors), left to right."""
    arrays = list(arrays)
    result = arrays[0]
    for a in arrays[1:]:
        result = anp.matmul(result, a)
    return result


def tensorinv(a, ind=2):
    """Inverse of ``a`` seen as a linear map from its last axes to its first ``ind``."""
    shape = onp.shape(getval(a))
    rows = int(onp.prod(shape[:ind]))
    inverse = inv(anp.reshape(a, (rows, -1)))
    return anp.reshape(inverse, shape[ind:] + shape[:ind])


def tensorsolve(a, b, axes=None):
    """Solve ``tensordot(a, x, x.ndim) = b`` for ``x``."""
    if axes is not None:
        order = [k for k in range(onp.ndim(getval(a))) if k not in axes] + list(axes)
        a = anp.transpose(a, order)
    a_shape, b_shape = onp.shape(getval(a)), onp.shape(getval(b))
    x_shape = a_shape[len(b_shape):]
    n = int(onp.prod(b_shape))
    x = solve(anp.reshape(a, (n, -1)), anp.reshape(b, (n,)))
    return anp.reshape(x, x_shape)


def lstsq(a, b, rcond=None):
    """Least-squares solution ``(x, residuals, rank, s)`` as numpy, with
    ``x = pinv(a) @ b`` so that it is differentiable where the rank is constant."""
    m, n = onp.shape(getval(a))
    dtype = _real_dtype(a)
    cutoff = onp.finfo(dtype).eps * max(m, n) if rcond is None else rcond
    x = anp.matmul(pinv(a, rcond=cutoff), b)
    s = svd(a, compute_uv=False)
    rank = matrix_rank(a, cutoff * anp.max(s))
    if int(rank) == n and m > n:  # a guard when compiled: the rank decides the output
        residuals = anp.sum(anp.abs(b - anp.matmul(a, x)) ** 2, axis=0)
        residuals = anp.reshape(residuals, (1,)) if onp.ndim(getval(b)) == 1 else residuals
    else:
        residuals = onp.zeros((0,), dtype)
    return x, residuals, rank, s


matrix_rank = nondiff_primitive(onp.linalg.matrix_rank, "matrix_rank")


def matmul(x1, x2):
    """``numpy.linalg.matmul`` (the array-API alias of ``numpy.matmul``)."""
    return anp.matmul(x1, x2)


def tensordot(x1, x2, axes=2):
    """``numpy.linalg.tensordot`` (alias of ``numpy.tensordot``)."""
    return anp.tensordot(x1, x2, axes)


def outer(x1, x2):
    """Outer product of two vectors."""
    return anp.outer(x1, x2)


def matrix_transpose(x):
    """Swap the last two axes."""
    return _T(x)


def vecdot(x1, x2, axis=-1):
    """``sum(conj(x1) * x2, axis)``."""
    return anp.sum(anp.conj(x1) * x2, axis=axis)


def trace(x, offset=0, dtype=None):
    """Trace of each matrix in a stack (over the last two axes)."""
    return anp.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


def diagonal(x, offset=0):
    """Diagonals of each matrix in a stack (over the last two axes)."""
    return anp.diagonal(x, offset, -2, -1)


def cross(x1, x2, axis=-1):
    """Cross product of 3-vectors along ``axis``."""
    return anp.cross(x1, x2, axis=axis)


# LAPACK refuses these inputs with LinAlgError (singular, not positive
# definite, no convergence): a compiled replay keeps such calls even when
# their result is unused, so it fails where eager evaluation fails.
for _prim in (inv, solve, cholesky, eigh, eig, svd, pinv):
    _prim.may_raise = True
