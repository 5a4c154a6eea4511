"""The native backend: every model of the test suite runs natively and agrees
with the numpy replay; each lowering agrees with numpy on special values;
guards retrace; primitives without a lowering fall back with one warning."""
import pathlib
import subprocess
import sys
import warnings

import numpy as onp
import pytest

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.ad import value_and_grad
from probad.ad.compiler import CompileWarning, compile
from probad.ad.compiler import interpreter
from probad.ad.compiler.native import NUMPY_ONLY, lowering_of
from probad.ad.extend import defprimitive
from probad.ad.scipy import special
from probad.ad.tracer import primitive
from tests import models as M
from tests import posteriordb_models as P

# numba is a dependency, but probad also runs without it (on the numpy replay,
# interpreter.AVAILABLE False); only the native backend's own tests need it.
pytestmark = pytest.mark.skipif(not interpreter.AVAILABLE, reason="numba is not installed")


def _suite_models():
    for name in P.POSTERIORS:
        yield (name, *P.model_and_data(name))
    regression = M.regression_data()
    yield "eight_schools_centered", M.eight_schools_centered, M.EIGHT_SCHOOLS
    yield "eight_schools_noncentered", M.eight_schools_noncentered, M.EIGHT_SCHOOLS
    yield "linear_regression", M.linear_regression, {"X": regression["X"], "y": regression["y"]}
    yield "logistic_regression", M.logistic_regression, {"X": regression["X"],
                                                         "y01": regression["y01"]}
    yield "garch11", M.garch11, M.garch_data()
    yield "dirichlet_categorical", M.dirichlet_categorical, M.categorical_data()
    yield "lkj_mvn", M.lkj_mvn, M.mvn_data()
    yield "normal_with_deterministics", M.normal_with_deterministics, \
        {"y": M.mvn_data()["y"][:, 0]}
    yield "normal_mixture", M.normal_mixture, M.mixture_data()


SUITE = {name: (model, data) for name, model, data in _suite_models()}


def assert_close(got, want):
    """Relative 1e-12, measured against the largest entry: the two replays
    differ by rounding (libm's exp/log against numpy's SIMD loops, a few ulp;
    summation order), and a sum's rounding error scales with the magnitude of
    its terms, not with the (possibly cancelled) result. Measured worst case
    over the suite: 4e-15."""
    got, want = onp.asarray(got), onp.asarray(want)
    scale = onp.max(onp.abs(want), initial=0.0)
    onp.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)


# ------------------------------------------------------ the suite's models
@pytest.mark.parametrize("name", list(SUITE))
def test_model_runs_natively_and_agrees_with_numpy(name):
    model, data = SUITE[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # a fallback would warn
        fast = pb.infer.potential(model, data, backend="native")
        reference = pb.infer.potential(model, data, backend="numpy")
        q0 = reference.initial_point(seed=0)
        rng = onp.random.default_rng(1)
        for scale in (0.0, 0.5, 2.0):
            q = q0 + scale * rng.normal(size=q0.shape)
            value, gradient = fast.value_and_grad(q)
            want_value, want_gradient = reference.value_and_grad(q)
            assert_close(value, want_value)
            assert_close(gradient, want_gradient)
            assert_close(fast(q), reference(q))
            for site, values in fast.constrain(q).items():
                assert_close(values, reference.constrain(q)[site])
    tapes = [t for ts in fast._energy_and_grad.tapes.values() for t in ts]
    assert tapes and all(t.native is not None for t in tapes)


def test_native_potential_interface_matches_value_and_grad():
    model, data = SUITE["eight_schools_noncentered"]
    pot = pb.infer.potential(model, data, backend="native")
    q = pot.initial_point(seed=3)
    nat = pot.native
    grad_out = onp.zeros(pot.dim)
    value = nat.fn(q, grad_out, nat.prog)
    want_value, want_gradient = pot.value_and_grad(q)
    assert value == want_value and onp.array_equal(grad_out, want_gradient)
    assert not nat.guard_failed()
    # a NaN parameter is a rejected proposal, not a NaN energy (after the
    # first, which goes to Python to be described: see the next test)
    nat.fn(onp.full(pot.dim, onp.nan), grad_out, nat.prog)
    assert nat.fn(onp.full(pot.dim, onp.nan), grad_out, nat.prog) == onp.inf


def test_the_native_potentials_rejections_are_counted_by_the_potential():
    """The compiled NUTS calls ``fn`` where Python cannot count: the program
    counts, and ``Potential.rejections`` adds its counts to its own. The
    first rejection is handed to Python (NaN, not a failed guard), which
    evaluates the point again, counts it and says where it happened."""
    model, data = SUITE["eight_schools_noncentered"]
    pot = pb.infer.potential(model, data, backend="native")
    q, bad = pot.initial_point(seed=3), onp.full(pot.dim, onp.nan)
    nat = pot.native
    grad_out = onp.zeros(pot.dim)
    nat.fn(q, grad_out, nat.prog)
    assert pot.rejections == {}
    assert onp.isnan(nat.fn(bad, grad_out, nat.prog)) and not nat.guard_failed()
    assert pot.value_and_grad(bad)[0] == onp.inf  # what the compiled NUTS's caller does
    assert "site(s)" in pot.rejection_examples["invalid parameter or NaN"]
    for _ in range(3):
        assert nat.fn(bad, grad_out, nat.prog) == onp.inf
    assert pot.rejections == {"invalid parameter or NaN": 4}


def test_native_potential_is_none_on_the_numpy_backend():
    model, data = SUITE["eight_schools_noncentered"]
    assert pb.infer.potential(model, data, backend="numpy").native is None


def test_failed_cholesky_is_infinite_energy():
    def model():
        a = pb.sample("a", dist.Normal(0.0, 1.0))
        cov = np.stack([np.stack([1.0, a]), np.stack([a, 1.0])])
        L = np.linalg.cholesky(cov)
        pb.factor("f", np.sum(np.log(np.diagonal(L))))

    fast = pb.infer.potential(model, backend="native")
    reference = pb.infer.potential(model, backend="numpy")
    good, bad = onp.array([0.3]), onp.array([3.0])  # |a| > 1: not positive definite
    assert_close(fast.value_and_grad(good)[1], reference.value_and_grad(good)[1])
    assert fast.value_and_grad(bad)[0] == reference.value_and_grad(bad)[0] == onp.inf
    nat = fast.native
    assert onp.isnan(nat.fn(bad, onp.zeros(1), nat.prog))  # the first: Python describes it
    assert nat.fn(bad, onp.zeros(1), nat.prog) == onp.inf
    assert fast.rejections == {"linear algebra failed": 2}  # the value_and_grad above, and this


# ------------------------------------------------------------------ guards
def test_failing_guard_retraces_natively():
    def f(x):
        s = np.sum(x)
        return s * 2.0 if s > 0 else np.exp(s)

    fast = compile(f, backend="native")
    for x in (onp.array([1.0, 2.0]), onp.array([-1.0, -2.0]), onp.array([3.0, 0.5])):
        assert_close(fast(x), f(x))
    assert fast.trace_count == 2
    assert all(t.native is not None and t.guards for ts in fast.tapes.values() for t in ts)


def test_native_potential_signals_a_failed_guard():
    def model():
        mu = pb.sample("mu", dist.Normal(0.0, 1.0))
        if mu > 0:  # a Python branch on a traced value: a guard
            pb.factor("half", -mu)

    pot = pb.infer.potential(model, backend="native")
    pot.value_and_grad(onp.array([1.0]))
    nat = pot.native
    grad_out = onp.zeros(1)
    assert nat.fn(onp.array([0.5]), grad_out, nat.prog) == 0.5 * 0.25 + 0.5 + \
        0.5 * onp.log(2 * onp.pi)
    assert onp.isnan(nat.fn(onp.array([-0.5]), grad_out, nat.prog)) and nat.guard_failed()
    value, gradient = pot.value_and_grad(onp.array([-0.5]))  # retraces the other branch
    nat = pot.native
    assert nat.fn(onp.array([-0.5]), grad_out, nat.prog) == value
    assert grad_out[0] == gradient[0] == -0.5


# --------------------------------------------------------------- fallback
def test_missing_lowering_falls_back_with_one_warning_naming_it():
    def f(x):
        return np.sum(np.arcsinh(x) * special.erfinv(x / 4))

    fast = compile(value_and_grad(f), backend="native")
    with pytest.warns(CompileWarning, match="'arcsinh'.*'erfinv'") as record:
        got = fast(onp.array([2.0, 1.0, 3.0]))
        fast(onp.array([2.5, 1.5, 3.5]))
    assert len(record) == 1
    assert_close(got[0], value_and_grad(f)(onp.array([2.0, 1.0, 3.0]))[0])
    assert all(t.native is None for ts in fast.tapes.values() for t in ts)


def test_a_potential_names_a_missing_lowering_once_for_all_its_compiled_functions():
    def model():
        x = pb.sample("x", dist.Normal(0.0, 1.0))
        pb.deterministic("y", np.arcsinh(x))
        pb.factor("f", -np.arcsinh(x) ** 2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pot = pb.infer.potential(model, backend="native")
        q = onp.array([0.3])
        pot(q)  # the energy, its gradient and the constrained values: three compiled functions
        pot.value_and_grad(q)
        pot.constrain(q)
    lines = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
    assert len(lines) == 1 and "'arcsinh'" in lines[0]


def test_a_numpy_only_primitive_keeps_the_numpy_replay_silently_under_auto():
    from probad.ad.scipy.integrate import _solve, odeint

    def f(k):
        y = odeint(lambda y, t, k: -k * y, np.array([1.0]), onp.array([0.0, 1.0]), (k[0],))
        return np.sum(y[1] ** 2)

    assert _solve.lowerings.get("native") == NUMPY_ONLY and lowering_of(_solve) is None
    fast = compile(value_and_grad(f), backend="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # not announced: a declared choice
        got = fast(onp.array([0.5]))
    assert all(t.native is None for ts in fast.tapes.values() for t in ts)
    assert_close(got[1], value_and_grad(f)(onp.array([0.5]))[1])


def test_a_new_primitive_runs_natively_by_its_declaration():
    @primitive
    def growth(x):
        return onp.exp(x)

    defprimitive(growth, vjp=lambda g, ans, x: g * ans, native="unary:exp")
    f = value_and_grad(lambda x: np.sum(growth(x) * x))
    fast = compile(f, backend="native")
    x = onp.array([0.5, -1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # no fallback
        got = fast(x)
    assert all(t.native is not None for ts in fast.tapes.values() for t in ts)
    assert_close(got[1], f(x)[1])
    defprimitive(growth, native="unary:no_such_kernel")
    with pytest.raises(ValueError, match="'growth' declares native='unary:no_such_kernel'"):
        lowering_of(growth)


def test_auto_backend_keeps_numpy_for_long_vectors_of_exp():
    def f(x):
        return np.sum(np.exp(x) + np.log1p(np.exp(-x)))

    auto = compile(value_and_grad(f), backend="auto")
    auto(onp.linspace(-1.0, 1.0, 100_000))
    auto(onp.float64(0.5))
    long_tape, scalar_tape = (ts[0] for ts in auto.tapes.values())
    assert long_tape.native is None and scalar_tape.native is not None


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="backend"):
        compile(np.exp, backend="llvm")


def test_interpreter_cache_lives_in_the_user_cache_directory():
    from probad.ad.compiler import native_cache

    path = interpreter.run._cache._cache_path
    assert path.startswith(native_cache.cache_directory())


def test_a_new_process_loads_the_interpreter_without_numbas_registry_refresh():
    # numba's first "refresh" of its registries (importing numba.cpython.heapq
    # among many others) costs a new process ~0.5 s; a load from probad's
    # cache skips it, and a compilation afterwards (a cache miss) still works
    # because numba refreshes before compiling.
    interpreter.run(onp.zeros(0, onp.int64), onp.zeros(1, onp.int64), onp.zeros(1),
                    onp.zeros(1, onp.int64))  # the interpreter is in the cache
    script = (
        "import sys, numpy as onp, probad as pb\n"
        "from tests.models import eight_schools_noncentered as m, EIGHT_SCHOOLS as d\n"
        "p = pb.potential(m, d, backend='native'); q = onp.zeros(p.dim)\n"
        "p.value_and_grad(q); u, g = p.value_and_grad(q)\n"
        "assert p._energy_and_grad.tapes and onp.isfinite(u)\n"
        "print('numba.cpython.heapq' in sys.modules)\n"
        "import numba\n"
        "print(numba.njit(lambda x: x.sum() + 1.0)(onp.ones(3)))\n")
    root = pathlib.Path(__file__).resolve().parents[3]  # the repository, so that tests.models imports
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                         text=True, timeout=600, check=True).stdout.split()
    assert out == ["False", "4.0"]


# ------------------------------------------------ each lowering against numpy
SPECIAL = onp.array([-3.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 40.0, onp.inf, -onp.inf,
                     onp.nan])


def _declaring(kind):
    """The primitives that declare a native elementwise kernel of ``kind``."""
    return sorted((p for p in primitive.instances if p.lowerings.get("native", "").startswith(kind + ":")),
                  key=lambda p: p.__name__)


def _compare(f, *args):
    fast = compile(f, backend="native")
    with onp.errstate(all="ignore"):
        want = f(*args)
        got = fast(*args)
    tapes = [t for ts in fast.tapes.values() for t in ts]
    assert tapes and all(t.native is not None for t in tapes)
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype == bool:
        assert onp.array_equal(got, want)
    else:
        # libm against numpy's SIMD exp/log: a few ulp, so 1e-14 relative.
        onp.testing.assert_allclose(got, want, rtol=1e-14, atol=0, equal_nan=True)
        assert onp.array_equal(onp.isnan(got), onp.isnan(want))


@pytest.mark.parametrize("prim", _declaring("unary"), ids=lambda p: p.__name__)
def test_unary_lowering_agrees_with_numpy(prim):
    _compare(lambda x: prim(x), SPECIAL)
    _compare(lambda x: prim(x[None, :] * x[:3, None]), SPECIAL)  # strided, broadcast


@pytest.mark.parametrize("prim", _declaring("binary"), ids=lambda p: p.__name__)
def test_binary_lowering_agrees_with_numpy(prim):
    x, y = onp.meshgrid(SPECIAL, SPECIAL)
    _compare(lambda a, b: prim(a, b), x, y)
    _compare(lambda a, b: prim(a[:, :1], b.T), x, y)  # broadcast, transposed


@pytest.mark.parametrize("case", [
    lambda x: np.sum(x, axis=0), lambda x: np.sum(x, axis=(0, 2), keepdims=True),
    lambda x: np.mean(x, axis=-1), lambda x: special.logsumexp(x, axis=1),
    lambda x: special.logsumexp(x), lambda x: np.cumsum(x, axis=1), lambda x: np.flip(x, 1),
    lambda x: np.transpose(x, (2, 0, 1))[1:, ::2], lambda x: x[:, [0, 2, 1, 1]],
    lambda x: np.concatenate([x, 2 * x], axis=1), lambda x: np.stack([x[0], x[1]]),
    lambda x: np.where(x > 0, x, -x), lambda x: np.clip(x, -0.5, 0.5),
    lambda x: x[0] @ x[1].T, lambda x: np.matmul(x, np.swapaxes(x, -1, -2)),
    lambda x: np.diagonal(x[0][:, :3]), lambda x: np.reshape(x, (4, 6))[::-1],
    lambda x: np.broadcast_to(x[0, 0], (3, 4)), lambda x: np.expand_dims(x, 1)[..., 0, :],
    # tiny ones, lowered to scalar instructions
    lambda x: special.logsumexp(x[0, :2, :2] + x[1, :2, :1], axis=1),
    lambda x: np.sum(x[1, 1:3, :2] * x[0, 0, :2], axis=0), lambda x: np.exp(x[0, 0, ::2]),
])
def test_structural_lowering_agrees_with_numpy(case):
    x = onp.random.default_rng(0).normal(size=(2, 3, 4))
    _compare(case, x)


def test_an_array_of_scalars_is_one_move():
    # np.array of T scalars (a loop's results, arma11) moves them in one
    # instruction, not T
    def f(x):
        return np.array([x[i] * x[i + 1] for i in range(5)] + [x[0]]) ** 2

    fast = compile(f, backend="native")
    x = onp.random.default_rng(0).normal(size=6)
    fast(x)
    onp.testing.assert_array_equal(fast(x), f(x))
    assert _op_codes(fast, x).count(interpreter.OP["MOVE"]) == 1


def _op_codes(fast, *args) -> list[int]:
    """The op codes of the native program ``fast`` runs on ``args``."""
    code, ops, pc = fast.tapes[fast.cache_key(*args)][0].native.code, [], 0
    while pc < len(code):
        ops.append(int(code[pc]))
        pc += interpreter.WIDTH[ops[-1]]
    return ops


@pytest.mark.parametrize("case", [
    lambda x: np.sum(x), lambda x: np.sum(x[::3]), lambda x: np.sum(x[:900].reshape(9, 100), 1),
    lambda x: np.sum(x[:900].reshape(3, 3, 100), axis=(1, 2)), lambda x: np.mean(x[:500])])
def test_sums_of_evenly_spaced_elements_are_numpys_pairwise_sums_bit_for_bit(case):
    # a sequential sum of these lengths differs from numpy's in the last bits
    x = onp.random.default_rng(3).normal(size=1000) * onp.logspace(-4, 4, 1000)
    fast = compile(case, backend="native")
    fast(x)
    assert onp.array_equal(fast(x), case(x))
    assert interpreter.OP["SUM"] in _op_codes(fast, x)


def test_an_op_on_broadcast_scalars_is_computed_once():
    # a site's parameter check on a scalar broadcast over its plate, and the
    # backward pass's broadcast seed (a constant of one repeated number)
    def f(s, x):
        ok = np.where(np.broadcast_to(s, x.shape) > 0.0, 0.0, onp.nan)
        return np.sum(ok) + np.sum(onp.full(x.shape, -1.0) * x / s)

    fast = compile(f, backend="native")
    x = onp.random.default_rng(0).normal(size=1000)
    for s in (2.0, -1.0):
        fast(s, x)
        onp.testing.assert_array_equal(fast(s, x), f(s, x))
    # x, the product and the quotient, and a few numbers; storing each
    # broadcast (the constant, the comparison, the where) took 3,000 more
    assert fast.tapes[fast.cache_key(2.0, x)][0].native.ws.size < 3 * x.size + 20


def test_long_gathers_and_index_adjoints_read_their_block_directly():
    # a[group] and its adjoint (add.at) as radon has them: one table of
    # positions for the indexed side, the block side read as a slice
    idx = onp.random.default_rng(0).integers(0, 50, size=400)
    w = onp.linspace(-1.0, 1.0, 400)

    def f(a):
        return np.sum(np.exp(a[idx]) * w)

    fast = compile(value_and_grad(f), backend="native")
    numpy = compile(value_and_grad(f), backend="numpy")
    a = onp.random.default_rng(1).normal(size=50)
    fast(a)
    got, want = fast(a), numpy(a)
    assert got[0] == want[0] and onp.array_equal(got[1], want[1])  # in numpy's order
    ops = _op_codes(fast, a)
    assert interpreter.OP["GATHER"] in ops and interpreter.OP["SCATTER_FROM"] in ops


@pytest.mark.parametrize("s", [3.0, -7.1, 1e-300, 1e300, 2.0**-1020, 2.0**1020, 2.0**-1021,
                               2.0**1021, 5e-324, 0.0, -0.0, onp.inf, onp.nan])
def test_a_vector_over_a_number_is_within_an_ulp_of_the_quotient(s):
    # multiplied by the reciprocal where s and 1/s are normal numbers; else divided
    x = onp.concatenate([SPECIAL, [1e308, -1e-310, 5e-324, 1.7e-308],
                         onp.random.default_rng(0).normal(size=40) * onp.logspace(-300, 300, 40)])
    fast = compile(lambda x, s: x / s, backend="native")
    with onp.errstate(all="ignore"):  # the recording runs numpy
        fast(x, s)
        want = x / s
    got = fast(x, s)
    assert onp.array_equal(onp.isnan(got), onp.isnan(want))
    finite, infinite = onp.isfinite(want), onp.isinf(want)
    assert onp.array_equal(got[infinite], want[infinite])
    assert onp.all(onp.abs(got[finite] - want[finite]) <= onp.spacing(onp.abs(want[finite])))
    if not 2.0**-1020 <= abs(s) <= 2.0**1020:
        assert onp.array_equal(got, want, equal_nan=True)


def test_outputs_are_not_views_of_the_workspace():
    # the next call overwrites the workspace: results handed out earlier stay
    fast = compile(lambda x: {"a": 2.0 * x, "b": (x.sum(), x[::2] + 1.0)}, backend="native")
    x = onp.arange(6.0)
    fast(x)
    first = fast(x)
    fast(-x)
    onp.testing.assert_array_equal(first["a"], 2.0 * x)
    onp.testing.assert_array_equal(first["b"][1], x[::2] + 1.0)
    assert first["b"][0] == x.sum()


def test_linear_algebra_lowering_agrees_with_numpy():
    from probad.ad.scipy import linalg as sla
    rng = onp.random.default_rng(2)
    a = rng.normal(size=(4, 4))
    spd = a @ a.T + 4 * onp.eye(4)
    b = rng.normal(size=(4, 2))
    _compare(lambda m: np.linalg.cholesky(m), spd)
    _compare(lambda m, v: np.linalg.solve(m, v), a, b)
    low, up = onp.tril(spd), onp.triu(spd)
    _compare(lambda m, v: sla.solve_triangular(m, v, lower=True), low, b)
    _compare(lambda m, v: sla.solve_triangular(m, v, lower=True, trans=1), low, b)
    _compare(lambda m, v: sla.solve_triangular(m, v[:, 0]), up, b)
    _compare(lambda m, v: sla.solve_triangular(m, v, unit_diagonal=True), up, b)


# ------------------------------------------- the compiled NUTS on a native potential
def _guarded(y=None):
    mu = pb.sample("mu", dist.Normal(0.0, 1.0))
    if mu > 0:  # a guard: the native kernel hands such transitions back to Python
        pb.factor("half", -mu)
    pb.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.mark.parametrize("name", ["eight_schools_noncentered", "garch11", "guarded"])
def test_native_potential_drives_the_compiled_nuts_as_python_does(name):
    from probad.infer.chain import run_chain

    model, data = (_guarded, {"y": onp.array([0.3, -0.2])}) if name == "guarded" \
        else SUITE[name]
    python, native = (pb.infer.potential(model, data, backend="native") for _ in range(2))
    q0 = python.initial_point(seed=0)
    common = dict(seed_or_rng=3, draws=40, tune=60)
    calls = []

    def counted(q):
        calls.append(None)
        return native.value_and_grad(q)

    want = run_chain(python.value_and_grad, q0, **common)
    got = run_chain(counted, q0, native_potential=lambda: native.native, **common)
    if name != "guarded":  # (there, a transition crossing mu = 0 is handed back to Python)
        assert len(calls) < want.num_grad_evals / 10  # the trajectories ran in compiled code
    # The two potentials differ in the last bits (see assert_close),
    # and 100 transitions (60 warmup, 40 draws) carry that through the leapfrog; the
    # discrete choices below must still agree exactly.
    onp.testing.assert_allclose(got.positions, want.positions, rtol=0, atol=1e-12)
    for stat in ("tree_depth", "n_steps", "diverging"):
        onp.testing.assert_array_equal(got.stats[stat], want.stats[stat])
    if name == "guarded":
        assert native._energy_and_grad.trace_count == 2  # both branches were recorded


def test_hmc_with_the_native_kernel_compiles_the_potential_natively():
    model, data = SUITE["eight_schools_noncentered"]
    idata = pb.hmc(model, data, draws=30, tune=30, chains=1, seed=1, progress=False,
                   kernel_backend="native")
    assert idata.posterior["mu"].shape == (1, 30)
    assert onp.all(onp.isfinite(idata.posterior["tau"].values))


def test_a_native_replay_enters_no_floating_point_reporting(monkeypatch):
    # the interpreter issues no numpy warnings: the context that names the
    # primitive behind one (about 0.5 us a call) is for the numpy replay
    from probad.ad.compiler import function

    fast = compile(lambda x: np.sum(np.log(x)), backend="native")
    x = onp.array([1.0, 2.0, 3.0])
    fast(x)
    entered = []
    original = function.reported_at_user_code
    monkeypatch.setattr(function, "reported_at_user_code",
                        lambda: entered.append(1) or original())
    assert fast(x) == onp.sum(onp.log(x))
    assert not entered
