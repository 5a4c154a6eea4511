"""A tour of ``probad.ad``, from one derivative to training a small network.

Each section is a function that prints what it shows and returns the
numbers worth checking; ``main`` runs them in order and draws one figure.

1. ``grad`` of tanh, against a central finite difference.
2. The logistic sigmoid: its gradient worked out stage by stage by hand
   (what reverse mode does), against the automatic one.
3. ``flatten``: nests of lists, tuples and dicts of arrays to one vector and back.
4. A new primitive, a stable ``logsumexp``, with its own VJP and JVP rules,
   verified to second order by ``check_grads``.
5. Linear regression with parameters in a dict, by plain gradient descent.
6. Polynomial regression, against the least-squares solution.
7. A small neural network regression trained with ``optimizers.sgd``
   (gradient descent with momentum).

Run: ``python examples/autodiff_tutorial.py`` (writes
``examples/figures/autodiff_tutorial.png``).
"""
from __future__ import annotations

import os

# A bare Figure draws without pyplot, so importing this script never
# changes the caller's matplotlib backend.
from matplotlib.figure import Figure
import numpy as onp  # noqa: E402

import probad.ad.numpy as np  # noqa: E402
from probad.ad import elementwise_grad, grad, value_and_grad  # noqa: E402
from probad.ad.extend import defjvp, defvjp, primitive  # noqa: E402
from probad.ad.misc import flatten  # noqa: E402
from probad.ad.misc.optimizers import adam, sgd  # noqa: E402
from probad.ad.test_util import check_grads  # noqa: E402

DEFAULT_FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "autodiff_tutorial.png")


def central_difference(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


# ------------------------------------------------------------------ 1. tanh
def tanh(x):
    """tanh written out with exponentials, so its derivative is assembled by
    the chain rule from the rules of ``exp``, ``+`` and ``/``."""
    e = np.exp(-2.0 * x)
    return (1.0 - e) / (1.0 + e)


def section_tanh(x: float = 1.0) -> dict:
    """``grad(tanh)`` against finite differences and the closed form."""
    d_auto = grad(tanh)(x)
    d_fd = central_difference(tanh, x)
    d_exact = 1.0 - onp.tanh(x) ** 2
    print(f"1. d tanh/dx at x={x}: autodiff {d_auto:.12f}, finite difference {d_fd:.12f}, "
          f"1 - tanh^2 {d_exact:.12f}")
    return {"autodiff": d_auto, "finite_difference": d_fd, "exact": d_exact}


# ---------------------------------------------------------------- 2. sigmoid
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_grad_by_hand(x):
    """The derivative of ``sigmoid`` staged as reverse mode does it.

    Forward, keep each intermediate; backward, start from d s/d s = 1 and
    multiply by the local derivative of each stage, last stage first.
    """
    a = -x            # stage 1
    b = onp.exp(a)    # stage 2
    c = 1.0 + b       # stage 3
    s = 1.0 / c       # stage 4 (the output)
    ds = 1.0
    dc = ds * (-1.0 / c**2)   # d(1/c)/dc
    db = dc * 1.0             # d(1 + b)/db
    da = db * b               # d exp(a)/da = exp(a) = b
    dx = da * -1.0            # d(-x)/dx
    return s, dx


def section_sigmoid(x=None) -> dict:
    """Hand-staged sigmoid derivative against ``elementwise_grad``."""
    x = onp.linspace(-6.0, 6.0, 121) if x is None else x
    s, by_hand = sigmoid_grad_by_hand(x)
    automatic = elementwise_grad(sigmoid)(x)
    max_diff = float(onp.max(onp.abs(by_hand - automatic)))
    print(f"2. sigmoid'(x) on {x.size} points: max |by hand - automatic| = {max_diff:.1e} "
          f"(and s(1-s) agrees to {onp.max(onp.abs(automatic - s * (1 - s))):.1e})")
    return {"x": x, "by_hand": by_hand, "automatic": automatic, "max_abs_diff": max_diff}


# ---------------------------------------------------------------- 3. flatten
def nests_equal(a, b) -> bool:
    """Same containers, same keys, same arrays, all the way down."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(nests_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(nests_equal(x, y) for x, y in zip(a, b)))
    return onp.array_equal(a, b)


def section_flatten(seed: int = 0) -> dict:
    """Flatten nests of arrays, unflatten them, and differentiate through."""
    rng = onp.random.default_rng(seed)
    nest = {
        "weights": [rng.normal(size=(2, 3)), rng.normal(size=3)],
        "pair": (rng.normal(size=2), onp.array(0.5)),
        "nested": {"inner": {"a": rng.normal(size=(2, 2)), "b": onp.arange(3.0)}},
    }
    flat, unflatten = flatten(nest)
    same = nests_equal(unflatten(flat), nest)

    # ``grad`` of a function of the nest returns a nest of the same shape;
    # composing with ``unflatten`` (itself differentiable) gives a function
    # of one vector, as optimisers want. Both routes must agree.
    def loss(params):
        W, v = params["weights"]
        u, scale = params["pair"]
        inner = params["nested"]["inner"]
        return (np.sum(np.tanh(np.dot(u, W)) * v) * scale
                + np.sum(np.dot(inner["a"], inner["b"][:2]) ** 2))

    nest_grad = grad(loss)(nest)
    flat_grad = grad(lambda vector: loss(unflatten(vector)))(flat)
    grad_ok = bool(onp.allclose(flatten(nest_grad)[0], flat_grad, rtol=1e-14, atol=0.0))
    print(f"3. flatten: a nest of {len(flat)} numbers in lists, tuples and dicts; "
          f"round trip exact: {same}; gradient of the nest = gradient through unflatten: {grad_ok}")
    return {"size": len(flat), "round_trip_exact": same, "gradients_agree": grad_ok}


# -------------------------------------------------------------- 4. logsumexp
@primitive
def logsumexp(x):
    """``log(sum(exp(x)))`` over all elements, without overflow: subtracting
    the maximum keeps every exponent <= 0.

    As a primitive it runs on raw numpy values and is recorded as one call;
    its derivatives come from the two rules registered below rather than
    from tracing the max-shift, whose contributions cancel anyway."""
    m = onp.max(x)
    return m + onp.log(onp.sum(onp.exp(x - m)))


# The gradient is softmax(x) = exp(x - logsumexp(x)). Writing the rules with
# the wrapped ``np`` (and with ``ans``, itself traced at higher order) keeps
# them differentiable, so second derivatives come for free.
defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))
defjvp(logsumexp, lambda g, ans, x: np.sum(g * np.exp(x - ans)))


def section_logsumexp(seed: int = 0) -> dict:
    """Check the custom primitive: value, overflow, and derivatives to order 2."""
    rng = onp.random.default_rng(seed)
    x = rng.normal(size=5)
    naive = onp.log(onp.sum(onp.exp(x)))
    big = logsumexp(x + 1000.0)  # exp(1000) overflows; the shifted form does not
    check_grads(logsumexp, modes=["fwd", "rev"], order=2)(x)
    softmax_ok = onp.allclose(grad(logsumexp)(x), onp.exp(x) / onp.sum(onp.exp(x)))
    print(f"4. logsumexp: matches naive {abs(logsumexp(x) - naive):.1e}, at x+1000 gives "
          f"{big:.4f} (finite), check_grads(order=2) passed, gradient is softmax: {softmax_ok}")
    return {"value_error": abs(logsumexp(x) - naive), "shifted": big,
            "shift_error": abs(big - 1000.0 - naive), "softmax_ok": softmax_ok}


# ------------------------------------------------------ 5. linear regression
def section_linear_regression(steps: int = 200, step_size: float = 0.1, seed: int = 0) -> dict:
    """Gradient descent on a mean squared error, parameters in a dict.

    ``grad`` of a function of a dict returns a dict with the same keys, so
    the update reads like the maths.
    """
    rng = onp.random.default_rng(seed)
    true = {"slope": onp.array([2.0, -1.0]), "intercept": 0.5}
    X = rng.normal(size=(200, 2))
    y = X @ true["slope"] + true["intercept"] + 0.1 * rng.normal(size=200)

    def mse(params):
        prediction = np.dot(X, params["slope"]) + params["intercept"]
        return np.mean((prediction - y) ** 2)

    params = {"slope": onp.zeros(2), "intercept": 0.0}
    losses = []
    for _ in range(steps):
        loss, g = value_and_grad(mse)(params)
        losses.append(float(loss))
        params = {k: params[k] - step_size * g[k] for k in params}
    losses.append(float(mse(params)))
    exact, *_ = onp.linalg.lstsq(onp.column_stack([X, onp.ones(len(X))]), y, rcond=None)
    print(f"5. linear regression: slope {onp.round(params['slope'], 3)}, intercept "
          f"{params['intercept']:.3f} (least squares {onp.round(exact, 3)}); "
          f"mse {losses[0]:.3f} -> {losses[-1]:.4f}")
    return {"params": params, "least_squares": exact, "losses": losses, "X": X, "y": y}


# -------------------------------------------------- 6. polynomial regression
def polynomial_features(x, degree):
    return onp.stack([x**k for k in range(degree + 1)], axis=1)


def section_polynomial_regression(steps: int = 500, degree: int = 3, seed: int = 0) -> dict:
    """Fit a cubic by Adam on the squared error; compare with least squares.

    Features ``x**k`` on ``[-1, 1]`` are far from orthogonal, so plain
    gradient descent would crawl; Adam's per-coordinate scaling copes.
    """
    rng = onp.random.default_rng(seed)
    x = onp.sort(rng.uniform(-1.0, 1.0, size=60))
    y = 1.0 - 2.0 * x + 3.0 * x**3 + 0.15 * rng.normal(size=x.size)
    features = polynomial_features(x, degree)

    def squared_error(coefficients, i=None):
        return np.mean((np.dot(features, coefficients) - y) ** 2)

    losses = []

    def record(coefficients, i, g):
        losses.append(float(squared_error(coefficients)))

    fitted = adam(grad(squared_error), onp.zeros(degree + 1), callback=record,
                  num_iters=steps, step_size=0.05)
    losses.append(float(squared_error(fitted)))
    exact, *_ = onp.linalg.lstsq(features, y, rcond=None)
    best = float(onp.mean((features @ exact - y) ** 2))
    print(f"6. polynomial regression (degree {degree}): coefficients {onp.round(fitted, 3)}, "
          f"least squares {onp.round(exact, 3)}; loss {losses[-1]:.5f} vs optimum {best:.5f}")
    return {"x": x, "y": y, "coefficients": fitted, "least_squares": exact,
            "losses": losses, "optimal_loss": best}


# ------------------------------------------------- 7. neural net regression
def init_network(layer_sizes, rng, scale=1.0):
    """``[(W, b), ...]``, one pair per layer, weights scaled by 1/sqrt(fan-in)."""
    return [(scale * rng.normal(size=(m, n)) / onp.sqrt(m), onp.zeros(n))
            for m, n in zip(layer_sizes[:-1], layer_sizes[1:])]


def network(params, x):
    """tanh hidden layers, linear output; ``x`` has shape ``(N, 1)``."""
    h = x
    for W, b in params[:-1]:
        h = np.tanh(np.dot(h, W) + b)
    W, b = params[-1]
    return np.dot(h, W) + b


def section_neural_network(steps: int = 1000, hidden: int = 20, seed: int = 0) -> dict:
    """Regress a noisy wave with a 1-hidden-hidden-1 tanh network and SGD."""
    rng = onp.random.default_rng(seed)
    x = onp.concatenate([onp.linspace(-3.0, -0.8, 30), onp.linspace(0.8, 3.0, 30)])[:, None]
    y = onp.sin(2.0 * x) + 0.3 * x + 0.08 * rng.normal(size=x.shape)
    params = init_network([1, hidden, hidden, 1], rng)

    def mse(params, i=None):
        return np.mean((network(params, x) - y) ** 2)

    losses = []

    def record(params, i, g):
        losses.append(float(mse(params)))

    # ``sgd`` takes the gradient of a nest (a list of tuples) and keeps the
    # nest's structure; it flattens internally with ``flatten``. Momentum 0.9
    # (the default) averages the steps; at step_size 0.2 the loss falls
    # steadily, at twice that it spikes on the way down.
    trained = sgd(grad(mse), params, callback=record, num_iters=steps, step_size=0.2)
    losses.append(float(mse(trained)))
    print(f"7. neural network: mse {losses[0]:.3f} -> {losses[-1]:.4f} in {steps} SGD steps "
          f"(noise variance {0.08**2:.4f})")
    return {"x": x, "y": y, "params": trained, "losses": losses}


# -------------------------------------------------------------------- figure
def plot(results, out_path):
    fig = Figure(figsize=(14, 8), layout="constrained")
    axes = fig.subplots(2, 3)

    ax = axes[0, 0]
    grid = onp.linspace(-3.0, 3.0, 200)
    ax.plot(grid, tanh(grid), label="tanh(x)")
    ax.plot(grid, elementwise_grad(tanh)(grid), label="d tanh/dx, autodiff")
    marks = grid[::12]
    ax.plot(marks, central_difference(tanh, marks), "o", ms=4, mfc="none", color="0.2",
            label="finite difference")
    ax.set(xlabel="x", ylabel="value", title="1. grad of tanh")
    ax.legend(frameon=False, fontsize=8)

    ax = axes[0, 1]
    sig = results["sigmoid"]
    ax.plot(sig["x"], sig["automatic"], lw=2.5, alpha=0.5, label="elementwise_grad(sigmoid)")
    ax.plot(sig["x"], sig["by_hand"], "--", color="k", lw=1, label="staged by hand")
    ax.set(xlabel="x", ylabel="sigmoid'(x)",
           title=f"2. sigmoid gradient (max diff {sig['max_abs_diff']:.0e})")
    ax.legend(frameon=False, fontsize=8)

    ax = axes[0, 2]
    for key, label in (("linear", "5. linear regression (GD)"), ("polynomial", "6. polynomial (Adam)"),
                       ("network", "7. neural network (SGD)")):
        ax.semilogy(results[key]["losses"], label=label)
    ax.axhline(results["polynomial"]["optimal_loss"], color="0.5", ls=":", lw=1,
               label="polynomial least-squares optimum")
    ax.set(xlabel="step", ylabel="training mean squared error", title="Training curves")
    ax.legend(frameon=False, fontsize=8)

    ax = axes[1, 0]
    lin = results["linear"]
    prediction = lin["X"] @ lin["params"]["slope"] + lin["params"]["intercept"]
    ax.plot(prediction, lin["y"], ".", ms=4, alpha=0.6)
    lims = [min(prediction.min(), lin["y"].min()), max(prediction.max(), lin["y"].max())]
    ax.plot(lims, lims, "k-", lw=1, label="y = prediction")
    ax.set(xlabel="fitted value", ylabel="observed y", title="5. linear regression, dict parameters")
    ax.legend(frameon=False, fontsize=8)

    ax = axes[1, 1]
    poly = results["polynomial"]
    fine = onp.linspace(-1.0, 1.0, 200)
    ax.plot(poly["x"], poly["y"], "o", ms=3, color="0.4", label="data")
    ax.plot(fine, polynomial_features(fine, len(poly["coefficients"]) - 1) @ poly["coefficients"],
            lw=2, label="Adam fit")
    ax.plot(fine, polynomial_features(fine, len(poly["least_squares"]) - 1) @ poly["least_squares"],
            "k--", lw=1, label="least squares")
    ax.set(xlabel="x", ylabel="y", title="6. cubic polynomial regression")
    ax.legend(frameon=False, fontsize=8)

    ax = axes[1, 2]
    net = results["network"]
    fine = onp.linspace(-4.0, 4.0, 300)[:, None]
    ax.plot(net["x"], net["y"], "o", ms=3, color="0.4", label="data")
    ax.plot(fine, network(net["params"], fine), lw=2, label="network")
    ax.set(xlabel="x", ylabel="y", title="7. neural network regression")
    ax.legend(frameon=False, fontsize=8)

    fig.suptitle("probad.ad tutorial")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)


def main(linear_steps: int = 200, polynomial_steps: int = 500, network_steps: int = 1000,
         seed: int = 0, out_path: str = DEFAULT_FIGURE) -> dict:
    """Run every section and draw the figure.

    Parameters
    ----------
    linear_steps, polynomial_steps, network_steps : int
        Optimisation steps of sections 5, 6 and 7.
    seed : int
        Seed of every random draw.
    out_path : str
        Where to save the figure.

    Returns
    -------
    dict
        Each section's results, keyed ``tanh``, ``sigmoid``, ``flatten``,
        ``logsumexp``, ``linear``, ``polynomial``, ``network``.
    """
    results = {
        "tanh": section_tanh(),
        "sigmoid": section_sigmoid(),
        "flatten": section_flatten(seed),
        "logsumexp": section_logsumexp(seed),
        "linear": section_linear_regression(linear_steps, seed=seed),
        "polynomial": section_polynomial_regression(polynomial_steps, seed=seed),
        "network": section_neural_network(network_steps, seed=seed),
    }
    plot(results, out_path)
    return results


if __name__ == "__main__":
    main()
