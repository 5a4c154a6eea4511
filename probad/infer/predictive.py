"""Predictive draws: the model run forward with its latent sites fixed to
posterior draws (posterior predictive) or drawn from the prior.

Draws are taken one at a time in a Python loop; each run of the model is
cheap next to the sampling that produced the posterior.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping

import numpy as onp

from .. import handlers
from ..ad.floating_point import reported_at_user_code
from .density import model_arguments
from .results import import_arviz

__all__ = ["predictive", "prior_predictive"]


def _stack(runs: list[dict]) -> dict[str, onp.ndarray]:
    return {name: onp.stack([run[name] for run in runs]) for name in runs[0]} if runs else {}


def _record(model_trace, sites) -> dict[str, onp.ndarray]:
    """The values to return from one run: ``sites``, or by default every
    sample site (factors aside) and every deterministic site."""
    def keep(msg):
        if sites is not None:
            return msg["name"] in sites
        return msg["type"] == "deterministic" or (
            msg["type"] == "sample" and not msg["infer"].get("is_factor"))

    return {name: onp.asarray(msg["value"]) for name, msg in model_trace.items() if keep(msg)}


def _check_sites(model_trace, sites) -> None:
    """Every name in ``sites`` must be a site of the model: a typo would
    otherwise return nothing for it."""
    if sites is None:
        return
    unknown = [name for name in sites if name not in model_trace]
    if unknown:
        known = [name for name, msg in model_trace.items()
                 if msg["type"] in ("sample", "deterministic") and not msg["infer"].get("is_factor")]
        raise ValueError(f"sites: {', '.join(repr(n) for n in unknown)} not a sample or "
                         f"deterministic site of the model; its sites are "
                         f"{', '.join(repr(n) for n in known)}")


def _warn_of_prior_draws(model_trace, draws, observed) -> None:
    """Warn about latent sites that have no posterior draws: they are drawn
    from their prior given the rest, which is right for a prediction site
    but silently wrong for a latent site left out of the posterior.

    Sites written as data are predictions by design: those observed in this
    run (their data passed in ``data``), those written ``obs=y`` with ``y``
    None (new covariates, no data yet) and those the InferenceData records
    as observed. A site written without ``obs`` and missing from the
    posterior is named.
    """
    def predicted(name, infer):
        return (infer.get("was_observed") or infer.get("obs_is_none")
                or infer.get("is_factor") or name in observed)

    drawn = [name for name, msg in model_trace.items()
             if msg["type"] == "sample" and name not in draws
             and not predicted(name, msg["infer"])]
    if drawn:
        quoted = ", ".join(f"'{name}'" for name in drawn)
        warnings.warn(
            f"predictive: site(s) {quoted} have no draws in the posterior, so they are drawn "
            "from their prior given the other sites, ignoring the data: include their draws "
            "in the posterior. A site meant as a prediction is written as data, "
            "pb.sample(name, ..., obs=None), and is not warned of.", UserWarning, stacklevel=3)


def _fixed_latents(draw):
    """substitute_fn giving latent sites their value in ``draw``. Observed
    sites (latent under ``uncondition``, but marked) are left to be drawn,
    and deterministic sites to be recomputed."""
    def value(msg):
        if msg["type"] != "sample" or msg["infer"].get("was_observed"):
            return None
        return draw.get(msg["name"])

    return value


def flat_draws(posterior) -> tuple[dict, tuple, set]:
    """``(name -> draws with one leading axis, the leading shape to give back,
    the sites an InferenceData records as observed)``.

    An ``arviz.InferenceData`` (or its ``posterior`` group) has draws on two
    axes, ``(chain, draw)``: they are flattened here and restored on return.
    """
    arviz = import_arviz()
    import xarray  # ArviZ's own dependency, loaded with it

    observed = set()
    if isinstance(posterior, arviz.InferenceData):
        if "posterior" not in posterior.groups():
            raise ValueError(f"the InferenceData has no posterior group (only "
                             f"{', '.join(posterior.groups())}); pass pb.hmc's result")
        if "observed_data" in posterior.groups():
            observed = set(posterior.observed_data.data_vars)
        posterior = posterior.posterior
    # Checked before Mapping: a Dataset is one, but iterating over one of its
    # variables would walk the chains, not the draws.
    if isinstance(posterior, xarray.Dataset):
        missing = {"chain", "draw"} - set(posterior.dims)
        if missing:
            raise ValueError(f"the posterior has no {' or '.join(sorted(missing))} dim; pass "
                             "pb.hmc's InferenceData, or a dict of draws with a leading draw axis")
        leading = (posterior.sizes["chain"], posterior.sizes["draw"])
        values = {name: var.transpose("chain", "draw", ...).values
                  for name, var in posterior.data_vars.items()}
        return ({name: v.reshape((-1,) + v.shape[2:]) for name, v in values.items()}, leading,
                observed)
    if not isinstance(posterior, Mapping):
        raise TypeError(f"posterior must be an arviz.InferenceData or a dict of draws, got "
                        f"{type(posterior).__name__}")
    lengths = {name: len(v) for name, v in posterior.items()}
    if not lengths:
        raise ValueError("posterior is empty: pass an InferenceData or {site: draws} with a "
                         "leading draw axis")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"posterior draws differ in number between sites: {lengths}; give "
                         "every site the same number of draws")
    return dict(posterior), (next(iter(lengths.values())),), observed


def predictive(model: Callable, data: Mapping | None, posterior, sites=None,
               seed=None) -> dict[str, onp.ndarray]:
    """Posterior predictive draws.

    Parameters
    ----------
    model : callable
    data : mapping or None
        Model keyword arguments. Observed sites are redrawn whatever their
        data, so new covariates can be passed here for out-of-sample
        predictions.
    posterior : arviz.InferenceData or mapping of name -> array
        Draws of the latent sites: the ``posterior`` group of an
        InferenceData (as ``pb.hmc`` returns), or arrays with a leading draw
        axis, ``(num_draws, ...)``. Deterministic sites may be included;
        they are recomputed from the latent draws anyway. Latent sites
        without draws are drawn from their distribution given the rest,
        with a warning naming them unless they are written as data
        (``obs=...``, even if None) or recorded in the InferenceData's
        ``observed_data``.
    sites : list of str, optional
        Sites to return; by default every sample site (observed ones resampled)
        and every deterministic site. A name that is not a site is an error.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    dict of name -> array
        Of shape ``(chain, draw, ...)`` for an InferenceData, ready for
        ``idata.extend(az.from_dict(posterior_predictive=...))``; of shape
        ``(num_draws, ...)`` for a mapping.
    """
    draws, leading, observed = flat_draws(posterior)
    rng = onp.random.default_rng(seed)
    data = model_arguments(data)
    forward = handlers.seed(handlers.uncondition(model), rng)
    runs = []
    with reported_at_user_code():  # a log(0) in the model: at its line, not in probad's
        for i in range(math.prod(leading)):
            draw = {name: onp.asarray(v[i]) for name, v in draws.items()}
            fixed = handlers.substitute(forward, substitute_fn=_fixed_latents(draw))
            model_trace = handlers.trace(fixed).get_trace(**data)
            if i == 0:
                _check_sites(model_trace, sites)
                _warn_of_prior_draws(model_trace, draws, observed)
            runs.append(_record(model_trace, sites))
    return {name: v.reshape(leading + v.shape[1:]) for name, v in _stack(runs).items()}


def prior_predictive(model: Callable, data: Mapping | None = None, draws: int = 500,
                     seed=None, sites=None) -> dict[str, onp.ndarray]:
    """Draws of every site from the prior, observed sites included.

    Parameters
    ----------
    model : callable
    data : mapping or None
        Model keyword arguments; observed values in it are ignored (the
        sites are drawn), covariates are used.
    draws : int
        Number of draws.
    seed : int or numpy.random.Generator, optional
    sites : list of str, optional
        Sites to return; by default every sample and deterministic site.

    Returns
    -------
    dict of name -> array of shape (draws, ...)
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    rng = onp.random.default_rng(seed)
    forward = handlers.trace(handlers.seed(handlers.uncondition(model), rng))
    data = model_arguments(data)
    runs = []
    with reported_at_user_code():
        for i in range(draws):
            model_trace = forward.get_trace(**data)
            if i == 0:
                _check_sites(model_trace, sites)
            runs.append(_record(model_trace, sites))
    return _stack(runs)
