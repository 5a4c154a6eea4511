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
# check_grads' finite-difference step. An adaptive solve's result moves by
# about its tolerance (1e-12 here) when a tiny change of input changes its step
# choices, so a central difference of step h is off by about 1e-12 / h: 1e-6
# relative at autograd's h = 1e-6, at the edge of check_grads' 1e-5 / 1e-6, and
# about 1 random direction in 20 failed. At h = 1e-4 that error is 1e-8, and the
# difference's own truncation error, (h / 2)^2 / 6 times the third derivative, about 4e-10.
EPS = 1e-4


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
                modes=MODES, order=1, eps=EPS)(y0, t, a, c)


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

    check_grads(fun, modes=MODES, order=2, eps=EPS)(args[argnum])


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
    check_grads(final, modes=MODES, order=1, eps=EPS)(1.5)


def test_float32_arguments_get_float32_gradients():
    y0, t, k = onp.float32([1.0, -0.5]), onp.float32([0.0, 1.0]), onp.float32(0.7)

    def loss(y0, t, k):
        return np.sum(odeint(lambda y, t, k: -k * y, y0, t, (k,), **TIGHT))

    assert odeint(lambda y, t, k: -k * y, y0, t, (k,)).dtype == onp.float64  # as scipy's
    g_y0, g_t, g_k = grad(loss, (0, 1, 2))(y0, t, k)
    assert g_y0.dtype == g_t.dtype == g_k.dtype == onp.float32
    onp.testing.assert_allclose(g_y0, 1 + onp.exp(-0.7), rtol=1e-6)
    onp.testing.assert_allclose(g_k, -onp.exp(-0.7) * onp.sum(y0), rtol=1e-6)


def test_forward_sensitivities_give_the_same_first_derivatives():
    # adjoint=False computes reverse mode from dy/d(y0, args) integrated forwards.
    a, c, y0, t = setup()
    check_grads(lambda y0, t, a, c: odeint(nonlinear, y0, t, (a, c), adjoint=False, **TIGHT),
                modes=["rev"], order=1, eps=EPS)(y0, t, a, c)

    def loss(y0, t, a, c, adjoint):
        return np.sum(odeint(nonlinear, y0, t, (a, c), adjoint=adjoint, **TIGHT) ** 2)

    by_adjoint = grad(loss, (0, 1, 2, 3))(y0, t, a, c, True)
    by_forward = grad(loss, (0, 1, 2, 3))(y0, t, a, c, False)
    for x, y in zip(by_adjoint, by_forward):
        # Two solves of different systems, each to rtol = atol = 1e-12.
        onp.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)


# Robertson's chemical kinetics: rates 0.04, 3e7 and 1e4, a classic stiff test.
def robertson(y, t, log_k):
    k = np.exp(log_k)
    r1, r2, r3 = k[0] * y[0], k[1] * y[1] ** 2, k[2] * y[1] * y[2]
    return np.stack([-r1 + r3, r1 - r2 - r3, r2])


ROBERTSON = dict(y0=onp.array([1.0, 0.0, 0.0]), log_k=onp.log([0.04, 3e7, 1e4]))
STIFF_TOL = dict(rtol=1e-10, atol=1e-14)  # y[1] is about 1e-5: atol far below it


def test_bdf_solves_a_stiff_system():
    y0, log_k = ROBERTSON["y0"], ROBERTSON["log_k"]
    t = onp.array([0.0, 0.4, 4.0, 40.0, 400.0])
    # The reference: scipy's LSODA (Fortran, another method) on a numpy
    # right-hand side, 100 times tighter.
    reference = osi.odeint(lambda y, s: robertson(y, s, log_k), y0, t, rtol=1e-12, atol=1e-16,
                           mxstep=100_000)
    out = odeint(robertson, y0, t, (log_k,), method="bdf", mxstep=5000, **STIFF_TOL)
    # Each solver's global error is a small multiple of its rtol (1e-10 here;
    # 2e-9 relative is seen on y[1]); 1e-7 leaves room and still fails a
    # wrong Jacobian or a lost output time by many orders.
    onp.testing.assert_allclose(out, reference, rtol=1e-7, atol=1e-16)
    assert out.shape == (5, 3) and out[0].tolist() == y0.tolist()


@pytest.mark.slow
def test_bdf_derivatives_on_a_stiff_system():
    # ~7 s: scipy's BDF steps in Python, and check_grads solves the
    # forward-sensitivity system (21 states) besides the finite differences.
    # autograd's difference step (1e-6), not EPS: along log k (k up to 3e7)
    # the third derivatives are large, and the truncation error of a central
    # difference grows as the step squared (1e-5 failed 4 of 20 random
    # directions, and 1e-4 failed too); rtol = 1e-12 keeps the solver's share at
    # 1e-12 / 1e-6 (0 of 20 failed).
    y0, log_k = ROBERTSON["y0"], ROBERTSON["log_k"]
    t = onp.array([0.0, 0.4, 4.0, 40.0])
    check_grads(lambda log_k, y0: odeint(robertson, y0, t, (log_k,), method="bdf", mxstep=20_000,
                                         rtol=1e-12, atol=1e-17),
                modes=MODES, order=1)(log_k, y0)


def test_bdf_derivatives_of_a_nonstiff_system():
    a, c, y0, t = setup()
    check_grads(lambda y0, t, a, c: odeint(nonlinear, y0, t, (a, c), method="bdf", **TIGHT),
                modes=MODES, order=1, eps=EPS)(y0, t, a, c)


def test_bdf_options_and_methods_are_checked():
    f, y0, t = (lambda y, t: -y), onp.ones(1), onp.array([0.0, 1.0])
    with pytest.raises(TypeError, match=r"\['ml'\].*method='bdf' takes"):
        odeint(f, y0, t, method="bdf", ml=1)
    with pytest.raises(ValueError, match="method must be one of"):
        odeint(f, y0, t, method="rk45")


def test_a_failed_bdf_solve_raises_instead_of_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ODEintError, match="method='bdf'.*Raise mxstep"):
            odeint(lambda y, t: y * y, onp.ones(1), onp.array([0.0, 2.0]), method="bdf", mxstep=50)


def test_a_parameter_closed_over_instead_of_passed_is_a_clear_error():
    def final(k):
        return odeint(lambda y, t: -k * y, onp.ones(1), onp.array([0.0, 1.0]))[-1, 0]

    with pytest.raises(TypeError, match="closes over.*through odeint's args"):
        grad(final)(0.5)


def test_a_scalar_derivative_for_a_state_of_one_element_as_in_scipy():
    def final(k):
        return odeint(lambda y, t, k: -k * y[0], onp.ones(1), onp.array([0.0, 1.0]), (k,),
                      **TIGHT)[-1, 0]

    assert final(0.5) == pytest.approx(onp.exp(-0.5), rel=1e-10)
    assert grad(final)(0.5) == pytest.approx(-onp.exp(-0.5), rel=1e-9)


def test_a_right_hand_side_of_the_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shape \(2,\) for a state of shape \(3,\)"):
        odeint(lambda y, t: y[:2], onp.ones(3), onp.array([0.0, 1.0]))


def test_a_function_calling_odeint_compiles_and_records_func_once():
    # Before: the adjoint kept traced values in a class-level cache, so
    # compile gave up (ran eagerly), and every one of the hundreds of
    # evaluations of the adjoint system traced func again.
    from probad.ad import value_and_grad
    from probad.ad.compiler import CompileWarning, compile

    calls = []

    def decay(y, t, k):
        calls.append(1)
        return -k * y * (1 + 0.5 * np.sin(t))

    t = onp.array([0.0, 0.5, 1.0, 2.0])

    def loss(k):
        return np.sum(odeint(decay, onp.array([1.0, 2.0]), t, (k,), **TIGHT) ** 2)

    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compiled = compile(value_and_grad(loss))
        compiled(0.7)
    assert compiled.trace_count == 1 and not compiled.eager_keys
    after_first = len(calls)  # a few: tracing, and one check of each new system
    assert after_first <= 6
    ks = (0.3, 0.9, 1.4)
    replayed = [compiled(k) for k in ks]
    assert len(calls) == after_first  # replays only: func is never called again
    for k, (value, g) in zip(ks, replayed):
        eager_value, eager_g = value_and_grad(loss)(k)
        # The same solves, with func replayed instead of run: equal up to rounding.
        assert value == pytest.approx(eager_value, rel=1e-12)
        assert g == pytest.approx(eager_g, rel=1e-12)


@pytest.mark.parametrize("method", ["lsoda", "bdf"])
def test_a_branch_on_time_in_func_is_followed(method):
    # ``t < 1`` on the traced time is a guard of func's recorded tape: the
    # solve replays one tape per branch and never the wrong one.
    def infusion(y, t, k):
        rate = 1.0 if t < 1.0 else 0.0
        return rate - k * y

    t = onp.array([0.0, 0.5, 1.0, 2.0, 3.0])
    out = odeint(infusion, onp.zeros(1), t, (0.7,), method=method, hmax=0.05, **TIGHT)[:, 0]
    k = 0.7  # the closed form: an infusion until t = 1, then decay
    exact = onp.where(t < 1.0, (1 - onp.exp(-k * t)) / k,
                      (1 - onp.exp(-k)) / k * onp.exp(-k * (t - 1.0)))
    # hmax keeps steps from straddling the switch by more than 0.05, which
    # bounds the error the kink costs; 1e-6 is far below a wrong branch (1e-1).
    onp.testing.assert_allclose(out, exact, atol=1e-6)


def test_bdf_needs_monotonic_output_times():
    with pytest.raises(ValueError, match="must be monotonic"):
        odeint(lambda y, t: -y, onp.ones(1), onp.array([0.0, 2.0, 1.0]), method="bdf")
    backwards = odeint(lambda y, t: -y, onp.ones(1), onp.array([1.0, 0.0]), method="bdf", **TIGHT)
    assert backwards[-1, 0] == pytest.approx(onp.e, rel=1e-9)
