"""``minimize``: ``scipy.optimize.minimize`` driven by probad's compiled derivatives.

The objective may take any nest of arrays (tuples, lists, dicts); it is
flattened to the one float64 vector scipy works with, and the solution comes
back in the starting point's structure. Gradient-based methods get a compiled
value-and-gradient (one replay gives both); Newton-type methods also get
compiled Hessian-vector products, or the full Hessian where scipy needs it.

Where the objective cannot be evaluated (its value or gradient is not finite,
or it raises ``LinAlgError``, as a Cholesky factor of a matrix that is not
positive definite does), scipy is told so in the way each method recovers
from: ``+inf`` (and a zero gradient), from which line searches, trust regions
and simplexes step back, or NaN for L-BFGS-B, whose line search stops at the
last finite point on ``+inf`` and reports convergence there.
"""
from __future__ import annotations

import numpy as onp
import scipy.optimize

from .ad import compiler
from .ad.differential_operators import hessian
from .ad.misc import flatten

__all__ = ["minimize"]

_USES_GRADIENT = {"cg", "bfgs", "newton-cg", "l-bfgs-b", "tnc", "slsqp", "dogleg", "trust-ncg",
                  "trust-krylov", "trust-exact", "trust-constr"}
_USES_HESSP = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}
_USES_HESS = {"dogleg", "trust-exact"}  # these accept only the full matrix


# Methods that recover from a NaN but not from +inf (see the module docstring).
# TNC recovers from neither: it stops at the last finite point, saying so.
_NAN_FOR_UNDEFINED = {"l-bfgs-b"}


def _guarded(target, with_grad: bool, name: str):
    """``target`` with the points where it is undefined reported in the way
    scipy's method ``name`` recovers from."""
    value, slope = (onp.nan, onp.nan) if name in _NAN_FOR_UNDEFINED else (onp.inf, 0.0)

    def guarded(x, *args):
        try:
            out = target(x, *args)
            got, grad = out if with_grad else (out, 0.0)
            if onp.isfinite(got) and onp.isfinite(grad).all():
                return out
        except onp.linalg.LinAlgError:
            pass
        return (value, onp.full_like(x, slope)) if with_grad else value

    return guarded


def minimize(fun, x0, args=(), method: str = "L-BFGS-B", *, jac: bool = True, hess: bool = True,
             compile: bool = True, bounds=None, constraints=(), tol=None, callback=None,
             **options):
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
    compile : bool
        Record ``fun`` and its derivatives once and replay them (fast);
        ``False`` evaluates them afresh at every call.
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

    def ready(compiled):
        # Compiled.fun is the function the tape records: the same derivative, eager.
        return compiled if compile else compiled.fun

    name = method.lower() if isinstance(method, str) else ""
    kwargs = {}
    with_grad = bool(jac) and name in _USES_GRADIENT
    if with_grad:
        kwargs["jac"] = True
        target = ready(compiler.compile_value_and_grad(objective))
    else:
        target = ready(compiler.compile(objective))
    if hess and name in _USES_HESSP:
        hvp = ready(compiler.compile_hvp(objective))
        kwargs["hessp"] = lambda x, p, *args: hvp(x, *args, p)
    elif hess and name in _USES_HESS:
        kwargs["hess"] = ready(compiler.compile(hessian(objective)))
    if callback is not None:
        # scipy calls callback(xk) or, for trust-constr, callback(xk, state).
        kwargs["callback"] = lambda xk, *rest: callback(unflatten(xk))

    # The search probes points where the objective is undefined and is told
    # so (_guarded): numpy's warnings on the way there are noise.
    with onp.errstate(all="ignore"):
        result = scipy.optimize.minimize(_guarded(target, with_grad, name), flat0,
                                         args=tuple(args), method=method, bounds=bounds,
                                         constraints=constraints, tol=tol,
                                         options=options or None, **kwargs)
    if onp.shape(result.get("jac")) == flat0.shape:
        result.jac = unflatten(result.jac)
    result.x = unflatten(result.x)
    return result
