"""Optimisers over nests with explicit state (probad.optim)."""
import pickle

import numpy as onp
import pytest

import probad.ad.numpy as np
from probad import optim

TARGET = {"a": onp.array([1.0, -2.0, 3.0]),
          "b": (onp.float64(0.5), onp.array([[1.0, 2.0], [3.0, 4.0]]))}
CURV = {"a": onp.array([1.0, 4.0, 0.5]), "b": (2.0, onp.array([[1.0, 1.0], [3.0, 0.25]]))}


def _start():
    return {"a": onp.zeros(3), "b": (0.0, onp.zeros((2, 2)))}


def _grad(params):
    """Gradient of sum_i 0.5 * c_i (x_i - t_i)^2 over the nest."""
    return {"a": CURV["a"] * (params["a"] - TARGET["a"]),
            "b": (CURV["b"][0] * (params["b"][0] - TARGET["b"][0]),
                  CURV["b"][1] * (params["b"][1] - TARGET["b"][1]))}


def _max_error(params):
    return max(onp.max(onp.abs(params["a"] - TARGET["a"])),
               abs(float(params["b"][0]) - TARGET["b"][0]),
               onp.max(onp.abs(params["b"][1] - TARGET["b"][1])))


# Step counts and rates chosen so each method is well inside its stable range
# on curvatures in [0.25, 4]; the tolerance is far above round-off.
CASES = [
    (optim.SGD(0.2), 300),
    (optim.Momentum(0.05, mass=0.9), 500),
    (optim.Adam(0.05), 2000),
    (optim.ClippedAdam(0.05, clip_norm=1.0), 2000),
    (optim.Adagrad(0.5), 2000),
    # RMSProp's steps stay ~step_size in size near the optimum: decay the rate.
    (optim.RMSProp(lambda i: 0.05 / (1 + i / 50)), 3000),
]


@pytest.mark.parametrize("opt,steps", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_minimises_quadratic_on_nest(opt, steps):
    state = opt.init(_start())
    for _ in range(steps):
        state = opt.update(_grad(opt.get_params(state)), state)
    params = opt.get_params(state)
    assert set(params) == {"a", "b"} and isinstance(params["b"], tuple)
    assert params["b"][1].shape == (2, 2)
    assert state.step == steps
    assert _max_error(params) < 1e-3


def test_state_is_explicit_and_immutable():
    opt = optim.Adam(0.1)
    s0 = opt.init(_start())
    s1 = opt.update(_grad(opt.get_params(s0)), s0)
    s1_again = opt.update(_grad(opt.get_params(s0)), s0)
    # The old state is untouched and replaying it gives the same result.
    assert _max_error(opt.get_params(s0)) == _max_error(_start())
    for x, y in zip(s1.params, s1_again.params):
        onp.testing.assert_array_equal(x, y)
    # One optimiser object drives two independent fits.
    other = opt.init({"a": onp.ones(3), "b": (1.0, onp.ones((2, 2)))})
    moved = opt.get_params(opt.update(_grad(opt.get_params(other)), other))
    assert moved["a"][0] == pytest.approx(1.0)
    # States survive pickling.
    s1p = pickle.loads(pickle.dumps(s1))
    onp.testing.assert_array_equal(opt.get_params(s1p)["a"], opt.get_params(s1)["a"])


def test_init_copies_params():
    params = {"x": onp.zeros(2)}
    opt = optim.SGD(1.0)
    state = opt.update({"x": onp.ones(2)}, opt.init(params))
    assert onp.all(params["x"] == 0.0)
    onp.testing.assert_array_equal(opt.get_params(state)["x"], [-1.0, -1.0])


def test_gradient_dict_key_order_and_mismatch():
    opt = optim.SGD(1.0)
    state = opt.init({"x": onp.zeros(1), "y": onp.zeros(1)})
    state = opt.update({"y": onp.array([2.0]), "x": onp.array([1.0])}, state)
    out = opt.get_params(state)
    assert out["x"][0] == -1.0 and out["y"][0] == -2.0
    with pytest.raises(KeyError, match="'y'"):
        opt.update({"x": onp.zeros(1)}, state)


def test_adam_first_step_is_step_size_times_sign():
    # With bias correction the first Adam step has size step_size whatever the scale.
    opt = optim.Adam(0.01)
    state = opt.update(onp.array([0.5, -3e4]), opt.init(onp.zeros(2)))
    onp.testing.assert_allclose(opt.get_params(state), [-0.01, 0.01], rtol=1e-6)


def test_clipped_adam_clips_global_norm_and_decays_rate():
    leaves, norm = optim.clip_by_global_norm([onp.array([3.0]), onp.array([4.0])], 1.0)
    assert norm == pytest.approx(5.0)
    onp.testing.assert_allclose(onp.concatenate(leaves), [0.6, 0.8])
    opt = optim.ClippedAdam(0.1, clip_norm=1.0, lrd=0.5)
    state = opt.update(onp.array([30.0, 40.0]), opt.init(onp.zeros(2)))
    onp.testing.assert_allclose(state.slots[0][0], 0.1 * onp.array([0.6, 0.8]))
    assert opt._rate(0) == pytest.approx(0.1) and opt._rate(2) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="clip_norm"):
        optim.ClippedAdam(0.1, clip_norm=0.0)


def test_schedule_and_dtype():
    opt = optim.SGD(lambda i: 1.0 / (i + 1))
    state = opt.init(onp.zeros(2, dtype=onp.float32))
    for _ in range(3):
        state = opt.update(onp.ones(2, dtype=onp.float32), state)
    x = opt.get_params(state)
    assert x.dtype == onp.float32
    onp.testing.assert_allclose(x, -(1 + 1 / 2 + 1 / 3) * onp.ones(2), rtol=1e-6)


def test_eval_and_update_uses_probad_gradients():
    opt = optim.SGD(0.25)

    def loss(p):
        return np.sum((p["w"] - 2.0) ** 2) + p["b"] ** 2

    state = opt.init({"w": onp.zeros(2), "b": 1.0})
    value, state = opt.eval_and_update(loss, state)
    assert value == pytest.approx(9.0)
    out = opt.get_params(state)
    onp.testing.assert_allclose(out["w"], [1.0, 1.0])
    assert float(out["b"]) == pytest.approx(0.5)
