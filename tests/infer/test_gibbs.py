"""Gibbs steps for discrete latent sites that are not enumerated (pb.hmc).

Posterior checks use the posteriordb z-score rule (``tests/posterior_checks.py``):
|z| < 4 for a mean and an sd, each in units of its own Monte-Carlo error; a
check fails only if it fails on every one of up to four seeds, so a correct
sampler fails one of a test's at most 8 z-checks with probability about
8 * (6.3e-5)**4 = 1.3e-16. Seeds are fixed, so every run is deterministic.
"""
import functools
import math
import warnings

import arviz as az
import numpy as onp
import pytest
from scipy import integrate, stats
from scipy.special import betaln
from scipy.special import logsumexp as lse

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad import handlers
from probad.infer.density import potential
from probad.infer.gibbs import GibbsSteps, GibbsWarning, gibbs_steps
from probad.primitives import SiteError
from tests.infer.test_enumerate import _zip_data, zip_enumerated, zip_marginalised
from tests.posterior_checks import assert_passes_on_repeat, z_scores, z_scores_exact


def _hmc(model, data, seed, chains=2, draws=1000, tune=500, cores=1, **kw):
    # cores=1: a worker process would compile the native kernels again.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GibbsWarning)
        return pb.hmc(model, data, draws=draws, tune=tune, chains=chains, seed=seed,
                      progress=False, cores=cores, **kw)


# ------------------------------------------------------- zero-inflated Poisson
def zip_gibbs(y):
    """The enumerated model of test_enumerate, its indicator left to Gibbs steps."""
    gate = pb.sample("gate", dist.Beta(1.0, 1.0))
    rate = pb.sample("rate", dist.Gamma(2.0, 0.5))
    with pb.plate("obs", len(y)):
        zero = pb.sample("zero", dist.Bernoulli(gate))  # 1: a structural zero
        with handlers.mask(mask=zero == 0):
            pb.sample("y", dist.Poisson(rate), obs=y)
        pb.factor("only_zeros", np.where(zero == 1, onp.where(y > 0, -onp.inf, 0.0), 0.0))


def _failures(a, b, names) -> dict:
    failures = {}
    for name in names:
        zs = z_scores(onp.asarray(a.posterior[name]), onp.asarray(b.posterior[name]))
        for what, z in zip(("mean", "sd"), zs):
            if not abs(z) < 4:
                failures[f"z of the {what} of {name}"] = f"{z:.2f}"
    return failures


def test_zip_indicator_is_updated_for_the_whole_plate_at_once():
    data = _zip_data()
    pot = potential(zip_gibbs, data, gibbs=True)
    steps = GibbsSteps(pot)
    assert steps.describe() == {"zero": "Gibbs from its full conditional over 2 values, all "
                                        "entries of plate(s) obs at once"}


def test_blocked_conditional_is_the_potential_entry_by_entry():
    # Each entry's log-odds from the one run equal the change of -U when
    # that entry alone flips, the others fixed.
    data = _zip_data(n=12)
    pot = potential(zip_gibbs, data, gibbs=True)
    steps = gibbs_steps(pot)
    q = pot.initial_point(seed=3)
    z = pot.discrete_values.copy()
    rows = onp.stack([onp.zeros(12), onp.ones(12)])
    local = onp.asarray(steps._local(q, z, rows, "zero"))
    for i in range(12):
        energies = []
        for value in (0.0, 1.0):
            flipped = z.copy()
            flipped[i] = value
            energies.append(pot.energy_at(q, flipped))
        if all(math.isfinite(e) for e in energies):
            assert local[1, i] - local[0, i] == pytest.approx(energies[0] - energies[1],
                                                              rel=1e-10, abs=1e-10)
        else:  # a positive count cannot be a structural zero
            assert data["y"][i] > 0 and local[1, i] == -onp.inf and energies[1] == onp.inf


def test_new_discrete_values_replay_the_same_tapes():
    pot = potential(zip_gibbs, _zip_data(), gibbs=True)
    steps = gibbs_steps(pot)
    q = pot.initial_point(seed=0)
    rng = onp.random.default_rng(0)
    seen = set()
    for _ in range(20):
        seen.add(steps(rng, q).tobytes())
        pot.value_and_grad(q)
    assert len(seen) > 1
    assert pot._energy_and_grad.trace_count == 1 and steps._local.trace_count == 1


@pytest.mark.slow
def test_zero_inflated_poisson_gibbs_matches_enumerated_and_marginalised():
    data = _zip_data()
    hand = _hmc(zip_marginalised, data, seed=22)
    enumerated = _hmc(zip_enumerated, data, seed=26)
    assert not _failures(enumerated, hand, ["gate", "rate"])

    def failures(seed):
        gibbs = _hmc(zip_gibbs, data, seed=seed)
        out = _failures(gibbs, hand, ["gate", "rate"])
        out.update({f"{k} (against enumerated)": v
                    for k, v in _failures(gibbs, enumerated, ["gate", "rate"]).items()})
        return out

    assert_passes_on_repeat(failures, seeds=(21, 23, 24, 25))


# ------------------------------------------------ a latent Poisson count
LAM, SIGMA_SCALE = 10.0, 3.0
COUNT_DATA = {"y": onp.array([11.1, 13.4, 9.8, 12.6, 14.0])}


def latent_count(y):
    """A count with infinite support, measured with noise of unknown scale."""
    n = pb.sample("n", dist.Poisson(LAM))
    sigma = pb.sample("sigma", dist.HalfNormal(SIGMA_SCALE))
    with pb.plate("obs", len(y)):
        pb.sample("y", dist.Normal(n, sigma), obs=y)


@functools.lru_cache(maxsize=None)
def _exact_latent_count():
    """Mean and sd of n and sigma: a sum over n of the Poisson prior times the
    likelihood with sigma integrated out by quadrature."""
    y = COUNT_DATA["y"]
    ns = onp.arange(0, 60)

    def joint(sigma, squares):
        # HalfNormal(sigma) times prod_i Normal(y_i | n, sigma), with squares = sum (y_i - n)^2.
        log = (-0.5 * (sigma / SIGMA_SCALE) ** 2 - len(y) * math.log(sigma)
               - squares / (2.0 * sigma ** 2))
        return math.exp(log)

    moments = onp.zeros((len(ns), 3))
    for i, n in enumerate(ns):
        squares = float(onp.sum((y - n) ** 2))
        for k in range(3):
            moments[i, k] = integrate.quad(lambda s: s ** k * joint(s, squares), 0.0, 60.0,
                                           limit=200)[0]
    mass = stats.poisson(LAM).pmf(ns) * moments[:, 0]
    p = mass / mass.sum()
    weights = stats.poisson(LAM).pmf(ns) / mass.sum()
    n_mean = p @ ns
    s_mean = weights @ moments[:, 1]
    return {"mean": {"n": n_mean, "sigma": s_mean},
            "sd": {"n": math.sqrt(p @ ns ** 2 - n_mean ** 2),
                   "sigma": math.sqrt(weights @ moments[:, 2] - s_mean ** 2)}}


def _count_failures(seed) -> dict:
    exact = _exact_latent_count()
    idata = _hmc(latent_count, COUNT_DATA, seed=seed, draws=2000)
    failures = {}
    for name in ("n", "sigma"):
        zs = z_scores_exact(idata.posterior[name].values, exact["mean"][name], exact["sd"][name])
        for what, z in zip(("mean", "sd"), zs):
            if not abs(z) < 4:
                failures[f"z of the {what} of {name}"] = f"{z:.2f}"
    return failures


def test_latent_count_takes_metropolis_steps():
    steps = GibbsSteps(potential(latent_count, COUNT_DATA, gibbs=True))
    assert steps.describe() == {
        "n": "Metropolis, random walk on the integers tuned in warmup (infinite support)"}


@pytest.mark.slow
def test_latent_poisson_count_matches_exact_posterior():
    assert_passes_on_repeat(_count_failures, seeds=(31, 32, 33, 34))


def large_count(y):
    """A count whose posterior sd (8) is far more than a +-1 step."""
    n = pb.sample("n", dist.Poisson(200.0))
    pb.sample("x", dist.Normal(0.0, 1.0))  # a continuous site for NUTS
    pb.sample("y", dist.Normal(n, 10.0), obs=y)


def test_random_walk_reach_is_tuned_in_warmup_so_a_large_count_mixes():
    # The exact posterior of n, summed over its support.
    ns = onp.arange(600)
    log_p = stats.poisson(200.0).logpmf(ns) + stats.norm(ns, 10.0).logpdf(205.0)
    p = onp.exp(log_p - lse(log_p))
    mean, sd = p @ ns, math.sqrt(p @ (ns - p @ ns) ** 2)
    idata = _hmc(large_count, {"y": 205.0}, seed=1, draws=500, tune=500)
    # +-1 steps gave a bulk ESS of 3 to 20 here; a tuned reach gives about
    # 250, whose estimate falls below 100 with negligible probability.
    assert float(az.ess(idata, var_names=["n"])["n"]) > 100
    # The rule of the exact checks above: |z| < 4 for the mean and sd.
    z_mean, z_sd = z_scores_exact(idata.posterior["n"].values, mean, sd)
    assert abs(z_mean) < 4 and abs(z_sd) < 4
    # Sampling runs at the tuned reach; a new chain begins at 1 again.
    steps = gibbs_steps(potential(large_count, {"y": 205.0}, gibbs=True))
    steps.updates[0].scale = 20.0
    steps.restart()
    assert steps.updates[0].scale == 1.0


@pytest.mark.slow
def test_the_exact_check_catches_a_broken_metropolis_step(monkeypatch):
    # The test of the test: an acceptance ratio taken to the power 1/2 samples
    # a flatter posterior of n, and the same check fails on every seed.
    accept = GibbsSteps._accept

    def tempered(rng, log_ratio, current, proposal, update):
        return accept(rng, 0.5 * log_ratio, current, proposal, update)

    monkeypatch.setattr(GibbsSteps, "_accept", staticmethod(tempered))
    with pytest.raises(AssertionError, match="checks failed on all 4 seeds.*n"):
        assert_passes_on_repeat(_count_failures, seeds=(31, 32, 33, 34))


# ------------------------------------------------------------ the driver
SMALL = dict(draws=40, tune=40, chains=2)


def test_draws_join_the_posterior_with_plate_dims_and_the_attrs_say_how():
    data = _zip_data(n=10)
    with pytest.warns(GibbsWarning, match="'zero': Gibbs from its full conditional"):
        idata = pb.hmc(zip_gibbs, data, seed=1, progress=False, cores=1, **SMALL)
    zero = idata.posterior["zero"]
    assert zero.dims == ("chain", "draw", "obs")
    assert set(onp.unique(zero.values)) <= {0.0, 1.0}
    # A positive count is never a structural zero.
    assert not zero.values[..., data["y"] > 0].any()
    assert idata.attrs["discrete_sampling"].startswith("zero: Gibbs")
    assert set(idata.log_likelihood["y"].dims) == {"chain", "draw", "obs"}
    # pb.log_likelihood computes the group again from the posterior's draws.
    packaged = idata.log_likelihood["y"].values.copy()
    del idata.log_likelihood
    onp.testing.assert_array_equal(pb.log_likelihood(zip_gibbs, data, idata).log_likelihood["y"],
                                   packaged)


def test_same_seed_same_draws_in_processes_and_with_stan_adaptation():
    data = _zip_data(n=10)
    here = _hmc(zip_gibbs, data, seed=5, **SMALL)
    pooled = _hmc(zip_gibbs, data, seed=5, cores=2, **SMALL)
    for name in ("zero", "gate", "rate"):
        onp.testing.assert_array_equal(here.posterior[name].values, pooled.posterior[name].values)
    stan = _hmc(zip_gibbs, data, seed=5, adapt="stan", **SMALL)
    assert stan.posterior["zero"].shape == here.posterior["zero"].shape


def test_ctrl_c_keeps_the_discrete_draws_so_far(monkeypatch):
    data = _zip_data(n=10)
    full = _hmc(zip_gibbs, data, seed=7, **SMALL)
    sweep, calls = GibbsSteps.__call__, [0]

    def interrupted(self, rng, q, tune=False):
        calls[0] += 1
        if calls[0] == 60:  # the first chain's 60th sweep: 20 draws in
            raise KeyboardInterrupt
        return sweep(self, rng, q, tune)

    monkeypatch.setattr(GibbsSteps, "__call__", interrupted)
    with pytest.warns(RuntimeWarning, match="sampling stopped early"):
        partial = _hmc(zip_gibbs, data, seed=7, **SMALL)
    assert partial.attrs["partial"]
    n = partial.posterior.sizes["draw"]
    assert 0 < n < SMALL["draws"]
    onp.testing.assert_array_equal(partial.posterior["zero"].values,
                                   full.posterior["zero"].values[:1, :n])


@pytest.mark.slow
def test_sites_coupled_across_their_plate_are_updated_one_entry_at_a_time():
    def model(y):
        p = pb.sample("p", dist.Beta(2.0, 2.0))
        with pb.plate("obs", len(y)):
            z = pb.sample("z", dist.Bernoulli(p))
        # The number of ones enters one density: the entries are not independent.
        pb.sample("y", dist.Normal(np.sum(z), 1.0), obs=y)

    data = {"y": onp.array([2.0, 2.0, 2.0])}
    steps = GibbsSteps(potential(model, data, gibbs=True))
    assert steps.describe()["z"].endswith("one entry at a time")
    # The number of ones k has posterior C(3, k) B(2 + k, 5 - k) N(y | k, 1)^3
    # (p's Beta(2, 2) prior integrated out), an exhaustive sum over k.
    counts = onp.arange(4)
    log_post = onp.log([1, 3, 3, 1]) + betaln(2 + counts, 5 - counts) \
        + stats.norm(counts, 1.0).logpdf(2.0) * 3
    p = onp.exp(log_post - lse(log_post))
    mean, sd = p @ counts, math.sqrt(p @ counts ** 2 - (p @ counts) ** 2)

    def failures(seed):
        idata = _hmc(model, data, seed=seed, draws=1000, tune=300)
        total = idata.posterior["z"].values.sum(axis=-1)
        zs = z_scores_exact(total, mean, sd)
        return {f"z of the {what} of sum(z)": f"{z:.2f}" for what, z in zip(("mean", "sd"), zs)
                if not abs(z) < 4}

    assert_passes_on_repeat(failures, seeds=(3, 4, 5, 6))


def test_discrete_sites_with_vector_values_are_refused():
    def model():
        pb.sample("counts", dist.Multinomial(5, np.ones(3) / 3))
        pb.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(SiteError, match="site 'counts'.*scalar values only"):
        potential(model, gibbs=True)


def test_a_model_with_only_discrete_latent_sites_is_refused():
    def model():
        n = pb.sample("n", dist.Poisson(3.0))
        pb.sample("y", dist.Normal(n, 1.0), obs=2.0)

    with pytest.raises(ValueError, match="only latent sites are discrete.*'n'"):
        pb.hmc(model, draws=10, tune=10, chains=1, progress=False)


def test_indexing_with_a_gibbs_site_says_to_cast_it():
    def model(y):
        locs = pb.sample("locs", dist.Normal(np.zeros(2), 1.0))
        z = pb.sample("z", dist.Categorical(np.ones(2) / 2))
        pb.sample("y", dist.Normal(locs[z], 1.0), obs=y)

    with pytest.raises(TypeError, match=r"float64.*z\.astype\(int\)"):
        potential(model, {"y": 0.5}, gibbs=True)

    def cast(y):
        locs = pb.sample("locs", dist.Normal(np.zeros(2), 1.0))
        z = pb.sample("z", dist.Categorical(np.ones(2) / 2))
        pb.sample("y", dist.Normal(locs[z.astype(int)], 1.0), obs=y)

    assert set(potential(cast, {"y": 0.5}, gibbs=True).discrete) == {"z"}


def test_other_inference_still_refuses_discrete_latent_sites():
    with pytest.raises(SiteError, match="site 'n' is a latent discrete.*pb.hmc alone"):
        potential(latent_count, COUNT_DATA)


# ------------------------------------------------- control flow, native kernel
W_PRIOR, W_SHIFT = 0.3, 0.5
W_DATA = {"y": onp.array([0.9, 0.2, 1.4, 0.6])}


def switch_by_branch(y):
    w = pb.sample("w", dist.Bernoulli(W_PRIOR))
    mu = pb.sample("mu", dist.Normal(0.0, 1.0))
    shift = W_SHIFT if w == 1 else -W_SHIFT  # a Python branch on the Gibbs site: a guard
    with pb.plate("obs", len(y)):
        pb.sample("y", dist.Normal(mu + shift, 1.0), obs=y)


@pytest.mark.slow
def test_a_branch_on_a_gibbs_site_gets_a_tape_per_branch_and_the_exact_posterior():
    # The compiled potential records one tape per branch and the native NUTS
    # kernel must follow the switch; P(w = 1 | y) with mu integrated out is
    # a ratio of two multivariate normals N(y; +-shift, I + 11').
    y = W_DATA["y"]
    pot = potential(switch_by_branch, W_DATA, gibbs=True, backend="native")
    assert pot.native is not None
    assert GibbsSteps(pot).describe() == {"w": "Gibbs from its full conditional over 2 values"}
    cov = onp.eye(len(y)) + 1.0
    log_odds = math.log(W_PRIOR / (1 - W_PRIOR)) \
        + stats.multivariate_normal(onp.full(len(y), W_SHIFT), cov).logpdf(y) \
        - stats.multivariate_normal(onp.full(len(y), -W_SHIFT), cov).logpdf(y)
    p = 1.0 / (1.0 + math.exp(-log_odds))

    def failures(seed):
        idata = _hmc(switch_by_branch, W_DATA, seed=seed, chains=2, draws=1000, tune=300,
                     kernel_backend="native")
        zs = z_scores_exact(idata.posterior["w"].values.astype(float), p,
                            math.sqrt(p * (1 - p)))
        return {f"z of the {what} of w": f"{z:.2f}" for what, z in zip(("mean", "sd"), zs)
                if not abs(z) < 4}

    assert_passes_on_repeat(failures, seeds=(41, 42, 43, 44))


@pytest.mark.slow
def test_uncompiled_runs_make_the_compiled_runs_draws():
    # compile=False runs the model at every evaluation (numpy replay and eager
    # evaluation agree to the last bit on this model), Gibbs steps included.
    data = _zip_data(n=10)
    options = dict(seed=8, kernel_backend="python", **SMALL)
    compiled = _hmc(zip_gibbs, data, **options)
    eager = _hmc(zip_gibbs, data, compile=False, **options)
    for name in ("zero", "gate", "rate"):
        onp.testing.assert_array_equal(compiled.posterior[name].values,
                                       eager.posterior[name].values)


# ------------------------------------------------ with enumerated sites too
SHIFT_DATA = {"y": onp.array([0.1, 4.2, 3.9, -0.3, 4.4])}


def shifted_mixture(y):
    """Each observation is shifted by a latent count n or not: the indicator
    is enumerated, the count takes Metropolis steps on the summed-out density."""
    mu = pb.sample("mu", dist.Normal(0.0, 3.0))
    n = pb.sample("n", dist.Poisson(4.0))
    with pb.plate("obs", len(y)):
        z = pb.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        pb.sample("y", dist.Normal(mu + z * n, 1.0), obs=y)


@pytest.mark.slow
def test_gibbs_steps_on_a_model_with_enumerated_sites_match_the_exact_posterior():
    # p(n | y) = Poisson(n; 4) sum_z 2^-5 N(y; z n, I + 9 11'), mu integrated
    # out in closed form and the 32 indicator patterns summed.
    y = SHIFT_DATA["y"]
    cov = onp.eye(len(y)) + 9.0
    patterns = onp.array([[(k >> i) & 1 for i in range(len(y))] for k in range(2 ** len(y))])
    ns = onp.arange(40)
    log_post = onp.array([stats.poisson(4.0).logpmf(n) + lse(
        [stats.multivariate_normal(n * z, cov).logpdf(y) for z in patterns]) for n in ns])
    p = onp.exp(log_post - lse(log_post))
    mean, sd = p @ ns, math.sqrt(p @ ns ** 2 - (p @ ns) ** 2)
    pot = potential(shifted_mixture, SHIFT_DATA, gibbs=True)
    assert pot.enumerated == ["z"]
    assert GibbsSteps(pot).describe() == {
        "n": "Metropolis, random walk on the integers tuned in warmup (infinite support)"}

    def failures(seed):
        idata = _hmc(shifted_mixture, SHIFT_DATA, seed=seed, draws=2000)
        zs = z_scores_exact(idata.posterior["n"].values, mean, sd)
        return {f"z of the {what} of n": f"{z:.2f}" for what, z in zip(("mean", "sd"), zs)
                if not abs(z) < 4}

    assert_passes_on_repeat(failures, seeds=(51, 52, 53, 54))


def test_coords_of_a_gibbs_site_are_checked_before_sampling():
    with pytest.raises(ValueError, match=r"coords\['obs'\] has 3 values, but site 'zero'"):
        pb.hmc(zip_gibbs, _zip_data(n=10), coords={"obs": [1, 2, 3]}, progress=False, **SMALL)
