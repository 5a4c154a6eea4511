"""Warm starts and extensions: what a run keeps so that its chains can go on.

A run's draws are constrained values, and a chain cannot be continued from
them: it needs its unconstrained state (position, potential energy and
gradient, bit for bit), its step size and inverse metric, and the state of
its random generator, and with Gibbs-sampled discrete sites their values
and random walks' reaches. ``pb.hmc`` records these in ``idata.attrs`` (netCDF
keeps float64 and int64 arrays exactly, so they survive ``to_netcdf``); this
module writes them, reads them back checked against the model given, and
appends an extension's draws to the run it continues.

``pb.hmc(..., warm_start=idata)`` starts a new run (new random streams) from
each chain's last position, step size and metric. ``pb.extend(idata, ...)``
continues each chain's own stream with the same step size and metric, so a
run of 500 draws extended by 500 is the run of 1000 draws, bit for bit.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as onp

from .kernels import HMCState, LowRankInverseMetric
from .results import import_arviz

__all__ = ["ChainStart", "chain_state_attrs", "option_attrs", "read_starts", "recorded_options",
           "append_draws"]

#: Groups that hold one entry per kept draw: an extension appends to them.
DRAW_GROUPS = ("posterior", "sample_stats", "log_likelihood")
#: Groups computed from a run's draws by other functions; an extension cannot
#: continue them, so they are left out (with a warning) rather than left short.
DERIVED_GROUPS = ("posterior_predictive", "predictions")
#: The sampler options an extension must repeat to continue a chain exactly.
OPTIONS = ("algorithm", "max_tree_depth", "thin", "target_accept", "num_steps", "path_length",
           "jitter", "kernel_backend", "compile")
_WORD = 32  # the generator's 128-bit integers are stored as 32-bit words in int64 arrays
_WORDS = 4


class ChainStart(NamedTuple):
    """Where one chain of a new run begins: a previous run's end.

    Attributes
    ----------
    position : ndarray
        The chain's last unconstrained position.
    state : kernels.HMCState or None
        The exact state there (for an extension), or None: the new run
        evaluates the potential at ``position`` (a warm start, whose model or
        data may differ).
    step_size : float
    inverse_metric : ndarray or kernels.LowRankInverseMetric
    rng_state : dict or None
        The chain's generator state (for an extension), or None: the new
        run's seed gives the stream.
    gibbs : tuple or None
        ``(discrete values, reaches)`` where the chain's Gibbs steps stopped
        (:mod:`probad.infer.gibbs`), or None for a model without Gibbs sites.
    """

    position: onp.ndarray
    state: HMCState | None
    step_size: float
    inverse_metric: object
    rng_state: dict | None
    gibbs: tuple | None = None

    def generator(self, seed) -> onp.random.Generator:
        """The chain's generator: the one it stopped with, else one from ``seed``."""
        if self.rng_state is None:
            return onp.random.default_rng(seed)
        rng = onp.random.Generator(onp.random.PCG64())  # what default_rng makes
        rng.bit_generator.state = self.rng_state
        return rng


def chain_state_attrs(chains, results) -> dict:
    """Each chain's end state as ``attrs`` arrays, one row per chain of ``chains``
    (the chain numbers, which ``state_chains`` records: a posterior cut to
    some chains with ``.sel`` still finds its rows; the per-chain ``step_size``,
    ``inverse_metric*`` and ``num_gradient_evaluations`` attrs share them)."""
    states = [r.last_state for r in results]
    metric = results[0].inverse_metric
    gibbs = {} if results[0].gibbs_end is None else {
        "last_discrete": onp.stack([r.gibbs_end[0] for r in results]),
        "gibbs_reach": onp.stack([r.gibbs_end[1] for r in results]),
    }
    return {
        **gibbs,
        "state_chains": [int(c) for c in chains],
        # netCDF gives a (1, d, d) array back as (d, d): the kind cannot be read off the shape.
        "inverse_metric_kind": "low_rank" if isinstance(metric, LowRankInverseMetric) else
                               "dense" if onp.ndim(metric) == 2 else "diag",
        "last_position": onp.stack([s.position for s in states]),
        "last_potential_energy": onp.array([s.potential_energy for s in states]),
        "last_potential_grad": onp.stack([s.potential_grad for s in states]),
        "rng_state": onp.stack([_encode_rng(r.rng_state) for r in results]),
    }


def option_attrs(options: dict) -> dict:
    """The sampler options an extension repeats; netCDF has no None, so unset ones are left out."""
    return {name: (int(value) if isinstance(value, bool) else value)
            for name, value in options.items() if name in OPTIONS and value is not None}


def _check_type(idata, caller: str) -> None:
    if not callable(getattr(idata, "groups", None)):
        raise TypeError(f"{caller}: expected the arviz.InferenceData of a pb.hmc run, got "
                        f"{type(idata).__name__}")


def recorded_options(idata, caller: str) -> dict:
    """The sampler options of the run ``idata`` holds, as ``pb.hmc`` takes them."""
    _check_type(idata, caller)
    attrs = idata.attrs
    options = {name: attrs[name] for name in OPTIONS if name in attrs}
    for name in ("max_tree_depth", "thin", "num_steps"):
        if name in options:
            options[name] = int(options[name])
    for name in ("target_accept", "path_length", "jitter"):
        if name in options:
            options[name] = float(options[name])
    if "compile" in options:
        options["compile"] = bool(options["compile"])
    return options


def _encode_rng(state: dict) -> onp.ndarray:
    """A PCG64 state (``default_rng``'s generator) as int64 words."""
    if state["bit_generator"] != "PCG64":
        raise TypeError(f"cannot record a {state['bit_generator']} generator's state")
    words = []
    for value in (state["state"]["state"], state["state"]["inc"]):
        words += [(value >> (_WORD * i)) & (2**_WORD - 1) for i in range(_WORDS)]
    return onp.array(words + [state["has_uint32"], state["uinteger"]], dtype=onp.int64)


def _decode_rng(words) -> dict:
    words = [int(w) for w in words]

    def join(part):
        return sum(w << (_WORD * i) for i, w in enumerate(part))

    return {"bit_generator": "PCG64",
            "state": {"state": join(words[:_WORDS]), "inc": join(words[_WORDS:2 * _WORDS])},
            "has_uint32": words[2 * _WORDS], "uinteger": words[2 * _WORDS + 1]}


def _per_chain(attrs, name: str) -> list:
    """``attrs[name]`` as a list: netCDF gives a one-element list back as a scalar."""
    return onp.atleast_1d(attrs[name]).tolist()


def _inverse_metric(attrs, row: int, n_chains: int, dim: int):
    """Chain ``row``'s inverse metric as ``pb.hmc`` recorded it (see ``_inverse_metric_attrs``)."""

    def chain_row(name, shape):
        return onp.asarray(attrs[name], dtype=onp.float64).reshape((n_chains,) + shape)[row].copy()

    kind = attrs["inverse_metric_kind"]
    if kind != "low_rank":
        return chain_row("inverse_metric", (dim, dim) if kind == "dense" else (dim,))
    rank = int(_per_chain(attrs, "inverse_metric_rank")[row])
    return LowRankInverseMetric(chain_row("inverse_metric_scale", (dim,)),
                                chain_row("inverse_metric_vectors", (dim, -1))[:, :rank],
                                chain_row("inverse_metric_values", (-1,))[:rank])


def read_starts(idata, pot, *, caller: str, exact: bool) -> dict[int, ChainStart]:
    """Each chain's end in ``idata``, checked against the model's potential ``pot``.

    Parameters
    ----------
    idata : arviz.InferenceData
        A run of ``pb.hmc`` (or ``pb.extend``).
    pot : probad.infer.density.Potential
    caller : str
        Named in the errors (``"pb.hmc(warm_start=...)"``, ``"pb.extend"``).
    exact : bool
        For an extension: the chains' exact states and generators, after
        checking that the model and data are the ones sampled and that every
        chain's last draw is where it stopped.

    Returns
    -------
    dict
        Chain number (``idata.posterior.chain``) to :class:`ChainStart`.

    Raises
    ------
    TypeError
        If ``idata`` is not an InferenceData.
    ValueError
        If ``idata`` holds no sampler state, or its sites or dimension differ
        from the model's, or (``exact``) the log density at a chain's end is
        not the one the run computed, or a chain was stopped early.
    """
    _check_type(idata, caller)
    attrs = getattr(idata, "attrs", None) or {}
    gibbs = bool(getattr(pot, "discrete", None))
    if gibbs and "last_position" in attrs and "last_discrete" not in attrs:
        raise ValueError(f"{caller}: the model has Gibbs-sampled discrete sites "
                         f"({', '.join(pot.discrete)}) but the InferenceData has no discrete "
                         "values to go on from (attrs['last_discrete']): is this the model "
                         "that was sampled?")
    if "posterior" not in idata.groups() or "last_position" not in attrs:
        raise ValueError(f"{caller}: this InferenceData has no sampler state to continue from "
                         "(attrs['last_position'] is missing); it must come from pb.hmc or "
                         "pb.extend. To start from its draws, pass init={site: value} instead")
    posterior = idata.posterior
    for name, site in pot.sites.items():
        if name not in posterior:
            raise ValueError(f"{caller}: the model's latent site '{name}' is not in the "
                             "InferenceData's posterior: is this the model that was sampled?")
        shape = tuple(posterior[name].shape[2:])
        if shape != tuple(site.shape):
            raise ValueError(f"{caller}: site '{name}' has shape {tuple(site.shape)} in the "
                             f"model but {shape} in the InferenceData: pass the data the run "
                             "was made with")
    rows = {int(c): i for i, c in enumerate(_per_chain(attrs, "state_chains"))}
    n_chains = len(rows)
    positions = onp.asarray(attrs["last_position"], dtype=onp.float64).reshape(n_chains, -1)
    if positions.shape[1] != pot.dim:
        raise ValueError(f"{caller}: the run's chains have {positions.shape[1]} unconstrained "
                         f"coordinates but the model has {pot.dim}: is this the model that was "
                         "sampled?")
    starts = {}
    for index, chain in enumerate(int(c) for c in posterior.chain.values):
        if chain not in rows:
            raise ValueError(f"{caller}: the InferenceData has no end state for its chain "
                             f"{chain} (attrs['state_chains'] lists {sorted(rows)})")
        row, state, rng_state = rows[chain], None, None
        ends = None
        if gibbs:
            values = onp.asarray(attrs["last_discrete"], dtype=onp.float64).reshape(n_chains, -1)
            if values.shape[1] != len(pot.discrete_values):
                raise ValueError(f"{caller}: the run's chains have {values.shape[1]} discrete "
                                 f"values but the model has {len(pot.discrete_values)}: is "
                                 "this the model that was sampled?")
            ends = (values[row].copy(),
                    onp.asarray(attrs["gibbs_reach"], dtype=onp.float64).reshape(n_chains, -1)[row])
            pot.discrete_values = ends[0].copy()  # what the checks below evaluate at
        if exact:
            grads = onp.asarray(attrs["last_potential_grad"], dtype=onp.float64)
            state = HMCState(positions[row].copy(),
                             float(_per_chain(attrs, "last_potential_energy")[row]),
                             grads.reshape(n_chains, -1)[row].copy())
            _check_end(pot, posterior, state, chain, index, caller,
                       "log_likelihood" in idata.groups())
            rng_state = _decode_rng(onp.reshape(attrs["rng_state"], (n_chains, -1))[row])
        starts[chain] = ChainStart(positions[row], state,
                                   float(_per_chain(attrs, "step_size")[row]),
                                   _inverse_metric(attrs, row, n_chains, pot.dim), rng_state,
                                   ends)
    return starts


def _check_end(pot, posterior, state: HMCState, chain: int, index: int, caller: str,
               with_log_likelihood: bool) -> None:
    """Refuse to extend a chain from a model or data other than the sampled
    ones, or a chain whose last kept draw is not where it stopped."""
    with onp.errstate(all="ignore"):
        energy, _ = pot.value_and_grad(state.position)
    # The run computed this energy with this potential; only a native and a
    # numpy replay can differ, by rounding (~1e-14 relative). Other data or
    # another model moves it by far more than 1e-8.
    if not math.isclose(energy, state.potential_energy, rel_tol=1e-8, abs_tol=1e-8):
        raise ValueError(f"{caller}: chain {chain} ended where the run's log density was "
                         f"{-state.potential_energy:.10g}, but this model and data give "
                         f"{-energy:.10g} there: pass the model and data that were sampled "
                         "(to start a new run from these chains, use pb.hmc(..., "
                         "warm_start=idata))")
    # Through the function that will package the extension's draws: with a
    # compiled potential its first call records the tape that the later ones
    # replay, and a native replay can differ from the recording run in the
    # last bit. The long run packages all but its first draw by replay, so
    # the extension's draws must all be replayed too to be the same.
    if with_log_likelihood:
        last = pot.constrain_and_log_likelihood(state.position)[0]
    else:
        last = pot.constrain(state.position)
    for name in [*pot.sites, *getattr(pot, "discrete", ())]:
        drawn = onp.asarray(posterior[name].values[index, -1])
        if not onp.allclose(drawn, last[name], rtol=1e-12, atol=0.0):
            raise ValueError(f"{caller}: chain {chain} did not stop at its last kept draw (the "
                             "run was interrupted, or it was cut to the shortest chain's "
                             "length), so it cannot be continued exactly; start a new run "
                             "from where it stopped with pb.hmc(..., warm_start=idata)")


def append_draws(first, extension):
    """``first`` followed by ``extension`` (the same chains, or some of them).

    The draw index runs on from ``first``'s; the groups that are not per
    draw (data, warmup) are ``first``'s. The attrs are the extension's (its
    chains' end states), with the whole run's sampling time, gradient counts
    and failures, and ``first``'s record of the seed and the warmup.
    """
    az = import_arviz()
    import xarray as xr

    chains = extension.posterior.chain.values
    offset = first.posterior.sizes["draw"]
    before, after = first.attrs, extension.attrs
    rows = [_per_chain(before, "state_chains").index(c) for c in chains]
    gradients = _per_chain(before, "num_gradient_evaluations")
    failures = sorted(zip(_per_chain(before, "failed_chains") + _per_chain(after, "failed_chains"),
                          _per_chain(before, "failure_reasons") +
                          _per_chain(after, "failure_reasons")))
    attrs = {**before, **after,
             "sampling_time": float(before["sampling_time"]) + float(after["sampling_time"]),
             "num_gradient_evaluations": [int(gradients[r]) + int(n) for r, n in
                                          zip(rows, _per_chain(after, "num_gradient_evaluations"))],
             "partial": max(int(before["partial"]), int(after["partial"])),
             # Each part's rejected evaluations, per kind: the run's, then the extension's.
             "rejections": [*onp.atleast_1d(before.get("rejections", [])).tolist(),
                            *_per_chain(after, "rejections")],
             "failed_chains": [int(chain) for chain, _ in failures],
             "failure_reasons": [str(reason) for _, reason in failures]}
    groups = {}
    for group in first.groups():
        if group in DERIVED_GROUPS:
            warnings.warn(f"pb.extend: the {group} group was computed from the first "
                          f"{offset} draws and is left out; compute it again from the "
                          "extended run", RuntimeWarning, stacklevel=3)
            continue
        data = first[group]
        if group in DRAW_GROUPS:
            if group not in extension.groups():
                continue  # the extension could not compute it: better none than a short one
            more = extension[group].assign_coords(draw=extension[group].draw + offset)
            data = xr.concat([data.sel(chain=chains), more], dim="draw")
        elif "chain" in data.dims:
            data = data.sel(chain=chains)  # warmup of the chains that went on
        groups[group] = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return az.InferenceData(attrs=attrs, **groups)
