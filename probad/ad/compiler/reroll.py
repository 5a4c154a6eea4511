"""Re-rolling: the iterations of a model's Python loop run as one compiled loop.

A Python loop over ``T`` time steps records ``T`` copies of the same few
primitives, and :mod:`.native` lowers them to ``T`` copies of the same few
interpreter instructions. This module finds such runs in a lowered
instruction stream: a *body* of ``L`` scalar instructions repeated ``R``
times, the op codes equal in every copy. The run is replaced by one
``CALL`` instruction of the interpreter, which calls a small numba function
generated for the body: a ``for`` loop over the ``R`` iterations with the
body's arithmetic inside. An operand's place in ``ws`` usually shifts by a
constant stride from one copy to the next (a value kept for the backward
pass) or stays put (stride 0); the buffer plan's reuse of freed temporaries
can also rotate a few places with a period of several iterations, and such
an operand reads its places from a list instead. Both, bases and strides or
lists, come from the position table.

Why this and not superinstructions (fusing chains of scalar ops inside the
interpreter; not prototyped, so this is the argument, not a measurement):
the interpreter spends ~3 ns on each scalar instruction (decoding its
operands and an unpredictable branch on the op code), and fusion only
removes part of that; the compiled body removes all of it, and
keeps a value computed in one op in a register for the next ops of the same
iteration. Ops on at most a few elements are lowered to scalar
instructions (:mod:`.native`), so that a loop over 2-vectors (an HMM's
forward algorithm) is re-rolled as well.

Measured (benchmarks/bench_native.py, value and gradient, ratios to NumPyro's
or jax's ``lax.scan`` under ``jax.jit``; "fn" is the numba entry point the
compiled NUTS calls, the other figure includes probad's Python call):

=================  ===============  ===============  ==========
model              interpreter      re-rolled        target
=================  ===============  ===============  ==========
hmm_example        0.86x (fn 0.70)  0.45x (fn 0.30)  0.2x
arma11             0.73x (fn 0.49)  0.38x (fn 0.19)  0.2x
GARCH(1,1), T=200  1.18x            0.46x            0.2x
=================  ===============  ===============  ==========

The targets are missed where probad's Python call is counted: around the
3-9 us of compiled work sit ~4 us of Python (the cache key, the inputs, the
outputs), and 0.2x of jax's ~13-30 us call leaves no room for it. The GARCH
runs all but 20 of its 4,374 instructions in two compiled loops; most of
what is left inside is libm's ``log`` (200 calls) and the HMM's ``exp`` and
``log1p`` (about 600 calls), which numpy and XLA vectorise.

Compile time is bounded by the body, not the tape: a body is tens of
instructions whatever ``T`` is (about 1 s per body on a cold cache, on a
loaded machine; a model has two, a forward and a backward one: the test
suite's garch11 took 2.2 s to its first native result with both compiled,
against 0.3 s with them cached, hmm_example and arma11 0.2-0.3 s). The
generated function depends only on the body's *structure* (op codes, which
operand is an earlier op's result of the same iteration, which operands
have a stride), never on positions, so one compilation serves every
model and every ``T`` with that loop body. Its source is written to the
user's cache directory (``native_cache.cache_directory()/bodies``) under a
hash of the structure and of the interpreter's source (its scalar kernels
are compiled into the body), and numba caches the machine code next to it,
so a new process loads rather than compiles.

Results are bit-identical to the interpreter's: the same operations on the
same doubles in the same order (``_unary``/``_binary`` are the interpreter's
own kernels), only without the dispatch.

The ``CALL`` instruction holds the generated function's address, valid in
this process only. A :class:`~.native.Program` sent to another process (the
worker processes of ``pb.hmc``, which then need not trace the model again)
carries, in place of each address, the body's structure
(:func:`calls_of`); the receiving process puts the address of its own
compiled body there (:func:`relocate`), from numba's disk cache.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile

import numpy as onp

from . import interpreter as interp
from .native_cache import cache_directory

__all__ = ["reroll", "calls_of", "relocate", "interpreter_stamp", "MIN_ITERATIONS",
           "MIN_INSTRUCTIONS", "MAX_BODY"]

#: A run is re-rolled when its body repeats at least this often ...
MIN_ITERATIONS = 4
#: ... and covers at least this many instructions (below, a compilation on a
#: cold cache costs more than the interpreter ever would).
MIN_INSTRUCTIONS = 32
#: The longest body searched for (instructions).
MAX_BODY = 64

_OP = interp.OP
# scalar instruction -> (its words after the op code, how many of them are
# function codes, how many positions it reads)
_SCALAR = {_OP["S_ADD"]: (3, 0, 2), _OP["S_SUB"]: (3, 0, 2), _OP["S_MUL"]: (3, 0, 2),
           _OP["S_DIV"]: (3, 0, 2), _OP["S_UN"]: (3, 1, 1), _OP["S_BIN"]: (4, 1, 2)}
_INFIX = {_OP["S_ADD"]: "+", _OP["S_SUB"]: "-", _OP["S_MUL"]: "*", _OP["S_DIV"]: "/"}

_compiled: dict[str, object] = {}  # structure hash -> numba cfunc, for this process
_structures: dict[int, tuple] = {}  # a compiled body's address -> its structure


def _decode(code: list[int]):
    """The instruction stream as (start word, op, f, positions) per instruction;
    positions are ``(out, in...)`` for scalar instructions, empty otherwise."""
    starts, ops, fs, pos = [], [], [], []
    pc, end = 0, len(code)
    while pc < end:
        op = code[pc]
        starts.append(pc)
        ops.append(op)
        if op in _SCALAR:
            n, nf, _ = _SCALAR[op]
            words = code[pc + 1:pc + 1 + n]
            fs.append(words[0] if nf else -1)
            pos.append(tuple(words[nf:]))
        else:
            fs.append(-1)
            pos.append(())
        pc += interp.WIDTH[op]
    return starts, ops, fs, pos


def _runs(ops, fs):
    """Greedy, left to right: ``(first instruction, L, R)`` of each run of
    ``R`` copies of a body of ``L`` scalar instructions (the same op codes)."""
    n = len(ops)
    if n < MIN_INSTRUCTIONS:
        return []
    scalar = onp.array([op in _SCALAR for op in ops])
    sig = onp.array(ops) * 1000 + onp.array(fs)
    index = onp.arange(n)
    cover = onp.zeros((MAX_BODY + 1, n), dtype=onp.int64)  # cover[L, s]: L * R of a run at s
    for L in range(1, min(MAX_BODY, n // MIN_ITERATIONS) + 1):
        m = n - L
        # same[i]: instruction i + L is a copy of instruction i
        same = (sig[:m] == sig[L:]) & scalar[:m] & scalar[L:]
        stop = onp.where(same, m, index[:m])
        r = (onp.minimum.accumulate(stop[::-1])[::-1] - index[:m]) // L + 1
        cover[L, :m] = onp.where(r >= MIN_ITERATIONS, L * r, 0)
    best_l = cover.argmax(axis=0)  # the shortest body of the longest run
    best = cover[best_l, index]
    runs, s = [], 0
    while s < n:
        if best[s] >= MIN_INSTRUCTIONS:
            L = int(best_l[s])
            runs.append((s, L, int(best[s]) // L))
            s += int(best[s])
        else:
            s += 1
    return runs


def _body(ops, fs, places):
    """The body's structure and its operands' places.

    ``places[k][j]`` holds operand ``j`` (0 the result, then the inputs) of
    the body's instruction ``k`` in every iteration. The structure is, per
    instruction, ``(op, f, sources, kinds)``: a source is the index of an
    earlier instruction of the same iteration whose result the input is
    (kept in a register) or -1 (read from ``ws``); a kind is ``"A"`` where
    the places step by a constant stride, ``"T"`` where they are listed.
    """
    body = []
    for k, (op, f, p) in enumerate(zip(ops, fs, places)):
        sources = []
        for j in range(1, len(p)):
            source = -1
            for m in range(k - 1, -1, -1):
                if onp.array_equal(places[m][0], p[j]):
                    source = m
                    break
                if (places[m][0] == p[j]).any():
                    break  # overwritten in between in some iteration: read the memory
            sources.append(source)
        kinds = tuple("A" if len(set(onp.diff(x).tolist())) <= 1 else "T" for x in p)
        body.append((op, f, tuple(sources), kinds))
    return tuple(body)


def _source(structure, name: str) -> str:
    lines = ["import numba",
             "from numba import types",
             "from probad.ad.compiler.interpreter import _unary, _binary",
             "",
             "@numba.cfunc(types.void(types.CPointer(types.float64), "
             "types.CPointer(types.int64)), cache=True, error_model='numpy')",
             f"def {name}(ws, p):",
             "    count = p[0]"]
    at = 1
    place = {}
    for k, (_, _, _, kinds) in enumerate(structure):
        for j, kind in enumerate(kinds):
            if kind == "A":
                lines.append(f"    b{k}_{j} = p[{at}]; s{k}_{j} = p[{at + 1}]")
                place[k, j] = f"ws[b{k}_{j} + i * s{k}_{j}]"
            else:
                lines.append(f"    x{k}_{j} = p[{at}]")
                place[k, j] = f"ws[p[x{k}_{j} + i]]"
            at += 2
    lines.append("    for i in range(count):")
    for k, (op, f, sources, _) in enumerate(structure):
        args = [f"t{m}" if m >= 0 else place[k, j + 1] for j, m in enumerate(sources)]
        if op in _INFIX:
            value = f" {_INFIX[op]} ".join(args)
        elif op == _OP["S_UN"]:
            value = f"_unary({f}, {args[0]})"
        else:
            value = f"_binary({f}, {args[0]}, {args[1]})"
        lines.append(f"        t{k} = {value}")
        lines.append(f"        {place[k, 0]} = t{k}")
    return "\n".join(lines) + "\n"


@functools.cache
def interpreter_stamp() -> str:
    """A hash of the interpreter's source: its op codes and scalar kernels."""
    with open(interp.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def body_function(structure):
    """The compiled loop of a body (a numba cfunc), from this process's memo,
    numba's disk cache, or a fresh compilation."""
    text = _source(structure, "body")
    digest = hashlib.sha256((interpreter_stamp() + text).encode()).hexdigest()[:24]
    fn = _compiled.get(digest)
    if fn is not None:
        return fn
    directory = os.path.join(cache_directory(), "bodies")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"body_{digest}.py")
    if not os.path.exists(path):
        # written once and never rewritten: numba's cache is stamped with its mtime
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    module_name = f"probad_body_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # numba's cache looks the module up by name
    spec.loader.exec_module(module)
    fn = _compiled[digest] = module.body
    _structures[fn.address] = structure
    return fn


def calls_of(code) -> list[tuple[int, tuple]]:
    """``(word, structure)`` of each ``CALL`` in a program's ``code``: where
    the instruction holds its body's address, and the body's structure, from
    which another process finds its own address (:func:`relocate`)."""
    found, pc, end = [], 0, len(code)
    while pc < end:
        op = int(code[pc])
        if op == _OP["CALL"]:
            found.append((pc + 1, _structures[int(code[pc + 1])]))
        pc += interp.WIDTH[op]
    return found


def relocate(code, calls) -> None:
    """Write this process's address of each body of ``calls`` (from
    :func:`calls_of` in another process) into ``code``, in place."""
    for word, structure in calls:
        code[word] = body_function(structure).address


def reroll(code: list[int], table) -> list[int]:
    """``code`` with every re-rollable run replaced by a ``CALL`` of its compiled body.

    ``table(values) -> offset`` appends to the program's position table.
    """
    starts, ops, fs, pos = _decode(code)
    runs = _runs(ops, fs)
    if not runs:
        return code
    out, done = [], 0
    for s, L, R in runs:
        out.extend(code[starts[done]:starts[s]] if s > done else [])
        places = [[onp.array([pos[s + i * L + k][j] for i in range(R)], dtype=onp.int64)
                   for j in range(len(pos[s + k]))] for k in range(L)]
        structure = _body(ops[s:s + L], fs[s:s + L], places)
        # the parameter block: R, two words per operand, then the listed places
        words, lists = [R], []
        at = 1 + 2 * sum(len(p) for p in places)
        for (_, _, _, kinds), p in zip(structure, places):
            for kind, x in zip(kinds, p):
                if kind == "A":
                    words += [x[0], x[1] - x[0] if R > 1 else 0]
                else:
                    words += [at, 0]
                    lists.append(x)
                    at += R
        fn = body_function(structure)
        out += [_OP["CALL"], fn.address, table(onp.concatenate([words] + lists))]
        done = s + L * R
    out.extend(code[starts[done]:] if done < len(starts) else [])
    return out
