"""Reparameterisations used through ``handlers.reparam(config=...)``.

A reparameteriser is called by the ``reparam`` handler as
``reparameteriser(name, fn) -> value``: it samples whatever auxiliary sites
it needs and returns the value the original site takes, which the handler
records as a deterministic site.
"""
from __future__ import annotations

from ..distributions import ExpandedDistribution, Independent
from ..primitives import SiteError, sample

__all__ = ["LocScaleReparam"]


class LocScaleReparam:
    """Decentre a location-scale site: ``x ~ F(loc, scale)`` becomes

    ``x_decentered ~ F(c * loc, scale**c)`` and
    ``x = loc + scale**(1 - c) * (x_decentered - c * loc)``

    with ``c = centered``: ``c = 0`` is the non-centred parameterisation
    (``x_decentered`` standard, e.g. ``Normal(0, 1)``), ``c = 1`` leaves the
    site as it is. Non-centring removes the funnel of hierarchical models
    with few data per group (eight schools). Works for every family
    parameterised by ``loc`` and ``scale`` plus shape parameters (Normal,
    StudentT, Cauchy, Laplace, ...); the shape parameters (e.g. StudentT's
    ``df``) are kept.

    Parameters
    ----------
    centered : float or array in [0, 1]
        Degree of centring; 0 by default.
    """

    def __init__(self, centered=0.0):
        self.centered = centered

    def __call__(self, name: str, fn):
        base = fn
        # Plates and to_event wrap the family in expanded/independent
        # distributions; the loc-scale family is under them.
        while isinstance(base, (ExpandedDistribution, Independent)):
            base = base.base_dist
        if "loc" not in base.arg_constraints or "scale" not in base.arg_constraints:
            raise SiteError(f"LocScaleReparam: site '{name}' has a {type(base).__name__}, "
                            "which is not parameterised by loc and scale")
        c = self.centered
        params = {key: getattr(base, key) for key in base.arg_constraints}
        params["loc"] = base.loc * c
        params["scale"] = base.scale ** c
        decentered_fn = type(base)(**params)
        shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
        if tuple(decentered_fn.batch_shape) != shape:
            decentered_fn = decentered_fn.expand(shape)
        if fn.event_shape:
            decentered_fn = decentered_fn.to_event(len(fn.event_shape))
        decentered = sample(f"{name}_decentered", decentered_fn)
        return base.loc + base.scale ** (1 - c) * (decentered - c * base.loc)
