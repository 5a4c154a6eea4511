"""Simulation-based calibration (``pb.sbc``), and fits on Dask and Ray.

The uniformity checks use a level of 1e-4 per p-value: the exact-posterior
tests below compute 12 p-values, so a correct implementation fails one with
probability about 1.2e-3 per run of this file (their seeds are fixed, so the
outcome only changes if the simulation's random stream does).
"""
import os
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as onp
import pytest

import probad as pb
from probad import distributions as dist
from probad import handlers
from probad.infer.sbc import SBCResult, ecdf_band, ecdf_reference
from tests.executors import InlineExecutor

LEVEL = 1e-4


def normal_model(n, y=None):
    mu = pb.sample("mu", dist.Normal(0.0, 1.0))
    with pb.plate("obs", n):
        pb.sample("y", dist.Normal(mu, 1.0), obs=y)


def beta_binomial(n, k=None):
    p = pb.sample("p", dist.Beta(2.0, 3.0))
    pb.sample("k", dist.Binomial(n, probs=p), obs=k)


def _observed(model, data):
    """The simulated data a conditioned model carries."""
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(**data)
    return {name: msg["value"] for name, msg in trace.items() if msg["is_observed"]}


def exact_normal(scale=1.0):
    """The exact posterior N(sum(y) / (n + 1), 1 / (n + 1)), its sd times ``scale``."""
    def method(model, data, seed):
        y = _observed(model, data)["y"]
        rng = onp.random.default_rng(seed)
        sd = scale / onp.sqrt(len(y) + 1)
        return {"mu": y.sum() / (len(y) + 1) + sd * rng.standard_normal((2, 500))}
    return method


def exact_beta(scale=1.0):
    """The exact posterior Beta(2 + k, 3 + n - k), spread ``scale`` times around its mean."""
    def method(model, data, seed):
        k = float(_observed(model, data)["k"])
        rng = onp.random.default_rng(seed)
        draws = rng.beta(2 + k, 3 + data["n"] - k, size=(2, 500))
        return {"p": draws.mean() + scale * (draws - draws.mean())}
    return method


CONJUGATE = [(normal_model, {"n": 5, "y": onp.zeros(5)}, exact_normal, "mu"),
             (beta_binomial, {"n": 20, "k": 0.0}, exact_beta, "p")]


@pytest.mark.parametrize("model, data, exact, name", CONJUGATE)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_posterior_passes_uniformity(model, data, exact, name, seed):
    result = pb.sbc(model, data, num_simulations=1000, method=exact(), seed=seed,
                    test_quantities={}, progress=False)
    assert result.ranks[name].shape == (1000,)
    assert float(result.uniformity()[name]) > LEVEL
    assert float(result.uniformity("ecdf")[name]) > LEVEL


@pytest.mark.parametrize("model, data, exact, name", CONJUGATE)
@pytest.mark.parametrize("scale", [0.8, 1.2])
def test_posterior_with_wrong_scale_fails_uniformity(model, data, exact, name, scale):
    result = pb.sbc(model, data, num_simulations=1000, method=exact(scale), seed=1,
                    test_quantities={}, progress=False)
    assert float(result.uniformity()[name]) < LEVEL


def test_ecdf_band_holds_uniform_ranks_at_its_level():
    # 400 sets of uniform ranks: about 5% should leave the 95% band anywhere.
    n, L = 100, 99
    z, lower, upper = ecdf_band(n, L, alpha=0.05)
    rng = onp.random.default_rng(0)
    ranks = rng.integers(0, L + 1, size=(400, n))
    ecdf = (ranks[..., None] <= onp.arange(L + 1)).mean(axis=1)
    outside = onp.any((ecdf < lower - 1e-12) | (ecdf > upper + 1e-12), axis=1).mean()
    # Binomial(400, 0.05): sd 0.011, so [0.01, 0.10] is about 4 sd on each side.
    assert 0.01 < outside < 0.10
    assert len(ecdf_reference(n, L)) == 2000


def test_nuts_fits_record_diagnostics_and_rank_log_likelihood():
    result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=3, seed=4,
                    draws=300, tune=300, chains=2, progress=False)
    assert set(result.ranks.data_vars) == {"mu", "log_likelihood"}
    ranks = result.ranks["mu"].values
    assert ranks.min() >= 0 and ranks.max() <= result.rank_draws
    d = result.diagnostics
    assert d["ok"].values.all() and (d["divergences"].values == 0).all()
    assert (d["max_rhat"].values < 1.05).all() and (d["min_ess"].values > 0).all()
    assert (d["seconds"].values > 0).all()


def test_failed_fit_is_reported_not_ranked():
    def flaky(model, data, seed):
        if _observed(model, data)["y"][0] > 0:
            raise FloatingPointError("the fit blew up")
        return exact_normal()(model, data, seed)

    with pytest.warns(RuntimeWarning, match="fits failed"):
        result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=20,
                        method=flaky, seed=5, progress=False, test_quantities={})
    d = result.diagnostics
    failed = ~d["ok"].values
    assert 0 < failed.sum() < 20
    assert all("the fit blew up" in e for e in d["error"].values[failed])
    assert result.ranks.sizes["simulation"] == 20 - failed.sum()


def test_interrupted_run_resumes_to_the_same_ranks(tmp_path):
    data = {"n": 5, "y": onp.zeros(5)}
    full = pb.sbc(normal_model, data, num_simulations=12, method=exact_normal(), seed=6,
                  progress=False, test_quantities={})
    calls, interrupt_at = [], [5]

    def interrupted(model, data, seed):  # Ctrl-C during the fifth fit of the first call
        calls.append(seed)
        if len(calls) == interrupt_at[0]:
            raise KeyboardInterrupt
        return exact_normal()(model, data, seed)

    path = tmp_path / "sbc.nc"
    with pytest.warns(RuntimeWarning, match="resume="):
        partial = pb.sbc(normal_model, data, num_simulations=12, method=interrupted, seed=6,
                         progress=False, test_quantities={}, resume=path)
    assert partial.attrs["partial"] and partial.ranks.sizes["simulation"] == 4
    saved = SBCResult.from_netcdf(path)
    onp.testing.assert_array_equal(saved.ranks["mu"].values, partial.ranks["mu"].values)
    # The same method name and seed: the four saved fits are kept, eight run.
    calls.clear()
    interrupt_at[0] = None
    resumed = pb.sbc(normal_model, data, num_simulations=12, method=interrupted, seed=6,
                     progress=False, test_quantities={}, resume=path)
    assert len(calls) == 8
    onp.testing.assert_array_equal(resumed.ranks["mu"].values, full.ranks["mu"].values)


def test_resume_refuses_other_settings(tmp_path):
    path = tmp_path / "sbc.nc"
    pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=2, method=exact_normal(),
           seed=7, progress=False, test_quantities={}, resume=path)
    with pytest.raises(ValueError, match="seed"):
        pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=2,
               method=exact_normal(), seed=8, progress=False, test_quantities={}, resume=path)


def test_model_without_observed_sites_is_refused():
    with pytest.raises(ValueError, match="observes no site"):
        pb.sbc(normal_model, {"n": 5}, num_simulations=2, method=exact_normal(), seed=1,
               progress=False)


def test_plots_draw_one_panel_per_scalar():
    result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=100,
                    method=exact_normal(), seed=9, progress=False)
    for fig in (result.plot_ranks(), result.plot_ecdf_diff()):
        assert sum(ax.get_visible() for ax in fig.axes) == 2


# --------------------------------------------------------- executors, engines
def _sbc_on(executor, **options):
    return pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=6, seed=10,
                  draws=200, tune=200, chains=2, progress=False, executor=executor, **options)


@pytest.fixture(scope="module")
def sequential():
    return _sbc_on(None)


def _assert_same_chains(executor):
    """pb.hmc's chains on ``executor`` are the sequential ones."""
    from tests.infer.test_mcmc import assert_same_draws, sample

    data, options = {"n": 5, "y": onp.linspace(-1, 1, 5)}, dict(draws=100, tune=100, chains=2, seed=3)
    assert_same_draws(sample(normal_model, data, executor=executor, **options),
                      sample(normal_model, data, **options))


def _assert_same_ranks(a, b):
    for name in a.ranks.data_vars:
        onp.testing.assert_array_equal(a.ranks[name].values, b.ranks[name].values)


def test_fits_on_an_executor_run_their_chains_one_after_another(monkeypatch):
    # pb.hmc in a Ray worker would otherwise start a process pool there (it
    # cannot tell a Ray worker from a main process), one per worker.
    import sys

    mcmc_module = sys.modules["probad.infer.mcmc"]
    asked, choose_pool = [], mcmc_module._choose_pool

    def recording(pot, jobs, cores, build_time):
        asked.append(cores)
        return choose_pool(pot, jobs, cores, build_time)

    monkeypatch.setattr(mcmc_module, "_choose_pool", recording)
    result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=2, seed=13,
                    draws=50, tune=50, chains=2, progress=False, executor=InlineExecutor())
    assert result.diagnostics["ok"].values.all()
    assert asked == [1, 1]


@pytest.mark.slow
def test_process_pool_gives_the_sequential_ranks(sequential):
    with ProcessPoolExecutor(2) as pool:
        _assert_same_ranks(_sbc_on(pool), sequential)


def _kill_once(marker):
    def method(model, data, seed):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return exact_normal()(model, data, seed)
    return method


@pytest.mark.slow
def test_killed_worker_on_a_process_pool_loses_no_finished_fit(tmp_path):
    # A SIGKILLed worker breaks a ProcessPoolExecutor for every fit in flight:
    # they are reported as failed, the finished ones kept, and resume= with a
    # new pool completes the calibration.
    path, marker = tmp_path / "sbc.nc", str(tmp_path / "killed")
    method = _kill_once(marker)
    data = {"n": 5, "y": onp.zeros(5)}
    with ProcessPoolExecutor(2) as pool, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = pb.sbc(normal_model, data, num_simulations=6, method=method, seed=11,
                       progress=False, test_quantities={}, executor=pool, resume=path)
    assert not first.diagnostics["ok"].values.all()
    assert all("BrokenProcessPool" in e or e == "" for e in first.diagnostics["error"].values)
    with ProcessPoolExecutor(2) as pool:
        done = pb.sbc(normal_model, data, num_simulations=6, method=method, seed=11,
                      progress=False, test_quantities={}, executor=pool, resume=path)
    assert done.diagnostics["ok"].values.all()
    reference = pb.sbc(normal_model, data, num_simulations=6, method=exact_normal(), seed=11,
                       progress=False, test_quantities={})
    _assert_same_ranks(done, reference)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _eager_potentials(n: int = 40) -> int:
    """Of ``n`` eight-schools potentials built here, how many run eagerly
    instead of replaying their native tape: a fit that ran eagerly is slower
    and rounds differently, so its ranks can differ from a sequential run's."""
    from probad.examples.eight_schools import SIGMA, Y, model
    from probad.infer.density import potential

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(potential(model, {"J": 8, "sigma": SIGMA, "y": Y}, backend="native").native
                   is None for _ in range(n))


@pytest.mark.slow
def test_dask_gives_the_sequential_ranks_and_draws(dask_client, sequential):
    _assert_same_ranks(_sbc_on(dask_client.get_executor()), sequential)
    _assert_same_chains(dask_client.get_executor())


@pytest.mark.slow
def test_potentials_compile_on_a_dask_worker(dask_client):
    # A Dask worker's event loop draws from Python's random generator while a
    # task traces in another thread; that must not make the trace give up.
    # Before the compiler told the threads apart, 4 of every 40 traces there
    # gave up (so 80 traces passed with probability ~2e-4).
    assert _eager_potentials(1) == 0
    assert [dask_client.submit(_eager_potentials, pure=False).result() for _ in range(2)] == [0, 0]


@pytest.mark.slow
def test_dask_reruns_the_fit_of_a_killed_worker(dask_client, tmp_path):
    # Dask reschedules a task whose worker died; nothing is lost.
    result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=6,
                    method=_kill_once(str(tmp_path / "killed")), seed=12, progress=False,
                    test_quantities={}, executor=dask_client.get_executor())
    assert result.diagnostics["ok"].values.all()


@pytest.mark.slow
def test_sbc_resubmits_a_fit_dask_gave_up_on(tmp_path):
    # With no failures allowed, Dask reports the killed worker's fit as lost;
    # pb.sbc submits it again, which must be a new task, not the lost one
    # (Dask names a task after its function and arguments).
    import dask

    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            result = pb.sbc(normal_model, {"n": 5, "y": onp.zeros(5)}, num_simulations=2,
                            method=_kill_once(str(tmp_path / "killed")), seed=14,
                            progress=False, test_quantities={}, executor=client.get_executor())
        finally:
            client.close()
            cluster.close()
    assert result.diagnostics["ok"].values.all(), result.diagnostics["error"].values


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield pb.infer.RayExecutor()
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_sequential_ranks_and_draws(ray_executor, sequential):
    _assert_same_ranks(_sbc_on(ray_executor), sequential)
    _assert_same_chains(ray_executor)
    assert ray_executor.submit(_eager_potentials).result() == 0


def test_a_simulation_run_twice_gives_the_same_ranks():
    # A retried or rerun fit in the same process must draw the same data and
    # fit: its streams come from the seed alone (SeedSequence.spawn would hand
    # out new children the second time).
    import sys

    sbc_module = sys.modules["probad.infer.sbc"]
    sim = sbc_module._Simulation(0, onp.random.SeedSequence(3), normal_model,
                                 {"n": 5, "y": onp.zeros(5)}, exact_normal(), {}, None, 99,
                                 {"log_likelihood": "log_likelihood"})
    first, second = sbc_module._run_simulation(sim), sbc_module._run_simulation(sim)
    assert first["ok"] and second["ok"]
    for name in ("mu", "log_likelihood"):
        assert first["ranks"][name] == second["ranks"][name], name
