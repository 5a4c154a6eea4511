"""The plots probad adds where ArviZ has none.

Everything else (trace, pair, energy, rank, forest, ppc) is ArviZ's job:
``idata`` from probad is an ordinary ``arviz.InferenceData``.
"""
from __future__ import annotations

import numpy as onp

__all__ = ["plot_compare", "plot_warmup", "plot_elbo", "plot_sbc_ranks", "plot_sbc_ecdf_diff"]


def _posterior_of(fit, draws: int, seed):
    """An InferenceData's posterior, or one drawn from a fit object."""
    if hasattr(fit, "posterior"):
        return fit.posterior
    return fit.sample(draws, seed=seed).posterior


def _scalar_columns(posterior, var_names):
    names = var_names or [v for v in posterior.data_vars]
    cols = {}
    for name in names:
        values = onp.asarray(posterior[name])
        flat = values.reshape(values.shape[:2] + (-1,))
        for i in range(flat.shape[-1]):
            label = name if flat.shape[-1] == 1 else f"{name}[{i}]"
            cols[label] = flat[..., i].ravel()
    return cols


def plot_compare(*fits, labels=None, var_names=None, draws: int = 2000, seed=0, max_panels: int = 16,
                 figsize=None):
    """Overlay marginal densities of several fits, one panel per scalar.

    Parameters
    ----------
    *fits : InferenceData or fit objects
        NUTS results, ADVI/Laplace fits (anything with ``.sample(draws)``).
    labels : list of str, optional
        Legend labels, one per fit (default: "fit 0", "fit 1", ...).
    var_names : list of str, optional
        Variables to show (default: all in the first fit, up to ``max_panels``
        scalars).
    draws : int
        Draws taken from fit objects that are not InferenceData.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    labels = list(labels) if labels is not None else [f"fit {i}" for i in range(len(fits))]
    columns = [_scalar_columns(_posterior_of(f, draws, seed), var_names) for f in fits]
    names = [n for n in columns[0] if all(n in c for c in columns)][:max_panels]
    ncols = min(4, len(names))
    nrows = int(onp.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3.6 * ncols, 2.8 * nrows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.ravel(), names):
        for cols, label in zip(columns, labels):
            x = cols[name]
            lo, hi = onp.quantile(x, [0.001, 0.999])
            grid = onp.linspace(lo, hi, 200)
            ax.plot(grid, gaussian_kde(x)(grid), label=label)
        ax.set_title(name)
        ax.set_xlabel("value")
        ax.set_ylabel("density")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize="small")
    fig.suptitle("Marginal posteriors")
    return fig


def plot_warmup(idata, *, figsize=(9, 5)):
    """Step size and tree depth across warmup, adaptation windows shaded.

    Needs ``pb.hmc(..., warmup_draws=True)``. The windows are the run's own
    (``idata.attrs["adaptation"]``): Stan's buffers and slow windows, or the
    Fisher scheme's estimator windows, with its final phase (metric frozen)
    hatched.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .infer.adaptation import window_ends

    if "warmup_sample_stats" not in idata.groups():
        raise ValueError("plot_warmup needs the warmup draws: run pb.hmc(..., warmup_draws=True)")
    stats = idata.warmup_sample_stats
    step = onp.asarray(stats["step_size"])
    depth = onp.asarray(stats["tree_depth"])
    n_warmup = step.shape[1]
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=figsize, layout="constrained")
    it = onp.arange(n_warmup)
    for c in range(step.shape[0]):
        ax1.plot(it, step[c], lw=0.8, label=f"chain {c}")
        ax2.plot(it, depth[c], lw=0.8)
    scheme = idata.attrs.get("adaptation", "stan")
    if scheme == "stan":
        ends = window_ends(n_warmup)
    else:
        # Estimator windows, then one span from the last switch to the final phase,
        # then the final phase itself.
        final_start = int(idata.attrs["adaptation_final_start"])
        ends = [int(e) for e in onp.atleast_1d(idata.attrs["adaptation_windows"])]
        ends += [final_start - 1, n_warmup - 1]
    start = 0
    for i, end in enumerate(ends):
        final = scheme != "stan" and i == len(ends) - 1
        for ax in (ax1, ax2):
            ax.axvspan(start - 0.5, end + 0.5, color="C7", alpha=0.08 if i % 2 else 0.18, lw=0,
                       hatch="//" if final else None)
        start = end + 1
    ax1.set_yscale("log")
    ax1.set_ylabel("step size")
    title = "Stan's adaptation windows" if scheme == "stan" else \
        f"{scheme} estimator windows; hatched: metric frozen"
    ax1.set_title(f"Warmup: step size and tree depth (shaded: {title})")
    ax1.legend(fontsize="small", ncol=4)
    ax2.set_ylabel("tree depth")
    ax2.set_xlabel("warmup iteration")
    return fig


def plot_elbo(fit, ax=None):
    """Plot an ADVI fit's ELBO trace: raw estimates, their block means, and
    the averaging window (shaded) ending at the convergence point.

    Parameters
    ----------
    fit : probad.infer.advi.ADVIFit
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from .infer.optimise import BLOCK, finite_mean

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    steps = onp.arange(1, fit.num_steps + 1)
    ax.plot(steps, fit.elbo, color="C0", alpha=0.3, lw=0.6, label="ELBO (one step)")
    n_full = fit.num_steps // BLOCK
    if n_full:
        smooth = onp.array([finite_mean(fit.elbo[i * BLOCK:(i + 1) * BLOCK])
                           for i in range(n_full)])
        ax.plot((onp.arange(n_full) + 0.5) * BLOCK, smooth, color="C0", lw=2,
                label=f"mean per {BLOCK} steps")
        tail = smooth[n_full // 2:]
        tail = tail[onp.isfinite(tail)]
        if tail.size:
            spread = onp.nanstd(fit.elbo[fit.averaged_from:]) if \
                onp.isfinite(fit.elbo[fit.averaged_from:]).sum() > 1 else 1.0
            ax.set_ylim(tail.min() - 4 * spread, tail.max() + 2 * spread)
    ax.axvspan(fit.averaged_from, fit.num_steps, color="C2", alpha=0.12,
               label="averaged iterates")
    label = "converged" if fit.converged else "stopped (not converged)"
    ax.axvline(fit.num_steps, color="C3" if not fit.converged else "C2", ls="--",
               label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("ELBO")
    ax.set_title(f"ADVI ({fit.method})")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def _sbc_columns(result, var_names, max_panels):
    """``label -> ranks (simulation,)`` for each scalar quantity of an SBC result."""
    names = var_names or list(result.ranks.data_vars)
    cols = {}
    for name in names:
        values = onp.asarray(result.ranks[name])
        flat = values.reshape(values.shape[0], -1)
        for i in range(flat.shape[-1]):
            cols[name if flat.shape[-1] == 1 else f"{name}[{i}]"] = flat[:, i]
    if not cols:
        raise ValueError("the SBC result has no ranks to plot (did every fit fail?)")
    return dict(list(cols.items())[:max_panels])


def _panel_grid(n, figsize):
    import matplotlib.pyplot as plt

    ncols = min(4, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (3.2 * ncols, 2.4 * nrows),
                             squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_sbc_ranks(result, var_names=None, bins: int | None = None, max_panels: int = 16,
                   figsize=None):
    """Rank histograms of an SBC result, with the 99% band of a uniform bin count.

    Parameters
    ----------
    result : probad.infer.sbc.SBCResult
    var_names : list of str, optional
    bins : int, optional
        A divisor of ``L + 1``; as in ``SBCResult.uniformity``.
    max_panels : int
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy.stats import binom

    from .infer.sbc import default_rank_bins

    cols = _sbc_columns(result, var_names, max_panels)
    n = len(next(iter(cols.values())))
    L = result.rank_draws
    bins = bins or default_rank_bins(L, n)
    width = (L + 1) // bins
    low, high = binom.ppf([0.005, 0.995], n, 1 / bins)
    fig, axes = _panel_grid(len(cols), figsize)
    for ax, (label, ranks) in zip(axes, cols.items()):
        ax.axhspan(low, high, color="0.85", label="99% band, uniform")
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(ranks, bins=onp.arange(0, L + 2, width), color="C0", alpha=0.8)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(0, L + 1)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel("rank of the true value among the posterior draws")
    fig.tight_layout()
    return fig


def plot_sbc_ecdf_diff(result, var_names=None, alpha: float = 0.05, max_panels: int = 16,
                       figsize=None):
    """ECDF of the normalised ranks minus the uniform CDF, with a simultaneous band.

    The band (Sailynoja, Burkner and Vehtari 2022) holds the whole curve of
    uniform ranks with probability ``1 - alpha``: a curve leaving it anywhere
    is evidence of miscalibration (a U shape: posteriors too narrow; a hump:
    too wide; a one-sided drift: biased).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .infer.sbc import ecdf_band

    cols = _sbc_columns(result, var_names, max_panels)
    n = len(next(iter(cols.values())))
    z, lower, upper = ecdf_band(n, result.rank_draws, alpha)
    fig, axes = _panel_grid(len(cols), figsize)
    for ax, (label, ranks) in zip(axes, cols.items()):
        ecdf = (ranks[:, None] <= onp.arange(result.rank_draws + 1)).mean(axis=0)
        ax.fill_between(z, lower - z, upper - z, step="post", color="0.85",
                        label=f"{100 * (1 - alpha):.0f}% simultaneous band")
        ax.step(z, ecdf - z, where="post", color="C0")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel("normalised rank")
    fig.supylabel("ECDF - uniform CDF")
    fig.tight_layout()
    return fig
