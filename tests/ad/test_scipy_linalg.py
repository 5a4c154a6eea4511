"""probad.ad.scipy.linalg: values against scipy, derivatives by check_grads
(both modes, second order), stacked and complex matrices."""
import numpy as onp
import pytest
import scipy.linalg as osl

import probad.ad.numpy as np
import probad.ad.scipy.linalg as sl
from probad.ad import grad, make_jvp
from probad.ad.test_util import check_grads

MODES = ["fwd", "rev"]


def rng():
    return onp.random.default_rng(0)


def randn(*shape):
    return rng().normal(size=shape)


def spd(*shape):
    b = randn(*shape)
    return b @ onp.swapaxes(b, -1, -2) + shape[-1] * onp.eye(shape[-1])


def check(fun, *args):
    check_grads(fun, modes=MODES, order=2)(*args)


TRIANGULAR = randn(2, 3, 3) + 3 * onp.eye(3)


@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T", "C"])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_solve_triangular(trans, lower, unit_diagonal):
    a, b = TRIANGULAR, randn(2, 3, 2)
    kw = dict(trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    onp.testing.assert_allclose(sl.solve_triangular(a, b, **kw), osl.solve_triangular(a, b, **kw))
    check(lambda a, b: sl.solve_triangular(a, b, **kw), a, b)


@pytest.mark.parametrize("b_shape", [(3,), (3, 2), (4, 1, 3, 1)], ids=str)
def test_solve_triangular_right_hand_sides(b_shape):
    a, b = TRIANGULAR, rng().normal(size=b_shape)
    onp.testing.assert_allclose(sl.solve_triangular(a, b, lower=True), osl.solve_triangular(a, b, lower=True))
    check(lambda a, b: sl.solve_triangular(a, b, lower=True), a, b)


@pytest.mark.parametrize("trans", ["N", "T", "C"])
def test_solve_triangular_complex(trans):
    a = TRIANGULAR[0] + 1j * randn(3, 3)
    b = randn(3, 2) + 1j * randn(3, 2)
    onp.testing.assert_allclose(sl.solve_triangular(a, b, trans=trans, lower=True),
                                osl.solve_triangular(a, b, trans=trans, lower=True))
    check(lambda a, b: sl.solve_triangular(a, b, trans=trans, lower=True), a, b)


def test_solve_triangular_ignores_the_other_triangle():
    a = TRIANGULAR[0]
    g = grad(lambda a: np.sum(sl.solve_triangular(a, onp.ones(3), lower=True, unit_diagonal=True)))(a)
    onp.testing.assert_array_equal(onp.triu(g), 0.0)


def band(l_and_u, *batch, m=5):
    """A well-conditioned band ``ab`` (..., l + u + 1, m) and its dense matrix."""
    lower, upper = l_and_u
    ab = rng().normal(size=batch + (lower + upper + 1, m))
    ab[..., upper, :] += 4  # dominant diagonal
    dense = onp.zeros(batch + (m, m))
    for i in range(m):
        for j in range(max(0, i - lower), min(m, i + upper + 1)):
            dense[..., i, j] = ab[..., upper + i - j, j]
    return ab, dense


@pytest.mark.parametrize("l_and_u", [(0, 0), (1, 0), (0, 2), (1, 1), (2, 1), (3, 3)], ids=str)
@pytest.mark.parametrize("batch, b_shape", [((), (5,)), ((), (5, 2)), ((2,), (5,)), ((2,), (3, 1, 5, 2))],
                         ids=str)
def test_solve_banded(l_and_u, batch, b_shape):
    ab, dense = band(l_and_u, *batch)
    b = rng().normal(size=b_shape)
    x = sl.solve_banded(l_and_u, ab, b)
    onp.testing.assert_allclose(x, osl.solve_banded(l_and_u, ab, b))
    onp.testing.assert_allclose(x, np.linalg.solve(dense, b), rtol=1e-10, atol=1e-12)
    check(lambda ab, b: sl.solve_banded(l_and_u, ab, b), ab, b)


def test_solve_banded_complex_and_unused_corners():
    ab, _ = band((2, 1))
    ab = ab + 1j * randn(*ab.shape)
    b = randn(5, 2) - 1j * randn(5, 2)
    onp.testing.assert_allclose(sl.solve_banded((2, 1), ab, b), osl.solve_banded((2, 1), ab, b))
    check(lambda ab, b: sl.solve_banded((2, 1), ab, b), ab, b)
    # Entries ab[k, j] with no (i, j) such that k = u + i - j, 0 <= i < 5, are never read.
    g = grad(lambda ab: np.sum(np.abs(sl.solve_banded((2, 1), ab, b)) ** 2))(ab)
    k, j = onp.indices(ab.shape)
    read = (j + k - 1 >= 0) & (j + k - 1 < 5)
    onp.testing.assert_array_equal(g[~read], 0.0)
    assert onp.all(g[read] != 0)


@pytest.mark.parametrize("lower", [True, False])
def test_cholesky_helpers(lower):
    a, b = spd(3, 3), randn(3, 2)
    onp.testing.assert_allclose(sl.cholesky(a, lower=lower), osl.cholesky(a, lower=lower))
    c, flag = sl.cho_factor(a, lower=lower)
    assert flag == lower
    onp.testing.assert_allclose(sl.cho_solve((c, flag), b), osl.cho_solve(osl.cho_factor(a, lower=lower), b))
    check(lambda a: sl.cholesky(a, lower=lower), a)
    check(lambda a, b: sl.cho_solve(sl.cho_factor(a, lower=lower), b), a, b)


@pytest.mark.parametrize("kind", ["real", "stacked", "complex"])
def test_expm(kind):
    a = {"real": randn(3, 3), "stacked": randn(2, 3, 3), "complex": randn(3, 3) + 1j * randn(3, 3)}[kind]
    onp.testing.assert_allclose(sl.expm(a), osl.expm(a))
    check(sl.expm, a)


def test_expm_derivative_is_the_frechet_derivative():
    a, e = randn(3, 3), randn(3, 3)
    _, tangent = make_jvp(sl.expm)(a)(e)
    onp.testing.assert_allclose(tangent, osl.expm_frechet(a, e, compute_expm=False), rtol=1e-10)


def test_sqrtm_and_sylvester():
    a = spd(3, 3)
    onp.testing.assert_allclose(sl.sqrtm(a), osl.sqrtm(a))
    check(sl.sqrtm, a)
    check(sl.sqrtm, spd(2, 3, 3))
    p, q, r = spd(3, 3), spd(2, 2), randn(3, 2)
    onp.testing.assert_allclose(sl.solve_sylvester(p, q, r), osl.solve_sylvester(p, q, r))
    check(sl.solve_sylvester, p, q, r)


def test_numpy_aliases():
    a, b = randn(3, 3), randn(3)
    onp.testing.assert_allclose(sl.inv(a), osl.inv(a))
    assert sl.det(a) == pytest.approx(osl.det(a))
    onp.testing.assert_allclose(sl.solve(a, b), osl.solve(a, b))
    check(sl.inv, a)
