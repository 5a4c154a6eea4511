"""Hessian-vector products without forming the Hessian.

For ``f: R^n -> R``, ``H v`` is the directional derivative of the gradient,
``d/de grad f(x + e v)`` at ``e = 0``. Automatic differentiation gets it at a
small constant multiple of the cost of one gradient, whatever ``n``, while
the full Hessian costs ``n`` gradient-like passes and ``n**2`` memory:

- reverse over reverse: ``make_hvp(f)(x)`` returns the VJP of ``grad f``; the
  Hessian is symmetric, so that VJP is ``H v``;
- ``hessian_vector_product(f)(x, v)``: the gradient of ``grad f(x) . v``;
- forward over reverse: ``make_jvp(grad(f))(x)(v)``, one forward-mode pass
  through the traced gradient; usually the cheapest.

The example checks all three against ``hessian(f)(x) @ v``, times them
against forming the Hessian as the dimension grows, and then minimises the
chained Rosenbrock function by Newton-CG, which needs the Hessian only through
products with it and so never builds it.

Run: ``python examples/hessian_vector_products.py`` (writes
``examples/figures/hessian_vector_products.png``).
"""
from __future__ import annotations

import os
import timeit

# A bare Figure draws without pyplot, so importing this script never
# changes the caller's matplotlib backend.
from matplotlib.figure import Figure
import numpy as onp  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import probad.ad.numpy as np  # noqa: E402
from probad.ad import grad, hessian, hessian_vector_product, make_hvp, make_jvp  # noqa: E402

DEFAULT_FIGURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures",
                              "hessian_vector_products.png")


def rosenbrock(x):
    """The chained Rosenbrock function (``scipy.optimize.rosen``): minimum 0
    at ``x = 1`` at the end of a narrow curved valley."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def hvp_by_hessian(f):
    return lambda x, v: hessian(f)(x) @ v


def hvp_reverse_over_reverse(f):
    return lambda x, v: make_hvp(f)(x)[0](v)


def hvp_forward_over_reverse(f):
    return lambda x, v: make_jvp(grad(f))(x)(v)[1]


METHODS = {
    "hessian(f)(x) @ v": hvp_by_hessian,
    "make_hvp (reverse over reverse)": hvp_reverse_over_reverse,
    "hessian_vector_product": hessian_vector_product,
    "make_jvp(grad(f)) (forward over reverse)": hvp_forward_over_reverse,
}


def best_time(fun, *args, repeats: int = 3) -> float:
    """Seconds per call, best of ``repeats``: the least disturbed run."""
    return min(timeit.repeat(lambda: fun(*args), number=1, repeat=repeats))


def newton_cg(f, x0):
    """Minimise ``f`` by Newton-CG on forward-over-reverse HVPs, recording
    ``f`` and the gradient norm at every iterate."""
    df = grad(f)
    history = {"f": [], "grad_norm": []}

    def record(x):
        history["f"].append(float(f(x)))
        history["grad_norm"].append(float(onp.linalg.norm(df(x))))

    record(x0)
    result = minimize(f, x0, jac=df, hessp=hvp_forward_over_reverse(f), method="Newton-CG",
                      callback=record, options={"xtol": 1e-12, "maxiter": 2000})
    return result, history


def main(dims=(10, 20, 40, 80, 160, 320, 640), newton_dim: int = 200, seed: int = 0,
         out_path: str = DEFAULT_FIGURE) -> dict:
    """Check and time the HVP routes, run Newton-CG, and plot.

    Parameters
    ----------
    dims : sequence of int
        Dimensions at which to check and time every route.
    newton_dim : int
        Dimension of the Rosenbrock problem solved by Newton-CG.
    seed : int
        Seed of the random points and directions.
    out_path : str
        Where to save the figure.

    Returns
    -------
    dict
        ``max_rel_error`` (per method, the worst over ``dims`` of
        ``|Hv - H @ v| / |H @ v|``), ``times`` (per method, seconds per call
        at each dimension), ``newton`` (the scipy result) and ``history``
        (``f`` and ``grad_norm`` per Newton-CG iterate).
    """
    rng = onp.random.default_rng(seed)
    times = {name: [] for name in METHODS}
    max_rel_error = {name: 0.0 for name in METHODS}
    for n in dims:
        x, v = rng.normal(size=n), rng.normal(size=n)
        reference = hvp_by_hessian(rosenbrock)(x, v)
        for name, make in METHODS.items():
            hvp = make(rosenbrock)
            err = onp.linalg.norm(hvp(x, v) - reference) / onp.linalg.norm(reference)
            max_rel_error[name] = max(max_rel_error[name], float(err))
            times[name].append(best_time(hvp, x, v))
    print(f"{'method':<44}{'max rel. error':>15}" + "".join(f"{f'n={n}':>10}" for n in dims))
    for name in METHODS:
        print(f"{name:<44}{max_rel_error[name]:>15.1e}"
              + "".join(f"{t * 1e3:>8.2f}ms" for t in times[name]))

    # The classic start (-1.2, 1, -1.2, 1, ...) lies on the far side of the valley.
    x0 = onp.tile([-1.2, 1.0], newton_dim // 2 + 1)[:newton_dim]
    newton, history = newton_cg(rosenbrock, x0)
    print(f"\nNewton-CG on Rosenbrock, n={newton_dim}, from (-1.2, 1, ...): f = {newton.fun:.1e}, "
          f"|x - 1|_max = {onp.max(onp.abs(newton.x - 1)):.1e} after {newton.nit} iterations, "
          f"{newton.njev} gradients and {newton.nhev} Hessian-vector products")

    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_time, ax_opt = fig.subplots(1, 2)
    for (name, ts), marker in zip(times.items(), "osD^"):
        ax_time.loglog(dims, ts, marker=marker, ms=5, label=name)
    ax_time.set_xlabel("dimension n")
    ax_time.set_ylabel("seconds per H v (best of 3)")
    ax_time.set_title("One Hessian-vector product on Rosenbrock")
    ax_time.legend(fontsize=8, frameon=False)
    ax_time.grid(True, which="major", alpha=0.3)

    ax_opt.semilogy(history["f"], lw=1.5, label="f(x)")
    ax_opt.semilogy(history["grad_norm"], lw=1.5, label="|grad f(x)|")
    ax_opt.set_xlabel("Newton-CG iteration")
    ax_opt.set_ylabel("value")
    ax_opt.set_title(f"Newton-CG on HVPs, n = {newton_dim}: {newton.nhev} products, no Hessian")
    ax_opt.legend(frameon=False)
    ax_opt.grid(True, which="major", alpha=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=120)
    return {"max_rel_error": max_rel_error, "times": times, "newton": newton, "history": history}


if __name__ == "__main__":
    main()
