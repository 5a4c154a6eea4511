"""Discrete distributions (Stan/NumPyro parameterisations).

Distributions over probabilities accept either ``probs`` or ``logits``; the
other one is derived on access. The log mass is computed from whichever was
given (logits in log space, so extreme logits stay finite). Samples are
integer arrays drawn with numpy; they carry no gradient. Finite supports can
be listed with ``enumerate_support``.
"""
from __future__ import annotations

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval
from probad.ad.scipy import special

from . import constraints
from .distribution import (Distribution, as_param, broadcast_params, derived_param, given_param,
                           log_probability)

__all__ = [
    "Bernoulli", "Binomial", "BetaBinomial", "Categorical", "Poisson", "NegativeBinomial2",
    "Geometric", "DiscreteUniform", "OrderedLogistic", "ZeroInflatedDistribution",
    "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial2",
]


def _log_binomial_coefficient(n, k):
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def _homogeneous(owner: str, name: str, value):
    """The single value of a parameter that must be equal across the batch
    for the support to be enumerated."""
    value = onp.asarray(getval(value))
    first = value.flat[0]
    if not onp.all(value == first):
        raise ValueError(f"{owner}: enumerate_support needs the same {name} in every batch element")
    return first


def _stack_support(values, batch_shape: tuple, expand: bool):
    values = onp.reshape(values, (-1,) + (1,) * len(batch_shape))
    return onp.broadcast_to(values, values.shape[:1] + batch_shape) if expand else values


class _ProbsOrLogits(Distribution):
    """Shared parameter handling for distributions given by ``probs`` or ``logits``."""

    @derived_param
    def probs(self):
        """Probabilities, from the logits if those were given."""
        return special.expit(self.logits)

    @derived_param
    def logits(self):
        """Log-odds, from the probabilities if those were given."""
        return special.logit(self.probs)

    def _set_probs_or_logits(self, probs, logits):
        self._given = given_param(type(self).__name__, probs=probs, logits=logits)
        setattr(self, self._given, as_param(probs if self._given == "probs" else logits))
        return getattr(self, self._given)


class Bernoulli(_ProbsOrLogits):
    """1 with probability ``probs`` (or ``sigmoid(logits)``), else 0."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, *, validate_args=None):
        param = self._set_probs_or_logits(probs, logits)
        super().__init__(np.shape(param), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        u = rng.random(self.shape(sample_shape))
        return (u < getval(self.probs)).astype(onp.int64)

    def log_prob(self, value):
        if self._given == "logits":
            return value * self.logits - special.softplus(self.logits)
        return special.xlogy(value, self.probs) + special.xlog1py(1.0 - value, -self.probs)

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p = self.probs
        return p * (1.0 - p)

    def cdf(self, value):
        # A step function: 0 below 0, 1 - p on [0, 1), 1 from 1 on.
        return np.where(np.less(value, 0.0), 0.0,
                        np.where(np.less(value, 1.0), 1.0 - self.probs, 1.0))

    def entropy(self):
        if self._given == "logits":
            # log(1 + e^l) - p l, stable for large |l|.
            return special.softplus(self.logits) - self.probs * self.logits
        p = self.probs
        return -special.xlogy(p, p) - special.xlog1py(1.0 - p, -p)

    def enumerate_support(self, expand=True):
        return _stack_support(onp.arange(2), self.batch_shape, expand)


class Binomial(_ProbsOrLogits):
    """Number of successes in ``total_count`` Bernoulli(``probs``) trials."""

    arg_constraints = {"total_count": constraints.nonnegative_integer,
                       "probs": constraints.unit_interval, "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, *, validate_args=None):
        param = self._set_probs_or_logits(probs, logits)
        (self.total_count, param), batch_shape = broadcast_params(onp.asarray(total_count), param)
        setattr(self, self._given, param)
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    def sample(self, rng, sample_shape=()):
        return rng.binomial(getval(self.total_count), getval(self.probs), self.shape(sample_shape))

    def log_prob(self, value):
        n = self.total_count
        log_choose = _log_binomial_coefficient(n, value)
        if self._given == "logits":
            return log_choose + value * self.logits - n * special.softplus(self.logits)
        return log_choose + special.xlogy(value, self.probs) + special.xlog1py(n - value, -self.probs)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def variance(self):
        p = self.probs
        return self.total_count * p * (1.0 - p)

    def cdf(self, value):
        # P(X <= k) = I_{1-p}(n - k, k + 1), and 1 from k = n on.
        k = np.floor(value)
        below = np.less(k, self.total_count)
        n_minus_k = np.where(below, self.total_count - k, 1.0)
        return np.where(below, special.betainc(n_minus_k, k + 1.0, 1.0 - self.probs), 1.0)

    def enumerate_support(self, expand=True):
        n = _homogeneous("Binomial", "total_count", self.total_count)
        return _stack_support(onp.arange(int(n) + 1), self.batch_shape, expand)


class BetaBinomial(Distribution):
    """Binomial(total_count, p) with p ~ Beta(concentration1, concentration0)."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive,
                       "total_count": constraints.nonnegative_integer}
    has_enumerate_support = True

    def __init__(self, concentration1, concentration0, total_count=1, *, validate_args=None):
        (self.concentration1, self.concentration0, self.total_count), batch_shape = broadcast_params(
            as_param(concentration1), as_param(concentration0), onp.asarray(total_count))
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    def sample(self, rng, sample_shape=()):
        shape = self.shape(sample_shape)
        p = rng.beta(getval(self.concentration1), getval(self.concentration0), shape)
        return rng.binomial(getval(self.total_count), p, shape)

    def log_prob(self, value):
        a, b, n = self.concentration1, self.concentration0, self.total_count
        return (_log_binomial_coefficient(n, value)
                + special.betaln(value + a, n - value + b) - special.betaln(a, b))

    @property
    def mean(self):
        a, b = self.concentration1, self.concentration0
        return self.total_count * a / (a + b)

    @property
    def variance(self):
        a, b, n = self.concentration1, self.concentration0, self.total_count
        total = a + b
        return n * a * b * (total + n) / (total**2 * (total + 1.0))

    def enumerate_support(self, expand=True):
        n = _homogeneous("BetaBinomial", "total_count", self.total_count)
        return _stack_support(onp.arange(int(n) + 1), self.batch_shape, expand)


class Categorical(_ProbsOrLogits):
    """One of ``K`` categories ``0..K-1``, with probabilities ``probs`` (on the
    last axis, summing to one) or unnormalised log-probabilities ``logits``."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, *, validate_args=None):
        param = self._set_probs_or_logits(probs, logits)
        if np.ndim(param) < 1:
            raise ValueError(f"Categorical: {self._given} must have at least one dimension "
                             "(the categories), got a scalar")
        super().__init__(np.shape(param)[:-1], validate_args=validate_args)

    @derived_param
    def probs(self):
        """Probabilities, the softmax of the logits if those were given."""
        return special.softmax(self.logits, axis=-1)

    @derived_param
    def logits(self):
        """Log-probabilities, from the probabilities if those were given."""
        return log_probability(self.probs)

    @property
    def num_categories(self) -> int:
        return np.shape(getattr(self, self._given))[-1]

    @property
    def support(self):
        return constraints.integer_interval(0, self.num_categories - 1)

    def _log_probs(self):
        if self._given == "logits":
            return special.log_softmax(self.logits, axis=-1)
        return log_probability(self.probs)

    def sample(self, rng, sample_shape=()):
        # Inverse CDF: count the cumulative probabilities below a uniform draw.
        cdf = onp.cumsum(onp.asarray(getval(self.probs)), axis=-1)[..., :-1]
        u = rng.random(self.shape(sample_shape) + (1,))
        return onp.sum(u >= cdf, axis=-1)

    def log_prob(self, value):
        log_probs = self._log_probs()
        index = _category_index(np.shape(log_probs)[:-1], value, self.num_categories)
        if index is not None:
            return log_probs[index]
        # A traced value (Gibbs steps pass it as an input of the compiled
        # potential) cannot index without a guard on it; nor can a value
        # outside 0..K-1 (log mass 0 then, as before). Select with a one-hot
        # mask instead, so that -inf log probabilities of categories not
        # taken leave the gradient finite.
        chosen = np.equal(np.expand_dims(value, -1), onp.arange(self.num_categories))
        return np.sum(np.where(chosen, log_probs, 0.0), axis=-1)

    @property
    def mean(self):
        return np.full(self.batch_shape, onp.nan)

    @property
    def variance(self):
        return np.full(self.batch_shape, onp.nan)

    def cdf(self, value):
        # P(X <= value): the mass of the categories 0..floor(value).
        at_or_below = np.less_equal(onp.arange(self.num_categories), np.expand_dims(value, -1))
        return np.sum(np.where(at_or_below, self.probs, 0.0), axis=-1)

    def entropy(self):
        log_p = self._log_probs()
        return -np.sum(np.where(np.isneginf(log_p), 0.0, np.exp(log_p) * log_p), axis=-1)

    def enumerate_support(self, expand=True):
        return _stack_support(onp.arange(self.num_categories), self.batch_shape, expand)


#: ``arange(n)`` along axis ``-1 - right`` of ``1 + right`` axes, read-only:
#: the same constant at every call, which the tape compiler computes with once.
_AXIS_INDEX: dict[tuple, onp.ndarray] = {}


def _axis_index(n: int, right: int) -> onp.ndarray:
    index = _AXIS_INDEX.get((n, right))
    if index is None:
        index = onp.arange(n).reshape((n,) + (1,) * right).copy()
        index.flags.writeable = False
        index = _AXIS_INDEX[(n, right)] = index
    return index


def _category_index(batch_shape: tuple, value, num_categories: int):
    """The index that gathers ``log_probs[..., value]`` (batch dims
    broadcast with the value's), or None unless ``value`` holds concrete
    integers in ``0..num_categories-1``.

    One gather instead of a one-hot mask and a sum: an enumerated site's
    log mass along a Markov chain costs one op, and its gradient one
    scatter, where the mask cost four.
    """
    if not isinstance(value, (onp.ndarray, int, onp.integer)) or isinstance(value, bool):
        return None
    array = onp.asarray(value)
    if array.dtype.kind not in "iu" or array.size == 0 \
            or array.min() < 0 or array.max() >= num_categories:
        return None
    n = len(batch_shape)
    return tuple(_axis_index(size, n - 1 - a) for a, size in enumerate(batch_shape)) + (value,)


class Poisson(Distribution):
    """Poisson distribution with mean ``rate``, or with ``log_rate`` (its log)."""

    arg_constraints = {"rate": constraints.positive, "log_rate": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, rate=None, log_rate=None, *, validate_args=None):
        self._given = given_param("Poisson", rate=rate, log_rate=log_rate)
        setattr(self, self._given, as_param(rate if self._given == "rate" else log_rate))
        super().__init__(np.shape(getattr(self, self._given)), validate_args=validate_args)

    @derived_param
    def rate(self):
        """The mean, from ``log_rate`` if that was given."""
        return np.exp(self.log_rate)

    @derived_param
    def log_rate(self):
        """The log of the mean, from ``rate`` if that was given."""
        return np.log(self.rate)

    def sample(self, rng, sample_shape=()):
        return rng.poisson(getval(self.rate), self.shape(sample_shape))

    def log_prob(self, value):
        if self._given == "log_rate":
            return value * self.log_rate - np.exp(self.log_rate) - special.gammaln(value + 1.0)
        return special.xlogy(value, self.rate) - self.rate - special.gammaln(value + 1.0)

    @property
    def mean(self):
        return self.rate

    @property
    def variance(self):
        return self.rate

    def cdf(self, value):
        return special.gammaincc(np.floor(value) + 1.0, self.rate)


class NegativeBinomial2(Distribution):
    """Negative binomial with mean ``mean`` and dispersion ``concentration``
    (Stan's ``neg_binomial_2``): variance ``mean + mean^2 / concentration``.

    It is the Poisson(lambda) mixture over lambda ~ Gamma(concentration,
    concentration / mean).
    """

    arg_constraints = {"mean": constraints.positive, "concentration": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, mean, concentration, *, validate_args=None):
        (self._mean, self.concentration), batch_shape = broadcast_params(
            as_param(mean), as_param(concentration))
        super().__init__(batch_shape, validate_args=validate_args)

    def constrained_params(self):
        return {"mean": self._mean, "concentration": self.concentration}

    def sample(self, rng, sample_shape=()):
        shape = self.shape(sample_shape)
        phi = getval(self.concentration)
        return rng.poisson(rng.gamma(phi, getval(self._mean) / phi, shape))

    def log_prob(self, value):
        mu, phi = self._mean, self.concentration
        return (special.gammaln(value + phi) - special.gammaln(value + 1.0) - special.gammaln(phi)
                - phi * np.log1p(mu / phi) + special.xlogy(value, mu) - value * np.log(mu + phi))

    @property
    def mean(self):
        return self._mean

    @property
    def variance(self):
        return self._mean + self._mean**2 / self.concentration


class Geometric(_ProbsOrLogits):
    """Number of failures before the first success in Bernoulli(``probs``) trials."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, *, validate_args=None):
        param = self._set_probs_or_logits(probs, logits)
        super().__init__(np.shape(param), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return rng.geometric(getval(self.probs), self.shape(sample_shape)) - 1

    def log_prob(self, value):
        if self._given == "logits":
            # log p = -softplus(-l), log(1 - p) = -softplus(l)
            return -value * special.softplus(self.logits) - special.softplus(-self.logits)
        return special.xlog1py(value, -self.probs) + np.log(self.probs)

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def variance(self):
        p = self.probs
        return (1.0 - p) / p**2

    def cdf(self, value):
        # 1 - (1 - p)^(k + 1)
        return -np.expm1((np.floor(value) + 1.0) * np.log1p(-self.probs))

    def entropy(self):
        p = self.probs
        return -(special.xlog1py(1.0 - p, -p) + special.xlogy(p, p)) / p


class DiscreteUniform(Distribution):
    """Uniform over the integers ``low, low + 1, ..., high``."""

    has_enumerate_support = True

    def __init__(self, low=0, high=1, *, validate_args=None):
        (self.low, self.high), batch_shape = broadcast_params(onp.asarray(low), onp.asarray(high))
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def arg_constraints(self):
        return {"low": constraints.integer, "high": constraints.integer_greater_than(self.low)}

    @property
    def support(self):
        return constraints.integer_interval(self.low, self.high)

    def sample(self, rng, sample_shape=()):
        return rng.integers(self.low, self.high, self.shape(sample_shape), endpoint=True)

    def log_prob(self, value):
        return np.where(self.support.check(value), -np.log(self.high - self.low + 1.0), -onp.inf)

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    @property
    def variance(self):
        return ((self.high - self.low + 1.0) ** 2 - 1.0) / 12.0

    def cdf(self, value):
        return np.clip((np.floor(value) - self.low + 1.0) / (self.high - self.low + 1.0), 0.0, 1.0)

    def entropy(self):
        return np.log(self.high - self.low + 1.0)

    def enumerate_support(self, expand=True):
        low = _homogeneous("DiscreteUniform", "low", self.low)
        high = _homogeneous("DiscreteUniform", "high", self.high)
        return _stack_support(onp.arange(low, high + 1), self.batch_shape, expand)


class OrderedLogistic(Categorical):
    """Ordinal regression: category k of K with probability
    ``sigmoid(c_k - predictor) - sigmoid(c_{k-1} - predictor)`` for ordered
    ``cutpoints`` c_1 < ... < c_{K-1} (c_0 = -inf, c_K = inf).
    """

    arg_constraints = {"predictor": constraints.real, "cutpoints": constraints.ordered_vector}

    def __init__(self, predictor, cutpoints, *, validate_args=None):
        self.predictor = as_param(predictor)
        self.cutpoints = as_param(cutpoints)
        batch_shape = onp.broadcast_shapes(np.shape(self.predictor), np.shape(self.cutpoints)[:-1])
        Distribution.__init__(self, batch_shape, validate_args=validate_args)
        # Log-probabilities from differences of sigmoids, in log space:
        # sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(a - b)) for a < b.
        x = self.cutpoints - np.expand_dims(self.predictor, -1)
        a, b = x[..., :-1], x[..., 1:]
        middle = special.log_expit(b) + special.log_expit(-a) + np.log(-np.expm1(a - b))
        self._given = "logits"
        self.logits = np.concatenate(
            [special.log_expit(x[..., :1]), middle, special.log_expit(-x[..., -1:])], axis=-1)

    def constrained_params(self):
        return {"predictor": self.predictor, "cutpoints": self.cutpoints}


class ZeroInflatedDistribution(Distribution):
    """``base_dist`` with extra mass at zero: 0 with probability ``gate``
    (or ``sigmoid(gate_logits)``), otherwise a draw from ``base_dist``."""

    arg_constraints = {"gate": constraints.unit_interval, "gate_logits": constraints.real}

    def __init__(self, base_dist: Distribution, gate=None, gate_logits=None, *, validate_args=None):
        if base_dist.event_shape:
            raise ValueError("ZeroInflatedDistribution needs a base distribution with scalar events")
        self._gate_given = given_param(type(self).__name__, gate=gate, gate_logits=gate_logits)
        setattr(self, self._gate_given, as_param(gate if self._gate_given == "gate" else gate_logits))
        self.base_dist = base_dist
        batch_shape = onp.broadcast_shapes(base_dist.batch_shape, np.shape(getattr(self, self._gate_given)))
        super().__init__(batch_shape, validate_args=validate_args)

    @derived_param
    def gate(self):
        """Probability of the extra zero, from ``gate_logits`` if those were given."""
        return special.expit(self.gate_logits)

    @derived_param
    def gate_logits(self):
        """Log-odds of the extra zero, from ``gate`` if that was given."""
        return special.logit(self.gate)

    @property
    def support(self):
        return self.base_dist.support

    def validate_args(self) -> None:
        super().validate_args()
        self.base_dist.validate_args()

    def _log_gates(self):
        if self._gate_given == "gate_logits":
            return special.log_expit(self.gate_logits), special.log_expit(-self.gate_logits)
        return log_probability(self.gate), log_probability(1.0 - self.gate)

    def sample(self, rng, sample_shape=()):
        shape = self.shape(sample_shape)
        draws = getval(self.base_dist.expand(self.batch_shape).sample(rng, sample_shape))
        return onp.where(rng.random(shape) < getval(self.gate), 0, draws)

    def log_prob(self, value):
        log_gate, log_keep = self._log_gates()
        log_base = log_keep + self.base_dist.log_prob(value)
        return np.where(np.equal(value, 0), np.logaddexp(log_gate, log_base), log_base)

    @property
    def mean(self):
        return (1.0 - self.gate) * self.base_dist.mean

    @property
    def variance(self):
        g, m = self.gate, self.base_dist.mean
        return (1.0 - g) * (self.base_dist.variance + g * m**2)


class ZeroInflatedPoisson(ZeroInflatedDistribution):
    """Poisson(``rate``) with an extra zero of probability ``gate``."""

    arg_constraints = {"gate": constraints.unit_interval, "rate": constraints.positive}

    def __init__(self, gate, rate=1.0, *, validate_args=None):
        self.rate = as_param(rate)
        super().__init__(Poisson(self.rate, validate_args=False), gate=gate, validate_args=validate_args)


class ZeroInflatedNegativeBinomial2(ZeroInflatedDistribution):
    """NegativeBinomial2(``mean``, ``concentration``) with an extra zero of
    probability ``gate`` (or ``sigmoid(gate_logits)``)."""

    arg_constraints = {"mean": constraints.positive, "concentration": constraints.positive,
                       "gate": constraints.unit_interval, "gate_logits": constraints.real}

    def __init__(self, mean, concentration, gate=None, *, gate_logits=None, validate_args=None):
        base = NegativeBinomial2(mean, concentration, validate_args=False)
        super().__init__(base, gate=gate, gate_logits=gate_logits, validate_args=validate_args)

    def constrained_params(self):
        params = self.base_dist.constrained_params()
        params[self._gate_given] = getattr(self, self._gate_given)
        return params
