"""Constraints: the sets that parameters and values of distributions live in.

A constraint answers one question, ``check(value)``: which entries lie in the
set. ``event_dim`` says how many rightmost dimensions form one point (a
simplex is a vector, a Cholesky factor a matrix), so ``check`` returns one
boolean per batch element. ``is_discrete`` tells inference that the set is
countable and therefore has no bijection to unconstrained space; the
continuous ones each have one, found by ``transforms.biject_to``.

Checks are written with ``probad.ad.numpy`` comparisons, which have zero
derivative and can be used inside traced densities (e.g. to return ``-inf``
outside a bounded support) without creating guards.
"""
from __future__ import annotations

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval

__all__ = [
    "Constraint", "boolean", "circular", "corr_cholesky", "corr_matrix", "greater_than",
    "independent", "integer", "integer_greater_than", "integer_interval", "interval", "less_than",
    "lower_cholesky", "multinomial", "nonnegative", "nonnegative_integer", "ordered_vector",
    "positive", "positive_definite", "positive_integer", "positive_ordered_vector", "real",
    "real_matrix", "real_vector", "simplex", "unit_interval",
]

# Tolerance for the equality parts of checks (a simplex sums to one, a
# correlation matrix has a unit diagonal) on values computed in float64.
_TOL = 1e-6


def _bound_repr(bound) -> str:
    bound = getval(bound)
    if onp.ndim(bound) == 0:
        return f"{float(bound):g}"
    return f"<array of shape {onp.shape(bound)}>"


class Constraint:
    """A set of values.

    Attributes
    ----------
    event_dim : int
        Number of rightmost dimensions that make up one element of the set.
    is_discrete : bool
        Whether the set is countable (integer-valued).
    """

    event_dim = 0
    is_discrete = False

    def check(self, value):
        """Boolean array of shape ``value.shape[:ndim - event_dim]``: which
        elements of ``value`` lie in the set."""
        raise NotImplementedError(f"{type(self).__name__} must define check()")


class _Real(Constraint):
    def check(self, value):
        return np.isfinite(value)

    def __repr__(self):
        return "real"


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def check(self, value):
        return np.greater(value, self.lower_bound)

    def __repr__(self):
        return f"greater_than({_bound_repr(self.lower_bound)})"


class _Positive(_GreaterThan):
    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "positive"


class _Nonnegative(Constraint):
    def check(self, value):
        return np.greater_equal(value, 0.0)

    def __repr__(self):
        return "nonnegative"


class _LessThan(Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, value):
        return np.less(value, self.upper_bound)

    def __repr__(self):
        return f"less_than({_bound_repr(self.upper_bound)})"


class _Interval(Constraint):
    def __init__(self, lower_bound, upper_bound):
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    def check(self, value):
        return np.logical_and(np.greater_equal(value, self.lower_bound),
                              np.less_equal(value, self.upper_bound))

    def __repr__(self):
        return f"interval({_bound_repr(self.lower_bound)}, {_bound_repr(self.upper_bound)})"


class _Circular(_Interval):
    """Angles in [-pi, pi]."""

    def __init__(self):
        super().__init__(-onp.pi, onp.pi)

    def __repr__(self):
        return "circular"


class _IndependentConstraint(Constraint):
    """``base`` applied elementwise, with ``reinterpreted_batch_ndims`` more
    dimensions counted as one element (every entry must pass)."""

    def __init__(self, base: Constraint, reinterpreted_batch_ndims: int, name: str | None = None):
        if reinterpreted_batch_ndims < 0:
            raise ValueError(f"reinterpreted_batch_ndims must be >= 0, got {reinterpreted_batch_ndims}")
        self.base_constraint = base
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.event_dim = base.event_dim + reinterpreted_batch_ndims
        self.is_discrete = base.is_discrete
        self._name = name

    def check(self, value):
        ok = self.base_constraint.check(value)
        n = self.reinterpreted_batch_ndims
        if n == 0:
            return ok
        return np.all(ok, axis=tuple(range(-n, 0)))

    def __repr__(self):
        if self._name is not None:
            return self._name
        return f"independent({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value):
        nonneg = np.all(np.greater_equal(value, 0.0), axis=-1)
        return np.logical_and(nonneg, np.less(np.abs(np.sum(value, axis=-1) - 1.0), _TOL))

    def __repr__(self):
        return "simplex"


class _OrderedVector(Constraint):
    event_dim = 1

    def check(self, value):
        increasing = np.all(np.greater(value[..., 1:], value[..., :-1]), axis=-1)
        return np.logical_and(increasing, np.all(np.isfinite(value), axis=-1))

    def __repr__(self):
        return "ordered_vector"


class _PositiveOrderedVector(_OrderedVector):
    def check(self, value):
        return np.logical_and(super().check(value), np.all(np.greater(value, 0.0), axis=-1))

    def __repr__(self):
        return "positive_ordered_vector"


def _is_lower_triangular(value):
    upper = np.triu(value, 1)
    return np.all(np.equal(upper, 0.0), axis=(-2, -1))


class _LowerCholesky(Constraint):
    event_dim = 2

    def check(self, value):
        diag = np.diagonal(value, 0, -2, -1)
        positive_diag = np.all(np.greater(diag, 0.0), axis=-1)
        return np.logical_and(_is_lower_triangular(value), positive_diag)

    def __repr__(self):
        return "lower_cholesky"


class _CorrCholesky(_LowerCholesky):
    def check(self, value):
        row_norm = np.sum(value * value, axis=-1)
        unit_rows = np.all(np.less(np.abs(row_norm - 1.0), _TOL), axis=-1)
        return np.logical_and(super().check(value), unit_rows)

    def __repr__(self):
        return "corr_cholesky"


class _PositiveDefinite(Constraint):
    event_dim = 2

    def check(self, value):
        # A yes/no question about concrete matrices (parameter validation):
        # answered with plain numpy eigenvalues, never traced.
        raw = onp.asarray(getval(value), dtype=float)
        symmetric = onp.all(onp.abs(raw - onp.swapaxes(raw, -1, -2)) <= _TOL, axis=(-2, -1))
        finite = onp.all(onp.isfinite(raw), axis=(-2, -1))
        safe = onp.where(finite[..., None, None], raw, onp.eye(raw.shape[-1]))
        return symmetric & finite & onp.all(onp.linalg.eigvalsh(safe) > 0.0, axis=-1)

    def __repr__(self):
        return "positive_definite"


class _CorrMatrix(_PositiveDefinite):
    def check(self, value):
        diag = onp.diagonal(onp.asarray(getval(value), dtype=float), 0, -2, -1)
        unit_diag = onp.all(onp.abs(diag - 1.0) < _TOL, axis=-1)
        return super().check(value) & unit_diag

    def __repr__(self):
        return "corr_matrix"


def _is_integer(value):
    return np.logical_and(np.equal(np.floor(value), value), np.isfinite(value))


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    def check(self, value):
        inside = np.logical_and(np.greater_equal(value, self.lower_bound),
                                np.less_equal(value, self.upper_bound))
        return np.logical_and(_is_integer(value), inside)

    def __repr__(self):
        return f"integer_interval({_bound_repr(self.lower_bound)}, {_bound_repr(self.upper_bound)})"


class _IntegerGreaterThan(Constraint):
    """Integers ``>= lower_bound``."""

    is_discrete = True

    def __init__(self, lower_bound, name: str | None = None):
        self.lower_bound = lower_bound
        self._name = name

    def check(self, value):
        return np.logical_and(_is_integer(value), np.greater_equal(value, self.lower_bound))

    def __repr__(self):
        return self._name or f"integer_greater_than({_bound_repr(self.lower_bound)})"


class _Boolean(Constraint):
    is_discrete = True

    def check(self, value):
        return np.logical_or(np.equal(value, 0), np.equal(value, 1))

    def __repr__(self):
        return "boolean"


class _Multinomial(Constraint):
    """Count vectors with nonnegative integer entries summing to ``upper_bound``."""

    is_discrete = True
    event_dim = 1

    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, value):
        counts = np.all(np.logical_and(_is_integer(value), np.greater_equal(value, 0)), axis=-1)
        return np.logical_and(counts, np.equal(np.sum(value, axis=-1), self.upper_bound))

    def __repr__(self):
        return f"multinomial({_bound_repr(self.upper_bound)})"


# Public names: singletons for fixed sets, factories for parameterised ones.
real = _Real()
real_vector = _IndependentConstraint(real, 1, name="real_vector")
real_matrix = _IndependentConstraint(real, 2, name="real_matrix")
positive = _Positive()
nonnegative = _Nonnegative()
unit_interval = _Interval(0.0, 1.0)
circular = _Circular()
simplex = _Simplex()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
lower_cholesky = _LowerCholesky()
corr_cholesky = _CorrCholesky()
positive_definite = _PositiveDefinite()
corr_matrix = _CorrMatrix()
boolean = _Boolean()
nonnegative_integer = _IntegerGreaterThan(0, name="nonnegative_integer")
positive_integer = _IntegerGreaterThan(1, name="positive_integer")
integer = _IntegerGreaterThan(-onp.inf, name="integer")
greater_than = _GreaterThan
less_than = _LessThan
interval = _Interval
integer_interval = _IntegerInterval
integer_greater_than = _IntegerGreaterThan
independent = _IndependentConstraint
multinomial = _Multinomial
