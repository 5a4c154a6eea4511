"""Exact enumeration of discrete latent sites.

A latent sample site marked ``infer={"enumerate": "parallel"}`` (or every
finite discrete latent site under ``handlers.config_enumerate``) is not a
coordinate of ``q``: the model is run once with the site's value set to its
whole support, laid along a batch dimension of its own to the left of every
plate (the Pyro/NumPyro convention), and the log joint is then summed over
those values with log-sum-exp. Inference sees the continuous sites only.

Two pieces do this:

- :class:`Enumerator`, a handler that gives each enumerated site its
  dimension and records, at every sample site, which enumerated site owns
  each enumeration dimension there. Under ``pb.markov`` a dimension is
  reused once the site holding it is out of the Markov window, so a chain
  of T categorical states needs two dimensions, not T.
- :func:`contract`, variable elimination over the traced log densities: the
  enumerated sites are summed out one at a time in the order they were
  sampled (along a Markov chain this is the forward algorithm, O(T K^2)),
  and a plate's dimension is summed (a product of densities) only after the
  sites local to that plate are eliminated. Recorded, the same pass gives
  the factors that :func:`probad.infer.discrete.infer_discrete` samples from
  backwards.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as onp

import probad.ad.numpy as np
from ..ad.scipy.special import logsumexp
from ..ad.tracer import shared_calls
from ..primitives import Messenger, SiteError

__all__ = ["is_enumerated", "carries_enumeration", "Enumerator", "first_enum_dim", "contract",
           "pointwise_log_likelihood", "Elimination", "MAX_ENUM_DIMS", "MAX_FACTOR_SIZE"]

#: numpy allows 64 dimensions; enumeration dims and plates together stay well below.
MAX_ENUM_DIMS = 32
#: Entries of one intermediate factor (2**26 float64 = 512 MiB) before we refuse.
MAX_FACTOR_SIZE = 2 ** 26


def is_enumerated(msg) -> bool:
    """Whether ``msg`` is a latent sample site marked for parallel enumeration."""
    return (msg["type"] == "sample" and not msg["is_observed"]
            and msg["infer"].get("enumerate") == "parallel")


def first_enum_dim(model_trace) -> int:
    """The rightmost dimension free for enumeration: left of every plate and
    of every batch dimension any sample site of ``model_trace`` has."""
    used = 0
    for msg in model_trace.values():
        if msg["type"] != "sample":
            continue
        used = max(used, len(msg["fn"].batch_shape),
                   max((-f.dim for f in msg["cond_indep_stack"]), default=0))
    return -used - 1


class _ControlFlowGuard(onp.ndarray):
    """An enumerated value that refuses to become one Python bool or number.

    Used only in the check run: a model that branches on an enumerated
    value (``if z == 1``) would see all values at once, so the error says
    which site it was and what to do instead.
    """

    site = None

    def __array_finalize__(self, obj):
        self.site = getattr(obj, "site", None)

    def _refuse(self, *args):
        raise SiteError(
            f"site '{self.site}' is enumerated (all its values at once, along a batch "
            "dimension), but the model turns it into a single Python bool or number (an `if`, "
            "`int(...)`, `range(...)` on it). Write that step with array operations "
            "(np.where, indexing such as locs[z]), or do not enumerate the site (remove "
            "infer={'enumerate': 'parallel'}).")

    __bool__ = __int__ = __float__ = __index__ = _refuse

    def item(self, *args):
        return self._refuse()


def carries_enumeration(value) -> bool:
    """Whether ``value``, computed in a check run (``Enumerator(check=True)``),
    was made from an enumerated value by numpy operations that keep the
    array's class (arithmetic, reductions): a deterministic site such as
    ``np.sum(z)`` whose shape alone does not show it."""
    return isinstance(value, _ControlFlowGuard)


def _visible(path_a: tuple, path_b: tuple) -> bool:
    """Whether two sites may depend on each other, from their ``pb.markov``
    paths (``((markov id, step, history), ...)``, outermost first). Sites at
    steps of one Markov loop more than ``history`` apart cannot, so they may
    share an enumeration dimension."""
    for (id_a, step_a, history), (id_b, step_b, _) in zip(path_a, path_b):
        if id_a != id_b:
            return True
        if step_a != step_b:
            return abs(step_a - step_b) <= history
    return True


class Enumerator(Messenger):
    """Give enumerated sites their whole support along their own dimension.

    Parameters
    ----------
    fn : callable
        The model.
    first_dim : int
        The rightmost dimension enumeration may use (:func:`first_enum_dim`).
    check : bool
        Wrap enumerated values so that Python control flow on them raises a
        :class:`SiteError` naming the site (for the check run only: it costs
        a little at every array operation).

    Every sample site's ``msg["infer"]["_enum_scope"]`` is set to
    ``{dim: enumerated site}`` for the dimensions visible from it, and every
    enumerated site's ``msg["infer"]["_enum_dim"]`` to its dimension.
    """

    def __init__(self, fn=None, first_dim: int = -1, check: bool = False):
        self.first_dim = first_dim
        self.check = check
        self._holders: dict[int, list] = {}
        # One array object per (support, dim), reused by every site and run:
        # the tape compiler merges repeated operations on the same constant,
        # so ``theta[x]`` along a Markov chain is computed once per dim.
        self._values: dict[tuple, onp.ndarray] = {}
        super().__init__(fn)

    def __enter__(self):
        self._holders = defaultdict(list)  # dim -> [(site, markov path)], oldest first
        # A Markov chain's steps repeat computations on the same support
        # (``theta[x]``): shared, each is traced, replayed and differentiated once.
        self._shared = shared_calls().__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._shared.__exit__(*exc)

    def _scope(self, path) -> dict:
        scope = {}
        for dim, holders in self._holders.items():
            for name, held_path in reversed(holders):
                if _visible(path, held_path):
                    scope[dim] = name
                    break
        return scope

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        path = msg["infer"].get("_markov", ())
        if is_enumerated(msg) and msg["value"] is None:
            used = set(self._scope(path))
            dim = self.first_dim
            while dim in used:
                dim -= 1
            if -dim > MAX_ENUM_DIMS:
                raise SiteError(
                    f"site '{msg['name']}' needs enumeration dimension {dim}: more than "
                    f"{MAX_ENUM_DIMS} enumerated sites are alive at once. Write a sequential "
                    "loop with `for t in pb.markov(range(T))` so that dimensions are reused, put "
                    "independent sites in a pb.plate, or marginalise some by hand.")
            msg["value"] = self._support(msg, dim)
            msg["infer"]["_enum_dim"] = dim
            self._holders[dim].append((msg["name"], path))
        msg["infer"]["_enum_scope"] = self._scope(path)

    def _support(self, msg, dim):
        name, fn = msg["name"], msg["fn"]
        if not fn.has_enumerate_support:
            raise SiteError(
                f"site '{name}' ({type(fn).__name__}, support {fn.support!r}) is marked for "
                "enumeration, but its support is not finite. Remove infer={'enumerate': "
                "'parallel'} so that pb.hmc samples it with Gibbs/Metropolis steps, or "
                "truncate it (a Categorical over 0..N).")
        plates = {f.dim for f in msg["cond_indep_stack"]}
        extra = [d for d in range(-len(fn.batch_shape), 0)
                 if d > self.first_dim and fn.batch_shape[d] > 1 and d not in plates]
        if extra:
            raise SiteError(
                f"site '{name}' is enumerated but has batch dimension(s) {extra} of its "
                f"{type(fn).__name__} (batch shape {tuple(fn.batch_shape)}) that no pb.plate "
                "declares. Put the site inside pb.plate(...) for each of them.")
        try:
            support = onp.asarray(fn.enumerate_support(expand=False))
        except ValueError as exc:
            raise SiteError(f"site '{name}' cannot be enumerated: {exc}") from None
        values = support.reshape(support.shape[0], -1)[:, 0]
        key = (values.dtype.str, values.tobytes(), dim)
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = values.reshape((len(values),) + (1,) * (-dim - 1))
            value.flags.writeable = False
        if self.check:
            value = value.view(_ControlFlowGuard)
            value.site = name
        return value


# ----------------------------------------------------------- the contraction
@dataclass
class _Factor:
    log: object            # array (or Box), aligned from the right
    sites: frozenset       # enumerated sites it depends on
    plates: frozenset      # plate names of its ordinal


@dataclass
class Elimination:
    """One step of the elimination: ``log`` is the sum of every factor that
    held ``site`` when it was summed out, a function of ``site`` and of
    ``others`` (eliminated later). Sampling ``site`` from ``softmax(log)``
    given the others' sampled values, in reverse order, draws the joint
    conditional posterior."""

    site: str
    log: object
    others: frozenset


class _Layout:
    """What the contraction needs from an enumerated trace: each site's
    dimension and plates, each plate's dimension and size."""

    def __init__(self, model_trace):
        self.dim_of, self.plates_of, self.order = {}, {}, {}
        self.plate_dim, self.plate_size = {}, {}
        for msg in model_trace.values():
            for f in msg.get("cond_indep_stack", ()):
                self.plate_dim[f.name], self.plate_size[f.name] = f.dim, f.size
            if msg["type"] == "sample" and "_enum_dim" in msg["infer"]:
                name = msg["name"]
                self.dim_of[name] = msg["infer"]["_enum_dim"]
                self.plates_of[name] = frozenset(f.name for f in msg["cond_indep_stack"])
                self.order[name] = len(self.order)


def _site_factor(msg, log, first_dim, keep_dims=()):
    """``(log, enumerated sites it depends on)``: non-plate batch dims that
    no enumerated site varies along are summed now, except ``keep_dims``."""
    shape = np.shape(log)
    scope = msg["infer"].get("_enum_scope", {})
    plate_dims = {f.dim for f in msg["cond_indep_stack"]}
    sites, summed = set(), []
    for axis, n in enumerate(shape):
        d = axis - len(shape)
        if d <= first_dim:
            if n > 1:
                if d not in scope:
                    raise SiteError(
                        f"site '{msg['name']}': its log density varies along enumeration "
                        f"dimension {d}, which no enumerated site visible from it holds (a value "
                        "from a pb.markov step older than the history it allows?). Raise "
                        "pb.markov's history, or keep the value out of the loop.")
                sites.add(scope[d])
        elif d not in plate_dims and n > 1 and d not in keep_dims:
            summed.append(d)
    if summed:
        log = np.sum(log, axis=tuple(summed), keepdims=True)
    return log, frozenset(sites)


def _add(factors):
    total = factors[0].log
    for f in factors[1:]:
        total = total + f.log
    return total


def _product_over_plates(layout, log, plates):
    """Sum ``log`` over the dims of ``plates`` (a product of densities)."""
    for plate in sorted(plates):
        axis = layout.plate_dim[plate]
        if np.ndim(log) < -axis or np.shape(log)[axis] == 1:
            log = log * layout.plate_size[plate]  # constant along the plate
        else:
            log = np.sum(log, axis=axis, keepdims=True)
    return log


def _eliminate(layout, factors, keep_plates=frozenset(), keep_axes=(), records=None, memo=None):
    """Sum every enumerated site out of ``factors``; return the sum of what
    is left, summed over every dimension but ``keep_axes`` (the dims of
    ``keep_plates``, which are never summed, and any others).

    ``memo`` (a dict shared between calls) reuses a step whose inputs are the
    same array objects as in an earlier call: the pointwise likelihoods of a
    Markov chain's observations share their forward messages.
    """
    by_ordinal = defaultdict(list)
    for f in factors:
        by_ordinal[f.plates - keep_plates].append(f)
    plates_of = {s: p - keep_plates for s, p in layout.plates_of.items()}
    done = []
    while by_ordinal:
        # Innermost ordinal first; ties broken by name so the tape is the same every run.
        leaf = max(by_ordinal, key=lambda o: (len(o), sorted(o)))
        terms = by_ordinal.pop(leaf)
        local = sorted({s for t in terms for s in t.sites if plates_of[s] == leaf},
                       key=layout.order.__getitem__)
        for site in local:
            holding = [t for t in terms if site in t.sites]
            terms = [t for t in terms if site not in t.sites]
            others = frozenset().union(*(t.sites for t in holding)) - {site}
            key = (site, frozenset(id(t.log) for t in holding))
            if memo is not None and key in memo:
                terms.append(_Factor(memo[key][0], others, leaf))
                continue
            joint = _add(holding)
            if math.prod(np.shape(joint)) > MAX_FACTOR_SIZE:
                raise SiteError(
                    f"summing out site '{site}' needs a table of shape {np.shape(joint)} (over "
                    f"{MAX_FACTOR_SIZE} entries). Use pb.markov for sequential dependence, or "
                    "marginalise some sites by hand.")
            if records is not None:
                records.append(Elimination(site, joint, others))
            summed = logsumexp(joint, axis=layout.dim_of[site], keepdims=True)
            if memo is not None:
                memo[key] = (summed, holding)  # holding keeps the inputs, and so their ids, alive
            terms.append(_Factor(summed, others, leaf))
        for t in terms:
            target = frozenset().union(*(plates_of[s] for s in t.sites))
            if t.sites and target == leaf:
                raise SiteError(
                    f"the enumerated sites {sorted(t.sites)} sit in different plates "
                    f"({', '.join(sorted(leaf))}) but meet in one log density: summing them out "
                    "is not tractable plate by plate. Move one of them out of its plate, or "
                    "do not enumerate it.")
            key = ("plates", id(t.log), leaf - target)
            if memo is not None and key in memo:
                log = memo[key][0]
            else:
                log = _product_over_plates(layout, t.log, leaf - target)
                if memo is not None:
                    memo[key] = (log, t.log)
            if t.sites:
                by_ordinal[target].append(_Factor(log, t.sites, target))
            else:
                done.append(log)
    if not keep_axes:
        return sum(np.sum(d) for d in done)
    total = 0.0
    for d in done:
        other = tuple(a for a in range(-np.ndim(d), 0) if a not in keep_axes)
        total = total + (np.sum(d, axis=other, keepdims=True) if other else d)
    return total


def contract(model_trace, first_dim: int, site_log_prob, records=None):
    """The log joint of an enumerated trace, enumerated sites summed out.

    Parameters
    ----------
    model_trace : mapping
        A trace run under :class:`Enumerator`.
    first_dim : int
        The Enumerator's ``first_dim``.
    site_log_prob : callable
        ``msg -> log density`` of a sample site, scaled and masked.
    records : list, optional
        Receives one :class:`Elimination` per enumerated site, in order.

    Returns
    -------
    scalar (or Box)
    """
    layout = _Layout(model_trace)
    total, factors = 0.0, []
    with shared_calls():  # the log densities of a Markov chain's steps repeat (Enumerator)
        for msg in model_trace.values():
            if msg["type"] != "sample":
                continue
            log, sites = _site_factor(msg, site_log_prob(msg), first_dim)
            if sites:
                factors.append(_Factor(log, sites,
                                       frozenset(f.name for f in msg["cond_indep_stack"])))
            else:
                total = total + np.sum(log)
    return total + _eliminate(layout, factors, records=records) if factors else total


def pointwise_log_likelihood(model_trace, first_dim: int, names) -> dict:
    """``{observed site: log p(value | continuous sites)}`` per entry, with the
    enumerated sites it depends on summed out under their prior (other
    observations left out), unscaled and unmasked: what ``az.loo`` needs.

    Only the site's enumerated ancestors are contracted, so a mixture's
    observation costs O(K), and a state-space model's step its chain so far.
    """
    layout = _Layout(model_trace)
    own = {}
    for msg in model_trace.values():
        if msg["type"] == "sample" and msg["name"] in layout.dim_of:
            own[msg["name"]] = _site_factor(msg, msg["fn"].log_prob(msg["value"]), first_dim)
    out, memo = {}, {}
    for name in names:
        msg = model_trace[name]
        log = msg["fn"].log_prob(msg["value"])
        shape = tuple(np.shape(msg["value"]))[:np.ndim(msg["value"]) - len(msg["fn"].event_shape)]
        keep_dims = tuple(range(-len(shape), 0))
        log, sites = _site_factor(msg, log, first_dim, keep_dims)
        if not sites:
            out[name] = log
            continue
        ancestors, stack = set(), list(sites)
        while stack:
            site = stack.pop()
            if site not in ancestors:
                ancestors.add(site)
                stack.extend(own[site][1] - ancestors)
        plates = frozenset(f.name for f in msg["cond_indep_stack"])
        factors = [_Factor(log, sites, plates)] + [
            _Factor(own[s][0], own[s][1], layout.plates_of[s]) for s in sorted(ancestors)]
        kept = _eliminate(layout, factors, keep_plates=plates, keep_axes=keep_dims, memo=memo)
        out[name] = _to_shape(kept, shape, keep_dims)
    return out


def _to_shape(log, shape, keep_dims):
    """Sum the enumeration-region axes (all size one now) of ``log`` away,
    leaving an array of ``shape``."""
    extra = tuple(a for a in range(-np.ndim(log), 0) if a not in keep_dims)
    if extra:
        log = np.sum(log, axis=extra)
    return np.reshape(log, shape) if np.shape(log) != shape else log
