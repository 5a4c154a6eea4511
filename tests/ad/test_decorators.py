"""``probad.ad.decorators``: compiled functions and derivatives as decorators."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad, hessian
from probad.ad.decorators import function, gradient, hessian_vector
from tests.ad.compiler.eager_cases import assert_same, rng, X3


def test_function_decorator():
    @function
    def f(x):
        return np.sum(np.sin(x))

    @function(max_tapes=1)
    def g(x):
        return x * 2 if x > 0 else x

    assert_same(f(X3), onp.sum(onp.sin(X3)))
    assert f.trace_count == 1 and g.max_tapes == 1


def test_gradient_decorator_by_name():
    def model(x, y, n=2):
        return np.sum(x * y ** n) + np.sum(np.exp(y))

    x, y = rng.normal(size=3), rng.normal(size=3)
    grad_y = gradient(wrt="y")(model)
    assert_same(grad_y(x, y), grad(model, 1)(x, y))
    assert_same(grad_y(x, y=y, n=3), grad(model, 1)(x, y, 3))
    both = gradient(wrt=["y", "x"])(model)
    assert_same(both(x, y), (grad(model, 1)(x, y), grad(model, 0)(x, y)))
    every_float = gradient(model)
    assert_same(every_float(x, y), (grad(model, 0)(x, y), grad(model, 1)(x, y)))
    assert_same(gradient(lambda x, k: k * np.sum(x ** 2))(x, 3), 6 * x)  # int k: static
    grad_y(x, y)
    assert grad_y.compiled.trace_count == 2  # (x, y) and (x, y, n=3)
    with pytest.raises(TypeError, match="no argument named 'z'"):
        gradient(wrt="z")(model)(x, y)


def test_hessian_vector_decorator():
    def f(a, x):
        return a * np.sum(np.sin(x) * x ** 3)

    x, v = rng.normal(size=4), rng.normal(size=4)
    hv = hessian_vector(wrt="x")(f)
    onp.testing.assert_allclose(hv(2.0, x, v), hessian(lambda x: f(2.0, x))(x) @ v, rtol=1e-12)

    @hessian_vector
    def quadratic(x):
        return 0.5 * np.sum(x ** 2) * 3.0

    onp.testing.assert_allclose(quadratic(x, v), 3.0 * v, rtol=1e-15)
