"""Functions with loops, branches, recursion and guards to compile, and the
check that a compiled replay agrees with eager evaluation."""
import numpy as onp

import probad.ad.numpy as np
from probad.ad.compiler import compile
from tests.models import make_garch


def assert_same(got, want):
    """Same nest, same types and dtypes, values equal to 1e-12 (relative)."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (onp.ndarray, onp.generic)):
        assert got.dtype == want.dtype and onp.shape(got) == onp.shape(want)
        # Not bit-equal: the compiler's rewrites (x * 1 -> x, merged duplicate
        # ops) and the native backend's libm and sequential sums move the last
        # few bits; 1e-12 is thousands of ulps above that and far below any
        # real error (a wrong op or a stale constant).
        onp.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    else:
        assert got == want or (got != got and want != want)


def check_against_eager(fun, inputs, **compile_kwargs):
    """Call the compiled ``fun`` twice per input (trace or replay, then replay)
    and compare with eager evaluation."""
    compiled = compile(fun, **compile_kwargs)
    for args in inputs:
        want = fun(*args)
        for _ in range(2):
            assert_same(compiled(*args), want)
    return compiled


def only_tapes(compiled):
    (tapes,) = compiled.tapes.values()
    return tapes


rng = onp.random.default_rng(0)


def loop_fixed(x):
    total = 0.0
    for k in range(5):
        total = total + np.sin(k * x).sum()
    return total


def loop_traced_trip_count(x):
    while x > 1:
        x = x / 2
    return x * 3.0


def branch_on_sum(x):
    if x.sum() > 0:
        return np.log1p(np.exp(x)).sum()
    return (x ** 2).sum()


def recursion(x, depth):
    if depth == 0:
        return np.tanh(x).sum()
    return recursion(np.sin(x) + 0.5 * x, depth - 1) * 0.9


def int_as_range(x):
    n = int(np.floor(x[0]))
    acc = x[1]
    for _ in range(n):
        acc = acc * 1.5 + np.cos(acc)
    return acc


def item_and_float(x):
    big = x.max().item()
    s = float(x.sum())
    scale = 2.0 if big > 0.5 else 0.5
    return np.exp(x * scale).sum() + s


def comparisons(x):
    y = np.where(x > 0.2, x, -x)
    if (y > 0.5).any():
        return (y ** 3).sum()
    return y.sum()


def boolean_mask(x):
    return np.sum(x[x > 0] ** 2) + x.mean()


def containers(params, data):
    mu, log_sigma = params["mu"], params["log_sigma"]
    z = (data[0] - mu) / np.exp(log_sigma)
    return -0.5 * np.sum(z ** 2) - data[1] * log_sigma, [mu, z.sum()]


def closure_factory(weights):
    offset = np.exp(weights).sum()  # input-independent: folded into the tape

    def f(x):
        return np.dot(weights, np.tanh(x)) + offset

    return f


def garch_loglik(params, y):
    return make_garch(np, y)(params)


X3 = rng.normal(size=3)
CASES = [
    (loop_fixed, [(X3,), (X3 + 1,)]),
    (loop_traced_trip_count, [(onp.float64(3.0),), (onp.float64(3.5),), (onp.float64(40.0),),
                              (onp.float64(0.5),)]),
    (branch_on_sum, [(X3,), (-X3 - 1,), (X3 + 2,)]),
    (lambda x: recursion(x, 3), [(X3,), (X3 * 2,)]),
    (int_as_range, [(onp.array([2.5, 0.3]),), (onp.array([2.7, 0.1]),), (onp.array([4.1, 0.2]),)]),
    (item_and_float, [(onp.array([0.1, 0.9]),), (onp.array([0.1, 0.2]),),
                      (onp.array([0.1, 0.9]),)]),
    (comparisons, [(onp.array([0.1, 0.3]),), (onp.array([0.1, 0.9]),), (onp.array([-0.1, 0.3]),)]),
    (boolean_mask, [(onp.array([1.0, -2.0, 3.0]),), (onp.array([1.0, 2.0, 3.0]),),
                    (onp.array([-1.0, -2.0, 3.0]),)]),
    (closure_factory(onp.array([0.3, -0.2, 0.5])), [(X3,), (X3 - 1,)]),
]
IDS = ["loop", "while", "branch", "recursion", "int_range", "item_float", "compare", "mask",
       "closure"]
