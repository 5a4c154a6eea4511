"""Univariate continuous distributions (Stan/NumPyro parameterisations).

Densities are written with ``probad.ad.numpy`` and ``probad.ad.scipy.special``
so they differentiate in every parameter and in the value. Reparameterised
samplers (``has_rsample``) transform parameter-free noise with differentiable
operations (``loc + scale * eps``); gamma-based ones (Gamma, Beta, StudentT,
...) carry implicit reparameterisation gradients through
:func:`log_standard_gamma`. Value-dependent choices use ``np.where`` with safe
inputs in both branches, never Python ``if`` on values.
"""
from __future__ import annotations

import math

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import defjvp, defvjp, getval, primitive, unbroadcast_f
from probad.ad.scipy import special

from . import constraints
from .distribution import Distribution, as_param, broadcast_params

__all__ = [
    "Normal", "HalfNormal", "StudentT", "HalfStudentT", "Cauchy", "HalfCauchy", "Exponential",
    "Gamma", "Chi2", "InverseGamma", "LogNormal", "Beta", "Uniform", "Laplace", "Logistic",
    "Weibull", "Pareto", "TruncatedNormal", "VonMises", "Gumbel",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_LOG_2 = math.log(2.0)
_EULER_GAMMA = 0.5772156649015329


def _softplus(x):
    return special.softplus(x)


def _tiny_uniform(rng, shape):
    """Uniform draws in [tiny, 1), so that quantile functions never see 0."""
    return rng.uniform(onp.finfo(float).tiny, 1.0, shape)


def _where_greater(x, threshold, value, otherwise, safe=1.0):
    """``value(x)`` where ``x > threshold``, else ``otherwise``, evaluating
    ``value`` only on safe inputs (no warnings from the branch not taken)."""
    above = np.greater(x, threshold)
    return np.where(above, value(np.where(above, x, threshold + safe)), otherwise)


@primitive
def _implicit_gamma(concentration, draw):
    """The Gamma(concentration, 1) draw ``draw``, made differentiable in
    ``concentration`` by implicit reparameterisation (Figurnov et al. 2018):
    holding the CDF value P(a, z) fixed gives dz/da = -(dP/da) / p(z; a)."""
    return draw


def _implicit_gamma_slope(a, z):
    log_density = special.xlogy(a - 1.0, z) - z - special.gammaln(a)
    return -special.gammainc_da(a, z) / np.exp(log_density)


defvjp(_implicit_gamma, lambda ans, a, z: unbroadcast_f(a, lambda g: g * _implicit_gamma_slope(a, ans)), None)
defjvp(_implicit_gamma, lambda g, ans, a, z: g * _implicit_gamma_slope(a, ans), None)


def log_standard_gamma(rng, concentration, shape):
    """Logs of Gamma(concentration, 1) draws of ``shape``, differentiable in ``concentration``.

    Uses Gamma(a) = Gamma(a + 1) U^(1/a): the Gamma(a + 1) draw carries the
    implicit gradient, and small concentrations, whose draws underflow to 0,
    stay finite in log space.
    """
    boosted = rng.standard_gamma(getval(concentration) + 1.0, shape)
    log_u = onp.log(_tiny_uniform(rng, shape))
    return np.log(_implicit_gamma(concentration + 1.0, boosted)) + log_u / concentration


class Normal(Distribution):
    """Normal distribution with mean ``loc`` and standard deviation ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.loc + self.scale * rng.standard_normal(self.shape(sample_shape))

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - np.log(self.scale) - 0.5 * _LOG_2PI

    @property
    def mean(self):
        return np.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return np.broadcast_to(self.scale**2, self.batch_shape)

    def cdf(self, value):
        return special.ndtr((value - self.loc) / self.scale)

    def icdf(self, q):
        return self.loc + self.scale * special.ndtri(q)

    def entropy(self):
        return 0.5 + 0.5 * _LOG_2PI + np.log(self.scale)


class HalfNormal(Distribution):
    """|X| for X ~ Normal(0, scale)."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale=1.0, *, validate_args=None):
        self.scale = as_param(scale)
        super().__init__(np.shape(self.scale), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return np.abs(self.scale * rng.standard_normal(self.shape(sample_shape)))

    def log_prob(self, value):
        z = value / self.scale
        return 0.5 * (_LOG_2 - _LOG_PI) - np.log(self.scale) - 0.5 * z * z

    @property
    def mean(self):
        return self.scale * math.sqrt(2.0 / math.pi)

    @property
    def variance(self):
        return self.scale**2 * (1.0 - 2.0 / math.pi)

    def cdf(self, value):
        return 2.0 * special.ndtr(value / self.scale) - 1.0

    def icdf(self, q):
        return self.scale * special.ndtri(0.5 * (1.0 + q))

    def entropy(self):
        return 0.5 * (_LOG_PI - _LOG_2) + 0.5 + np.log(self.scale)


class StudentT(Distribution):
    """Student's t with ``df`` degrees of freedom, location ``loc`` and scale ``scale``."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real,
                       "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, *, validate_args=None):
        (self.df, self.loc, self.scale), batch_shape = broadcast_params(
            as_param(df), as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        # eps / sqrt(chi2_df / df), with chi2_df = 2 Gamma(df / 2).
        shape = self.shape(sample_shape)
        eps = rng.standard_normal(shape)
        log_gamma = log_standard_gamma(rng, 0.5 * self.df, shape)
        return self.loc + self.scale * eps * np.sqrt(0.5 * self.df) * np.exp(-0.5 * log_gamma)

    def log_prob(self, value):
        df = self.df
        z = (value - self.loc) / self.scale
        return (special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df)
                - 0.5 * (np.log(df) + _LOG_PI) - np.log(self.scale)
                - 0.5 * (df + 1.0) * np.log1p(z * z / df))

    @property
    def mean(self):
        return np.where(np.greater(self.df, 1.0), self.loc, onp.nan)

    @property
    def variance(self):
        df = self.df
        finite = _where_greater(df, 2.0, lambda d: self.scale**2 * d / (d - 2.0), onp.inf)
        return np.where(np.greater(df, 1.0), finite, onp.nan)

    def cdf(self, value):
        z = (value - self.loc) / self.scale
        half_tail = 0.5 * special.betainc(0.5 * self.df, 0.5, self.df / (self.df + z * z))
        return np.where(np.greater(z, 0.0), 1.0 - half_tail, half_tail)

    def entropy(self):
        half = 0.5 * self.df
        return ((half + 0.5) * (special.digamma(half + 0.5) - special.digamma(half))
                + 0.5 * np.log(self.df) + special.betaln(half, 0.5) + np.log(self.scale))


class HalfStudentT(Distribution):
    """|X| for X ~ StudentT(df, 0, scale)."""

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, df, scale=1.0, *, validate_args=None):
        (self.df, self.scale), batch_shape = broadcast_params(as_param(df), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def _student(self):
        return StudentT(self.df, 0.0, self.scale, validate_args=False)

    def sample(self, rng, sample_shape=()):
        return np.abs(self._student().sample(rng, sample_shape))

    def log_prob(self, value):
        return _LOG_2 + self._student().log_prob(value)

    def _finite_mean(self, df):
        log_ratio = special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df)
        return 2.0 * self.scale * np.sqrt(df / math.pi) * np.exp(log_ratio) / (df - 1.0)

    @property
    def mean(self):
        return _where_greater(self.df, 1.0, self._finite_mean, onp.inf)

    @property
    def variance(self):
        return _where_greater(self.df, 2.0,
                              lambda df: self.scale**2 * df / (df - 2.0) - self._finite_mean(df) ** 2, onp.inf)

    def cdf(self, value):
        return 2.0 * self._student().cdf(value) - 1.0

    def entropy(self):
        return self._student().entropy() - _LOG_2


class Cauchy(Distribution):
    """Cauchy distribution with location ``loc`` and scale ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.loc + self.scale * rng.standard_cauchy(self.shape(sample_shape))

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -_LOG_PI - np.log(self.scale) - np.log1p(z * z)

    @property
    def mean(self):
        return np.full(self.batch_shape, onp.nan)

    @property
    def variance(self):
        return np.full(self.batch_shape, onp.nan)

    def cdf(self, value):
        return 0.5 + np.arctan((value - self.loc) / self.scale) / math.pi

    def icdf(self, q):
        return self.loc + self.scale * np.tan(math.pi * (q - 0.5))

    def entropy(self):
        return math.log(4.0 * math.pi) + np.log(self.scale)


class HalfCauchy(Distribution):
    """|X| for X ~ Cauchy(0, scale)."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale=1.0, *, validate_args=None):
        self.scale = as_param(scale)
        super().__init__(np.shape(self.scale), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return np.abs(self.scale * rng.standard_cauchy(self.shape(sample_shape)))

    def log_prob(self, value):
        z = value / self.scale
        return _LOG_2 - _LOG_PI - np.log(self.scale) - np.log1p(z * z)

    @property
    def mean(self):
        return np.full(self.batch_shape, onp.inf)

    @property
    def variance(self):
        return np.full(self.batch_shape, onp.inf)

    def cdf(self, value):
        return 2.0 / math.pi * np.arctan(value / self.scale)

    def icdf(self, q):
        return self.scale * np.tan(0.5 * math.pi * q)

    def entropy(self):
        return math.log(2.0 * math.pi) + np.log(self.scale)


class Exponential(Distribution):
    """Exponential distribution with rate ``rate`` (mean ``1 / rate``)."""

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate=1.0, *, validate_args=None):
        self.rate = as_param(rate)
        super().__init__(np.shape(self.rate), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return rng.standard_exponential(self.shape(sample_shape)) / self.rate

    def log_prob(self, value):
        return np.log(self.rate) - self.rate * value

    @property
    def mean(self):
        return 1.0 / self.rate

    @property
    def variance(self):
        return self.rate**-2.0

    def cdf(self, value):
        return -np.expm1(-self.rate * value)

    def icdf(self, q):
        return -np.log1p(-q) / self.rate

    def entropy(self):
        return 1.0 - np.log(self.rate)


class Gamma(Distribution):
    """Gamma distribution with shape ``concentration`` and rate ``rate``."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, concentration, rate=1.0, *, validate_args=None):
        (self.concentration, self.rate), batch_shape = broadcast_params(
            as_param(concentration), as_param(rate))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return np.exp(log_standard_gamma(rng, self.concentration, self.shape(sample_shape))) / self.rate

    def log_prob(self, value):
        a, b = self.concentration, self.rate
        return special.xlogy(a - 1.0, value) + a * np.log(b) - b * value - special.gammaln(a)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / self.rate**2

    def cdf(self, value):
        return special.gammainc(self.concentration, self.rate * value)

    def entropy(self):
        a = self.concentration
        return a - np.log(self.rate) + special.gammaln(a) + (1.0 - a) * special.digamma(a)


class Chi2(Gamma):
    """Chi-squared distribution with ``df`` degrees of freedom: Gamma(df / 2, 1 / 2)."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, *, validate_args=None):
        self.df = as_param(df)
        super().__init__(0.5 * self.df, 0.5, validate_args=validate_args)


class InverseGamma(Distribution):
    """1 / X for X ~ Gamma(concentration, rate): density proportional to
    ``x^-(concentration + 1) exp(-rate / x)``."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, concentration, rate=1.0, *, validate_args=None):
        (self.concentration, self.rate), batch_shape = broadcast_params(
            as_param(concentration), as_param(rate))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.rate * np.exp(-log_standard_gamma(rng, self.concentration, self.shape(sample_shape)))

    def log_prob(self, value):
        a, b = self.concentration, self.rate
        return a * np.log(b) - special.gammaln(a) - (a + 1.0) * np.log(value) - b / value

    @property
    def mean(self):
        return _where_greater(self.concentration, 1.0, lambda a: self.rate / (a - 1.0), onp.inf)

    @property
    def variance(self):
        return _where_greater(self.concentration, 2.0,
                              lambda a: self.rate**2 / ((a - 1.0) ** 2 * (a - 2.0)), onp.inf)

    def cdf(self, value):
        return special.gammaincc(self.concentration, self.rate / value)

    def entropy(self):
        a = self.concentration
        return a + np.log(self.rate) + special.gammaln(a) - (1.0 + a) * special.digamma(a)


class LogNormal(Distribution):
    """exp(X) for X ~ Normal(loc, scale)."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return np.exp(self.loc + self.scale * rng.standard_normal(self.shape(sample_shape)))

    def log_prob(self, value):
        log_value = np.log(value)
        z = (log_value - self.loc) / self.scale
        return -0.5 * z * z - np.log(self.scale) - 0.5 * _LOG_2PI - log_value

    @property
    def mean(self):
        return np.exp(self.loc + 0.5 * self.scale**2)

    @property
    def variance(self):
        s2 = self.scale**2
        return np.expm1(s2) * np.exp(2.0 * self.loc + s2)

    def cdf(self, value):
        return special.ndtr((np.log(value) - self.loc) / self.scale)

    def icdf(self, q):
        return np.exp(self.loc + self.scale * special.ndtri(q))

    def entropy(self):
        return self.loc + 0.5 + 0.5 * _LOG_2PI + np.log(self.scale)


class Beta(Distribution):
    """Beta distribution; ``concentration1`` is alpha (the weight of 1),
    ``concentration0`` is beta (the weight of 0)."""

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, *, validate_args=None):
        (self.concentration1, self.concentration0), batch_shape = broadcast_params(
            as_param(concentration1), as_param(concentration0))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        # G1 / (G1 + G0) for independent gammas, from their logs.
        shape = self.shape(sample_shape)
        log_g1 = log_standard_gamma(rng, self.concentration1, shape)
        log_g0 = log_standard_gamma(rng, self.concentration0, shape)
        return special.expit(log_g1 - log_g0)

    def log_prob(self, value):
        a, b = self.concentration1, self.concentration0
        return special.xlogy(a - 1.0, value) + special.xlog1py(b - 1.0, -value) - special.betaln(a, b)

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a * b / (total**2 * (total + 1.0))

    def cdf(self, value):
        return special.betainc(self.concentration1, self.concentration0, value)

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        return (special.betaln(a, b) - (a - 1.0) * special.digamma(a) - (b - 1.0) * special.digamma(b)
                + (a + b - 2.0) * special.digamma(a + b))


class Uniform(Distribution):
    """Uniform distribution on ``[low, high]``; ``log_prob`` is ``-inf`` outside."""

    has_rsample = True

    def __init__(self, low=0.0, high=1.0, *, validate_args=None):
        (self.low, self.high), batch_shape = broadcast_params(as_param(low), as_param(high))
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def arg_constraints(self):
        return {"low": constraints.real, "high": constraints.greater_than(self.low)}

    @property
    def support(self):
        return constraints.interval(self.low, self.high)

    def sample(self, rng, sample_shape=()):
        return self.low + (self.high - self.low) * rng.random(self.shape(sample_shape))

    def log_prob(self, value):
        return np.where(self.support.check(value), -np.log(self.high - self.low), -onp.inf)

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12.0

    def cdf(self, value):
        return np.clip((value - self.low) / (self.high - self.low), 0.0, 1.0)

    def icdf(self, q):
        return self.low + q * (self.high - self.low)

    def entropy(self):
        return np.log(self.high - self.low)


class Laplace(Distribution):
    """Laplace (double exponential) distribution with location ``loc`` and scale ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.loc + self.scale * rng.laplace(0.0, 1.0, self.shape(sample_shape))

    def log_prob(self, value):
        return -_LOG_2 - np.log(self.scale) - np.abs(value - self.loc) / self.scale

    @property
    def mean(self):
        return np.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return 2.0 * self.scale**2

    def cdf(self, value):
        z = (value - self.loc) / self.scale
        return 0.5 - 0.5 * np.sign(z) * np.expm1(-np.abs(z))

    def icdf(self, q):
        centred = q - 0.5
        return self.loc - self.scale * np.sign(centred) * np.log1p(-2.0 * np.abs(centred))

    def entropy(self):
        return _LOG_2 + 1.0 + np.log(self.scale)


class Logistic(Distribution):
    """Logistic distribution with location ``loc`` and scale ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.loc + self.scale * rng.logistic(0.0, 1.0, self.shape(sample_shape))

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -z - 2.0 * _softplus(-z) - np.log(self.scale)

    @property
    def mean(self):
        return np.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return (math.pi * self.scale) ** 2 / 3.0

    def cdf(self, value):
        return special.expit((value - self.loc) / self.scale)

    def icdf(self, q):
        return self.loc + self.scale * (np.log(q) - np.log1p(-q))

    def entropy(self):
        return np.log(self.scale) + 2.0


class Weibull(Distribution):
    """Weibull distribution with scale ``scale`` and shape ``concentration``."""

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale, concentration, *, validate_args=None):
        (self.scale, self.concentration), batch_shape = broadcast_params(
            as_param(scale), as_param(concentration))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        e = rng.standard_exponential(self.shape(sample_shape))
        return self.scale * e ** (1.0 / self.concentration)

    def log_prob(self, value):
        k = self.concentration
        z = value / self.scale
        return np.log(k) - np.log(self.scale) + special.xlogy(k - 1.0, z) - z**k

    @property
    def mean(self):
        return self.scale * np.exp(special.gammaln(1.0 + 1.0 / self.concentration))

    @property
    def variance(self):
        k = self.concentration
        return self.scale**2 * (np.exp(special.gammaln(1.0 + 2.0 / k))
                                - np.exp(2.0 * special.gammaln(1.0 + 1.0 / k)))

    def cdf(self, value):
        return -np.expm1(-((value / self.scale) ** self.concentration))

    def icdf(self, q):
        return self.scale * (-np.log1p(-q)) ** (1.0 / self.concentration)

    def entropy(self):
        k = self.concentration
        return _EULER_GAMMA * (1.0 - 1.0 / k) + np.log(self.scale / k) + 1.0


class Pareto(Distribution):
    """Pareto (type I) distribution with minimum ``scale`` and tail index ``alpha``."""

    arg_constraints = {"scale": constraints.positive, "alpha": constraints.positive}
    has_rsample = True

    def __init__(self, scale, alpha, *, validate_args=None):
        (self.scale, self.alpha), batch_shape = broadcast_params(as_param(scale), as_param(alpha))
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.greater_than(self.scale)

    def sample(self, rng, sample_shape=()):
        return self.scale * np.exp(rng.standard_exponential(self.shape(sample_shape)) / self.alpha)

    def _inside(self, value):
        inside = np.greater_equal(value, self.scale)
        return inside, np.where(inside, value, self.scale)

    def log_prob(self, value):
        inside, safe = self._inside(value)
        a = self.alpha
        return np.where(inside, np.log(a) + a * np.log(self.scale) - (a + 1.0) * np.log(safe), -onp.inf)

    @property
    def mean(self):
        return _where_greater(self.alpha, 1.0, lambda a: a * self.scale / (a - 1.0), onp.inf)

    @property
    def variance(self):
        return _where_greater(self.alpha, 2.0,
                              lambda a: self.scale**2 * a / ((a - 1.0) ** 2 * (a - 2.0)), onp.inf)

    def cdf(self, value):
        inside, safe = self._inside(value)
        return np.where(inside, -np.expm1(self.alpha * np.log(self.scale / safe)), 0.0)

    def icdf(self, q):
        return self.scale * np.exp(-np.log1p(-q) / self.alpha)

    def entropy(self):
        return np.log(self.scale / self.alpha) + 1.0 + 1.0 / self.alpha


class TruncatedNormal(Distribution):
    """Normal(loc, scale) restricted to ``[low, high]`` (either bound may be None).

    The normaliser ``Z = Phi(beta) - Phi(alpha)`` (standardised bounds) is
    computed in log space, on the side of zero where the interval lies, so it
    stays accurate far in the tails; sampling inverts the CDF the same way
    and is differentiable in all parameters.
    """

    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, low=None, high=None, *, validate_args=None):
        given = {name: as_param(value) for name, value in
                 (("loc", loc), ("scale", scale), ("low", low), ("high", high)) if value is not None}
        params, batch_shape = broadcast_params(*given.values())
        self.low = self.high = None  # None: unbounded on that side
        for name, value in zip(given, params):
            setattr(self, name, value)
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def arg_constraints(self):
        out = {"loc": constraints.real, "scale": constraints.positive}
        if self.low is not None:
            out["low"] = constraints.real
        if self.high is not None:
            out["high"] = constraints.real if self.low is None else constraints.greater_than(self.low)
        return out

    @property
    def support(self):
        if self.low is None and self.high is None:
            return constraints.real
        if self.high is None:
            return constraints.greater_than(self.low)
        if self.low is None:
            return constraints.less_than(self.high)
        return constraints.interval(self.low, self.high)

    def _standardised_bounds(self):
        alpha = None if self.low is None else (self.low - self.loc) / self.scale
        beta = None if self.high is None else (self.high - self.loc) / self.scale
        return alpha, beta

    def _flipped_bounds(self):
        """Standardised bounds ``(lower, upper, flip)`` mirrored, where ``flip``
        is True, so that the interval lies mostly below zero (where Phi has
        full relative precision); ``None`` marks an infinite lower bound."""
        alpha, beta = self._standardised_bounds()
        if alpha is None:
            return None, beta, False
        if beta is None:
            return None, -alpha, True
        flip = np.greater(alpha + beta, 0.0)
        return np.where(flip, -beta, alpha), np.where(flip, -alpha, beta), flip

    def _log_normaliser(self):
        lower, upper, _ = self._flipped_bounds()
        if upper is None:
            return 0.0
        log_upper = special.log_ndtr(upper)
        if lower is None:
            return log_upper
        return log_upper + np.log1p(-np.exp(special.log_ndtr(lower) - log_upper))

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        log_density = -0.5 * z * z - np.log(self.scale) - 0.5 * _LOG_2PI - self._log_normaliser()
        if self.low is None and self.high is None:
            return log_density
        return np.where(self.support.check(value), log_density, -onp.inf)

    def icdf(self, q):
        lower, upper, flip = self._flipped_bounds()
        if upper is None:
            return self.loc + self.scale * special.ndtri(q)
        # In mirrored coordinates the quantile q becomes 1 - q.
        q = np.where(flip, 1.0 - q, q)
        phi_upper = special.ndtr(upper)
        phi_lower = 0.0 if lower is None else special.ndtr(lower)
        z = special.ndtri(phi_lower + q * (phi_upper - phi_lower))
        z = np.minimum(z, upper) if lower is None else np.clip(z, lower, upper)
        return self.loc + self.scale * np.where(flip, -z, z)

    def sample(self, rng, sample_shape=()):
        return self.icdf(_tiny_uniform(rng, self.shape(sample_shape)))

    def cdf(self, value):
        lower, upper, flip = self._flipped_bounds()
        z = (value - self.loc) / self.scale
        if upper is None:
            return special.ndtr(z)
        z = np.where(flip, -z, z)
        phi_lower = 0.0 if lower is None else special.ndtr(lower)
        mass = (special.ndtr(z) - phi_lower) / np.exp(self._log_normaliser())
        return np.clip(np.where(flip, 1.0 - mass, mass), 0.0, 1.0)

    def _bound_terms(self):
        """``(phi(alpha) - phi(beta)) / Z`` and ``(alpha phi(alpha) - beta phi(beta)) / Z``,
        with the terms of infinite bounds (which vanish) left out."""
        log_z = self._log_normaliser()
        first, second = 0.0, 0.0
        for bound, sign in zip(self._standardised_bounds(), (1.0, -1.0)):
            if bound is not None:
                ratio = np.exp(-0.5 * bound * bound - 0.5 * _LOG_2PI - log_z)
                first = first + sign * ratio
                second = second + sign * bound * ratio
        return first, second

    @property
    def mean(self):
        first, _ = self._bound_terms()
        return np.broadcast_to(self.loc + self.scale * first, self.batch_shape)

    @property
    def variance(self):
        first, second = self._bound_terms()
        return np.broadcast_to(self.scale**2 * (1.0 + second - first**2), self.batch_shape)

    def entropy(self):
        _, second = self._bound_terms()
        return 0.5 * (1.0 + _LOG_2PI) + np.log(self.scale) + self._log_normaliser() + 0.5 * second


class VonMises(Distribution):
    """Von Mises distribution on the circle with mean direction ``loc`` and
    concentration ``concentration``; ``variance`` is the circular variance."""

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.circular

    def __init__(self, loc, concentration, *, validate_args=None):
        (self.loc, self.concentration), batch_shape = broadcast_params(
            as_param(loc), as_param(concentration))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return rng.vonmises(getval(self.loc), getval(self.concentration), self.shape(sample_shape))

    def log_prob(self, value):
        k = self.concentration
        # I0(k) = i0e(k) exp(k): subtracting k keeps large concentrations finite.
        return k * (np.cos(value - self.loc) - 1.0) - _LOG_2PI - np.log(special.i0e(k))

    @property
    def mean(self):
        return np.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        k = self.concentration
        return 1.0 - special.i1e(k) / special.i0e(k)

    def entropy(self):
        k = self.concentration
        i0e = special.i0e(k)
        return _LOG_2PI + np.log(i0e) + k * (1.0 - special.i1e(k) / i0e)


class Gumbel(Distribution):
    """Gumbel (type I extreme value) distribution with location ``loc`` and scale ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc=0.0, scale=1.0, *, validate_args=None):
        (self.loc, self.scale), batch_shape = broadcast_params(as_param(loc), as_param(scale))
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return self.loc + self.scale * rng.gumbel(0.0, 1.0, self.shape(sample_shape))

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -z - np.exp(-z) - np.log(self.scale)

    @property
    def mean(self):
        return self.loc + _EULER_GAMMA * self.scale

    @property
    def variance(self):
        return (math.pi * self.scale) ** 2 / 6.0

    def cdf(self, value):
        return np.exp(-np.exp(-(value - self.loc) / self.scale))

    def icdf(self, q):
        return self.loc - self.scale * np.log(-np.log(q))

    def entropy(self):
        return np.log(self.scale) + _EULER_GAMMA + 1.0
