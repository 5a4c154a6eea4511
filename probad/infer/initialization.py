"""Where a chain (or an optimiser) starts.

An init strategy is a callable ``strategy(site, rng) -> value``: given a
latent sample site's message (its distribution in ``site["fn"]``, already
broadcast by its plates) and a numpy Generator, it returns a constrained
value for the site. ``Potential.initial_point`` runs the model with these
values, so a strategy may depend on sites sampled earlier (``init_to_sample``
draws a site from its prior given its parents).
"""
from __future__ import annotations

from typing import Mapping

import numpy as onp

from ..distributions.transforms import biject_to

__all__ = ["init_to_uniform", "init_to_median", "init_to_sample", "init_to_value"]


def _site_shape(site) -> tuple:
    fn = site["fn"]
    return tuple(fn.batch_shape) + tuple(fn.event_shape)


class init_to_uniform:
    """Uniform on ``(-radius, radius)`` in unconstrained space (Stan's default).

    Parameters
    ----------
    radius : float
        Half-width of the interval; 2 as in Stan.
    """

    def __init__(self, radius: float = 2.0):
        if radius < 0:
            raise ValueError(f"init_to_uniform: radius must be >= 0, got {radius}")
        self.radius = radius

    def __call__(self, site, rng):
        transform = biject_to(site["fn"].support)
        u = rng.uniform(-self.radius, self.radius, size=transform.inverse_shape(_site_shape(site)))
        return onp.asarray(transform(u))

    def __repr__(self):
        return f"init_to_uniform(radius={self.radius})"


def _prior_draws(site, rng, sample_shape):
    """Draws from the site's prior, or None for an improper one."""
    try:
        return onp.asarray(site["fn"].sample(rng, sample_shape))
    except NotImplementedError:  # ImproperUniform has nothing to draw from
        return None


class init_to_median:
    """The median of ``num_samples`` prior draws of each site.

    The median is taken in unconstrained space and mapped back, so it stays
    in the support for vector-valued constraints (a simplex, a correlation
    Cholesky factor); for scalar sites this is the ordinary median. Sites
    without a proper prior fall back to ``init_to_uniform()``.
    """

    def __init__(self, num_samples: int = 15):
        if num_samples < 1:
            raise ValueError(f"init_to_median: num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples

    def __call__(self, site, rng):
        draws = _prior_draws(site, rng, (self.num_samples,))
        if draws is None:
            return init_to_uniform()(site, rng)
        transform = biject_to(site["fn"].support)
        return onp.asarray(transform(onp.median(transform.inv(draws), axis=0)))

    def __repr__(self):
        return f"init_to_median(num_samples={self.num_samples})"


class init_to_sample:
    """One draw from each site's prior (``init_to_uniform()`` for improper priors)."""

    def __call__(self, site, rng):
        draw = _prior_draws(site, rng, ())
        return init_to_uniform()(site, rng) if draw is None else draw

    def __repr__(self):
        return "init_to_sample()"


class init_to_value:
    """Given constrained values for some sites; ``fallback`` for the others.

    Parameters
    ----------
    values : mapping of site name -> array_like
        Starting values in constrained space (the support is checked).
    fallback : init strategy
        For sites not in ``values``.
    """

    def __init__(self, values: Mapping, fallback=None):
        self.values = dict(values)
        self.fallback = init_to_uniform() if fallback is None else fallback

    def __call__(self, site, rng):
        name = site["name"]
        if name not in self.values:
            return self.fallback(site, rng)
        value = onp.asarray(self.values[name], dtype=float)
        shape = _site_shape(site)
        if value.shape != shape:
            raise ValueError(f"init_to_value: the value for site '{name}' has shape "
                             f"{value.shape}, but the site has shape {shape}")
        try:
            site["fn"].check_support(value)
        except ValueError as exc:
            raise ValueError(f"init_to_value: the value for site '{name}' is outside the "
                             f"site's support: {exc}") from None
        return value

    def __repr__(self):
        return f"init_to_value(values={sorted(self.values)}, fallback={self.fallback!r})"
