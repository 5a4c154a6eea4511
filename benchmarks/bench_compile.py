"""Per-call cost of log densities and their gradients: eager probad, compiled
probad, autograd, numpy by hand, and jax.jit / NumPyro where installed.

Workloads:

- GARCH(1,1) log-likelihood over T=200 steps, value and gradient with
  respect to (omega, alpha, beta): a scalar recursion, all interpreter
  overhead;
- logistic regression log density, N=10,000 rows, D=20: a few large array
  operations, all numpy time;
- eight schools (non-centred) and radon varying intercepts potentials built
  by ``probad.infer.potential`` (with and without compile);
- a 200-primitive scalar chain: the compiled replay's cost per primitive.

Each figure is the best of several runs of many calls, which filters out noise
from other processes; ratios are relative to compiled probad.

Run: ``python benchmarks/bench_compile.py``
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path

import numpy as onp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import probad.ad.numpy as np  # noqa: E402
from probad.ad import value_and_grad  # noqa: E402
from probad.ad.compiler import compile  # noqa: E402
from tests.models import make_garch  # noqa: E402

REPEATS = 5
T_GARCH = 200
N_LOGREG, D_LOGREG = 10_000, 20


def seconds_per_call(fun, *args, budget=0.3):
    """Best-of-``REPEATS`` seconds per call, with enough calls per run to fill ``budget``."""
    fun(*args)
    start = time.perf_counter()
    fun(*args)
    calls = max(1, int(budget / REPEATS / max(time.perf_counter() - start, 1e-7)))
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            fun(*args)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def seconds_per_call_each(candidates: dict, budget=0.3) -> dict:
    """``seconds_per_call`` of several ``label: (fun, *args)`` candidates that
    take turns within each repeat, so that a slow spell of a shared machine
    slows all of them alike instead of skewing their ratios."""
    calls = {}
    for label, (fun, *args) in candidates.items():
        fun(*args)
        start = time.perf_counter()
        fun(*args)
        calls[label] = max(1, int(budget / REPEATS / max(time.perf_counter() - start, 1e-7)))
    best = dict.fromkeys(candidates, math.inf)
    for _ in range(REPEATS):
        for label, (fun, *args) in candidates.items():
            start = time.perf_counter()
            for _ in range(calls[label]):
                fun(*args)
            best[label] = min(best[label], (time.perf_counter() - start) / calls[label])
    return best


def report(title, timings, reference="compiled probad"):
    print(f"\n{title}")
    ref = timings.get(reference)
    for name, seconds in timings.items():
        if seconds is None:
            print(f"  {name:<22} not installed")
            continue
        ratio = f"{seconds / ref:6.2f}x" if ref else ""
        print(f"  {name:<22} {seconds * 1e6:10.1f} us   {ratio}")


def check_close(name, got, want):
    got_value, got_grad = got
    want_value, want_grad = want
    if not (onp.allclose(got_value, want_value, rtol=1e-9)
            and onp.allclose(onp.asarray(got_grad), want_grad, rtol=1e-6, atol=1e-9)):
        raise AssertionError(f"{name} disagrees with compiled probad")


# ------------------------------------------------------------------- GARCH
def garch_data(seed=0):
    rng = onp.random.default_rng(seed)
    omega, alpha, beta = 0.1, 0.15, 0.8
    y = onp.empty(T_GARCH)
    sigma2 = omega / (1 - alpha - beta)
    for t in range(T_GARCH):
        y[t] = math.sqrt(sigma2) * rng.standard_normal()
        sigma2 = omega + alpha * y[t] ** 2 + beta * sigma2
    return y


def garch_by_hand(params, y):
    """Forward recursion, then the adjoint recursion backwards."""
    omega, alpha, beta = params
    n = len(y)
    sigma2 = onp.empty(n)
    sigma2[0] = onp.var(y)
    ll = 0.0
    for t in range(1, n):
        sigma2[t] = omega + alpha * y[t - 1] ** 2 + beta * sigma2[t - 1]
        ll -= 0.5 * (math.log(2 * math.pi * sigma2[t]) + y[t] ** 2 / sigma2[t])
    grad = onp.zeros(3)
    adj = 0.0  # d ll / d sigma2[t], accumulated from later steps
    for t in range(n - 1, 0, -1):
        adj += -0.5 * (1.0 / sigma2[t] - y[t] ** 2 / sigma2[t] ** 2)
        grad += adj * onp.array([1.0, y[t - 1] ** 2, sigma2[t - 1]])
        adj *= beta
    return ll, grad


def bench_garch():
    y = garch_data()
    params = onp.array([0.1, 0.15, 0.8])
    eager = value_and_grad(make_garch(np, y))
    compiled = compile(eager)
    reference = compiled(params)
    timings = {"eager probad": seconds_per_call(eager, params, budget=1.0),
               "compiled probad": seconds_per_call(compiled, params)}
    import autograd
    import autograd.numpy as anp
    ag = autograd.value_and_grad(make_garch(anp, y))
    check_close("autograd", ag(params), reference)
    timings["autograd"] = seconds_per_call(ag, params, budget=1.0)
    check_close("numpy by hand", garch_by_hand(params, y), reference)
    timings["numpy by hand"] = seconds_per_call(garch_by_hand, params, y)
    timings["jax.jit"] = _jax_garch(y, params, reference)
    tape = compiled.tapes[compiled.cache_key(params)][0]
    report(f"GARCH(1,1), T={T_GARCH}: value and gradient ({len(tape.ops)} ops replayed, "
           f"{tape.n_recorded} recorded)", timings)


def _jax_garch(y, params, reference):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    vg = jax.jit(jax.value_and_grad(make_garch(jnp, jnp.asarray(y))))
    check_close("jax.jit", vg(jnp.asarray(params)), reference)
    return seconds_per_call(lambda p: jax.block_until_ready(vg(p)), jnp.asarray(params))


# ------------------------------------------------------ logistic regression
def logreg_data(seed=0):
    rng = onp.random.default_rng(seed)
    X = rng.normal(size=(N_LOGREG, D_LOGREG))
    w_true = rng.normal(size=D_LOGREG) * 0.5
    y = (rng.uniform(size=N_LOGREG) < 1.0 / (1.0 + onp.exp(-X @ w_true))).astype(float)
    return X, y


def make_logreg(numpy_module, X, y):
    """Standard normal prior on w, Bernoulli likelihood with logits X w."""

    def log_density(w):
        z = X @ w
        return (numpy_module.sum(y * z - numpy_module.logaddexp(0.0, z))
                - 0.5 * numpy_module.sum(w ** 2) - 0.5 * len(w) * math.log(2 * math.pi))

    return log_density


def logreg_by_hand(w, X, y):
    z = X @ w
    value = (onp.sum(y * z - onp.logaddexp(0.0, z)) - 0.5 * (w @ w)
             - 0.5 * len(w) * math.log(2 * math.pi))
    grad = X.T @ (y - 1.0 / (1.0 + onp.exp(-z))) - w
    return value, grad


def bench_logreg():
    X, y = logreg_data()
    w = onp.random.default_rng(1).normal(size=D_LOGREG) * 0.1
    eager = value_and_grad(make_logreg(np, X, y))
    compiled = compile(eager)
    reference = compiled(w)
    timings = {"eager probad": seconds_per_call(eager, w),
               "compiled probad": seconds_per_call(compiled, w)}
    import autograd
    import autograd.numpy as anp
    ag = autograd.value_and_grad(make_logreg(anp, X, y))
    check_close("autograd", ag(w), reference)
    timings["autograd"] = seconds_per_call(ag, w)
    check_close("numpy by hand", logreg_by_hand(w, X, y), reference)
    timings["numpy by hand"] = seconds_per_call(logreg_by_hand, w, X, y)
    timings.update(_jax_logreg(X, y, w, reference))
    report(f"Logistic regression, N={N_LOGREG}, D={D_LOGREG}: value and gradient", timings)


def _jax_logreg(X, y, w, reference):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {"jax.jit": None, "numpyro (jit)": None}
    jax.config.update("jax_enable_x64", True)
    vg = jax.jit(jax.value_and_grad(make_logreg(jnp, jnp.asarray(X), jnp.asarray(y))))
    check_close("jax.jit", vg(jnp.asarray(w)), reference)
    out = {"jax.jit": seconds_per_call(lambda p: jax.block_until_ready(vg(p)), jnp.asarray(w))}
    try:
        import numpyro
        import numpyro.distributions as ndist
        from numpyro.infer.util import potential_energy
    except ImportError:
        out["numpyro (jit)"] = None
        return out

    def model(X, y):
        w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        numpyro.sample("y", ndist.Bernoulli(logits=X @ w), obs=y)

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    energy = jax.jit(jax.value_and_grad(
        lambda w: potential_energy(model, (Xj, yj), {}, {"w": w})))
    value, grad = energy(jnp.asarray(w))
    check_close("numpyro", (-value, -grad), reference)
    out["numpyro (jit)"] = seconds_per_call(lambda p: jax.block_until_ready(energy(p)),
                                            jnp.asarray(w))
    return out


# ------------------------------------------------------- model potentials
EIGHT_SCHOOLS_Y = onp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SCHOOLS_SIGMA = onp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def radon_like_data(seed=0, houses=919, counties=85):
    """Synthetic data shaped like the Minnesota radon set (919 houses, 85 counties)."""
    rng = onp.random.default_rng(seed)
    county = rng.integers(0, counties, size=houses)
    floor = (rng.uniform(size=houses) < 0.2).astype(float)
    a = 1.5 + 0.3 * rng.standard_normal(counties)
    log_radon = a[county] - 0.6 * floor + 0.7 * rng.standard_normal(houses)
    return {"county": county, "floor": floor, "n_counties": counties, "log_radon": log_radon}


def bench_potentials():
    try:
        from probad import distributions as dist
        from probad.infer.density import potential
        from probad.primitives import deterministic, plate, sample
    except ImportError as exc:
        print(f"\nModel potentials: skipped ({exc})")
        return

    def eight_schools(J, sigma, y=None):
        mu = sample("mu", dist.Normal(0.0, 5.0))
        tau = sample("tau", dist.HalfCauchy(5.0))
        with plate("school", J):
            theta_t = sample("theta_t", dist.Normal(0.0, 1.0))
            theta = deterministic("theta", mu + tau * theta_t)
            sample("y", dist.Normal(theta, sigma), obs=y)

    def radon(county, floor, n_counties, log_radon=None):
        mu_a = sample("mu_a", dist.Normal(0.0, 10.0))
        sigma_a = sample("sigma_a", dist.HalfNormal(5.0))
        beta = sample("beta", dist.Normal(0.0, 10.0))
        sigma_y = sample("sigma_y", dist.HalfNormal(5.0))
        with plate("county", n_counties):
            a = sample("a", dist.Normal(mu_a, sigma_a))
        with plate("house", len(county)):
            sample("log_radon", dist.Normal(a[county] + beta * floor, sigma_y), obs=log_radon)

    workloads = [
        ("Eight schools (non-centred)", eight_schools,
         {"J": 8, "sigma": EIGHT_SCHOOLS_SIGMA, "y": EIGHT_SCHOOLS_Y}),
        ("Radon varying intercepts (919 houses, 85 counties)", radon, radon_like_data()),
    ]
    for title, model, data in workloads:
        compiled = potential(model, data)
        eager = potential(model, data, compile=False)
        q = compiled.initial_point(0)
        check_close("eager potential", eager.value_and_grad(q), compiled.value_and_grad(q))
        report(f"{title}: potential value and gradient",
               {"eager probad": seconds_per_call(eager.value_and_grad, q),
                "compiled probad": seconds_per_call(compiled.value_and_grad, q)})


# ------------------------------------------------------ replay overhead
def make_chain(numpy_module, steps=67):
    """``3 * steps`` scalar primitives: ``x = sin(x) * 0.9 + 0.1``, repeated."""

    def chain(x):
        for _ in range(steps):
            x = numpy_module.sin(x) * 0.9 + 0.1
        return x

    return chain


def bench_replay_overhead():
    """The replay against the same function run on plain numpy: the difference
    is what compilation leaves of probad's overhead."""
    x = onp.float64(0.3)
    plain = make_chain(onp)
    compiled = compile(make_chain(np))
    if compiled(x) != plain(x):
        raise AssertionError("replay disagrees with numpy")
    ops = len(compiled.tapes[compiled.cache_key(x)][0].ops)
    seconds = {"eager probad": seconds_per_call(make_chain(np), x),
               "compiled probad": seconds_per_call(compiled, x),
               "plain numpy": seconds_per_call(plain, x)}
    report(f"Scalar chain of {ops} primitives: value", seconds)
    overhead = (seconds["compiled probad"] - seconds["plain numpy"]) / ops
    print(f"  replay: {seconds['compiled probad'] / ops * 1e9:.0f} ns per primitive, "
          f"{overhead * 1e9:.0f} ns more than plain numpy")

    eager_grad = value_and_grad(make_chain(np))
    compiled_grad = compile(eager_grad)
    compiled_grad(x)
    tape = compiled_grad.tapes[compiled_grad.cache_key(x)][0]
    seconds = {"eager probad": seconds_per_call(eager_grad, x),
               "compiled probad": seconds_per_call(compiled_grad, x)}
    report(f"Scalar chain: value and gradient ({len(tape.ops)} primitives replayed)", seconds)
    print(f"  replay: {seconds['compiled probad'] / len(tape.ops) * 1e9:.0f} ns per primitive")


def main():
    warnings.filterwarnings("ignore", category=UserWarning, module="jax")
    bench_garch()
    bench_logreg()
    bench_potentials()
    bench_replay_overhead()


if __name__ == "__main__":
    main()
