"""Predictive draws: the model run forward with its latent sites fixed to
posterior draws (posterior predictive) or drawn from the prior.

Draws are taken one at a time in a Python loop; each run of the model is
cheap next to the sampling that produced the posterior.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as onp

from .. import handlers
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


def _fixed_latents(draw):
    """substitute_fn giving latent sites their value in ``draw``. Observed
    sites (latent under ``uncondition``, but marked) are left to be drawn,
    and deterministic sites to be recomputed."""
    def value(msg):
        if msg["type"] != "sample" or msg["infer"].get("was_observed"):
            return None
        return draw.get(msg["name"])

    return value


def flat_draws(posterior) -> tuple[dict, tuple]:
    """``(name -> draws with one leading axis, the leading shape to give back)``.

    An ``arviz.InferenceData`` (or its ``posterior`` group) has draws on two
    axes, ``(chain, draw)``: they are flattened here and restored on return.
    """
    arviz = import_arviz()
    import xarray  # ArviZ's own dependency, loaded with it

    if isinstance(posterior, arviz.InferenceData):
        if "posterior" not in posterior.groups():
            raise ValueError(f"the InferenceData has no posterior group (only "
                             f"{', '.join(posterior.groups())}); pass pb.hmc's result")
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
        return {name: v.reshape((-1,) + v.shape[2:]) for name, v in values.items()}, leading
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
    return dict(posterior), (next(iter(lengths.values())),)


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
        without draws (e.g. an observed site whose data is left out) are
        drawn from their distribution given the rest.
    sites : list of str, optional
        Sites to return; by default every sample site (observed ones resampled)
        and every deterministic site.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    dict of name -> array
        Of shape ``(chain, draw, ...)`` for an InferenceData, ready for
        ``idata.extend(az.from_dict(posterior_predictive=...))``; of shape
        ``(num_draws, ...)`` for a mapping.
    """
    draws, leading = flat_draws(posterior)
    rng = onp.random.default_rng(seed)
    data = dict(data or {})
    forward = handlers.seed(handlers.uncondition(model), rng)
    runs = []
    for i in range(math.prod(leading)):
        draw = {name: onp.asarray(v[i]) for name, v in draws.items()}
        fixed = handlers.substitute(forward, substitute_fn=_fixed_latents(draw))
        runs.append(_record(handlers.trace(fixed).get_trace(**data), sites))
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
    runs = []
    for _ in range(draws):
        runs.append(_record(forward.get_trace(**dict(data or {})), sites))
    return _stack(runs)
