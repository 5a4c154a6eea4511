"""NUTS and static HMC transitions in compiled code, for native potentials.

:mod:`probad.infer.kernels` is the readable reference: every leapfrog step
returns to Python, which costs microseconds a step whatever the model. When the
potential is native (``pot.native`` is not None: an object with a numba
``@njit`` function ``fn(q, grad_out, prog) -> U`` and its data ``prog``), a
whole transition here is one call into machine code: leapfrog, U-turn checks,
multinomial sampling and divergence detection, as nutpie does in Rust.

It is the same algorithm with the same random stream as the reference kernel:
the same draws of the same generator in the same order, the same floating-point
operations in the same order (numpy's and numba's BLAS do the dot products).
Given one state, step size, metric and generator state, both kernels make the
same tree decisions and return the same next state; the tests check it.

Where the reference recurses (``build_tree``), this module walks the leaves of
a subtree in order and merges two finished halves of equal depth as soon as
the right one is complete, which is the reference's post-order: the random
draws and U-turn checks happen in the same order, and an invalid half stops
the build at the same leaf.

A native potential returns NaN to say that a guard of its tape failed and the
Python potential must be traced again (or that it met its first rejected
point of a kind, which Python then evaluates and describes). The transition is then abandoned, the
generator put back as it was, and the caller runs the reference kernel on the
Python potential instead (same draws, so the chain does not change).
"""

import ctypes
import math
from typing import Callable

import numpy as onp
from numba import njit, typeof, types
from numba.core import cgutils
from numba.experimental.function_type import _get_jit_address
from numba.extending import intrinsic, overload
# numba's own implementations of numpy's generator methods, which draw exactly
# what numpy draws from a bit generator; tests check it against numpy.
from numba.np.random.distributions import random_standard_normal
from numba.np.random.generator_core import next_double

import probad.ad.compiler.native_cache  # noqa: F401  (compiled code goes to the user's cache)
from probad.infer import kernels

#: The modules whose code numba compiles into this module's cached functions
#: (kernels' scalar helpers): editing one recompiles them, editing any other
#: module (the MCMC driver next door) does not. See native_cache.
NUMBA_CACHE_DEPENDS = ("probad.infer.kernels",)

# Outcomes: of a transition, _DONE or _RETRACE; of a subtree, _VALID, _INVALID or _RETRACE.
_DONE, _RETRACE, _VALID, _INVALID = range(4)
# Where a transition's result tuple holds its number of leapfrog steps.
_N_STEPS = 7

# The reference's scalar helpers, compiled as they are: one definition of each rule.
_logaddexp = njit(cache=True)(kernels._logaddexp)
_no_u_turn = njit(cache=True)(kernels._no_u_turn)


# ---------------------------------------------------------------- numba plumbing


@intrinsic
def _bit_generator(typingctx, handle):
    """Numba's view of a numpy bit generator from the raw pointers in ``handle``.

    Passing a ``numpy.random.Generator`` into a compiled function costs ~6 us
    a call (numba looks its pointers up through ctypes every time); the
    pointers do not change, so :class:`NativeKernel` reads them once.
    ``handle`` starts with ``[state, next_uint64, next_uint32, next_double]``
    (:func:`_bit_generator_handle`).
    """
    bitgen_type = types.NumPyRandomBitGeneratorType("bit_generator")

    def codegen(context, builder, signature, args):
        handle_array = context.make_array(signature.args[0])(context, builder, args[0])
        ptrs = [builder.load(cgutils.gep(builder, handle_array.data, i)) for i in range(4)]
        bitgen = cgutils.create_struct_proxy(bitgen_type)(context, builder)
        bitgen.state_address = ptrs[0]
        bitgen.state = ptrs[0]
        bitgen.fnptr_next_uint64 = ptrs[1]
        bitgen.fnptr_next_uint32 = ptrs[2]
        bitgen.fnptr_next_double = ptrs[3]
        return bitgen._getvalue()

    return bitgen_type(handle), codegen


#: The bit generators whose state :func:`_save_generator` copies as raw bytes:
#: their ``pcg64_state`` struct is a pointer to the 128-bit state and increment
#: (32 bytes), then ``has_uint32`` and ``uinteger``, the buffered half of a
#: 64-bit draw (8 bytes). Others are saved through ``bit_generator.state``.
_BYTE_SAVED = (onp.random.PCG64, onp.random.PCG64DXSM)
# Entries of a handle after the four pointers of :func:`_bit_generator`.
_SAVE_TO, _REGION_A, _SIZE_A, _REGION_B, _SIZE_B = range(4, 9)


def _bit_generator_handle(rng: onp.random.Generator) -> tuple[onp.ndarray, onp.ndarray | None]:
    """``(handle, save buffer)``: the handle of :func:`_bit_generator`, then, for a
    bit generator of :data:`_BYTE_SAVED`, where its state lies and where
    :func:`_save_generator` keeps a copy (the buffer, which the caller keeps
    alive); sizes 0 otherwise."""
    bit_generator = rng.bit_generator
    interface = bit_generator.ctypes
    pointers = [interface.state.value] + [
        ctypes.cast(getattr(interface, name), ctypes.c_void_p).value
        for name in ("next_uint64", "next_uint32", "next_double")]
    buffer = None
    regions = [0, 0, 0, 0, 0]
    if type(bit_generator) in _BYTE_SAVED:
        struct = interface.state.value
        buffer = onp.empty(40, dtype=onp.uint8)
        regions = [buffer.ctypes.data, ctypes.c_void_p.from_address(struct).value, 32,
                   struct + ctypes.sizeof(ctypes.c_void_p), 8]
    return onp.array(pointers + regions, dtype=onp.uint64), buffer


@intrinsic
def _copy_memory(typingctx, destination, source, size):
    """``memcpy(destination, source, size)`` on raw addresses."""

    def codegen(context, builder, signature, args):
        cgutils.raw_memcpy(builder, builder.inttoptr(args[0], cgutils.voidptr_t),
                           builder.inttoptr(args[1], cgutils.voidptr_t), args[2], 1)
        return context.get_dummy_value()

    return types.void(destination, source, size), codegen


@njit(cache=True, nogil=True)
def _save_generator(handle):
    """Copy the generator's state aside (a bit generator of :data:`_BYTE_SAVED`)."""
    _copy_memory(handle[_SAVE_TO], handle[_REGION_A], handle[_SIZE_A])
    _copy_memory(handle[_SAVE_TO] + handle[_SIZE_A], handle[_REGION_B], handle[_SIZE_B])


@njit(cache=True, nogil=True)
def _restore_generator(handle):
    """Put back the state :func:`_save_generator` copied."""
    _copy_memory(handle[_REGION_A], handle[_SAVE_TO], handle[_SIZE_A])
    _copy_memory(handle[_REGION_B], handle[_SAVE_TO] + handle[_SIZE_A], handle[_SIZE_B])


def _potential_signature(prog_type):
    return types.float64(types.float64[::1], types.float64[::1], prog_type)


@intrinsic
def _potential_function(typingctx, address, prog):
    """The compiled potential at ``address`` as a callable ``fn(q, grad_out, prog)``.

    A dispatcher passed as an argument makes numba compile the kernel again for
    every potential, and a first-class function argument costs ~20 us a call to
    unbox; an address read once per chain costs nothing, and the kernel is
    compiled (and cached on disk) once per type of ``prog``.
    """
    function_type = types.FunctionType(_potential_signature(prog))

    def codegen(context, builder, signature, args):
        function = cgutils.create_struct_proxy(function_type)(context, builder)
        # Numba's own calling convention, so an exception raised by the
        # potential propagates to the caller instead of being lost.
        function.jit_addr = builder.inttoptr(args[0], cgutils.voidptr_t)
        return function._getvalue()

    return function_type(address, prog), codegen


def _velocity(inverse_metric, p, out):
    """``out = M^{-1} p`` (in compiled code; the overload below is the implementation)."""


@overload(_velocity)
def _velocity_impl(inverse_metric, p, out):
    if inverse_metric.ndim == 1:
        def diagonal(inverse_metric, p, out):
            for i in range(p.shape[0]):
                out[i] = inverse_metric[i] * p[i]
        return diagonal

    def dense(inverse_metric, p, out):
        onp.dot(inverse_metric, p, out)
    return dense


def _sample_momentum(bitgen, momentum_factor, z, out):
    """``out = p ~ N(0, M)`` from ``len(out)`` standard normal draws (``z`` is scratch),
    in compiled code; the overload below is the implementation."""


@overload(_sample_momentum)
def _sample_momentum_impl(bitgen, momentum_factor, z, out):
    if momentum_factor.ndim == 1:
        def diagonal(bitgen, momentum_factor, z, out):
            for i in range(out.shape[0]):
                z[i] = random_standard_normal(bitgen)
            for i in range(out.shape[0]):
                out[i] = z[i] * momentum_factor[i]
        return diagonal

    def dense(bitgen, momentum_factor, z, out):
        for i in range(out.shape[0]):
            z[i] = random_standard_normal(bitgen)
        onp.dot(momentum_factor, z, out)
    return dense


@njit(cache=True, nogil=True)
def _add(a, b, out):
    for i in range(out.shape[0]):
        out[i] = a[i] + b[i]


@njit(cache=True, nogil=True)
def _leapfrog(potential, prog, q, p, grad, step_size, inverse_metric, scratch):
    """``kernels.leapfrog`` in place on ``(q, p, grad)``; returns the new potential energy."""
    half_step = 0.5 * step_size
    for i in range(p.shape[0]):
        p[i] = p[i] - grad[i] * half_step
    _velocity(inverse_metric, p, scratch)
    for i in range(q.shape[0]):
        q[i] = q[i] + scratch[i] * step_size
    potential_energy = potential(q, grad, prog)
    for i in range(p.shape[0]):
        p[i] = p[i] - grad[i] * half_step
    return potential_energy


# ---------------------------------------------------------------- NUTS

# Rows of a subtree record (``records[r, row]``): the proposal (multinomial
# sample) and its gradient, the summed momenta, and the momenta and velocities
# at the subtree's first leaf ("beg", nearest the start of the trajectory)
# and last leaf ("end"). Scalars: proposal's U, its H, log of summed weights.
_PROP_Q, _PROP_GRAD, _RHO, _P_BEG, _PS_BEG, _P_END, _PS_END = range(7)
_RECORD_ROWS = 7
_PROP_U, _PROP_H, _LOG_W = range(3)

# Rows of the trajectory workspace (``trajectory[row]``); the two ends are
# indexed by direction, 0 backward and 1 forward.
_Z_Q, _Z_P, _Z_GRAD = 0, 2, 4  # the end points being extended: + direction
_T_P, _T_PS = 6, 8  # momenta and velocities at the trajectory's ends: + direction
_T_RHO, _RHO_NEW, _RHO_TEST, _SCRATCH = 10, 11, 12, 13
_TRAJECTORY_ROWS = 14

# Trajectory-wide tallies that every leaf updates (``tally[i]``).
_N_LEAPFROG, _SUM_ACCEPT, _MAX_ENERGY_ERROR, _DIVERGING = range(4)


@njit(cache=True, nogil=True)
def _merge(left, right, level, records, scalars, trajectory, bitgen):
    """Merge the finished subtree ``left`` with the adjacent ``right`` of the same
    depth into ``right``, as the reference's ``build_tree`` does after its two
    recursive calls; returns False on a U-turn."""
    log_w_left, log_w_right = scalars[left, _LOG_W], scalars[right, _LOG_W]
    log_w = _logaddexp(log_w_left, log_w_right)
    # Multinomial sampling: the right half keeps its proposal with probability w_right / w.
    if not next_double(bitgen) < math.exp(log_w_right - log_w):
        records[right, _PROP_Q, :] = records[left, _PROP_Q]
        records[right, _PROP_GRAD, :] = records[left, _PROP_GRAD]
        scalars[right, _PROP_U] = scalars[left, _PROP_U]
        scalars[right, _PROP_H] = scalars[left, _PROP_H]
    scalars[right, _LOG_W] = log_w

    L, R = records[left], records[right]
    rho = trajectory[_RHO_NEW]
    test = trajectory[_RHO_TEST]
    _add(L[_RHO], R[_RHO], rho)
    if not _no_u_turn(L[_PS_BEG], R[_PS_END], rho):
        return False
    if level > 1:
        _add(L[_RHO], R[_P_BEG], test)
        if not _no_u_turn(L[_PS_BEG], R[_PS_BEG], test):
            return False
        _add(R[_RHO], L[_P_END], test)
        if not _no_u_turn(L[_PS_END], R[_PS_END], test):
            return False
    R[_RHO, :] = rho
    R[_P_BEG, :] = L[_P_BEG]
    R[_PS_BEG, :] = L[_PS_BEG]
    return True


@njit(cache=True, nogil=True)
def _build_subtree(depth, direction, step_size, potential, prog, inverse_metric, energy0,
                   records, scalars, slots, trajectory, tally, bitgen):
    """Build ``2**depth`` leaves after the trajectory's end ``direction``.

    On success the subtree is record ``slots[depth]`` (records swap places
    rather than being copied); returns ``_VALID``, ``_INVALID`` (divergence or
    U-turn) or ``_RETRACE``.
    """
    q = trajectory[_Z_Q + direction]
    p = trajectory[_Z_P + direction]
    grad = trajectory[_Z_GRAD + direction]
    scratch = trajectory[_SCRATCH]
    signed_step = step_size if direction == 1 else -step_size
    for leaf in range(1 << depth):
        potential_energy = _leapfrog(potential, prog, q, p, grad, signed_step, inverse_metric,
                                     scratch)
        tally[_N_LEAPFROG] += 1.0
        if potential_energy != potential_energy:
            return _RETRACE
        current = slots[depth]
        record = records[current]
        _velocity(inverse_metric, p, record[_PS_END])
        energy = potential_energy + 0.5 * onp.dot(p, record[_PS_END])
        if energy != energy:
            energy = onp.inf
        energy_error = energy - energy0
        tally[_SUM_ACCEPT] += 1.0 if energy_error <= 0.0 else math.exp(-energy_error)
        if abs(energy_error) > abs(tally[_MAX_ENERGY_ERROR]):
            tally[_MAX_ENERGY_ERROR] = energy_error
        if energy_error > kernels.DIVERGENCE_THRESHOLD:
            tally[_DIVERGING] = 1.0
            return _INVALID
        record[_PROP_Q, :] = q
        record[_PROP_GRAD, :] = grad
        record[_RHO, :] = p
        record[_P_BEG, :] = p
        record[_P_END, :] = p
        record[_PS_BEG, :] = record[_PS_END]
        scalars[current, _PROP_U] = potential_energy
        scalars[current, _PROP_H] = energy
        scalars[current, _LOG_W] = -energy_error
        # The leaf closes one right half per trailing 1 bit of its index.
        level, index = 0, leaf
        while index & 1:
            if not _merge(slots[level], current, level + 1, records, scalars, trajectory, bitgen):
                return _INVALID
            index >>= 1
            level += 1
        # Otherwise it completes a left half, which waits for its sibling.
        if level < depth:
            slots[level], slots[depth] = current, slots[level]
    return _VALID


@njit(cache=True, nogil=True)
def _nuts_transition(rng_handle, potential_address, prog, position, potential_energy,
                     potential_grad, step_size, inverse_metric, momentum_factor, max_tree_depth,
                     records, trajectory, out_position, out_grad):
    """One NUTS transition, as ``kernels.nuts_step``; the draw goes to ``out_*``.

    Returns ``(status, U, acceptance_rate, diverging, energy, energy_error,
    max_energy_error, n_steps, tree_depth)``.
    """
    bitgen = _bit_generator(rng_handle)
    _save_generator(rng_handle)  # put back if the transition is handed back
    potential = _potential_function(potential_address, prog)
    scalars = onp.empty((records.shape[0], 3))
    slots = onp.arange(records.shape[0])
    tally = onp.zeros(4)

    p0 = trajectory[_Z_P]
    _sample_momentum(bitgen, momentum_factor, trajectory[_SCRATCH], p0)
    v0 = trajectory[_T_PS]
    _velocity(inverse_metric, p0, v0)
    energy0 = potential_energy + 0.5 * onp.dot(p0, v0)
    for end in range(2):
        trajectory[_Z_Q + end, :] = position
        trajectory[_Z_P + end, :] = p0
        trajectory[_Z_GRAD + end, :] = potential_grad
        trajectory[_T_P + end, :] = p0
        trajectory[_T_PS + end, :] = v0
    trajectory[_T_RHO, :] = p0
    rho = trajectory[_T_RHO]
    out_position[:] = position
    out_grad[:] = potential_grad
    sample_u, sample_energy = potential_energy, energy0

    log_w = 0.0  # the start point has weight exp(H0 - H0) = 1
    depth = 0
    # ``level`` (a loop index, never a literal 0) keeps numba to one compilation of _build_subtree.
    for level in range(max_tree_depth):
        direction = 1 if next_double(bitgen) > 0.5 else 0
        status = _build_subtree(level, direction, step_size, potential, prog, inverse_metric,
                                energy0, records, scalars, slots, trajectory, tally, bitgen)
        if status == _RETRACE:
            _restore_generator(rng_handle)
            return _RETRACE, 0.0, 0.0, False, 0.0, 0.0, 0.0, int(tally[_N_LEAPFROG]), depth
        if status == _INVALID:
            break
        depth = level + 1
        new = slots[level]
        subtree = records[new]
        log_w_new = scalars[new, _LOG_W]
        # Biased progressive sampling favours the new subtree, moving draws further out.
        if log_w_new > log_w or next_double(bitgen) < math.exp(log_w_new - log_w):
            out_position[:] = subtree[_PROP_Q]
            out_grad[:] = subtree[_PROP_GRAD]
            sample_u, sample_energy = scalars[new, _PROP_U], scalars[new, _PROP_H]
        log_w = _logaddexp(log_w, log_w_new)

        # The old trajectory's end next to the subtree ("near") and the other one ("far").
        near, far = direction, 1 - direction
        rho_new = trajectory[_RHO_NEW]
        test = trajectory[_RHO_TEST]
        _add(rho, subtree[_RHO], rho_new)
        if not _no_u_turn(trajectory[_T_PS + far], subtree[_PS_END], rho_new):
            break
        if depth > 1:
            _add(rho, subtree[_P_BEG], test)
            if not _no_u_turn(trajectory[_T_PS + far], subtree[_PS_BEG], test):
                break
            _add(subtree[_RHO], trajectory[_T_P + near], test)
            if not _no_u_turn(trajectory[_T_PS + near], subtree[_PS_END], test):
                break
        rho[:] = rho_new
        trajectory[_T_P + near, :] = subtree[_P_END]
        trajectory[_T_PS + near, :] = subtree[_PS_END]

    n_leapfrog = tally[_N_LEAPFROG]
    return (_DONE, sample_u, tally[_SUM_ACCEPT] / n_leapfrog, tally[_DIVERGING] != 0.0,
            sample_energy, sample_energy - energy0, tally[_MAX_ENERGY_ERROR], int(n_leapfrog),
            depth)


# ---------------------------------------------------------------- static HMC


@njit(cache=True, nogil=True)
def _hamiltonian(potential_energy, p, inverse_metric, scratch):
    _velocity(inverse_metric, p, scratch)
    energy = potential_energy + 0.5 * onp.dot(p, scratch)
    return onp.inf if energy != energy else energy


@njit(cache=True, nogil=True)
def _hmc_transition(rng_handle, potential_address, prog, position, potential_energy,
                    potential_grad, step_size, inverse_metric, momentum_factor, num_steps, jitter,
                    trajectory, out_position, out_grad):
    """One static HMC transition, as ``kernels.hmc_step``; same outputs as
    :func:`_nuts_transition` (tree depth 0)."""
    bitgen = _bit_generator(rng_handle)
    _save_generator(rng_handle)  # put back if the transition is handed back
    potential = _potential_function(potential_address, prog)
    if jitter != 0.0:
        step_size *= 1.0 + jitter * (2.0 * next_double(bitgen) - 1.0)
    q, p, grad = trajectory[_Z_Q], trajectory[_Z_P], trajectory[_Z_GRAD]
    scratch = trajectory[_SCRATCH]
    _sample_momentum(bitgen, momentum_factor, scratch, p)
    q[:] = position
    grad[:] = potential_grad
    energy0 = _hamiltonian(potential_energy, p, inverse_metric, scratch)
    max_energy_error = 0.0
    energy_error = 0.0
    diverging = False
    u = potential_energy
    n_steps = 0
    while n_steps < num_steps:
        u = _leapfrog(potential, prog, q, p, grad, step_size, inverse_metric, scratch)
        n_steps += 1
        if u != u:
            _restore_generator(rng_handle)
            return _RETRACE, 0.0, 0.0, False, 0.0, 0.0, 0.0, n_steps, 0
        energy_error = _hamiltonian(u, p, inverse_metric, scratch) - energy0
        if abs(energy_error) > abs(max_energy_error):
            max_energy_error = energy_error
        if energy_error > kernels.DIVERGENCE_THRESHOLD:
            diverging = True
            break

    acceptance_rate = 1.0 if energy_error <= 0.0 else math.exp(-energy_error)
    # As the reference: the uniform is drawn only when the proposal might be rejected.
    if acceptance_rate < 1.0 and next_double(bitgen) >= acceptance_rate:
        out_position[:] = position
        out_grad[:] = potential_grad
        return (_DONE, potential_energy, acceptance_rate, diverging, energy0, 0.0,
                max_energy_error, n_steps, 0)
    out_position[:] = q
    out_grad[:] = grad
    return (_DONE, u, acceptance_rate, diverging, energy0 + energy_error, energy_error,
            max_energy_error, n_steps, 0)


# ---------------------------------------------------------------- the Python face


def _compiled_vector(a) -> onp.ndarray:
    """``a`` as the writable C-contiguous float64 vector the kernels are compiled
    for: a read-only one (a cached gradient, say) would make numba compile them
    all again for that type."""
    a = onp.ascontiguousarray(a, onp.float64)
    return a if a.flags.writeable else a.copy()


class NativeKernel:
    """Compiled NUTS and static HMC transitions of one chain on a native potential.

    Parameters
    ----------
    native_potential : callable
        Returns ``pot.native`` or None. ``pot.native`` has attributes ``fn`` (a
        numba ``@njit`` function ``fn(q, grad_out, prog) -> U`` on C-contiguous
        float64 vectors, writing ``dU/dq`` into ``grad_out``; ``+inf`` where the
        density is zero, NaN when a guard of its tape fails) and ``prog``
        (passed to ``fn`` unchanged). It is asked once, and again after every
        transition handed back, when the Python potential will have traced the
        failing branch: the native form may then be a new one, or None, and
        then every later transition is handed back.
    rng : numpy.random.Generator
        The chain's generator; transitions draw from it exactly what
        :func:`probad.infer.kernels.nuts_step` and ``hmc_step`` would.
    dim : int
        Length of the position vector.

    Attributes
    ----------
    num_grad_evals : int
        Gradients evaluated by the compiled kernels, those of abandoned
        transitions included.
    """

    def __init__(self, native_potential: Callable[[], object | None], rng: onp.random.Generator,
                 dim: int):
        self._native_potential = native_potential
        self.native = native_potential()
        self.rng, self.dim = rng, dim
        self.num_grad_evals = 0
        self._handed_back = False
        # The compiled kernels put back a PCG64 generator's state themselves when
        # they hand a transition back; others are saved here (``_run``).
        self._rng_handle, self._rng_saved = _bit_generator_handle(rng)
        self._function = self._prog = None
        self._returned = (None, None)  # position and gradient of the last state returned
        self._address = 0
        self._records = onp.empty((0, _RECORD_ROWS, dim))
        self._trajectory = onp.empty((_TRAJECTORY_ROWS, dim))

    def nuts_step(self, state: kernels.HMCState, step_size: float, metric: kernels.Metric,
                  max_tree_depth: int = 10) -> tuple[kernels.HMCState, kernels.HMCInfo] | None:
        """One NUTS transition, as :func:`probad.infer.kernels.nuts_step`.

        Returns
        -------
        (HMCState, HMCInfo) or None
            None if the potential asked to be traced again, or there is no
            native potential (any more), or the metric has no
            ``momentum_factor``: the generator is then as it was before the
            call, so the reference kernel run on the Python potential gives
            the transition a fully native run would have given.
        """
        if max_tree_depth < 1:
            raise ValueError(f"max_tree_depth must be >= 1, got {max_tree_depth}")
        if len(self._records) < max_tree_depth:
            self._records = onp.empty((max_tree_depth, _RECORD_ROWS, self.dim))
        return self._run(_nuts_transition, state, step_size, metric, max_tree_depth,
                         self._records)

    def hmc_step(self, state: kernels.HMCState, step_size: float, metric: kernels.Metric,
                 num_steps: int, jitter: float = 0.0
                 ) -> tuple[kernels.HMCState, kernels.HMCInfo] | None:
        """One static HMC transition, as :func:`probad.infer.kernels.hmc_step`;
        None as in :meth:`nuts_step`."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        return self._run(_hmc_transition, state, step_size, metric, num_steps, float(jitter))

    def refresh(self) -> None:
        """Ask for the native potential again: data it reads changed (a Gibbs
        step's discrete values), and the potential may have traced another
        tape for them. The compiled call is kept when the program is the same."""
        native = self._native_potential()
        if native is None or self.native is None or native.prog[2] is not self.native.prog[2]:
            self.native = native

    def _run(self, transition, state, step_size, metric, *options):
        if self._handed_back:
            self.native = self._native_potential()
            self._handed_back = False
        if self.native is None or metric.momentum_factor is None:
            return None
        address, prog = self._potential()
        saved = self.rng.bit_generator.state if self._rng_saved is None else None
        # The state the last transition returned is already what the kernels take.
        q, grad = state.position, state.potential_grad
        if q is not self._returned[0]:
            q = _compiled_vector(q)
        if grad is not self._returned[1]:
            grad = _compiled_vector(grad)
        out_position, out_grad = onp.empty(self.dim), onp.empty(self.dim)
        result = transition(self._rng_handle, address, prog, q, float(state.potential_energy),
                            grad, float(step_size), metric.inverse_metric,
                            metric.momentum_factor, *options, self._trajectory, out_position,
                            out_grad)
        self.num_grad_evals += result[_N_STEPS]
        if result[0] == _RETRACE:
            if saved is not None:
                self.rng.bit_generator.state = saved
            self._handed_back = True
            return None
        self._returned = out_position, out_grad
        # The kernels return the status, U, then HMCInfo's fields in its order.
        return kernels.HMCState(out_position, result[1], out_grad), kernels.HMCInfo._make(result[2:])

    def _potential(self):
        native = self.native
        function, prog = native.fn, native.prog
        if function is not self._function or prog is not self._prog:
            signature = _potential_signature(typeof(prog))
            self._address = _get_jit_address(function, signature)
            self._function, self._prog = function, prog
        return self._address, prog
