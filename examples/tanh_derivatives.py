"""tanh and its first six derivatives, by nesting ``elementwise_grad``.

``np.tanh`` knows one rule, ``d tanh(x) = (1 - tanh(x)**2) dx``, written with
differentiable primitives. Each ``elementwise_grad`` traces the previous
derivative function, backward pass included, so nesting it six times
differentiates that one rule six times. No other derivative is written.

The derivatives have a closed form to check against: every derivative of
``t = tanh(x)`` is a polynomial in ``t``, and since ``dt/dx = 1 - t**2`` the
chain rule gives ``P_{k+1}(t) = P_k'(t) * (1 - t**2)`` with ``P_0(t) = t``.

Run: ``python examples/tanh_derivatives.py`` (writes
``examples/figures/tanh_derivatives.png``).
"""
from __future__ import annotations

import os

# A bare Figure draws without pyplot, so importing this script never
# changes the caller's matplotlib backend.
import matplotlib
from matplotlib.figure import Figure
import numpy as onp  # noqa: E402
from numpy.polynomial import Polynomial  # noqa: E402

import probad.ad.numpy as np  # noqa: E402
from probad.ad import elementwise_grad  # noqa: E402

DEFAULT_FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "tanh_derivatives.png")


def derivatives(f, order: int) -> list:
    """``[f, f', f'', ...]`` up to ``order``, each the elementwise_grad of the last."""
    funcs = [f]
    for _ in range(order):
        funcs.append(elementwise_grad(funcs[-1]))
    return funcs


def tanh_derivative_polynomials(order: int) -> list[Polynomial]:
    """``P_k`` with ``d^k/dx^k tanh(x) = P_k(tanh(x))`` for ``k = 0..order``."""
    one_minus_t2 = Polynomial([1.0, 0.0, -1.0])
    polys = [Polynomial([0.0, 1.0])]
    for _ in range(order):
        polys.append(polys[-1].deriv() * one_minus_t2)
    return polys


def main(n_points: int = 400, order: int = 6, out_path: str = DEFAULT_FIGURE) -> dict:
    """Differentiate tanh ``order`` times on a grid, check, and plot.

    Parameters
    ----------
    n_points : int
        Grid size on ``[-4, 4]``.
    order : int
        Highest derivative.
    out_path : str
        Where to save the figure.

    Returns
    -------
    dict
        ``x``, ``values`` (one array per derivative order, 0 first) and
        ``max_abs_error`` against the closed form, per order.
    """
    x = onp.linspace(-4.0, 4.0, n_points)
    values = [onp.asarray(f(x)) for f in derivatives(np.tanh, order)]
    exact = [p(onp.tanh(x)) for p in tanh_derivative_polynomials(order)]
    errors = [float(onp.max(onp.abs(v - e))) for v, e in zip(values, exact)]
    for k, err in enumerate(errors):
        print(f"order {k}: max |autodiff - closed form| = {err:.2e}")

    # One panel per order: the k-th derivative grows roughly like k!, so a
    # shared axis would flatten the low orders. The last panel overlays all
    # of them scaled to a peak of 1, to compare their shapes.
    n_rows = -(-(order + 2) // 4)
    fig = Figure(figsize=(13, 3.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, 4, squeeze=False)
    axes = axes.ravel()
    for ax in axes[order + 1:-1]:
        ax.set_visible(False)
    colours = matplotlib.colormaps["viridis"](onp.linspace(0.0, 0.85, order + 1))
    marks = slice(None, None, max(1, n_points // 25))
    for k, (v, e, c) in enumerate(zip(values, exact, colours)):
        ax = axes[k]
        ax.plot(x, v, color=c, lw=1.8, label="nested elementwise_grad")
        ax.plot(x[marks], e[marks], "o", ms=3, mfc="none", color="0.3", label="closed form")
        ax.set_title("tanh(x)" if k == 0 else f"derivative {k}")
        ax.axhline(0.0, color="0.85", lw=0.8, zorder=0)
        axes[-1].plot(x, v / onp.max(onp.abs(v)), color=c, lw=1.4, label=f"k = {k}")
    axes[0].legend(fontsize=8, loc="upper left", frameon=False)
    axes[-1].set_title("all orders, scaled to peak 1")
    axes[-1].set_ylim(-1.1, 1.7)  # headroom for the legend
    axes[-1].legend(fontsize=7, ncol=4, loc="upper center", frameon=False, columnspacing=0.8)
    for ax in axes:
        ax.set_xlabel("x")
    for ax in axes[::4]:
        ax.set_ylabel(r"$d^k \tanh(x) / dx^k$")
    fig.suptitle(f"tanh and its first {order} derivatives by automatic differentiation")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=120)
    return {"x": x, "values": values, "max_abs_error": errors}


if __name__ == "__main__":
    main()
