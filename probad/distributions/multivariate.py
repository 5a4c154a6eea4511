"""Multivariate distributions: vectors, simplices, count vectors and Cholesky factors.

Every density that involves a covariance works through a Cholesky factor and
triangular solves (never a matrix inverse), which is both the stable and the
cheap way: ``log det = 2 sum log diag L`` and ``x^T S^-1 x = |L^-1 x|^2``.
"""
from __future__ import annotations

import functools
import math

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval
from probad.ad.scipy import linalg as sla
from probad.ad.scipy import special

from . import constraints
from .continuous import log_standard_gamma
from .distribution import Distribution, as_param, derived_param, given_param, log_probability

__all__ = [
    "MultivariateNormal", "LowRankMultivariateNormal", "MultivariateStudentT", "Dirichlet",
    "Multinomial", "LKJCholesky", "GaussianRandomWalk",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _solve_lower(tril, b):
    """``tril^-1 b`` for a stack of vectors ``b`` (batch dimensions broadcast)."""
    return sla.solve_triangular(tril, np.expand_dims(b, -1), lower=True)[..., 0]


def _matvec(matrix, vector):
    return np.matmul(matrix, np.expand_dims(vector, -1))[..., 0]


def _half_log_det(tril):
    return np.sum(np.log(np.diagonal(tril, 0, -2, -1)), axis=-1)


def _precision_to_scale_tril(precision):
    # With J the reversal permutation, chol(J P J) = Lf gives P = U U^T for the
    # upper-triangular U = J Lf J, so the covariance P^-1 has the lower
    # Cholesky factor U^-T: no explicit inverse of P is formed.
    flip = (Ellipsis, slice(None, None, -1), slice(None, None, -1))
    upper = np.linalg.cholesky(precision[flip])[flip]
    eye = onp.broadcast_to(onp.eye(np.shape(precision)[-1]), np.shape(precision))
    return np.swapaxes(sla.solve_triangular(upper, eye, lower=False), -1, -2)


class MultivariateNormal(Distribution):
    """Multivariate normal with mean ``loc`` and exactly one of
    ``covariance_matrix``, ``precision_matrix`` or ``scale_tril`` (the lower
    Cholesky factor of the covariance)."""

    arg_constraints = {"loc": constraints.real_vector,
                       "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc=0.0, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 *, validate_args=None):
        given = given_param("MultivariateNormal", covariance_matrix=covariance_matrix,
                        precision_matrix=precision_matrix, scale_tril=scale_tril)
        matrix = as_param({"covariance_matrix": covariance_matrix, "precision_matrix": precision_matrix,
                           "scale_tril": scale_tril}[given])
        if np.ndim(matrix) < 2 or np.shape(matrix)[-1] != np.shape(matrix)[-2]:
            raise ValueError(f"MultivariateNormal: {given} must be a square matrix (or a stack of "
                             f"them), got shape {np.shape(matrix)}")
        k = np.shape(matrix)[-1]
        loc = as_param(loc)
        if np.ndim(loc) == 0:
            loc = np.broadcast_to(loc, (k,))
        batch_shape = onp.broadcast_shapes(np.shape(loc)[:-1], np.shape(matrix)[:-2])
        self.loc = loc if np.shape(loc) == batch_shape + (k,) else np.broadcast_to(loc, batch_shape + (k,))
        self._given = given
        setattr(self, given, matrix)
        super().__init__(batch_shape, (k,), validate_args=validate_args)

    @derived_param
    def scale_tril(self):
        """Lower Cholesky factor of the covariance, from the matrix given."""
        return self._factor

    @functools.cached_property
    def _factor(self):
        # Factorised on first use, not in __init__: a matrix that is not
        # positive definite then reaches the validation of its sample site,
        # which names the site, instead of failing where it is built.
        if self._given == "covariance_matrix":
            return np.linalg.cholesky(self.covariance_matrix)
        return _precision_to_scale_tril(self.precision_matrix)

    @derived_param
    def covariance_matrix(self):
        """``L L^T``, from the Cholesky factor."""
        return np.matmul(self.scale_tril, np.swapaxes(self.scale_tril, -1, -2))

    @derived_param
    def precision_matrix(self):
        """``L^-T L^-1``, from the Cholesky factor."""
        eye = onp.broadcast_to(onp.eye(self.event_shape[0]), np.shape(self.scale_tril))
        inverse = sla.solve_triangular(self.scale_tril, eye, lower=True)
        return np.matmul(np.swapaxes(inverse, -1, -2), inverse)

    def sample(self, rng, sample_shape=()):
        eps = rng.standard_normal(self.shape(sample_shape))
        return self.loc + _matvec(self.scale_tril, eps)

    def log_prob(self, value):
        white = _solve_lower(self.scale_tril, value - self.loc)
        k = self.event_shape[0]
        return -0.5 * np.sum(white * white, axis=-1) - _half_log_det(self.scale_tril) - 0.5 * k * _LOG_2PI

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        variance = np.sum(self.scale_tril * self.scale_tril, axis=-1)
        return np.broadcast_to(variance, self.batch_shape + self.event_shape)

    def entropy(self):
        k = self.event_shape[0]
        entropy = 0.5 * k * (1.0 + _LOG_2PI) + _half_log_det(self.scale_tril)
        return np.broadcast_to(entropy, self.batch_shape)


class LowRankMultivariateNormal(Distribution):
    """Multivariate normal with covariance ``W W^T + diag(D)`` for a ``k x r``
    ``cov_factor`` W and a positive ``cov_diag`` D.

    Densities cost O(k r^2) through the Woodbury identity and the matrix
    determinant lemma on the r x r capacitance ``I + W^T D^-1 W``.
    """

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.real_matrix,
                       "cov_diag": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, cov_factor, cov_diag, *, validate_args=None):
        loc, cov_factor, cov_diag = as_param(loc), as_param(cov_factor), as_param(cov_diag)
        if np.ndim(cov_factor) < 2:
            raise ValueError("LowRankMultivariateNormal: cov_factor must have shape (..., k, rank), "
                             f"got {np.shape(cov_factor)}")
        k = np.shape(cov_factor)[-2]
        batch_shape = onp.broadcast_shapes(np.shape(loc)[:-1], np.shape(cov_factor)[:-2],
                                           np.shape(cov_diag)[:-1])
        self.loc = np.broadcast_to(loc, batch_shape + (k,))
        self.cov_factor, self.cov_diag = cov_factor, cov_diag
        super().__init__(batch_shape, (k,), validate_args=validate_args)

    @functools.cached_property
    def _capacitance_tril(self):
        # Factorised on first use, as MultivariateNormal's Cholesky factor:
        # an invalid cov_diag is then reported at the site.
        rank = np.shape(self.cov_factor)[-1]
        scaled = self.cov_factor / np.expand_dims(self.cov_diag, -1)
        capacitance = onp.eye(rank) + np.matmul(np.swapaxes(self.cov_factor, -1, -2), scaled)
        return np.linalg.cholesky(capacitance)

    @derived_param
    def covariance_matrix(self):
        """``W W^T + diag(D)``."""
        w = self.cov_factor
        diag = np.expand_dims(self.cov_diag, -1) * onp.eye(self.event_shape[0])
        return np.broadcast_to(np.matmul(w, np.swapaxes(w, -1, -2)) + diag,
                               self.batch_shape + self.event_shape * 2)

    @derived_param
    def scale_tril(self):
        """Cholesky factor of the covariance."""
        return np.linalg.cholesky(self.covariance_matrix)

    def _log_det(self):
        return 2.0 * _half_log_det(self._capacitance_tril) + np.sum(np.log(self.cov_diag), axis=-1)

    def sample(self, rng, sample_shape=()):
        shape = self.shape(sample_shape)
        eps_low = rng.standard_normal(shape[:-1] + (np.shape(self.cov_factor)[-1],))
        eps_diag = rng.standard_normal(shape)
        return self.loc + _matvec(self.cov_factor, eps_low) + np.sqrt(self.cov_diag) * eps_diag

    def log_prob(self, value):
        diff = value - self.loc
        scaled = diff / self.cov_diag
        projected = _solve_lower(self._capacitance_tril, _matvec(np.swapaxes(self.cov_factor, -1, -2), scaled))
        mahalanobis = np.sum(diff * scaled, axis=-1) - np.sum(projected * projected, axis=-1)
        return -0.5 * (self.event_shape[0] * _LOG_2PI + self._log_det() + mahalanobis)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        w = self.cov_factor
        return np.broadcast_to(np.sum(w * w, axis=-1) + self.cov_diag, self.batch_shape + self.event_shape)

    def entropy(self):
        k = self.event_shape[0]
        return np.broadcast_to(0.5 * (k * (1.0 + _LOG_2PI) + self._log_det()), self.batch_shape)


class MultivariateStudentT(Distribution):
    """Multivariate Student's t with ``df`` degrees of freedom, location
    ``loc`` and scale matrix ``scale_tril @ scale_tril.T``."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real_vector,
                       "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, df, loc=0.0, scale_tril=None, *, validate_args=None):
        if scale_tril is None:
            raise ValueError("MultivariateStudentT: scale_tril is required")
        df, loc, scale_tril = as_param(df), as_param(loc), as_param(scale_tril)
        k = np.shape(scale_tril)[-1]
        if np.ndim(loc) == 0:
            loc = np.broadcast_to(loc, (k,))
        batch_shape = onp.broadcast_shapes(np.shape(df), np.shape(loc)[:-1], np.shape(scale_tril)[:-2])
        self.df = df if np.shape(df) == batch_shape else np.broadcast_to(df, batch_shape)
        self.loc = loc if np.shape(loc) == batch_shape + (k,) else np.broadcast_to(loc, batch_shape + (k,))
        self.scale_tril = scale_tril
        super().__init__(batch_shape, (k,), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        # L eps / sqrt(chi2_df / df), with chi2_df = 2 Gamma(df / 2) shared across the vector.
        shape = self.shape(sample_shape)
        eps = rng.standard_normal(shape)
        log_gamma = log_standard_gamma(rng, 0.5 * self.df, shape[:-1])
        radial = np.sqrt(0.5 * self.df) * np.exp(-0.5 * log_gamma)
        return self.loc + _matvec(self.scale_tril, eps) * np.expand_dims(radial, -1)

    def log_prob(self, value):
        k = self.event_shape[0]
        df = self.df
        white = _solve_lower(self.scale_tril, value - self.loc)
        mahalanobis = np.sum(white * white, axis=-1)
        return (special.gammaln(0.5 * (df + k)) - special.gammaln(0.5 * df)
                - 0.5 * k * (np.log(df) + math.log(math.pi)) - _half_log_det(self.scale_tril)
                - 0.5 * (df + k) * np.log1p(mahalanobis / df))

    @property
    def mean(self):
        return np.where(np.expand_dims(np.greater(self.df, 1.0), -1), self.loc, onp.nan)

    @property
    def covariance_matrix(self):
        ratio = self._variance_ratio()
        lt = self.scale_tril
        return np.expand_dims(ratio, (-2, -1)) * np.matmul(lt, np.swapaxes(lt, -1, -2))

    def _variance_ratio(self):
        """``df / (df - 2)``: inf for 1 < df <= 2, nan for df <= 1."""
        df = self.df
        above = np.greater(df, 2.0)
        ratio = np.where(above, df / np.where(above, df - 2.0, 1.0), onp.inf)
        return np.where(np.greater(df, 1.0), ratio, onp.nan)

    @property
    def variance(self):
        lt = self.scale_tril
        return np.expand_dims(self._variance_ratio(), -1) * np.sum(lt * lt, axis=-1)

    def entropy(self):
        # log(Gamma(df/2) (df pi)^(k/2) / Gamma((df+k)/2)) + log det L
        # + (df+k)/2 (digamma((df+k)/2) - digamma(df/2))
        k = self.event_shape[0]
        half_df, half_total = 0.5 * self.df, 0.5 * (self.df + k)
        entropy = (special.gammaln(half_df) - special.gammaln(half_total)
                   + 0.5 * k * (np.log(self.df) + math.log(math.pi))
                   + _half_log_det(self.scale_tril)
                   + half_total * (special.digamma(half_total) - special.digamma(half_df)))
        return np.broadcast_to(entropy, self.batch_shape)


class Dirichlet(Distribution):
    """Dirichlet distribution on the simplex with positive ``concentration`` (last axis)."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, *, validate_args=None):
        concentration = as_param(concentration)
        if np.ndim(concentration) < 1:
            raise ValueError("Dirichlet: concentration must have at least one dimension")
        self.concentration = concentration
        shape = np.shape(concentration)
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        # Normalised gammas, in log space so that tiny concentrations (whose
        # gamma draws underflow to 0) still give a point of the simplex.
        log_gamma = log_standard_gamma(rng, self.concentration, self.shape(sample_shape))
        return special.softmax(log_gamma, axis=-1)

    def log_prob(self, value):
        alpha = self.concentration
        return (np.sum(special.xlogy(alpha - 1.0, value), axis=-1)
                + special.gammaln(np.sum(alpha, axis=-1)) - np.sum(special.gammaln(alpha), axis=-1))

    @property
    def mean(self):
        return self.concentration / np.sum(self.concentration, axis=-1, keepdims=True)

    @property
    def variance(self):
        alpha = self.concentration
        total = np.sum(alpha, axis=-1, keepdims=True)
        return alpha * (total - alpha) / (total**2 * (total + 1.0))

    def entropy(self):
        alpha = self.concentration
        total = np.sum(alpha, axis=-1)
        k = self.event_shape[0]
        log_beta = np.sum(special.gammaln(alpha), axis=-1) - special.gammaln(total)
        return (log_beta + (total - k) * special.digamma(total)
                - np.sum((alpha - 1.0) * special.digamma(alpha), axis=-1))


class Multinomial(Distribution):
    """Counts of ``total_count`` draws from a Categorical with ``probs`` (or ``logits``)."""

    arg_constraints = {"total_count": constraints.nonnegative_integer,
                       "probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count=1, probs=None, logits=None, *, validate_args=None):
        self._given = given_param("Multinomial", probs=probs, logits=logits)
        param = as_param(probs if self._given == "probs" else logits)
        if np.ndim(param) < 1:
            raise ValueError(f"Multinomial: {self._given} must have at least one dimension")
        setattr(self, self._given, param)
        self.total_count = onp.asarray(total_count)
        shape = np.shape(param)
        batch_shape = onp.broadcast_shapes(shape[:-1], self.total_count.shape)
        super().__init__(batch_shape, shape[-1:], validate_args=validate_args)

    @derived_param
    def probs(self):
        """Probabilities, the softmax of the logits if those were given."""
        return special.softmax(self.logits, axis=-1)

    @derived_param
    def logits(self):
        """Log-probabilities, from the probabilities if those were given."""
        return log_probability(self.probs)

    @property
    def support(self):
        return constraints.multinomial(self.total_count)

    def sample(self, rng, sample_shape=()):
        probs = onp.asarray(getval(self.probs), dtype=float)
        return rng.multinomial(self.total_count, probs, tuple(sample_shape) + self.batch_shape)

    def log_prob(self, value):
        if self._given == "logits":
            log_mass = np.sum(value * special.log_softmax(self.logits, axis=-1), axis=-1)
        else:
            log_mass = np.sum(special.xlogy(value, self.probs), axis=-1)
        return (special.gammaln(self.total_count + 1.0) - np.sum(special.gammaln(value + 1.0), axis=-1)
                + log_mass)

    @property
    def mean(self):
        return np.expand_dims(self.total_count, -1) * self.probs

    @property
    def variance(self):
        p = self.probs
        return np.expand_dims(self.total_count, -1) * p * (1.0 - p)


class LKJCholesky(Distribution):
    """LKJ distribution over Cholesky factors of ``dimension x dimension``
    correlation matrices: the correlation matrix has density proportional to
    ``det(C)^(concentration - 1)``.

    ``log_prob`` is Stan's ``lkj_corr_cholesky``: the LKJ density times the
    Jacobian of ``L -> L L^T``, i.e. ``sum_i (K - i + 2 eta - 3) log L_ii``
    (0-based i) minus the log normaliser of the LKJ paper. Sampling uses the
    C-vine: independent partial correlations ``2 Beta(b_j, b_j) - 1`` with
    ``b_j = eta + (K - 2 - j) / 2`` in column j.
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dimension: int, concentration=1.0, *, validate_args=None):
        if int(dimension) != dimension or dimension < 2:
            raise ValueError(f"LKJCholesky: dimension must be an integer >= 2, got {dimension}")
        self.dimension = int(dimension)
        self.concentration = as_param(concentration)
        super().__init__(np.shape(self.concentration), (self.dimension,) * 2, validate_args=validate_args)

    def _log_normaliser(self):
        # log of the integral of det(C)^(eta-1) over correlation matrices:
        # sum_{k=1}^{K-1} m (2 eta - 2 + m) log 2 + m log B(b, b), m = K - k, b = eta + (m - 1) / 2.
        eta = np.expand_dims(self.concentration, -1)
        m = onp.arange(self.dimension - 1, 0, -1, dtype=float)
        b = eta + 0.5 * (m - 1.0)
        return np.sum(m * (2.0 * eta - 2.0 + m) * math.log(2.0) + m * special.betaln(b, b), axis=-1)

    def log_prob(self, value):
        k = self.dimension
        eta = np.expand_dims(self.concentration, -1)
        log_diag = np.log(np.diagonal(value, 0, -2, -1)[..., 1:])
        exponents = (k - onp.arange(1, k)) + 2.0 * eta - 3.0
        return np.sum(exponents * log_diag, axis=-1) - self._log_normaliser()

    def sample(self, rng, sample_shape=()):
        k = self.dimension
        shape = tuple(sample_shape) + self.batch_shape
        eta = onp.broadcast_to(getval(self.concentration), shape)[..., None, None]
        # Per column; the last column has no entries below the diagonal.
        b = eta + 0.5 * onp.maximum(k - 2 - onp.arange(k), 0)
        z = 2.0 * rng.beta(b, b, shape + (k, k)) - 1.0
        z = onp.tril(z, -1)
        # L_ij = z_ij sqrt(prod_{c<j} (1 - z_ic^2)), L_ii = sqrt(prod_{c<i} (1 - z_ic^2)).
        leftover = onp.cumprod(1.0 - z * z, axis=-1)
        leftover_before = onp.concatenate([onp.ones(shape + (k, 1)), leftover[..., :-1]], axis=-1)
        return (z + onp.eye(k)) * onp.sqrt(leftover_before)


class GaussianRandomWalk(Distribution):
    """A random walk of ``num_steps`` steps with Normal(0, ``scale``)
    increments, starting from a Normal(0, ``scale``) first value."""

    arg_constraints = {"scale": constraints.positive, "num_steps": constraints.positive_integer}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, scale=1.0, num_steps: int = 1, *, validate_args=None):
        self.scale = as_param(scale)
        self.num_steps = num_steps
        super().__init__(np.shape(self.scale), (num_steps,), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        steps = np.expand_dims(self.scale, -1) * rng.standard_normal(self.shape(sample_shape))
        return np.cumsum(steps, axis=-1)

    def log_prob(self, value):
        steps = np.concatenate([value[..., :1], value[..., 1:] - value[..., :-1]], axis=-1)
        z = steps / np.expand_dims(self.scale, -1)
        return (np.sum(-0.5 * z * z, axis=-1)
                - self.num_steps * (np.log(self.scale) + 0.5 * _LOG_2PI))

    @property
    def mean(self):
        return np.zeros(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return np.expand_dims(self.scale**2, -1) * onp.arange(1, self.num_steps + 1)

    def entropy(self):
        # The walk is a volume-preserving (unit triangular) map of its
        # num_steps independent Normal(0, scale) increments.
        return self.num_steps * (0.5 + 0.5 * _LOG_2PI + np.log(self.scale))
