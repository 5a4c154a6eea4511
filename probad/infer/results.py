"""Unconstrained draws -> ``arviz.InferenceData``.

Every engine (NUTS, ADVI, Laplace) ends with draws of the flat unconstrained
vector q. This module is the one place that turns them into what users look
at: constrained latent values and deterministic sites with plate names as
dims, pointwise log-likelihoods for ``az.loo``, and the data the model saw.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as onp

__all__ = ["draws_to_inference_data", "constrained_draws", "log_likelihood", "check_coords"]


def import_arviz():
    """The ``arviz`` module, imported without the FutureWarning it gives on import."""
    # ArviZ announces its coming refactor on import; users of probad did not ask.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def constrained_draws(potential, q_draws: onp.ndarray, *, log_likelihood: bool = True,
                      discrete=None):
    """Map q draws of shape ``(chains, draws, dim)`` through the model.

    ``discrete``, shape ``(chains, draws, discrete dim)``, holds the values of
    the sites sampled by Gibbs steps with each draw (``potential.discrete``).

    Each draw is one run of the model (a replay of its recording when the
    potential is compiled) giving both its constrained values and, if asked,
    its pointwise log-likelihood.

    Returns ``(posterior, log_lik)``: dicts of arrays with leading
    ``(chains, draws)`` axes. A deterministic site missing from some draws
    (computed in one branch of an ``if``) is NaN there.
    """
    posterior, loglik, _ = _constrain_draws(potential, q_draws, log_likelihood, discrete)
    return posterior, loglik


def _constrain_draws(potential, q_draws, log_likelihood: bool, discrete=None):
    """:func:`constrained_draws`, plus why the log-likelihood was dropped (or None).

    A Ctrl-C or a ``MemoryError`` while the log-likelihood is computed drops
    it and goes on with the posterior alone, from the draw where it struck:
    the draws are worth more than the group, which can be computed later.
    """
    q_draws = onp.asarray(q_draws, dtype=float)
    chains, draws, dim = q_draws.shape
    leading, n = (chains, draws), chains * draws
    posterior: dict[str, onp.ndarray] = {}
    loglik: dict[str, onp.ndarray] = {}
    dropped = None
    flat = q_draws.reshape((n, dim))
    if discrete is None:
        def draw(i):
            return (flat[i],)
    else:  # the values of the Gibbs-sampled sites go with each draw
        flat_discrete = onp.reshape(discrete, (n, -1))

        def draw(i):
            return flat[i], flat_discrete[i]
    i = 0
    with onp.errstate(all="ignore"):
        while log_likelihood and i < n:
            try:
                values, pointwise = potential.constrain_and_log_likelihood(*draw(i))
                _store(loglik, pointwise, i, n)
                _store(posterior, values, i, n)
            except (KeyboardInterrupt, MemoryError) as exc:
                dropped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "out of memory"
                log_likelihood, loglik = False, {}
                break
            i += 1
        for i in range(i, n):
            _store(posterior, potential.constrain(*draw(i)), i, n)
    return ({name: v.reshape(leading + v.shape[1:]) for name, v in posterior.items()},
            {name: v.reshape(leading + v.shape[1:]) for name, v in loglik.items()}, dropped)


def _store(out, values, i, n):
    """Write draw ``i`` of ``n`` into ``out`` (name -> array of all draws)."""
    for name, value in values.items():
        column = out.get(name)
        if column is None:
            # onp.empty, not onp.full: the pages of a large log-likelihood array
            # are then written once, not twice. Rows of draws in which the
            # site was missing get their NaN explicitly.
            column = out[name] = onp.empty((n,) + value.shape, onp.result_type(value, float))
            column[:i] = onp.nan
        column[i] = value
    if len(out) > len(values):
        for name in out.keys() - values.keys():
            out[name][i] = onp.nan


def draws_to_inference_data(potential, q_draws, *, sample_stats=None, warmup_q=None,
                            warmup_stats=None, coords=None, dims=None, attrs=None,
                            log_likelihood: bool = True, discrete=None, warmup_discrete=None):
    """Build an ``arviz.InferenceData`` from unconstrained draws.

    Parameters
    ----------
    potential : probad.infer.density.Potential
        The model's potential; supplies ``constrain``, ``log_likelihood``,
        ``observed``, ``constant_data`` and ``dims``.
    q_draws : array, shape (chains, draws, dim)
    sample_stats, warmup_stats : dict of arrays shaped (chains, draws), optional
    warmup_q : array, shape (chains, warmup_draws, dim), optional
        Kept as ``warmup_posterior`` when given.
    coords : dict, optional
        Coordinate values per dim name (e.g. ``{"school": names}``).
    dims : dict, optional
        Extra or overriding dims per variable name.
    attrs : dict, optional
        Attributes of the InferenceData (``idata.attrs``).
    log_likelihood : bool
        Whether to compute the pointwise ``log_likelihood`` group.
    discrete, warmup_discrete : array, shape (chains, draws, discrete dim), optional
        The values of the sites sampled by Gibbs steps, with each draw and
        warmup draw: they join the posterior with their plate dims.
    """
    az = import_arviz()
    posterior, loglik, dropped = _constrain_draws(potential, q_draws, log_likelihood, discrete)
    if dropped is not None:
        warnings.warn(f"packaging the draws was {dropped} while computing the log_likelihood "
                      "group: the result comes without it. Compute it later with "
                      "pb.log_likelihood(model, data, idata); pass log_likelihood=False to "
                      "skip it.", RuntimeWarning, stacklevel=3)
        attrs = dict(attrs or {}, log_likelihood_dropped=dropped)
    all_dims = {k: list(v) for k, v in getattr(potential, "dims", {}).items()}
    all_dims.update({k: list(v) for k, v in (dims or {}).items()})
    groups = dict(
        posterior=posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik or None,
        observed_data={k: onp.asarray(v) for k, v in potential.observed.items()} or None,
        constant_data={k: onp.asarray(v) for k, v in potential.constant_data.items()} or None,
    )
    if warmup_q is not None and onp.shape(warmup_q)[1] > 0:
        groups["warmup_posterior"], _ = constrained_draws(potential, warmup_q, log_likelihood=False,
                                                          discrete=warmup_discrete)
        groups["warmup_sample_stats"] = warmup_stats
        groups["save_warmup"] = True
    used_dims = {}
    for name in _variables(groups):
        if name in all_dims:
            used_dims[name] = all_dims[name]
    if getattr(potential, "enumerated", None):
        # Say how the discrete sites were handled: summed out, so absent from
        # the posterior until pb.infer_discrete draws them.
        attrs = dict(attrs or {}, enumerated_sites=", ".join(potential.enumerated))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        idata = az.from_dict(**{k: v for k, v in groups.items() if v is not None},
                             coords=_complete_coords(coords, used_dims, groups),
                             dims=used_dims, attrs=attrs)
    return idata


def _variables(groups):
    names = set()
    for key, group in groups.items():
        if isinstance(group, dict):
            names.update(group)
    return names


def _complete_coords(coords, dims, groups):
    """Default coordinates 0..n-1 for every dim the user did not name, so that
    a dim shared by several variables (a plate) is one ArviZ dimension."""
    coords = dict(coords or {})
    sizes = {}
    for key, group in groups.items():
        if not isinstance(group, dict):
            continue
        draw_axes = 0 if key in ("observed_data", "constant_data") else 2
        for name, value in group.items():
            for dim, n in zip(dims.get(name, ()), onp.shape(value)[draw_axes:]):
                sizes.setdefault(dim, n)
    for dim, n in sizes.items():
        coords.setdefault(dim, onp.arange(n))
    return coords


def check_coords(potential, coords: Mapping | None, dims: Mapping | None = None) -> None:
    """Refuse ``coords`` whose lengths do not match the model, before sampling.

    ArviZ checks coordinates only when the InferenceData is built; by then
    a run's draws would be lost to a typo. Every site whose shape is known
    from the model (latent, observed, constant data) is checked along each
    of its dims.
    """
    if not coords:
        return
    all_dims = {k: list(v) for k, v in getattr(potential, "dims", {}).items()}
    all_dims.update({k: list(v) for k, v in (dims or {}).items()})
    shapes = {name: site.shape for name, site in potential.sites.items()}
    shapes.update({name: site.shape for name, site in getattr(potential, "discrete", {}).items()})
    shapes.update({name: onp.shape(v) for name, v in potential.observed.items()})
    shapes.update({name: onp.shape(v) for name, v in potential.constant_data.items()})
    for dim, values in coords.items():
        if onp.ndim(values) != 1:
            raise ValueError(f"coords['{dim}'] must be a 1-D sequence of coordinate values, "
                             f"got {values!r}")
    for name, names in all_dims.items():
        for dim, size in zip(names, shapes.get(name, ())):
            if dim in coords and len(coords[dim]) != size:
                raise ValueError(
                    f"coords['{dim}'] has {len(coords[dim])} values, but site '{name}' has "
                    f"{size} along its dim '{dim}' (shape {shapes[name]}); give {size} "
                    "coordinate values")


def log_likelihood(model, data: Mapping | None, idata, *, compile: bool = True):
    """Add the pointwise ``log_likelihood`` group to ``idata`` (for ``az.loo``).

    For a run made with ``log_likelihood=False``, or whose packaging had to
    leave the group out: each posterior draw is mapped back to the
    unconstrained space and the model's observed sites are evaluated there.

    Parameters
    ----------
    model : callable
        The model that was sampled.
    data : mapping, optional
        The data it was sampled with.
    idata : arviz.InferenceData
        The run; its ``posterior`` must hold every latent site.
    compile : bool
        Replay a compiled tape of the model (fast) instead of running it.

    Returns
    -------
    arviz.InferenceData
        ``idata`` itself, with the ``log_likelihood`` group added or replaced.
    """
    from .density import potential as make_potential

    az = import_arviz()
    pot = make_potential(model, data, compile=compile, gibbs=True)
    post = idata.posterior
    latent = [*pot.sites, *pot.discrete]
    missing = [name for name in latent if name not in post]
    if missing:
        raise ValueError(f"pb.log_likelihood: the posterior has no draws of the latent "
                         f"site(s) {', '.join(missing)}; is this the model that was sampled?")
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    values = {name: onp.asarray(post[name].values) for name in latent}
    q = onp.empty((chains, draws, pot.dim))
    for c in range(chains):
        for d in range(draws):
            q[c, d] = pot.unconstrain({name: v[c, d] for name, v in values.items()})
    # Sites that pb.hmc sampled by Gibbs steps: their draws go with each q.
    discrete = onp.concatenate([values[name].reshape(chains, draws, -1).astype(float)
                               for name in pot.discrete], axis=-1) if pot.discrete else None
    _, loglik = constrained_draws(pot, q, log_likelihood=True, discrete=discrete)
    used_dims = {name: list(pot.dims[name]) for name in loglik if name in pot.dims}
    coords = {name: post.coords[name].values for name in post.coords}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        group = az.from_dict(log_likelihood=loglik, dims=used_dims,
                             coords=_complete_coords(coords, used_dims,
                                                     {"log_likelihood": loglik}))
    if "log_likelihood" in idata.groups():
        del idata.log_likelihood
    idata.add_groups(log_likelihood=group.log_likelihood)
    return idata
