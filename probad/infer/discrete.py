"""``pb.infer_discrete``: the enumerated sites' posterior, draw by draw.

Sampling sums the enumerated sites out; their posterior is recovered after
the fact. For each posterior draw of the continuous sites the model is run
enumerated, the elimination of :func:`probad.infer.enumerate.contract` is
recorded, and the sites are drawn backwards from the recorded factors, each
given the ones drawn before it (along a ``pb.markov`` chain this is
forward-filtering, backward-sampling). Each draw is then an exact draw of
the discrete sites from their conditional posterior given that continuous
draw, so together they are draws from the joint posterior.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping

import numpy as onp

from ..handlers import substitute, trace
from .density import _dims, _site_log_prob
from .density import potential as make_potential
from .enumerate import Enumerator, contract
from .predictive import _flat_draws
from .results import _import_arviz

__all__ = ["infer_discrete"]


def _aligned(index, ndim):
    """``index`` (sizes 1 outside its plates) with ``ndim`` dimensions."""
    if index.ndim > ndim:
        return index.reshape(index.shape[index.ndim - ndim:])
    return index.reshape((1,) * (ndim - index.ndim) + index.shape)


def _sample_backward(records, dim_of, rng) -> dict:
    """Indices into each enumerated site's support, drawn in reverse order of
    elimination from the recorded factors (Gumbel-max along the site's dim)."""
    drawn = {}
    for record in reversed(records):
        logits = onp.asarray(record.log, dtype=float)
        for other in sorted(record.others):
            logits = onp.take_along_axis(logits, _aligned(drawn[other], logits.ndim),
                                         axis=dim_of[other])
        axis = dim_of[record.site]
        drawn[record.site] = onp.argmax(logits + rng.gumbel(size=logits.shape), axis=axis,
                                        keepdims=True)
    return drawn


def _plate_shape(frames) -> tuple:
    shape = [1] * max((-f.dim for f in frames), default=0)
    for f in frames:
        shape[f.dim] = f.size
    return tuple(shape)


def _one_draw(model, data, first_dim, values, rng):
    """``(discrete site -> value, dims of each, deterministic values)`` for one draw."""
    enumerated = trace(substitute(Enumerator(model, first_dim=first_dim), data=values)
                       ).get_trace(**data)
    records = []
    contract(enumerated, first_dim, _site_log_prob, records)
    dim_of = {r.site: enumerated[r.site]["infer"]["_enum_dim"] for r in records}
    drawn = _sample_backward(records, dim_of, rng)
    out, dims = {}, {}
    for name, index in drawn.items():
        msg = enumerated[name]
        shape = _plate_shape(msg["cond_indep_stack"])
        support = onp.ravel(msg["value"])
        out[name] = support[index].reshape(shape)
        dims[name] = _dims(name, shape, msg["cond_indep_stack"], 0)
    # Deterministic sites that depend on the discrete ones, at the drawn values.
    fixed = trace(substitute(model, data={**values, **out})).get_trace(**data)
    for name, msg in fixed.items():
        if msg["type"] == "deterministic" and name not in values:
            out[name] = onp.asarray(msg["value"])
            dims[name] = _dims(name, onp.shape(out[name]), msg["cond_indep_stack"], 0)
    return out, dims


def infer_discrete(model: Callable, data: Mapping | None = None, posterior=None, *, seed=None):
    """Draw the enumerated discrete sites from their posterior.

    Parameters
    ----------
    model : callable
        The model that was sampled, with its enumerated sites marked
        (``infer={"enumerate": "parallel"}`` or ``handlers.config_enumerate``).
    data : mapping, optional
        The model's keyword arguments, as given to ``pb.hmc``.
    posterior : arviz.InferenceData or mapping of name -> array
        Draws of the continuous latent sites: ``pb.hmc``'s result (or any
        InferenceData with a posterior group), or arrays with a leading draw
        axis.
    seed : int or numpy.random.Generator, optional
        The same seed gives the same draws.

    Returns
    -------
    arviz.InferenceData or dict
        For an InferenceData, a copy whose posterior also holds every
        enumerated site (and every deterministic site that depends on one),
        one value per draw, with its plates as dims, so ``az.summary`` shows
        them. For a mapping, the mapping with those arrays added.

    Notes
    -----
    Each draw runs the model in Python (it is not compiled); a long HMM
    costs milliseconds per draw. Thin the posterior first for a quick look.

    ``pb.predictive`` given the result replicates the data with these
    values; given ``pb.hmc``'s own result it draws the enumerated sites from
    their prior given each continuous draw (the predictive for new units).
    """
    if posterior is None:
        raise ValueError("infer_discrete needs posterior=... (pb.hmc's InferenceData)")
    data = dict(data or {})
    pot = make_potential(model, data, compile=False)
    if pot._enum_dim is None:
        raise ValueError("the model has no enumerated site: mark discrete sites with "
                         "infer={'enumerate': 'parallel'} or wrap it in handlers.config_enumerate")
    draws, leading = _flat_draws(posterior)
    missing = [name for name in pot.sites if name not in draws]
    if missing:
        raise ValueError(f"the posterior has no draws of the latent site(s) {', '.join(missing)}")
    rng = onp.random.default_rng(seed)
    n = math.prod(leading)
    columns, dims = {}, {}
    with onp.errstate(all="ignore"):
        for i in range(n):
            values = {name: onp.asarray(draws[name][i]) for name in pot.sites}
            out, dims = _one_draw(model, data, pot._enum_dim, values, rng)
            for name, value in out.items():
                if name not in columns:
                    columns[name] = onp.empty((n,) + value.shape, value.dtype)
                columns[name][i] = value
    columns = {name: v.reshape(leading + v.shape[1:]) for name, v in columns.items()}
    az = _import_arviz()
    if not isinstance(posterior, az.InferenceData):
        return {**posterior, **columns}
    new = posterior.copy()
    ds = new.posterior
    for name, value in columns.items():
        ds = ds.assign({name: (("chain", "draw") + tuple(dims[name]), value)})
        for dim, size in zip(dims[name], value.shape[2:]):
            if dim not in ds.coords:
                ds = ds.assign_coords({dim: onp.arange(size)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        new.posterior = ds
    return new
