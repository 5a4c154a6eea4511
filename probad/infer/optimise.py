"""The loop that fits a Gaussian family to a potential by stochastic ELBO
ascent, and its stopping rule (used by :func:`probad.infer.advi`).

:mod:`probad.optim` holds the update rules (Adam); this module decides where
they step (the *frames* of :mod:`probad.infer.gaussian`: after the first
phase, the guide is re-expressed in coordinates in which it is a standard
normal, so Adam's steps are scaled to the posterior in every direction), what
is reported (the average of the iterates over the second half of the run)
and when to stop (the averages over the last two quarters agree, and their
joint average is precise). See :func:`optimise`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as onp

from ..optim import Adam, ClippedAdam, OptimizerState
from .gaussian import GaussianFamily

__all__ = ["optimise", "ELBORun", "NonFiniteELBO", "finite_mean", "BLOCK", "MAX_SKIPPED_SHARE"]

# Iterates are summarised in blocks of this many steps: averages, the
# convergence checks, the learning-rate schedule and the progress bar all
# work on blocks, which keeps per-step bookkeeping to two vector additions.
BLOCK = 100
# The convergence rule compares the last two quarters of the run once each
# holds at least this many blocks; the first half is never averaged.
MIN_WINDOW = 4
# A block in which at least this share of the steps had a non-finite loss or
# gradient means the ELBO cannot be evaluated where the guide is.
MAX_SKIPPED_SHARE = 0.9


class _Blocks:
    """Per-block sums of the guide over q and of its marginal variances.

    Windows lie in the second half of the run, so older blocks are dropped
    as the run grows.
    """

    def __init__(self, family):
        self.family = family
        self.theta: dict[int, onp.ndarray] = {}
        self.var: dict[int, onp.ndarray] = {}
        self.count: dict[int, int] = {}
        self.n = 0

    def add(self, theta_sum, var_sum, count):
        self.theta[self.n] = theta_sum
        self.var[self.n] = var_sum
        self.count[self.n] = count
        self.n += 1
        # Every window, now or later, starts at or after this block.
        first_needed = self.n // 2
        for old in [k for k in self.theta if k < first_needed]:
            del self.theta[old], self.var[old], self.count[old]

    def average(self, start: int, stop: int):
        """The guide averaged over blocks ``[start, stop)``: the mean of the
        iterates, with scales set to match the mean marginal variance.

        Averaging variances rather than the raw scale parameters matters:
        the scale parameters fluctuate around the optimum and ``E[s^2]``, not
        ``softplus(E[rho])``, is what the stationary point pins down.
        """
        keys = range(max(start, 0), stop)
        n = sum(self.count[k] for k in keys)
        theta = sum(self.theta[k] for k in keys) / n
        var = sum(self.var[k] for k in keys) / n
        return self.family.with_marginal_var(theta, var)


def _moment_change(family, a, b):
    """RMS over coordinates of the change in means (in posterior sds) and in log sds."""
    sd_a, sd_b = family.marginal_sd(a), family.marginal_sd(b)
    dm = float(onp.sqrt(onp.mean(((family.loc(b) - family.loc(a)) / sd_b) ** 2)))
    ds = float(onp.sqrt(onp.mean(onp.log(sd_b / sd_a) ** 2)))
    return dm, ds


def _standard_error(series):
    """Standard error of the mean of each column of a block series, with an
    AR(1) correction for the blocks' autocorrelation (slowly mixing
    directions keep iterates correlated across blocks)."""
    x = series - series.mean(axis=0)
    var = onp.mean(x * x, axis=0)
    safe = onp.where(var > 0, var, 1.0)
    rho = onp.clip(onp.mean(x[1:] * x[:-1], axis=0) / safe, 0.0, 0.9)
    return onp.sqrt(var / len(x) * (1 + rho) / (1 - rho))


def _monte_carlo_error(locs, sds, sd_ref):
    """RMS over coordinates of the standard error of the average of the
    per-block guides: for the means in units of ``sd_ref``, and the log sds."""
    se_m = _standard_error(onp.asarray(locs)) / sd_ref
    se_s = _standard_error(onp.log(sds))
    return float(onp.sqrt(onp.mean(se_m**2))), float(onp.sqrt(onp.mean(se_s**2)))


class ELBORun(NamedTuple):
    """What :func:`optimise` returns.

    Attributes
    ----------
    theta : ndarray
        The guide averaged over the second half of the run.
    elbo : ndarray
        One-step ELBO estimates (NaN where a step was skipped).
    num_steps, num_skipped : int
    converged, interrupted : bool
    reason : str
        Why the run stopped, with the numbers the rule looked at.
    averaged_from : int
        The step from which the iterates were averaged.
    history : dict
        Per block: ``step``, and the block-averaged guide's ``loc`` and ``sd``.
    """

    theta: onp.ndarray
    elbo: onp.ndarray
    num_steps: int
    num_skipped: int
    converged: bool
    reason: str
    interrupted: bool
    averaged_from: int
    history: dict


class NonFiniteELBO(Exception):
    """Nearly every step of a block had a non-finite loss or gradient.

    Attributes
    ----------
    z, grad : ndarray
        The draws of the last failed step and the potential's gradients there.
    """

    def __init__(self, z, grad):
        self.z, self.grad = z, grad


def optimise(value_and_grad: Callable, family: GaussianFamily, theta0: onp.ndarray, *,
              rng, steps: int, learning_rate: float, num_particles: int, tol: float | None,
              clip_norm: float | None, bar) -> ELBORun:
    """Maximise the ELBO; return the averaged guide and the run's record.

    The schedule works in phases that end at 2, 4, 8, ... blocks. Each new
    phase restarts Adam (fresh moments, the rate divided by sqrt(2)) in a
    new *frame*: coordinates ``w`` with ``q = shift + A w`` in which the
    guide averaged over the last quarter of the run is standard normal.
    Adam's steps then have the size of the posterior's own scale in every
    direction, correlated or not; the first phase works in raw units, so a
    start far from the posterior is left quickly. Restarting drops second
    moments inflated by early, wild gradients, and the decaying rate shrinks
    the iterates' fluctuation and the bias it puts into the scales.

    The estimate is the average of the iterates over the second half of the
    run. Convergence (checked once each quarter has ``MIN_WINDOW`` blocks):
    the averages over the last two quarters agree within ``tol`` (no drift
    left that the noise could hide at that level) and the standard error of
    their joint average, from the per-block averages, is below ``tol / 2``;
    both RMS over coordinates, means in posterior sds, and log sds.
    """
    d = family.dim
    theta = onp.array(theta0, dtype=float)  # the guide over w
    frame = family.identity_frame()
    phase = 0

    def optimizer(rate):
        return ClippedAdam(rate, clip_norm=clip_norm) if clip_norm else Adam(rate)

    opt = optimizer(learning_rate)
    zero = onp.zeros_like(theta)
    state = opt.init(zero)
    elbo = onp.full(steps, onp.nan)
    blocks = _Blocks(family)
    history_loc, history_sd, history_step = [], [], []
    theta_sum, var_sum, in_block, skipped_in_block = zero.copy(), 0.0, 0, 0
    num_skipped = 0
    converged, reason, last_change, last_error, bad = False, None, None, None, None

    def close_block():
        """The block's average guide over w, pushed forward to q."""
        over_w = family.with_marginal_var(theta_sum / in_block, var_sum / in_block)
        over_q = family.push_forward(over_w, frame)
        blocks.add(over_q * in_block, family.marginal_sd(over_q) ** 2 * in_block, in_block)

    t = 0
    interrupted = False
    try:
        for t in range(steps):
            eps = rng.standard_normal((num_particles, family.num_noise))
            w, aux = family.draw(theta, eps)
            z = frame.to_q(w) + frame.mean_offset(theta[:d])
            G = onp.empty_like(z)
            total = 0.0
            for i in range(num_particles):
                u, G[i] = value_and_grad(z[i])
                total += u
            entropy, marginal_var = family.step_stats(aux)
            loss = total / num_particles - entropy - frame.log_det
            grad = family.grad(theta, eps, frame.pull_back(G), aux)
            grad[:d] = frame.pull_back_mean(grad[:d])
            theta_sum += theta
            var_sum += marginal_var
            in_block += 1
            if math.isfinite(loss) and onp.isfinite(grad).all():
                elbo[t] = -loss
                # Adam sees parameters at zero each step: its update *is* the step.
                state = opt.update(grad, OptimizerState(state.step, (zero,), state.slots, None))
                theta = theta + state.params[0]
            else:
                num_skipped += 1
                skipped_in_block += 1
                bad = (z, G)
            if in_block < BLOCK:
                continue

            # ---- end of a block: bookkeeping, schedule, convergence
            if skipped_in_block >= MAX_SKIPPED_SHARE * in_block:
                raise NonFiniteELBO(*bad)
            close_block()
            theta_sum, var_sum, in_block, skipped_in_block = zero.copy(), 0.0, 0, 0
            nb = blocks.n
            recent = blocks.average(nb - 1, nb)
            history_step.append(t + 1)
            history_loc.append(family.loc(recent).copy())
            history_sd.append(family.marginal_sd(recent))
            if bar is not None:
                bar.update(BLOCK)
                bar.set_postfix_str(f"elbo={finite_mean(elbo[t + 1 - BLOCK:t + 1]):.4g}",
                                    refresh=False)
            if nb & (nb - 1) == 0 and nb > 1:
                phase += 1
                reference = blocks.average(nb - max(1, nb // 4), nb)
                frame = family.frame_of(reference)
                theta = family.standard_params(reference)
                opt = optimizer(learning_rate * 2.0 ** (-phase / 2))
                state = opt.init(zero)
            window = nb // 4
            if tol is not None and window >= MIN_WINDOW:
                a = blocks.average(nb - 2 * window, nb - window)
                b = blocks.average(nb - window, nb)
                last_change = _moment_change(family, a, b)
                last_error = _monte_carlo_error(history_loc[-2 * window:], history_sd[-2 * window:],
                                                family.marginal_sd(b))
                if max(last_change) < tol and max(last_error) < tol / 2:
                    converged = True
                    reason = (f"converged at step {t + 1}: the guide averaged over steps "
                              f"{(nb - 2 * window) * BLOCK}-{(nb - window) * BLOCK} and "
                              f"{(nb - window) * BLOCK}-{nb * BLOCK} agrees within tol={tol} "
                              f"(means moved {last_change[0]:.3g} posterior sd, log sds "
                              f"{last_change[1]:.3g}) and the average of both has a Monte Carlo "
                              f"error below tol/2 ({last_error[0]:.3g} sd, {last_error[1]:.3g}; "
                              "RMS over coordinates)")
                    break
    except KeyboardInterrupt:
        # As PyMC does, Ctrl-C keeps the fit so far: the average over the
        # blocks closed and the steps of the unfinished one (the interrupted
        # step itself may be half done, so it is not counted).
        if not blocks.n and not in_block:
            raise
        interrupted = True
        t -= 1
    num_steps = t + 1
    if in_block:  # a final partial block still belongs to the average
        if skipped_in_block >= MAX_SKIPPED_SHARE * in_block:
            raise NonFiniteELBO(*bad)
        close_block()
    nb = blocks.n
    first = nb - max(1, 2 * (nb // 4))
    if interrupted:
        reason = (f"interrupted (Ctrl-C) after {num_steps} of {steps} steps: the fit so far, "
                  "not checked for convergence")
    elif not converged:
        if tol is None:
            reason = f"ran the requested {num_steps} steps (tol=None: no convergence check)"
        elif last_change is None:
            reason = (f"not converged: {num_steps} steps are too few to check convergence "
                      f"(needs at least {4 * MIN_WINDOW * BLOCK})")
        else:
            reason = (f"not converged: reached steps={steps} while the guide still moved "
                      f"{last_change[0]:.3g} posterior sd (means) and {last_change[1]:.3g} "
                      f"(log sds) between the last two quarters of the run, with Monte Carlo "
                      f"errors {last_error[0]:.3g} and {last_error[1]:.3g} (tol={tol})")
    return ELBORun(theta=blocks.average(first, nb), elbo=elbo[:num_steps], num_steps=num_steps,
                   num_skipped=num_skipped, converged=converged, reason=reason,
                   interrupted=interrupted,
                   averaged_from=num_steps - sum(blocks.count[k] for k in range(first, nb)),
                   history={"step": onp.array(history_step, dtype=int),
                            "loc": onp.array(history_loc).reshape(-1, d),
                            "sd": onp.array(history_sd).reshape(-1, d)})


def finite_mean(x) -> float:
    """The mean of the finite entries of ``x`` (NaN if there are none)."""
    x = x[onp.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")
