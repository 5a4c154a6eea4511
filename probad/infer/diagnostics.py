"""After sampling: warn with advice (never raise), and a summary table.

The thresholds are the ones Stan and ArviZ users know: R-hat > 1.01, bulk or
tail ESS below 100 per chain, E-BFMI below 0.3, any divergence after warmup,
and trees that hit the depth cap.
"""
from __future__ import annotations

import warnings

import numpy as onp

from .results import import_arviz

__all__ = ["check_sampling", "energy_bfmi", "summary", "SamplingWarning"]


class SamplingWarning(UserWarning):
    """A diagnostic problem with an MCMC run (divergences, R-hat, ESS, ...)."""


def energy_bfmi(energy: onp.ndarray) -> onp.ndarray:
    """E-BFMI of each chain: the mean squared change of the energy from one draw
    to the next over the energy's sample variance (Betancourt, 2016), as ``arviz.bfmi``.

    Written here in numpy because ``arviz.bfmi`` compiles a numba function in
    every new process (about 1.4 s, more than a small model's whole sampling).

    Parameters
    ----------
    energy : numpy.ndarray
        The Hamiltonian at each draw, shape ``(chains, draws)`` (or ``(draws,)``).

    Returns
    -------
    numpy.ndarray
        One value per chain.
    """
    energy = onp.atleast_2d(energy)
    return onp.square(onp.diff(energy, axis=1)).mean(axis=1) / onp.var(energy, axis=1, ddof=1)


def check_sampling(idata, *, max_tree_depth: int = 10, warn: bool = True, partial: bool = False,
                   stacklevel: int = 2) -> list[str]:
    """Check an MCMC run and return (and, by default, warn) the problems found.

    With one chain, R-hat cannot be computed: the ESS checks still run, and a
    problem says that R-hat needs more chains. ``partial=True`` (an
    interrupted run) prefixes every problem with a note that the draws are
    partial. ``stacklevel`` is passed to ``warnings.warn`` so the warning
    points at the user's call.
    """
    az = import_arviz()
    stats = idata.sample_stats
    problems = []
    n_chains, n_draws = stats.sizes["chain"], stats.sizes["draw"]
    if "diverging" in stats:
        n_div = int(stats["diverging"].sum())
        if n_div:
            problems.append(
                f"{n_div} divergent transition(s) after warmup ({n_div / (n_chains * n_draws):.1%}). "
                "The posterior has regions the sampler cannot resolve: raise target_accept "
                "(e.g. 0.95) or reparameterise, for hierarchical scales with "
                "handlers.reparam(config={site: LocScaleReparam(0)}) or a non-centred model.")
    if "tree_depth" in stats:
        n_sat = int((stats["tree_depth"] >= max_tree_depth).sum())
        if n_sat:
            problems.append(
                f"{n_sat} transition(s) hit the maximum tree depth {max_tree_depth}: sampling is "
                "inefficient; consider dense_mass=True, a reparameterisation, or a larger max_tree_depth.")
    if "energy" in stats and n_draws > 2:
        bfmi = energy_bfmi(stats["energy"].values)
        low = [c for c, b in enumerate(bfmi) if b < 0.3]
        if low:
            problems.append(f"E-BFMI below 0.3 in chain(s) {low} ({', '.join(f'{bfmi[c]:.2f}' for c in low)}): "
                            "the momentum resampling explores the energy poorly; reparameterise heavy-tailed "
                            "or funnel-shaped parts of the model.")
    if n_chains == 1:
        problems.append("R-hat needs at least 2 chains and this run has 1: convergence cannot "
                        "be checked across chains; run chains=4.")
    if n_draws >= 4:
        with warnings.catch_warnings(), onp.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            rhat = az.rhat(idata.posterior) if n_chains > 1 else None
            ess_bulk = az.ess(idata.posterior, method="bulk")
            ess_tail = az.ess(idata.posterior, method="tail")
        bad_rhat = _worst(rhat, lambda v: v > 1.01) if rhat is not None else ""
        if bad_rhat:
            problems.append(f"R-hat > 1.01 for {bad_rhat}: the chains disagree; run longer or "
                            "check for multimodality.")
        floor = 100 * n_chains
        low_bulk = _worst(ess_bulk, lambda v: v < floor)
        low_tail = _worst(ess_tail, lambda v: v < floor)
        if low_bulk:
            problems.append(f"bulk ESS below {floor} for {low_bulk}: means and medians are unreliable; "
                            "draw more samples.")
        if low_tail:
            problems.append(f"tail ESS below {floor} for {low_tail}: quantiles and intervals are "
                            "unreliable; draw more samples.")
    if partial:
        problems = [f"(partial draws of an interrupted run) {p}" for p in problems]
    if warn:
        for p in problems:
            warnings.warn(p, SamplingWarning, stacklevel=stacklevel)
    return problems


def _worst(dataset, bad) -> str:
    """Names of variables (with the worst value) where ``bad`` holds anywhere."""
    names = []
    for name, arr in dataset.data_vars.items():
        values = onp.asarray(arr)
        finite = values[onp.isfinite(values)]
        if finite.size and onp.any(bad(finite)):
            names.append(name)
    return ", ".join(names)


def summary(idata, *, var_names=None, hdi_prob: float = 0.9, print_table: bool = True):
    """A table of mean, sd, HDI, MCSE, bulk/tail ESS and R-hat per scalar.

    Defers to ``az.summary`` and prints it like NumPyro's ``print_summary``;
    returns the pandas DataFrame.
    """
    az = import_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(idata, var_names=var_names, hdi_prob=hdi_prob)
    if print_table:
        import pandas as pd  # arviz depends on pandas; only the printer needs it here

        with pd.option_context("display.max_rows", 200, "display.max_columns", 20, "display.width", 160):
            print(table)
        if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
            print(f"\nNumber of divergences: {int(idata.sample_stats['diverging'].sum())}")
    return table
