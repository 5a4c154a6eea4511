"""Tuples, lists and dicts of traced values: as inputs, as outputs, built with
``probad.ad.tuple/list/dict``; ``probad.ad.misc.flatten`` and the optimisers."""
import inspect

import numpy as onp
import pytest

import probad.ad as ad
import probad.ad.numpy as np
from probad.ad import elementwise_grad, grad, jacobian, make_jvp, make_vjp, value_and_grad
from probad.ad.misc import flatten, flatten_func, optimizers
from probad.ad.test_util import check_grads
from probad.ad.tracer import Box

R = onp.random.RandomState(2)


def test_nested_containers_as_input():
    params = {"w": R.randn(3), "layers": [(R.randn(2), 1.5), {"b": R.randn(2, 2)}]}

    def loss(p):
        (v, s), inner = p["layers"]
        return np.sum(p["w"] ** 2) + s * np.sum(v) + np.sum(np.sin(inner["b"]))

    g = grad(loss)(params)
    assert set(g) == {"w", "layers"} and isinstance(g["layers"], list) and isinstance(g["layers"][0], tuple)
    onp.testing.assert_allclose(g["w"], 2 * params["w"])
    onp.testing.assert_allclose(g["layers"][0][0], onp.full(2, 1.5))
    assert g["layers"][0][1] == pytest.approx(onp.sum(params["layers"][0][0]))
    onp.testing.assert_allclose(g["layers"][1]["b"], onp.cos(params["layers"][1]["b"]))
    check_grads(loss, modes=["fwd", "rev"], order=2)(params)


def test_containers_as_output():
    def f(x):
        return {"sq": x ** 2, "pair": (np.sin(x), [x * 3.0])}

    x = R.randn(2)
    vjp, out = make_vjp(f)(x)
    assert not isinstance(out["sq"], Box) and isinstance(out["pair"][1], list)
    onp.testing.assert_allclose(out["pair"][0], onp.sin(x))
    g = vjp({"sq": onp.ones(2), "pair": (onp.ones(2), [onp.ones(2)])})
    onp.testing.assert_allclose(g, 2 * x + onp.cos(x) + 3.0)
    value, tangent = make_jvp(f)(x)(onp.ones(2))
    onp.testing.assert_allclose(tangent["pair"][1][0], [3.0, 3.0])
    check_grads(f, modes=["fwd", "rev"], order=2)(x)


def test_jacobian_and_elementwise_grad_with_tuples():
    def f(xy):
        x, y = xy
        return x * y

    Jy = jacobian(lambda x, y: f((x, y)), 1)(onp.array([1.0, 2.0]), onp.array([3.0, 4.0]))
    onp.testing.assert_allclose(Jy, onp.diag([1.0, 2.0]))
    gx, gy = elementwise_grad(f)((onp.array([1.0, 2.0]), onp.array([3.0, 4.0])))
    onp.testing.assert_allclose(gx, [3.0, 4.0])


def test_differentiable_container_constructors():
    def f(x):
        t = ad.tuple((x, x ** 2))
        lst = ad.list([x, 2.0 * x])
        d = ad.dict(a=x, b=t)
        assert isinstance(t, Box) and ad.isinstance(t, tuple) and ad.isinstance(t, ad.tuple)
        assert ad.isinstance(lst, list) and ad.isinstance(d, dict) and ad.isinstance(d, ad.dict)
        assert ad.type(t) is tuple and ad.type(x) is float
        return d["b"][1] + lst[1] + d["a"] * len(lst)

    assert grad(f)(1.5) == pytest.approx(2 * 1.5 + 2.0 + 2.0)
    # without traced elements they are the ordinary containers
    assert ad.tuple([1, 2]) == (1, 2) and ad.list((1,)) == [1] and ad.dict(a=1) == {"a": 1}
    assert isinstance((1, 2), ad.tuple) and isinstance([1], ad.list) and isinstance({}, ad.dict)


def test_sequence_and_dict_boxes_behave_like_containers():
    def f(p):
        a, b = p["pair"]  # unpacking iterates the box
        joined = p["pair"] + (a * b,)
        keys = sorted(p.keys())
        total = sum(v for k, v in p.items() if k != "pair") + joined[2]
        assert "scale" in p and len(p) == 2 and p.get("missing") is None and keys == ["pair", "scale"]
        return total * p.get("scale") + sum(p.values()[1:])

    g = grad(f)({"pair": (2.0, 3.0), "scale": 4.0})
    assert g["pair"] == (pytest.approx(12.0 + 0.0), pytest.approx(8.0))
    assert g["scale"] == pytest.approx(2 * 4.0 + 6.0 + 1.0)


def test_value_and_grad_with_argnum_tuple_gives_tuples():
    value, (ga, gb) = value_and_grad(lambda a, b: np.sum(a * b), (0, 1))(onp.ones(2), onp.full(2, 3.0))
    assert value == 6.0
    onp.testing.assert_allclose(ga, [3.0, 3.0])
    onp.testing.assert_allclose(gb, [1.0, 1.0])


# -------------------------------------------------------------------- flatten
def test_flatten_round_trip_and_is_differentiable():
    nest = {"b": [onp.arange(3.0), (onp.ones((2, 2)), 5.0)], "a": onp.array(-1.0)}
    flat, unflatten = flatten(nest)
    onp.testing.assert_allclose(flat, [-1.0, 0.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 5.0])  # sorted keys
    back = unflatten(flat)
    assert set(back) == {"a", "b"} and isinstance(back["b"], list) and isinstance(back["b"][1], tuple)
    onp.testing.assert_allclose(back["b"][1][0], onp.ones((2, 2)))
    assert float(back["b"][1][1]) == 5.0 and onp.shape(back["a"]) == ()

    def loss(nest):
        return np.sum(nest["b"][0] ** 2) * nest["b"][1][1] + nest["a"]

    flat_loss, unflatten2, flat0 = flatten_func(loss, nest)
    onp.testing.assert_allclose(flat0, flat)
    g = grad(flat_loss)(flat0)
    g_nest = grad(loss)(nest)
    onp.testing.assert_allclose(g, flatten(g_nest)[0])


@pytest.mark.parametrize("name, kwargs", [("sgd", {"step_size": 0.1, "num_iters": 300}),
                                          ("adam", {"step_size": 0.1, "num_iters": 300}),
                                          ("rmsprop", {"step_size": 0.05, "num_iters": 300})])
def test_optimizers_minimise_a_quadratic_over_a_nest(name, kwargs):
    target = {"w": onp.array([1.0, -2.0]), "b": (onp.array(0.5), [onp.array([[3.0]])])}

    def loss(p, i):
        diff = flatten(p)[0] - flatten(target)[0]
        return np.sum(diff ** 2)

    x0 = {"w": onp.zeros(2), "b": (onp.array(0.0), [onp.zeros((1, 1))])}
    seen = []
    result = getattr(optimizers, name)(grad(loss), x0, callback=lambda x, i, g: seen.append(i), **kwargs)
    assert seen == list(range(kwargs["num_iters"]))
    assert set(result) == {"w", "b"} and isinstance(result["b"][1], list)
    # rmsprop's normalised steps of 0.05 leave it oscillating within a step of the optimum
    onp.testing.assert_allclose(flatten(result)[0], flatten(target)[0], atol=0.06)


@pytest.mark.parametrize("name, kwargs", [("sgd", {"step_size": 0.1, "num_iters": 300}),
                                          ("adam", {"step_size": 0.1, "num_iters": 300}),
                                          ("rmsprop", {"step_size": 0.05, "num_iters": 300})])
def test_optimizers_keep_complex_parameters_complex(name, kwargs):
    # A real loss of complex z: each optimiser works on (Re z, Im z), which
    # the imaginary part of the gradient must not be dropped from.
    a = onp.array([[1.0 + 0.2j, 0.1], [-0.1j, 0.9]])
    b = onp.array([1.0 - 1.0j, 2.0j])

    def loss(p, i):
        return np.sum(np.abs(np.dot(a, p["z"]) - b) ** 2) + np.sum((p["r"] - 0.5) ** 2)

    x0 = {"z": onp.zeros(2, complex), "r": onp.zeros(1)}
    grads = []
    result = getattr(optimizers, name)(grad(loss), x0, callback=lambda x, i, g: grads.append((x, g)), **kwargs)
    assert result["z"].dtype == complex and result["r"].dtype == float
    # As above: rmsprop's normalised steps of 0.05 end within a step of the optimum.
    onp.testing.assert_allclose(result["z"], onp.linalg.solve(a, b), atol=0.06)
    onp.testing.assert_allclose(result["r"], 0.5, atol=0.06)
    x, g = grads[5]
    onp.testing.assert_allclose(g["z"], grad(loss)(x, 5)["z"])  # the callback sees grad's own values


def test_optimizers_keep_their_names_and_docstrings():
    for name in ["sgd", "rmsprop", "adam"]:
        fun = getattr(optimizers, name)
        assert fun.__name__ == name and fun.__doc__
        assert "step_size" in inspect.signature(fun).parameters  # help() shows the real arguments
