"""``probad.ad.scipy.integrate``: ``odeint`` with adjoint gradients.

Reverse mode uses the adjoint method: the state, its adjoint
``a = dL/dy`` and the accumulated parameter gradient are integrated
backwards from one output time to the previous one, with

    dy/dt = f(y, t, *args),   da/dt = -a^T df/dy,   d(a_args)/dt = -a^T df/dargs,

the vector-Jacobian products coming from :func:`probad.ad.core.make_vjp`
of ``func`` itself. Forward mode integrates the forward sensitivities
``ds/dt = df/dy s + df/dargs dargs`` alongside the state. Both are again
``odeint`` calls whose dynamics are written with this package, so they can
be differentiated in turn (higher derivatives).

Gradients are exact up to the integrator's tolerances: pass tight ``rtol``
and ``atol`` when derivatives must be accurate.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as onp
import scipy.integrate as _si

from ..builtins import DictBox, SequenceBox
from ..core import defjvp_argnum, defvjp_argnum, make_jvp, make_vjp, vspace
from ..misc.flatten import flatten
from ..numpy import numpy_wrapper as anp
from ..numpy.numpy_vjps import match_dtype
from ..tracer import Box, primitive

__all__ = ["odeint", "ODEintError"]

_UNSUPPORTED = {"Dfun", "col_deriv", "full_output", "ml", "mu", "tfirst"}
_FIRST_ARG = 4  # positions in _odeint(func, options, y0, t, *args)


class ODEintError(ArithmeticError):
    """scipy's solver gave up before the last output time (its step limit
    ``mxstep``, a tolerance it cannot meet, ...): the rows it returns are not
    a solution. Raised by the solve of the values and by those of their
    derivatives (the adjoint and sensitivity systems) alike, so a failed solve
    never yields a wrong gradient; ``probad.infer`` counts such a point as one
    of infinite energy, a rejected proposal."""


# scipy's messages for its two successful return states (istate 2 and 1).
_SUCCESS = {"Integration successful.", "Nothing was done; the integration time was 0."}


@primitive
def _odeint(func, options, y0, t, *args):
    def rhs(y, time):
        return onp.asarray(func(y, time, *args), dtype=float)

    # scipy warns (ODEintWarning) and returns garbage rows on failure; the
    # message in full_output says whether it failed, and the error says so.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _si.ODEintWarning)
        y, info = _si.odeint(rhs, y0, t, full_output=True, **options)
    if info["message"] not in _SUCCESS:
        raise ODEintError(
            f"odeint: the solver failed between t = {t[0]:.6g} and {t[-1]:.6g}: "
            f"{info['message']} (mxstep={options.get('mxstep', 500)}, "
            f"rtol={options.get('rtol', 1.49012e-8):.3g}, atol={options.get('atol', 1.49012e-8):.3g}). "
            "Raise mxstep, loosen rtol/atol, or check the system for stiffness or blow-up "
            "at these parameters")
    return y


_odeint.may_raise = True  # the compiler keeps a solve whose result is unused: it may fail


def _flatten(arrays):
    if not arrays:
        return onp.zeros(0)
    return anp.concatenate([anp.ravel(a) for a in arrays])


def _unflatten(flat, like):
    out, start = [], 0
    for a in like:
        size = onp.size(a)
        out.append(anp.reshape(flat[start:start + size], onp.shape(a)))
        start += size
    return out


def _transposed_jacobians(func, y, time, args, a):
    """``f``, ``a^T df/dy`` and the flattened ``a^T df/dargs``."""
    vjp, f = make_vjp(lambda z: func(z[0], time, *z[1]), (y, tuple(args)))
    g_y, g_args = vjp(a)
    return f, g_y, _flatten(list(g_args))


class _AdjointCache:
    """One backward pass serves every argument: the engine asks for the VJP
    of ``y0``, ``t`` and each arg separately with the same cotangent."""

    key = None
    value = None


def _adjoint(ans, func, options, y0, t, args, g):
    """Cotangents ``(g_y0, g_t, g_args)`` of the output cotangent ``g``."""
    if _AdjointCache.key is not None and _AdjointCache.key[0] is ans and _AdjointCache.key[1] is g:
        return _AdjointCache.value
    n = onp.shape(y0)[0]
    n_times = onp.shape(t)[0]

    def dynamics(z, time, *args):
        f, g_y, g_args = _transposed_jacobians(func, z[:n], time, args, z[n:2 * n])
        return anp.concatenate([f, -g_y, -g_args])

    a = g[n_times - 1]
    a_args = onp.zeros(sum(onp.size(p) for p in args))
    g_t = [None] * n_times
    for i in range(n_times - 1, 0, -1):
        g_t[i] = anp.sum(func(ans[i], t[i], *args) * g[i])
        z = _odeint(dynamics, options, anp.concatenate([ans[i], a, a_args]), t[onp.array([i, i - 1])], *args)
        a, a_args = z[1, n:2 * n], z[1, 2 * n:]
        if i > 1:
            a = a + g[i - 1]
    if n_times > 1:
        # Moving t0 shifts the start of every later trajectory: -a . f(y0, t0).
        g_t[0] = -anp.sum(a * func(y0, t[0], *args))
        a = a + g[0]
    else:
        g_t[0] = onp.zeros(())
    out = (a, anp.stack(g_t), _unflatten(a_args, args))
    _AdjointCache.key, _AdjointCache.value = (ans, g), out
    return out


def _odeint_vjp(argnum, ans, func, options, y0, t, *args):
    def vjp(g):
        g_y0, g_t, g_args = _adjoint(ans, func, options, y0, t, args, g)
        # scipy integrates in float64; each cotangent takes its argument's dtype.
        return match_dtype((g_y0, g_t, *g_args)[argnum - 2], (y0, t, *args)[argnum - 2])

    return vjp


def _sensitivities(func, options, y0, t, args, s0, arg_tangents):
    """Integrate the state with its forward sensitivity ``s(t0) = s0``."""
    n, n_args = onp.shape(y0)[0], len(args)

    def dynamics(z, time, *params):
        params, tangents = params[:n_args], params[n_args:]
        f, df = make_jvp(lambda w: func(w[0], time, *w[1]), (z[:n], tuple(params)))(
            (z[n:], tuple(tangents)))
        return anp.concatenate([f, df])

    z = _odeint(dynamics, options, anp.concatenate([y0, s0]), t, *args, *arg_tangents)
    return z[:, n:]


def _odeint_jvp(argnum, g, ans, func, options, y0, t, *args):
    zero_tangents = [vspace(p).zeros() for p in args]
    if argnum == 2:
        return _sensitivities(func, options, y0, t, args, g, zero_tangents)
    if argnum == 3:
        # Output i moves with f(y_i, t_i) dt_i; moving t0 starts every
        # trajectory from y0 displaced by -f(y0, t0) dt0.
        s0 = -func(y0, t[0], *args) * g[0]
        slopes = anp.stack([func(ans[i], t[i], *args) for i in range(onp.shape(t)[0])])
        return _sensitivities(func, options, y0, t, args, s0, zero_tangents) \
            + slopes * anp.expand_dims(g, -1)
    tangents = list(zero_tangents)
    tangents[argnum - _FIRST_ARG] = g
    return _sensitivities(func, options, y0, t, args, onp.zeros(onp.shape(y0)), tangents)


defvjp_argnum(_odeint, _odeint_vjp)
defjvp_argnum(_odeint, _odeint_jvp)


def odeint(func: Callable, y0, t, args=(), **options):
    """Integrate ``dy/dt = func(y, t, *args)``, as ``scipy.integrate.odeint``.

    Parameters
    ----------
    func : callable ``func(y, t, *args) -> dy/dt``
        Written with ``probad.ad.numpy`` so that it can be differentiated.
    y0 : (n,) array_like or scalar
        Initial state (differentiable); a scalar is a state of one element,
        as in scipy.
    t : (T,) array_like
        Output times, ``t[0]`` the initial time (differentiable).
    args : tuple of arrays or floats, or of nests of them
        Extra arguments of ``func`` (each differentiable). Tuples, lists and
        dicts of arrays (a network's parameters) are passed to ``func`` as
        they are.
    **options
        Passed to scipy's ``odeint`` for every integration (``rtol``,
        ``atol``, ``mxstep``, ``hmax``, ...). ``Dfun``, ``col_deriv``,
        ``full_output``, ``ml``, ``mu`` and ``tfirst`` are not accepted.

    Returns
    -------
    (T, n) float64 array
        The state at each output time.

    Raises
    ------
    ODEintError
        When scipy's solver gives up (for the values, or for their
        derivatives when they are taken), instead of its ``ODEintWarning``
        and a result that is not a solution.
    """
    bad = _UNSUPPORTED.intersection(options)
    if bad:
        note = ("; a failed solve raises ODEintError with scipy's message, so full_output is "
                "not needed") if "full_output" in bad else ""
        raise TypeError(f"odeint: unsupported options {sorted(bad)}{note}")
    if isinstance(args, SequenceBox):  # a traced tuple (``probad.ad.tuple``) of arguments
        args = tuple(args)
    elif not isinstance(args, tuple):
        args = (args,)
    if any(isinstance(a, (tuple, list, dict, SequenceBox, DictBox)) for a in args):
        # Nested arguments (a network's list of (W, b) pairs): the integrator
        # sees them as one flat vector, which ``func`` gets back as the nest.
        flat, unflatten = flatten(args)
        return odeint(lambda y, time, flat: func(y, time, *unflatten(flat)), y0, t, (flat,), **options)
    # Plain Python numbers become arrays so that every traced arg has a shape.
    args = tuple(a if isinstance(a, Box) else onp.asarray(a) for a in args)
    return _odeint(func, options, anp.atleast_1d(y0), t, *args)
