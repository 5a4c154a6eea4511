"""Warm starts (``pb.hmc(..., warm_start=idata)``) and extensions (``pb.extend``).

The extension tests are exactness tests: a run extended is the longer run
with the same seed, bit for bit, through either kernel, on one process or a
pool, after a netCDF round trip. They cannot pass by chance: one differing
bit of one draw fails them.
"""
from __future__ import annotations

import warnings

import arviz as az
import numpy as onp
import pytest

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.infer import SamplingWarning

PER_DRAW_GROUPS = ("posterior", "sample_stats", "log_likelihood")


def correlated(y):
    """Two correlated coordinates, a positive scale and an observed site: a
    dense or low-rank metric differs from a diagonal one here."""
    x = pb.sample("x", dist.MultivariateNormal(onp.zeros(2), covariance_matrix=onp.array(
        [[1.0, 0.9], [0.9, 1.0]])))
    s = pb.sample("s", dist.HalfNormal(1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(x[0], s), obs=y)


DATA = {"y": onp.array([0.3, -1.2, 0.8])}


def bimodal():
    """Modes at -5 and +5 with a ~50-nat barrier: a chain stays in its starting mode."""
    x = pb.sample("x", dist.Normal(0.0, 10.0))
    pb.factor("modes", np.logaddexp(dist.Normal(-5.0, 0.5).log_prob(x),
                                    dist.Normal(5.0, 0.5).log_prob(x)))


def quiet(fn, *args, **kwargs):
    """Run ``fn`` without the diagnostics' low-ESS warnings (short runs by design)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return fn(*args, progress=False, **kwargs)


def netcdf_round_trip(idata, tmp_path):
    idata.to_netcdf(tmp_path / "run.nc")
    return az.from_netcdf(tmp_path / "run.nc")


def assert_same_run(one, other):
    """Every per-draw group equal bit for bit, and the draw index the same."""
    for group in PER_DRAW_GROUPS:
        assert set(one[group].data_vars) == set(other[group].data_vars), group
        onp.testing.assert_array_equal(one[group].draw.values, other[group].draw.values)
        for name in one[group].data_vars:
            onp.testing.assert_array_equal(one[group][name].values, other[group][name].values,
                                           err_msg=f"{group}.{name}")
    for name in ("step_size", "inverse_metric", "last_position", "rng_state",
                 "num_gradient_evaluations"):
        onp.testing.assert_array_equal(onp.asarray(one.attrs[name]),
                                       onp.asarray(other.attrs[name]), err_msg=name)


# ------------------------------------------------------------------ extensions
def test_500_draws_extended_by_500_are_the_run_of_1000(tmp_path):
    options = dict(tune=200, chains=2, seed=11)
    one = quiet(pb.hmc, correlated, DATA, draws=1000, **options)
    half = netcdf_round_trip(quiet(pb.hmc, correlated, DATA, draws=500, **options), tmp_path)
    both = quiet(pb.extend, half, correlated, DATA, draws=500)
    assert_same_run(one, both)
    assert both.posterior.sizes["draw"] == 1000


@pytest.mark.parametrize("kernel_backend, adapt, dense, cores", [
    ("python", "fisher", False, 1),
    ("native", "fisher", True, 2),
    ("native", "stan", False, 1),
    ("auto", "fisher-lowrank", False, 2),
])
def test_an_extension_continues_every_kernel_and_metric_exactly(kernel_backend, adapt, dense,
                                                                cores, tmp_path):
    options = dict(tune=100, chains=2, seed=5, adapt=adapt, dense_mass=dense,
                   kernel_backend=kernel_backend)
    one = quiet(pb.hmc, correlated, DATA, draws=60, cores=1, **options)
    first = netcdf_round_trip(quiet(pb.hmc, correlated, DATA, draws=25, cores=cores, **options),
                              tmp_path)
    both = quiet(pb.extend, first, correlated, DATA, draws=35, cores=cores)
    assert_same_run(one, both)


def test_an_extension_of_a_thinned_static_hmc_run_is_exact():
    options = dict(tune=50, chains=2, seed=2, algorithm="hmc", num_steps=5, jitter=0.2, thin=3)
    one = quiet(pb.hmc, correlated, DATA, draws=40, **options)
    both = quiet(pb.extend, quiet(pb.hmc, correlated, DATA, draws=15, **options), correlated,
                 DATA, draws=25)
    assert_same_run(one, both)


def test_an_extension_of_an_extension_is_exact():
    options = dict(tune=50, chains=1, seed=9)
    one = quiet(pb.hmc, correlated, DATA, draws=30, **options)
    first = quiet(pb.hmc, correlated, DATA, draws=10, **options)
    both = quiet(pb.extend, quiet(pb.extend, first, correlated, DATA, draws=10), correlated,
                 DATA, draws=10)
    assert_same_run(one, both)


def test_an_extension_keeps_warmup_and_data_and_sums_the_run_attrs():
    first = quiet(pb.hmc, correlated, DATA, draws=20, tune=50, chains=2, seed=4,
                  warmup_draws=True)
    both = quiet(pb.extend, first, correlated, DATA, draws=30)
    assert both.posterior.draw.values.tolist() == list(range(50))
    for group in ("warmup_posterior", "warmup_sample_stats", "observed_data"):
        assert both[group].equals(first[group]), group
    assert both.attrs["sampling_time"] > first.attrs["sampling_time"]
    assert both.attrs["seed"] == first.attrs["seed"]
    assert both.attrs["adaptation_windows"] == first.attrs["adaptation_windows"]
    assert all(b > a for a, b in zip(first.attrs["num_gradient_evaluations"],
                                     both.attrs["num_gradient_evaluations"]))
    # The input is not changed.
    assert first.posterior.sizes["draw"] == 20


def test_an_extension_leaves_out_the_posterior_predictive_with_a_warning():
    first = quiet(pb.hmc, correlated, DATA, draws=20, tune=50, chains=1, seed=4)
    first.extend(az.from_dict(posterior_predictive={"y": onp.zeros((1, 20, 3))}))
    with pytest.warns(RuntimeWarning, match="posterior_predictive group .* left out"):
        both = quiet(pb.extend, first, correlated, DATA, draws=5)
    assert "posterior_predictive" not in both.groups()


def test_chains_cut_with_sel_are_extended_from_their_own_states():
    options = dict(tune=50, chains=3, seed=8)
    one = quiet(pb.hmc, correlated, DATA, draws=30, **options)
    first = quiet(pb.hmc, correlated, DATA, draws=10, **options).sel(chain=[2, 0])
    both = quiet(pb.extend, first, correlated, DATA, draws=20)
    assert both.posterior.chain.values.tolist() == [0, 2]
    onp.testing.assert_array_equal(both.posterior["x"].values,
                                   one.posterior["x"].sel(chain=[0, 2]).values)


# ------------------------------------------------------------------ warm starts
def test_a_warm_start_with_no_warmup_samples_with_the_earlier_step_size_and_metric():
    first = quiet(pb.hmc, correlated, DATA, draws=20, tune=100, chains=2, seed=1,
                  dense_mass=True)
    warm = quiet(pb.hmc, correlated, DATA, draws=20, tune=0, chains=2, seed=2, warm_start=first)
    step_sizes = warm.sample_stats["step_size"].values
    onp.testing.assert_array_equal(step_sizes, onp.repeat(onp.asarray(
        first.attrs["step_size"])[:, None], 20, axis=1))
    onp.testing.assert_array_equal(onp.asarray(warm.attrs["inverse_metric"]),
                                   onp.asarray(first.attrs["inverse_metric"]))


@pytest.mark.parametrize("tune", [0, 30])
def test_a_warm_start_begins_where_the_earlier_chains_stopped(tune):
    # Every chain of the first run starts in the mode at +5 and cannot leave
    # it; a warm start that did not begin there would start near 0 (uniform
    # in (-2, 2)) and reach the mode at -5 about half the time per chain.
    first = quiet(pb.hmc, bimodal, draws=20, tune=50, chains=4, seed=0, init={"x": 5.0})
    warm = quiet(pb.hmc, bimodal, draws=20, tune=tune, chains=4, seed=0, warm_start=first)
    assert onp.all(warm.posterior["x"].values > 0)


def test_a_warm_start_takes_new_data_and_a_new_stream():
    first = quiet(pb.hmc, correlated, DATA, draws=20, tune=50, chains=2, seed=1)
    new_data = {"y": onp.array([2.0, 1.5, 2.5])}
    warm = quiet(pb.hmc, correlated, new_data, draws=20, tune=0, chains=2, seed=1,
                 warm_start=first)
    onp.testing.assert_array_equal(warm.observed_data["y"].values, new_data["y"])
    assert not onp.array_equal(warm.posterior["x"].values, first.posterior["x"].values)


def test_a_warm_start_survives_netcdf_with_a_low_rank_metric(tmp_path):
    first = netcdf_round_trip(quiet(pb.hmc, correlated, DATA, draws=20, tune=100, chains=1,
                                    seed=1, adapt="fisher-lowrank"), tmp_path)
    warm = quiet(pb.hmc, correlated, DATA, draws=20, tune=0, chains=1, seed=2, warm_start=first)
    for name in ("inverse_metric_scale", "inverse_metric_vectors", "inverse_metric_values"):
        onp.testing.assert_array_equal(onp.asarray(warm.attrs[name]).ravel(),
                                       onp.asarray(first.attrs[name]).ravel(), err_msg=name)


# ------------------------------------------------------------------ bad input
def other_model(y):
    z = pb.sample("z", dist.Normal(0.0, 1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(z, 1.0), obs=y)


def wider(y, k=3):
    with pb.plate("k", k):
        x = pb.sample("x", dist.Normal(0.0, 1.0))
    s = pb.sample("s", dist.HalfNormal(1.0))
    with pb.plate("n", len(y)):
        pb.sample("y", dist.Normal(x[0], s), obs=y)


@pytest.fixture(scope="module")
def run():
    return quiet(pb.hmc, correlated, DATA, draws=10, tune=30, chains=2, seed=3)


def test_warm_start_refuses_a_model_without_the_runs_sites(run):
    with pytest.raises(ValueError, match="latent site 'z' is not in the InferenceData"):
        pb.hmc(other_model, DATA, warm_start=run, chains=2, progress=False)


def test_warm_start_refuses_a_site_of_another_shape(run):
    with pytest.raises(ValueError, match=r"site 'x' has shape \(3,\) in the model but \(2,\)"):
        pb.hmc(wider, DATA, warm_start=run, chains=2, progress=False)


def test_warm_start_refuses_another_chain_count(run):
    with pytest.raises(ValueError, match="warm_start holds 2 chain.* pass chains=2"):
        pb.hmc(correlated, DATA, warm_start=run, chains=4, progress=False)


def test_warm_start_and_init_are_exclusive(run):
    with pytest.raises(ValueError, match="init or warm_start, not both"):
        pb.hmc(correlated, DATA, warm_start=run, init={"s": 1.0}, chains=2, progress=False)


def test_an_inference_data_without_sampler_state_is_refused():
    idata = az.from_dict(posterior={"x": onp.zeros((2, 5, 2)), "s": onp.ones((2, 5))})
    with pytest.raises(ValueError, match="no sampler state to continue from"):
        pb.hmc(correlated, DATA, warm_start=idata, chains=2, progress=False)
    with pytest.raises(ValueError, match="no sampler state to continue from"):
        pb.extend(idata, correlated, DATA, progress=False)


def test_something_else_than_an_inference_data_is_refused(run):
    with pytest.raises(TypeError, match="expected the arviz.InferenceData of a pb.hmc run, got dict"):
        pb.extend(dict(run.attrs), correlated, DATA, progress=False)


def test_extend_refuses_other_data(run):
    with pytest.raises(ValueError, match="pass the model and data that were sampled"):
        pb.extend(run, correlated, {"y": onp.array([5.0, 5.0, 5.0])}, progress=False)


def test_extend_refuses_a_chain_that_did_not_stop_at_its_last_draw(run):
    # What pb.hmc returns when chains are cut to the shortest one's length.
    cut = run.isel(draw=slice(0, -1))
    with pytest.raises(ValueError, match="chain 0 did not stop at its last kept draw"):
        pb.extend(cut, correlated, DATA, progress=False)


def test_extend_refuses_a_bad_draw_count(run):
    with pytest.raises(ValueError, match="draws must be >= 1"):
        pb.extend(run, correlated, DATA, draws=0, progress=False)


def test_a_warm_starts_warmup_adapts_the_step_size_alone_and_plots():
    first = quiet(pb.hmc, correlated, DATA, draws=20, tune=100, chains=2, seed=1,
                  adapt="fisher-lowrank")
    new_data = {"y": onp.array([2.0, 1.5, 2.5])}
    warm = quiet(pb.hmc, correlated, new_data, draws=20, tune=40, chains=2, seed=2,
                 warm_start=first, warmup_draws=True)
    assert warm.attrs["adaptation"] == "step_size"
    for name in ("inverse_metric_scale", "inverse_metric_vectors", "inverse_metric_values"):
        onp.testing.assert_array_equal(onp.asarray(warm.attrs[name]),
                                       onp.asarray(first.attrs[name]), err_msg=name)
    # Dual averaging starts at the earlier step size, with no search, and moves from it.
    warmup_steps = warm.warmup_sample_stats["step_size"].values
    onp.testing.assert_array_equal(warmup_steps[:, 0], first.attrs["step_size"])
    assert onp.all(warmup_steps[:, 1] != warmup_steps[:, 0])
    fig = pb.plot_warmup(warm)
    assert "step_size" in fig.axes[0].get_title()


def test_ctrl_c_during_an_extension_returns_the_run_so_far():
    from tests.models import InterruptAt, clocked_normal

    options = dict(draws=20, tune=30, chains=2, seed=6, compile=False, cores=1)
    first = quiet(pb.hmc, clocked_normal, {"clock": InterruptAt(onp.inf)}, **options)
    # The model runs at every gradient (compile=False): stop the extension a
    # few hundred gradients in, inside chain 0, before chain 1 starts.
    with pytest.warns(RuntimeWarning, match="sampling stopped early"):
        both = quiet(pb.extend, first, clocked_normal, {"clock": InterruptAt(300)},
                     draws=10_000, cores=1)
    assert both.attrs["partial"]
    assert both.posterior.chain.values.tolist() == [0]
    n = both.posterior.sizes["draw"]
    assert 20 < n < 10_020
    assert both.posterior.draw.values.tolist() == list(range(n))
    onp.testing.assert_array_equal(both.posterior["x"].values[0, :20],
                                   first.posterior["x"].values[0])


def test_an_extended_run_can_be_warm_started_and_plotted():
    first = quiet(pb.hmc, correlated, DATA, draws=10, tune=50, chains=2, seed=4,
                  warmup_draws=True)
    both = quiet(pb.extend, first, correlated, DATA, draws=10)
    pb.plot_warmup(both)
    warm = quiet(pb.hmc, correlated, DATA, draws=10, tune=0, chains=2, seed=5, warm_start=both)
    onp.testing.assert_array_equal(warm.sample_stats["step_size"].values[:, 0],
                                   both.attrs["step_size"])


@pytest.mark.parametrize("model_name, cores", [("latent_count", 1), ("zip_gibbs", 2)])
def test_runs_with_gibbs_sampled_sites_extend_exactly(model_name, cores, tmp_path):
    # A random walk with its tuned reach (latent_count's n) and a whole
    # plate's indicators from their full conditionals (zip_gibbs's zero):
    # each chain goes on from its discrete values and reach, with no first
    # sweep, so the extension is the longer run bit for bit.
    from probad.infer import GibbsWarning
    from tests.infer import test_gibbs

    model = getattr(test_gibbs, model_name)
    data = test_gibbs.COUNT_DATA if model_name == "latent_count" else test_gibbs._zip_data(20)
    options = dict(tune=100, chains=2, seed=3, cores=cores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GibbsWarning)
        one = quiet(pb.hmc, model, data, draws=60, **options)
        half = netcdf_round_trip(quiet(pb.hmc, model, data, draws=30, **options), tmp_path)
        both = quiet(pb.extend, half, model, data, draws=30)
        assert_same_run(one, both)
        for name in ("last_discrete", "gibbs_reach"):
            onp.testing.assert_array_equal(one.attrs[name], both.attrs[name])
        # A warm start goes on from the same discrete values, with a new stream.
        warm = quiet(pb.hmc, model, data, draws=5, tune=0, chains=2, seed=4, warm_start=one)
        assert warm.posterior.sizes["draw"] == 5
