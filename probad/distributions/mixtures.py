"""Finite mixtures whose components come from one (batched) distribution."""
from __future__ import annotations

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval
from probad.ad.scipy import special

from .discrete import Categorical
from .distribution import Distribution

__all__ = ["MixtureSameFamily"]


class MixtureSameFamily(Distribution):
    """A mixture of the K components of ``component_distribution``, weighted by
    ``mixing_distribution``.

    Parameters
    ----------
    mixing_distribution : Categorical
        Mixture weights over K components (batch shape broadcast against the mixture's).
    component_distribution : Distribution
        The components: its rightmost batch dimension, of size K, indexes them.

    ``log_prob`` marginalises the component with ``logsumexp``, so it is
    differentiable in all parameters; ``sample`` is not reparameterised.
    """

    arg_constraints = {}

    def __init__(self, mixing_distribution: Categorical, component_distribution: Distribution,
                 *, validate_args=None):
        if not isinstance(mixing_distribution, Categorical):
            raise TypeError("MixtureSameFamily: mixing_distribution must be a Categorical, got "
                            f"{type(mixing_distribution).__name__}")
        if not component_distribution.batch_shape:
            raise ValueError("MixtureSameFamily: component_distribution needs a batch dimension "
                             "indexing the components")
        k = mixing_distribution.num_categories
        if component_distribution.batch_shape[-1] != k:
            raise ValueError(f"MixtureSameFamily: {k} mixture weights but "
                             f"{component_distribution.batch_shape[-1]} components (the last batch "
                             f"dimension of component_distribution, batch shape "
                             f"{component_distribution.batch_shape})")
        self.mixing_distribution = mixing_distribution
        self.component_distribution = component_distribution
        batch_shape = onp.broadcast_shapes(mixing_distribution.batch_shape,
                                           component_distribution.batch_shape[:-1])
        super().__init__(batch_shape, component_distribution.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.component_distribution.support

    def validate_args(self) -> None:
        self.mixing_distribution.validate_args()
        self.component_distribution.validate_args()

    @property
    def _component_axis(self) -> int:
        return -1 - self.event_dim

    def _weights(self):
        """Mixture weights with trailing axes for the event dimensions."""
        weights = self.mixing_distribution.probs
        return np.reshape(weights, np.shape(weights) + (1,) * self.event_dim)

    def log_prob(self, value):
        component_log_prob = self.component_distribution.log_prob(np.expand_dims(value, self._component_axis))
        log_weights = special.log_softmax(self.mixing_distribution.logits, axis=-1)
        return special.logsumexp(component_log_prob + log_weights, axis=-1)

    def sample(self, rng, sample_shape=()):
        k = self.mixing_distribution.num_categories
        components = self.component_distribution.expand(self.batch_shape + (k,))
        draws = onp.asarray(getval(components.sample(rng, sample_shape)))
        chosen = onp.asarray(getval(self.mixing_distribution.expand(self.batch_shape).sample(rng, sample_shape)))
        index = onp.reshape(chosen, chosen.shape + (1,) * (self.event_dim + 1))
        picked = onp.take_along_axis(draws, index, axis=self._component_axis)
        return onp.squeeze(picked, axis=self._component_axis)

    @property
    def mean(self):
        return np.sum(self._weights() * self.component_distribution.mean, axis=self._component_axis)

    @property
    def variance(self):
        weights = self._weights()
        means = self.component_distribution.mean
        second_moment = np.sum(weights * (self.component_distribution.variance + means * means),
                               axis=self._component_axis)
        mean = np.sum(weights * means, axis=self._component_axis)
        return second_moment - mean * mean

    def cdf(self, value):
        component_cdf = self.component_distribution.cdf(np.expand_dims(value, -1))
        return np.sum(self.mixing_distribution.probs * component_cdf, axis=-1)
