"""``pb.hmc``, the MCMC driver: reproducibility, executors, the InferenceData it
returns, diagnostics, Ctrl-C and failed chains, known targets, bad input.

Sampling checks compare Monte Carlo estimates with exact values through
z-scores ``(estimate - truth) / (sd / sqrt(ESS))`` and require ``|z| < 4``
with fixed seeds; a failure is a bug, not a tolerance to widen.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor

import arviz as az
import numpy as onp
import pytest

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad import handlers
from probad.ad.misuse import TracedValueError
from probad.infer import LocScaleReparam, SamplingWarning, init_to_uniform, init_to_value
from probad.infer.mcmc import default_init
from tests.executors import InlineExecutor
from tests.posterior_checks import assert_passes_on_repeat
from tests.models import (EIGHT_SCHOOLS, InterruptAt, clocked_normal, eight_schools_centered,
                          eight_schools_noncentered, garch11, garch_data)

STATS = {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy",
         "energy_error", "max_energy_error"}
SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss",
           "Lawrenceville", "St. Paul's", "Mt. Hermon"]


def sample(model, data=None, **options):
    """``pb.hmc`` without progress bars or diagnostic warnings (short test runs
    have low ESS by design; tests of the warnings call ``pb.hmc`` directly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return pb.hmc(model, data, progress=False, **options)


def assert_same_draws(a, b):
    for group in ("posterior", "sample_stats"):
        first, second = a[group], b[group]
        assert set(first.data_vars) == set(second.data_vars)
        for name in first.data_vars:
            onp.testing.assert_array_equal(first[name].values, second[name].values,
                                           err_msg=f"{group}.{name}")


def z_scores(draws, truth):
    """z-scores of the mean over (chain, draw) of ``draws`` (chain, draw, k) against ``truth``."""
    ess = onp.asarray(az.ess(draws, method="bulk")) if draws.ndim == 2 else \
        onp.array([az.ess(draws[..., i], method="bulk") for i in range(draws.shape[-1])])
    flat = draws.reshape(-1, *draws.shape[2:])
    return (flat.mean(axis=0) - truth) / (flat.std(axis=0) / onp.sqrt(ess))


def assert_moments(draws, mean, variance):
    """Means and variances (as means of squared deviations) within Monte Carlo error."""
    assert onp.all(onp.abs(z_scores(draws, mean)) < 4)
    assert onp.all(onp.abs(z_scores((draws - mean) ** 2, variance)) < 4)


# ------------------------------------------------------------------ targets
def bimodal():
    """Two modes at -5 and +5 separated by a barrier of ~50 nats: a chain
    stays in the mode it starts next to."""
    x = pb.sample("x", dist.Normal(0.0, 10.0))
    pb.factor("modes", np.logaddexp(dist.Normal(-5.0, 0.5).log_prob(x),
                                    dist.Normal(5.0, 0.5).log_prob(x)))


def funnel():
    """Neal's funnel: v ~ N(0, 3), nine x_k ~ N(0, exp(v / 2))."""
    v = pb.sample("v", dist.Normal(0.0, 3.0))
    with pb.plate("k", 9):
        pb.sample("x", dist.Normal(0.0, np.exp(v / 2)))


def gaussian(covariance):
    pb.sample("x", dist.MultivariateNormal(onp.zeros(len(covariance)),
                                           covariance_matrix=covariance))


def iid_normal(dim):
    with pb.plate("k", dim):
        pb.sample("x", dist.Normal(0.0, 1.0))


def two_groups(a, b):
    """Two observed sites in two plates, sharing a scale."""
    sigma = pb.sample("sigma", dist.HalfNormal(2.0))
    mu = pb.sample("mu", dist.Normal(0.0, 5.0).expand((2,)).to_event(1))
    with pb.plate("first", len(a)):
        pb.sample("a", dist.Normal(mu[0], sigma), obs=a)
    with pb.plate("second", len(b)):
        pb.sample("b", dist.Normal(mu[1], sigma), obs=b)


TWO_GROUPS = {"a": onp.array([1.2, 0.4, 2.1, 1.7]), "b": onp.array([-0.3, 0.5, -1.1])}


# ------------------------------------------------------------ reproducibility
@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(max_workers=2) as executor:
        yield executor


def test_same_seed_gives_bit_identical_draws_sequentially_and_on_a_pool(pool):
    options = dict(draws=40, tune=40, chains=3, seed=11)
    first = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    again = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    pooled = sample(eight_schools_noncentered, EIGHT_SCHOOLS, executor=pool, **options)
    assert_same_draws(first, again)
    assert_same_draws(first, pooled)
    mu = first.posterior["mu"].values
    assert not onp.array_equal(mu[0], mu[1]) and not onp.array_equal(mu[1], mu[2])
    other = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **dict(options, seed=12))
    assert not onp.array_equal(other.posterior["mu"].values, mu)


def test_an_unseeded_run_records_the_seed_that_repeats_it():
    options = dict(draws=20, tune=20, chains=2)
    first = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    seed = first.attrs["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**63
    assert_same_draws(first, sample(eight_schools_noncentered, EIGHT_SCHOOLS, seed=seed, **options))
    other = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    assert other.attrs["seed"] != seed


def test_a_model_defined_in_a_function_runs_on_a_pool(pool):
    prior_scale = 3.0  # captured by the closure: the model only pickles by value

    def local_model(y):
        loc = pb.sample("loc", dist.Normal(0.0, prior_scale))
        with pb.plate("obs", len(y)):
            pb.sample("y", dist.Normal(loc, 1.0), obs=y)

    data = {"y": onp.array([0.5, 1.5, 1.0])}
    options = dict(draws=30, tune=30, chains=2, seed=4)
    pooled = sample(local_model, data, executor=pool, **options)
    assert_same_draws(sample(local_model, data, **options), pooled)
    assert pooled.posterior["loc"].shape == (2, 30)


@pytest.mark.parametrize("on_pool", [False, True])
def test_progress_bars_leave_the_draws_alone(on_pool, pool, capsys):
    options = dict(draws=20, tune=20, chains=2, seed=13)
    executor = pool if on_pool else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        shown = pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, executor=executor,
                       progress=True, **options)
    # Bars of chains on a pool are drawn here, by the main process (where a
    # notebook shows them), not in the workers.
    bars = capsys.readouterr().err
    assert "chain 0" in bars and "chain 1" in bars and "40/40" in bars
    assert_same_draws(shown, sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options))


# ----------------------------------------------------------- output structure
@pytest.fixture(scope="module")
def schools():
    return sample(eight_schools_noncentered, EIGHT_SCHOOLS, draws=100, tune=100, chains=2,
                  seed=5, warmup_draws=True, coords={"school": SCHOOLS})


def test_posterior_has_plate_dims_and_user_coords(schools):
    post = schools.posterior
    assert set(post.data_vars) == {"mu", "tau", "theta_t", "theta"}
    assert post["mu"].dims == ("chain", "draw")
    assert post["theta"].dims == ("chain", "draw", "school")
    assert post["theta_t"].dims == ("chain", "draw", "school")
    assert list(post["school"].values) == SCHOOLS
    assert post["theta"].shape == (2, 100, 8)
    onp.testing.assert_allclose(post["theta"], post["mu"] + post["tau"] * post["theta_t"])
    assert onp.all(post["tau"].values > 0)


def test_sample_stats_have_the_arviz_names(schools):
    stats = schools.sample_stats
    assert set(stats.data_vars) == STATS
    assert stats["diverging"].dtype == bool
    assert stats["tree_depth"].dtype.kind == stats["n_steps"].dtype.kind == "i"
    assert stats["lp"].shape == (2, 100)
    # A trajectory of depth d holds 2**d - 1 steps plus part of a rejected last subtree.
    depth, steps = stats["tree_depth"].values, stats["n_steps"].values
    assert onp.all((2**depth - 1 <= steps) & (steps < 2 ** (depth + 1)))
    # The step size is fixed after warmup, one value per chain.
    assert onp.all(stats["step_size"].values == stats["step_size"].values[:, :1])


def test_log_likelihood_observed_and_constant_data(schools):
    from scipy.stats import norm

    y, sigma = EIGHT_SCHOOLS["y"], EIGHT_SCHOOLS["sigma"]
    loglik = schools.log_likelihood["y"]
    assert loglik.dims == ("chain", "draw", "school")
    theta = schools.posterior["theta"].values
    onp.testing.assert_allclose(loglik.values, norm.logpdf(y, theta, sigma), rtol=1e-12)
    onp.testing.assert_array_equal(schools.observed_data["y"].values, y)
    assert schools.observed_data["y"].dims == ("school",)
    onp.testing.assert_array_equal(schools.constant_data["sigma"].values, sigma)


def test_log_likelihood_has_one_variable_per_observed_site():
    idata = sample(two_groups, TWO_GROUPS, draws=50, tune=50, chains=2, seed=3)
    assert set(idata.log_likelihood.data_vars) == {"a", "b"}
    assert idata.log_likelihood["a"].dims == ("chain", "draw", "first")
    assert idata.log_likelihood["b"].dims == ("chain", "draw", "second")
    mu, sigma = idata.posterior["mu"].values, idata.posterior["sigma"].values
    from scipy.stats import norm

    onp.testing.assert_allclose(idata.log_likelihood["b"].values,
                                norm.logpdf(TWO_GROUPS["b"], mu[..., 1:], sigma[..., None]))
    assert az.loo(idata, var_name="a").elpd_loo < 0


def test_warmup_groups_on_request(schools):
    assert "warmup_posterior" in schools.groups() and "warmup_sample_stats" in schools.groups()
    assert schools.warmup_posterior["theta"].shape == (2, 100, 8)
    assert set(schools.warmup_sample_stats.data_vars) == STATS
    # Warmup adapts the step size; sampling keeps the last one.
    assert onp.unique(schools.warmup_sample_stats["step_size"].values[0]).size > 1
    plain = sample(eight_schools_noncentered, EIGHT_SCHOOLS, draws=10, tune=10, chains=1, seed=5)
    assert not any(group.startswith("warmup") for group in plain.groups())


def test_attrs_record_the_run(schools):
    attrs = schools.attrs
    assert attrs["inference_library"] == "probad"
    assert attrs["inference_library_version"] == pb.__version__
    assert attrs["sampling_time"] > 0
    assert attrs["algorithm"] == "nuts"
    assert not attrs["partial"]
    step_sizes = onp.asarray(attrs["step_size"])
    onp.testing.assert_array_equal(step_sizes, schools.sample_stats["step_size"].values[:, 0])
    inverse_metric = onp.asarray(attrs["inverse_metric"])
    assert inverse_metric.shape == (2, 10)  # diagonal, over the 10 unconstrained coordinates
    assert onp.all(inverse_metric > 0)
    # Every leapfrog step is a gradient; the step size search and init add a few more.
    steps = schools.sample_stats["n_steps"].values.sum(axis=1) + \
        schools.warmup_sample_stats["n_steps"].values.sum(axis=1)
    grads = onp.asarray(attrs["num_gradient_evaluations"])
    assert onp.all(grads >= steps) and onp.all(grads < steps + 100)


def test_arviz_functions_accept_the_result(schools, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short chains: ArviZ warns about k-hat
        table = az.summary(schools)
        loo = az.loo(schools, pointwise=True)
    assert {"mu", "tau", "theta[Choate]"} <= set(table.index)
    assert loo.loo_i.shape == (8,)
    for plot, name in ((az.plot_trace, "trace.png"), (az.plot_energy, "energy.png")):
        with warnings.catch_warnings():
            # ArviZ 0.23 calls a matplotlib API that matplotlib 3.11 deprecates.
            warnings.simplefilter("ignore", DeprecationWarning)
            plot(schools)
        plt.gcf().savefig(tmp_path / name)
        plt.close("all")
        assert (tmp_path / name).stat().st_size > 0


def test_pb_summary_prints_a_table(schools, capsys):
    table = pb.summary(schools, var_names=["mu", "tau"])
    out = capsys.readouterr().out
    assert list(table.index) == ["mu", "tau"]
    # The count printed is the run's own (this short run may have a divergence or two).
    divergences = int(schools.sample_stats["diverging"].sum())
    for word in ("mean", "sd", "ess_bulk", "r_hat", "mu", "tau",
                 f"Number of divergences: {divergences}"):
        assert word in out


def test_thin_keeps_every_thin_th_draw():
    full = sample(eight_schools_noncentered, EIGHT_SCHOOLS, draws=40, tune=20, chains=1, seed=8)
    thinned = sample(eight_schools_noncentered, EIGHT_SCHOOLS, draws=20, tune=20, chains=1,
                     seed=8, thin=2)
    onp.testing.assert_array_equal(thinned.posterior["theta"].values,
                                   full.posterior["theta"].values[:, 1::2])
    onp.testing.assert_array_equal(thinned.sample_stats["n_steps"].values,
                                   full.sample_stats["n_steps"].values[:, 1::2])


def test_static_hmc():
    idata = sample(iid_normal, {"dim": 3}, algorithm="hmc", num_steps=5, draws=100, tune=100,
                   chains=2, seed=2)
    assert idata.attrs["algorithm"] == "hmc"
    assert onp.all(idata.sample_stats["n_steps"].values == 5)
    assert idata.posterior["x"].shape == (2, 100, 3)
    # Without a trajectory length: Stan's integration time 2 pi.
    idata = sample(iid_normal, {"dim": 3}, algorithm="hmc", draws=20, tune=50, chains=1, seed=2)
    steps = int(2 * onp.pi / idata.attrs["step_size"][0])
    assert onp.all(idata.sample_stats["n_steps"].values == steps)


def test_dense_mass_adapts_a_full_inverse_metric():
    covariance = onp.array([[1.0, 0.9], [0.9, 1.0]])
    idata = sample(gaussian, {"covariance": covariance}, dense_mass=True, draws=50, tune=200,
                   chains=2, seed=6)
    inverse_metric = onp.asarray(idata.attrs["inverse_metric"])
    assert inverse_metric.shape == (2, 2, 2)
    onp.testing.assert_allclose(inverse_metric, inverse_metric.transpose(0, 2, 1))
    # The off-diagonal is learned: the metric follows the target's correlation.
    assert onp.all(inverse_metric[:, 0, 1] > 0.5 * onp.sqrt(inverse_metric[:, 0, 0]
                                                            * inverse_metric[:, 1, 1]))


@pytest.mark.parametrize("adapt, dense", [("stan", False), ("fisher", False), ("fisher", True),
                                          ("fisher-lowrank", False), ("fisher-variance", False)])
def test_attrs_record_the_adaptation_and_survive_netcdf(adapt, dense, tmp_path):
    from probad.infer.adaptation import window_ends
    from probad.infer.fisher_adaptation import fisher_schedule

    covariance = onp.array([[1.0, 0.95], [0.95, 1.0]])
    idata = sample(gaussian, {"covariance": covariance}, adapt=adapt, dense_mass=dense, draws=20,
                   tune=100, chains=2, seed=6)
    idata.to_netcdf(tmp_path / "run.nc")
    attrs = az.from_netcdf(tmp_path / "run.nc").attrs
    assert attrs["adaptation"] == adapt
    if adapt == "stan":
        assert list(attrs["adaptation_windows"]) == window_ends(100)
    else:
        schedule = fisher_schedule(100)
        assert list(attrs["adaptation_windows"]) == list(schedule.switches)
        assert attrs["adaptation_final_start"] == schedule.final_start
        assert attrs["adaptation_early_end"] == schedule.early_end
    inverse_metric = onp.asarray(idata.attrs["inverse_metric"])
    assert inverse_metric.shape == ((2, 2, 2) if dense else (2, 2))
    if adapt == "fisher-lowrank":
        # The diagonal reported is that of S (I + U (values - 1) U^T) S, with the first
        # rank[c] columns of U chain c's own.
        from probad.infer.kernels import LowRankInverseMetric

        for c in range(2):
            k = attrs["inverse_metric_rank"][c]
            full = LowRankInverseMetric(onp.asarray(attrs["inverse_metric_scale"][c]),
                                        onp.asarray(attrs["inverse_metric_vectors"][c])[:, :k],
                                        onp.asarray(attrs["inverse_metric_values"][c])[:k])
            onp.testing.assert_allclose(inverse_metric[c], onp.diag(full.dense()), rtol=1e-12)


def test_low_rank_factors_of_different_ranks_are_padded_for_netcdf():
    from probad.infer.kernels import LowRankInverseMetric
    from probad.infer.mcmc import _inverse_metric_attrs

    e = onp.eye(3)
    attrs = _inverse_metric_attrs([LowRankInverseMetric(onp.ones(3), e[:, :2], onp.array([4.0, 0.2])),
                                   LowRankInverseMetric(onp.ones(3), e[:, :0], onp.zeros(0))])
    assert attrs["inverse_metric_rank"] == [2, 0]
    assert onp.asarray(attrs["inverse_metric_vectors"]).shape == (2, 3, 2)
    onp.testing.assert_array_equal(attrs["inverse_metric_values"], [[4.0, 0.2], [1.0, 1.0]])
    onp.testing.assert_allclose(attrs["inverse_metric"], [[4.0, 0.2, 1.0], [1.0, 1.0, 1.0]])


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_init_as_dict_and_as_strategy(side):
    by_dict = sample(bimodal, draws=20, tune=20, chains=2, seed=1, init={"x": 5.0 * side})
    by_strategy = sample(bimodal, draws=20, tune=20, chains=2, seed=1,
                         init=init_to_value(values={"x": 5.0 * side}))
    for idata in (by_dict, by_strategy):
        assert onp.all(onp.sign(idata.posterior["x"].values) == side)
    assert_same_draws(by_dict, by_strategy)


# ------------------------------------------------------------------ warnings
def test_divergences_are_counted_with_advice():
    with pytest.warns(SamplingWarning) as record:
        # The centred funnel diverges on ~1% of transitions, so one chain of 100 draws
        # often has none; 2 x 200 had at least 2 on each of 10 seeds tried, measured with
        # Stan's warmup (the Fisher one ends at another step size: not measured there).
        idata = pb.hmc(eight_schools_centered, EIGHT_SCHOOLS, draws=200, tune=200, chains=2,
                       seed=2, progress=False, adapt="stan")
    n_div = int(idata.sample_stats["diverging"].sum())
    assert n_div > 0
    message = next(str(w.message) for w in record if "divergent" in str(w.message))
    assert message.startswith(f"{n_div} divergent transition(s)")
    assert "target_accept" in message and "LocScaleReparam" in message


@pytest.mark.parametrize("max_tree_depth", [1, 2])
def test_saturated_tree_depth_is_reported(max_tree_depth):
    with pytest.warns(SamplingWarning, match=f"maximum tree depth {max_tree_depth}") as record:
        idata = pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, draws=50, tune=50, chains=2,
                       seed=3, max_tree_depth=max_tree_depth, progress=False)
    depth = idata.sample_stats["tree_depth"].values
    assert depth.max() == max_tree_depth
    n_sat = int((depth == max_tree_depth).sum())
    message = next(str(w.message) for w in record if "tree depth" in str(w.message))
    assert message.startswith(f"{n_sat} transition(s)")
    assert "dense_mass=True" in message


def test_low_ess_is_reported():
    with pytest.warns(SamplingWarning, match="bulk ESS below 200") as record:
        pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, draws=20, tune=50, chains=2, seed=4,
               progress=False)
    assert any("draw more samples" in str(w.message) for w in record)


def test_chains_in_different_modes_give_an_rhat_warning():
    with pytest.warns(SamplingWarning, match=r"R-hat > 1.01 for x") as record:
        idata = pb.hmc(bimodal, draws=100, tune=100, chains=4, seed=0, progress=False)
    assert any("multimodality" in str(w.message) for w in record)
    signs = onp.sign(idata.posterior["x"].values.mean(axis=1))
    assert set(signs) == {-1.0, 1.0}


def test_a_clean_run_warns_nothing():
    # R-hat is a statistic too: on this 2-d normal, 2 chains x 500 draws gave
    # R-hat > 1.01 on 3 of 80 seeds (two init radii), a 4% false failure; 4 x
    # 1000 draws gave none on 100 seeds, so this run fails by chance well
    # under 1% of the time.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplingWarning)
        warnings.simplefilter("error", RuntimeWarning)
        pb.hmc(iid_normal, {"dim": 2}, draws=1000, tune=200, chains=4, seed=1, progress=False)


# ------------------------------------------------- Ctrl-C and failing chains
# cores=1: the chains run here, one after another, so the clock counts every model run.
INTERRUPT_OPTIONS = dict(draws=300, tune=30, chains=2, seed=9, compile=False, cores=1)


@pytest.fixture(scope="module")
def uninterrupted():
    clock = InterruptAt(onp.inf)
    return sample(clocked_normal, {"clock": clock}, **INTERRUPT_OPTIONS), clock.calls


@pytest.mark.parametrize("chain", [0, 1])
def test_ctrl_c_returns_the_draws_so_far(uninterrupted, chain):
    full, _ = uninterrupted
    grads = full.attrs["num_gradient_evaluations"]
    # The check pass, each chain's init and its gradients run the model; half a
    # chain's gradients in, that chain is sampling (warmup is 30 of 330 iterations).
    stop_at = 3 + sum(grads[:chain]) + 2 * chain + grads[chain] // 2
    with pytest.warns(RuntimeWarning, match="sampling stopped early"):
        partial = pb.hmc(clocked_normal, {"clock": InterruptAt(stop_at)}, progress=False,
                         **INTERRUPT_OPTIONS)
    assert partial.attrs["partial"]
    assert partial.posterior.sizes["chain"] == chain + 1
    n = partial.posterior.sizes["draw"]
    assert 0 < n < INTERRUPT_OPTIONS["draws"]
    # The draws are exactly the first ones of the uninterrupted run.
    onp.testing.assert_array_equal(partial.posterior["x"].values,
                                   full.posterior["x"].values[:chain + 1, :n])


def test_ctrl_c_before_any_draw_propagates():
    with pytest.raises(KeyboardInterrupt):
        pb.hmc(clocked_normal, {"clock": InterruptAt(3)}, progress=False, **INTERRUPT_OPTIONS)


def test_ctrl_c_in_the_main_process_stops_chains_on_a_pool(pool):
    """A notebook's "interrupt kernel" signals the main process only: the
    workers must still stop and hand back their draws."""
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    try:
        with pytest.warns(RuntimeWarning, match="sampling stopped early"):
            idata = pb.hmc(iid_normal, {"dim": 2}, draws=300_000, tune=50, chains=2, seed=3,
                           executor=pool, progress=False)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 20.0
    assert idata.attrs["partial"] and idata.attrs["failed_chains"] == []
    assert idata.posterior.sizes["chain"] == 2
    assert 0 < idata.posterior.sizes["draw"] < 300_000
    # The workers are free again: nothing is left running on the pool.
    assert pool.submit(abs, -1).result(timeout=5) == 1


def test_ctrl_c_lost_in_a_finalizer_still_stops_chains_on_a_pool(monkeypatch):
    """Python drops an exception raised inside a finalizer, so a Ctrl-C that
    lands while the collector runs one never surfaces; the handler itself
    must tell the workers to stop (this failed once in the full suite)."""
    from probad.infer.mcmc import _StopFlag

    class SlowFinalizer:
        def __del__(self):
            time.sleep(2.0)  # the signal interrupts this sleep

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    stop = _StopFlag()
    try:
        with stop.raised_by_ctrl_c():
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
            finalized = SlowFinalizer()
            del finalized  # the last reference: the finalizer runs here
        assert [type(d.exc_value) for d in dropped] == [KeyboardInterrupt]
        assert stop()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.remove()


class FailInChain:
    """The default init (``default_init("fisher")``), except that it raises in chain ``bad``.

    The driver gives chain ``c`` the random stream ``SeedSequence(seed).spawn(chains)[c]``,
    from which the init stream is spawned; its spawn key starts with ``c``.
    """

    def __init__(self, bad: int):
        self.bad = bad

    def __call__(self, site, rng):
        if rng.bit_generator.seed_seq.spawn_key[0] == self.bad:
            raise RuntimeError("no valid start in this chain")
        return default_init("fisher")(site, rng)


@pytest.mark.parametrize("on_pool", [False, True])
def test_a_failing_chain_does_not_lose_the_others(on_pool, pool):
    options = dict(draws=30, tune=30, chains=3, seed=7)
    executor = pool if on_pool else None
    with pytest.warns(RuntimeWarning, match="chain 1 failed .*no valid start") as record:
        idata = pb.hmc(iid_normal, {"dim": 2}, init=FailInChain(1), executor=executor,
                       progress=False, **options)
    assert not any("chain 0 failed" in str(w.message) or "chain 2 failed" in str(w.message)
                   for w in record)
    assert idata.attrs["partial"] and idata.attrs["failed_chains"] == [1]
    assert list(idata.posterior["chain"].values) == [0, 2]
    complete = sample(iid_normal, {"dim": 2}, **options)
    onp.testing.assert_array_equal(idata.posterior["x"].values,
                                   complete.posterior["x"].values[[0, 2]])


# --------------------------------------------------------- known targets
@pytest.mark.slow
def test_funnel_diverges_when_centred_and_not_when_non_centred():
    # Whether a short run reaches the neck is chance: 6 of 30 seeds of 2 x 500
    # draws had no divergence. A sampler that never reports one fails on all
    # four seeds; a sound one does so with probability about 0.2^4 = 0.2%.
    options = dict(draws=500, tune=500, chains=2)

    def failures(seed):
        centred = sample(funnel, seed=seed, **options)
        return {} if int(centred.sample_stats["diverging"].sum()) > 0 else \
            {"centred divergences": 0}

    assert_passes_on_repeat(failures)
    non_centred = sample(handlers.reparam(funnel, config={"x": LocScaleReparam(0)}), seed=0,
                         **options)
    assert int(non_centred.sample_stats["diverging"].sum()) == 0
    assert set(non_centred.posterior.data_vars) == {"v", "x_decentered", "x"}
    assert_moments(non_centred.posterior["v"].values, 0.0, 9.0)


def ill_conditioned_covariance(dim=4, seed=0):
    """Eigenvalues 1 ... 1e4 (condition number 1e4) in a random rotation."""
    rotation, _ = onp.linalg.qr(onp.random.default_rng(seed).normal(size=(dim, dim)))
    return rotation @ onp.diag(onp.logspace(0, 4, dim)) @ rotation.T


@pytest.mark.slow
def test_dense_mass_recovers_an_ill_conditioned_gaussian_in_few_steps():
    covariance = ill_conditioned_covariance()
    data = {"covariance": covariance}
    dense = sample(gaussian, data, dense_mass=True, draws=500, tune=500, chains=2, seed=0)
    x = dense.posterior["x"].values
    assert int(dense.sample_stats["diverging"].sum()) == 0
    assert_moments(x, onp.zeros(4), onp.diag(covariance))
    # Off-diagonal second moments too: whitened draws are standard normal.
    whitened = onp.linalg.solve(onp.linalg.cholesky(covariance), x[..., None])[..., 0]
    assert_moments(whitened, onp.zeros(4), onp.ones(4))
    diagonal = sample(gaussian, data, draws=100, tune=300, chains=2, seed=0)
    dense_steps = dense.sample_stats["n_steps"].values.mean()
    diagonal_steps = diagonal.sample_stats["n_steps"].values.mean()
    assert dense_steps < 10
    assert diagonal_steps > 3 * dense_steps


def test_100_dimensional_standard_normal():
    idata = sample(iid_normal, {"dim": 100}, draws=500, tune=500, chains=2, seed=1)
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert_moments(idata.posterior["x"].values, onp.zeros(100), onp.ones(100))


# ------------------------------------------------------------- bad input
class NoChainsExecutor(Executor):
    """Fails the test if the driver starts a chain."""

    def submit(self, fn, /, *args, **kwargs):
        raise AssertionError("a chain was started")


def invalid_parameter():
    pb.sample("x", dist.Normal(0.0, -1.0))


def latent_counts():
    # Discrete with vector values: neither enumerated nor Gibbs-sampled.
    p = pb.sample("p", dist.Dirichlet(np.ones(3)))
    pb.sample("counts", dist.Multinomial(5, p))


@pytest.mark.parametrize("options, message", [
    (dict(algorithm="mala"), "algorithm"),
    (dict(target_accept=1.2), "target_accept"),
    (dict(max_tree_depth=0), "max_tree_depth"),
    (dict(num_steps=10), "algorithm='hmc' only"),
    (dict(algorithm="hmc", num_steps=10, path_length=2.0), "not both"),
    (dict(algorithm="hmc", num_steps=0), "num_steps"),
    (dict(algorithm="hmc", path_length=-1.0), "path_length"),
    (dict(draws=0), "draws"),
    (dict(adapt="nutpie"), "adapt must be one of"),
    (dict(adapt="fisher-lowrank", dense_mass=True), "low-rank"),
    (dict(adapt="fisher-variance", dense_mass=True), "diagonal"),
])
def test_bad_options_raise_before_sampling(options, message):
    with pytest.raises(ValueError, match=message):
        pb.hmc(iid_normal, {"dim": 2}, executor=NoChainsExecutor(), progress=False, **options)


@pytest.mark.parametrize("model, data, message", [
    (invalid_parameter, None, "site 'x'.*scale"),
    (latent_counts, None, "site 'counts'.*[Mm]arginalise"),
    (eight_schools_noncentered, dict(EIGHT_SCHOOLS, y=onp.array([28.0, 8.0, onp.nan, 7.0, -1.0,
                                                                  1.0, 18.0, 12.0])),
     "site 'y'.*NaN"),
])
def test_bad_input_raises_before_sampling(model, data, message):
    with pytest.raises(ValueError, match=message):
        pb.hmc(model, data, executor=NoChainsExecutor(), progress=False)


def float_of_a_latent(y):
    mu = pb.sample("mu", dist.Normal(0.0, 1.0))
    pb.sample("y", dist.Normal(float(mu), 1.0), obs=y)


def test_a_model_error_every_chain_would_meet_is_raised_once_before_any_chain_starts():
    """float() of a latent fails at every point: it is raised here, naming the
    site and the fix, not as "every chain failed" from the workers."""
    with pytest.raises(TracedValueError, match=r"latent site\(s\) 'mu': float\(\)"):
        pb.hmc(float_of_a_latent, {"y": onp.zeros(3)}, executor=NoChainsExecutor(),
               progress=False)


# ------------------------------------------- issue 19: nothing hidden, no work lost
def walled_clocked(clock):
    """A standard normal cut off at |x| = 0.05: nearly every trajectory hits
    the wall (infinite energy) and diverges."""
    x = pb.sample("x", dist.Normal(0.0, 1.0))
    pb.factor("wall", np.where(np.abs(x) < 0.05, 0.0, -np.inf))
    pb.factor("clock", clock())


def test_an_interrupted_run_still_reports_its_divergences():
    with pytest.warns(SamplingWarning, match=r"\(partial draws of an interrupted run\) \d+ "
                                             "divergent transition"):
        with pytest.warns(RuntimeWarning, match="sampling stopped early"):
            idata = pb.hmc(walled_clocked, {"clock": InterruptAt(1500)}, draws=1000, tune=30,
                           chains=1, seed=2, compile=False, progress=False, init={"x": 0.0})
    assert idata.attrs["partial"] and int(idata.sample_stats["diverging"].sum()) > 0


def gamma_with_a_free_shape(y):
    a = pb.sample("a", dist.Normal(1.0, 1.0))
    # For a <= 0 Gamma's log density is a finite number (or NaN): not a density.
    pb.sample("y", dist.Gamma(a, 1.0), obs=y)


def test_proposals_with_an_invalid_parameter_are_rejected_counted_and_reported_on_both_kernels():
    data = {"y": onp.array([0.3, 0.5, 0.9, 1.8])}
    counts = {}
    for backend in ("python", "native"):
        with pytest.warns(SamplingWarning, match=r"proposals were rejected .*invalid parameter"
                                                 r" or NaN: \[\d+\]; first: invalid parameter at "
                                                 r"site 'y': Gamma: parameter 'concentration' "
                                                 r"must satisfy positive"):
            idata = pb.hmc(gamma_with_a_free_shape, data, draws=100, tune=100, chains=1, seed=1,
                           progress=False, kernel_backend=backend)
        assert float(idata.posterior["a"].min()) > 0.0
        (rejections,) = idata.sample_stats.attrs["rejections"]
        counts[backend] = int(re.match(r"invalid parameter or NaN: \[(\d+)\]", rejections)[1])
    # Same seed, same draws up to rounding: the same proposals are rejected.
    assert counts["python"] == counts["native"] > 0


def test_one_chain_runs_the_ess_checks_and_says_rhat_needs_more_chains():
    with pytest.warns(SamplingWarning) as record:
        pb.hmc(bimodal, draws=30, tune=150, chains=1, seed=1, progress=False)
    messages = " | ".join(str(w.message) for w in record)
    assert "R-hat needs at least 2 chains" in messages
    assert "bulk ESS below 100" in messages


@pytest.mark.parametrize("options, error, message", [
    (dict(draws=2.5), TypeError, "draws must be an integer, got 2.5"),
    (dict(chains="2"), TypeError, "chains must be an integer, got '2'"),
    (dict(tune=True), TypeError, "tune must be an integer"),
    (dict(executor="pool"), TypeError, "executor must be a concurrent.futures.Executor"),
    (dict(seed=-1), TypeError, "seed must be a non-negative integer"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(coords=[1, 2]), TypeError, "coords must be a mapping"),
    (dict(thin=0), ValueError, "thin must be >= 1"),
    (dict(tune=-1), ValueError, "tune must be >= 0"),
    (dict(cores=0), ValueError, "cores"),
    (dict(cores=2, executor=ProcessPoolExecutor), TypeError, "executor"),
    (dict(jitter=0.1), ValueError, "algorithm='hmc' only"),
    (dict(target_accept=1.0), ValueError, "target_accept"),
])
def test_options_of_the_wrong_type_or_value_are_named(options, error, message):
    with pytest.raises(error, match=message):
        pb.hmc(iid_normal, {"dim": 2}, executor=options.pop("executor", NoChainsExecutor()),
               progress=False, **options)


def test_cores_and_executor_together_are_refused():
    with pytest.raises(ValueError, match="cores or executor"):
        pb.hmc(iid_normal, {"dim": 2}, executor=NoChainsExecutor(), cores=2, progress=False)


@pytest.mark.parametrize("tune, adapt, message", [
    (10, "stan", "tune=10 is too short to estimate the metric"),
    (100, "stan", "tune=100 is shorter than the adaptation windows"),
    (29, "fisher", r"tune=29 is too short for the Fisher warmup's windows .* at most 25 draws"),
])
def test_a_warmup_too_short_for_the_windows_warns_as_stan_does(tune, adapt, message):
    with pytest.warns(SamplingWarning, match=message):
        pb.hmc(iid_normal, {"dim": 2}, draws=10, tune=tune, chains=1, seed=0, progress=False,
               adapt=adapt)


def test_the_fisher_warmup_warns_below_its_first_window_only():
    """tune=30 is the shortest warmup in which a Fisher window completes."""
    from probad.infer.fisher_adaptation import fisher_schedule

    assert not fisher_schedule(29).switches and fisher_schedule(30).switches
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pb.hmc(iid_normal, {"dim": 2}, draws=10, tune=30, chains=1, seed=0, progress=False)
    assert not any("tune=" in str(w.message) for w in record)


def test_a_warmup_that_fits_the_windows_does_not_warn_about_them():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pb.hmc(iid_normal, {"dim": 2}, draws=10, tune=150, chains=1, seed=0, progress=False)
    assert not any("tune=" in str(w.message) for w in record)


def test_a_seed_beyond_int64_is_recorded_and_written_to_netcdf(tmp_path):
    options = dict(draws=10, tune=10, chains=2, seed=2**70)
    idata = sample(iid_normal, {"dim": 2}, **options)
    idata.to_netcdf(tmp_path / "run.nc")
    again = az.from_netcdf(tmp_path / "run.nc")
    repeated = sample(iid_normal, {"dim": 2}, **dict(options, seed=int(again.attrs["seed"])))
    assert_same_draws(idata, repeated)


def test_a_seed_sequence_is_recorded_and_repeats_the_run(tmp_path):
    import ast

    seed = onp.random.SeedSequence()  # fresh 128-bit entropy
    options = dict(draws=10, tune=10, chains=2)
    idata = sample(iid_normal, {"dim": 2}, seed=seed, **options)
    # The given SeedSequence is not consumed: passing it again repeats the run.
    assert_same_draws(idata, sample(iid_normal, {"dim": 2}, seed=seed, **options))
    idata.to_netcdf(tmp_path / "run.nc")
    attrs = az.from_netcdf(tmp_path / "run.nc").attrs
    rebuilt = onp.random.SeedSequence(ast.literal_eval(attrs["seed_entropy"]),
                                      spawn_key=tuple(attrs["seed_spawn_key"]),
                                      pool_size=int(attrs["seed_pool_size"]),
                                      n_children_spawned=int(attrs["seed_n_children_spawned"]))
    assert_same_draws(idata, sample(iid_normal, {"dim": 2}, seed=rebuilt, **options))


def test_coords_of_the_wrong_length_are_refused_before_sampling():
    with pytest.raises(ValueError, match=r"coords\['school'\] has 7 values, but site "
                                         r"'theta_t' has 8"):
        pb.hmc(eight_schools_noncentered, EIGHT_SCHOOLS, coords={"school": SCHOOLS[:7]},
               executor=NoChainsExecutor(), progress=False)


@pytest.mark.parametrize("failure", [MemoryError, KeyboardInterrupt])
def test_packaging_that_fails_in_the_log_likelihood_keeps_the_draws(failure, monkeypatch):
    """A MemoryError, or a second Ctrl-C, while the log-likelihood is computed:
    the result comes without that group, and pb.log_likelihood adds it later."""
    from probad.infer.density import Potential

    options = dict(draws=30, tune=30, chains=2, seed=5, cores=1)
    complete = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    calls = []
    original = Potential.constrain_and_log_likelihood

    def failing(self, q):
        calls.append(q)
        if len(calls) == 7:
            raise failure
        return original(self, q)

    monkeypatch.setattr(Potential, "constrain_and_log_likelihood", failing)
    with pytest.warns(RuntimeWarning, match="without it. Compute it later with "
                                            r"pb.log_likelihood\(model, data, idata\)"):
        idata = sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options)
    monkeypatch.undo()
    assert "log_likelihood" not in idata.groups()
    assert idata.attrs["log_likelihood_dropped"]
    assert_same_draws(idata, complete)
    restored = pb.log_likelihood(eight_schools_noncentered, EIGHT_SCHOOLS, idata)
    onp.testing.assert_allclose(restored.log_likelihood["y"].values,
                                complete.log_likelihood["y"].values, rtol=1e-12)
    assert restored.log_likelihood["y"].dims == ("chain", "draw", "school")


def test_the_stop_flag_lives_where_no_other_process_can_plant_it(tmp_path):
    import stat

    from probad.infer.mcmc import _StopFlag

    flag = _StopFlag(interval=0.0)
    try:
        info = os.stat(flag.directory)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        assert os.path.dirname(flag.path) == flag.directory and not flag()
        # Even a symlink at the flag's path is never written through.
        target = tmp_path / "target"
        target.write_text("untouched")
        os.symlink(target, flag.path)
        flag.raise_flag()
        assert target.read_text() == "untouched"
    finally:
        flag.remove()
    assert not os.path.exists(flag.directory)


class SlowStartInChain:
    """``init_to_uniform()``, after sleeping ``seconds`` in chain ``slow``."""

    def __init__(self, slow: int, seconds: float):
        self.slow, self.seconds = slow, seconds

    def __call__(self, site, rng):
        if rng.bit_generator.seed_seq.spawn_key[0] == self.slow:
            time.sleep(self.seconds)
        return init_to_uniform()(site, rng)


def test_a_second_ctrl_c_on_a_pool_is_an_interrupt_not_a_chain_failure():
    """Ctrl-C, then Ctrl-C again while chain 1 is still stopping: chain 0's
    draws come back, and chain 1 is not reported as failed."""
    timers = [threading.Timer(t, os.kill, (os.getpid(), signal.SIGINT)) for t in (3.0, 4.0)]
    with ProcessPoolExecutor(max_workers=2) as own_pool:
        for timer in timers:
            timer.start()
        try:
            with pytest.warns(RuntimeWarning, match=r"second Ctrl-C: chain\(s\) \[1\]"):
                idata = pb.hmc(iid_normal, {"dim": 2}, draws=300_000, tune=50, chains=2,
                               seed=3, init=SlowStartInChain(1, 8.0), executor=own_pool,
                               progress=False)
        finally:
            for timer in timers:
                timer.cancel()
    assert idata.attrs["failed_chains"] == [] and idata.attrs["partial"]
    assert list(idata.posterior["chain"].values) == [0]


class KillWorkerInChain:
    """The default init (``default_init("fisher")``), except that chain ``bad``'s worker process is
    SIGKILLed (as the OOM killer would) after ``delay`` seconds."""

    def __init__(self, bad: int, delay: float):
        self.bad, self.delay = bad, delay

    def __call__(self, site, rng):
        if rng.bit_generator.seed_seq.spawn_key[0] == self.bad:
            time.sleep(self.delay)
            os.kill(os.getpid(), signal.SIGKILL)
        return default_init("fisher")(site, rng)


def test_a_killed_worker_loses_only_its_own_chain():
    # The Python kernel: the compiled one finishes the healthy chain's 300,000
    # draws before the other worker dies, and this test is about a chain that
    # is still running when the pool breaks.
    with ProcessPoolExecutor(max_workers=2) as own_pool:
        with pytest.warns(RuntimeWarning, match="chain 1 failed .*worker process .* died"):
            idata = pb.hmc(iid_normal, {"dim": 2}, draws=300_000, tune=50, chains=2, seed=3,
                           init=KillWorkerInChain(1, 3.0), executor=own_pool, progress=False,
                           kernel_backend="python")
    assert idata.attrs["failed_chains"] == [1] and "died" in idata.attrs["failure_reasons"][0]
    assert list(idata.posterior["chain"].values) == [0]
    # The healthy chain was stopped when the pool broke and its draws read back.
    assert 0 < idata.posterior.sizes["draw"] < 300_000
    complete = sample(iid_normal, {"dim": 2}, draws=30, tune=50, chains=1, seed=3)
    onp.testing.assert_array_equal(idata.posterior["x"].values[0, :30],
                                   complete.posterior["x"].values[0])


# -------------------------------------------- issue 14: chains in parallel by default
def test_the_same_seed_gives_the_same_draws_on_one_core_or_many():
    options = dict(draws=30, tune=30, chains=3, seed=21)
    one = sample(eight_schools_noncentered, EIGHT_SCHOOLS, cores=1, **options)
    assert_same_draws(one, sample(eight_schools_noncentered, EIGHT_SCHOOLS, cores=2, **options))
    assert_same_draws(one, sample(eight_schools_noncentered, EIGHT_SCHOOLS, **options))


@pytest.mark.parametrize("kernel_backend", ["auto", "python"])
def test_chains_on_an_executor_replay_the_drivers_tapes(monkeypatch, kernel_backend):
    # Recording and lowering GARCH(1,1) over 200 steps took a worker 1.5-2 s
    # for every chain, more than sampling it, so the pool ran at half the
    # speed of one process. Native tapes now travel with the job; numpy ones
    # are recorded in the worker, and the pool's estimate counts that.
    from probad.ad.compiler import function
    from probad.infer import mcmc

    traced, in_worker = [], []
    record, run_pickled = function.Compiled._trace, mcmc._run_pickled

    def counted(self, *args):
        traced.append(bool(in_worker))
        return record(self, *args)

    def worker(payload):
        in_worker.append(True)
        try:
            return run_pickled(payload)
        finally:
            in_worker.clear()

    monkeypatch.setattr(function.Compiled, "_trace", counted)
    monkeypatch.setattr(mcmc, "_run_pickled", worker)
    options = dict(draws=20, tune=20, chains=2, seed=4, kernel_backend=kernel_backend)
    pooled = sample(garch11, garch_data(), executor=InlineExecutor(), **options)
    assert traced.count(True) == (0 if kernel_backend == "auto" else 2)
    assert_same_draws(pooled, sample(garch11, garch_data(), cores=1, **options))
    if kernel_backend == "auto":
        # In real worker processes the re-rolled loop's CALL finds the
        # process's own compiled body.
        monkeypatch.undo()
        assert_same_draws(pooled, sample(garch11, garch_data(), cores=2, **options))


@pytest.mark.parametrize("kernel_backend, counted", [("auto", False), ("python", True)])
def test_the_pool_estimate_counts_recording_where_a_worker_records(monkeypatch, kernel_backend,
                                                                    counted):
    # Each worker records numpy tapes again (only native ones travel), and
    # that cost must be in the estimate of what the pool saves.
    import types

    from probad.infer import mcmc

    clock = [0.0]
    monkeypatch.setattr(mcmc, "time", types.SimpleNamespace(
        perf_counter=lambda: clock[0], monotonic=time.monotonic))
    check_model_runs = mcmc._check_model_runs

    def recording_takes_ten_seconds(pot, init):
        check_model_runs(pot, init)
        clock[0] += 10.0

    seen = []
    monkeypatch.setattr(mcmc, "_check_model_runs", recording_takes_ten_seconds)
    monkeypatch.setattr(mcmc, "_choose_pool",
                        lambda pot, jobs, cores, build_time: seen.append(build_time))
    sample(garch11, garch_data(), draws=5, tune=5, chains=2, seed=1,
           kernel_backend=kernel_backend)
    assert seen == [10.0 if counted else 0.0]


def test_cores_none_keeps_a_cheap_run_here_and_pools_a_long_one(monkeypatch):
    from probad.infer import mcmc

    pot = pb.potential(eight_schools_noncentered, EIGHT_SCHOOLS)

    def jobs(iterations):
        options = dict(tune=iterations // 2, draws=iterations // 2, thin=1)
        return [mcmc._ChainJob(None, None, True, c, None, None, dict(options)) for c in range(4)]

    started = []
    monkeypatch.setattr(mcmc._shared_pool, "get", lambda workers: started.append(workers) or 1)
    # 4 chains x 60 iterations of eight schools: about 0.1 s in all, less than the pool costs.
    assert mcmc._choose_pool(pot, jobs(60), None, build_time=0.0) is None
    # 4 x 20,000 iterations take tens of seconds: every CPU works.
    chosen = mcmc._choose_pool(pot, jobs(20_000), None, build_time=0.0)
    workers = min(4, os.cpu_count())
    assert (chosen is None) if workers < 2 else (started == [workers])
    assert mcmc._choose_pool(pot, jobs(20_000), 1, build_time=0.0) is None


def test_a_worker_that_cannot_see_the_run_directory_still_runs_its_chain():
    """A cluster worker on another machine has no access to the driver's
    private directory: the chain runs all the same."""
    import cloudpickle

    from probad.infer import mcmc

    stop = mcmc._StopFlag()
    stop.remove()  # as seen from another machine: the directory does not exist
    job = mcmc._ChainJob(iid_normal, {"dim": 2}, True, 0, onp.random.SeedSequence(1),
                         init_to_uniform(), dict(draws=5, tune=5, algorithm="nuts",
                                                 target_accept=0.8, max_tree_depth=10,
                                                 dense_mass=False, thin=1, warmup_draws=False,
                                                 num_steps=None, path_length=None, jitter=0.0),
                         stop)
    result = mcmc._run_pickled(cloudpickle.dumps(job))
    assert len(result.positions) == 5 and not result.partial


def test_cores_none_in_a_thread_does_not_start_a_pool(monkeypatch):
    """pb.hmc called from a worker thread or process (a Dask task, an SBC
    simulation on a pool) is one of several in parallel already."""
    from concurrent.futures import ThreadPoolExecutor

    from probad.infer import mcmc

    pot = pb.potential(eight_schools_noncentered, EIGHT_SCHOOLS)
    options = dict(tune=10_000, draws=10_000, thin=1)
    jobs = [mcmc._ChainJob(None, None, True, c, None, None, dict(options)) for c in range(4)]
    monkeypatch.setattr(mcmc._shared_pool, "get", lambda workers: pytest.fail("a pool started"))
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(mcmc._choose_pool, pot, jobs, None, 0.0).result() is None
