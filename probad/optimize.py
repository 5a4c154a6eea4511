"""``minimize``: ``scipy.optimize.minimize`` driven by probad's compiled derivatives.

The objective may take any nest of arrays (tuples, lists, dicts); it is
flattened to the one float64 vector scipy works with, and the solution comes
back in the starting point's structure. Gradient-based methods get a compiled
value-and-gradient (one replay gives both); Newton-type methods also get
compiled Hessian-vector products, or the full Hessian where scipy needs it.
"""
from __future__ import annotations

import numpy as onp
import scipy.optimize

from .ad.compiler import compile, compile_hvp, compile_value_and_grad
from .ad.differential_operators import hessian
from .ad.misc import flatten

__all__ = ["minimize"]

_USES_GRADIENT = {"cg", "bfgs", "newton-cg", "l-bfgs-b", "tnc", "slsqp", "dogleg", "trust-ncg",
                  "trust-krylov", "trust-exact", "trust-constr"}
_USES_HESSP = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}
_USES_HESS = {"dogleg", "trust-exact"}  # these accept only the full matrix


def minimize(fun, x0, args=(), method: str = "L-BFGS-B", *, jac: bool = True, hess: bool = True,
             bounds=None, constraints=(), tol=None, callback=None, **options):
    """Minimise a scalar function of a nest of arrays with scipy.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> scalar``, written with ``probad.ad.numpy``.
    x0 : array or nest of arrays
        Starting point; tuples, lists and dicts of arrays are allowed.
    args : tuple
        Extra arguments passed to ``fun`` (arrays are inputs of the compiled
        tape, other values are part of its cache key).
    method : str
        Any ``scipy.optimize.minimize`` method.
    jac, hess : bool
        Supply compiled gradients / Hessians (or Hessian-vector products) to
        the methods that use them. With ``False`` scipy falls back to its own
        finite differences where the method needs them.
    bounds, constraints, tol :
        As for scipy, in terms of the flattened vector (dicts are flattened
        in sorted key order).
    callback : callable, optional
        Called as ``callback(x)`` after each iteration, with ``x`` in the
        structure of ``x0``.
    **options
        Solver options (scipy's ``options`` dict), e.g. ``maxiter=200``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        With ``x`` (and ``jac``, when present) in the structure of ``x0``.
    """
    flat0, unflatten = flatten(x0)
    flat0 = onp.asarray(flat0, dtype=onp.float64)

    def objective(flat, *args):
        return fun(unflatten(flat), *args)

    name = method.lower() if isinstance(method, str) else ""
    kwargs = {}
    if jac and name in _USES_GRADIENT:
        kwargs["jac"] = True
        target = compile_value_and_grad(objective)
    else:
        target = compile(objective)
    if hess and name in _USES_HESSP:
        hvp = compile_hvp(objective)
        kwargs["hessp"] = lambda x, p, *args: hvp(x, *args, p)
    elif hess and name in _USES_HESS:
        kwargs["hess"] = compile(hessian(objective))
    if callback is not None:
        # scipy calls callback(xk) or, for trust-constr, callback(xk, state).
        kwargs["callback"] = lambda xk, *rest: callback(unflatten(xk))

    result = scipy.optimize.minimize(target, flat0, args=tuple(args), method=method,
                                     bounds=bounds, constraints=constraints, tol=tol,
                                     options=options or None, **kwargs)
    if onp.shape(result.get("jac")) == flat0.shape:
        result.jac = unflatten(result.jac)
    result.x = unflatten(result.x)
    return result
