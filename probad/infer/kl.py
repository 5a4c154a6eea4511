"""Closed-form KL divergences, for :class:`~probad.infer.svi.TraceMeanField_ELBO`.

``kl_divergence(p, q)`` looks up a rule registered for the pair of
distribution classes (:func:`register_kl`). Rules are written with
``probad.ad`` primitives, so the KL is differentiable in both distributions'
parameters; the wrappers that plates, ``expand`` and ``to_event`` put around a
distribution are unwrapped here, so a rule for the base classes covers them.
"""
from __future__ import annotations

from typing import Callable

import numpy as onp

import probad.ad.numpy as np
from ..ad.scipy import linalg as sla
from ..ad.scipy import special
from ..distributions import Beta, Exponential, Gamma, LogNormal, MultivariateNormal, Normal
from ..distributions.distribution import Delta, Distribution, ExpandedDistribution, Independent
from ..distributions.transforms import sum_rightmost

__all__ = ["kl_divergence", "register_kl"]

_KL_RULES: dict[tuple[type, type], Callable] = {}


def register_kl(type_p: type, type_q: type):
    """Decorator registering ``rule(p, q) -> KL(p || q)`` for a pair of
    distribution classes (subclasses match too, most derived first)."""

    def decorator(rule):
        _KL_RULES[(type_p, type_q)] = rule
        return rule

    return decorator


def kl_divergence(p, q):
    """``KL(p || q)``, elementwise over the batch shape.

    ``Independent`` pairs sum over their reinterpreted dimensions and
    ``ExpandedDistribution`` (from plates and ``expand``) broadcasts the KL
    of its base, so a rule for the base classes covers these wrappers.

    Built-in pairs: Normal/Normal, LogNormal/LogNormal, Beta/Beta,
    Gamma and Exponential with each other, MultivariateNormal/
    MultivariateNormal, and a Delta against any distribution.

    Raises
    ------
    NotImplementedError
        When no rule is registered for the pair; register one with
        :func:`register_kl`.
    """
    if isinstance(p, ExpandedDistribution) or isinstance(q, ExpandedDistribution):
        shape = onp.broadcast_shapes(tuple(p.batch_shape), tuple(q.batch_shape))
        base_p = p.base_dist if isinstance(p, ExpandedDistribution) else p
        base_q = q.base_dist if isinstance(q, ExpandedDistribution) else q
        return np.broadcast_to(kl_divergence(base_p, base_q), shape)
    if isinstance(p, Independent) and isinstance(q, Independent) \
            and p.reinterpreted_batch_ndims == q.reinterpreted_batch_ndims:
        return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)
    for cls_p in type(p).__mro__:
        for cls_q in type(q).__mro__:
            rule = _KL_RULES.get((cls_p, cls_q))
            if rule is not None:
                return rule(p, q)
    raise NotImplementedError(f"no KL divergence is registered for ({type(p).__name__}, "
                              f"{type(q).__name__}); add one with register_kl")


# KL is invariant under a bijection applied to both sides, so a LogNormal pair
# has the KL of the Normal pair of its logs (same loc and scale attributes).
@register_kl(LogNormal, LogNormal)
@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    ratio = p.scale / q.scale
    return 0.5 * (ratio**2 + ((p.loc - q.loc) / q.scale) ** 2 - 1.0) - np.log(ratio)


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    a1, b1 = p.concentration1, p.concentration0
    a2, b2 = q.concentration1, q.concentration0
    return (special.betaln(a2, b2) - special.betaln(a1, b1) + (a1 - a2) * special.digamma(a1)
            + (b1 - b2) * special.digamma(b1) + (a2 - a1 + b2 - b1) * special.digamma(a1 + b1))


def _shape_and_rate(d):
    # Exponential(rate) is Gamma(1, rate): one rule covers every mix of the two.
    return (1.0, d.rate) if isinstance(d, Exponential) else (d.concentration, d.rate)


@register_kl(Exponential, Exponential)
@register_kl(Exponential, Gamma)
@register_kl(Gamma, Exponential)
@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    (a1, b1), (a2, b2) = _shape_and_rate(p), _shape_and_rate(q)
    return ((a1 - a2) * special.digamma(a1) - special.gammaln(a1) + special.gammaln(a2)
            + a2 * (np.log(b1) - np.log(b2)) + a1 * (b2 / b1 - 1.0))


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    # KL = -H[p] - E_p[log q]. The quadratic form in log q, averaged over p,
    # is its value at p's mean plus tr(S_q^-1 S_p) = |L_q^-1 L_p|_F^2: one
    # triangular solve, no inverse.
    spread = sla.solve_triangular(q.scale_tril, p.scale_tril, lower=True)
    return -p.entropy() - q.log_prob(p.loc) + 0.5 * np.sum(spread * spread, axis=(-2, -1))


@register_kl(Delta, Distribution)
def _kl_delta(p, q):
    # A point mass has no entropy, so KL = log p(v) - log q(v), where log p(v)
    # is the density the Delta reports: 0 by default, -log|det J| in the
    # autoguides' Deltas. Trace_ELBO uses the same term, so both ELBOs agree.
    return p.log_density - q.log_prob(p.v)
