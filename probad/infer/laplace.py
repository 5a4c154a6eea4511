"""``pb.map`` and ``pb.laplace``: the posterior mode and a Gaussian around it.

Both optimise over the potential's unconstrained vector q with
:func:`probad.optimize.minimize` (scipy on compiled probad.ad derivatives).
``map`` finds the mode of the posterior density of the constrained values (no
Jacobian, as Stan's ``optimize`` and NumPyro's ``AutoDelta``). ``laplace``
finds the mode of the density over q (Jacobian included, the density the
samplers see) and fits ``N(q*, H^-1)`` with ``H`` the Hessian of ``U`` there;
this is Stan's ``laplace_sample``. The Hessian is exact: probad.ad
differentiates ``U`` twice (reverse over reverse), no finite differences.
"""
from __future__ import annotations

import time
import warnings
from typing import Mapping

import numpy as onp

from ..optimize import minimize
from .gaussian import GaussianApproximation, check_hessian, laplace_gaussian
from .density import potential as make_potential
from .initialization import init_to_median, init_to_value

__all__ = ["map", "laplace", "MAPResult", "LaplaceFit"]


class MAPResult(dict):
    """The mode, as a dict of constrained values (latent and deterministic sites).

    Attributes
    ----------
    q : ndarray
        The mode in unconstrained space.
    potential : probad.infer.density.Potential
        The model's potential (``potential.constrain(q)`` gives this dict).
    log_density : float
        The objective at the mode: the log joint density, with the
        Jacobian term when ``jacobian=True``.
    success : bool
        Whether scipy reported convergence.
    message : str
        scipy's message.
    num_iterations : int
    wall_time : float
    """

    def __init__(self, values, *, q, potential, log_density, success, message, num_iterations,
                 wall_time):
        super().__init__(values)
        self.q = q
        self.potential = potential
        self.log_density = log_density
        self.success = success
        self.message = message
        self.num_iterations = num_iterations
        self.wall_time = wall_time

    def __repr__(self):
        return f"MAPResult({dict.__repr__(self)}, log_density={self.log_density:.6g})"


# Stan's optimizer tolerances (tol_rel_obj = 1e4 machine epsilons, tol_grad =
# 1e-8) where scipy's defaults would stop ~1e-3 posterior sds from the mode:
# Laplace expands around the mode, and users compare it with Stan's.
_MODE_TOLERANCES = {"L-BFGS-B": {"ftol": 1e4 * onp.finfo(float).eps, "gtol": 1e-8},
                    "BFGS": {"gtol": 1e-8}, "CG": {"gtol": 1e-8},
                    "trust-ncg": {"gtol": 1e-8}, "trust-krylov": {"gtol": 1e-8}}


def _find_mode(pot, *, caller, start, init, seed, method, jacobian, compile,
               options) -> MAPResult:
    """Minimise ``U`` over q, without its Jacobian term unless ``jacobian``;
    warn, naming ``caller``, if the optimiser does not report convergence.
    ``start`` is when the caller's clock started."""
    strategy = init_to_value(values=init) if isinstance(init, Mapping) else \
        (init if init is not None else init_to_median())
    q0 = pot.initial_point(seed=onp.random.default_rng(seed), strategy=strategy)
    # minimize steps back from trial points where the model overflows or its
    # linear algebra fails, as the samplers reject them.
    result = minimize(pot._energy_fn, q0, args=(jacobian,), method=method, compile=compile,
                      **{**_MODE_TOLERANCES.get(method, {}), **dict(options or {})})
    if not result.success:
        warnings.warn(f"{caller}: the optimiser did not report convergence ({result.message}); "
                      "try options={'maxiter': ...} or another init", UserWarning, stacklevel=3)
    q = onp.asarray(result.x, dtype=float)
    return MAPResult(pot.constrain(q), q=q, potential=pot, log_density=-float(result.fun),
                     success=bool(result.success), message=str(result.message),
                     num_iterations=int(result.nit), wall_time=time.perf_counter() - start)


def map(model, data: Mapping | None = None, *, init=None, method: str = "L-BFGS-B",
        compile: bool = True, seed=None, jacobian: bool = False,
        options: Mapping | None = None) -> MAPResult:
    """The posterior mode (maximum a posteriori) of a model.

    Parameters
    ----------
    model : callable
    data : mapping, optional
        Keyword arguments of the model.
    init : init strategy or dict, optional
        Starting point; default ``init_to_median()``.
    method : str
        A gradient-based ``scipy.optimize.minimize`` method; Newton-type
        methods also get exact Hessian-vector products.
    compile : bool
        Record the potential and its derivatives once and replay them.
    seed : int, optional
        For init strategies that draw.
    jacobian : bool
        Maximise the density over the unconstrained q instead (the mode
        ``laplace`` expands around).
    options : mapping, optional
        scipy solver options, e.g. ``{"maxiter": 1000}``. The tolerances
        default to Stan's optimizer's (for L-BFGS-B ``ftol`` 1e4 machine
        epsilons and ``gtol`` 1e-8), tighter than scipy's.

    Returns
    -------
    MAPResult
        A dict of constrained values (latent and deterministic sites), with
        ``.q``, ``.potential``, ``.log_density``, ``.success``, ``.message``.
    """
    start = time.perf_counter()
    pot = make_potential(model, data, compile=compile)
    pot.check_start(init, "pb.map")
    return _find_mode(pot, caller="map", start=start, init=init, seed=seed, method=method,
                      jacobian=jacobian, compile=compile, options=options)


class LaplaceFit(GaussianApproximation):
    """The result of :func:`laplace`: ``N(q*, H^-1)`` over the unconstrained q.

    Attributes
    ----------
    mean, std : dict
        Constrained means and sds per site (exact for untransformed sites,
        else from draws).
    loc : ndarray
        The mode q* (unconstrained).
    cov : ndarray
        ``H^-1``, the covariance over q.
    hessian : ndarray
        ``H``, the Hessian of the potential at q*.
    map : MAPResult
        The mode (of the density over q) as constrained values.
    potential : probad.infer.density.Potential
    wall_time : float
    """

    inference_method = "laplace"

    def __init__(self, potential, mode: MAPResult, hessian, *, seed_sequence, wall_time):
        super().__init__(potential, laplace_gaussian(mode.q, hessian), seed_sequence)
        self.map = mode
        self.hessian = hessian
        self.wall_time = wall_time

    def __repr__(self):
        return f"<LaplaceFit: {self.potential.dim} dims, {self.wall_time:.2f} s>"


def laplace(model, data: Mapping | None = None, *, init=None, method: str = "L-BFGS-B",
            compile: bool = True, seed=None, options: Mapping | None = None) -> LaplaceFit:
    """The Laplace approximation: a Gaussian at the mode of the density over q.

    Parameters
    ----------
    model, data, init, method, compile, options
        As in :func:`map`.
    seed : int or numpy.random.SeedSequence, optional
        For the init strategy and the draws behind ``mean``/``std``/``sample``.

    Returns
    -------
    LaplaceFit
        ``.mean``/``.std`` (constrained), ``.cov`` (unconstrained),
        ``.sample(draws, seed)`` -> ``arviz.InferenceData``.

    Raises
    ------
    ValueError
        If the Hessian at the mode is not finite or not positive definite
        (:func:`probad.infer.gaussian.check_hessian`); the message names the
        sites along the flattest or most negatively curved directions.
    """
    start = time.perf_counter()
    pot = make_potential(model, data, compile=compile)
    pot.check_start(init, "pb.laplace")
    root = seed if isinstance(seed, onp.random.SeedSequence) else onp.random.SeedSequence(seed)
    init_seq, fit_seq = root.spawn(2)
    mode = _find_mode(pot, caller="laplace", start=start, init=init, seed=init_seq, method=method,
                      jacobian=True, compile=compile, options=options)
    hess = pot.hessian(mode.q)
    check_hessian(pot, hess, "laplace")
    return LaplaceFit(pot, mode, hess, seed_sequence=fit_seq,
                      wall_time=time.perf_counter() - start)
