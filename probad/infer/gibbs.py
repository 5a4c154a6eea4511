"""Gibbs steps for the discrete latent sites that are not enumerated.

``pb.hmc`` alternates a NUTS (or HMC) transition of the continuous sites
with one sweep over these sites, in model order (NumPyro's
``DiscreteHMCGibbs`` and PyMC's compound steps do the same):

- A site with a finite support of at most :data:`MAX_SUPPORT` values is drawn
  from its full conditional: the log joint at each value of the support,
  every other site held fixed, normalised.
- A site with an infinite support (Poisson, Geometric, NegativeBinomial
  counts) takes a Metropolis step: a symmetric random walk on the integers,
  a jump of 1..m with either sign, accepted with the ratio of the log joints
  (a proposal outside the support is rejected). The reach ``m`` starts at 1
  and is tuned during warmup by the rule PyMC's Metropolis tunes its scale
  by (every :data:`TUNE_INTERVAL` sweeps, grown while more than half the
  proposals are accepted, shrunk while fewer than a fifth are), then fixed
  for sampling; a count with a posterior sd of 8 then moves by about that
  much, not by one.

Where the site sits in plates, its entries are conditionally independent
given everything else, so all of them are updated from **one run** of the
model: the candidate values are laid along a dimension to the left of every
plate, as enumeration lays a support (:mod:`probad.infer.enumerate`), and each
entry's conditional is the sum of the log densities that vary along that
dimension, summed over every dimension except the site's plates. That run is
compiled once (the candidates, ``q`` and the other discrete values are inputs
of the tape), so a sweep replays a tape and never retraces one whose
structure does not depend on the values.

That shortcut is right only if every log density that depends on the site
lies in all of the site's plates and reads each entry on its own. This is
checked when the steps are built, by changing one entry and comparing the
local terms with the change of the whole potential; a site that fails the
check (a sum over the plate, a support or transform that depends on it, an
undeclared batch dimension, enumerated sites in the model) is updated one
entry at a time, each entry's candidates evaluated on the compiled potential.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as onp

import probad.ad.numpy as np
from ..ad.compiler import compile as compile_function
from ..distributions.distribution import validation_suspended
from .density import Potential, scaled_log_prob
from .enumerate import first_enum_dim

__all__ = ["GibbsSteps", "GibbsWarning", "gibbs_steps", "MAX_SUPPORT", "TUNE_INTERVAL"]

#: Largest finite support drawn from its full conditional; a larger one takes
#: random-walk Metropolis steps (one run costs a pass per candidate value).
MAX_SUPPORT = 256

#: Warmup sweeps between two changes of a random walk's reach.
TUNE_INTERVAL = 50

# What a blocked update's local terms may differ from the potential by
# (rounding of two sums in different orders), relative to the terms' size.
_CHECK_RTOL = 1e-8


class GibbsWarning(UserWarning):
    """Says which discrete latent sites ``pb.hmc`` samples by Gibbs or
    Metropolis steps, and how (also in ``idata.attrs["discrete_sampling"]``)."""


@dataclass
class _Update:
    """How one discrete site is updated."""

    name: str
    size: int
    offset: int
    support: onp.ndarray | None  # the finite support's values, or None: random walk
    constraint: object  # the site's support, to refuse random-walk proposals outside it
    blocked: bool  # every entry from one run of the model
    plates: tuple  # plate names of the site (for the summary)
    scale: float = 1.0  # a random walk's reach (its largest jump), tuned in warmup
    accepted: int = 0  # random-walk proposals accepted since the reach last changed
    proposed: int = 0

    def describe(self) -> str:
        if self.support is not None:
            how = f"Gibbs from its full conditional over {len(self.support)} values"
        else:
            how = "Metropolis, random walk on the integers tuned in warmup (infinite support)"
        if self.size == 1:
            return how
        if self.blocked:
            return f"{how}, all entries of plate(s) {', '.join(self.plates)} at once"
        return f"{how}, one entry at a time"


class GibbsSteps:
    """The sweep over a potential's Gibbs sites (:attr:`Potential.discrete`).

    Parameters
    ----------
    pot : Potential
        Built with ``gibbs=True``; its ``discrete_values`` are what a sweep
        updates.

    Calling the object, ``steps(rng, q, tune=False)``, runs one sweep at the
    continuous position ``q`` and returns the new ``discrete_values`` (also
    set on ``pot``); with ``tune`` the sweep is a warmup one, whose random
    walks tune their reach. ``restart()`` sets every reach back to 1, as a
    new chain begins (chains run in one process share this object).
    ``describe()`` says how each site is updated.
    """

    def __init__(self, pot: Potential):
        self.pot = pot
        z = pot.discrete_values
        q = onp.zeros(pot.dim)
        with onp.errstate(all="ignore"), validation_suspended():
            model_trace, _ = pot._run(q, z)
        # The candidates' dimension: left of every plate and batch dimension.
        self._dim = first_enum_dim(model_trace)
        self._local = compile_function(self._local_log_density, backend=pot.backend) \
            if pot.compiled else self._local_log_density
        self.updates = [self._update(model_trace[site.name], site, q, z)
                        for site in pot.discrete.values()]

    # ------------------------------------------------------------- building
    def _update(self, msg, site, q, z) -> _Update:
        fn = msg["fn"]
        support = None
        if fn.has_enumerate_support:
            try:
                values = onp.asarray(fn.enumerate_support(expand=False), dtype=onp.float64)
            except ValueError:  # a support that differs between entries
                values = None
            if values is not None and len(values) <= MAX_SUPPORT:
                support = values.reshape(len(values), -1)[:, 0]
        plates = tuple(f.name for f in msg["cond_indep_stack"])
        update = _Update(site.name, site.size, site.offset, support, fn.support, False, plates)
        update.blocked = self._blocks(update, msg, site, q, z)
        return update

    def _blocks(self, update, msg, site, q, z) -> bool:
        """Whether one run gives every entry's conditional (see the module
        docstring): the site's dims are its plates', no enumerated site, and
        changing one entry changes that entry's local terms by what it
        changes the potential, and nothing else."""
        try:
            return self._checked_blocks(update, msg, site, q, z)
        except (TypeError, ValueError, IndexError):
            # The model cannot run on all candidates at once (Python control
            # flow on the site's value, an index computed from it).
            return False

    def _checked_blocks(self, update, msg, site, q, z) -> bool:
        pot = self.pot
        frames = {f.dim: f.size for f in msg["cond_indep_stack"]}
        shape = site.shape
        if pot.enumerated or any(n > 1 and frames.get(axis - len(shape)) != n
                                 for axis, n in enumerate(shape)):
            return False
        current = z[site.offset:site.offset + site.size]
        entry = 0
        if update.support is not None:
            # Start from the most likely value of each entry, where the joint is
            # most likely finite (a prior draw of a zero-inflation indicator is
            # not), and change an entry to a value of finite density.
            with onp.errstate(all="ignore"), validation_suspended():
                local, _ = self._local_log_density(q, z, self._candidates(update, current),
                                                   site.name, True)
            local = onp.nan_to_num(onp.reshape(local, (len(update.support), -1)), nan=-onp.inf)
            best = onp.argmax(local, axis=0)
            current = update.support[best]
            local[best, onp.arange(site.size)] = -onp.inf
            alternatives = onp.argwhere(onp.isfinite(local))
            if len(alternatives) == 0:
                return len(update.support) == 1  # nothing to check against
            value, entry = alternatives[0]
            changed = update.support[value]
        else:
            changed = current[0] + 1.0
        rows = onp.stack([current, current.copy()])
        rows[1, entry] = changed
        with onp.errstate(all="ignore"), validation_suspended():
            local, outside = self._local_log_density(q, z, rows, site.name, True)
            energies = []
            for row in rows:
                full = z.copy()
                full[site.offset:site.offset + site.size] = row
                energies.append(float(pot._energy_fn(q, True, full)))
        if outside:
            return False
        local = onp.reshape(onp.asarray(local, dtype=float), (2, -1))
        others = onp.arange(site.size) != entry
        if not onp.array_equal(local[0, others], local[1, others], equal_nan=True):
            return False  # entries are coupled (a sum over the plate)
        change, expected = local[1, entry] - local[0, entry], energies[0] - energies[1]
        if not (math.isfinite(change) and math.isfinite(expected)):
            return False  # cannot tell: the safe update
        scale = abs(local[:, entry]).sum() + abs(energies[0]) + abs(energies[1])
        return abs(change - expected) <= _CHECK_RTOL * scale

    @staticmethod
    def _candidates(update, current) -> onp.ndarray:
        return onp.repeat(update.support[:, None], len(current), axis=1)

    def _local_log_density(self, q, z, rows, name, check=False):
        """Each candidate's local log density: ``rows`` (K, size) are K values
        of site ``name``; the result (K, *shape) sums, entry by entry, the log
        densities that vary with it. With ``check``, also the sites among them
        that lie outside one of the site's plates."""
        pot, dim = self.pot, self._dim
        site = pot.discrete[name]
        model_trace, _ = pot._run(q, z, (name, rows, dim))
        plates = {f.name: f.dim for f in model_trace[name]["cond_indep_stack"]}
        total, outside = 0.0, []
        for msg in model_trace.values():
            if msg["type"] != "sample":
                continue
            log = scaled_log_prob(msg)
            shape = np.shape(log)
            if len(shape) < -dim or shape[dim] == 1:
                continue  # does not vary with the candidates
            if not set(plates) <= {f.name for f in msg["cond_indep_stack"]}:
                outside.append(msg["name"])
            keep = {dim} | set(plates.values())
            summed = tuple(d for d in range(dim + 1, 0) if d not in keep and shape[d] > 1)
            if summed:
                log = np.sum(log, axis=summed, keepdims=True)
            total = total + log
        k = np.shape(rows)[0]
        full = (k,) + (1,) * (-dim - 1 - len(site.shape)) + site.shape
        local = np.reshape(np.broadcast_to(total, full), (k,) + site.shape)
        return (local, outside) if check else local

    # -------------------------------------------------------------- sweeping
    def describe(self) -> dict[str, str]:
        """Site name -> how its values are updated."""
        return {u.name: u.describe() for u in self.updates}

    def restart(self) -> None:
        """Every random walk back to its first reach, for a new chain."""
        for update in self.updates:
            update.scale, update.accepted, update.proposed = 1.0, 0, 0

    def reaches(self) -> onp.ndarray:
        """Every site's reach (1 for a site drawn from its full conditional)."""
        return onp.array([update.scale for update in self.updates])

    def resume(self, values, reaches) -> onp.ndarray:
        """Go on from an earlier chain's discrete values and reaches."""
        self.restart()
        for update, scale in zip(self.updates, reaches):
            update.scale = float(scale)
        self.pot.discrete_values = onp.array(values, dtype=onp.float64)
        return self.pot.discrete_values

    def __call__(self, rng: onp.random.Generator, q, tune: bool = False) -> onp.ndarray:
        q = onp.asarray(q, dtype=onp.float64)
        with onp.errstate(all="ignore"):
            for update in self.updates:
                z = self.pot.discrete_values.copy()
                current = z[update.offset:update.offset + update.size]
                step = self._blocked_step if update.blocked else self._entrywise_step
                new = step(rng, q, z, update, current)
                if tune and update.support is None:
                    _tune_reach(update, int(onp.count_nonzero(new != current)), update.size)
                z[update.offset:update.offset + update.size] = new
                self.pot.discrete_values = z
        return self.pot.discrete_values

    @staticmethod
    def _jumps(rng, update, shape):
        """Symmetric random-walk jumps: 1..m with either sign, m the reach."""
        reach = max(1, int(round(update.scale)))
        sizes = rng.integers(1, reach + 1, size=shape) if reach > 1 else onp.ones(shape)
        return rng.choice((-1.0, 1.0), size=shape) * sizes

    def _blocked_step(self, rng, q, z, update, current):
        if update.support is not None:
            rows = self._candidates(update, current)
            logits = onp.reshape(self._local(q, z, rows, update.name), rows.shape)
            return self._draw(rng, logits, update.support, current)
        proposal = current + self._jumps(rng, update, current.shape)
        rows = onp.stack([current, proposal])
        local = onp.reshape(self._local(q, z, rows, update.name), rows.shape)
        return self._accept(rng, local[1] - local[0], current, proposal, update)

    def _entrywise_step(self, rng, q, z, update, current):
        new = current.copy()
        for i in range(update.size):
            if update.support is not None:
                energies = [self._energy(q, z, update, new, i, value) for value in update.support]
                new[i] = self._draw(rng, -onp.array(energies)[:, None], update.support,
                                    new[i:i + 1])[0]
            else:
                proposal = new[i] + self._jumps(rng, update, ())
                log_ratio = self._energy(q, z, update, new, i, new[i]) - \
                    self._energy(q, z, update, new, i, proposal)
                new[i] = self._accept(rng, onp.array([log_ratio]), new[i:i + 1],
                                      onp.array([proposal]), update)[0]
        return new

    def _energy(self, q, z, update, values, i, value) -> float:
        """``U`` with the site's entries ``values``, entry ``i`` set to ``value``."""
        full = z.copy()
        full[update.offset:update.offset + update.size] = values
        full[update.offset + i] = value
        return self.pot.energy_at(q, full)

    @staticmethod
    def _draw(rng, logits, support, current):
        """Each column's new value, drawn from ``softmax(logits)`` over the
        support (Gumbel-max); a column with no finite logit keeps its value."""
        logits = onp.where(onp.isnan(logits), -onp.inf, logits)
        drawn = support[onp.argmax(logits + rng.gumbel(size=logits.shape), axis=0)]
        return onp.where(onp.isfinite(logits.max(axis=0)), drawn, current)

    @staticmethod
    def _accept(rng, log_ratio, current, proposal, update):
        inside = onp.asarray(update.constraint.check(proposal), dtype=bool)
        # NaN ratios (a proposal where the density is undefined) are refused.
        accept = inside & (onp.log(rng.random(current.shape)) < log_ratio)
        return onp.where(accept, proposal, current)


def _tune_reach(update: _Update, accepted: int, proposed: int) -> None:
    """Count a warmup sweep's random-walk acceptances; every
    :data:`TUNE_INTERVAL` sweeps, scale the reach by PyMC's Metropolis rule
    (acceptance rate below 0.2 shrinks it, above 0.5 grows it)."""
    update.accepted += accepted
    update.proposed += proposed
    if update.proposed < TUNE_INTERVAL * update.size:
        return
    rate = update.accepted / update.proposed
    factor = (0.1 if rate < 0.001 else 0.5 if rate < 0.05 else 0.9 if rate < 0.2
              else 10.0 if rate > 0.95 else 2.0 if rate > 0.75 else 1.1 if rate > 0.5 else 1.0)
    update.scale = max(1.0, update.scale * factor)
    update.accepted = update.proposed = 0


def gibbs_steps(pot: Potential) -> GibbsSteps:
    """The potential's :class:`GibbsSteps`, built once and kept on it."""
    steps = getattr(pot, "_gibbs_steps", None)
    if steps is None:
        steps = pot._gibbs_steps = GibbsSteps(pot)
    return steps


def warn_of_gibbs_sites(steps: GibbsSteps, stacklevel: int) -> None:
    """One :class:`GibbsWarning` naming each Gibbs site and its update."""
    listing = "; ".join(f"'{name}': {how}" for name, how in steps.describe().items())
    warnings.warn(
        f"pb.hmc samples the discrete latent site(s) that are not enumerated with Gibbs "
        f"steps between NUTS transitions: {listing}. A finite one enumerated instead "
        "(infer={'enumerate': 'parallel'}) is summed out exactly, which usually mixes better; "
        "pb.infer_discrete then draws it.", GibbsWarning, stacklevel=stacklevel)
