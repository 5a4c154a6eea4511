"""Simulation-based calibration: does inference recover what the model simulates?

Each simulation draws parameters ``theta*`` and a data set ``y*`` from the
prior predictive, fits the model to ``y*``, and records the rank of
``theta*`` among ``L`` posterior draws. When the posterior is right, every
rank is uniform on ``{0, ..., L}`` whatever the model (Talts et al. 2018);
a sampler that is too narrow piles ranks at the ends, a biased one on one
side. Any scalar function of parameters and data ranks the same way; the
log-likelihood is a sharp one (Modrak et al. 2023).

Why each piece is here:

- **Thinning by ESS.** Autocorrelated draws make ranks non-uniform even for
  a correct sampler, so the ``L`` draws are taken from the chains thinned to
  about one draw per effective sample. A fit whose ESS is below ``L`` is
  flagged (``diagnostics["thinned"]`` is False), not silently ranked.
- **Seeds.** Simulation ``i`` draws from the ``i``-th child of one
  ``SeedSequence``, so the same seed gives the same ranks on any executor,
  in any order, and a resumed run continues the same stream.
- **Nothing lost.** A failed or killed fit is retried, then reported in
  ``diagnostics``; Ctrl-C returns the fits done so far; ``resume=path``
  saves each finished fit and skips it on the next call.
"""
from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import cloudpickle
import numpy as onp
import scipy.stats

from .. import handlers

__all__ = ["sbc", "SBCResult"]

DIAGNOSTICS = ("ok", "divergences", "max_rhat", "min_ess", "thinned", "seconds", "error")


# ------------------------------------------------------------- one simulation
@dataclass
class _Simulation:
    """Everything one simulate-and-fit needs, shippable to a worker by cloudpickle."""

    index: int
    seed: onp.random.SeedSequence
    model: Callable
    data: Mapping
    method: Any
    fit_options: dict
    observed: Sequence[str] | None
    rank_draws: int
    test_quantities: Mapping[str, Any]


def _simulate(model, data, rng, observed):
    """One prior predictive draw: ``(latent values, observed values, dims)``.

    ``uncondition`` draws every observed site instead of reading its data,
    and marks it, so the data sites are known without the user naming them.
    """
    model_trace = handlers.trace(handlers.seed(handlers.uncondition(model), rng)).get_trace(**data)
    truth, obs = {}, {}
    for name, msg in model_trace.items():
        if msg["type"] == "sample" and msg["infer"].get("is_factor"):
            continue
        if msg["type"] == "sample" and (msg["infer"].get("was_observed") or
                                        (observed is not None and name in observed)):
            obs[name] = onp.asarray(msg["value"])
        elif msg["type"] in ("sample", "deterministic"):
            truth[name] = onp.asarray(msg["value"])
    if not obs:
        raise ValueError("the model observes no site under these data, so there is nothing to "
                         "simulate: pass data that fill its observed sites (their values are "
                         "replaced by simulated ones), or name them with observed=[...]")
    return truth, obs


def _fit(sim: _Simulation, conditioned, rng_seed):
    """The posterior draws of ``sim.method`` as a dict ``name -> (chain, draw, ...)``,
    with the fit's divergences, max R-hat and min bulk ESS."""
    import arviz as az

    from .advi import advi
    from .mcmc import hmc

    if sim.method == "nuts":
        idata = hmc(conditioned, sim.data, seed=rng_seed, progress=False, **sim.fit_options)
        divergences = int(idata.sample_stats["diverging"].sum())
    elif sim.method == "advi":
        options = dict(sim.fit_options)
        draws = options.pop("draws", 1000)
        fit = advi(conditioned, sim.data, seed=rng_seed, **{"progress": False, **options})
        idata = fit.sample(draws, seed=rng_seed)
        divergences = 0
    else:
        idata = sim.method(conditioned, sim.data, seed=rng_seed)
        divergences = int(idata.sample_stats["diverging"].sum()) \
            if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats else 0
    posterior = idata.posterior if hasattr(idata, "posterior") else idata
    draws = {name: onp.asarray(posterior[name]) for name in posterior.data_vars} \
        if hasattr(posterior, "data_vars") else {k: onp.asarray(v) for k, v in posterior.items()}
    scalars = onp.concatenate([v.reshape(v.shape[:2] + (-1,)) for v in draws.values()], axis=-1)
    ess = onp.array([az.ess(scalars[..., i], method="bulk") for i in range(scalars.shape[-1])])
    rhat = onp.array([az.rhat(scalars[..., i]) for i in range(scalars.shape[-1])]) \
        if scalars.shape[0] > 1 else onp.array([onp.nan])
    return draws, divergences, float(onp.nanmax(rhat)), float(onp.nanmin(ess))


def _rank(true_value, draws, rng):
    """Elementwise rank of ``true_value`` among ``draws`` (leading axis), ties split at random."""
    below = (draws < true_value).sum(axis=0)
    ties = (draws == true_value).sum(axis=0)
    return below + rng.integers(0, ties + 1)


def _thinned_indices(num_chains, num_draws, min_ess, rank_draws):
    """``rank_draws`` (chain, draw) index pairs, about one per effective sample.

    Returns the indices and whether the ESS allowed it (``False``: fewer
    effective samples than ``rank_draws``, so the ranks are less trustworthy).
    """
    total = num_chains * num_draws
    step = max(1, int(total // max(min_ess, 1.0)))
    per_chain = onp.arange(0, num_draws, step)
    pool = onp.array([(c, d) for c in range(num_chains) for d in per_chain])
    thinned = len(pool) >= rank_draws
    if not thinned:  # take them evenly from every draw, and say so
        pool = onp.array([(c, d) for c in range(num_chains) for d in range(num_draws)])
    pick = onp.linspace(0, len(pool) - 1, rank_draws).round().astype(int)
    return pool[pick], thinned


def _log_likelihood(conditioned, data):
    """The built-in test quantity: ``values -> log p(y* | values)``."""
    from .density import potential

    pot = potential(conditioned, data, compile=False)

    def quantity(values):
        pointwise = pot.log_likelihood(pot.unconstrain(values))
        return float(sum(onp.sum(v) for v in pointwise.values()))
    return quantity


def _children(seed: onp.random.SeedSequence, n: int) -> list:
    """The first ``n`` children of ``seed``, whatever it has spawned before.

    ``SeedSequence.spawn`` counts the children it has handed out, so a
    simulation run twice in one process (a retry, a rerun) would get new
    streams from it; these are fixed by the seed alone.
    """
    return [onp.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (k,),
                                    pool_size=seed.pool_size) for k in range(n)]


def _run_simulation(sim: _Simulation) -> dict:
    """Simulate, fit, rank: one row of the result (never raises on a failed fit)."""
    start = time.perf_counter()
    prior_seed, fit_seed, tie_seed = _children(sim.seed, 3)
    row = {"index": sim.index, "ranks": {}, "ok": False, "divergences": -1, "max_rhat": onp.nan,
           "min_ess": onp.nan, "thinned": False, "error": ""}
    try:
        truth, obs = _simulate(sim.model, sim.data, onp.random.default_rng(prior_seed), sim.observed)
        conditioned = handlers.condition(sim.model, data=obs)
        with warnings.catch_warnings():
            # 200 fits' diagnostic warnings would bury the result: each fit's
            # divergences, R-hat and ESS are recorded in its row instead.
            warnings.simplefilter("ignore")
            draws, row["divergences"], row["max_rhat"], row["min_ess"] = _fit(
                sim, conditioned, int(fit_seed.generate_state(1)[0]))
        chains, n = next(iter(draws.values())).shape[:2]
        picks, row["thinned"] = _thinned_indices(chains, n, row["min_ess"], sim.rank_draws)
        kept = {name: v[picks[:, 0], picks[:, 1]] for name, v in draws.items()}
        rng = onp.random.default_rng(tie_seed)
        for name, value in truth.items():
            if name in kept:
                row["ranks"][name] = _rank(value, kept[name], rng)
        for name, quantity in sim.test_quantities.items():
            f = _log_likelihood(conditioned, sim.data) if quantity == "log_likelihood" else \
                (lambda values, q=quantity: q(values, obs))
            at_draws = onp.array([f({k: v[i] for k, v in kept.items() if k in truth})
                                  for i in range(sim.rank_draws)])
            row["ranks"][name] = _rank(f(truth), at_draws, rng)
        row["ok"] = True
    except Exception as exc:  # noqa: BLE001  (a failed fit is a row, not the end of the run)
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = time.perf_counter() - start
    return row


def _run_pickled(payload: bytes, attempt: int) -> dict:
    """Run a shipped simulation. ``attempt`` only makes a resubmission another
    call: Dask names a task after its function and arguments, and would hand
    back the lost task instead of running it again."""
    return _run_simulation(cloudpickle.loads(payload))


# ----------------------------------------------------------------- the result
class SBCResult:
    """Ranks and per-fit diagnostics of a simulation-based calibration.

    Attributes
    ----------
    ranks : xarray.Dataset
        One variable per ranked quantity (latent and deterministic sites, test
        quantities), with a ``simulation`` dim; only fits that succeeded.
    diagnostics : xarray.Dataset
        Per simulation: ``ok``, ``divergences``, ``max_rhat``, ``min_ess``,
        ``thinned`` (the ESS allowed ``rank_draws`` near-independent draws),
        ``seconds`` and ``error``.
    rank_draws : int
        ``L``: ranks run from 0 to ``L``.
    attrs : dict
        ``seed``, ``num_simulations``, ``method`` and ``partial``.
    """

    def __init__(self, ranks, diagnostics, rank_draws: int, attrs: dict):
        self.ranks = ranks
        self.diagnostics = diagnostics
        self.rank_draws = int(rank_draws)
        self.attrs = dict(attrs)

    def __repr__(self):
        d = self.diagnostics
        failed = int((~d["ok"].values.astype(bool)).sum()) if d.sizes.get("simulation") else 0
        return (f"<SBCResult: {self.ranks.sizes.get('simulation', 0)} ranked fits of "
                f"{self.attrs['num_simulations']}, {failed} failed, L = {self.rank_draws}, "
                f"quantities: {', '.join(self.ranks.data_vars)}>")

    def uniformity(self, method: str = "chi2", bins: int | None = None):
        """A p-value per scalar quantity for the hypothesis that its ranks are uniform.

        Parameters
        ----------
        method : {"chi2", "ecdf"}
            ``"chi2"``: Pearson's test on ranks binned into ``bins`` equal
            groups of rank values. ``"ecdf"``: the simultaneous ECDF-band test
            of Sailynoja et al. (2022), sharper against smooth departures.
        bins : int, optional
            For ``"chi2"``: a divisor of ``L + 1`` (so every bin holds the same
            number of rank values); by default the largest one up to 20 that
            leaves at least 5 expected ranks per bin.

        Returns
        -------
        xarray.Dataset
            Shaped like one simulation's ranks.
        """
        import xarray as xr

        n = self.ranks.sizes["simulation"]
        if n == 0:
            raise ValueError("no fit succeeded, so there are no ranks to test")
        if method == "chi2":
            bins = bins or default_rank_bins(self.rank_draws, n)
            if (self.rank_draws + 1) % bins:
                raise ValueError(f"bins must divide L + 1 = {self.rank_draws + 1}, got {bins}")

            def test(r):
                counts = onp.stack([(r // ((self.rank_draws + 1) // bins) == b).sum(axis=0)
                                    for b in range(bins)])
                return scipy.stats.chisquare(counts, axis=0).pvalue
        elif method == "ecdf":
            def test(r):
                flat = r.reshape(n, -1)
                p = [ecdf_uniformity_pvalue(flat[:, i], self.rank_draws) for i in range(flat.shape[1])]
                return onp.array(p).reshape(r.shape[1:])
        else:
            raise ValueError(f"method must be 'chi2' or 'ecdf', got {method!r}")
        return xr.Dataset({name: (var.dims[1:], onp.asarray(test(var.values)))
                           for name, var in self.ranks.data_vars.items()})

    def plot_ranks(self, var_names=None, bins: int | None = None, **kwargs):
        """Rank histograms with the band a uniform rank falls in (``probad.plots``)."""
        from ..plots import plot_sbc_ranks

        return plot_sbc_ranks(self, var_names=var_names, bins=bins, **kwargs)

    def plot_ecdf_diff(self, var_names=None, **kwargs):
        """ECDF minus the uniform CDF, with simultaneous 95% bands (``probad.plots``)."""
        from ..plots import plot_sbc_ecdf_diff

        return plot_sbc_ecdf_diff(self, var_names=var_names, **kwargs)

    def to_netcdf(self, path) -> None:
        """Save ranks, diagnostics and attributes (``pb.sbc(..., resume=path)`` reads them)."""
        attrs = {"rank_draws": self.rank_draws, **{k: str(v) if k == "seed" else int(v)
                                                   if isinstance(v, bool) else v
                                                   for k, v in self.attrs.items()}}
        tmp = f"{os.fspath(path)}.tmp"
        self.ranks.assign_attrs(attrs).to_netcdf(tmp, group="ranks", engine="h5netcdf", mode="w")
        self.diagnostics.to_netcdf(tmp, group="diagnostics", engine="h5netcdf", mode="a")
        os.replace(tmp, path)  # a Ctrl-C while writing never leaves half a file behind

    @classmethod
    def from_netcdf(cls, path) -> "SBCResult":
        """Load a result saved by :meth:`to_netcdf`."""
        import xarray as xr

        ranks = xr.load_dataset(path, group="ranks", engine="h5netcdf")
        diagnostics = xr.load_dataset(path, group="diagnostics", engine="h5netcdf")
        attrs = dict(ranks.attrs)
        ranks.attrs = {}
        rank_draws = attrs.pop("rank_draws")
        attrs["partial"] = bool(attrs.get("partial", 0))
        return cls(ranks, diagnostics, rank_draws, attrs)


def default_rank_bins(rank_draws: int, n: int) -> int:
    """The most bins (at most 20) that split the ``rank_draws + 1`` possible
    ranks evenly and expect at least 5 of ``n`` ranks each; 1 if none does."""
    divisors = [b for b in range(2, 21) if (rank_draws + 1) % b == 0 and n / b >= 5]
    return max(divisors) if divisors else 1


_ECDF_REFERENCE: dict = {}


def _ecdf_min_tail(ranks, rank_draws):
    """For each set of ranks (rows), the smallest two-sided binomial tail
    probability of its ECDF over the ``L + 1`` rank values."""
    n = ranks.shape[-1]
    z = onp.arange(1, rank_draws + 2) / (rank_draws + 1)  # P(rank <= i) under uniformity
    counts = (ranks[..., None] <= onp.arange(rank_draws + 1)).sum(axis=-2)
    tail = onp.minimum(scipy.stats.binom.cdf(counts, n, z), scipy.stats.binom.sf(counts - 1, n, z))
    return tail[..., :-1].min(axis=-1)  # the last point is 1 by construction


def ecdf_reference(n: int, rank_draws: int, simulations: int = 2000) -> onp.ndarray:
    """Smallest tail probabilities of ``simulations`` sets of ``n`` uniform ranks.

    The simulation method of Sailynoja, Burkner and Vehtari (2022): the band
    at level ``1 - alpha`` uses the per-point level ``gamma``, the
    ``alpha``-quantile of these values. Fixed seed: the same inputs always
    give the same band and p-values.
    """
    key = (n, rank_draws, simulations)
    if key not in _ECDF_REFERENCE:
        rng = onp.random.default_rng(20221)
        ranks = rng.integers(0, rank_draws + 1, size=(simulations, n))
        _ECDF_REFERENCE[key] = onp.sort(_ecdf_min_tail(ranks, rank_draws))
    return _ECDF_REFERENCE[key]


def ecdf_uniformity_pvalue(ranks, rank_draws: int) -> float:
    """p-value of the ECDF-band test: the share of uniform rank sets whose ECDF
    strays at least as far (in binomial tail probability) as these ranks'."""
    reference = ecdf_reference(len(ranks), rank_draws)
    observed = _ecdf_min_tail(onp.asarray(ranks)[None], rank_draws)[0]
    return float((1 + onp.searchsorted(reference, observed, side="right")) / (len(reference) + 1))


def ecdf_band(n: int, rank_draws: int, alpha: float = 0.05):
    """Simultaneous ``1 - alpha`` band for the ECDF of ``n`` uniform ranks.

    Returns ``(z, lower, upper)`` at the rank values' CDF points ``z``.
    """
    gamma = onp.quantile(ecdf_reference(n, rank_draws), alpha)
    z = onp.arange(1, rank_draws + 2) / (rank_draws + 1)
    lower = scipy.stats.binom.ppf(gamma / 2, n, z) / n
    upper = scipy.stats.binom.ppf(1 - gamma / 2, n, z) / n
    return z, lower, upper


# ------------------------------------------------------------------- the loop
def sbc(model: Callable, data: Mapping | None = None, *, num_simulations: int = 200,
        method: str | Callable = "nuts", seed=None, executor: Executor | None = None,
        rank_draws: int = 99, test_quantities: Mapping[str, Any] | None = None,
        observed: Sequence[str] | None = None, resume=None, retries: int = 1,
        progress: bool = True, **fit_options) -> SBCResult:
    """Simulation-based calibration of a model and its inference.

    Parameters
    ----------
    model : callable
        A sampler program.
    data : mapping, optional
        The model's keyword arguments. Sites observed under these data are
        simulated (their values here are only placeholders); covariates and
        sizes are used as they are.
    num_simulations : int
        Number of simulate-and-fit rounds.
    method : {"nuts", "advi"} or callable
        ``pb.hmc`` (on an executor, each fit's chains run one after another
        in its worker unless ``cores=`` says otherwise), ``pb.advi``
        (``draws=`` sets how many draws are taken from the fit), or
        ``method(model, data, seed=...) -> InferenceData`` (or a dict of
        ``(chain, draw, ...)`` arrays) given the model conditioned on the
        simulated data.
    seed : int or numpy.random.SeedSequence, optional
        One seed for the whole calibration; simulation ``i`` uses its
        ``i``-th child, so the ranks do not depend on the executor.
    executor : concurrent.futures.Executor, optional
        Runs the fits (a ``ProcessPoolExecutor``, a Dask
        ``Client.get_executor()``, :class:`probad.infer.cluster.RayExecutor`).
    rank_draws : int
        ``L``, the posterior draws each true value is ranked among.
    test_quantities : mapping, optional
        Extra scalars to rank: ``name -> f(values, observed)`` or the string
        ``"log_likelihood"``. Default: ``{"log_likelihood": "log_likelihood"}``.
    observed : list of str, optional
        Sites to simulate as data, besides those observed under ``data``.
    resume : path, optional
        A netCDF file: fits found there are kept, the rest are run, and the
        file is updated after every fit.
    retries : int
        How often a fit whose worker failed (a killed process) is resubmitted.
    progress : bool
        One progress bar over the simulations.
    **fit_options
        Passed to ``pb.hmc`` or ``pb.advi`` (e.g. ``draws``, ``tune``, ``chains``).

    Returns
    -------
    SBCResult

    Examples
    --------
    >>> result = pb.sbc(eight_schools, data, num_simulations=200, seed=1)  # doctest: +SKIP
    >>> result.uniformity()                                                 # doctest: +SKIP
    """
    import xarray as xr

    from .progress import progress_bar

    if not (isinstance(num_simulations, int) and num_simulations >= 1):
        raise ValueError(f"num_simulations must be an integer >= 1, got {num_simulations!r}")
    if not (isinstance(rank_draws, int) and rank_draws >= 1):
        raise ValueError(f"rank_draws must be an integer >= 1, got {rank_draws!r}")
    if not (method in ("nuts", "advi") or callable(method)):
        raise ValueError(f"method must be 'nuts', 'advi' or a callable, got {method!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got "
                        f"{type(executor).__name__}")
    if test_quantities is None:
        test_quantities = {"log_likelihood": "log_likelihood"}
    if seed is None:
        seed = int(onp.random.SeedSequence().generate_state(1, onp.uint64)[0] >> onp.uint64(1))
    root = seed if isinstance(seed, onp.random.SeedSequence) else onp.random.SeedSequence(seed)
    method_name = method if isinstance(method, str) else getattr(method, "__name__", "callable")
    attrs = {"seed": seed if not isinstance(seed, onp.random.SeedSequence) else str(seed.entropy),
             "num_simulations": num_simulations, "method": method_name, "partial": False}

    # A model with nothing to simulate fails every fit the same way: say so once, now.
    _simulate(model, dict(data or {}), onp.random.default_rng(0), observed)
    rows: dict[int, dict] = {}
    if resume is not None and os.path.exists(resume):
        rows = _rows_from(SBCResult.from_netcdf(resume), attrs, rank_draws)
    if executor is not None and method == "nuts":
        # The executor runs the fits side by side, so each fit's chains run one
        # after another in its worker. pb.hmc would see that for itself on a
        # pool or Dask, but a Ray worker is a main process to it, where it may
        # start a process pool of its own in every worker.
        fit_options = {"cores": 1, **fit_options}
    sims = [_Simulation(i, s, model, dict(data or {}), method, fit_options, observed, rank_draws,
                        test_quantities)
            for i, s in enumerate(root.spawn(num_simulations)) if i not in rows]

    bar = progress_bar(total=num_simulations, initial=len(rows), desc="sbc", unit="fit",
                       disable=not progress)

    def finished(row):
        rows[row["index"]] = row
        bar.update(1)
        if resume is not None:
            _result(rows, attrs, rank_draws, xr).to_netcdf(resume)

    try:
        if executor is None:
            for sim in sims:
                finished(_run_simulation(sim))
        else:
            _run_on_executor(sims, executor, retries, finished)
    except KeyboardInterrupt:
        attrs["partial"] = True
        warnings.warn(f"sbc interrupted: returning {len(rows)} of {num_simulations} fits"
                      + (f"; call again with resume={resume!r} to continue" if resume else
                         "; pass resume=path to be able to continue"), RuntimeWarning, stacklevel=2)
    finally:
        bar.close()
    result = _result(rows, attrs, rank_draws, xr)
    failed = [i for i, r in sorted(rows.items()) if not r["ok"]]
    if failed:
        warnings.warn(f"{len(failed)} of {len(rows)} fits failed and are not ranked (simulations "
                      f"{failed[:10]}{' ...' if len(failed) > 10 else ''}); their errors are in "
                      "result.diagnostics['error']", RuntimeWarning, stacklevel=2)
    return result


def _run_on_executor(sims, executor, retries, finished):
    """Submit every fit; resubmit one whose worker failed, up to ``retries`` times."""
    attempts = {sim.index: 0 for sim in sims}
    by_future = {}

    def submit(sim):
        try:
            by_future[executor.submit(_run_pickled, cloudpickle.dumps(sim),
                                      attempts[sim.index])] = sim
        except Exception as exc:  # noqa: BLE001  (a broken pool: report the fit, keep the rest)
            finished(_failed_row(sim, exc))

    for sim in sims:
        submit(sim)
    try:
        while by_future:
            done, _ = wait(list(by_future), return_when=FIRST_COMPLETED)
            for fut in done:
                sim = by_future.pop(fut)
                try:
                    finished(fut.result())
                except Exception as exc:  # noqa: BLE001  (the worker died, not the fit)
                    attempts[sim.index] += 1
                    if attempts[sim.index] <= retries:
                        submit(sim)
                    else:
                        finished(_failed_row(sim, exc))
    except KeyboardInterrupt:
        for fut in by_future:
            fut.cancel()
        raise


def _failed_row(sim, exc) -> dict:
    return {"index": sim.index, "ranks": {}, "ok": False, "divergences": -1, "max_rhat": onp.nan,
            "min_ess": onp.nan, "thinned": False, "seconds": onp.nan,
            "error": f"{type(exc).__name__}: {exc}"}


def _result(rows, attrs, rank_draws, xr) -> SBCResult:
    order = sorted(rows)
    ok = [i for i in order if rows[i]["ok"]]
    ranks = {}
    if ok:
        for name in rows[ok[0]]["ranks"]:
            values = onp.stack([rows[i]["ranks"][name] for i in ok])
            ranks[name] = (("simulation",) + tuple(f"{name}_dim_{k}" for k in range(values.ndim - 1)),
                           values)
    diagnostics = {key: ("simulation", onp.array([rows[i][key] for i in order]))
                   for key in DIAGNOSTICS}
    diagnostics["error"] = ("simulation", onp.array([rows[i]["error"] for i in order], dtype=str))
    return SBCResult(xr.Dataset(ranks, coords={"simulation": ok}),
                     xr.Dataset(diagnostics, coords={"simulation": order}), rank_draws, attrs)


def _rows_from(saved: SBCResult, attrs, rank_draws) -> dict[int, dict]:
    """The successful fits of a saved run, refusing one made with other settings."""
    for key in ("seed", "num_simulations", "method"):
        if str(saved.attrs.get(key)) != str(attrs[key]):
            raise ValueError(f"the saved run has {key}={saved.attrs.get(key)!r}, this call "
                             f"{attrs[key]!r}: resume with the same settings, or another path")
    if saved.rank_draws != rank_draws:
        raise ValueError(f"the saved run has rank_draws={saved.rank_draws}, this call {rank_draws}")
    rows = {}
    d = saved.diagnostics
    for pos, i in enumerate(d["simulation"].values):
        if not bool(d["ok"].values[pos]):
            continue  # failed fits are run again
        rows[int(i)] = {"index": int(i), **{k: d[k].values[pos].item() for k in DIAGNOSTICS},
                        "ranks": {name: saved.ranks[name].sel(simulation=i).values
                                  for name in saved.ranks.data_vars}}
    return rows
