"""``pb.advi``: automatic differentiation variational inference.

ADVI fits a Gaussian ``q(z)`` to the posterior over the *unconstrained*
vector ``z`` that the samplers see (``probad.infer.potential``: same
Jacobians, plates and scales) by maximising the ELBO
``E_q[-U(z)] + H[q]`` with reparameterised gradients and Adam.

The guide is one of the Gaussian families of :mod:`probad.infer.gaussian`
(meanfield, fullrank, lowrank), with its analytic entropy. Each step
evaluates ``(U, dU/dz)`` once per particle with the potential's compiled
value-and-gradient and applies the chain rule to the guide's parameters by
hand in numpy: no tracing per step.

The loop is :func:`probad.infer.optimise.optimise`: it works in *frames*,
coordinates in which the guide is a standard normal, so Adam's steps are
scaled to the posterior in every direction. A posterior whose coordinates
differ by orders of magnitude in scale, or are strongly correlated (a
regression on raw covariates), is then no harder than a standardised one.
The reported guide averages the iterates over the second half of the run,
and the run stops when that average is stable and precise (see
:func:`advi`, Notes).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Mapping

import numpy as onp

from .density import potential as make_potential
from .gaussian import GaussianApproximation, gaussian_family
from .initialization import init_to_median, init_to_value
from .optimise import BLOCK, MAX_SKIPPED_SHARE, ELBORun, NonFiniteELBO, finite_mean, optimise
from .progress import progress_bar

__all__ = ["advi", "ADVIFit"]


class ADVIFit(GaussianApproximation):
    """The result of :func:`advi`: a Gaussian over q, fitted by ADVI.

    Attributes
    ----------
    method : str
        ``"meanfield"``, ``"fullrank"`` or ``"lowrank"``.
    potential : probad.infer.density.Potential
        The unconstrained potential the guide was fitted to.
    elbo : ndarray, shape (num_steps,)
        The one-step ELBO estimates (NaN where a step was skipped).
    mean, std : dict
        Posterior means and sds in constrained space, per site.
    loc, marginal_sd, cov : ndarray
        The guide's mean, sds and covariance over q (unconstrained).
    num_steps : int
        Steps taken (at most ``steps``).
    num_skipped : int
        Steps whose loss or gradient was not finite; they were not applied.
    converged : bool
        Whether the convergence rule held before the step cap.
    interrupted : bool
        True if Ctrl-C stopped the fit: it holds the steps taken until then.
    convergence_reason : str
        Why the run stopped, with the numbers the rule looked at.
    guide_params : dict
        The fitted Gaussian over q in a standard parameterisation:
        ``loc``/``scale`` (meanfield), ``loc``/``scale_tril`` (fullrank),
        ``loc``/``cov_factor``/``cov_diag`` (lowrank).
    wall_time : float
        Seconds spent in :func:`advi`, model checks and compilation included.
    history : dict
        Per block of 100 steps: ``step``, and the block-averaged guide's
        ``loc`` and marginal ``sd`` over q (shape ``(blocks, dim)``).
    averaged_from : int
        The guide is the average of the iterates from this step on.
    """

    def __init__(self, potential, family, run: ELBORun, *, seed_sequence, wall_time: float,
                 learning_rate: float, num_particles: int):
        super().__init__(potential, family.gaussian(run.theta), seed_sequence)
        self.method = family.method
        self.inference_method = f"advi-{family.method}"
        self._family = family
        self._theta = run.theta
        self.elbo = run.elbo
        self.num_steps = run.num_steps
        self.num_skipped = run.num_skipped
        self.converged = run.converged
        self.convergence_reason = run.reason
        self.interrupted = run.interrupted
        self.history = run.history
        self.averaged_from = run.averaged_from
        self.wall_time = wall_time
        self.learning_rate = learning_rate
        self.num_particles = num_particles

    def __repr__(self):
        status = "converged" if self.converged else "NOT converged"
        if self.interrupted:
            status += ", interrupted"
        return (f"<ADVIFit {self.method}: {self.num_steps} steps, {status}, "
                f"final ELBO ~ {self.final_elbo:.6g}, {self.num_skipped} skipped, "
                f"{self.wall_time:.2f} s>")

    @property
    def guide_params(self) -> dict:
        return self._family.guide_params(self._theta)

    @property
    def final_elbo(self) -> float:
        """Mean ELBO estimate over the averaging window (the second half of the run)."""
        return finite_mean(self.elbo[self.averaged_from:])

    def _attrs(self) -> dict:
        return dict(super()._attrs(), num_steps=int(self.num_steps),
                    converged=int(self.converged), final_elbo=self.final_elbo)

    def plot(self, ax=None):
        """Plot the ELBO trace: :func:`probad.plots.plot_elbo` of this fit.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from ..plots import plot_elbo

        return plot_elbo(self, ax=ax)


def _nonfinite_message(pot, z, G) -> str:
    """What was not finite at the first failed draw of a failed step: the
    draw itself (the guide diverged), or the terms of the model's log density
    there (``Potential.describe_nonfinite``)."""
    with onp.errstate(all="ignore"):  # the point is a bad one: overflow is expected
        for row, grad in zip(z, G):
            if not onp.isfinite(row).all():
                bad = [name for name, site in pot.sites.items()
                       if not onp.isfinite(row[site.offset:site.offset + site.size]).all()]
                return f"the guide's draw itself, for site(s) {', '.join(bad)}"
            if not (math.isfinite(pot.value_and_grad(row)[0]) and onp.isfinite(grad).all()):
                return pot.describe_nonfinite(row, grad)
    # Every draw was fine: the guide's entropy failed (a scale collapsed to 0).
    return "the guide's own entropy (a scale collapsed to zero)"


def advi(model, data: Mapping | None = None, *, method: str = "meanfield",
         rank: int | None = None, steps: int | None = None, learning_rate: float = 0.1,
         num_particles: int = 1, seed=None, progress: bool = True, init=None,
         compile: bool = True, clip_norm: float | None = None, tol: float | None = 0.05,
         init_scale: float = 0.1, backend: str = "auto") -> ADVIFit:
    """Fit a Gaussian approximation to the posterior by ADVI.

    Parameters
    ----------
    model : callable
        A model calling ``pb.sample``.
    data : mapping, optional
        Keyword arguments of the model (observed data among them).
    method : {"meanfield", "fullrank", "lowrank"}
        Diagonal covariance, dense covariance (Cholesky factor), or diagonal
        plus a rank-``rank`` factor.
    rank : int, optional
        Rank of the lowrank factor; default ``min(10, dim // 2)`` (at least 1).
    steps : int, optional
        The cap on optimisation steps (default 30000); always respected.
    learning_rate : float
        Adam's initial step size. From step 200 on, steps are taken in the
        guide's own frame (units of its posterior sds, along its
        correlations), so 0.1 suits most models; the rate is divided by
        sqrt(2) at steps 200, 400, 800, ...
    num_particles : int
        Draws per ELBO gradient estimate.
    seed : int or numpy.random.SeedSequence, optional
    progress : bool
        Show a tqdm progress bar with the smoothed ELBO and the step rate.
    init : init strategy or dict, optional
        Where the guide's mean starts (constrained values for a dict);
        default ``init_to_median()``.
    compile : bool
        Use the compiled potential (fast) rather than re-running the model.
    clip_norm : float, optional
        Clip each gradient (in the current frame) to this global L2 norm.
    tol : float or None
        Tolerance of the parameter-change stopping rule, in posterior sds
        (see Notes); None runs all ``steps``.
    init_scale : float
        The guide's initial scale in unconstrained space.
    backend : {"auto", "native", "numpy"}
        What replays the compiled potential (see ``probad.infer.potential``):
        by default compiled code (numba) where a cost model predicts it
        faster, as for a model's Python loop, and numpy elsewhere; results
        agree to rounding.

    Returns
    -------
    ADVIFit
        ``.elbo``, ``.mean``/``.std`` (constrained, per site), ``.sample()``,
        ``.plot()``, ``.converged``/``.convergence_reason``, ``.guide_params``,
        ``.num_steps``, ``.num_skipped``, ``.wall_time``.

    Notes
    -----
    The ELBO gradient is stochastic, so the guide's parameters never settle;
    the reported guide is the average of the iterates over the second half of
    the run (Polyak-Ruppert averaging, with the variances rather than the
    scale parameters averaged).

    The stopping rule is a parameter-change rule, not a relative-ELBO rule.
    At the end of each block of 100 steps, once each quarter of the run
    holds at least 4 blocks (so after at least 1600 steps), the guide
    averaged over the third quarter of the run is compared with the guide
    averaged over the last quarter. The run stops when (a) they agree: the
    RMS over coordinates of the change in the means, in units of the
    posterior sd, and of the change in the log sds are both below ``tol``;
    and (b) their joint average, the reported guide, is precise: its Monte
    Carlo standard error, estimated from the per-block averages (with an
    AR(1) correction for their autocorrelation), is below ``tol / 2`` in the
    same units. This is PyMC's ``CheckParametersConvergence`` made
    scale-free, plus the precision check (b), which keeps two noisy averages
    that agree by chance from ending the run.

    Why not the ELBO: near the optimum it is flat in the guide's parameters
    (means off by ``d`` posterior sds cost about ``d**2 / 2`` nats per
    coordinate) while its one-draw estimates are noisy, so a small relative
    change of even a smoothed ELBO says little about whether the means and
    sds have settled, and the threshold would depend on the ELBO's scale
    (the number of observations). The rule above measures the quantities
    users read, in posterior sds, so one ``tol`` suits every model.

    A step whose loss or gradient is NaN/inf is skipped (not applied) and
    counted in ``num_skipped``. With lowrank on a strongly correlated
    posterior the sds keep a small bias (about -3% at correlation 0.9): its
    frame is diagonal for the scales.

    Raises
    ------
    ValueError
        If nearly every step in a block of 100 has a non-finite ELBO: the
        message names the sites (latent, observed or factor) whose log
        density, transform Jacobian or gradient was not finite at the last
        failed draw.
    """
    start = time.perf_counter()
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be positive, got {init_scale}")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be positive or None, got {tol}")
    steps = 30_000 if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if backend not in ("auto", "native", "numpy"):
        raise ValueError(f"pb.advi: backend must be 'auto', 'native' or 'numpy', got {backend!r}")
    pot = make_potential(model, data, compile=compile, backend=backend)
    if pot.dim == 0:
        raise ValueError("the model has no latent continuous sites: there is nothing to fit")
    family = gaussian_family(method, pot.dim, rank)
    root = seed if isinstance(seed, onp.random.SeedSequence) else onp.random.SeedSequence(seed)
    init_seq, run_seq, fit_seq = root.spawn(3)
    strategy = init_to_value(values=init) if isinstance(init, Mapping) else \
        (init if init is not None else init_to_median())
    q0 = pot.initial_point(seed=onp.random.default_rng(init_seq), strategy=strategy)
    rng = onp.random.default_rng(run_seq)
    theta0 = family.initial_params(q0, init_scale, rng)
    bar = None
    if progress:
        bar = progress_bar(total=steps, desc=f"ADVI ({family.method})", unit="step",
                   dynamic_ncols=True)
    try:
        # Draws far in the tails may overflow on the way to a non-finite
        # loss; such steps are detected and skipped, so numpy need not warn.
        with onp.errstate(all="ignore"):
            run = optimise(functools.partial(pot.value_and_grad, quiet=False), family, theta0,
                           rng=rng, steps=steps,
                           learning_rate=learning_rate, num_particles=num_particles,
                           tol=tol, clip_norm=clip_norm, bar=bar)
        if bar is not None:  # an early stop ends the bar at 100%
            bar.total = run.num_steps
            bar.update(run.num_steps - bar.n)
    except NonFiniteELBO as exc:
        raise ValueError(
            f"the ELBO could not be evaluated: in a block of {BLOCK} steps at least "
            f"{MAX_SKIPPED_SHARE:.0%} of the draws from the guide gave a non-finite loss or "
            f"gradient. At the last such draw: {_nonfinite_message(pot, exc.z, exc.grad)}. "
            "Check that those sites' log densities are finite wherever the guide can reach "
            "(a factor or likelihood that overflows, or takes the log of a negative number), "
            "or keep the guide closer: starting values (init=...), a smaller init_scale or "
            "learning_rate, clip_norm=...") from None
    finally:
        if bar is not None:
            bar.close()
    fit = ADVIFit(pot, family, run, seed_sequence=fit_seq,
                  wall_time=time.perf_counter() - start, learning_rate=learning_rate,
                  num_particles=num_particles)
    if fit.interrupted:
        warnings.warn(f"ADVI: {fit.convergence_reason}.", RuntimeWarning, stacklevel=2)
    elif not fit.converged and tol is not None:
        warnings.warn(f"ADVI: {fit.convergence_reason}. Increase steps= or learning_rate=, "
                      "or loosen tol=.", UserWarning, stacklevel=2)
    return fit
