"""Re-rolling: repeated runs of scalar instructions become calls of compiled
loops, with results bit-identical to the interpreter running them one by one."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad.scipy.special import logsumexp
from probad.ad import value_and_grad
from probad.ad.compiler import compile, interpreter

# numba is a dependency, but probad also runs without it (on the numpy replay,
# interpreter.AVAILABLE False); only the native backend's own tests need it.
pytestmark = pytest.mark.skipif(not interpreter.AVAILABLE, reason="numba is not installed")

if interpreter.AVAILABLE:
    from probad.ad.compiler import reroll

OP = interpreter.OP


def _table():
    ints = []

    def table(values):
        at = len(ints)
        ints.extend(int(v) for v in values)
        return at
    return ints, table


def _run(code, ints, ws):
    ws = ws.copy()
    status = onp.zeros(1, dtype=onp.int64)
    interpreter.run(onp.asarray(code, dtype=onp.int64),
                    onp.asarray(ints + [0], dtype=onp.int64), ws, status)
    return ws


def _ops(code):
    ops, pc = [], 0
    while pc < len(code):
        ops.append(int(code[pc]))
        pc += interpreter.WIDTH[ops[-1]]
    return ops


def _random_loop(rng, length, count, space):
    """``count`` copies of a random body of ``length`` scalar instructions,
    each operand shifting by its own stride per copy (often 0 or aliasing)."""
    kinds = [("S_ADD", None), ("S_SUB", None), ("S_MUL", None), ("S_DIV", None),
             ("S_UN", interpreter.UNARY["exp"]), ("S_UN", interpreter.UNARY["log"]),
             ("S_BIN", interpreter.BINARY["logaddexp"]), ("S_BIN", interpreter.BINARY["maximum"])]
    body = []
    for _ in range(length):
        name, f = kinds[rng.integers(len(kinds))]
        n = 2 if name == "S_UN" else 3
        # bases close together so that places alias; every place stays inside ws
        bases = rng.integers(space // 2 - 10, space // 2 + 10, size=n)
        strides = rng.choice([-1, 0, 0, 1, 1, 2], size=n)
        for j in range(1, n):  # often an earlier result of the same copy
            if body and rng.random() < 0.5:
                _, _, earlier_bases, earlier_strides = body[rng.integers(len(body))]
                bases[j], strides[j] = earlier_bases[0], earlier_strides[0]
        body.append((name, f, bases, strides))
    # some operands rotate through a few places, as the buffer plan's reuse of
    # temporaries does: no constant stride describes them
    rotating = [rng.random(len(bases)) < 0.2 for _, _, bases, _ in body]
    pool = rng.integers(space // 2 - 10, space // 2 + 10, size=5)
    code = []
    for i in range(count):
        for (name, f, bases, strides), rot in zip(body, rotating):
            places = onp.where(rot, pool[(bases + i * (1 + strides)) % len(pool)],
                               bases + i * strides)
            code += [OP[name]] + ([f] if f is not None else []) + list(places)
    return code


@pytest.mark.parametrize("seed", range(20))
def test_rerolled_random_loops_match_the_interpreter_bit_for_bit(seed):
    # Bodies drawn at random exercise the cases the generated code must get
    # right: a result read back in the same iteration (a register), a place
    # overwritten before it is read again (memory), reads of the previous
    # iteration, strides of 0, negative strides and places without a stride.
    rng = onp.random.default_rng(seed)
    space = 400
    prefix = [OP["S_ADD"], 1, 2, 3]  # something before and after the loop
    code = prefix + _random_loop(rng, int(rng.integers(1, 9)), 40, space) + prefix
    ints, table = _table()
    rolled = reroll.reroll(list(code), table)
    assert OP["CALL"] in _ops(rolled)  # the loop was re-rolled
    assert len(_ops(rolled)) < len(_ops(code)) // 4
    ws = rng.uniform(0.5, 2.0, size=space)
    want = _run(code, [], ws)
    got = _run(rolled, ints, ws)
    onp.testing.assert_array_equal(got, want)


def test_short_runs_stay_in_the_interpreter():
    code = []
    for i in range(reroll.MIN_ITERATIONS + 1):
        code += [OP["S_MUL"], 10 + i, 9 + i, 3]  # 5 instructions < MIN_INSTRUCTIONS
    ints, table = _table()
    assert reroll.reroll(list(code), table) == code


def smoothing_loss(params, y):
    """Exponential smoothing with a Student-t-like loss: a Python loop over time."""
    alpha, scale = params[0], params[1]
    level, loss = y[0], 0.0
    for t in range(1, len(y)):
        err = y[t] - level
        loss = loss + np.log1p(err * err / scale)
        level = level + alpha * err
    return loss


def test_a_python_loop_runs_as_a_compiled_loop_and_agrees_with_numpy():
    y = onp.random.default_rng(0).normal(size=150)
    params = onp.array([0.3, 1.5])
    fast = compile(value_and_grad(smoothing_loss), backend="native")
    slow = compile(value_and_grad(smoothing_loss), backend="numpy")
    fast(params, y)  # records
    program = fast.tapes[fast.cache_key(params, y)][0].native
    codes = _ops(program.code)
    assert codes.count(OP["CALL"]) >= 2  # the forward and the backward loop
    assert len(codes) < 300  # of ~3000 scalar instructions
    for scale in (1.0, 0.5, 1.3):
        value, grad = fast(params * scale, y)
        want_value, want_grad = slow(params * scale, y)
        # the numpy replay rounds the same operations the same way, except
        # that numpy's SIMD log1p may differ from libm's by an ulp
        onp.testing.assert_allclose(value, want_value, rtol=1e-12)
        onp.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def hmm_forward(log_trans, emission):
    """The forward algorithm on 2 states: a loop over 2-vectors."""
    gamma = emission[0]
    for t in range(1, emission.shape[0]):
        gamma = logsumexp(gamma + log_trans, axis=1) + emission[t]
    return logsumexp(gamma)


def test_a_loop_over_tiny_vectors_is_rerolled_too():
    # ops on at most 4 elements become scalar instructions, and their loop a
    # compiled loop; the results agree with numpy's
    rng = onp.random.default_rng(2)
    log_trans = onp.log(rng.dirichlet([1.0, 1.0], size=2))
    emission = rng.normal(size=(60, 2))
    fast = compile(value_and_grad(hmm_forward), backend="native")
    slow = compile(value_and_grad(hmm_forward), backend="numpy")
    fast(log_trans, emission)
    codes = _ops(fast.tapes[fast.cache_key(log_trans, emission)][0].native.code)
    assert codes.count(OP["CALL"]) >= 2 and len(codes) < 300  # of ~1500 instructions
    value, grad = fast(log_trans, emission)
    want_value, want_grad = slow(log_trans, emission)
    # libm's exp/log1p against numpy's SIMD loops: a few ulp
    onp.testing.assert_allclose(value, want_value, rtol=1e-12)
    onp.testing.assert_allclose(grad, want_grad, rtol=1e-12)


def test_a_compiled_function_pickles_without_its_tapes():
    import cloudpickle as pickle

    y = onp.random.default_rng(0).normal(size=50)
    params = onp.array([0.3, 1.5])
    fast = compile(value_and_grad(smoothing_loss), backend="native")
    fast(params, y)
    again = pickle.loads(pickle.dumps(fast))  # drops its tapes: records again
    onp.testing.assert_array_equal(again(params, y)[1], fast(params, y)[1])
    assert again.trace_count == 1


def test_a_pickled_program_finds_its_compiled_loops_and_counts_afresh(monkeypatch):
    # A worker process of pb.hmc adopts the driver's programs instead of tracing
    # the model again; their CALLs must point at compiled loops there.
    import pickle

    from probad.ad.compiler import native

    y = onp.random.default_rng(0).normal(size=50)
    fn = compile(value_and_grad(smoothing_loss), backend="native")
    fn(onp.array([0.3, 1.5]), y)
    (tape,) = [t for tapes in fn.tapes.values() for t in tapes]
    program = tape.native
    assert OP["CALL"] in _ops(program.code)
    program.status[1] = 7  # rejections counted here stay here
    copy = pickle.loads(pickle.dumps(program))
    onp.testing.assert_array_equal(copy.code, program.code)  # the same loops, relocated
    assert not copy.status.any()
    new = onp.array([0.2, 1.1])
    want_value, want_grad = program.replay(new, y)
    got_value, got_grad = copy.replay(new, y)
    assert got_value == want_value
    onp.testing.assert_array_equal(got_grad, want_grad)
    # Op codes mean what this interpreter says: a program lowered for another
    # one is not run.
    payload = pickle.dumps(program)
    monkeypatch.setattr(native, "interpreter_stamp", lambda: "another interpreter")
    assert pickle.loads(payload) is None
