"""Guides built automatically from a model, for :class:`probad.infer.svi.SVI`.

An autoguide runs the model once (on its first call, with the model's
arguments) to learn the latent sites, their shapes and supports: the same
``potential`` the samplers use. It then defines the approximate posterior in
unconstrained space and maps each site back with ``biject_to(support)``.

- :class:`AutoNormal`: an independent Normal per site (per-site params).
- :class:`AutoDiagonalNormal`, :class:`AutoMultivariateNormal`,
  :class:`AutoLowRankMultivariateNormal`: one Gaussian over the whole flat
  vector q (diagonal, dense, diagonal + low rank).
- :class:`AutoDelta`: a point mass per site, in constrained space (MAP).
- :class:`AutoLaplaceApproximation`: a point mass at the mode over q during
  SVI; afterwards the Gaussian ``N(mode, H^-1)`` from the Hessian there.

Sites whose transform is not the identity are drawn through an auxiliary
unconstrained site and a ``Delta`` carrying ``-log|det J|``, so ``log q`` of
the constrained value is exact and the ELBO matches the model's density.

After ``SVI.run`` the guide holds the fitted params (``guide.params``), so
``sample_posterior(seed, sample_shape)``, ``median()`` and ``quantiles(qs)``
need no arguments; pass ``params=`` to use others.
These summaries read the fitted params as a Gaussian over q in one of the
standard forms of :mod:`probad.infer.gaussian` (a point mass for
``AutoDelta``), the same ones ``pb.advi`` and ``pb.laplace`` report.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod

import numpy as onp
from scipy.special import ndtri

import probad.ad.numpy as np
from .. import handlers
from ..distributions import (Delta, LowRankMultivariateNormal, MultivariateNormal, Normal)
from ..distributions import constraints
from ..primitives import param, sample
from .density import potential as make_potential
from .gaussian import (DenseGaussian, DiagonalGaussian, Gaussian, LowRankGaussian, check_hessian,
                       factor_rank, laplace_gaussian)
from .initialization import init_to_median

__all__ = ["AutoGuide", "AutoNormal", "AutoDelta", "AutoContinuous", "AutoDiagonalNormal",
           "AutoMultivariateNormal", "AutoLowRankMultivariateNormal",
           "AutoLaplaceApproximation"]


class AutoGuide(ABC):
    """Base class of the autoguides.

    Parameters
    ----------
    model : callable
        The model; the guide is called with the model's arguments.
    prefix : str
        Prefix of the guide's param and auxiliary site names.
    init_loc_fn : init strategy
        Where the guide starts (default ``init_to_median()``); a fixed seed
        makes the start reproducible.
    """

    #: The fitted constrained params; set by ``SVI.run``.
    params: dict | None = None

    def __init__(self, model, *, prefix: str = "auto", init_loc_fn=None):
        self.model = model
        self.prefix = prefix
        self.init_loc_fn = init_to_median() if init_loc_fn is None else init_loc_fn
        self._potential = None

    # ---- the model's structure
    def _setup(self, args, kwargs):
        if self._potential is not None:
            return
        model = functools.partial(self.model, *args) if args else self.model
        # The guide is usually called under SVI's handlers: its look at the
        # model must not leave sites in their traces.
        with handlers.block():
            pot = make_potential(model, kwargs, compile=False)
            if pot.dim == 0:
                raise ValueError("the model has no latent continuous sites: there is nothing "
                                 "for an autoguide to fit")
            init_q = pot.initial_point(seed=0, strategy=self.init_loc_fn)
            init_values = pot.constrain(init_q)
            prototype = handlers.trace(handlers.substitute(
                handlers.seed(model, rng_seed=0), data=init_values)).get_trace(**kwargs)
        self._potential, self._init_q = pot, init_q
        self._init_values = {name: init_values[name] for name in pot.sites}
        self._supports = {name: prototype[name]["fn"].support for name in pot.sites}
        self._identity_sites = {name for name, site in pot.sites.items()
                                if site.transform.is_identity}

    @property
    def sites(self):
        """The model's latent sites (name -> ``density.Site``), once set up."""
        self._check_ready()
        return self._potential.sites

    def _unpack(self, q):
        """Sample each site from a ``Delta`` at its constrained value, carrying
        ``-log|det J|`` so that ``log q`` is the density of the constrained value."""
        values = {}
        for name, site in self.sites.items():
            u = np.reshape(q[site.offset:site.offset + site.size], site.unconstrained_shape)
            x = site.transform(u)
            log_det = np.sum(site.transform.log_abs_det_jacobian(u, x))
            values[name] = sample(name, Delta(x, log_density=-log_det, event_dim=len(site.shape)))
        return values

    def _constrain_draws(self, q):
        """Constrained values of the latent sites for q of shape ``(..., dim)``."""
        out = {}
        for name, site in self.sites.items():
            u = q[..., site.offset:site.offset + site.size]
            u = u.reshape(q.shape[:-1] + tuple(site.unconstrained_shape))
            out[name] = onp.asarray(site.transform(u))
        return out

    # ---- fitted summaries
    def _params(self, params):
        params = self.params if params is None else params
        if params is None:
            raise ValueError("no fitted params: run SVI with this guide first, or pass "
                             "params=result.params")
        return params

    @abstractmethod
    def _gaussian(self, params) -> Gaussian:
        """The approximation over q that ``params`` define."""

    def sample_posterior(self, seed=None, sample_shape=(), params=None) -> dict:
        """Draws of the latent sites (constrained), shape ``sample_shape + site shape``."""
        self._check_ready()
        sample_shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        gaussian = self._gaussian(self._params(params))
        n = int(onp.prod(sample_shape)) if sample_shape else 1
        q = gaussian.sample(onp.random.default_rng(seed), n)
        return self._constrain_draws(q.reshape(sample_shape + (q.shape[-1],)))

    def median(self, params=None) -> dict:
        """The posterior median of each latent site (constrained): the
        transform of the unconstrained median."""
        self._check_ready()
        return self._constrain_draws(self._gaussian(self._params(params)).loc)

    def quantiles(self, quantiles, params=None) -> dict:
        """Marginal quantiles of each latent site, shape ``(len(quantiles),) + site shape``.

        Exact for sites with monotone elementwise transforms (every scalar
        support); for vector supports, the transform of the unconstrained
        quantiles.
        """
        self._check_ready()
        gaussian = self._gaussian(self._params(params))
        z = ndtri(onp.asarray(quantiles, dtype=float))
        return self._constrain_draws(gaussian.loc + z[:, None] * gaussian.marginal_sd)

    def _check_ready(self):
        if self._potential is None:
            raise ValueError("the guide has not seen the model yet: call it (or run SVI) "
                             "with the model's arguments first")


def _checked_init_scale(init_scale):
    if not init_scale > 0:
        raise ValueError(f"init_scale must be positive, got {init_scale}")
    return init_scale


# -------------------------------------------------------------- per-site guides
class AutoNormal(AutoGuide):
    """An independent Normal for every latent site, in unconstrained space.

    Params ``{prefix}_{site}_loc`` and ``{prefix}_{site}_scale`` (positive).

    Parameters
    ----------
    model : callable
    prefix : str
    init_loc_fn : init strategy
    init_scale : float
        Initial scale of every Normal.
    """

    def __init__(self, model, *, prefix="auto", init_loc_fn=None, init_scale: float = 0.1):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)
        self.init_scale = _checked_init_scale(init_scale)

    def __call__(self, *args, **kwargs):
        self._setup(args, kwargs)
        values = {}
        for name, site in self.sites.items():
            init = self._init_q[site.offset:site.offset + site.size]
            init = init.reshape(site.unconstrained_shape)
            loc = param(f"{self.prefix}_{name}_loc", init)
            scale = param(f"{self.prefix}_{name}_scale", onp.full(site.unconstrained_shape,
                                                                 self.init_scale),
                          constraint=constraints.positive)
            fn = Normal(loc, scale).to_event(len(site.unconstrained_shape))
            if site.name in self._identity_sites:
                values[name] = sample(name, fn)
                continue
            u = sample(f"_{self.prefix}_{name}_unconstrained", fn, infer={"is_auxiliary": True})
            x = site.transform(u)
            log_det = np.sum(site.transform.log_abs_det_jacobian(u, x))
            values[name] = sample(name, Delta(x, log_density=-log_det, event_dim=len(site.shape)))
        return values

    def _gaussian(self, params):
        loc = onp.concatenate([onp.ravel(params[f"{self.prefix}_{n}_loc"]) for n in self.sites])
        sd = onp.concatenate([onp.ravel(params[f"{self.prefix}_{n}_scale"]) for n in self.sites])
        return DiagonalGaussian(loc, sd)


class AutoDelta(AutoGuide):
    """A point mass per latent site: SVI with it finds the MAP (the mode of
    the density of the constrained values, no Jacobian).

    Params ``{prefix}_{site}_loc``, constrained to the site's support.
    """

    def __call__(self, *args, **kwargs):
        self._setup(args, kwargs)
        values = {}
        for name, site in self.sites.items():
            init = self._init_values[name]
            value = param(f"{self.prefix}_{name}_loc", init, constraint=self._supports[name])
            values[name] = sample(name, Delta(value, event_dim=len(site.shape)))
        return values

    def _gaussian(self, params):
        values = {n: params[f"{self.prefix}_{n}_loc"] for n in self.sites}
        with handlers.block():
            loc = self._potential.unconstrain(values)
        return DiagonalGaussian(loc, onp.zeros_like(loc))


# --------------------------------------------------- guides over the whole q
class AutoContinuous(AutoGuide):
    """Base of the guides with one distribution over the flat vector q,
    drawn as the auxiliary site ``_{prefix}_latent`` and unpacked into sites."""

    def __call__(self, *args, **kwargs):
        self._setup(args, kwargs)
        q = sample(f"_{self.prefix}_latent", self._latent_distribution(),
                   infer={"is_auxiliary": True})
        return self._unpack(q)

    @abstractmethod
    def _latent_distribution(self):
        """Declare the params (``pb.param``) and return the distribution over q."""


class AutoDiagonalNormal(AutoContinuous):
    """A Gaussian over q with a diagonal covariance.

    Params ``{prefix}_loc`` and ``{prefix}_scale`` (positive).
    """

    def __init__(self, model, *, prefix="auto", init_loc_fn=None, init_scale: float = 0.1):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)
        self.init_scale = _checked_init_scale(init_scale)

    def _latent_distribution(self):
        loc = param(f"{self.prefix}_loc", self._init_q)
        scale = param(f"{self.prefix}_scale", onp.full(len(self._init_q), self.init_scale),
                      constraint=constraints.positive)
        return Normal(loc, scale).to_event(1)

    def _gaussian(self, params):
        return DiagonalGaussian(params[f"{self.prefix}_loc"], params[f"{self.prefix}_scale"])


class AutoMultivariateNormal(AutoContinuous):
    """A Gaussian over q with a dense covariance.

    Params ``{prefix}_loc`` and ``{prefix}_scale_tril`` (lower Cholesky factor).
    """

    def __init__(self, model, *, prefix="auto", init_loc_fn=None, init_scale: float = 0.1):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)
        self.init_scale = _checked_init_scale(init_scale)

    def _latent_distribution(self):
        loc = param(f"{self.prefix}_loc", self._init_q)
        scale_tril = param(f"{self.prefix}_scale_tril",
                           self.init_scale * onp.eye(len(self._init_q)),
                           constraint=constraints.lower_cholesky)
        return MultivariateNormal(loc, scale_tril=scale_tril)

    def _gaussian(self, params):
        return DenseGaussian(params[f"{self.prefix}_loc"], params[f"{self.prefix}_scale_tril"])


class AutoLowRankMultivariateNormal(AutoContinuous):
    """A Gaussian over q with covariance ``W W^T + diag(D)``, ``W`` of rank ``rank``.

    Params ``{prefix}_loc``, ``{prefix}_cov_factor`` (W) and
    ``{prefix}_cov_diag`` (D, positive).

    Parameters
    ----------
    rank : int, optional
        Default ``min(10, dim // 2)``, at least 1
        (:func:`probad.infer.gaussian.factor_rank`).
    """

    def __init__(self, model, *, prefix="auto", init_loc_fn=None, init_scale: float = 0.1,
                 rank: int | None = None):
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)
        self.init_scale = _checked_init_scale(init_scale)
        self.rank = rank

    def _latent_distribution(self):
        dim = len(self._init_q)
        rank = factor_rank(dim, self.rank)
        loc = param(f"{self.prefix}_loc", self._init_q)
        # A zero factor is a stationary point of the expected gradient: start off it.
        start = 0.01 * self.init_scale * onp.random.default_rng(0).standard_normal((dim, rank))
        factor = param(f"{self.prefix}_cov_factor", start)
        diag = param(f"{self.prefix}_cov_diag", onp.full(dim, self.init_scale**2),
                     constraint=constraints.independent(constraints.positive, 1))
        return LowRankMultivariateNormal(loc, factor, diag)

    def _gaussian(self, params):
        return LowRankGaussian(params[f"{self.prefix}_loc"], params[f"{self.prefix}_cov_factor"],
                               params[f"{self.prefix}_cov_diag"])


class AutoLaplaceApproximation(AutoContinuous):
    """MAP over q by SVI (a point mass, Jacobian included), then the Laplace
    approximation ``N(mode, H^-1)`` with ``H`` the potential's Hessian there.

    Param ``{prefix}_loc``. :meth:`get_posterior` gives the Gaussian's mean
    and covariance; ``sample_posterior``/``median``/``quantiles`` use it.
    """

    def _latent_distribution(self):
        loc = param(f"{self.prefix}_loc", self._init_q)
        return Delta(loc, event_dim=1)

    def get_posterior(self, params=None) -> tuple[onp.ndarray, onp.ndarray]:
        """``(loc, cov)`` over q: the fitted mode and the inverse Hessian of
        the potential there.

        Raises
        ------
        ValueError
            If the Hessian is not positive definite (the fit has not reached
            a mode, or the posterior is not locally Gaussian there).
        """
        gaussian = self._gaussian(params)
        return gaussian.loc, gaussian.cov

    def _gaussian(self, params):
        self._check_ready()
        loc = onp.asarray(self._params(params)[f"{self.prefix}_loc"], dtype=float)
        hess = self._potential.hessian(loc)
        check_hessian(self._potential, hess, "AutoLaplaceApproximation")
        return laplace_gaussian(loc, hess)
