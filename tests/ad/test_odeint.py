"""probad.ad.scipy.integrate.odeint: values against scipy, adjoint (reverse)
and forward-sensitivity derivatives against closed forms and by check_grads.

Finite differences of an ODE solution are only as good as the solver's
tolerance divided by the step, so the checks integrate with rtol = atol =
1e-12."""
import warnings

import numpy as onp
import pytest
import scipy.integrate as osi
import scipy.linalg as osl

import probad.ad.numpy as np
from probad.ad import grad, jacobian, make_jvp
from probad.ad.scipy.integrate import ODEintError, odeint
from probad.ad.test_util import check_grads

TIGHT = dict(rtol=1e-12, atol=1e-12)
MODES = ["fwd", "rev"]


def nonlinear(y, t, a, c):
    return np.tanh(a @ y) * c + 0.1 * np.sin(t)


def setup():
    r = onp.random.default_rng(0)
    return r.normal(size=(2, 2)) * 0.5, 0.7, onp.array([0.3, -0.2]), onp.array([0.0, 0.5, 1.2])


def test_values_match_scipy():
    a, c, y0, t = setup()
    expected = osi.odeint(lambda y, t: onp.tanh(a @ y) * c + 0.1 * onp.sin(t), y0, t, **TIGHT)
    onp.testing.assert_allclose(odeint(nonlinear, y0, t, (a, c), **TIGHT), expected, rtol=1e-10)


def test_linear_system_against_the_matrix_exponential():
    # y' = A y: y(t) = expm(A t) y0, so dy(t)/dy0 = expm(A t) and dy/dt = A y(t).
    a = onp.array([[-0.5, 1.0], [-1.0, -0.3]])
    y0, t = onp.array([1.0, 0.5]), onp.array([0.0, 1.5])
    flow = osl.expm(a * t[1])

    def final_state(y0, t):
        return odeint(lambda y, t, a: a @ y, y0, t, (a,), **TIGHT)[1]

    onp.testing.assert_allclose(jacobian(final_state)(y0, t), flow, rtol=1e-8)
    dt = jacobian(final_state, 1)(y0, t)
    onp.testing.assert_allclose(dt[:, 1], a @ flow @ y0, rtol=1e-8)
    onp.testing.assert_allclose(dt[:, 0], -flow @ a @ y0, rtol=1e-8)  # moving the start time
    _, forward = make_jvp(final_state)(y0, t)(onp.array([1.0, 0.0]))
    onp.testing.assert_allclose(forward, flow[:, 0], rtol=1e-8)


def test_gradient_with_respect_to_a_rate():
    # y' = -k y, y(2) = exp(-2k): d/dk = -2 exp(-2k).
    def final(k):
        return odeint(lambda y, t, k: -k * y, onp.array([1.0]), onp.array([0.0, 2.0]), (k,), **TIGHT)[1, 0]

    assert grad(final)(0.7) == pytest.approx(-2 * onp.exp(-1.4), rel=1e-9)


def test_first_derivatives_in_every_argument():
    a, c, y0, t = setup()
    check_grads(lambda y0, t, a, c: odeint(nonlinear, y0, t, (a, c), **TIGHT),
                modes=MODES, order=1)(y0, t, a, c)


@pytest.mark.slow
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_second_derivatives(argnum):
    # The adjoint and sensitivity systems are odeint calls themselves, so they
    # differentiate again (each check solves nested augmented systems: ~1 s).
    a, c, y0, t = setup()
    args = [y0, t, a]

    def fun(x):
        call = list(args)
        call[argnum] = x
        return odeint(nonlinear, call[0], call[1], (call[2], c), **TIGHT)

    check_grads(fun, modes=MODES, order=2)(args[argnum])


def test_single_output_time():
    y0 = onp.array([1.0, 2.0])
    out = odeint(lambda y, t: -y, y0, onp.array([0.5]))
    onp.testing.assert_allclose(out, y0[None])
    onp.testing.assert_allclose(grad(lambda y0: np.sum(odeint(lambda y, t: -y, y0, onp.array([0.5]))))(y0),
                                onp.ones(2))


def test_unsupported_options():
    with pytest.raises(TypeError, match="full_output.*ODEintError"):
        odeint(lambda y, t: -y, onp.ones(1), onp.array([0.0, 1.0]), full_output=True)


def test_a_failed_solve_raises_instead_of_warning():
    # y' = y^2 from y(0) = 1 blows up at t = 1: scipy gives up and warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ODEintWarning may reach the user
        with pytest.raises(ODEintError, match="Excess work done.*mxstep=50.*Raise mxstep"):
            odeint(lambda y, t: y * y, onp.ones(1), onp.array([0.0, 2.0]), mxstep=50)


def wavy_decay(y, t, k):
    return -k * y * (1 + 0.5 * np.sin(10 * t))


def test_a_failed_adjoint_solve_raises_instead_of_a_wrong_gradient():
    # The adjoint system is larger than the forward one, so at some step
    # limits the values solve and their gradient does not. Before, the
    # gradient came back finite and wrong with only an ODEintWarning.
    y0, t = onp.array([1.0, 2.0]), onp.array([0.0, 20.0])

    def forward_ok(mxstep):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", osi.ODEintWarning)
            _, info = osi.odeint(lambda y, t: -0.3 * y * (1 + 0.5 * onp.sin(10 * t)), y0, t,
                                 mxstep=mxstep, full_output=True)
        return info["message"] == "Integration successful."

    mxstep = next(m for m in range(100, 2000, 10) if forward_ok(m))

    def final(k):
        return odeint(wavy_decay, y0, t, (k,), mxstep=mxstep)[-1, 0]

    final(0.3)  # the values solve
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ODEintError):
            grad(final)(0.3)


def test_scalar_initial_state_as_in_scipy():
    # scipy integrates a scalar y0 as a state of one element: output (T, 1).
    t = onp.array([0.0, 1.0, 2.0])
    out = odeint(lambda y, t, k: -k * y, 1.5, t, (0.7,), **TIGHT)
    onp.testing.assert_allclose(out, osi.odeint(lambda y, t: -0.7 * y, 1.5, t, **TIGHT), rtol=1e-10)
    assert out.shape == (3, 1)

    def final(y0):
        return odeint(lambda y, t, k: -k * y, y0, t, (0.7,), **TIGHT)[-1, 0]

    g = grad(final)(1.5)
    assert onp.shape(g) == () and g == pytest.approx(onp.exp(-1.4), rel=1e-9)
    assert make_jvp(final)(1.5)(1.0)[1] == pytest.approx(onp.exp(-1.4), rel=1e-9)
    check_grads(final, modes=MODES, order=1)(1.5)


def test_float32_arguments_get_float32_gradients():
    y0, t, k = onp.float32([1.0, -0.5]), onp.float32([0.0, 1.0]), onp.float32(0.7)

    def loss(y0, t, k):
        return np.sum(odeint(lambda y, t, k: -k * y, y0, t, (k,), **TIGHT))

    assert odeint(lambda y, t, k: -k * y, y0, t, (k,)).dtype == onp.float64  # as scipy's
    g_y0, g_t, g_k = grad(loss, (0, 1, 2))(y0, t, k)
    assert g_y0.dtype == g_t.dtype == g_k.dtype == onp.float32
    onp.testing.assert_allclose(g_y0, 1 + onp.exp(-0.7), rtol=1e-6)
    onp.testing.assert_allclose(g_k, -onp.exp(-0.7) * onp.sum(y0), rtol=1e-6)
