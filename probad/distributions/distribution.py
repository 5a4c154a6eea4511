"""The distribution base class and the distributions built from others.

A distribution has a ``batch_shape`` (independent, not necessarily identical
copies, e.g. one per school) and an ``event_shape`` (the shape of one draw,
e.g. a vector for a multivariate normal). ``log_prob`` sums over the event
dimensions only; everything else is broadcast, NumPyro-style.

Structural distributions live here too: :class:`Independent` (batch
dimensions reinterpreted as event dimensions, from ``to_event``),
:class:`ExpandedDistribution` (``expand``, used by plates),
:class:`MaskedDistribution` (``mask``), :class:`TransformedDistribution`,
:class:`Delta`, :class:`Unit` (what ``factor`` samples from) and
:class:`ImproperUniform` (a flat "prior" known only through its support).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as onp

import probad.ad.numpy as np
from probad.ad.extend import getval, isbox

from . import constraints
from .constraints import Constraint
from .transforms import ComposeTransform, Transform, sum_rightmost

__all__ = [
    "Distribution", "Independent", "ExpandedDistribution", "MaskedDistribution",
    "TransformedDistribution", "Delta", "Unit", "ImproperUniform", "enable_validation",
    "is_validation_enabled", "as_param", "broadcast_params", "derived_param", "given_param",
    "log_probability",
]

_validation_enabled = True
# The check pass of probad.infer builds distributions with validation off in
# its own thread only: a global toggle, saved and restored by chains running
# on a thread pool at once, could be restored to "off" for good.
_SUSPENDED = threading.local()


def enable_validation(is_validate: bool = True) -> None:
    """Turn argument validation of newly built distributions on or off (default on).

    Validation inspects concrete parameter values, never traced ones, and
    ``log_prob`` never validates, so it stays out of compiled densities.
    """
    global _validation_enabled
    _validation_enabled = bool(is_validate)


def is_validation_enabled() -> bool:
    """Whether distributions validate their arguments by default (in this thread)."""
    return _validation_enabled and not getattr(_SUSPENDED, "active", False)


@contextmanager
def validation_suspended():
    """Distributions built inside, in this thread, skip their argument checks."""
    was_active = getattr(_SUSPENDED, "active", False)
    _SUSPENDED.active = True
    try:
        yield
    finally:
        _SUSPENDED.active = was_active


def as_param(value):
    """A parameter as an array: traced values pass through, lists become
    arrays and integers become float64 (continuous parameters)."""
    if isbox(value):
        return value
    value = onp.asarray(value)
    return value.astype(float) if value.dtype.kind in "biu" else value


class derived_param:
    """A parameter computed on access from the one the user gave (``probs``
    from ``logits`` or back).

    It is neither cached nor stored on the instance, so the given parameter
    (an instance attribute of the same name) takes precedence and validation
    only ever sees parameters the user passed.
    """

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __get__(self, obj, owner=None):
        return self if obj is None else self.compute(obj)


def broadcast_params(*params):
    """Broadcast parameters against each other.

    Returns the parameters (each broadcast to the common shape only if its
    own shape differs, which keeps traced graphs small) and that shape.
    """
    shapes = [onp.shape(getval(p)) for p in params]
    if shapes.count(shapes[0]) == len(shapes):
        return params, shapes[0]
    shape = onp.broadcast_shapes(*shapes)
    out = tuple(p if s == shape else np.broadcast_to(p, shape) for p, s in zip(params, shapes))
    return out, tuple(shape)


def given_param(owner: str, **options) -> str:
    """The name of the single option that is not None (``probs`` or ``logits``, ...);
    a ValueError naming the alternatives otherwise."""
    names = [name for name, value in options.items() if value is not None]
    if len(names) != 1:
        raise ValueError(f"{owner}: give exactly one of {' or '.join(options)}, got {len(names)}")
    return names[0]


def log_probability(p):
    """``log(p)`` for probabilities that may be exactly 0: ``-inf`` there, without a warning."""
    positive = np.greater(p, 0.0)
    return np.where(positive, np.log(np.where(positive, p, 1.0)), -onp.inf)


def _format_value(value) -> str:
    value = onp.asarray(value)
    if value.ndim == 0:
        return str(value.item())
    text = onp.array2string(value, precision=6, threshold=20, separator=", ")
    return " ".join(text.split())  # one line, also for matrices


def _violation_message(owner: str, what: str, constraint: Constraint, value, ok) -> str:
    """``"<owner>: <what> must satisfy <constraint>, got <bad value>"``, plus
    the position of the first bad entry and how many there are when ``value``
    has more than one element."""
    ok = onp.asarray(ok, dtype=bool)
    value = onp.asarray(getval(value))
    event_shape = value.shape[value.ndim - constraint.event_dim:] if constraint.event_dim else ()
    value = onp.broadcast_to(value, ok.shape + event_shape)
    if ok.ndim == 0:
        return f"{owner}: {what} must satisfy {constraint}, got {_format_value(value)}"
    bad = onp.argwhere(~ok)
    index = tuple(int(i) for i in bad[0])
    where = "batch index" if constraint.event_dim else "index"
    return (f"{owner}: {what} must satisfy {constraint}, got {_format_value(value[index])} "
            f"at {where} {index} ({len(bad)} of {ok.size} invalid)")


class Distribution:
    """Base class of probability distributions (NumPyro's conventions).

    Parameters
    ----------
    batch_shape : tuple
        Shape of the independent copies this object represents.
    event_shape : tuple
        Shape of a single draw.
    validate_args : bool, optional
        Check the parameters against ``arg_constraints`` now (default: the
        module switch, see :func:`enable_validation`). Skipped when any
        parameter is traced: a traced value must not steer Python control flow.

    Attributes
    ----------
    arg_constraints : dict
        Constraint of each parameter.
    support : Constraint
        The set the values live in.
    has_rsample : bool
        Whether ``sample`` is differentiable in the parameters (reparameterised).
    has_enumerate_support : bool
        Whether ``enumerate_support`` lists the (finite) support.
    """

    arg_constraints: dict = {}
    support: Constraint = constraints.real
    has_rsample = False
    has_enumerate_support = False

    def __init__(self, batch_shape=(), event_shape=(), *, validate_args=None):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        if validate_args is None:
            validate_args = _validation_enabled and not getattr(_SUSPENDED, "active", False)
        if validate_args:
            params = self.constrained_params()
            if not any(isbox(v) for v in params.values()):
                self._check_params(params)

    # ------------------------------------------------------------ shapes
    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    @property
    def event_dim(self) -> int:
        return len(self._event_shape)

    @property
    def is_discrete(self) -> bool:
        return self.support.is_discrete

    def shape(self, sample_shape=()) -> tuple:
        """``sample_shape + batch_shape + event_shape``."""
        return tuple(sample_shape) + self._batch_shape + self._event_shape

    # -------------------------------------------------------- validation
    def constrained_params(self) -> dict:
        """The parameters that ``validate_args`` checks, by name: those given
        to the constructor (a derived one, such as logits computed from
        probs, is not checked), each with a constraint in ``arg_constraints``."""
        given = vars(self)
        return {name: given[name] for name in self.arg_constraints if name in given}

    def validate_args(self) -> None:
        """Raise ValueError naming the first parameter outside its constraint."""
        self._check_params(self.constrained_params())

    def _check_params(self, params: dict) -> None:
        constraints_ = self.arg_constraints
        for name, value in params.items():
            constraint = constraints_[name]
            ok = onp.asarray(getval(constraint.check(getval(value))))
            if not ok.all():
                raise ValueError(_violation_message(type(self).__name__, f"parameter '{name}'",
                                                   constraint, value, ok))

    def check_support(self, value) -> None:
        """Raise ValueError if ``value`` lies outside ``support`` (naming the
        first bad position) or contains NaN."""
        value = getval(value)
        ok = onp.asarray(getval(self.support.check(value)))
        if not ok.all():
            raise ValueError(_violation_message(type(self).__name__, "value", self.support, value, ok))

    # -------------------------------------------------------- the density
    def sample(self, rng: onp.random.Generator, sample_shape=()):
        """Draw ``sample_shape`` independent samples using the numpy Generator ``rng``."""
        raise NotImplementedError(f"{type(self).__name__} must define sample")

    def log_prob(self, value):
        """Log density (or mass) of ``value``, summed over event dimensions."""
        raise NotImplementedError(f"{type(self).__name__} must define log_prob")

    @property
    def mean(self):
        """Mean, of shape ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def variance(self):
        """Variance of each coordinate, of shape ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form variance")

    def cdf(self, value):
        """Cumulative distribution function."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form cdf")

    def icdf(self, q):
        """Inverse cumulative distribution function (quantile function)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form icdf")

    def entropy(self):
        """Differential (or Shannon) entropy, one value per batch element."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy")

    def enumerate_support(self, expand: bool = True):
        """All values of a finite discrete support, stacked along a new leading axis."""
        raise NotImplementedError(f"{type(self).__name__} has no finite support to enumerate")

    # ----------------------------------------------------- restructuring
    def expand(self, batch_shape) -> "Distribution":
        """Broadcast to a larger ``batch_shape`` (``self`` if it is unchanged)."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self._batch_shape:
            return self
        return ExpandedDistribution(self, batch_shape)

    def to_event(self, reinterpreted_batch_ndims: int | None = None) -> "Distribution":
        """Treat the rightmost ``reinterpreted_batch_ndims`` batch dimensions
        (default: all) as event dimensions."""
        if reinterpreted_batch_ndims is None:
            reinterpreted_batch_ndims = len(self._batch_shape)
        if reinterpreted_batch_ndims == 0:
            return self
        return Independent(self, reinterpreted_batch_ndims)

    def mask(self, mask) -> "Distribution":
        """Zero the log density where the boolean ``mask`` is False."""
        if mask is True:
            return self
        return MaskedDistribution(self, mask)

    def __repr__(self):
        return f"{type(self).__name__}(batch_shape={self._batch_shape}, event_shape={self._event_shape})"


class Independent(Distribution):
    """Reinterpret the rightmost ``reinterpreted_batch_ndims`` batch dimensions
    of ``base_dist`` as event dimensions (``log_prob`` sums over them)."""

    arg_constraints = {}

    def __init__(self, base_dist: Distribution, reinterpreted_batch_ndims: int, *, validate_args=None):
        if isinstance(base_dist, Independent):
            reinterpreted_batch_ndims += base_dist.reinterpreted_batch_ndims
            base_dist = base_dist.base_dist
        if not 0 <= reinterpreted_batch_ndims <= len(base_dist.batch_shape):
            raise ValueError(f"cannot reinterpret {reinterpreted_batch_ndims} batch dimensions of a "
                             f"distribution with batch shape {base_dist.batch_shape}")
        self.base_dist = base_dist
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        shape = base_dist.batch_shape + base_dist.event_shape
        cut = len(base_dist.batch_shape) - reinterpreted_batch_ndims
        super().__init__(shape[:cut], shape[cut:], validate_args=validate_args)

    @property
    def support(self):
        return constraints.independent(self.base_dist.support, self.reinterpreted_batch_ndims)

    def validate_args(self) -> None:
        self.base_dist.validate_args()

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    def sample(self, rng, sample_shape=()):
        return self.base_dist.sample(rng, sample_shape)

    def log_prob(self, value):
        return sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance

    def entropy(self):
        return sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)


class ExpandedDistribution(Distribution):
    """``base_dist`` broadcast to a larger batch shape, with independent draws
    along every new or expanded dimension."""

    arg_constraints = {}

    def __init__(self, base_dist: Distribution, batch_shape, *, validate_args=None):
        if isinstance(base_dist, ExpandedDistribution):
            base_dist = base_dist.base_dist
        batch_shape = tuple(batch_shape)
        try:
            ok = onp.broadcast_shapes(base_dist.batch_shape, batch_shape) == batch_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"cannot expand a {type(base_dist).__name__} with batch shape "
                             f"{base_dist.batch_shape} to batch shape {batch_shape}")
        self.base_dist = base_dist
        super().__init__(batch_shape, base_dist.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.base_dist.support

    def validate_args(self) -> None:
        self.base_dist.validate_args()

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def has_enumerate_support(self):
        return self.base_dist.has_enumerate_support

    def sample(self, rng, sample_shape=()):
        sample_shape = tuple(sample_shape)
        base_batch = self.base_dist.batch_shape
        n_new = len(self.batch_shape) - len(base_batch)
        leading = self.batch_shape[:n_new]
        # Batch axes of size 1 in the base that grow: draw them as extra sample
        # axes, then move each into its place.
        grown = [i for i, n in enumerate(base_batch) if n == 1 and self.batch_shape[n_new + i] != 1]
        kept = [i for i in range(len(base_batch)) if i not in grown]
        grown_sizes = tuple(self.batch_shape[n_new + i] for i in grown)
        x = self.base_dist.sample(rng, sample_shape + leading + grown_sizes)
        if not grown:
            return x
        head = len(sample_shape) + len(leading)
        x = np.reshape(x, sample_shape + leading + grown_sizes
                       + tuple(base_batch[i] for i in kept) + self.event_shape)
        order = list(range(head))
        for i in range(len(base_batch)):
            order.append(head + grown.index(i) if i in grown else head + len(grown) + kept.index(i))
        order.extend(range(head + len(base_batch), head + len(base_batch) + len(self.event_shape)))
        return np.transpose(x, order)

    def _broadcast(self, x, event: bool = True):
        shape = self.batch_shape + (self.event_shape if event else ())
        shape = onp.broadcast_shapes(onp.shape(getval(x)), shape)
        return x if onp.shape(getval(x)) == shape else np.broadcast_to(x, shape)

    def log_prob(self, value):
        return self._broadcast(self.base_dist.log_prob(value), event=False)

    @property
    def mean(self):
        return self._broadcast(self.base_dist.mean)

    @property
    def variance(self):
        return self._broadcast(self.base_dist.variance)

    def cdf(self, value):
        return self._broadcast(self.base_dist.cdf(value), event=False)

    def icdf(self, q):
        return self._broadcast(self.base_dist.icdf(q), event=False)

    def entropy(self):
        return self._broadcast(self.base_dist.entropy(), event=False)

    def enumerate_support(self, expand: bool = True):
        values = self.base_dist.enumerate_support(expand=False)
        extra = len(self.batch_shape) - len(self.base_dist.batch_shape)
        values = np.reshape(values, values.shape[:1] + (1,) * extra + values.shape[1:])
        if expand:
            values = np.broadcast_to(values, values.shape[:1] + self.batch_shape + self.event_shape)
        return values


class MaskedDistribution(Distribution):
    """``base_dist`` whose log density is zero where ``mask`` is False.

    Parameters
    ----------
    base_dist : Distribution
    mask : bool or array of bool
        Broadcast against the batch shape.
    """

    arg_constraints = {}

    def __init__(self, base_dist: Distribution, mask, *, validate_args=None):
        if not isbox(mask) and not isinstance(mask, bool):
            mask = onp.asarray(mask)
            if mask.dtype != bool:
                raise TypeError(f"mask must be boolean, got dtype {mask.dtype}")
        self.base_dist = base_dist
        self._mask = mask
        batch_shape = onp.broadcast_shapes(base_dist.batch_shape, onp.shape(getval(mask)))
        super().__init__(batch_shape, base_dist.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.base_dist.support

    def validate_args(self) -> None:
        self.base_dist.validate_args()

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    def sample(self, rng, sample_shape=()):
        return self.base_dist.expand(self.batch_shape).sample(rng, sample_shape)

    def log_prob(self, value):
        if self._mask is False:
            shape = onp.shape(getval(value))
            return np.zeros(onp.broadcast_shapes(shape[:len(shape) - self.event_dim], self.batch_shape))
        log_prob = self.base_dist.log_prob(value)
        return np.where(self._mask, log_prob, 0.0)

    @property
    def mean(self):
        return np.broadcast_to(self.base_dist.mean, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return np.broadcast_to(self.base_dist.variance, self.batch_shape + self.event_shape)


class TransformedDistribution(Distribution):
    """The distribution of ``y = transforms[-1](... transforms[0](x))`` for
    ``x ~ base_distribution``; ``log_prob`` uses the change of variables.

    Parameters
    ----------
    base_distribution : Distribution
    transforms : Transform or list of Transform
    """

    arg_constraints = {}

    def __init__(self, base_distribution: Distribution, transforms, *, validate_args=None):
        if isinstance(transforms, Transform):
            transforms = [transforms]
        parts = []
        for t in transforms:
            parts.extend(t.parts if isinstance(t, ComposeTransform) else [t])
        transform = ComposeTransform(parts)
        domain_event_dim = transform.domain.event_dim
        if domain_event_dim > base_distribution.event_dim:
            base_distribution = base_distribution.to_event(domain_event_dim - base_distribution.event_dim)
        self.base_dist = base_distribution
        self.transforms = parts
        self._transform = transform
        # Base event dimensions beyond what the transform consumes stay event dimensions.
        self._extra_event_dim = base_distribution.event_dim - domain_event_dim
        event_dim = transform.codomain.event_dim + self._extra_event_dim
        shape = transform.forward_shape(base_distribution.batch_shape + base_distribution.event_shape)
        cut = len(shape) - event_dim
        super().__init__(shape[:cut], shape[cut:], validate_args=validate_args)

    @property
    def support(self):
        codomain = self._transform.codomain
        if self._extra_event_dim:
            return constraints.independent(codomain, self._extra_event_dim)
        return codomain

    def validate_args(self) -> None:
        self.base_dist.validate_args()

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    def sample(self, rng, sample_shape=()):
        return self._transform(self.base_dist.sample(rng, sample_shape))

    def log_prob(self, value):
        x = self._transform.inv(value)
        log_det = self._transform.log_abs_det_jacobian(x, value)
        return self.base_dist.log_prob(x) - sum_rightmost(log_det, self._extra_event_dim)


class Delta(Distribution):
    """A point mass at ``v``, carrying an optional log density ``log_density``.

    Parameters
    ----------
    v : array_like
        The point.
    log_density : array_like
        Log density reported at ``v`` (default 0).
    event_dim : int
        How many rightmost dimensions of ``v`` form one event.
    """

    arg_constraints = {"log_density": constraints.real}
    has_rsample = True

    def __init__(self, v=0.0, log_density=0.0, event_dim: int = 0, *, validate_args=None):
        v = as_param(v)
        shape = onp.shape(getval(v))
        if event_dim > len(shape):
            raise ValueError(f"event_dim {event_dim} exceeds the number of dimensions of v {shape}")
        batch_shape, event_shape = shape[:len(shape) - event_dim], shape[len(shape) - event_dim:]
        self.v = v
        self.log_density = log_density
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.independent(constraints.real, self.event_dim) if self.event_dim else constraints.real

    def sample(self, rng, sample_shape=()):
        return np.broadcast_to(self.v, self.shape(sample_shape))

    def log_prob(self, value):
        same = np.equal(value, self.v)
        if self.event_dim:
            same = np.all(same, axis=tuple(range(-self.event_dim, 0)))
        return np.where(same, self.log_density, -onp.inf)

    @property
    def mean(self):
        return self.v

    @property
    def variance(self):
        return np.zeros(self.batch_shape + self.event_shape)

    def entropy(self):
        return np.zeros(self.batch_shape)


class Unit(Distribution):
    """The trivial distribution on empty arrays whose log density is ``log_factor``.

    ``factor(name, log_factor)`` observes an empty value from it, which adds
    ``log_factor`` to the model's log density.
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, log_factor, *, validate_args=None):
        self.log_factor = log_factor
        super().__init__(onp.shape(getval(log_factor)), (0,), validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        return np.zeros(self.shape(sample_shape))

    def log_prob(self, value):
        shape = onp.shape(getval(value))[:-1]
        shape = onp.broadcast_shapes(shape, self.batch_shape)
        lf = self.log_factor
        return lf if onp.shape(getval(lf)) == shape else np.broadcast_to(lf, shape)


class ImproperUniform(Distribution):
    """A flat improper "distribution" on ``support``: ``log_prob`` is 0.

    Useful for flat priors, e.g. ``ImproperUniform(constraints.real_vector, (), (2,))``.
    It cannot be sampled; inference initialises such sites in unconstrained
    space instead.

    Parameters
    ----------
    support : Constraint
    batch_shape, event_shape : tuple
    """

    arg_constraints = {}

    def __init__(self, support: Constraint, batch_shape=(), event_shape=(), *, validate_args=None):
        event_shape = tuple(event_shape)
        if support.event_dim > len(event_shape):
            raise ValueError(f"support {support} has event_dim {support.event_dim}, but event_shape "
                             f"{event_shape} has only {len(event_shape)} dimensions")
        if support.event_dim < len(event_shape):
            support = constraints.independent(support, len(event_shape) - support.event_dim)
        self.support = support
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def sample(self, rng, sample_shape=()):
        raise NotImplementedError(
            "ImproperUniform has no normalised density to sample from. Give the site a value: "
            "initialise it with an init strategy that works in unconstrained space (e.g. "
            "init_to_uniform or init_to_value), or observe it")

    def log_prob(self, value):
        shape = onp.shape(getval(value))
        batch = shape[:len(shape) - self.event_dim]
        return np.zeros(onp.broadcast_shapes(batch, self.batch_shape))
