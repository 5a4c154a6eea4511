"""probad.optimize.minimize: every scipy method on compiled derivatives, nests in and out."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad.extend import getval
from probad.optimize import minimize

METHODS = ["Nelder-Mead", "Powell", "CG", "BFGS", "Newton-CG", "L-BFGS-B", "TNC", "COBYLA",
           "COBYQA", "SLSQP", "trust-constr", "dogleg", "trust-ncg", "trust-exact", "trust-krylov"]
DERIVATIVE_FREE = {"Nelder-Mead", "Powell", "COBYLA", "COBYQA"}


def squared_distance(x):
    return ((x - np.arange(3)) ** 2).mean()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_minimum(method):
    result = minimize(squared_distance, onp.zeros(3), method=method)
    assert result.success
    # Derivative-free methods stop at their default step tolerance (1e-4);
    # with exact gradients the quadratic is solved to rounding error.
    atol = 1e-3 if method in DERIVATIVE_FREE else 1e-8
    onp.testing.assert_allclose(result.x, [0.0, 1.0, 2.0], atol=atol)


def test_second_order_methods_use_hessian_vector_products():
    result = minimize(squared_distance, onp.zeros(3), method="Newton-CG")
    assert result.nhev > 0
    assert result.nit <= 2  # exact Hessian products: Newton solves a quadratic at once


def test_nested_start_and_extra_arguments():
    def loss(params, target, scale):
        return scale * (np.sum((params["w"] - target) ** 2) + (params["b"][0] + 1.0) ** 2
                        + (params["b"][1] - 0.5) ** 2)

    x0 = {"w": onp.zeros((2, 2)), "b": (onp.float64(0.0), onp.zeros(()))}
    target = onp.array([[1.0, 2.0], [3.0, 4.0]])
    seen = []
    result = minimize(loss, x0, args=(target, 2.0), method="BFGS", callback=seen.append)
    onp.testing.assert_allclose(result.x["w"], target, atol=1e-6)
    onp.testing.assert_allclose(result.x["b"][0], -1.0, atol=1e-6)
    onp.testing.assert_allclose(result.x["b"][1], 0.5, atol=1e-6)
    assert isinstance(result.x["b"], tuple) and result.x["w"].shape == (2, 2)
    assert set(result.jac) == {"w", "b"}
    assert seen and set(seen[0]) == {"w", "b"}


def test_without_our_derivatives_scipy_differences_are_used():
    result = minimize(squared_distance, onp.zeros(3), method="BFGS", jac=False)
    assert result.nfev > 3 * result.nit  # finite differences: several calls per step
    onp.testing.assert_allclose(result.x, [0.0, 1.0, 2.0], atol=1e-6)


def test_bounds_and_options_are_passed_through():
    result = minimize(squared_distance, onp.zeros(3), method="L-BFGS-B",
                      bounds=[(0.0, 0.5)] * 3, maxiter=50)
    onp.testing.assert_allclose(result.x, [0.0, 0.5, 0.5], atol=1e-8)


@pytest.mark.parametrize("method", ["L-BFGS-B", "Newton-CG", "trust-exact"])
def test_compile_false_evaluates_afresh_with_the_same_result(method):
    compiled = minimize(squared_distance, onp.zeros(3), method=method)
    eager = minimize(squared_distance, onp.zeros(3), method=method, compile=False)
    onp.testing.assert_allclose(eager.x, compiled.x, rtol=1e-12, atol=1e-15)
    assert eager.nfev == compiled.nfev


def log_barrier(x):
    """Undefined (NaN) for x <= 0; the minimum is at x = 1.5311289 in both coordinates."""
    return np.sum(x - 2.0 * np.log(x)) + 0.1 * np.sum(x) ** 2 / len(x)


# scipy's default stopping rules leave errors up to ~1e-4 on these problems;
# a method derailed by an undefined point ends off by O(1), or at NaN.
NEAR = 1e-3


# TNC stops at the last finite point whatever it is told there (and says so).
@pytest.mark.parametrize("method", [m for m in METHODS if m != "TNC"])
def test_steps_back_from_points_where_the_objective_is_undefined(method):
    visited = []

    def objective(x):
        visited.append(onp.array(getval(x)))  # compile=False: runs at every evaluation
        return log_barrier(x)

    for start in ([10.0, 0.1], [30.0, 30.0]):
        result = minimize(objective, onp.array(start), method=method, compile=False)
        onp.testing.assert_allclose(result.x, 1.5311289, atol=NEAR)
    assert any((x <= 0).any() for x in visited)  # the method did try undefined points


def correlation_barrier(x):
    """``-log det [[1, r], [r, 1]] - 0.3 r``: the Cholesky factor fails for |r| >= 1."""
    corr = onp.eye(2) + x[0] * onp.array([[0.0, 1.0], [1.0, 0.0]])
    return -2.0 * np.sum(np.log(np.diagonal(np.linalg.cholesky(corr)))) - 0.3 * x[0]


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Nelder-Mead"])
def test_a_failed_cholesky_is_an_undefined_point(method):
    # From r = 0.9 the first trial step lands beyond r = -1.
    result = minimize(correlation_barrier, onp.array([0.9]), method=method)
    exact = (-1.0 + onp.sqrt(1.0 + 0.3**2)) / 0.3  # the root of 2r / (1 - r^2) = 0.3
    onp.testing.assert_allclose(result.x, [exact], atol=NEAR)
