"""The single-chain runner, probad.infer.chain: warmup then sampling, draws
and statistics, thinning, seeds, interruption, progress and its options.

The kernels it drives are tested in test_kernels.py and the adaptation
schemes in test_adaptation.py and test_fisher_adaptation.py.
"""
import io

import numpy as onp
import pytest
from tqdm.auto import tqdm

from probad.infer.chain import ADAPT_SCHEMES, STAT_DTYPES, ChainProgress, check_adapt, run_chain


def standard_normal(q):
    return 0.5 * q.dot(q), q


# ---------------------------------------- draws and statistics
def test_run_chain_reports_every_statistic():
    result = run_chain(standard_normal, onp.zeros(3), seed_or_rng=12, draws=40, tune=30,
                       warmup_draws=True, thin=2)
    assert result.positions.shape == (40, 3)
    assert result.warmup_positions.shape == (30, 3)
    for stats, n in ((result.stats, 40), (result.warmup_stats, 30)):
        assert set(stats) == set(STAT_DTYPES)
        assert all(values.shape == (n,) and values.dtype == STAT_DTYPES[name]
                   for name, values in stats.items())
    onp.testing.assert_allclose(result.stats["lp"],
                               [-standard_normal(q)[0] for q in result.positions])
    assert onp.all(result.stats["step_size"] == result.step_size)
    assert not result.partial
    # Every gradient is counted: sampling steps, warmup steps, and searches and init on top.
    leapfrogs = result.stats["n_steps"].sum() + result.warmup_stats["n_steps"].sum()
    assert result.num_grad_evals > leapfrogs


def test_thinning_keeps_every_thin_th_draw():
    full = run_chain(standard_normal, onp.zeros(2), seed_or_rng=13, draws=30, tune=20)
    thinned = run_chain(standard_normal, onp.zeros(2), seed_or_rng=13, draws=10, tune=20, thin=3)
    onp.testing.assert_array_equal(thinned.positions, full.positions[2::3])


@pytest.mark.parametrize("algorithm", ["nuts", "hmc"])
def test_same_seed_gives_identical_output(algorithm):
    options = dict(draws=50, tune=60, algorithm=algorithm, warmup_draws=True)
    if algorithm == "hmc":
        options.update(num_steps=5, jitter=0.1)
    first = run_chain(standard_normal, onp.ones(4), seed_or_rng=14, **options)
    second = run_chain(standard_normal, onp.ones(4), seed_or_rng=14, **options)
    other = run_chain(standard_normal, onp.ones(4), seed_or_rng=15, **options)
    onp.testing.assert_array_equal(first.positions, second.positions)
    onp.testing.assert_array_equal(first.warmup_positions, second.warmup_positions)
    for name in STAT_DTYPES:
        onp.testing.assert_array_equal(first.stats[name], second.stats[name])
    assert first.step_size == second.step_size
    assert first.num_grad_evals == second.num_grad_evals
    assert not onp.array_equal(first.positions, other.positions)


# ------------------------------------------------ interruption
def interrupt_after(calls):
    count = 0

    def potential(q):
        nonlocal count
        count += 1
        if count > calls:
            raise KeyboardInterrupt
        return standard_normal(q)

    return potential


def test_keyboard_interrupt_during_sampling_returns_partial_draws():
    complete = run_chain(standard_normal, onp.ones(3), seed_or_rng=16, draws=100, tune=50)
    calls = complete.num_grad_evals // 2
    result = run_chain(interrupt_after(calls), onp.ones(3), seed_or_rng=16, draws=100, tune=50)
    assert result.partial
    n = len(result.positions)
    assert 0 < n < 100
    assert all(len(values) == n for values in result.stats.values())
    # Interruption loses nothing already drawn: the kept draws are the uninterrupted chain's.
    onp.testing.assert_array_equal(result.positions, complete.positions[:n])
    assert result.num_grad_evals == calls + 1


def test_keyboard_interrupt_during_warmup_returns_warmup_so_far():
    result = run_chain(interrupt_after(200), onp.ones(3), seed_or_rng=17, draws=100, tune=100,
                       warmup_draws=True)
    assert result.partial
    assert result.positions.shape == (0, 3)
    assert 0 < len(result.warmup_positions) < 100
    assert onp.isfinite(result.step_size)


def test_should_stop_ends_a_python_chain_with_the_draws_so_far():
    complete = run_chain(standard_normal, onp.ones(2), seed_or_rng=22, draws=40, tune=20)
    events = []
    result = run_chain(standard_normal, onp.ones(2), seed_or_rng=22, draws=40, tune=20,
                       progress=events.append, should_stop=lambda: len(events) >= 35)
    assert result.partial
    assert len(events) == 35
    # 20 warmup iterations, then 15 kept draws: the uninterrupted chain's first 15.
    onp.testing.assert_array_equal(result.positions, complete.positions[:15])
    assert all(len(values) == 15 for values in result.stats.values())


# ---------------------------------------------------- progress
def test_progress_callback_sees_both_phases():
    events = []
    run_chain(standard_normal, onp.zeros(2), seed_or_rng=18, draws=5, tune=3, thin=2,
              progress=events.append)
    assert [e.phase for e in events] == ["warmup"] * 3 + ["sampling"] * 10
    assert [e.iteration for e in events] == list(range(1, 14))
    assert all(isinstance(e, ChainProgress) and e.total == 13 for e in events)


def test_progress_drives_a_given_tqdm_bar_without_closing_it():
    with tqdm(total=8, file=io.StringIO()) as bar:
        run_chain(standard_normal, onp.zeros(2), seed_or_rng=19, draws=5, tune=3, progress=bar)
        assert bar.n == 8
        assert not bar.disable  # closing a bar disables it


def test_the_progress_bar_shows_phase_step_size_divergences_and_rate(capsys):
    events = []
    run_chain(lambda q: (0.5 * q @ q, q), onp.zeros(2), seed_or_rng=0, draws=20, tune=20,
              progress=events.append)
    assert [e.phase for e in events] == ["warmup"] * 20 + ["sampling"] * 20
    assert events[-1].iteration == events[-1].total == 40
    # A hard wall (infinite energy past |q| = 1) makes trajectories diverge. The bar
    # counts each phase's divergences afresh, so its figure is the summary's.
    events = []
    walled = run_chain(lambda q: (0.5 * q @ q if onp.all(onp.abs(q) < 1) else onp.inf, q),
                       onp.zeros(2), seed_or_rng=1, draws=100, tune=100, warmup_draws=True,
                       progress=events.append)
    warm, kept = walled.warmup_stats["diverging"], walled.stats["diverging"]
    assert warm.sum() > 0 and kept.sum() > 0
    assert [e.divergences for e in events] == list(onp.cumsum(warm)) + list(onp.cumsum(kept))
    run_chain(lambda q: (0.5 * q @ q, q), onp.zeros(2), seed_or_rng=0, draws=20, tune=20,
              progress=True)
    text = capsys.readouterr().err
    assert "sampling, step size" in text and "divergences" in text and "draw/s" in text


# ----------------------------------------------------- options
@pytest.mark.parametrize("dense", [False, True])
def test_tune_zero_samples_with_the_step_size_and_metric_given(dense):
    inverse_metric = onp.diag([4.0, 0.25]) if dense else onp.array([4.0, 0.25])
    result = run_chain(standard_normal, onp.zeros(2), seed_or_rng=20, draws=10, tune=0,
                       step_size=0.3, inverse_metric=inverse_metric)
    assert result.step_size == 0.3
    assert onp.all(result.stats["step_size"] == 0.3)
    onp.testing.assert_array_equal(result.inverse_metric, inverse_metric)
    assert result.warmup_positions is None and result.warmup_stats is None


@pytest.mark.parametrize("adapt, dense, ndim", [("stan", False, 1), ("stan", True, 2),
                                                ("fisher", False, 1), ("fisher", True, 2)])
def test_the_adapted_metric_has_the_shape_asked_for(adapt, dense, ndim):
    result = run_chain(standard_normal, onp.ones(3), seed_or_rng=21, draws=5, tune=60,
                       adapt=adapt, dense_mass=dense)
    assert result.inverse_metric.ndim == ndim and result.inverse_metric.shape[0] == 3


@pytest.mark.parametrize(
    "options",
    [dict(algorithm="metropolis"), dict(num_steps=3), dict(jitter=0.1),
     dict(algorithm="hmc", num_steps=3, path_length=1.0), dict(thin=0), dict(target_accept=1.0)],
)
def test_run_chain_asserts_its_options(options):
    # Users' options are checked (with messages) by pb.hmc; run_chain only asserts.
    with pytest.raises(AssertionError):
        run_chain(standard_normal, onp.zeros(2), seed_or_rng=0, draws=5, tune=5, **options)


def test_unknown_adapt_scheme_and_dense_low_rank_are_refused():
    with pytest.raises(ValueError, match="adapt must be one of"):
        run_chain(standard_normal, onp.zeros(2), adapt="nutpie")
    with pytest.raises(ValueError, match="low-rank"):
        run_chain(standard_normal, onp.zeros(2), adapt="fisher-lowrank", dense_mass=True)
    with pytest.raises(ValueError, match="diagonal"):
        run_chain(standard_normal, onp.zeros(2), adapt="fisher-variance", dense_mass=True)


def test_check_adapt_accepts_each_scheme_and_refuses_others():
    for scheme in ADAPT_SCHEMES:
        check_adapt(scheme, dense_mass=scheme in ("stan", "fisher"))
    with pytest.raises(ValueError, match="adapt must be one of"):
        check_adapt("nutpie", dense_mass=False)
