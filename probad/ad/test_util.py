"""Gradient checking against finite differences: ``check_grads`` and ``combo_check``."""
from __future__ import annotations

import functools
import itertools

import numpy as onp

from .core import make_jvp, make_vjp, vspace
from .tracer import getval
from .wrap_util import get_name, unary_to_nary

__all__ = ["check_grads", "combo_check", "check_vjp", "check_jvp", "check_equivalent", "scalar_close"]

EPS, RTOL, ATOL = 1e-6, 1e-5, 1e-6
# Single precision: derivatives computed in float32 are good to some hundred
# ulps (eps = 1.2e-7) once rounding has gone through a few operations.
RTOL_SINGLE, ATOL_SINGLE = 1e-4, 1e-5
RTOL_SCALAR = 1e-6  # scalar_close's relative tolerance, autograd's


def _numerical_jvp(f, x, like, eps=EPS):
    """Central differences along direction ``v``.

    Single-precision points are promoted to double first (a float32 difference
    quotient with step 1e-6 is mostly rounding); the result is cast back to
    the dtypes of ``like``, ``f(x)`` at the original precision.
    """
    def jvp(v):
        wide = _is_single(x)
        x_, v_ = (_map(_widen, x), _map(_widen, v)) if wide else (x, v)
        x_vs = vspace(x_)
        f_pos = f(x_vs.add(x_, x_vs.scalar_mul(v_, eps / 2)))
        f_neg = f(x_vs.add(x_, x_vs.scalar_mul(v_, -eps / 2)))
        f_vs = vspace(f_pos)
        out = f_vs.scalar_mul(f_vs.add(f_pos, f_vs.scalar_mul(f_neg, -1.0)), 1.0 / eps)
        return _map(lambda a, ref: onp.asarray(a, onp.result_type(ref)), out, like) if wide else out
    return jvp


def scalar_close(a, b) -> bool:
    """Whether two scalars agree to 1e-6, absolutely or relative to their sum
    (autograd's test for the inner products of a derivative check)."""
    return abs(a - b) < ATOL or abs(a - b) / abs(a + b) < RTOL_SCALAR


def check_equivalent(x, y, what: str = "values"):
    """Assert that ``x`` and ``y`` (arrays or nests of them) live in the same
    vector space and agree elementwise, within the single-precision tolerance
    if ``x`` is single precision. ``what`` opens the error message."""
    x_vs, y_vs = vspace(x), vspace(y)
    if x_vs != y_vs:
        raise AssertionError(f"{what}: vector spaces differ (VSpace mismatch): {x_vs} vs {y_vs}")
    rtol, atol = (RTOL_SINGLE, ATOL_SINGLE) if _is_single(x) else (RTOL, ATOL)
    x_flat, y_flat = _flat(x), _flat(y)
    if not onp.allclose(x_flat, y_flat, rtol=rtol, atol=atol):
        raise AssertionError(f"{what}:\n  analytic {x_flat}\n  numeric  {y_flat}")


def _map(fn, *nests):
    """``fn`` applied leafwise to nests of tuples/lists/dicts of one structure."""
    first = nests[0]
    if isinstance(first, dict):
        return {k: _map(fn, *(n[k] for n in nests)) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_map(fn, *leaves) for leaves in zip(*nests))
    return fn(*nests)


def _leaves(x):
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in _leaves(x[k])]
    if isinstance(x, (tuple, list)):
        return [a for e in x for a in _leaves(e)]
    return [onp.asarray(getval(x))]


def _is_single(x):
    """Whether any leaf is float32 or complex64 (or narrower)."""
    return any(a.dtype.kind in "fc" and onp.finfo(a.dtype).eps > onp.finfo(onp.float64).eps
               for a in _leaves(x))


def _widen(a):
    dtype = onp.result_type(a)
    return onp.asarray(a, onp.promote_types(dtype, onp.float64)) if dtype.kind in "fc" else a


def _flat(x):
    return onp.concatenate([onp.ravel(a) for a in _leaves(x)] or [onp.zeros(0)])


def check_vjp(f, x, eps=EPS):
    """Check the reverse mode of ``f`` at ``x`` along a random direction."""
    vjp, y = make_vjp(f, x)
    x_vs, y_vs = vspace(x), vspace(y)
    x_v, y_v = x_vs.randn(), y_vs.randn()
    vjp_y = x_vs.covector(vjp(y_vs.covector(y_v)))
    exact = x_vs.inner_prod(x_v, vjp_y)
    numeric = y_vs.inner_prod(y_v, _numerical_jvp(f, x, y, eps)(x_v))
    check_equivalent(exact, numeric, f"Derivative (VJP) check of {get_name(f)} failed with arg {x}")


def check_jvp(f, x, eps=EPS):
    """Check the forward mode of ``f`` at ``x`` along a random direction."""
    v = vspace(x).randn()
    y, exact = make_jvp(f, x)(v)
    numeric = _numerical_jvp(f, x, y, eps)(v)
    check_equivalent(exact, numeric, f"Derivative (JVP) check of {get_name(f)} failed with arg {x}")


def _check_grads(f, x, modes=("fwd", "rev"), order=2, eps=EPS):
    """Check derivatives of ``f`` at ``x`` in the given modes, up to ``order``.

    Higher orders differentiate the derivative itself: forward mode checks the
    JVP as a function of ``(x, v)``, reverse mode the VJP as one of ``(x, g)``.
    """
    if not set(modes) <= {"fwd", "rev"}:
        raise ValueError(f"modes must be a subset of ['fwd', 'rev'], got {modes}")
    if "fwd" in modes:
        check_jvp(f, x, eps)
        if order > 1:
            def jvp_f(x, v):
                return make_jvp(f, x)(v)[1]
            jvp_f.__name__ = f"jvp_{get_name(f)}"
            v = vspace(x).randn()
            check_grads(jvp_f, (0, 1), modes, order - 1, eps=eps)(x, v)
    if "rev" in modes:
        check_vjp(f, x, eps)
        if order > 1:
            def vjp_f(x, g):
                return make_vjp(f, x)[0](g)
            vjp_f.__name__ = f"vjp_{get_name(f)}"
            g = vspace(f(x)).randn()
            check_grads(vjp_f, (0, 1), modes, order - 1, eps=eps)(x, g)


_check_grads_nary = unary_to_nary(_check_grads)


def check_grads(f, argnum=None, modes=("fwd", "rev"), order=2, *, eps=EPS):
    """``check_grads(f, modes=["fwd", "rev"], order=2)(*args)``.

    Compares derivatives of ``f`` with central finite differences along random
    directions, in forward and reverse mode and up to ``order``, with respect
    to ``argnum`` (default: every positional argument). Raises AssertionError.

    At float32 (or complex64) points the derivatives are computed, and must
    stay, in single precision; the finite differences are taken in float64
    and the comparison uses a single-precision tolerance.

    ``eps`` is the finite-difference step (autograd's 1e-6). A function
    computed only to a tolerance ``tol`` (an adaptive ODE solve) has
    differences wrong by about ``tol / eps``: pass a larger step for it.
    """
    if isinstance(argnum, (list, tuple)) and argnum and isinstance(argnum[0], str):
        modes, argnum = argnum, None  # check_grads(f, ["rev"]) reads naturally too

    def checker(*args, **kwargs):
        nums = tuple(range(len(args))) if argnum is None else argnum
        with_kwargs = functools.wraps(f)(lambda *a: f(*a, **kwargs))  # messages name ``f``
        return _check_grads_nary(with_kwargs, nums, modes, order, eps)(*args)

    return checker


def combo_check(fun, *args, **kwargs):
    """``combo_check(fun, argnums, modes, order)(arg values..., kwarg values...)``:
    run ``check_grads`` over every combination of the listed argument values."""
    argnums = args[0] if args else kwargs.pop("argnums", (0,))
    modes = args[1] if len(args) > 1 else kwargs.pop("modes", ("fwd", "rev"))
    order = args[2] if len(args) > 2 else kwargs.pop("order", 2)

    def checker(*arg_options, **kwarg_options):
        kw_keys = list(kwarg_options)
        for combo in itertools.product(*arg_options, *[kwarg_options[k] for k in kw_keys]):
            a = combo[: len(arg_options)]
            kw = dict(zip(kw_keys, combo[len(arg_options):]))
            check_grads(fun, argnums, modes, order)(*a, **kw)

    return checker
