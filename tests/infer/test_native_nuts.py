"""The compiled NUTS/HMC transitions against the Python reference kernel.

The native potentials here are written by hand with the interface the native
backend gives (``fn(q, grad_out, prog) -> U``, NaN for a failed guard); the
Python kernel runs on the same function wrapped as ``q -> (U, dU/dq)``. Both
kernels draw from the same generator in the same order and do the same float
operations, so from one state they must make the same tree decisions, consume
the same random numbers and land on the same point.
"""
from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numba
import numpy as np
import pytest

import probad as pb
from probad.infer import SamplingWarning, kernels, mcmc, native_nuts
from probad.infer.chain import STAT_DTYPES, run_chain
from probad.infer.density import potential as make_potential
from tests.executors import InlineExecutor
from tests.models import EIGHT_SCHOOLS, eight_schools_noncentered

# Every test potential takes its data as one float64 vector, so the kernels are
# compiled once per metric kind for the whole file.


@numba.njit
def standard_normal(q, grad, prog):
    u = 0.0
    for i in range(q.shape[0]):
        grad[i] = q[i]
        u += 0.5 * q[i] * q[i]
    return u


@numba.njit
def gaussian(q, grad, prog):
    """N(0, P^{-1}) with the precision P stored row by row in ``prog``."""
    n = q.shape[0]
    precision = prog.reshape((n, n))
    u = 0.0
    for i in range(n):
        grad[i] = 0.0
        for j in range(n):
            grad[i] += precision[i, j] * q[j]
        u += 0.5 * q[i] * grad[i]
    return u


@numba.njit
def eight_schools(q, grad, prog):
    """Non-centred eight schools on ``q = (mu, log tau, theta_t)``; ``prog = (y, sigma)``."""
    J = q.shape[0] - 2
    mu, log_tau = q[0], q[1]
    tau = math.exp(log_tau)
    log_2pi = math.log(2.0 * math.pi)
    # mu ~ Normal(0, 5); tau ~ HalfCauchy(5), with the log-Jacobian log tau.
    u = 0.5 * (mu / 5.0) ** 2 + math.log(5.0) + 0.5 * log_2pi
    u += -math.log(2.0 / (math.pi * 5.0)) + math.log1p((tau / 5.0) ** 2) - log_tau
    grad[0] = mu / 25.0
    grad[1] = 2.0 * tau * tau / (25.0 + tau * tau) - 1.0
    for j in range(J):
        theta_t = q[2 + j]
        y, sigma = prog[j], prog[J + j]
        r = (y - mu - tau * theta_t) / sigma
        u += 0.5 * theta_t * theta_t + 0.5 * log_2pi
        u += 0.5 * r * r + math.log(sigma) + 0.5 * log_2pi
        grad[0] -= r / sigma
        grad[1] -= r / sigma * tau * theta_t
        grad[2 + j] = theta_t - r / sigma * tau
    return u


@numba.njit
def funnel(q, grad, prog):
    """Neal's funnel: v ~ N(0, 3), x_i ~ N(0, exp(v / 2)); it diverges in the neck."""
    v = q[0]
    scale = math.exp(-v)
    u = v * v / 18.0
    grad[0] = v / 9.0
    for i in range(1, q.shape[0]):
        u += 0.5 * q[i] * q[i] * scale + 0.5 * v
        grad[0] += 0.5 - 0.5 * q[i] * q[i] * scale
        grad[i] = q[i] * scale
    return u


@numba.njit
def guarded_normal(q, grad, prog):
    """A standard normal whose tape only holds for ``q[0] <= prog[0]``: NaN beyond,
    as a native potential says that a guard failed."""
    if q[0] > prog[0]:
        return math.nan
    return standard_normal(q, grad, prog)


def python_form(fn, prog):
    """The reference kernel's ``q -> (U, dU/dq)`` of a native potential."""

    def potential(q):
        grad = np.empty_like(q)
        return fn(q, grad, prog), grad

    return potential


def correlated_precision(dim, seed=0):
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return np.linalg.inv(a @ a.T / dim + 0.2 * np.eye(dim))


EIGHT_SCHOOLS_PROG = np.concatenate([EIGHT_SCHOOLS["y"], EIGHT_SCHOOLS["sigma"]])

# name: (fn, prog, dim, step size, inverse metric kind, does it diverge)
TARGETS = {
    "normal-diag": (standard_normal, np.zeros(1), 10, 0.4, "diag", False),
    "gaussian-diag": (gaussian, correlated_precision(6).ravel(), 6, 0.3, "diag", False),
    "gaussian-dense": (gaussian, correlated_precision(6).ravel(), 6, 0.5, "dense", False),
    "eight-schools": (eight_schools, EIGHT_SCHOOLS_PROG, 10, 0.75, "diag", True),
    "funnel": (funnel, np.zeros(1), 6, 0.6, "diag", True),
    "funnel-dense": (funnel, np.zeros(1), 6, 0.6, "dense", True),
}


def inverse_metric_for(kind, dim, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "diag":
        return rng.uniform(0.5, 2.0, dim)
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def assert_same_transition(native_result, python_result):
    (native_state, native_info), (python_state, python_info) = native_result, python_result
    assert (native_info.tree_depth, native_info.n_steps, native_info.diverging) == (
        python_info.tree_depth, python_info.n_steps, python_info.diverging)
    # The same tree decisions; positions to rounding (numba may fuse a
    # multiply-add where numpy rounds twice), not a looser agreement.
    np.testing.assert_allclose(native_state.position, python_state.position, rtol=0, atol=1e-12)
    np.testing.assert_allclose(native_state.potential_grad, python_state.potential_grad,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(native_state.potential_energy, python_state.potential_energy,
                               rtol=1e-12)
    for name in ("acceptance_rate", "energy", "energy_error", "max_energy_error"):
        np.testing.assert_allclose(getattr(native_info, name), getattr(python_info, name),
                                   rtol=1e-12, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------- random numbers


@numba.njit
def _draw(handle, n):
    bitgen = native_nuts._bit_generator(handle)
    out = np.empty(2 * n)
    for i in range(n):
        out[2 * i] = native_nuts.next_double(bitgen)
        out[2 * i + 1] = native_nuts.random_standard_normal(bitgen)
    return out


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox, np.random.SFC64])
def test_compiled_code_draws_what_numpy_draws_and_advances_the_generator(bit_generator):
    native_rng = np.random.Generator(bit_generator(5))
    numpy_rng = np.random.Generator(bit_generator(5))
    handle, _ = native_nuts._bit_generator_handle(native_rng)
    for _ in range(3):
        drawn = _draw(handle, 2000)
        expected = np.array([[numpy_rng.random(), numpy_rng.standard_normal()]
                             for _ in range(2000)]).ravel()
        np.testing.assert_array_equal(drawn, expected)
        # The generator itself moved on: numpy's next draws from each are the same.
        np.testing.assert_array_equal(native_rng.random(3), numpy_rng.random(3))


# ---------------------------------------------------------------- single transitions


def native_source(fn, prog):
    """What ``NativeKernel`` asks for the native form: here always the same one."""
    return lambda: SimpleNamespace(fn=fn, prog=prog)


def twin_kernels(target, seed):
    """The reference potential and metric of ``target``, a native kernel, two
    generators in the same state (reference, native) and a starting state."""
    fn, prog, dim, _, kind, _ = TARGETS[target]
    potential = python_form(fn, prog)
    python_rng, native_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    kernel = native_nuts.NativeKernel(native_source(fn, prog), native_rng, dim)
    state = kernels.init(np.random.default_rng(seed + 1).uniform(-1, 1, dim), potential)
    metric = kernels.make_metric(inverse_metric_for(kind, dim))
    return potential, metric, kernel, python_rng, native_rng, state


@pytest.mark.parametrize("target", list(TARGETS))
def test_native_nuts_transition_is_the_python_transition(target):
    step_size, diverges = TARGETS[target][3], TARGETS[target][5]
    potential, metric, kernel, python_rng, native_rng, state = twin_kernels(target, 2)
    depths, divergences, identical = set(), 0, 0
    for _ in range(200):
        python_result = kernels.nuts_step(python_rng, state, potential, step_size, metric,
                                          max_tree_depth=8)
        native_result = kernel.nuts_step(state, step_size, metric, max_tree_depth=8)
        assert_same_transition(native_result, python_result)
        # The same random numbers were consumed.
        assert native_rng.bit_generator.state == python_rng.bit_generator.state
        identical += np.array_equal(native_result[0].position, python_result[0].position)
        state, info = python_result
        depths.add(info.tree_depth)
        divergences += info.diverging
    # The comparison covered trees of several depths, and divergences where expected.
    assert len(depths) > 1
    assert (divergences > 0) == diverges
    assert kernel.num_grad_evals > 200
    # With numpy and numba on the same BLAS build the dot products agree to the bit too.
    assert identical >= 190


@pytest.mark.parametrize("kind", ["diag", "dense"])
def test_native_nuts_stops_at_max_tree_depth(kind):
    metric = kernels.make_metric(inverse_metric_for(kind, 3))
    state = kernels.init(np.ones(3), python_form(standard_normal, None))
    kernel = native_nuts.NativeKernel(native_source(standard_normal, np.zeros(1)),
                                      np.random.default_rng(4), 3)
    _, info = kernel.nuts_step(state, 1e-4, metric, max_tree_depth=6)
    assert (info.tree_depth, info.n_steps) == (6, 2**6 - 1)
    assert info.acceptance_rate == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("target, step_size, diverges",
                         [("gaussian-diag", 0.45, False), ("gaussian-dense", 0.65, True),
                          ("funnel", 0.6, True)])
@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_native_hmc_transition_is_the_python_transition(target, step_size, diverges, jitter):
    potential, metric, kernel, python_rng, native_rng, state = twin_kernels(target, 5)
    rejected = divergences = 0
    for _ in range(200):
        python_result = kernels.hmc_step(python_rng, state, potential, step_size, metric,
                                         num_steps=7, jitter=jitter)
        native_result = kernel.hmc_step(state, step_size, metric, 7, jitter)
        assert_same_transition(native_result, python_result)
        assert native_rng.bit_generator.state == python_rng.bit_generator.state
        rejected += python_result[0] is state
        state, info = python_result
        divergences += info.diverging
    assert rejected > 0
    assert (divergences > 0) == diverges


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM])
def test_compiled_code_saves_and_puts_back_the_whole_generator_state(bit_generator):
    # PCG64's state is copied as raw bytes: a draw of 32 bits leaves the other half of
    # a 64-bit draw buffered (has_uint32, uinteger), which the copy must cover too.
    rng = np.random.Generator(bit_generator(3))
    handle, buffer = native_nuts._bit_generator_handle(rng)
    assert buffer is not None
    for _ in range(3):
        rng.integers(0, 2**32, dtype=np.uint32)  # half a 64-bit draw buffered
        before = rng.bit_generator.state
        expected = (rng.standard_normal(5), rng.integers(0, 2**32, size=3, dtype=np.uint32))
        rng.bit_generator.state = before
        native_nuts._save_generator(handle)
        rng.standard_normal(7)
        rng.integers(0, 2**32, size=3, dtype=np.uint32)
        native_nuts._restore_generator(handle)
        assert rng.bit_generator.state == before
        np.testing.assert_array_equal(rng.standard_normal(5), expected[0])
        np.testing.assert_array_equal(rng.integers(0, 2**32, size=3, dtype=np.uint32),
                                      expected[1])


# PCG64's state is put back by the compiled kernel, the others' by NativeKernel.
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937])
def test_a_failed_guard_hands_the_transition_back_with_the_generator_untouched(bit_generator):
    prog = np.array([0.5])
    sources = []

    def native_potential():
        sources.append(1)
        return SimpleNamespace(fn=guarded_normal, prog=prog)

    rng = np.random.Generator(bit_generator(7))
    kernel = native_nuts.NativeKernel(native_potential, rng, 2)
    metric = kernels.make_metric(np.ones(2))
    state = kernels.init(np.array([0.4, 0.0]), python_form(standard_normal, None))
    handed_back = 0
    for _ in range(50):
        before = rng.bit_generator.state
        evals = kernel.num_grad_evals
        result = kernel.nuts_step(state, 0.3, metric)
        last_handed_back = result is None
        if last_handed_back:
            handed_back += 1
            np.testing.assert_equal(rng.bit_generator.state, before)
            assert kernel.num_grad_evals > evals  # the abandoned leapfrog steps are counted
            result = kernels.nuts_step(rng, state, python_form(standard_normal, None), 0.3, metric)
        state = result[0]
    assert handed_back > 0
    # The native form is asked for again at the transition after each one handed back.
    assert len(sources) == 1 + handed_back - last_handed_back


def test_the_native_form_given_after_a_hand_back_is_the_one_used():
    # As after a retrace: the first form fails its guard, the next one holds everywhere.
    forms = [SimpleNamespace(fn=guarded_normal, prog=np.array([-10.0])),
             SimpleNamespace(fn=standard_normal, prog=np.zeros(1))]
    kernel = native_nuts.NativeKernel(lambda: forms.pop(0), np.random.default_rng(9), 2)
    metric = kernels.make_metric(np.ones(2))
    state = kernels.init(np.zeros(2), python_form(standard_normal, None))
    assert kernel.nuts_step(state, 0.3, metric) is None
    assert all(kernel.nuts_step(state, 0.3, metric) is not None for _ in range(20))
    assert not forms


def test_a_read_only_state_does_not_compile_the_kernel_again():
    metric = kernels.make_metric(np.ones(3))
    kernel = native_nuts.NativeKernel(native_source(standard_normal, np.zeros(1)),
                                      np.random.default_rng(10), 3)
    state = kernels.init(np.ones(3), python_form(standard_normal, None))
    kernel.nuts_step(state, 0.3, metric)
    compiled = len(native_nuts._nuts_transition.signatures)
    read_only = np.ones(3)  # a gradient a potential hands out from a cache, say
    read_only.flags.writeable = False
    new_state, _ = kernel.nuts_step(state._replace(potential_grad=read_only), 0.3, metric)
    assert len(native_nuts._nuts_transition.signatures) == compiled
    assert new_state.position.flags.writeable


def test_without_a_native_form_every_transition_is_handed_back():
    kernel = native_nuts.NativeKernel(lambda: None, np.random.default_rng(8), 2)
    state = kernels.init(np.zeros(2), python_form(standard_normal, None))
    assert kernel.nuts_step(state, 0.3, kernels.make_metric(np.ones(2))) is None


# ---------------------------------------------------------------- whole chains


@pytest.mark.parametrize("options", [
    dict(),
    dict(dense_mass=True),
    dict(algorithm="hmc", num_steps=5, jitter=0.2),
    dict(algorithm="hmc", path_length=2.0, dense_mass=True),
], ids=["nuts", "nuts-dense", "hmc-jitter", "hmc-dense"])
def test_native_chain_is_the_python_chain(options):
    fn, prog, dim = gaussian, correlated_precision(4).ravel(), 4
    common = dict(seed_or_rng=9, draws=60, tune=80, warmup_draws=True, **options)
    python = run_chain(python_form(fn, prog), np.ones(dim), **common)
    native = run_chain(python_form(fn, prog), np.ones(dim),
                       native_potential=native_source(fn, prog), **common)
    np.testing.assert_allclose(native.positions, python.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(native.warmup_positions, python.warmup_positions, rtol=0, atol=1e-12)
    for name in ("tree_depth", "n_steps", "diverging"):
        np.testing.assert_array_equal(native.stats[name], python.stats[name])
        np.testing.assert_array_equal(native.warmup_stats[name], python.warmup_stats[name])
    assert native.step_size == pytest.approx(python.step_size, rel=1e-12)
    assert native.num_grad_evals == python.num_grad_evals


def test_a_chain_with_failing_guards_is_the_python_chain():
    prog = np.array([0.8])
    common = dict(seed_or_rng=10, draws=100, tune=50)
    python = run_chain(python_form(standard_normal, None), np.zeros(3), **common)
    native = run_chain(python_form(standard_normal, None), np.zeros(3),
                       native_potential=native_source(guarded_normal, prog), **common)
    np.testing.assert_allclose(native.positions, python.positions, rtol=0, atol=1e-12)
    # Some transitions were abandoned and run again in Python.
    assert (python.positions[:, 0] > 0.8).any()
    assert native.num_grad_evals > python.num_grad_evals


def test_stopping_a_native_chain_returns_the_draws_so_far():
    events = []
    result = run_chain(python_form(standard_normal, None), np.zeros(2), seed_or_rng=11,
                       draws=100, tune=20, progress=events.append,
                       should_stop=lambda: len(events) >= 50,
                       native_potential=native_source(standard_normal, np.zeros(1)))
    assert result.partial
    assert len(result.positions) == 30
    assert all(len(values) == 30 for values in result.stats.values())
    assert [e.iteration for e in events] == list(range(1, 51))


# ---------------------------------------------------------------- pb.hmc


class NativeEightSchools:
    """The non-centred eight schools potential with a hand-written native form,
    standing in for what the native backend will attach to ``pb.potential``."""

    def __init__(self, pot):
        self._pot = pot
        self.native = SimpleNamespace(fn=eight_schools, prog=EIGHT_SCHOOLS_PROG)
        self._python = python_form(eight_schools, EIGHT_SCHOOLS_PROG)

    def value_and_grad(self, q, quiet=True):  # Potential.value_and_grad's signature
        return self._python(q)

    def __getattr__(self, name):
        return getattr(self._pot, name)


@pytest.fixture
def native_eight_schools(monkeypatch):
    """pb.hmc sees the stand-in; returns the count of compiled NUTS transitions."""
    monkeypatch.setattr(mcmc, "make_potential",
                        lambda *args, **kwargs: NativeEightSchools(make_potential(*args, **kwargs)))
    calls = []
    compiled = native_nuts._nuts_transition

    def counted(*args):
        calls.append(1)
        return compiled(*args)

    monkeypatch.setattr(native_nuts, "_nuts_transition", counted)
    return calls


def test_the_hand_written_eight_schools_is_probads():
    pot = make_potential(eight_schools_noncentered, EIGHT_SCHOOLS)
    hand_written = python_form(eight_schools, EIGHT_SCHOOLS_PROG)
    for q in np.random.default_rng(12).normal(size=(5, 10)):
        u, grad = pot.value_and_grad(q)
        u_hand, grad_hand = hand_written(q)
        assert u_hand == pytest.approx(u, rel=1e-12)
        np.testing.assert_allclose(grad_hand, grad, rtol=1e-10, atol=1e-12)


def sample(**options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, draws=50, tune=50, chains=2,
                      seed=13, progress=False, **options)


def test_hmc_runs_the_native_kernel_and_gives_the_python_draws(native_eight_schools):
    python = sample(kernel_backend="python")
    assert not native_eight_schools
    native = sample(kernel_backend="native")
    assert len(native_eight_schools) == 2 * (50 + 50)
    auto = sample()
    assert len(native_eight_schools) == 2 * 2 * (50 + 50)
    assert native.attrs["num_gradient_evaluations"] == python.attrs["num_gradient_evaluations"]
    for idata in (native, auto):
        for name in ("mu", "tau", "theta"):
            np.testing.assert_allclose(idata.posterior[name].values,
                                       python.posterior[name].values, rtol=1e-12, atol=1e-12)
        for name in STAT_DTYPES:
            np.testing.assert_allclose(idata.sample_stats[name].values,
                                       python.sample_stats[name].values, rtol=1e-12, atol=1e-12)


def test_hmc_runs_the_native_kernel_on_an_executor(native_eight_schools):
    pooled = sample(executor=InlineExecutor())
    assert len(native_eight_schools) == 2 * (50 + 50)
    python = sample(kernel_backend="python")
    np.testing.assert_allclose(pooled.posterior["theta"].values, python.posterior["theta"].values,
                               rtol=1e-12, atol=1e-12)


def test_kernel_backend_is_checked():
    with pytest.raises(ValueError, match="kernel_backend must be"):
        sample(kernel_backend="rust")
    # The plain potential has no native form (yet): "native" says so before sampling.
    with pytest.raises(ValueError, match="no native form"):
        sample(kernel_backend="native", compile=False)
