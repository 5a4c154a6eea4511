"""Predictive draws: the model run forward with its latent sites fixed to
posterior draws (posterior predictive) or drawn from the prior.

Draws are taken one at a time in a Python loop; each run of the model is
cheap next to the sampling that produced the posterior.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as onp

from .. import handlers

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


def _fixed_latents(draw):
    """substitute_fn giving latent sites their value in ``draw``. Observed
    sites (latent under ``uncondition``, but marked) are left to be drawn,
    and deterministic sites to be recomputed."""
    def value(msg):
        if msg["type"] != "sample" or msg["infer"].get("was_observed"):
            return None
        return draw.get(msg["name"])

    return value


def predictive(model: Callable, data: Mapping | None, posterior_samples: Mapping,
               sites=None, seed=None) -> dict[str, onp.ndarray]:
    """Posterior predictive draws.

    Parameters
    ----------
    model : callable
    data : mapping or None
        Model keyword arguments. Observed sites are redrawn whatever their
        data, so new covariates can be passed here for out-of-sample
        predictions.
    posterior_samples : mapping of name -> array of shape (num_draws, ...)
        Draws of the latent sites (deterministic sites may be included; they
        are recomputed from the latent draws anyway). Latent sites without
        draws (e.g. an observed site whose data is left out) are drawn from
        their distribution given the rest.
    sites : list of str, optional
        Sites to return; by default every sample site (observed ones resampled)
        and every deterministic site.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    dict of name -> array of shape (num_draws, ...)
    """
    lengths = {name: len(v) for name, v in posterior_samples.items()}
    if not lengths:
        raise ValueError("posterior_samples is empty: pass {site: draws} with a leading draw axis")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"posterior_samples have different numbers of draws: {lengths}")
    num_draws = next(iter(lengths.values()))
    rng = onp.random.default_rng(seed)
    data = dict(data or {})
    forward = handlers.seed(handlers.uncondition(model), rng)
    runs = []
    for i in range(num_draws):
        draw = {name: onp.asarray(v[i]) for name, v in posterior_samples.items()}
        fixed = handlers.substitute(forward, substitute_fn=_fixed_latents(draw))
        runs.append(_record(handlers.trace(fixed).get_trace(**data), sites))
    return _stack(runs)


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
    runs = []
    for _ in range(draws):
        runs.append(_record(forward.get_trace(**dict(data or {})), sites))
    return _stack(runs)
