"""``fixed_point``: iterate a map to convergence and differentiate the limit
with respect to the map's parameters (autograd's ``misc.fixed_points``)."""
from __future__ import annotations

from ..builtins import tuple as ag_tuple
from ..core import defvjp, vspace
from ..differential_operators import make_vjp
from ..tracer import primitive

__all__ = ["fixed_point"]


@primitive
def fixed_point(f, a, x0, distance, tol):
    """The limit of ``x <- f(a)(x)`` from ``x0``, stopping once
    ``distance(x, x_previous) <= tol``.

    Differentiable with respect to ``a`` (reverse mode) through the implicit
    function theorem, not through the iterations: at the limit
    ``x* = f(a)(x*)``, so ``dL/da = w^T df/da`` where ``w = g + (df/dx)^T w``,
    itself found as a fixed point with the same ``distance`` and ``tol``.
    """
    step = f(a)
    previous, x = x0, step(x0)
    while distance(x, previous) > tol:
        previous, x = x, step(x)
    return x


def _adjoint_map(f):
    """``params -> (w -> g + (df/dx)^T w)`` at ``params = (a, x_star, g)``;
    a map of its parameters so that ``fixed_point`` can differentiate it again."""

    def make(params):
        a, x_star, g = params
        vjp_x, _ = make_vjp(f(a))(x_star)
        vs = vspace(x_star)
        return lambda w: vs.add(g, vjp_x(w))

    return make


def _fixed_point_vjp(ans, f, a, x0, distance, tol):
    vjp_a, _ = make_vjp(lambda a, x: f(a)(x))(a, ans)

    def vjp(g):
        w = fixed_point(_adjoint_map(f), ag_tuple((a, ans, g)), vspace(x0).zeros(), distance, tol)
        return vjp_a(w)

    return vjp


defvjp(fixed_point, None, _fixed_point_vjp, None)
