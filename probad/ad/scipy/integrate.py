"""``probad.ad.scipy.integrate``: ``odeint`` with adjoint gradients.

Reverse mode uses the adjoint method: the state, its adjoint
``a = dL/dy`` and the accumulated parameter gradient are integrated
backwards from one output time to the previous one, with

    dy/dt = f(y, t, p),   da/dt = -a^T df/dy,   d(a_p)/dt = -a^T df/dp,

the vector-Jacobian products coming from :func:`probad.ad.core.make_vjp`
of ``func`` itself. Forward mode integrates the forward sensitivities
``ds/dt = df/dy s + df/dp dp`` alongside the state. Both are again solves
of systems written with this package, so they can be differentiated in turn
(higher derivatives).

Two choices make ODE models compile and their gradients cheap:

- Every differentiable input of a solve (``y0``, the output times when they
  are traced, the traced ``args``) travels in one flat vector, the only
  differentiable argument of the primitive. The backward pass asks for one
  VJP, so the adjoint system is solved once without a cache between the
  VJPs of separate arguments (such a cache kept traced values after
  returning, which made every model with an ODE run eagerly).
- Each system (``func``, its adjoint, its forward sensitivities, and for BDF
  their Jacobians) is recorded once with :func:`probad.ad.compiler.compile`
  and replayed at each of the hundreds of evaluations a solve asks for,
  instead of being traced again at every one.

Gradients are exact up to the integrator's tolerances: pass tight ``rtol``
and ``atol`` when derivatives must be accurate.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as onp
import scipy.integrate as _si

from ..builtins import DictBox, SequenceBox
from ..compiler.function import compile as _compile
from ..compiler.function import signature
from ..core import defjvp, defprimitive, defvjp, make_jvp, make_vjp
from ..differential_operators import jacobian
from ..misc.flatten import flatten
from ..numpy import numpy_wrapper as anp
from ..numpy.numpy_vjps import match_dtype
from ..tracer import Box, primitive

__all__ = ["odeint", "ODEintError"]

_METHODS = ("lsoda", "bdf")
_UNSUPPORTED = {"Dfun", "col_deriv", "full_output", "ml", "mu", "tfirst"}
_BDF_OPTIONS = {"rtol", "atol", "mxstep", "h0", "hmax"}
_DEFAULT_TOL = 1.49012e-8  # scipy odeint's rtol and atol, for both methods
_DEFAULT_MXSTEP = 500  # scipy odeint's step limit per output interval, for both methods
# How each system's recorded tape is replayed: natively where the compiler's
# cost model says it pays (a small right-hand side: no Python call per
# primitive), by numpy otherwise (long vectors), as pb.potential does.
_BACKEND = "auto"


class ODEintError(ArithmeticError):
    """scipy's solver gave up before the last output time (its step limit
    ``mxstep``, a tolerance it cannot meet, ...): the rows it returns are not
    a solution. Raised by the solve of the values and by those of their
    derivatives (the adjoint and sensitivity systems) alike, so a failed solve
    never yields a wrong gradient; ``probad.infer`` counts such a point as one
    of infinite energy, a rejected proposal."""


# scipy's messages for its two successful return states (istate 2 and 1).
_SUCCESS = {"Integration successful.", "Nothing was done; the integration time was 0."}


class _System:
    """An ODE right-hand side ``fun(y, time, p, consts) -> dy/dt`` on states of
    ``n`` elements: ``p`` a flat vector of the differentiable parameters,
    ``consts`` a tuple of constant arrays.

    ``rhs`` and ``jac`` (``df/dy``, for BDF) are compiled on first use, and the
    adjoint and sensitivity systems derived from this one are built once and
    kept: a model compiled once holds one ``_System`` in its tape, so each
    system is recorded once for all the solves of all its replays.
    """

    def __init__(self, fun: Callable, n: int, name: str):
        fun.__name__ = fun.__qualname__ = name  # compile warnings name the user's function
        self.fun = fun
        self.n = n
        self.name = name
        self.rhs = _compile(fun, backend=_BACKEND)
        self.checked = False  # whether one eager evaluation has passed _check_output
        self._jac = None
        self._derived: dict = {}

    @property
    def jac(self):
        """The compiled Jacobian ``jac(y, time, p, consts) = df/dy``, (n, n)."""
        if self._jac is None:
            fun = self.fun

            def jac(y, time, p, consts):
                return jacobian(lambda state: fun(state, time, p, consts))(y)

            self._jac = _compile(_named(jac, f"jacobian_of_{self.name}"), backend=_BACKEND)
        return self._jac

    def adjoint(self, n_p: int) -> "_System":
        """The system of ``z = (y, a, a_p)``: ``(f, -a^T df/dy, -a^T df/dp)``."""
        key = ("adjoint", n_p)
        if key not in self._derived:
            fun, n = self.fun, self.n

            def adjoint(z, time, p, consts):
                vjp, f = make_vjp(_of_flat(fun, n, time, consts), anp.concatenate([z[:n], p]))
                return anp.concatenate([f, -vjp(z[n:2 * n])])

            self._derived[key] = _System(adjoint, 2 * n + n_p, f"adjoint_of_{self.name}")
        return self._derived[key]

    def forward_jacobian(self, n_p: int) -> "_System":
        """The system of ``z = (y, S)``, ``S = dy/d(y0, p)`` an (n, n + n_p)
        matrix starting at ``[I 0]``: ``(f, df/dy S + [0 df/dp])``."""
        key = ("jacobian", n_p)
        if key not in self._derived:
            fun, n = self.fun, self.n

            def forward_jacobian(z, time, p, consts):
                vjp, f = make_vjp(_of_flat(fun, n, time, consts), anp.concatenate([z[:n], p]))
                rows = anp.stack([vjp(e) for e in onp.eye(n)])  # [df/dy df/dp]
                s = anp.reshape(z[n:], (n, n + n_p))
                ds = anp.dot(rows[:, :n], s) + anp.concatenate([onp.zeros((n, n)), rows[:, n:]], axis=1)
                return anp.concatenate([f, anp.ravel(ds)])

            self._derived[key] = _System(forward_jacobian, n * (1 + n + n_p),
                                         f"forward_jacobian_of_{self.name}")
        return self._derived[key]

    def sensitivity(self, n_p: int) -> "_System":
        """The system of ``z = (y, s)`` with parameters ``(p, dp)``:
        ``(f, df/dy s + df/dp dp)``."""
        key = ("sensitivity", n_p)
        if key not in self._derived:
            fun, n = self.fun, self.n

            def sensitivity(z, time, p_dp, consts):
                f, df = make_jvp(_of_flat(fun, n, time, consts),
                                 anp.concatenate([z[:n], p_dp[:n_p]]))(
                    anp.concatenate([z[n:], p_dp[n_p:]]))
                return anp.concatenate([f, df])

            self._derived[key] = _System(sensitivity, 2 * self.n, f"sensitivity_of_{self.name}")
        return self._derived[key]


def _of_flat(fun: Callable, n: int, time, consts) -> Callable:
    """``fun`` at ``time`` as a function of one flat input ``(y, p)``, ``y`` its
    first ``n`` entries: derived systems differentiate that, not a tuple, so
    their recorded tapes hold no container primitives and replay natively."""
    return lambda yp: fun(yp[:n], time, yp[n:], consts)


def _evaluator(compiled, p, consts) -> Callable:
    """``(y, time) -> compiled(y, time, p, consts)`` for the evaluations of
    one solve, where only ``y`` and ``time`` change: it replays the tape of
    the last call directly, without building the cache key of the constant
    arguments again (a third of an evaluation's cost on a small system), and
    goes through ``compiled`` (which checks the key and retraces) whenever
    that tape's guards fail."""
    tape = rest = None

    def evaluate(y, time):
        nonlocal tape, rest
        time = float(time)
        if tape is not None:
            try:
                return tape.replay(y, time, *rest)
            except Exception:  # a failed guard, or an error the function may handle itself
                pass
        out = compiled(y, time, p, consts)
        key, leaves = signature((y, time, p, consts), {})
        tapes = compiled.tapes.get(key)
        tape, rest = (tapes[0], leaves[2:]) if tapes else (None, None)
        return out

    return evaluate


def _named(fun, name):
    fun.__name__ = fun.__qualname__ = name
    return fun


class _Solver:
    """A method (``"lsoda"`` or ``"bdf"``) and its options: how every solve of
    one ``odeint`` call, and of its derivatives, is done."""

    def __init__(self, method: str, adjoint: bool, options: dict):
        self.method = method
        self.adjoint = adjoint  # reverse mode by the adjoint system, or by forward sensitivities
        self.options = options

    def solve(self, system: _System, y0, t, p, consts) -> onp.ndarray:
        """The (T, n) states at the times ``t``; raises ODEintError on failure."""
        if not system.checked:
            _check_output(system.fun(y0, t[0], p, consts), system.n, system.name)
            system.checked = True
        # An overflow inside the right-hand side is the solver's business: it
        # shrinks the step or fails, and a failure is raised below.
        with onp.errstate(all="ignore"):
            if self.method == "bdf":
                return self._bdf(system, y0, t, p, consts)
            f = _evaluator(system.rhs, p, consts)
            # scipy warns (ODEintWarning) and returns garbage rows on failure;
            # the message in full_output says whether it failed.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _si.ODEintWarning)
                y, info = _si.odeint(f, y0, t, full_output=True, **self.options)
        if info["message"] not in _SUCCESS:
            self._fail(t, info["message"])
        return y

    def _bdf(self, system, y0, t, p, consts):
        """scipy's BDF stepped by hand, so that ``mxstep`` bounds the steps
        per output interval as in LSODA; outputs from its dense output."""
        options = self.options
        mxstep = options.get("mxstep", _DEFAULT_MXSTEP)
        steps_between = onp.diff(t)
        if (steps_between < 0).any() and (steps_between > 0).any():
            raise ValueError("odeint (method='bdf'): the output times t must be monotonic, "
                             f"got {t}")
        out = onp.empty((len(t), len(y0)))
        out[0] = y0
        k = 1
        while k < len(t) and t[k] == t[0]:
            out[k] = y0
            k += 1
        if k == len(t):
            return out
        rhs, jac = _evaluator(system.rhs, p, consts), _evaluator(system.jac, p, consts)
        solver = _si.BDF(lambda time, y: rhs(y, time), t[0], y0, t[-1],
                         rtol=options.get("rtol", _DEFAULT_TOL), atol=options.get("atol", _DEFAULT_TOL),
                         jac=lambda time, y: jac(y, time),
                         first_step=options.get("h0") or None,
                         max_step=options.get("hmax") or math.inf)
        steps = 0
        while k < len(t):
            message = solver.step()
            if solver.status == "failed":
                self._fail(t, message)
            steps += 1
            if (t[k] - solver.t) * solver.direction <= 0:
                dense = solver.dense_output()
                while k < len(t) and (t[k] - solver.t) * solver.direction <= 0:
                    out[k] = dense(t[k])
                    k += 1
                steps = 0
            elif steps >= mxstep:
                self._fail(t, f"Excess work done on this call: {mxstep} steps without reaching "
                              f"t = {t[k]:.6g} (at t = {solver.t:.6g})")
        return out

    def _fail(self, t, message):
        options = self.options
        raise ODEintError(
            f"odeint (method={self.method!r}): the solver failed between t = {t[0]:.6g} and "
            f"{t[-1]:.6g}: {message} (mxstep={options.get('mxstep', _DEFAULT_MXSTEP)}, "
            f"rtol={options.get('rtol', _DEFAULT_TOL):.3g}, atol={options.get('atol', _DEFAULT_TOL):.3g}). "
            "Raise mxstep, loosen rtol/atol, use method='bdf' for a stiff system, or check the "
            "system for blow-up at these parameters")


def _split(n: int, times, x):
    """``(y0, t, p)`` of a solve's flat input ``x`` (see :func:`_solve`)."""
    if isinstance(times, int):
        return x[:n], x[n:n + times], x[n + times:]
    return x[:n], times, x[n:]


def _solve_raw(system: _System, solver: _Solver, times, x, consts):
    x = onp.asarray(x, dtype=float)
    y0, t, p = _split(system.n, times, x)
    return solver.solve(system, y0, t, p, consts)


#: One solve: ``x`` is ``(y0, t, p)`` flattened when the output times are
#: traced (``times`` is then their number), ``(y0, p)`` when they are not
#: (``times`` is then the times themselves).
_solve = primitive(_solve_raw, name="odeint")
# may_raise: the compiler keeps a solve whose result is unused, as it may fail.
# native="numpy" (compiler.native.NUMPY_ONLY): scipy's solver runs in numpy by
# design, so backend="auto" keeps such a tape on the numpy replay without a word.
defprimitive(_solve, may_raise=True, native="numpy")


def _run(system: _System, solver: _Solver, y0, t, p, consts):
    """Solve ``system`` from ``y0`` at times ``t`` with parameters ``p``."""
    if isinstance(t, Box):
        return _solve(system, solver, onp.shape(t)[0], anp.concatenate([y0, t, p]), consts)
    return _solve(system, solver, onp.asarray(t, dtype=float), anp.concatenate([y0, p]), consts)


def _solve_vjp(ans, system, solver, times, x, consts):
    def vjp(g):
        y0, t, p = _split(system.n, times, x)
        cotangents = _adjoint_cotangents if solver.adjoint else _forward_cotangents
        g_y0, g_p = cotangents(system, solver, ans, g, y0, t, p, consts)
        if isinstance(times, int):
            parts = [g_y0, _time_cotangent(system, ans, g, g_y0, y0, t, p, consts), g_p]
        else:
            parts = [g_y0, g_p]
        # scipy integrates in float64; the cotangent takes the input's dtype.
        return match_dtype(anp.concatenate(parts), x)

    return vjp


def _adjoint_cotangents(system, solver, ans, g, y0, t, p, consts):
    """``(g_y0, g_p)`` from the adjoint system, integrated backwards from
    each output time to the previous one."""
    n, n_times = system.n, onp.shape(ans)[0]
    adjoint = system.adjoint(onp.size(p))
    a = g[n_times - 1]
    a_p = onp.zeros(onp.size(p))
    for i in range(n_times - 1, 0, -1):
        z = _run(adjoint, solver, anp.concatenate([ans[i], a, a_p]), t[onp.array([i, i - 1])],
                 p, consts)
        a, a_p = z[1, n:2 * n], z[1, 2 * n:]
        a = a + g[i - 1]
    return a, a_p


def _forward_cotangents(system, solver, ans, g, y0, t, p, consts):
    """``(g_y0, g_p)`` from the forward sensitivities ``dy/d(y0, p)``,
    integrated forwards with the state: stable where the state's backward
    integration in the adjoint is not (stiff systems)."""
    n, n_p = system.n, onp.size(p)
    start = onp.concatenate([onp.eye(n), onp.zeros((n, n_p))], axis=1).ravel()
    z = _run(system.forward_jacobian(n_p), solver, anp.concatenate([y0, start]), t, p, consts)
    sensitivities = anp.reshape(z[:, n:], (onp.shape(ans)[0], n, n + n_p))
    g_x = anp.sum(anp.expand_dims(g, -1) * sensitivities, axis=(0, 1))
    return g_x[:n], g_x[n:]


def _time_cotangent(system, ans, g, g_y0, y0, t, p, consts):
    """The cotangent of the output times: output i moves with
    ``f(y_i, t_i) dt_i``; moving ``t0`` shifts the start of every later
    trajectory, by ``-f(y0, t0) dt0`` (not ``y_0 = y0`` itself)."""
    n_times = onp.shape(ans)[0]
    if n_times == 1:
        return onp.zeros(1)
    later = g_y0 - g[0]  # the part of g_y0 from outputs after t0
    g_t = [-anp.sum(later * system.fun(y0, t[0], p, consts))]
    g_t += [anp.sum(system.fun(ans[i], t[i], p, consts) * g[i]) for i in range(1, n_times)]
    return anp.stack(g_t)


def _solve_jvp(g, ans, system, solver, times, x, consts):
    n = system.n
    y0, t, p = _split(n, times, x)
    dy0, dt, dp = _split(n, times, g)
    traced_t = isinstance(times, int)
    if traced_t:
        # Moving t0 starts every trajectory from y0 displaced by -f(y0, t0) dt0.
        dy0 = dy0 - system.fun(y0, t[0], p, consts) * dt[0]
    z = _run(system.sensitivity(onp.size(p)), solver, anp.concatenate([y0, dy0]), t,
             anp.concatenate([p, dp]), consts)
    out = z[:, n:]
    if traced_t:
        # Output i moves with f(y_i, t_i) dt_i.
        slopes = anp.stack([system.fun(ans[i], t[i], p, consts) for i in range(onp.shape(ans)[0])])
        out = out + slopes * anp.expand_dims(dt, -1)
    return out


defvjp(_solve, _solve_vjp, argnums=[3])
defjvp(_solve, _solve_jvp, argnums=[3])


def _user_system(func: Callable, n: int, traced: tuple, shapes: list) -> _System:
    """``func(y, t, *args)`` as a :class:`_System`: the traced args come
    from ``p`` (in ``shapes``), the others from ``consts``, in their order."""
    def fun(y, time, p, consts):
        params, start, constants = [], 0, iter(consts)
        for shape in shapes:
            size = math.prod(shape)
            params.append(anp.reshape(p[start:start + size], shape))
            start += size
        params = iter(params)
        out = func(y, time, *(next(params) if is_traced else next(constants) for is_traced in traced))
        if isinstance(out, (list, tuple)):
            return anp.stack(out)
        # scipy takes a scalar dy/dt for a state of one element; so do we.
        return anp.reshape(out, (1,)) if n == 1 and onp.ndim(out) == 0 else out

    return _System(fun, n, getattr(func, "__name__", None) or type(func).__name__)


def _check_output(out, n: int, name: str) -> None:
    """A clear error for the two ways a right-hand side evaluated on plain
    arrays can be unusable: a traced result (``func`` closes over a traced
    parameter instead of taking it in ``args``), or a wrong shape."""
    if isinstance(out, Box):
        raise TypeError(
            f"odeint: {name} returns a value that depends on a traced "
            "variable it closes over (a model parameter, say); the solver cannot differentiate "
            "through that. Pass every parameter func uses through odeint's args: "
            "odeint(func, y0, t, args=(k, ...)) calls func(y, t, k, ...)")
    if onp.shape(out) != (n,):
        raise ValueError(
            f"odeint: {name} returns dy/dt of shape {onp.shape(out)} "
            f"for a state of shape ({n},); it must return one derivative per state element")


def odeint(func: Callable, y0, t, args=(), *, method: str = "lsoda", adjoint: bool | None = None,
           **options):
    """Integrate ``dy/dt = func(y, t, *args)``, as ``scipy.integrate.odeint``.

    Parameters
    ----------
    func : callable ``func(y, t, *args) -> dy/dt``
        Written with ``probad.ad.numpy`` so that it can be differentiated. It
        is recorded once per solve (a model compiled by ``pb.potential``
        records it once for good) and replayed at every step, so the values
        it closes over are read once: pass anything that changes, and every
        parameter to differentiate, through ``args``. A Python decision on
        ``y`` or ``t`` (``if t < 1``) is a guard of the recording, recorded
        again for each new branch; ``math.sin(t)`` or ``float(t)`` makes every
        value of ``t`` a new branch, so after ``max_tapes`` of them ``func``
        runs uncompiled (correct, slower, with one ``CompileWarning``): use
        ``probad.ad.numpy.sin(t)``.
    y0 : (n,) array_like or scalar
        Initial state (differentiable); a scalar is a state of one element,
        as in scipy.
    t : (T,) array_like
        Output times, ``t[0]`` the initial time (differentiable).
    args : tuple of arrays or floats, or of nests of them
        Extra arguments of ``func`` (each differentiable). Tuples, lists and
        dicts of arrays (a network's parameters) are passed to ``func`` as
        they are.
    method : {"lsoda", "bdf"}
        ``"lsoda"`` (the default): scipy's ``odeint``, which switches between
        Adams and BDF steps as the system turns stiff or not. ``"bdf"``:
        scipy's variable-order BDF (as Stan's ``ode_bdf``) with the exact
        Jacobian ``df/dy`` from the recorded ``func``, for stiff systems.
        Derivatives are solved with the same method.
    adjoint : bool, optional
        How reverse mode (``grad``) is computed. ``True``: the adjoint
        system, integrated backwards between output times along with the
        state; its cost barely grows with the number of parameters. ``False``:
        the forward sensitivities ``dy/d(y0, args)``, integrated forwards
        with the state, one column per element of ``y0`` and of the traced
        ``args``; the stable choice for stiff systems, whose state cannot be
        integrated backwards, and as Stan's ``ode_bdf`` does. Default: True
        for ``"lsoda"``, False for ``"bdf"``. Forward mode always integrates
        forward sensitivities.
    **options
        For ``"lsoda"``, passed to scipy's ``odeint`` for every integration
        (``rtol``, ``atol``, ``mxstep``, ``hmax``, ...); ``Dfun``,
        ``col_deriv``, ``full_output``, ``ml``, ``mu`` and ``tfirst`` are not
        accepted. For ``"bdf"``: ``rtol`` and ``atol`` (default 1.49012e-8
        as for LSODA), ``mxstep`` (most steps between two output times,
        default 500), ``h0`` (first step) and ``hmax`` (largest step).

    Returns
    -------
    (T, n) float64 array
        The state at each output time.

    Raises
    ------
    ODEintError
        When the solver gives up (for the values, or for their derivatives
        when they are taken), instead of scipy's ``ODEintWarning`` and a
        result that is not a solution.
    """
    if method not in _METHODS:
        raise ValueError(f"odeint: method must be one of {_METHODS}, got {method!r}")
    bad = _UNSUPPORTED.intersection(options) if method == "lsoda" else set(options) - _BDF_OPTIONS
    if bad:
        note = ("; a failed solve raises ODEintError with scipy's message, so full_output is "
                "not needed") if "full_output" in bad else ""
        if method == "bdf":
            note = f"; method='bdf' takes {sorted(_BDF_OPTIONS)}"
        raise TypeError(f"odeint: unsupported options {sorted(bad)}{note}")
    if isinstance(args, SequenceBox):  # a traced tuple (``probad.ad.tuple``) of arguments
        args = tuple(args)
    elif not isinstance(args, tuple):
        args = (args,)
    if any(isinstance(a, (tuple, list, dict, SequenceBox, DictBox)) for a in args):
        # Nested arguments (a network's list of (W, b) pairs): the integrator
        # sees them as one flat vector, which ``func`` gets back as the nest.
        flat, unflatten = flatten(args)
        name = getattr(func, "__name__", None) or type(func).__name__
        return odeint(_named(lambda y, time, flat: func(y, time, *unflatten(flat)), name),
                      y0, t, (flat,), method=method, **options)
    # Plain Python numbers become arrays so that every traced arg has a shape.
    args = tuple(a if isinstance(a, Box) else onp.asarray(a) for a in args)
    traced = tuple(isinstance(a, Box) for a in args)
    params = [a for a, is_traced in zip(args, traced) if is_traced]
    y0 = anp.atleast_1d(y0)
    system = _user_system(func, onp.shape(y0)[0], traced, [onp.shape(a) for a in params])
    p = anp.concatenate([anp.ravel(a) for a in params]) if params else onp.zeros(0)
    # scipy integrates in float64: constants in lower precision are widened
    # once here (the native replay of func takes float64 inputs).
    consts = tuple(a.astype(onp.float64) if a.dtype.kind == "f" and a.dtype != onp.float64 else a
                   for a, is_traced in zip(args, traced) if not is_traced)
    solver = _Solver(method, method == "lsoda" if adjoint is None else bool(adjoint), options)
    return _run(system, solver, y0, t, p, consts)
