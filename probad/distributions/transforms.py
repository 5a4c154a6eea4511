"""Bijective transforms and ``biject_to``: the map from unconstrained space.

Inference samples every continuous latent variable in unconstrained real
space and maps it into the support of its distribution; the density picks up
``log|det J|`` of that map. A :class:`Transform` is such a map: ``__call__``
goes forward, ``inv`` back, and ``log_abs_det_jacobian(x, y)`` is the log
volume change at ``x`` (summed over the transform's event dimensions, so it
has one entry per batch element). Shape-changing transforms (a simplex of K
entries has K - 1 free coordinates) say so through ``forward_shape`` and
``inverse_shape``.

Everything is written with ``probad.ad.numpy`` so that it differentiates, and
with Stan's parameterisations, which stay finite for any finite input.
``biject_to(constraint)`` returns the transform for a constraint.
"""
from __future__ import annotations

import math

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval, isbox
from probad.ad.scipy import special

from . import constraints
from .constraints import Constraint

__all__ = [
    "Transform", "IdentityTransform", "ExpTransform", "AffineTransform", "SigmoidTransform",
    "SoftplusTransform", "StickBreakingTransform", "OrderedTransform", "CorrCholeskyTransform",
    "LowerCholeskyTransform", "CholeskyOuterTransform", "CorrCholeskyOuterTransform",
    "ComposeTransform", "IndependentTransform", "biject_to",
]


def _softplus(x):
    return special.softplus(x)


def sum_rightmost(x, n: int):
    """Sum the ``n`` rightmost dimensions of ``x`` (no-op for ``n <= 0``)."""
    if n <= 0:
        return x
    return np.sum(x, axis=tuple(range(-n, 0)))


def _matrix_size(n_free: int, diagonal: bool) -> int:
    """K such that a KxK lower triangle (with or without its diagonal) has ``n_free`` entries."""
    k = (math.isqrt(1 + 8 * n_free) + (-1 if diagonal else 1)) // 2
    if (k * (k + 1) if diagonal else k * (k - 1)) != 2 * n_free:
        kind = "lower triangle" if diagonal else "strictly lower triangle"
        raise ValueError(f"{n_free} values cannot fill the {kind} of a square matrix")
    return k


def _strict_lower_index(k: int) -> onp.ndarray:
    """Index matrix placing a vector of the k(k-1)/2 strictly-lower entries
    (row by row) into a KxK matrix; above and on the diagonal it points one
    past the end, where callers append a zero."""
    n = k * (k - 1) // 2
    index = onp.full((k, k), n)
    rows, cols = onp.tril_indices(k, -1)
    index[rows, cols] = onp.arange(n)
    return index


def _log_positive(y):
    """``log(y)`` for values that should be positive but may have underflowed
    to 0 (a draw of a tiny-concentration Dirichlet, say): those give a large
    finite negative number instead of ``-inf`` and a warning."""
    return np.log(np.maximum(y, onp.finfo(onp.result_type(getval(y), float)).tiny))


def _strict_lower_to_matrix(vec, k: int):
    """Place the k(k-1)/2 entries of ``vec`` (row by row) below the diagonal of a KxK zero matrix."""
    padded = np.concatenate([vec, np.zeros(np.shape(vec)[:-1] + (1,))], axis=-1)
    return padded[..., _strict_lower_index(k)]


class Transform:
    """A differentiable bijection from ``domain`` onto ``codomain``."""

    domain: Constraint = constraints.real
    codomain: Constraint = constraints.real
    #: Whether the map is ``y = x``; a distribution in unconstrained space is
    #: then the same distribution in constrained space (its moments are exact).
    is_identity: bool = False

    def __call__(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def inv(self, y):
        """The inverse map, ``codomain -> domain``."""
        raise NotImplementedError(f"{type(self).__name__} must define inv")

    def log_abs_det_jacobian(self, x, y):
        """``log|det J|`` of the forward map at ``x`` (with ``y = self(x)``),
        summed over ``domain.event_dim`` rightmost dimensions."""
        raise NotImplementedError(f"{type(self).__name__} must define log_abs_det_jacobian")

    def forward_shape(self, shape: tuple) -> tuple:
        """Shape of ``self(x)`` for ``x`` of shape ``shape``."""
        return tuple(shape)

    def inverse_shape(self, shape: tuple) -> tuple:
        """Shape of ``self.inv(y)`` for ``y`` of shape ``shape``."""
        return tuple(shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


class IdentityTransform(Transform):
    """``y = x`` on the real line."""

    is_identity = True

    def __call__(self, x):
        return x

    def inv(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        return np.zeros(np.shape(x))


class ExpTransform(Transform):
    """``y = exp(x)``: real line onto the positive reals."""

    codomain = constraints.positive

    def __call__(self, x):
        return np.exp(x)

    def inv(self, y):
        return _log_positive(y)

    def log_abs_det_jacobian(self, x, y):
        return x


class SigmoidTransform(Transform):
    """``y = 1 / (1 + exp(-x))``: real line onto the unit interval.

    The output is kept strictly inside (0, 1), so that ``inv`` and densities
    on the unit interval stay finite even where the logistic rounds to 0 or 1.
    """

    codomain = constraints.unit_interval

    def __call__(self, x):
        finfo = onp.finfo(onp.result_type(getval(x), float))
        return np.clip(np.exp(-_softplus(-x)), finfo.tiny, 1.0 - finfo.eps)

    def inv(self, y):
        return _log_positive(y) - _log_positive(1.0 - y)

    def log_abs_det_jacobian(self, x, y):
        # dy/dx = sigmoid(x) * sigmoid(-x), in log space for large |x|.
        return -_softplus(x) - _softplus(-x)


class SoftplusTransform(Transform):
    """``y = log(1 + exp(x))``: real line onto the positive reals, linear for large x."""

    codomain = constraints.positive

    def __call__(self, x):
        return _softplus(x)

    def inv(self, y):
        return y + _log_positive(-np.expm1(-y))

    def log_abs_det_jacobian(self, x, y):
        return -_softplus(-x)


class AffineTransform(Transform):
    """``y = loc + scale * x``.

    Parameters
    ----------
    loc, scale : array_like
        Shift and (nonzero) scale, broadcast against ``x``.
    domain : Constraint
        The set ``x`` lives in (``real``, ``positive``, ``greater_than(a)``,
        ``interval(a, b)`` or an ``independent`` real constraint); the codomain
        is its image.
    """

    def __init__(self, loc, scale, domain: Constraint = constraints.real):
        self.loc = loc
        self.scale = scale
        self.domain = domain

    @property
    def codomain(self) -> Constraint:
        domain = self.domain
        if domain is constraints.real or (isinstance(domain, constraints.independent)
                                          and domain.base_constraint is constraints.real):
            return domain
        # Traced scales (e.g. the width of a learned interval) are positive by
        # construction; only a concrete negative scale flips the orientation.
        flips = not isbox(self.scale) and bool(onp.all(onp.asarray(getval(self.scale)) < 0))
        if isinstance(domain, constraints.greater_than):
            bound = self.loc + self.scale * domain.lower_bound
            return constraints.less_than(bound) if flips else constraints.greater_than(bound)
        if isinstance(domain, constraints.interval):
            low = self.loc + self.scale * domain.lower_bound
            high = self.loc + self.scale * domain.upper_bound
            return constraints.interval(high, low) if flips else constraints.interval(low, high)
        raise ValueError(f"AffineTransform does not know the image of {domain}")

    def __call__(self, x):
        return self.loc + self.scale * x

    def inv(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        log_scale = np.broadcast_to(np.log(np.abs(self.scale)), np.shape(y))
        return sum_rightmost(log_scale, self.domain.event_dim)

    def forward_shape(self, shape):
        return onp.broadcast_shapes(tuple(shape), onp.shape(getval(self.loc)),
                                    onp.shape(getval(self.scale)))

    def inverse_shape(self, shape):
        return self.forward_shape(shape)

    def __repr__(self):
        return f"AffineTransform(loc={getval(self.loc)!r}, scale={getval(self.scale)!r})"


class StickBreakingTransform(Transform):
    """Real (K-1)-vectors onto the K-simplex, as in Stan.

    Entry k breaks off the fraction ``z_k = sigmoid(x_k - log(K - 1 - k))`` of
    the stick left over; the offset makes ``x = 0`` the uniform simplex. All
    products are taken in log space, so no entry becomes NaN for extreme x.
    """

    domain = constraints.real_vector
    codomain = constraints.simplex

    @staticmethod
    def _offset(n: int):
        return onp.log(onp.arange(n, 0, -1, dtype=float))

    def _log_pieces(self, x):
        z = x - self._offset(np.shape(x)[-1])
        log_z = -_softplus(-z)
        log_1mz = -_softplus(z)
        log_left = np.cumsum(log_1mz, axis=-1)  # log of the stick left after entry k
        log_left_before = log_left - log_1mz  # ... and before it
        return log_z, log_1mz, log_left, log_left_before

    def __call__(self, x):
        log_z, _, log_left, log_left_before = self._log_pieces(x)
        return np.exp(np.concatenate([log_z + log_left_before, log_left[..., -1:]], axis=-1))

    def inv(self, y):
        # x_k = logit(y_k / left_before_k) + offset = log y_k - log(left after k) + offset,
        # with the leftovers summed from the far end (no 1 - cumsum cancellation).
        left_after = np.cumsum(y[..., ::-1], axis=-1)[..., ::-1][..., 1:]
        return _log_positive(y[..., :-1]) - _log_positive(left_after) + self._offset(np.shape(y)[-1] - 1)

    def log_abs_det_jacobian(self, x, y):
        # Triangular Jacobian with diagonal left_before_k * z_k * (1 - z_k).
        log_z, log_1mz, _, log_left_before = self._log_pieces(x)
        return np.sum(log_z + log_1mz + log_left_before, axis=-1)

    def forward_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)


class OrderedTransform(Transform):
    """Real vectors onto increasing vectors: ``y_0 = x_0``, ``y_k = y_{k-1} + exp(x_k)``."""

    domain = constraints.real_vector
    codomain = constraints.ordered_vector

    def __call__(self, x):
        steps = np.concatenate([x[..., :1], np.exp(x[..., 1:])], axis=-1)
        return np.cumsum(steps, axis=-1)

    def inv(self, y):
        return np.concatenate([y[..., :1], _log_positive(y[..., 1:] - y[..., :-1])], axis=-1)

    def log_abs_det_jacobian(self, x, y):
        return np.sum(x[..., 1:], axis=-1)


class CorrCholeskyTransform(Transform):
    """Real vectors of length K(K-1)/2 onto Cholesky factors of KxK correlation matrices.

    As in Stan (and the LKJ paper's C-vine): ``z = tanh(x)`` are canonical
    partial correlations filling the strict lower triangle row by row, and
    ``L_ij = z_ij * sqrt(1 - sum_{k<j} L_ik^2)``, ``L_ii = sqrt(1 - sum_{k<i} L_ik^2)``.
    The leftover ``1 - sum_{k<j} L_ik^2`` equals ``prod_{k<j} (1 - z_ik^2)``, which
    is accumulated in log space.
    """

    domain = constraints.real_vector
    codomain = constraints.corr_cholesky

    @staticmethod
    def _log1m_tanh_sq(x):
        # log(1 - tanh(x)^2) = 2 (log 2 - |x| - log(1 + exp(-2|x|))): finite for any x.
        ax = np.abs(x)
        return 2.0 * (onp.log(2.0) - ax - np.log1p(np.exp(-2.0 * ax)))

    def _pieces(self, x):
        k = _matrix_size(np.shape(x)[-1], diagonal=False)
        z = _strict_lower_to_matrix(np.tanh(x), k)
        log_leftover = _strict_lower_to_matrix(self._log1m_tanh_sq(x), k)
        # Sum over k < j of log(1 - z_ik^2): an exclusive cumulative sum along rows.
        log_left_before = np.cumsum(log_leftover, axis=-1) - log_leftover
        return k, z, log_left_before

    def __call__(self, x):
        k, z, log_left_before = self._pieces(x)
        return (z + onp.eye(k)) * np.exp(0.5 * log_left_before)

    def inv(self, y):
        k = np.shape(y)[-1]
        rows, cols = onp.tril_indices(k, -1)
        sq = y * y
        used = (np.cumsum(sq, axis=-1) - sq)[..., rows, cols]
        z = y[..., rows, cols] / np.sqrt(1.0 - used)
        bound = 1.0 - onp.finfo(onp.result_type(getval(y), float)).eps
        return np.arctanh(np.clip(z, -bound, bound))

    def log_abs_det_jacobian(self, x, y):
        # Row by row the map z -> L is triangular with diagonal sqrt(leftover);
        # tanh contributes 1 - z^2.
        k, _, log_left_before = self._pieces(x)
        rows, cols = onp.tril_indices(k, -1)
        return np.sum(self._log1m_tanh_sq(x) + 0.5 * log_left_before[..., rows, cols], axis=-1)

    def forward_shape(self, shape):
        k = _matrix_size(shape[-1], diagonal=False)
        return tuple(shape[:-1]) + (k, k)

    def inverse_shape(self, shape):
        k = shape[-1]
        return tuple(shape[:-2]) + (k * (k - 1) // 2,)


class LowerCholeskyTransform(Transform):
    """Real vectors of length K(K+1)/2 onto lower-triangular matrices with positive diagonal.

    The first K(K-1)/2 entries fill the strict lower triangle row by row; the
    last K are the logs of the diagonal.
    """

    domain = constraints.real_vector
    codomain = constraints.lower_cholesky

    def __call__(self, x):
        k = _matrix_size(np.shape(x)[-1], diagonal=True)
        lower = _strict_lower_to_matrix(x[..., :-k], k)
        return lower + np.exp(x[..., -k:])[..., None] * onp.eye(k)

    def inv(self, y):
        k = np.shape(y)[-1]
        rows, cols = onp.tril_indices(k, -1)
        log_diag = _log_positive(np.diagonal(y, 0, -2, -1))
        return np.concatenate([y[..., rows, cols], log_diag], axis=-1)

    def log_abs_det_jacobian(self, x, y):
        k = _matrix_size(np.shape(x)[-1], diagonal=True)
        return np.sum(x[..., -k:], axis=-1)

    def forward_shape(self, shape):
        k = _matrix_size(shape[-1], diagonal=True)
        return tuple(shape[:-1]) + (k, k)

    def inverse_shape(self, shape):
        k = shape[-1]
        return tuple(shape[:-2]) + (k * (k + 1) // 2,)


class CholeskyOuterTransform(Transform):
    """``L -> L L^T``: lower Cholesky factors onto positive definite matrices.

    On the free coordinates (the lower triangles) the Jacobian is triangular
    with diagonal ``2 L_ii`` for diagonal entries and ``L_jj`` for ``(i, j)``,
    ``i > j``, so ``log|det J| = K log 2 + sum_j (K - j) log L_jj``.
    """

    domain = constraints.lower_cholesky
    codomain = constraints.positive_definite

    def __call__(self, x):
        return np.matmul(x, np.swapaxes(x, -1, -2))

    def inv(self, y):
        return np.linalg.cholesky(y)

    def log_abs_det_jacobian(self, x, y):
        k = np.shape(x)[-1]
        log_diag = np.log(np.diagonal(x, 0, -2, -1))
        return k * onp.log(2.0) + np.sum((k - onp.arange(k)) * log_diag, axis=-1)


class CorrCholeskyOuterTransform(CholeskyOuterTransform):
    """``L -> L L^T`` for correlation matrices.

    The free coordinates are the strict lower triangles (the diagonals are
    fixed by unit row norms), giving ``log|det J| = sum_j (K - 1 - j) log L_jj``.
    """

    domain = constraints.corr_cholesky
    codomain = constraints.corr_matrix

    def log_abs_det_jacobian(self, x, y):
        k = np.shape(x)[-1]
        log_diag = np.log(np.diagonal(x, 0, -2, -1))
        return np.sum((k - 1 - onp.arange(k)) * log_diag, axis=-1)


class ComposeTransform(Transform):
    """Apply ``parts`` in order: ``parts[-1](... parts[0](x))``.

    Parts may differ in event dimension (an elementwise transform after a
    vector one); their Jacobian terms are summed down to the composed
    transform's batch shape.
    """

    def __init__(self, parts: list[Transform]):
        if not parts:
            raise ValueError("ComposeTransform needs at least one transform")
        self.parts = list(parts)

    def _event_dims(self) -> tuple[int, int]:
        """Event dims of the input and output of the whole composition."""
        dim = self.parts[-1].codomain.event_dim
        for part in reversed(self.parts):
            dim = max(dim + part.domain.event_dim - part.codomain.event_dim, part.domain.event_dim)
        input_dim = dim
        for part in self.parts:
            dim += part.codomain.event_dim - part.domain.event_dim
        return input_dim, dim

    @property
    def domain(self) -> Constraint:
        first = self.parts[0].domain
        extra = self._event_dims()[0] - first.event_dim
        return constraints.independent(first, extra) if extra else first

    @property
    def codomain(self) -> Constraint:
        last = self.parts[-1].codomain
        extra = self._event_dims()[1] - last.event_dim
        return constraints.independent(last, extra) if extra else last

    def __call__(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def inv(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        event_dim = self._event_dims()[0]
        total = 0.0
        for part in self.parts:
            x_next = part(x)
            term = part.log_abs_det_jacobian(x, x_next)
            total = total + sum_rightmost(term, event_dim - part.domain.event_dim)
            event_dim += part.codomain.event_dim - part.domain.event_dim
            x = x_next
        return total

    def forward_shape(self, shape):
        for part in self.parts:
            shape = part.forward_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape):
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return tuple(shape)

    def __repr__(self):
        return f"ComposeTransform({self.parts!r})"


class IndependentTransform(Transform):
    """``base`` with ``reinterpreted_batch_ndims`` more rightmost dimensions
    treated as one event (its Jacobian terms summed over them)."""

    def __init__(self, base: Transform, reinterpreted_batch_ndims: int):
        self.base_transform = base
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims

    @property
    def domain(self) -> Constraint:
        return constraints.independent(self.base_transform.domain, self.reinterpreted_batch_ndims)

    @property
    def codomain(self) -> Constraint:
        return constraints.independent(self.base_transform.codomain, self.reinterpreted_batch_ndims)

    @property
    def is_identity(self) -> bool:
        return self.base_transform.is_identity

    def __call__(self, x):
        return self.base_transform(x)

    def inv(self, y):
        return self.base_transform.inv(y)

    def log_abs_det_jacobian(self, x, y):
        return sum_rightmost(self.base_transform.log_abs_det_jacobian(x, y),
                             self.reinterpreted_batch_ndims)

    def forward_shape(self, shape):
        return self.base_transform.forward_shape(shape)

    def inverse_shape(self, shape):
        return self.base_transform.inverse_shape(shape)

    def __repr__(self):
        return f"IndependentTransform({self.base_transform!r}, {self.reinterpreted_batch_ndims})"


class _BijectionRegistry:
    """``biject_to(constraint)``: the transform from unconstrained space onto
    ``constraint``, looked up by the constraint's class (most derived first).

    Register a factory for a new constraint class with
    ``@biject_to.register(ConstraintClass)`` taking the constraint instance.
    """

    def __init__(self):
        self._factories = {}

    def register(self, constraint_type: type, factory=None):
        if factory is None:
            return lambda f: self.register(constraint_type, f)
        self._factories[constraint_type] = factory
        return factory

    def __call__(self, constraint: Constraint) -> Transform:
        if constraint.is_discrete:
            raise ValueError(
                f"{constraint} is a discrete constraint: it has no bijection to unconstrained "
                "space. Gradient-based inference cannot sample a discrete latent site; "
                "marginalise it out (e.g. sum over its values with logsumexp and a factor)")
        for cls in type(constraint).__mro__:
            if cls in self._factories:
                return self._factories[cls](constraint)
        raise ValueError(f"no bijection to {constraint} is registered; add one with "
                         "@biject_to.register(type(constraint))")


biject_to = _BijectionRegistry()

biject_to.register(type(constraints.real), lambda c: IdentityTransform())
biject_to.register(type(constraints.positive), lambda c: ExpTransform())
biject_to.register(type(constraints.nonnegative), lambda c: ExpTransform())
biject_to.register(type(constraints.simplex), lambda c: StickBreakingTransform())
biject_to.register(type(constraints.ordered_vector), lambda c: OrderedTransform())
biject_to.register(type(constraints.lower_cholesky), lambda c: LowerCholeskyTransform())
biject_to.register(type(constraints.corr_cholesky), lambda c: CorrCholeskyTransform())


@biject_to.register(constraints.independent)
def _biject_independent(c):
    return IndependentTransform(biject_to(c.base_constraint), c.reinterpreted_batch_ndims)


@biject_to.register(constraints.greater_than)
def _biject_greater_than(c):
    return ComposeTransform([ExpTransform(), AffineTransform(c.lower_bound, 1.0, constraints.positive)])


@biject_to.register(constraints.less_than)
def _biject_less_than(c):
    return ComposeTransform([ExpTransform(), AffineTransform(c.upper_bound, -1.0, constraints.positive)])


@biject_to.register(constraints.interval)
def _biject_interval(c):
    if c is constraints.unit_interval:
        return SigmoidTransform()
    width = c.upper_bound - c.lower_bound
    return ComposeTransform([SigmoidTransform(),
                             AffineTransform(c.lower_bound, width, constraints.unit_interval)])


@biject_to.register(type(constraints.positive_ordered_vector))
def _biject_positive_ordered(c):
    return ComposeTransform([OrderedTransform(), ExpTransform()])


@biject_to.register(type(constraints.positive_definite))
def _biject_positive_definite(c):
    return ComposeTransform([LowerCholeskyTransform(), CholeskyOuterTransform()])


@biject_to.register(type(constraints.corr_matrix))
def _biject_corr_matrix(c):
    return ComposeTransform([CorrCholeskyTransform(), CorrCholeskyOuterTransform()])
