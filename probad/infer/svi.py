"""Stochastic variational inference with user-written guides.

A *guide* is a program like the model: it calls ``pb.param`` for the
variational parameters and ``pb.sample`` for every latent site of the model,
drawing from the approximate posterior. :class:`SVI` fits the guide's
parameters by stochastic gradient descent on a loss (NumPyro's interface)::

    svi = SVI(model, guide, optim.Adam(0.01), loss=Trace_ELBO())
    result = svi.run(seed, 2000, data=...)   # result.params, result.losses

Parameters live in unconstrained space: a ``param`` with
``constraint=positive`` is optimised as its log, mapped back with
``biject_to(constraint)`` inside the loss, so gradients flow through the map.

The ELBO estimator (:class:`Trace_ELBO`): the guide is run (seeded, params
substituted) and traced; the model is replayed on the guide's values and
traced; the ELBO is ``sum log p - sum log q``. Sites whose guide
distribution has ``has_rsample`` are reparameterised, so the gradient flows
through their values. For the others (discrete sites) the surrogate adds the
score-function (REINFORCE) term ``log q(z) * stop_gradient(ELBO - baseline)``,
with a leave-one-out baseline when there are several particles.
"""
from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as onp

import probad.ad.numpy as np
from .. import ad
from ..ad.extend import getval
from ..distributions.transforms import biject_to
from .. import handlers
from ..optim import Optimizer, OptimizerState
from .density import scaled_log_prob
from .kl import kl_divergence
from .progress import progress_bar

__all__ = ["SVI", "SVIState", "SVIRunResult", "Trace_ELBO", "TraceMeanField_ELBO"]


# -------------------------------------------------------------- the ELBOs
def _summed_log_prob(msg):
    """A sample site's log density, scaled and masked, summed to a scalar."""
    return np.sum(scaled_log_prob(msg))


def _is_auxiliary(msg) -> bool:
    return bool(msg["infer"].get("is_auxiliary"))


def _run_pair(rng, params, model, guide, args, kwargs):
    """Trace the guide, then the model replayed on the guide's values; the
    constrained ``params`` replace every ``param`` site in both."""

    def param_value(msg):
        return params.get(msg["name"]) if msg["type"] == "param" else None

    guide_trace = handlers.trace(handlers.substitute(
        handlers.seed(guide, rng), substitute_fn=param_value)).get_trace(*args, **kwargs)
    model_trace = handlers.trace(handlers.replay(handlers.substitute(
        handlers.seed(model, rng), substitute_fn=param_value), trace=guide_trace)
    ).get_trace(*args, **kwargs)
    for name, msg in model_trace.items():
        if msg["type"] == "sample" and not msg["is_observed"] and name not in guide_trace:
            raise ValueError(f"site '{name}' is latent in the model but the guide does not "
                             "sample it: add pb.sample('{name}', ...) to the guide (or observe "
                             "it in the model)")
    for name, msg in guide_trace.items():
        if msg["type"] == "sample" and not msg["is_observed"] and not _is_auxiliary(msg) \
                and name not in model_trace:
            raise ValueError(f"the guide samples site '{name}', which the model does not "
                             "have; mark helper sites with infer={'is_auxiliary': True}")
    return model_trace, guide_trace


class Trace_ELBO:
    """The ELBO estimated from ``num_particles`` joint draws of the guide.

    Reparameterised gradients for sites whose guide distribution has
    ``has_rsample``; score-function gradients for the others (so a guide may
    sample discrete sites), with a leave-one-out baseline across particles.

    Parameters
    ----------
    num_particles : int
        Draws per estimate.
    """

    def __init__(self, num_particles: int = 1):
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        self.num_particles = int(num_particles)

    def __repr__(self):
        return f"{type(self).__name__}(num_particles={self.num_particles})"

    def _latent_term(self, model_msg, guide_msg):
        """This site's contribution to ``log p - log q``."""
        return _summed_log_prob(model_msg) - _summed_log_prob(guide_msg)

    def _particle(self, rng, params, model, guide, args, kwargs):
        """``(elbo, score)``: the ELBO of one draw and the summed log q of the
        draw's non-reparameterised sites (None when there are none)."""
        model_trace, guide_trace = _run_pair(rng, params, model, guide, args, kwargs)
        elbo, score = 0.0, None
        for name, msg in model_trace.items():
            if msg["type"] != "sample":
                continue
            if msg["is_observed"]:
                elbo = elbo + _summed_log_prob(msg)
            else:
                elbo = elbo + self._latent_term(msg, guide_trace[name])
        for msg in guide_trace.values():
            if msg["type"] != "sample" or msg["is_observed"]:
                continue
            if _is_auxiliary(msg):
                elbo = elbo - _summed_log_prob(msg)
            if not msg["fn"].has_rsample:
                log_q = _summed_log_prob(msg)
                score = log_q if score is None else score + log_q
        return elbo, score

    def surrogate_loss(self, rng, params, model, guide, *args, **kwargs):
        """``(surrogate, loss)``: a differentiable surrogate whose gradient is
        an unbiased estimate of the ELBO's, and the loss (-ELBO) value."""
        particles = [self._particle(rng, params, model, guide, args, kwargs)
                     for _ in range(self.num_particles)]
        n = len(particles)
        values = [float(getval(e)) for e, _ in particles]
        total = sum(values)
        surrogate = 0.0
        for (elbo, score), value in zip(particles, values):
            if score is None:
                surrogate = surrogate + elbo
                continue
            # Leave-one-out baseline: unbiased, since it does not depend on this draw.
            baseline = (total - value) / (n - 1) if n > 1 else 0.0
            surrogate = surrogate + elbo + score * (value - baseline)
        return -surrogate / n, -total / n

    def loss(self, rng, params, model, guide, *args, **kwargs) -> float:
        """The loss ``-ELBO`` at constrained ``params``, estimated with ``rng``."""
        return self.surrogate_loss(onp.random.default_rng(rng), params, model, guide,
                                   *args, **kwargs)[1]


class TraceMeanField_ELBO(Trace_ELBO):
    """:class:`Trace_ELBO` with the analytic KL divergence for every latent
    site whose (guide, model) distribution pair has a registered rule
    (:func:`~probad.infer.kl.kl_divergence` lists the built-in pairs;
    plate, ``expand`` and ``to_event`` wrappers are handled). Same
    expectation as :class:`Trace_ELBO`; the analytic term removes those
    sites' own sampling noise, which usually, though not always (it can be
    anticorrelated with the likelihood's), lowers the variance. Like the
    name says, it suits guides whose sites are independent of each other.
    """

    def _latent_term(self, model_msg, guide_msg):
        try:
            kl = kl_divergence(guide_msg["fn"], model_msg["fn"])
        except NotImplementedError:
            return super()._latent_term(model_msg, guide_msg)
        if model_msg["scale"] is not None:
            kl = kl * model_msg["scale"]
        if model_msg["mask"] is not None:
            kl = np.where(model_msg["mask"], kl, 0.0)
        return -np.sum(kl)


# --------------------------------------------------------------------- SVI
class SVIState(NamedTuple):
    """The state between SVI steps.

    Attributes
    ----------
    optim_state : OptimizerState
        Over the unconstrained parameters (a dict).
    entropy : int
        The root seed; step ``t`` draws from ``SeedSequence(entropy, spawn_key=(t,))``.
    step : int
        Steps taken, skipped ones included.
    num_skipped : int
        Steps whose loss or gradient was not finite (not applied).
    """

    optim_state: OptimizerState
    entropy: int
    step: int
    num_skipped: int


class SVIRunResult(NamedTuple):
    """What :meth:`SVI.run` returns: constrained ``params``, the final
    ``state`` and the ``losses`` (one per step, NaN where skipped)."""

    params: dict
    state: SVIState
    losses: onp.ndarray


class SVI:
    """Stochastic variational inference.

    Parameters
    ----------
    model, guide : callable
        The model and the guide, called with the same arguments.
    optimizer : probad.optim.Optimizer
        E.g. ``optim.Adam(0.01)``.
    loss : Trace_ELBO
        The objective (``Trace_ELBO()``, ``TraceMeanField_ELBO()``, ...).
    """

    def __init__(self, model, guide, optimizer: Optimizer, loss: Trace_ELBO | None = None):
        self.model = model
        self.guide = guide
        self.optimizer = optimizer
        self.loss = Trace_ELBO() if loss is None else loss
        self._transforms: dict[str, Any] = {}

    def init(self, seed, *args, **kwargs) -> SVIState:
        """Collect the ``param`` sites of guide and model and set up the optimiser.

        Parameters
        ----------
        seed : int or None
            Root seed of every later step's draws.
        *args, **kwargs
            The model's and guide's arguments.
        """
        entropy = onp.random.SeedSequence(seed).entropy
        # The set-up run draws from a stream no step uses (steps use keys 0, 1, ...).
        rng = onp.random.default_rng(onp.random.SeedSequence(entropy, spawn_key=(2**32,)))
        guide_trace = handlers.trace(handlers.seed(self.guide, rng)).get_trace(*args, **kwargs)
        model_trace = handlers.trace(handlers.replay(handlers.seed(self.model, rng),
                                                     trace=guide_trace)).get_trace(*args, **kwargs)
        unconstrained = {}
        for tr in (guide_trace, model_trace):
            for name, msg in tr.items():
                if msg["type"] != "param" or name in unconstrained:
                    continue
                transform = biject_to(msg["kwargs"]["constraint"])
                value = onp.asarray(getval(msg["value"]), dtype=float)
                self._transforms[name] = transform
                unconstrained[name] = onp.asarray(transform.inv(value), dtype=float)
        if not unconstrained:
            raise ValueError("neither the guide nor the model has a pb.param site: there is "
                             "nothing to optimise")
        return SVIState(self.optimizer.init(unconstrained), entropy, 0, 0)

    def _constrain(self, unconstrained):
        return {k: self._transforms[k](v) for k, v in unconstrained.items()}

    def get_params(self, state: SVIState) -> dict:
        """The constrained parameter values held by ``state``."""
        raw = self.optimizer.get_params(state.optim_state)
        return {k: onp.asarray(v) for k, v in self._constrain(raw).items()}

    def update(self, state: SVIState, *args, **kwargs) -> tuple[SVIState, float]:
        """One optimisation step. Returns ``(new_state, loss)``.

        A step whose loss or gradient is NaN/inf is not applied (the state
        only advances its draw counter and ``num_skipped``).
        """
        rng = _step_rng(state)
        unconstrained = self.optimizer.get_params(state.optim_state)

        def surrogate(params):
            return self.loss.surrogate_loss(rng, self._constrain(params), self.model,
                                            self.guide, *args, **kwargs)

        with onp.errstate(all="ignore"):
            grads, loss = ad.grad_and_aux(surrogate)(unconstrained)
        finite = math.isfinite(loss) and all(onp.isfinite(g).all() for g in grads.values())
        if not finite:
            return state._replace(step=state.step + 1, num_skipped=state.num_skipped + 1), loss
        return SVIState(self.optimizer.update(grads, state.optim_state), state.entropy,
                        state.step + 1, state.num_skipped), loss

    def evaluate(self, state: SVIState, *args, **kwargs) -> float:
        """The loss at ``state`` (with the draws of its next step), no update."""
        params = self._constrain(self.optimizer.get_params(state.optim_state))
        return self.loss.surrogate_loss(_step_rng(state), params, self.model, self.guide,
                                        *args, **kwargs)[1]

    def run(self, seed, num_steps: int, *args, progress: bool = True,
            init_state: SVIState | None = None, **kwargs) -> SVIRunResult:
        """Run ``num_steps`` steps from ``init`` (or ``init_state``).

        A guide with a ``params`` attribute (the autoguides) receives the
        fitted constrained params, so ``guide.median()`` then needs no
        arguments.

        Returns
        -------
        SVIRunResult
            ``params`` (constrained), ``state``, ``losses``.
        """
        state = self.init(seed, *args, **kwargs) if init_state is None else init_state
        losses = onp.full(num_steps, onp.nan)
        bar = None
        if progress:
            bar = progress_bar(total=num_steps, desc="SVI", unit="step", dynamic_ncols=True)
        every = max(1, num_steps // 100)
        last = time.perf_counter()
        try:
            for t in range(num_steps):
                state, loss = self.update(state, *args, **kwargs)
                losses[t] = loss
                if bar is not None and ((t + 1) % every == 0 or t + 1 == num_steps):
                    window = losses[max(0, t + 1 - every):t + 1]
                    window = window[onp.isfinite(window)]
                    bar.update(t + 1 - bar.n)
                    if window.size and time.perf_counter() - last > 0.1:
                        bar.set_postfix_str(f"loss={window.mean():.4g}", refresh=False)
                        last = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        params = self.get_params(state)
        if hasattr(self.guide, "params"):
            self.guide.params = params
        return SVIRunResult(params, state, losses)


def _step_rng(state: SVIState) -> onp.random.Generator:
    # A pure function of the state: replaying a state replays its draws.
    return onp.random.default_rng(onp.random.SeedSequence(state.entropy, spawn_key=(state.step,)))
