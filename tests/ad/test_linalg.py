"""probad.ad.numpy.linalg: values against numpy, derivatives by check_grads
(both modes, second order; third for complex decompositions) on single and
stacked matrices, complex input, float32, and the documented conventions
(triangle-reading derivatives, norm at zero, repeated eigenvalues, phases of
complex eigenvectors and singular vectors)."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import elementwise_grad, grad, hessian, jacobian, make_jvp
from probad.ad.test_util import check_grads

L = np.linalg
MODES = ["fwd", "rev"]


def rng():
    return onp.random.default_rng(0)


def randn(*shape):
    return rng().normal(size=shape)


def spd(*shape):
    """Symmetric positive definite matrices of shape (..., n, n)."""
    b = randn(*shape)
    return b @ onp.swapaxes(b, -1, -2) + shape[-1] * onp.eye(shape[-1])


def complex_randn(*shape):
    r = rng()
    return r.normal(size=shape) + 1j * r.normal(size=shape)


def hermitian_pd(*shape):
    """Complex Hermitian positive definite matrices of shape (..., n, n)."""
    b = complex_randn(*shape)
    return b @ onp.conj(onp.swapaxes(b, -1, -2)) + shape[-1] * onp.eye(shape[-1])


def check(fun, *args, order=2):
    check_grads(fun, modes=MODES, order=order)(*args)


BATCHES = [(), (2,), (2, 1)]


# ----------------------------------------------------------- inverse, solve, det
@pytest.mark.parametrize("batch", BATCHES, ids=str)
def test_inv_det_slogdet(batch):
    a = randn(*batch, 3, 3)
    onp.testing.assert_allclose(L.inv(a), onp.linalg.inv(a))
    onp.testing.assert_allclose(L.det(a), onp.linalg.det(a))
    onp.testing.assert_allclose(L.slogdet(a)[1], onp.linalg.slogdet(a)[1])
    check(L.inv, a)
    check(L.det, a)
    check(lambda a: L.slogdet(a)[1], a)


@pytest.mark.parametrize("a_shape, b_shape", [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)),
                                              ((2, 3, 3), (2, 3, 4)), ((2, 1, 3, 3), (4, 3, 1)),
                                              ((3, 3), (2, 3, 2))], ids=str)
def test_solve(a_shape, b_shape):
    a, b = randn(*a_shape), rng().normal(size=b_shape)
    onp.testing.assert_allclose(L.solve(a, b), onp.linalg.solve(a, b))
    check(L.solve, a, b)


def test_holomorphic_functions_of_complex_matrices():
    a, b = complex_randn(2, 3, 3), complex_randn(3)
    check(L.inv, a)
    check(L.det, a)
    check(L.solve, a, b)
    check(lambda a: L.slogdet(a), a)
    check(lambda a: L.matrix_power(a, 3), a)


def test_slogdet_returns_a_plain_tuple_and_sign_is_constant():
    a = randn(3, 3)
    out = L.slogdet(a)
    assert type(out) is tuple
    onp.testing.assert_array_equal(grad(lambda a: L.slogdet(a)[0])(a), 0.0)
    onp.testing.assert_allclose(grad(lambda a: L.slogdet(a)[1])(a), onp.linalg.inv(a).T)


# --------------------------------------------------------------------- Cholesky
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("make", [spd, hermitian_pd], ids=["real", "complex"])
def test_cholesky(make, batch, upper):
    a = make(*batch, 3, 3)
    onp.testing.assert_allclose(L.cholesky(a, upper=upper), onp.linalg.cholesky(a, upper=upper))
    check(lambda a: L.cholesky(a, upper=upper), a, order=3)


def test_cholesky_reads_one_triangle():
    a = spd(3, 3)
    g = grad(lambda a: np.sum(L.cholesky(a) ** 3))(a)
    onp.testing.assert_array_equal(onp.triu(g, 1), 0.0)
    g = grad(lambda a: np.sum(L.cholesky(a, upper=True) ** 3))(a)
    onp.testing.assert_array_equal(onp.tril(g, -1), 0.0)


def test_cholesky_of_a_symmetric_construction_gives_the_usual_gradient():
    # log det(B B^T + I) = 2 sum log diag(chol): gradient 2 (B B^T + I)^-1 B.
    b = randn(3, 3)

    def logdet(b):
        return 2 * np.sum(np.log(np.diagonal(L.cholesky(b @ b.T + onp.eye(3)))))

    onp.testing.assert_allclose(grad(logdet)(b), 2 * onp.linalg.solve(b @ b.T + onp.eye(3), b))
    check(logdet, b)


def test_complex_triangle_readers_ignore_the_unread_parts():
    # LAPACK reads one triangle and the real part of the diagonal only.
    a = hermitian_pd(3, 3)
    readers = [(lambda a: np.abs(L.cholesky(a)) ** 3, True), (lambda a: L.eigh(a)[0] ** 2, True),
               (lambda a: np.abs(L.cholesky(a, upper=True)) ** 3, False),
               (lambda a: L.eigh(a, UPLO="U")[0] ** 2, False)]
    for fun, lower in readers:
        g = grad(lambda a: np.sum(fun(a)))(a)
        onp.testing.assert_array_equal(onp.diag(g).imag, 0.0)
        onp.testing.assert_array_equal(onp.triu(g, 1) if lower else onp.tril(g, -1), 0.0)


# ------------------------------------------------------------- eigenproblems
def _phase_free_eigh(uplo):
    """Eigenvalues and functions of eigenvectors that do not depend on their phases."""
    def fun(a):
        w, v = L.eigh(a, UPLO=uplo)
        return w, np.abs(v) ** 2, (v * np.exp(w / 10)[..., None, :]) @ np.conj(np.swapaxes(v, -1, -2))
    return fun


@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("uplo", ["L", "U"])
@pytest.mark.parametrize("make", [spd, hermitian_pd], ids=["real", "complex"])
def test_eigh(make, batch, uplo):
    a = make(*batch, 3, 3)
    w, v = L.eigh(a, UPLO=uplo)
    onp.testing.assert_allclose(w, onp.linalg.eigh(a, UPLO=uplo)[0])
    onp.testing.assert_allclose((v * w[..., None, :]) @ onp.conj(onp.swapaxes(v, -1, -2)), a, atol=1e-12)
    # Real eigenvectors are unique up to sign; complex ones only up to a phase.
    fun = (lambda a: L.eigh(a, UPLO=uplo)) if make is spd else _phase_free_eigh(uplo)
    check(fun, a, order=3)
    check(lambda a: L.eigvalsh(a, UPLO=uplo), a, order=3)


def test_eigh_with_repeated_eigenvalues():
    # Functions of the eigenvalues, or of whole eigenspaces, stay differentiable.
    q = onp.linalg.qr(randn(3, 3))[0]
    a = q @ onp.diag([1.0, 1.0, 3.0]) @ q.T
    sym = lambda x: (x + x.T) / 2  # noqa: E731
    g = grad(lambda a: np.sum(L.eigh(sym(a))[0] ** 2))(a)
    onp.testing.assert_allclose(g, 2 * a, atol=1e-12)
    trace_fn = grad(lambda a: np.sum(L.eigh(sym(a))[1] ** 2))(a)  # sum of squares is constant
    onp.testing.assert_allclose(trace_fn, 0.0, atol=1e-12)


def test_eigh_complex_eigenvectors_keep_their_phase():
    # The derivative's phase choice: v^H dv has a zero (not just imaginary) diagonal.
    a, da = hermitian_pd(3, 3), hermitian_pd(3, 3)
    _, (_, dv) = make_jvp(L.eigh)(a)(da)
    v = L.eigh(a)[1]
    onp.testing.assert_allclose(onp.diag(onp.conj(v.T) @ dv), 0.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["real with complex eigenvalues", "real with real eigenvalues", "complex",
                                  "batched"])
def test_eig(kind):
    a = {"real with complex eigenvalues": randn(3, 3),
         "real with real eigenvalues": spd(3, 3) + 0.1 * randn(3, 3),
         "complex": complex_randn(3, 3),
         "batched": randn(2, 3, 3)}[kind]
    w, v = L.eig(a)
    onp.testing.assert_allclose(w, onp.linalg.eig(a)[0])
    onp.testing.assert_allclose(v, onp.linalg.eig(a)[1])
    check(L.eig, a)
    check(L.eigvals, a)


# ------------------------------------------------------------------------ SVD
@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)], ids=str)
def test_svd(shape):
    a = randn(*shape)
    u, s, vh = L.svd(a, full_matrices=False)
    onp.testing.assert_allclose(u @ (s[..., None] * vh), a, atol=1e-12)
    check(lambda a: L.svd(a, full_matrices=False), a)
    check(lambda a: L.svd(a, compute_uv=False), a)
    check(L.svdvals, a)


def _phase_free_svd(a):
    """Singular values and functions of u and vh that do not depend on their
    (shared) phases: moduli, and u diag(f(s)) vh."""
    u, s, vh = L.svd(a, full_matrices=False)
    return s, np.abs(u) ** 2, np.abs(vh) ** 2, (u * (s ** 2)[..., None, :]) @ vh + u @ vh


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)], ids=str)
def test_svd_complex(shape):
    a = complex_randn(*shape)
    u, s, vh = L.svd(a, full_matrices=False)
    onp.testing.assert_allclose(u @ (s[..., None] * vh), a, atol=1e-12)
    onp.testing.assert_allclose(s, onp.linalg.svd(a, compute_uv=False))
    check(_phase_free_svd, a, order=3)
    check(L.svdvals, a, order=3)


def test_complex_matrix_norms_and_condition_number():
    a = complex_randn(3, 4)
    for ord in ("nuc", 2, -2):
        onp.testing.assert_allclose(L.norm(a, ord), onp.linalg.norm(a, ord))
        check(lambda a: L.norm(a, ord), a)
    check(L.cond, a[:, :3])


def test_hermitian_flag_reads_the_lower_triangle():
    a = spd(3, 3)
    check(lambda a: L.svd(a, hermitian=True), a)
    check(lambda a: L.pinv(a, hermitian=True), a)
    onp.testing.assert_array_equal(onp.triu(grad(lambda a: np.sum(L.pinv(a, hermitian=True) ** 2))(a), 1), 0)
    # Singular values alone too, and for input that is not symmetric.
    check(lambda a: L.svd(a, hermitian=True, compute_uv=False), randn(3, 3) + 4 * onp.eye(3))
    h = hermitian_pd(3, 3)
    check(lambda a: L.svd(a, hermitian=True, compute_uv=False), h)
    check(lambda a: L.pinv(a, hermitian=True), h)


def test_svd_full_matrices_needs_square_input_for_derivatives():
    check(L.svd, randn(3, 3))
    with pytest.raises(ValueError, match="full_matrices=False"):
        grad(lambda a: np.sum(L.svd(a)[0]))(randn(4, 3))


# --------------------------------------------------------------- other solvers
@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)], ids=str)
def test_pinv(shape):
    a = randn(*shape)
    onp.testing.assert_allclose(L.pinv(a), onp.linalg.pinv(a))
    check(L.pinv, a)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)], ids=str)
def test_qr(shape):
    a = randn(*shape)
    q, r = L.qr(a)
    onp.testing.assert_allclose(q @ r, a, atol=1e-12)
    check(L.qr, a)
    check(lambda a: L.qr(a, mode="r"), a)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 5), (2, 4, 3)], ids=str)
def test_pinv_and_qr_complex(shape):
    # LAPACK's complex QR has a real diagonal in R, which makes it unique.
    a = complex_randn(*shape)
    onp.testing.assert_allclose(L.pinv(a), onp.linalg.pinv(a))
    q, r = L.qr(a)
    onp.testing.assert_allclose(q @ r, a, atol=1e-12)
    onp.testing.assert_array_equal(onp.diagonal(r, axis1=-2, axis2=-1).imag, 0.0)
    check(L.pinv, a, order=3)
    check(L.qr, a, order=3)
    if len(shape) == 2:  # lstsq goes through pinv
        check(lambda a: L.lstsq(a, complex_randn(shape[0]))[0], a)


def test_qr_complete_for_wide_matrices_and_raw_values():
    a = randn(3, 5)
    check(lambda a: L.qr(a, mode="complete"), a)
    tall = randn(5, 3)
    q, r = L.qr(tall, mode="complete")
    assert q.shape == (5, 5)
    with pytest.raises(NotImplementedError, match="qr"):
        grad(lambda a: np.sum(L.qr(a, mode="complete")[0]))(tall)


def test_matrix_power_and_multi_dot():
    a, b = randn(2, 3, 3), randn(3, 4)
    for n in (-2, 0, 1, 5):
        onp.testing.assert_allclose(L.matrix_power(a, n), onp.linalg.matrix_power(a, n))
        check(lambda a: L.matrix_power(a, n), a)
    vec = randn(3)
    onp.testing.assert_allclose(L.multi_dot([vec, a[0], b]), onp.linalg.multi_dot([vec, a[0], b]))
    check(lambda x, y: L.multi_dot([x, a[0], y]), vec, b)


def test_tensorinv_tensorsolve_lstsq_cond():
    a = randn(6, 2, 3)
    onp.testing.assert_allclose(L.tensorinv(a, 1), onp.linalg.tensorinv(a, 1))
    check(lambda a: L.tensorinv(a, 1), a)
    a, b = randn(2, 3, 6), randn(2, 3)
    onp.testing.assert_allclose(L.tensorsolve(a, b), onp.linalg.tensorsolve(a, b))
    check(L.tensorsolve, a, b)
    a, b = randn(5, 3), randn(5)
    x, res, rank, s = L.lstsq(a, b)
    for mine, ref in zip((x, res, rank, s), onp.linalg.lstsq(a, b)):
        onp.testing.assert_allclose(mine, ref)
    check(lambda a, b: L.lstsq(a, b)[:2], a, b)
    a = randn(3, 3)
    for p in (None, 2, -2, 1, "fro"):
        assert L.cond(a, p) == pytest.approx(onp.linalg.cond(a, p))
        check(lambda a: L.cond(a, p), a)


def test_pass_through_helpers():
    a = randn(4, 4)
    assert L.matrix_rank(a) == onp.linalg.matrix_rank(a)
    assert grad(lambda a: L.matrix_rank(a) * np.sum(a))(a)[0, 0] == 4
    assert L.LinAlgError is onp.linalg.LinAlgError
    x, y = randn(2, 3), randn(2, 3)
    onp.testing.assert_allclose(L.vecdot(x, y), onp.linalg.vecdot(x, y))
    onp.testing.assert_allclose(L.matrix_transpose(x), onp.linalg.matrix_transpose(x))
    check(L.vecdot, x, y)
    check(L.matrix_transpose, x)


# ---------------------------------------------------------------------- norms
VECTOR_ORDS = [None, 2, 1, onp.inf, -onp.inf, 0, 3, 0.5, -1.5]


@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_norms(ord):
    x = randn(2, 5)
    onp.testing.assert_allclose(L.norm(x, ord, axis=1), onp.linalg.norm(x, ord, axis=1))
    check(lambda x: L.norm(x, ord, axis=-1, keepdims=True), x)
    if ord is not None:
        check(lambda x: L.vector_norm(x, axis=(0, 1), ord=ord), x)


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 2, -2, 1, -1, onp.inf, -onp.inf], ids=str)
def test_matrix_norms(ord):
    x = randn(3, 2, 4)
    onp.testing.assert_allclose(L.norm(x, ord, axis=(2, 0), keepdims=True),
                                onp.linalg.norm(x, ord, axis=(2, 0), keepdims=True))
    check(lambda x: L.norm(x, ord, axis=(2, 0), keepdims=True), x)
    check(lambda x: L.norm(x[0], ord), x)
    if ord is not None:
        onp.testing.assert_allclose(L.matrix_norm(x, ord=ord), onp.linalg.matrix_norm(x, ord=ord))


def test_norm_of_complex_vectors():
    z = complex_randn(2, 3)
    onp.testing.assert_allclose(L.norm(z, axis=1), onp.linalg.norm(z, axis=1))
    check(lambda z: L.norm(z, axis=1), z)
    check(lambda z: L.norm(z, 1), z[0])
    check(lambda z: L.norm(z), z)


def test_norm_is_nan_safe_at_zero():
    zeros = onp.zeros((3, 2))
    onp.testing.assert_array_equal(grad(L.norm)(zeros), 0.0)
    onp.testing.assert_array_equal(elementwise_grad(lambda x: L.norm(x, axis=0))(zeros), 0.0)
    onp.testing.assert_array_equal(grad(lambda x: L.norm(x, 3))(zeros[:, 0]), 0.0)
    onp.testing.assert_array_equal(grad(lambda x: L.norm(x, 0.5))(onp.array([0.0, 2.0])), [0.0, 1.0])
    onp.testing.assert_array_equal(grad(lambda x: L.norm(x, "fro"))(zeros), 0.0)
    assert grad(lambda x: L.norm(x * onp.ones(2)))(0.0) == 0.0


def test_norm_ties_share_the_gradient():
    x = onp.array([1.0, -3.0, 3.0])
    onp.testing.assert_allclose(grad(lambda x: L.norm(x, onp.inf))(x), [0.0, -0.5, 0.5])


# ----------------------------------------------------------- dtype and order
@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "cholesky", "eigh", "svd", "pinv", "qr",
                                  "norm", "solve"])
def test_float32_gradients(name):
    a = spd(3, 3).astype(onp.float32)
    funs = {
        "inv": L.inv, "det": L.det, "slogdet": lambda a: L.slogdet(a)[1], "cholesky": L.cholesky,
        "eigh": lambda a: L.eigh(a)[0] * L.eigh(a)[1][0], "svd": lambda a: L.svd(a)[0] * L.svd(a)[1],
        "pinv": L.pinv, "qr": lambda a: L.qr(a)[0] + L.qr(a)[1], "norm": lambda a: L.norm(a, axis=0),
        "solve": lambda a: L.solve(a, onp.ones(3, onp.float32)),
    }
    fun = funs[name]
    g = grad(lambda a: np.sum(fun(a) ** 2))(a)
    assert g.dtype == onp.float32
    ref = grad(lambda a: np.sum(fun(a) ** 2))(a.astype(float))
    onp.testing.assert_allclose(g, ref, rtol=2e-3, atol=2e-3 * onp.abs(ref).max())


def test_third_derivative_of_log_det():
    # d3/dt3 log det(A + t B) at t = 0 is 2 tr((A^-1 B)^3).
    a, b = spd(3, 3), randn(3, 3)
    m = onp.linalg.solve(a, b)
    f = lambda t: L.slogdet(a + t * b)[1]  # noqa: E731
    assert grad(grad(grad(f)))(0.0) == pytest.approx(2 * onp.trace(m @ m @ m), rel=1e-10)


def test_jacobian_and_hessian_of_stacked_functions():
    a, b = randn(2, 3, 3), randn(2, 3, 1)
    jac = jacobian(lambda b: L.solve(a, b))(b)
    # d x[k] / d b[m] = inv(a[k]) if k == m else 0.
    expected = onp.einsum("kij,km->kimj", onp.linalg.inv(a), onp.eye(2)).reshape(2, 3, 1, 2, 3, 1)
    onp.testing.assert_allclose(jac, expected, atol=1e-12)
    h = hessian(lambda x: L.det(x.reshape(3, 3)))(randn(9))
    onp.testing.assert_allclose(h, h.T, atol=1e-12)
