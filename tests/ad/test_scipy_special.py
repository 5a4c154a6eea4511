"""probad.ad.scipy.special: values against scipy, derivatives by check_grads
(both modes, second order; third for the incomplete gamma and beta
functions), their shape derivatives against quadrature, dtype and
NaN-safety conventions."""
import numpy as onp
import pytest
import scipy.integrate as si
import scipy.special as osp

import probad.ad.numpy as np
import probad.ad.scipy.special as sp
from probad.ad import elementwise_grad, grad, hessian
from probad.ad.test_util import check_grads

MODES = ["fwd", "rev"]


def rng():
    return onp.random.default_rng(0)


def uniform(lo, hi, shape=(2, 3)):
    return rng().uniform(lo, hi, size=shape)


# (name, domain) of unary functions: arguments are drawn uniformly from the domain.
UNARY = [
    ("gamma", (0.5, 3.0)), ("gammaln", (0.5, 3.0)), ("loggamma", (0.5, 3.0)),
    ("digamma", (0.5, 3.0)), ("psi", (0.5, 3.0)), ("rgamma", (-2.5, 3.0)),
    ("erf", (-2.0, 2.0)), ("erfc", (-2.0, 2.0)), ("erfcx", (-1.0, 3.0)),
    ("erfinv", (-0.9, 0.9)), ("erfcinv", (0.1, 1.9)), ("ndtr", (-3.0, 3.0)),
    ("log_ndtr", (-6.0, 3.0)), ("ndtri", (0.05, 0.95)), ("expit", (-4.0, 4.0)),
    ("logit", (0.05, 0.95)), ("log_expit", (-4.0, 4.0)), ("softplus", (-4.0, 4.0)),
    ("entr", (0.1, 3.0)), ("i0", (-3.0, 3.0)), ("i1", (-3.0, 3.0)), ("i0e", (-3.0, 3.0)),
    ("i1e", (-3.0, 3.0)), ("k0", (0.3, 3.0)), ("k1", (0.3, 3.0)), ("k0e", (0.3, 3.0)),
    ("k1e", (0.3, 3.0)), ("j0", (-5.0, 5.0)), ("j1", (-5.0, 5.0)), ("y0", (0.3, 5.0)),
    ("y1", (0.3, 5.0)), ("log1p", (-0.5, 3.0)), ("expm1", (-2.0, 2.0)), ("exp2", (-2.0, 2.0)),
    ("exp10", (-1.0, 1.0)), ("cbrt", (0.2, 3.0)),
]


@pytest.mark.parametrize("name, domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, domain):
    x = uniform(*domain)
    fun = getattr(sp, name)
    onp.testing.assert_allclose(fun(x), getattr(osp, name)(x), rtol=1e-12)
    check_grads(fun, modes=MODES, order=2)(x)


# Functions of (integer or real order, x): the order is not differentiable.
ORDERED = [("polygamma", 2, (0.5, 3.0)), ("iv", 1.5, (0.2, 3.0)), ("ive", 1, (-3.0, 3.0)),
           ("kv", 1.5, (0.3, 3.0)), ("kve", 0.5, (0.3, 3.0)), ("jv", 1.5, (0.3, 5.0)),
           ("jn", 2, (-5.0, 5.0)), ("yv", 1.5, (0.3, 5.0)), ("yn", 2, (0.3, 5.0))]


@pytest.mark.parametrize("name, order, domain", ORDERED, ids=[o[0] for o in ORDERED])
def test_with_order(name, order, domain):
    x = uniform(*domain)
    fun = getattr(sp, name)
    onp.testing.assert_allclose(fun(order, x), getattr(osp, name)(order, x), rtol=1e-12)
    check_grads(lambda x: fun(order, x), modes=MODES, order=2)(x)
    assert onp.all(grad(lambda v: np.sum(fun(v, x)))(float(order)) == 0)


BINARY = [("beta", (0.5, 3.0), (0.5, 3.0)), ("betaln", (0.5, 3.0), (0.5, 3.0)),
          ("xlogy", (-2.0, 2.0), (0.2, 3.0)), ("xlog1py", (-2.0, 2.0), (-0.8, 3.0)),
          ("rel_entr", (0.2, 3.0), (0.2, 3.0)), ("kl_div", (0.2, 3.0), (0.2, 3.0)),
          ("gammainc", (0.5, 5.0), (0.1, 6.0)), ("gammaincc", (0.5, 5.0), (0.1, 6.0))]


@pytest.mark.parametrize("name, dom_x, dom_y", BINARY, ids=[b[0] for b in BINARY])
def test_binary_with_broadcasting(name, dom_x, dom_y):
    x = uniform(*dom_x, shape=(3,))
    y = rng().uniform(*dom_y, size=(2, 1, 3))
    fun = getattr(sp, name)
    onp.testing.assert_allclose(fun(x, y), getattr(osp, name)(x, y), rtol=1e-12)
    check_grads(fun, modes=MODES, order=2)(x, y)


@pytest.mark.parametrize("name", ["betainc", "betaincc"])
def test_incomplete_beta_all_arguments(name):
    a = uniform(0.6, 4.0, shape=(3,))
    b = rng().uniform(0.6, 4.0, size=(2, 1))
    x = uniform(0.05, 0.95, shape=(3,))
    fun = getattr(sp, name)
    onp.testing.assert_allclose(fun(a, b, x), getattr(osp, name)(a, b, x), rtol=1e-12)
    check_grads(fun, modes=MODES, order=2)(a, b, x)


@pytest.mark.parametrize("name", ["gammainc", "gammaincc", "betainc", "betaincc"])
def test_incomplete_functions_to_third_order(name):
    # Shape derivatives of every order are primitives with rules of their own.
    x = onp.array([0.3, 2.5, 7.0])
    args = {"gammainc": (onp.array([0.6, 2.0, 4.5]), x), "gammaincc": (onp.array([0.6, 2.0, 4.5]), x),
            "betainc": (onp.array([0.6, 2.0, 4.5]), onp.array([[0.7], [3.0]]), x / 8),
            "betaincc": (onp.array([0.6, 2.0, 4.5]), onp.array([[0.7], [3.0]]), x / 8)}[name]
    check_grads(getattr(sp, name), modes=MODES, order=3)(*args)


# ----------------------------------------------- shape derivatives by quadrature
def _quad(f, lo, hi):
    return si.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


def _power_weighted_quad(f, a, x):
    """``int_0^x t**(a-1) f(t) dt``; for a < 1 in the variable u = t**a,
    which removes the singularity at 0."""
    if a >= 1:
        return _quad(lambda t: t ** (a - 1) * f(t), 0, x)
    return _quad(lambda u: f(u ** (1 / a)) / a, 0, x**a)


def _gammainc_a_reference(a, x):
    """dP/da, d2P/da2 and d3P/da3 from P = gamma(a, x)/Gamma(a) with the
    integrals of t**(a-1) e**-t log(t)**k done by quadrature."""
    m = [_power_weighted_quad(lambda t: onp.exp(-t) * onp.log(t) ** k, a, x) / osp.gamma(a) for k in range(4)]
    psi, psi1, psi2 = osp.digamma(a), osp.polygamma(1, a), osp.polygamma(2, a)
    d1 = m[1] - psi * m[0]
    d2 = m[2] - 2 * psi * m[1] + (psi**2 - psi1) * m[0]
    d3 = m[3] - 3 * psi * m[2] + 3 * (psi**2 - psi1) * m[1] + (3 * psi * psi1 - psi**3 - psi2) * m[0]
    return d1, d2, d3


@pytest.mark.parametrize("a, x", [(0.7, 0.3), (1.5, 0.9), (2.5, 5.0), (3.0, 3.9999), (3.0, 4.0001),
                                  (12.0, 9.0), (12.0, 20.0), (40.0, 38.0)])
def test_gammainc_shape_derivatives_against_quadrature(a, x):
    d1, d2, d3 = _gammainc_a_reference(a, x)
    assert sp.gammainc_da(a, x) == pytest.approx(d1, rel=1e-9, abs=1e-13)
    assert sp.gammainc_da(a, x, 2) == pytest.approx(d2, rel=1e-8, abs=1e-12)
    assert sp.gammainc_da(a, x, 3) == pytest.approx(d3, rel=1e-7, abs=1e-11)
    assert grad(sp.gammainc)(a, x) == pytest.approx(d1, rel=1e-9, abs=1e-13)
    assert grad(grad(sp.gammainc))(a, x) == pytest.approx(d2, rel=1e-8, abs=1e-12)
    assert grad(grad(grad(sp.gammainc)))(a, x) == pytest.approx(d3, rel=1e-7, abs=1e-11)
    assert grad(sp.gammaincc)(a, x) == pytest.approx(-d1, rel=1e-9, abs=1e-13)


def _betainc_reference(a, b, x):
    """Gradient and Hessian of I_x(a, b) in (a, b) by quadrature of
    t**(a-1) (1-t)**(b-1) times products of log t and log(1-t)."""
    beta = osp.beta(a, b)

    def moment(i, j):
        return _power_weighted_quad(lambda t: (1 - t) ** (b - 1) * onp.log(t) ** i * onp.log1p(-t) ** j,
                                    a, x) / beta

    m = {(i, j): moment(i, j) for i in range(3) for j in range(3) if i + j <= 2}
    # d log B / da = psi(a) - psi(a+b) etc.
    ga = osp.digamma(a) - osp.digamma(a + b)
    gb = osp.digamma(b) - osp.digamma(a + b)
    t_ab = -osp.polygamma(1, a + b)
    haa, hbb = osp.polygamma(1, a) + t_ab, osp.polygamma(1, b) + t_ab
    grad_ = onp.array([m[1, 0] - ga * m[0, 0], m[0, 1] - gb * m[0, 0]])
    hess = onp.empty((2, 2))
    hess[0, 0] = m[2, 0] - 2 * ga * m[1, 0] + (ga**2 - haa) * m[0, 0]
    hess[1, 1] = m[0, 2] - 2 * gb * m[0, 1] + (gb**2 - hbb) * m[0, 0]
    hess[0, 1] = hess[1, 0] = m[1, 1] - gb * m[1, 0] - ga * m[0, 1] + (ga * gb - t_ab) * m[0, 0]
    return grad_, hess


@pytest.mark.parametrize("a, b, x", [(0.7, 2.0, 0.3), (2.0, 3.0, 0.42), (2.0, 3.0, 0.9),
                                     (5.0, 0.8, 0.97), (10.0, 30.0, 0.2), (1.0, 1.0, 0.5)])
def test_betainc_shape_derivatives_against_quadrature(a, b, x):
    ref_grad, ref_hess = _betainc_reference(a, b, x)
    onp.testing.assert_allclose([sp.betainc_dab(a, b, x, 1, 0), sp.betainc_dab(a, b, x, 0, 1)], ref_grad,
                                rtol=1e-8, atol=1e-12)
    hess = [[sp.betainc_dab(a, b, x, 2 - i - j, i + j) for j in range(2)] for i in range(2)]
    onp.testing.assert_allclose(hess, ref_hess, rtol=1e-7, atol=1e-11)
    onp.testing.assert_allclose(hessian(lambda p: sp.betainc(p[0], p[1], x))(onp.array([a, b])),
                                ref_hess, rtol=1e-7, atol=1e-11)


def test_shape_derivatives_at_the_edges():
    # P(a, 0) = 0 and I_0 = 0, I_1 = 1 for every shape: zero shape derivatives.
    assert sp.gammainc_da(2.0, 0.0) == 0.0
    for na, nb in ((1, 0), (0, 1), (2, 1)):
        onp.testing.assert_array_equal(sp.betainc_dab(2.0, 3.0, onp.array([0.0, 1.0]), na, nb), 0.0)
    # Large shapes need many terms but converge.
    h = 1e-4
    fd = (osp.gammainc(1e4 + h, 1e4 - 10) - osp.gammainc(1e4 - h, 1e4 - 10)) / (2 * h)
    assert sp.gammainc_da(1e4, 1e4 - 10) == pytest.approx(fd, rel=1e-6)


def test_gammainc_x_derivative_is_the_density():
    a, x = 2.5, onp.array([0.0, 0.5, 3.0])
    dens = x ** (a - 1) * onp.exp(-x) / osp.gamma(a)
    onp.testing.assert_allclose(elementwise_grad(lambda x: sp.gammainc(a, x))(x), dens, rtol=1e-12)
    assert grad(lambda x: sp.gammainc(1.0, x))(0.0) == 1.0


# ------------------------------------------------------------------ logsumexp
LSE_CASES = [dict(axis=None), dict(axis=1), dict(axis=-1, keepdims=True), dict(axis=(0, 2)),
             dict(axis=0, keepdims=True)]


@pytest.mark.parametrize("kwargs", LSE_CASES, ids=str)
def test_logsumexp(kwargs):
    a = rng().normal(size=(2, 3, 4))
    onp.testing.assert_allclose(sp.logsumexp(a, **kwargs), osp.logsumexp(a, **kwargs), rtol=1e-13)
    check_grads(lambda a: sp.logsumexp(a, **kwargs), modes=MODES, order=2)(a)


def test_logsumexp_weights_and_sign():
    a = rng().normal(size=(2, 3))
    b = rng().normal(size=(3,))
    lse, sign = sp.logsumexp(a, axis=1, b=b, return_sign=True)
    ref_lse, ref_sign = osp.logsumexp(a, axis=1, b=b, return_sign=True)
    onp.testing.assert_allclose(lse, ref_lse, rtol=1e-13)
    onp.testing.assert_array_equal(sign, ref_sign)
    check_grads(lambda a, b: sp.logsumexp(a, axis=1, b=b, return_sign=True)[0], modes=MODES,
                order=2)(a, b)
    check_grads(lambda a, b: sp.logsumexp(a, b=b ** 2), modes=MODES, order=2)(a, b)


def test_logsumexp_with_minus_infinity():
    a = onp.array([[-onp.inf, -onp.inf], [-onp.inf, 1.0]])
    assert sp.logsumexp(a[0]) == -onp.inf
    onp.testing.assert_array_equal(grad(lambda a: sp.logsumexp(a[0]))(a), 0.0)
    onp.testing.assert_array_equal(grad(lambda a: sp.logsumexp(a[1]))(a), [[0, 0], [0, 1]])
    onp.testing.assert_array_equal(elementwise_grad(lambda a: sp.logsumexp(a, axis=1))(a),
                                   [[0, 0], [0, 1]])


def test_softmax_and_log_softmax():
    x = rng().normal(size=(3, 4))
    onp.testing.assert_allclose(sp.softmax(x, axis=1), osp.softmax(x, axis=1), rtol=1e-13)
    onp.testing.assert_allclose(sp.log_softmax(x), osp.log_softmax(x), rtol=1e-13)
    check_grads(lambda x: sp.softmax(x, axis=0), modes=MODES, order=2)(x)
    check_grads(lambda x: sp.log_softmax(x, axis=-1), modes=MODES, order=2)(x)


# ---------------------------------------------------------------- conventions
def test_xlogy_at_zero():
    assert sp.xlogy(0.0, 0.0) == 0.0
    assert grad(sp.xlogy, 0)(0.0, 0.0) == 0.0
    assert grad(sp.xlogy, 1)(0.0, 0.0) == 0.0
    assert grad(sp.xlog1py, 0)(0.0, -1.0) == 0.0
    assert grad(sp.xlog1py, 1)(0.0, -1.0) == 0.0
    # Away from x = 0 the singularity at y = 0 is honest.
    assert grad(sp.xlogy, 1)(2.0, 0.0) == onp.inf
    assert grad(sp.xlogy, 0)(2.0, 0.0) == -onp.inf
    check_grads(sp.xlogy, modes=MODES, order=2)(0.0, 1.5)


def test_boundary_derivatives_are_warning_free():
    # pytest turns numpy RuntimeWarnings from probad into errors.
    assert grad(sp.entr)(0.0) == onp.inf
    assert grad(sp.entr)(-1.0) == 0.0
    assert grad(sp.logit)(0.0) == onp.inf
    assert grad(sp.rel_entr, 0)(0.0, 1.0) == -onp.inf
    assert grad(sp.rel_entr, 1)(0.0, 1.0) == 0.0


def test_rgamma_at_its_zeros():
    # 1/Gamma(x) near x = -n is (-1)**n n! (x + n).
    for n in range(4):
        expected = (-1) ** n * osp.factorial(n)
        assert grad(sp.rgamma)(float(-n)) == pytest.approx(expected, rel=1e-12)


def test_multigammaln():
    a = onp.array([2.5, 3.7])
    onp.testing.assert_allclose(sp.multigammaln(a, 3), osp.multigammaln(a, 3), rtol=1e-13)
    check_grads(lambda a: sp.multigammaln(a, 3), modes=MODES, order=2)(a)
    with pytest.raises(ValueError, match="greater than"):
        sp.multigammaln(0.9, 3)


def test_gammasgn_is_not_differentiable():
    assert grad(lambda x: sp.gammasgn(x) * x)(-1.5) == 1.0


@pytest.mark.parametrize("fun", [sp.gammaln, sp.digamma, sp.expit, sp.log_ndtr, sp.i0e, sp.softplus,
                                 sp.logsumexp, lambda x: sp.gammainc(x, x),
                                 lambda x: sp.betainc(x, x, x / 4), lambda x: sp.multigammaln(x + 2, 2),
                                 lambda x: sp.xlogy(x, x), sp.entr],
                         ids=["gammaln", "digamma", "expit", "log_ndtr", "i0e", "softplus", "logsumexp",
                              "gammainc", "betainc", "multigammaln", "xlogy", "entr"])
def test_float32_in_float32_out(fun):
    x = onp.array([0.5, 1.2, 2.0], onp.float32)
    g = grad(lambda x: np.sum(fun(x)))(x)
    assert g.dtype == onp.float32
    ref = grad(lambda x: np.sum(fun(x)))(x.astype(float))
    onp.testing.assert_allclose(g, ref, rtol=1e-5)
