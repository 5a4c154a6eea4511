"""The autodiff examples, run small: each asserts on the numbers the example
exists to show, not only that it ran."""
from __future__ import annotations

import importlib.util
import os

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import value_and_grad
from probad.ad.misc.optimizers import sgd
from probad.ad.test_util import check_grads

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name):
    """Import ``examples/<name>.py`` (the folder is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------ tanh derivatives
def test_tanh_derivatives_match_closed_forms(tmp_path):
    example = load_example("tanh_derivatives")
    out = tmp_path / "tanh.png"
    result = example.main(n_points=41, order=6, out_path=str(out))
    t = onp.tanh(result["x"])
    # Independent of the example's polynomial recursion: the first three by hand.
    onp.testing.assert_allclose(result["values"][1], 1 - t**2, atol=1e-14)
    onp.testing.assert_allclose(result["values"][2], -2 * t * (1 - t**2), atol=1e-14)
    onp.testing.assert_allclose(result["values"][3], (6 * t**2 - 2) * (1 - t**2), atol=1e-13)
    # Six nested reverse passes lose a few digits to rounding, no more: the
    # sixth derivative peaks near 50, so 1e-11 is still ~1e-13 relative.
    assert max(result["max_abs_error"]) < 1e-11
    assert len(result["values"]) == 7
    assert_png(out)


# ---------------------------------------------------------------- the tutorial
@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    out = tmp_path_factory.mktemp("tutorial") / "tutorial.png"
    example = load_example("autodiff_tutorial")
    results = example.main(linear_steps=200, polynomial_steps=300, network_steps=300, out_path=str(out))
    return example, results, out


def test_tutorial_tanh_and_sigmoid(tutorial):
    _, results, out = tutorial
    tanh = results["tanh"]
    assert tanh["autodiff"] == pytest.approx(tanh["exact"], abs=1e-15)
    # A central difference with step 1e-6 is good to ~1e-10 here (rounding
    # eps/h ~ 1e-10 dominates the h^2 truncation).
    assert tanh["autodiff"] == pytest.approx(tanh["finite_difference"], abs=1e-9)
    sig = results["sigmoid"]
    onp.testing.assert_allclose(sig["automatic"], sig["by_hand"], rtol=1e-14, atol=1e-16)
    assert_png(out)


def test_tutorial_flatten(tutorial):
    flat = tutorial[1]["flatten"]
    assert flat["round_trip_exact"] and flat["gradients_agree"]
    assert flat["size"] == 2 * 3 + 3 + 2 + 1 + 2 * 2 + 3


def test_tutorial_logsumexp_primitive(tutorial):
    example, results, _ = tutorial
    lse = results["logsumexp"]
    assert lse["value_error"] < 1e-14 and lse["shift_error"] < 1e-12 and lse["softmax_ok"]
    # The custom rules on a 2-D input and on a scalar, to second order.
    rng = onp.random.default_rng(1)
    check_grads(example.logsumexp, modes=["fwd", "rev"], order=2)(rng.normal(size=(2, 3)))
    check_grads(example.logsumexp, modes=["fwd", "rev"], order=2)(0.3)


def test_tutorial_regressions_converge(tutorial):
    results = tutorial[1]
    lin = results["linear"]
    fitted = onp.append(lin["params"]["slope"], lin["params"]["intercept"])
    onp.testing.assert_allclose(fitted, lin["least_squares"], atol=1e-6)
    poly = results["polynomial"]
    assert poly["losses"][-1] == pytest.approx(poly["optimal_loss"], rel=1e-3)
    net = results["network"]
    assert net["losses"][-1] < 0.25 * net["losses"][0]


def test_tutorial_network_is_trained_with_sgd(monkeypatch):
    example = load_example("autodiff_tutorial")
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return sgd(*args, **kwargs)

    monkeypatch.setattr(example, "sgd", spy)
    example.section_neural_network(steps=3)
    assert len(calls) == 1 and calls[0]["num_iters"] == 3


# --------------------------------------------------- Hessian-vector products
def test_hessian_vector_products_agree_with_hessian(tmp_path):
    example = load_example("hessian_vector_products")
    out = tmp_path / "hvp.png"
    result = example.main(dims=(3, 8), newton_dim=12, out_path=str(out))
    for name, err in result["max_rel_error"].items():
        assert err < 1e-13, name
    newton = result["newton"]
    assert newton.success
    onp.testing.assert_allclose(newton.x, 1.0, atol=1e-7)
    assert newton.nhev > 0  # the Hessian entered only through products
    assert_png(out)


def test_rosenbrock_matches_scipy():
    from scipy.optimize import rosen, rosen_hess_prod

    example = load_example("hessian_vector_products")
    rng = onp.random.default_rng(2)
    x, v = rng.normal(size=6), rng.normal(size=6)
    assert example.rosenbrock(x) == pytest.approx(rosen(x), rel=1e-14)
    for make in example.METHODS.values():
        onp.testing.assert_allclose(make(example.rosenbrock)(x, v), rosen_hess_prod(x, v), rtol=1e-12)


# ------------------------------------------------------------ fluid simulation
def test_advection_moves_along_integer_velocity():
    fluid = load_example("fluid_simulation")
    field = onp.random.default_rng(0).normal(size=(6, 8))
    zero, one = onp.zeros((6, 8)), onp.ones((6, 8))
    onp.testing.assert_allclose(fluid.advect(field, zero, zero, 1.0), field, atol=1e-15)
    # Flow +1 column (x) per step: each cell reads its left neighbour, wrapping.
    onp.testing.assert_allclose(fluid.advect(field, one, zero, 1.0), onp.roll(field, 1, axis=1), atol=1e-15)
    onp.testing.assert_allclose(fluid.advect(field, zero, -2 * one, 1.0), onp.roll(field, -2, axis=0),
                                atol=1e-15)


def test_fluid_simulation_gradient_is_right():
    fluid = load_example("fluid_simulation")
    n = 8
    rng = onp.random.default_rng(3)
    smoke, target = rng.uniform(size=(n, n)), rng.uniform(size=(n, n))

    def loss(v):
        vx, vy = np.reshape(v, (2, n, n))
        return np.sum((fluid.simulate(vx, vy, smoke, steps=2, sweeps=3) - target) ** 2)

    # A random point is almost surely away from the kinks of bilinear
    # interpolation (backtraced positions on grid lines), where the loss is
    # smooth within the finite-difference step.
    check_grads(loss, modes=["fwd", "rev"], order=1)(0.7 * rng.normal(size=2 * n * n))


def test_fluid_optimisation_reaches_the_target(tmp_path):
    fluid = load_example("fluid_simulation")
    out = tmp_path / "fluid.png"
    result = fluid.main(n=16, steps=8, sweeps=8, iterations=20, out_path=str(out))
    assert result["final_loss"] < 0.1 * result["initial_loss"]
    assert onp.all(onp.diff(result["losses"]) <= 1e-12)  # L-BFGS-B iterates never go uphill
    assert_png(out)


# --------------------------------------------------- hyperparameter optimisation
def test_hypergradient_matches_finite_differences():
    hyper = load_example("hyperparameter_optimization")
    problem = hyper.Problem(steps=6, hidden=4, batch_size=8, seed=1)
    log_lrs = onp.log(onp.linspace(0.02, 0.05, 6))
    value, g = value_and_grad(problem.validation_loss)(log_lrs)
    direction = onp.random.default_rng(4).normal(size=6)
    eps = 1e-5
    fd = (problem.validation_loss(log_lrs + eps * direction)
          - problem.validation_loss(log_lrs - eps * direction)) / (2 * eps)
    assert onp.dot(g, direction) == pytest.approx(fd, rel=1e-6)


def test_hyperparameter_optimisation_with_checkpointing(tmp_path):
    hyper = load_example("hyperparameter_optimization")
    out = tmp_path / "hyper.png"
    # A short run is far from tuned, so a bolder meta step than the full run's.
    result = hyper.main(steps=16, meta_steps=5, segment_lengths=(1, 4), hidden=8, meta_step_size=0.3,
                        out_path=str(out))
    costs = result["costs"]
    # Checkpointing recomputes the same operations in the same order.
    assert result["max_grad_difference"] < 1e-12
    # 16 steps' intermediates against one step's plus 16 small weight vectors.
    assert costs[1]["peak_bytes"] < 0.5 * costs[None]["peak_bytes"]
    assert costs[4]["peak_bytes"] < costs[None]["peak_bytes"]
    losses = result["meta_losses"]
    assert onp.all(onp.diff(losses) < 0)
    assert losses[-1] < 0.9 * losses[0]
    assert_png(out)
