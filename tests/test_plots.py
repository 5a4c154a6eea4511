"""probad's own plots render to PNG (ArviZ's plots are ArviZ's to test)."""
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as onp  # noqa: E402
import pytest  # noqa: E402

import probad as pb  # noqa: E402
from probad import distributions as dist  # noqa: E402


def _model(y=None):
    mu = pb.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pb.sample("sigma", dist.HalfNormal(2.0))
    with pb.plate("obs", 20):
        pb.sample("y", dist.Normal(mu, sigma), obs=y)


DATA = {"y": onp.random.default_rng(0).normal(1.0, 0.5, size=20)}


@pytest.fixture(scope="module")
def idata():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)  # short run: low ESS is expected
        return pb.hmc(_model, DATA, draws=150, tune=300, chains=2, seed=3, progress=False,
                      warmup_draws=True, adapt="stan")


def test_plot_warmup_renders_windows(idata, tmp_path):
    fig = pb.plot_warmup(idata)
    ax_step, ax_depth = fig.axes
    assert ax_step.get_ylabel() == "step size" and ax_depth.get_xlabel() == "warmup iteration"
    # One shaded span per adaptation window on each axis.
    from probad.infer.adaptation import window_ends

    assert len(ax_step.patches) == len(window_ends(300))
    fig.savefig(tmp_path / "warmup.png")
    assert (tmp_path / "warmup.png").stat().st_size > 10_000
    plt.close(fig)


def test_plot_warmup_renders_the_fisher_scheme(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        fisher = pb.hmc(_model, DATA, draws=50, tune=300, chains=1, seed=3, progress=False,
                        warmup_draws=True, adapt="fisher")
    fig = pb.plot_warmup(fisher)
    ax_step, _ = fig.axes
    # Nine estimator windows (fisher_schedule(300)), the foreground's last stretch to
    # iteration 254, and the final phase from 255, hatched.
    assert len(ax_step.patches) == 11
    assert ax_step.patches[-1].get_hatch() == "//"
    assert "metric frozen" in ax_step.get_title()
    fig.savefig(tmp_path / "warmup.png")
    plt.close(fig)


def test_plot_warmup_needs_warmup_draws():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        short = pb.hmc(_model, DATA, draws=20, tune=30, chains=1, seed=3, progress=False)
    with pytest.raises(ValueError, match="warmup_draws=True"):
        pb.plot_warmup(short)


@pytest.fixture(scope="module")
def fit():
    return pb.advi(_model, DATA, seed=0, progress=False)


def test_plot_compare_overlays_fits(idata, fit, tmp_path):
    fig = pb.plot_compare(idata, fit, labels=["NUTS", "ADVI"], var_names=["mu", "sigma"])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["mu", "sigma"]
    assert all(len(ax.lines) == 2 for ax in panels)
    fig.savefig(tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    plt.close(fig)


def test_advi_plot_renders_the_elbo_trace(fit, tmp_path):
    ax = fit.plot()
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "ELBO"
    assert ax.get_title() == "ADVI (meanfield)"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["ELBO (one step)", "mean per 100 steps", "averaged iterates", "converged"]
    # The raw trace has one point per step; the shaded window starts where averaging does.
    assert len(ax.lines[0].get_xdata()) == fit.num_steps
    (window,) = ax.patches
    assert window.get_x() == fit.averaged_from
    ax.figure.savefig(tmp_path / "elbo.png")
    assert (tmp_path / "elbo.png").stat().st_size > 10_000
    plt.close(ax.figure)


def test_plot_elbo_draws_on_the_axes_it_is_given(fit):
    from probad.plots import plot_elbo

    fig, (left, right) = plt.subplots(1, 2)
    assert plot_elbo(fit, ax=right) is right
    assert not left.lines and len(right.lines[0].get_xdata()) == fit.num_steps
    plt.close(fig)
