"""From a model to a density over one flat unconstrained vector.

``potential(model, data)`` runs the model once on concrete values to learn
its latent sites and check the input (the *check pass*), then builds
``U(q)``, the negative log joint density over ``q``: the latent sites,
each mapped to the real line by ``biject_to(support)`` and flattened into one
float64 vector. Kernels see only ``U`` and its gradient.

``U(q)`` runs the model under ``substitute`` (values from ``q``) and
``trace`` and sums log densities with ``probad.ad.numpy``; it makes no Python
decision on a traced value, so the compiler can record it once and replay it.
Input checks never run inside it.
"""
from __future__ import annotations

import math
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as onp

import probad.ad.numpy as np
from ..ad import hessian, value_and_grad
from ..ad.compiler import compile as compile_function
from ..ad.extend import isbox
from ..ad.misuse import TracedValueError, explain, warn_at_user_code
from ..ad.scipy.integrate import ODEintError
from ..distributions import constraints
from ..distributions.distribution import (ExpandedDistribution, Independent, MaskedDistribution,
                                          validation_suspended)
from ..distributions.transforms import biject_to, sum_rightmost
from ..handlers import seed as seeded
from ..handlers import substitute, trace
from ..primitives import SiteError, as_model_argument
from .enumerate import (Enumerator, carries_enumeration, contract, first_enum_dim,
                        is_enumerated, pointwise_log_likelihood)
from .initialization import init_to_uniform, init_to_value

__all__ = ["potential", "Potential", "Site", "log_density", "MissingDataWarning",
           "NoFiniteStartError", "scaled_log_prob", "dim_names"]

# Tries of the init strategy before giving up on a finite starting point.
MAX_INIT_ATTEMPTS = 100

_FIXED_STRUCTURE = ("a model's set of latent sites must not depend on the values of its latent "
                    "sites (a site sampled only in one branch of an `if`); sample it in every "
                    "run, or marginalise the choice with pb.factor")


def _is_factor(msg) -> bool:
    return bool(msg["infer"].get("is_factor"))


def _scaled_and_masked(msg, term):
    """A site's log-density ``term`` times the site's ``scale``, zero where its mask is False."""
    if msg["scale"] is not None:
        term = term * msg["scale"]
    if msg["mask"] is not None:
        term = np.where(msg["mask"], term, 0.0)
    return term


def scaled_log_prob(msg):
    """The log density of one sample site, scaled and masked, not summed.

    Parameters
    ----------
    msg : dict
        A ``sample`` site of a trace.

    Returns
    -------
    array
        ``msg["fn"].log_prob(msg["value"])`` times the site's ``scale``, zero
        where its ``mask`` is False; one entry per batch element.
    """
    return _scaled_and_masked(msg, msg["fn"].log_prob(msg["value"]))


def _log_joint(model_trace):
    total = 0.0
    for msg in model_trace.values():
        if msg["type"] == "sample":
            total = total + np.sum(scaled_log_prob(msg))
    return total


def log_density(model: Callable, data: Mapping | None, params: Mapping):
    """The log joint density of ``model`` at constrained latent values.

    Parameters
    ----------
    model : callable
        The model; ``data`` is passed to it as keyword arguments.
    data : mapping or None
        Model arguments, observed values among them.
    params : mapping of site name -> value
        A value for every latent sample site, in constrained space.

    Returns
    -------
    float
        ``sum(scale * log_prob)`` over every sample site (masked entries
        left out), with no Jacobian: the density with respect to the
        constrained values. If ``params`` are traced (inside
        ``probad.ad.grad``), the traced value, so it can be differentiated.
    """
    model_trace = trace(substitute(model, data=dict(params))).get_trace(**model_arguments(data))
    missing = [name for name, msg in model_trace.items()
               if msg["type"] == "sample" and not msg["is_observed"] and name not in params]
    if missing:
        raise ValueError(f"log_density needs a value for every latent site; missing: "
                         f"{', '.join(missing)}")
    total = _log_joint(model_trace)
    return total if isbox(total) else float(total)


def model_arguments(data: Mapping | None) -> dict:
    """The keyword arguments a model is called with: ``data`` with pandas and
    xarray containers as numpy arrays (the data boundary of every inference
    function)."""
    if data is not None and not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping of model argument -> value (a dict), got "
                        f"{type(data).__name__}")
    return {name: as_model_argument(value) for name, value in (data or {}).items()}


# ------------------------------------------------------------ the check pass
def _first_position(bad: onp.ndarray) -> tuple:
    return tuple(int(i) for i in onp.argwhere(bad)[0])


def _plate_names(msg) -> str:
    return ", ".join(f"'{f.name}' (size {f.size}, dim {f.dim})" for f in msg["cond_indep_stack"])


def _written(fn):
    """The distribution the user wrote, under the wrappers of plates,
    ``expand``, ``to_event`` and ``mask``."""
    while isinstance(fn, (ExpandedDistribution, Independent, MaskedDistribution)):
        fn = fn.base_dist
    return fn


def _parameter_problem(msg) -> str | None:
    """``"site 'x': <what is wrong>"`` if the site's distribution has an
    invalid parameter, else None."""
    try:
        _written(msg["fn"]).validate_args()
    except ValueError as exc:
        return f"site '{msg['name']}': {exc}"
    return None


# Constraints decided by elementwise comparisons, which a compiled tape can
# record: the ones whose violation a log density may not show (Beta(-0.5, 1)
# has a finite log density). NaN fails them too. Others are left to NaN
# (``real``) or to the failure they cause (a Cholesky factor of a matrix
# that is not positive definite).
_COMPARISONS = (constraints.greater_than, constraints.less_than, constraints.interval,
                type(constraints.nonnegative))


def _comparison(constraint):
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint if isinstance(constraint, _COMPARISONS) else None


def _invalid_parameter_penalty(model_trace, latent_names):
    """0.0 if every parameter of the trace's distributions lies in its
    constraint, else NaN: the energy's term that makes a proposal with an
    invalid parameter a rejected one, on every path (eager, compiled, native).

    Traced parameters give a traced term. A latent value used as it is where
    its support is the parameter's constraint (``Normal(mu, tau)`` with
    ``tau`` a positive site) is not checked: its transform keeps it valid,
    and the tape of such a model stays as it was. Concrete parameters (data,
    or every parameter when nothing is traced) are checked here and add
    nothing to a tape.
    """
    supports = {id(model_trace[name]["value"]): model_trace[name]["fn"].support
                for name in latent_names}
    penalty = 0.0
    for msg in model_trace.values():
        if msg["type"] != "sample":
            continue
        fn = _written(msg["fn"])
        for name, value in fn.constrained_params().items():
            constraint = fn.arg_constraints[name]
            comparison = _comparison(constraint)
            if comparison is None or supports.get(id(value)) is constraint:
                continue
            term = np.sum(np.where(comparison.check(value), 0.0, np.nan))
            if isbox(term) or term != 0.0:
                penalty = penalty + term
    return penalty


def _check_parameters(msg):
    problem = _parameter_problem(msg)
    if problem is not None:
        raise SiteError(f"{problem}. Fix the distribution's parameters at this site (or the "
                        "priors/data they are computed from).")


def _check_dtype(name, value: onp.ndarray):
    """Data must be numbers: strings, objects, dates and complex numbers have
    no density under probad's distributions."""
    kind = value.dtype.kind
    if kind in "biuf":
        return
    if kind == "c":
        fix = ("probad's distributions are over real numbers: observe the real and imaginary "
               "parts (value.real, value.imag) as two sites")
    elif kind in "OSUV":
        fix = ("encode categories as integers (pandas: .cat.codes, or numpy.unique(..., "
               "return_inverse=True)), convert numbers stored as text with .astype(float), and "
               "turn missing values (None, pandas.NA) into NaN or drop them")
    else:
        fix = "convert it to numbers (dates: e.g. days since a reference date)"
    raise SiteError(f"observed data for site '{name}' has dtype {value.dtype} "
                    f"({'complex' if kind == 'c' else 'not numeric'}); {fix}.")


def _check_observation(msg):
    name, fn = msg["name"], msg["fn"]
    value = onp.asarray(msg["value"])
    _check_dtype(name, value)
    if value.dtype.kind in "fc" and not onp.all(onp.isfinite(value)):
        bad = ~onp.isfinite(value)
        where = f" at position {_first_position(bad)}" if value.ndim else ""
        raise SiteError(
            f"observed data for site '{name}' contains {int(bad.sum())} NaN/inf value(s), "
            f"the first{where} ({value[bad][0]}). Drop those observations or impute them "
            "before passing the data.")
    shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    try:
        joint = onp.broadcast_shapes(value.shape, shape)
    except ValueError:
        joint = None
    # Inside plates the data must fit the plates' batch shape: extra
    # dimensions would silently multiply the likelihood.
    if joint is None or (msg["cond_indep_stack"] and joint != shape):
        inside = f" inside plate(s) {_plate_names(msg)}" if msg["cond_indep_stack"] else ""
        raise SiteError(
            f"site '{name}': observed data of shape {value.shape} does not fit the "
            f"distribution's shape {shape} (batch {tuple(fn.batch_shape)}, event "
            f"{tuple(fn.event_shape)}){inside}. Reshape the data or the distribution's "
            "parameters so the plate dimensions line up.")
    # Data smaller than the distribution would be counted once per copy it is
    # broadcast to: Stan's size check. One value (a scalar, or one event)
    # stands for every copy, as a scalar does in Stan's vectorised statements.
    event_ndim = len(fn.event_shape)
    if value.ndim > event_ndim and joint != value.shape:
        copies = math.prod(joint) // max(value.size, 1)
        raise SiteError(
            f"site '{name}': observed data of shape {value.shape} is broadcast to the "
            f"distribution's shape {shape} (batch {tuple(fn.batch_shape)}, event "
            f"{tuple(fn.event_shape)}), giving {joint}: each observation would count "
            f"{copies} times in the likelihood. Give the distribution's parameters the data's "
            f"shape (a parameter of shape (n, 1) against data of shape (n,) is the usual "
            "cause), or reshape the data.")
    try:
        _written(fn).check_support(value)
    except ValueError as exc:
        raise SiteError(f"observed data for site '{name}' is outside the support of "
                        f"{type(_written(fn)).__name__}: {exc}. Fix or drop those observations, "
                        "or choose a likelihood whose support contains the data.") from None


def is_gibbs_site(msg) -> bool:
    """Whether ``msg`` is a latent discrete sample site that is not enumerated:
    ``pb.hmc`` samples such sites with Gibbs or Metropolis steps."""
    return (msg["type"] == "sample" and not msg["is_observed"] and not is_enumerated(msg)
            and msg["fn"].support.is_discrete)


def _discrete_latent_error(msg, gibbs: bool) -> SiteError:
    fn = msg["fn"]
    what = (f"site '{msg['name']}' is a latent discrete variable "
            f"({type(_written(fn)).__name__} with support {fn.support!r})")
    enumerate_it = ("Enumerate it (pb.sample(..., infer={'enumerate': 'parallel'}) or "
                    "handlers.config_enumerate(model)) so that it is summed out exactly. "
                    if fn.has_enumerate_support else "")
    if gibbs:  # the only discrete sites Gibbs steps cannot update
        return SiteError(
            f"{what} whose values are vectors (event shape {tuple(fn.event_shape)}): pb.hmc's "
            "Gibbs steps update discrete sites with scalar values only. " + enumerate_it
            + "Write it as scalar sites (a Categorical for a OneHotCategorical), or "
            "marginalise it out: sum its values' probabilities into the likelihood with "
            "pb.factor and logsumexp.")
    return SiteError(
        f"{what}; gradient-based inference needs continuous latent variables (pb.hmc alone "
        "samples discrete ones, by Gibbs steps). " + enumerate_it
        + "Marginalise it out: sum its values' probabilities into the likelihood "
        "with pb.factor and logsumexp (or observe it).")


def _checked_prototype_value(rng, gibbs: bool = False):
    """substitute_fn for the check pass: validates every sample site as it
    is reached (so errors name the first offending site) and gives latent
    sites a valid value without sampling (improper priors have no sampler).
    With ``gibbs``, a discrete latent site that is not enumerated gets a draw
    of its prior, as float64: the dtype in which Gibbs steps pass its values."""
    start = init_to_uniform()

    def value(msg):
        if msg["type"] != "sample":
            return None
        _check_parameters(msg)
        if msg["is_observed"]:
            if not _is_factor(msg):
                _check_observation(msg)
            return None
        fn = msg["fn"]
        if is_enumerated(msg):
            # The value stands in for the support the potential runs on; its
            # enumerability is checked by that run.
            return fn.sample(rng)
        if fn.support.is_discrete:
            if not gibbs or fn.event_shape:
                raise _discrete_latent_error(msg, gibbs)
            return onp.asarray(fn.sample(rng), dtype=onp.float64)
        return start(msg, rng)

    return value


def _prototype_trace(model, data, gibbs=False):
    return trace(substitute(seeded(model, rng_seed=0),
                            substitute_fn=_checked_prototype_value(onp.random.default_rng(0),
                                                                   gibbs))
                 ).get_trace(**data)


def _model_location(exc) -> str:
    """The innermost line of user code in ``exc``'s traceback."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not os.path.abspath(frame.filename).startswith(package + os.sep):
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "an unknown line"


@contextmanager
def _checked_at_sites():
    """Distributions built inside skip their constructor's check of the
    parameters, which would fail before the site is reached; the site checks
    them instead (``_parameter_problem``), so that the error can name it."""
    with validation_suspended(), onp.errstate(all="ignore"):
        yield


def _check_pass(model, data, gibbs=False):
    """Run the model once on concrete values, validating every site.

    A distribution with invalid concrete parameters refuses to be built,
    before its site is reached. The model is then run again with that
    construction-time check off, so that the site itself validates the
    parameters and the error names it. If that run cannot get there either
    (the distribution fails to build without validation, or it is not a
    site), the first error is raised with the model line it came from.
    """
    try:
        # The prototype point is arbitrary: overflow there is no error by
        # itself, and what it breaks, validation names below.
        with onp.errstate(all="ignore"):
            return _prototype_trace(model, data, gibbs)
    except SiteError:
        raise
    except IndexError as exc:
        if not gibbs:
            raise
        # Gibbs steps pass a discrete site's values as float64 (so the compiled
        # potential takes them as data); numpy refuses floats as indices.
        raise TypeError(
            f"{exc} (in the model at {_model_location(exc)}). pb.hmc samples the model's "
            "discrete latent sites that are not enumerated by Gibbs steps, which give their "
            "values as float64 arrays of whole numbers: index with z.astype(int), or "
            "enumerate the site (infer={'enumerate': 'parallel'}).") from exc
    except ValueError as first:
        try:
            with _checked_at_sites():
                _prototype_trace(model, data, gibbs)
        except SiteError as named:
            raise named from None
        except Exception:  # noqa: BLE001  (any other failure: report the first error)
            pass
        raise ValueError(f"{first} (in the model at {_model_location(first)})") from first


# ------------------------------------------------------------ the potential
@dataclass(frozen=True)
class Site:
    """A latent site's place in the flat vector ``q``.

    Attributes
    ----------
    name : str
    shape : tuple
        Shape of the constrained value.
    unconstrained_shape : tuple
        Shape of its unconstrained image (smaller for a simplex, ...).
    size : int
        Number of entries of ``q`` it takes.
    offset : int
        Where they start.
    transform : Transform or None
        ``biject_to(support)``: unconstrained -> constrained, as built at
        the check pass (a support that depends on other sites gets its
        transform rebuilt at every evaluation). None for a discrete site
        sampled by Gibbs steps (in :attr:`Potential.discrete`), whose
        ``offset`` is into :attr:`Potential.discrete_values`.
    dims : tuple of str
        ArviZ dim names: the plate's name for plate dimensions, else
        ``f"{name}_dim_{i}"``.
    """

    name: str
    shape: tuple
    unconstrained_shape: tuple
    size: int
    offset: int
    transform: Any
    dims: tuple


def dim_names(name, shape, frames, event_ndim) -> tuple:
    """Names of the dimensions of a site's value: the plate's name where a
    plate of that size sits on the axis, else ``"{name}_dim_{axis}"``."""
    by_dim = {f.dim: f for f in frames}
    batch_ndim = len(shape) - event_ndim
    dims = []
    for axis, n in enumerate(shape):
        frame = by_dim.get(axis - batch_ndim) if axis < batch_ndim else None
        dims.append(frame.name if frame is not None and frame.size == n else f"{name}_dim_{axis}")
    return tuple(dims)


def _msg_dims(msg) -> tuple:
    value = msg["value"]
    event_ndim = len(msg["fn"].event_shape) if msg["type"] == "sample" else 0
    return dim_names(msg["name"], onp.shape(value), msg["cond_indep_stack"], event_ndim)


def _finite(x) -> bool:
    return bool(onp.all(onp.isfinite(x)))


class MissingDataWarning(UserWarning):
    """A site written as data (``obs=y``) got no data (``y`` is None), so
    inference treats it as a latent variable."""


def _warn_of_missing_data(prototype):
    """Warn once per model about sites written as data that got none.

    ``pb.sample("y", d, obs=y)`` with ``y`` None is latent, by design (the
    same model draws predictions), but in ``pb.hmc`` it is most often data
    left out of ``data=`` by mistake, and the run would sample it silently.
    Sites written without ``obs`` are latent by intent and never warned of.
    """
    names = [name for name, msg in prototype.items()
             if msg["type"] == "sample" and not msg["is_observed"]
             and msg["infer"].get("obs_is_none")]
    if names:
        quoted = ", ".join(f"'{name}'" for name in names)
        warn_at_user_code(
            f"site(s) {quoted} are written as data (obs=...) but got None, so inference treats "
            "them as latent variables and samples them. If they are data, pass their values in "
            "data=...; to draw them from the prior, use pb.prior_predictive.",
            MissingDataWarning)


def _tape_position(x):
    """``(trace id, position)`` of a value on a reverse-mode tape, else None."""
    if isbox(x) and hasattr(x._trace, "tape"):
        return id(x._trace), x._node
    return None


def _sites_behind(box, reached) -> list[str]:
    """The latent sites, among ``reached``, whose values ``box`` was computed
    from: a walk back along its reverse-mode tape."""
    trace = box._trace
    tape = getattr(trace, "tape", None)
    if tape is None:
        return []
    at_position = {pos[1]: name for name, pos in reached
                   if pos is not None and pos[0] == id(trace)}
    live, found = {box._node}, []
    for i in range(box._node, 0, -1):
        if i in live:
            if i in at_position:
                found.append(at_position[i])
            parents = tape[i][5]
            live.update((parents,) if type(parents) is int else parents)
    return found[::-1]


def _naming_sites(error: TracedValueError, reached) -> TracedValueError:
    """``error`` again, prefixed with the latent sites the value came from
    (or, if unknown, those the model had reached)."""
    names = _sites_behind(error.box, reached) if error.box is not None else []
    if names:
        where = f"a value computed from latent site(s) {', '.join(map(repr, names))}"
    elif reached:
        where = f"in the model, with latent site(s) {', '.join(repr(n) for n, _ in reached)} in scope"
    else:
        where = "in the model"
    return TracedValueError(f"{where}: {error}", error.box, error.location)


# Failures that mean the density cannot be evaluated at a point: as in Stan,
# the point gets infinite energy (a rejected proposal), not an error.
_UNDEFINED_AT = (onp.linalg.LinAlgError, ODEintError)


def _undefined_what(error: Exception) -> str:
    return "ODE solve" if isinstance(error, ODEintError) else "linear algebra"


class _FailedStart(Exception):
    """A try of ``initial_point`` that cannot go on; the message says why."""


class NoFiniteStartError(ValueError):
    """``initial_point`` found no point where ``U`` and its gradient are finite.

    Unlike the model's own errors, which every start meets alike, this one
    depends on the points tried: another seed may succeed.
    """


class Potential:
    """The potential energy ``U(q) = -log p(x(q), data) - log|det dx/dq|``.

    Built by :func:`potential`; see there. Attributes: ``model``, ``data``,
    ``dim`` (length of ``q``), ``sites`` (name -> :class:`Site`, in model
    order), ``observed`` (observed site -> data), ``constant_data``
    (array-valued model arguments that are not observed sites), ``dims``
    (site -> ArviZ dim names, for latent, deterministic and observed sites),
    ``enumerated`` (the discrete sites summed out, not in ``q``),
    ``compiled`` (whether its functions replay recorded tapes),
    ``discrete`` (with ``gibbs=True``: name -> :class:`Site` of the discrete
    latent sites that are not enumerated, sampled by Gibbs steps, not in
    ``q`` either) and ``discrete_values``.

    ``discrete_values`` is a flat float64 vector of those sites' values:
    ``U`` and everything else evaluated at a ``q`` take them from there
    (an argument of the compiled functions, so a new value replays the same
    tape). :meth:`initial_point` sets it to the start's values and the Gibbs
    steps (:mod:`probad.infer.gibbs`) to each new draw.

    ``rejections`` counts the evaluations that returned +inf because the
    density could not be evaluated (see :meth:`value_and_grad`), by kind:
    ``"invalid parameter or NaN"``, ``"linear algebra failed"``, ``"ODE
    solve failed"``, those of the compiled NUTS on :attr:`native` included;
    ``rejection_examples`` holds, for each kind, what went wrong the first
    time it was met in Python (for an invalid parameter, the site, the
    parameter and its value; for NaN, the sites whose log density or
    Jacobian was not finite). Both start empty and belong to this copy of
    the potential (a worker process counts in its own).
    """

    def __init__(self, model: Callable, data: Mapping | None = None, *, compile: bool = True,
                 backend: str = "auto", gibbs: bool = False):
        self.model = model
        self._rejections: dict[str, int] = {}
        self.rejection_examples: dict[str, str] = {}
        self.backend = backend
        self.compiled = compile
        self.data = model_arguments(data)
        prototype = _check_pass(model, self.data, gibbs)
        _warn_of_missing_data(prototype)
        self.sites: dict[str, Site] = {}
        self.discrete: dict[str, Site] = {}
        self.observed: dict[str, onp.ndarray] = {}
        self.dims: dict[str, tuple] = {}
        # U must be a pure function of q, so a subsampling plate keeps the
        # subsample drawn in the check pass instead of drawing at every call.
        self._subsamples = {name: msg["value"] for name, msg in prototype.items()
                            if msg["type"] == "plate" and len(msg["value"]) < msg["args"][0]}
        self._enum_dim = None  # the first enumeration dim, if any site is enumerated
        self._model = model
        self.enumerated = [name for name, msg in prototype.items() if is_enumerated(msg)]
        if self.enumerated:
            self._enum_dim = first_enum_dim(prototype)
            self._model = Enumerator(model, first_dim=self._enum_dim)
        offset = discrete_offset = 0
        for name, msg in prototype.items():
            if is_enumerated(msg):
                continue
            if msg["type"] == "deterministic":
                self.dims[name] = _msg_dims(msg)
            if msg["type"] != "sample" or _is_factor(msg):
                continue
            self.dims[name] = _msg_dims(msg)
            if msg["is_observed"]:
                self.observed[name] = onp.asarray(msg["value"])
                continue
            if is_gibbs_site(msg):
                shape = onp.shape(msg["value"])
                self.discrete[name] = Site(name, shape, shape, math.prod(shape), discrete_offset,
                                           None, self.dims[name])
                discrete_offset += math.prod(shape)
                continue
            transform = biject_to(msg["fn"].support)
            shape = onp.shape(msg["value"])
            unconstrained_shape = tuple(transform.inverse_shape(shape))
            size = math.prod(unconstrained_shape)
            self.sites[name] = Site(name, shape, unconstrained_shape, size, offset, transform,
                                    self.dims[name])
            offset += size
        self.dim = offset
        # None without Gibbs sites: a static argument, so those potentials'
        # tapes are what they were.
        self.discrete_values = onp.concatenate(
            [onp.ravel(prototype[name]["value"]) for name in self.discrete]) \
            if self.discrete else None
        if self._enum_dim is not None:
            self._check_enumeration(prototype)
        self.constant_data = {
            k: onp.asarray(v) for k, v in self.data.items()
            if k not in self.observed and v is not None
            and onp.asarray(v).ndim > 0 and onp.asarray(v).dtype.kind in "biuf"}
        # (shape of q, NativePotential): the native program value_and_grad
        # replayed last, to run without the compiled function's Python around it;
        # and the trace count at which none was found (looked for again only
        # once the compiled function has traced anew)
        self._native_call = None
        self._no_native_at = -1
        if compile:
            self._energy = compile_function(self._energy_fn, backend=backend)
            self._energy_and_grad = compile_function(value_and_grad(self._energy_fn),
                                                     backend=backend)
            self._outputs = compile_function(self._constrain_and_log_likelihood, backend=backend)
            # A reason to fall back (a primitive with no native lowering) is said once
            # for the potential, not once by each of its compiled functions.
            self._energy_and_grad._warned = self._outputs._warned = self._energy._warned
        else:
            self._energy = self._energy_fn
            self._energy_and_grad = value_and_grad(self._energy_fn)
            self._outputs = self._constrain_and_log_likelihood

    def _check_enumeration(self, prototype):
        """Run the enumerated model once at the prototype's values, so that
        what cannot be enumerated is reported (naming the site) before any
        sampling; drop deterministic sites whose value then depends on the
        enumerated ones (``pb.infer_discrete`` gives them per draw)."""
        values = {name: prototype[name]["value"] for name in self.sites}
        checked = Enumerator(self.model, first_dim=self._enum_dim, check=True)
        with onp.errstate(all="ignore"):
            model_trace = trace(substitute(checked, data=values)).get_trace(**self.data)
            contract(model_trace, self._enum_dim, scaled_log_prob)
        for name, msg in model_trace.items():
            if msg["type"] == "deterministic" and (
                    onp.shape(msg["value"]) != onp.shape(prototype[name]["value"])
                    or carries_enumeration(msg["value"])):
                del self.dims[name]

    def _log_joint(self, model_trace):
        if self._enum_dim is None:
            return _log_joint(model_trace)
        return contract(model_trace, self._enum_dim, scaled_log_prob)

    # -- q <-> site values
    def _run(self, q, z=None, candidates=None):
        """Run the model with the latent sites read from ``q`` (and the Gibbs
        sites from ``z``); return the trace and each site's log|det J|,
        scaled and masked as its log density.

        ``candidates``, ``(site, values, dim)``, gives the Gibbs site ``site``
        the values ``values`` (shape ``(K, size)``), laid along dimension
        ``dim`` to the left of every plate as an enumerated site's support is:
        one run then evaluates the model at ``K`` values of that site (see
        :mod:`probad.infer.gibbs`).

        Each site's transform is built from its distribution in this run, so
        a support that depends on other sites (``Uniform(0, 1 - a)``) is
        followed correctly.

        The Jacobian is a factor of the site's density, as in NumPyro (which
        samples it as a factor site where the value is made), so it takes the
        site's ``scale`` and ``mask``: under a subsampling plate the subsample
        stands for all ``size`` local variables, Jacobians included.
        """
        log_dets = {}
        reached = []  # (site name, tape position of its value): to name sites in errors

        def latent_value(msg):
            if msg["type"] == "plate":
                return self._subsamples.get(msg["name"])
            if msg["type"] != "sample" or msg["is_observed"] or is_enumerated(msg):
                return None
            discrete = self.discrete.get(msg["name"])
            if discrete is not None:
                return self._discrete_value(discrete, z, candidates)
            site = self._site_of(msg)
            # A scalar site reads a numpy scalar, on which Python's arithmetic
            # (what a replay uses) is cheaper than numpy's for a 0-d array.
            u = q[site.offset] if site.unconstrained_shape == () else \
                np.reshape(q[site.offset:site.offset + site.size], site.unconstrained_shape)
            transform = biject_to(msg["fn"].support)
            x = transform(u)
            log_det = transform.log_abs_det_jacobian(u, x)
            # One term per batch element, so the site's mask can apply.
            log_dets[site.name] = sum_rightmost(log_det, np.ndim(log_det)
                                                - len(msg["fn"].batch_shape))
            # Only the position of a traced value: keeping the value itself
            # would make the compiler think it escaped.
            reached.append((site.name, _tape_position(x)))
            return x

        # Parameters are not validated here: an invalid one makes U NaN, so
        # compiled and eager evaluations agree (see ``value_and_grad``).
        try:
            with validation_suspended():
                model_trace = trace(substitute(self._model, substitute_fn=latent_value)
                                    ).get_trace(**self.data)
        except (TypeError, ValueError) as exc:
            misuse = exc if isinstance(exc, TracedValueError) else explain(exc)
            if misuse is None:
                raise
            raise _naming_sites(misuse, reached).with_traceback(exc.__traceback__) from None
        if len(log_dets) != len(self.sites):
            missing = [name for name in self.sites if name not in log_dets]
            raise ValueError(f"latent site(s) {', '.join(missing)} of the model's first run did "
                             f"not appear this time: {_FIXED_STRUCTURE}")
        # Scale and mask are read from the trace: handlers outside the
        # substitution may still have changed them.
        return model_trace, {name: np.sum(_scaled_and_masked(model_trace[name], log_det))
                             for name, log_det in log_dets.items()}

    @staticmethod
    def _discrete_value(site: Site, z, candidates):
        """A Gibbs site's value in a run: its slice of ``z``, or the candidates."""
        if candidates is not None and candidates[0] == site.name:
            _, values, dim = candidates
            k = np.shape(values)[0]
            return np.reshape(values, (k,) + (1,) * (-dim - 1 - len(site.shape)) + site.shape)
        if site.shape == ():
            return z[site.offset]
        return np.reshape(z[site.offset:site.offset + site.size], site.shape)

    def _site_of(self, msg) -> Site:
        try:
            return self.sites[msg["name"]]
        except KeyError:
            raise ValueError(f"latent site '{msg['name']}' was not in the model's first run "
                             f"(whose latent sites were {list(self.sites)}): "
                             f"{_FIXED_STRUCTURE}") from None

    def _q_from_trace(self, model_trace) -> onp.ndarray:
        parts = []
        for site in self.sites.values():
            msg = model_trace[site.name]
            value = onp.asarray(msg["value"], dtype=onp.float64)
            support = msg["fn"].support
            outside = ~onp.asarray(support.check(value), dtype=bool)
            if onp.any(outside):
                where = f" at position {_first_position(outside)}" if outside.ndim else ""
                raise ValueError(f"site '{site.name}': value outside its support {support!r}"
                                 f"{where}")
            parts.append(onp.ravel(biject_to(support).inv(value)))
        return onp.concatenate(parts) if parts else onp.zeros(0)

    def _energy_fn(self, q, jacobian: bool = True, z=None):
        """``U(q)``; without the Jacobian term when ``jacobian`` is False (the
        density of the constrained values, which ``pb.map`` maximises).
        A static flag: the compiler records one tape for each value. ``z``:
        the Gibbs sites' values (an input of the tape, like ``q``)."""
        model_trace, log_dets = self._run(q, z)
        log_joint = self._log_joint(model_trace)
        energy = -(log_joint + sum(log_dets.values())) if jacobian else -log_joint
        penalty = _invalid_parameter_penalty(model_trace, self.sites)
        # Left off where nothing is traced and all is valid: the tape is unchanged.
        return energy if not isbox(penalty) and penalty == 0.0 else energy + penalty

    def _constrain_and_log_likelihood(self, q, with_log_likelihood: bool, z=None):
        """What one draw contributes to the results, from one run of the model:
        ``(latent and deterministic site values, pointwise log-likelihoods)``,
        the latter empty unless ``with_log_likelihood``.

        A static flag rather than two functions: the compiler keys its tapes
        on it, so a run that needs no log-likelihood skips computing it.
        """
        model_trace, _ = self._run(q, z)
        values = {name: msg["value"] for name, msg in model_trace.items()
                  if name in self.sites or name in self.discrete
                  or (msg["type"] == "deterministic" and name in self.dims)}
        if not with_log_likelihood:
            return values, {}
        if self._enum_dim is not None:
            return values, pointwise_log_likelihood(model_trace, self._enum_dim, self.observed)
        loglik = {name: msg["fn"].log_prob(msg["value"])
                  for name, msg in model_trace.items() if name in self.observed}
        return values, loglik

    def _concrete_q(self, q) -> onp.ndarray:
        q = onp.asarray(q, dtype=onp.float64)
        if q.shape != (self.dim,):
            raise ValueError(f"q must have shape ({self.dim},), got {q.shape}")
        return q

    def _concrete_run(self, q):
        return self._run(self._concrete_q(q), self.discrete_values)

    def _concrete_outputs(self, q, with_log_likelihood: bool, discrete=None):
        z = self.discrete_values if discrete is None else onp.asarray(discrete, dtype=onp.float64)
        values, loglik = self._outputs(self._concrete_q(q), with_log_likelihood, z)
        # Copies: a replay hands out the same array object for an output that
        # does not depend on q (and an eager run may hand out the user's data);
        # changing the result in place must not change the next one.
        return ({name: onp.array(v) for name, v in values.items()},
                {name: onp.array(v) for name, v in loglik.items()})

    # -- the public interface
    def energy(self, q):
        """``U(q)`` as a differentiable function of ``q`` (uncompiled), for
        composing with ``probad.ad`` transformations."""
        return self._energy_fn(q, True, self.discrete_values)

    def hessian(self, q) -> onp.ndarray:
        """The exact Hessian ``d2U/dq2`` at ``q``, by probad.ad (reverse over reverse)."""
        with onp.errstate(all="ignore"):
            return onp.asarray(hessian(self.energy)(onp.asarray(q, dtype=onp.float64)))

    def __call__(self, q) -> float:
        """``U(q)``; +inf where the density cannot be evaluated (see
        :meth:`value_and_grad`)."""
        with onp.errstate(all="ignore"):
            try:
                value = float(self._energy(onp.asarray(q, dtype=onp.float64), True,
                                           self.discrete_values))
            except _UNDEFINED_AT as exc:
                return self._reject(exc, q)
        return self._reject(None, q) if value != value else value

    def energy_at(self, q, discrete) -> float:
        """``U(q)`` with the Gibbs sites at ``discrete`` instead of
        :attr:`discrete_values` (a Gibbs step's candidate); +inf where the
        density cannot be evaluated, uncounted in :attr:`rejections`."""
        with onp.errstate(all="ignore"):
            try:
                value = float(self._energy(onp.asarray(q, dtype=onp.float64), True,
                                           onp.asarray(discrete, dtype=onp.float64)))
            except _UNDEFINED_AT:
                return onp.inf
        return onp.inf if value != value else value

    def value_and_grad(self, q, jacobian: bool = True, *,
                       quiet: bool = True) -> tuple[float, onp.ndarray]:
        """``(U(q), dU/dq)``, the gradient a float64 vector; with
        ``jacobian=False``, U leaves out the log|det J| term.

        Where the density cannot be evaluated, the point gets infinite
        energy, so that a sampler rejects it instead of the chain dying (as
        in Stan), and an optimiser steps back; the gradient is zero where
        an error stopped its computation, and as computed (NaN) otherwise: a
        linear-algebra failure (a Cholesky factor of a matrix that is not
        numerically positive definite), a failed ODE solve (``odeint``'s
        :class:`~probad.ad.scipy.integrate.ODEintError`), or a NaN energy (a
        parameter made invalid: NaN, or outside its constraint where its log
        density is NaN). Compiled and eager evaluations follow this one rule
        (parameters are not validated while ``U`` is evaluated; the check
        pass validated them at the prototype point), numpy's floating-point
        warnings are silenced (``quiet=False`` leaves that to a caller that
        silences them already, such as the NUTS kernels: numpy's errstate
        costs 6% of a small model's evaluation), and each rejection is
        counted in :attr:`rejections`.
        """
        q = onp.asarray(q, dtype=onp.float64)
        native = self._native_call
        if native is not None and jacobian and q.shape == native[0] \
                and self.discrete_values is None:
            # the program the replay below would run (the same bits); None
            # for what only the replay handles (a guard, a rejection)
            out = native[1].value_and_grad(q)
            if out is not None:
                return out
            self._native_call = None
        try:
            if quiet:
                with onp.errstate(all="ignore"):
                    value, grad = self._energy_and_grad(q, jacobian, self.discrete_values)
            else:
                value, grad = self._energy_and_grad(q, jacobian, self.discrete_values)
        except _UNDEFINED_AT as exc:
            return self._reject(exc, q), onp.zeros_like(q)
        grad = onp.asarray(grad, dtype=onp.float64)
        compiled = self._energy_and_grad
        if jacobian and self._native_call is None \
                and self._no_native_at != getattr(compiled, "trace_count", None):
            self._native_call = self._native_entry(q)
            if self._native_call is None:
                self._no_native_at = getattr(compiled, "trace_count", None)
        if value != value:
            return self._reject(None, q, grad), grad
        return float(value), grad

    def _native_entry(self, q):
        """``(q.shape, NativePotential)`` of the native program that
        ``value_and_grad`` replays at ``q`` first, or None (not native, Gibbs
        sites, checking)."""
        compiled = self._energy_and_grad
        if getattr(compiled, "backend", "numpy") == "numpy" or compiled.check \
                or self.discrete_values is not None:
            return None
        from ..ad.compiler.native import NativePotential  # imports numba

        tapes = compiled.tapes.get(compiled.cache_key(q, True, None))
        native = NativePotential.of(tapes[0]) if tapes else None
        return None if native is None else (q.shape, native)

    def __getstate__(self):
        # the native entry holds machine-code addresses of this process
        return {**self.__dict__, "_native_call": None, "_no_native_at": -1}

    def _reject(self, error: Exception | None, q, grad=None) -> float:
        """Count a point where ``U`` cannot be evaluated (``error``, or NaN if
        None; ``grad`` what the gradient came out as) and return its energy, +inf."""
        if error is None:
            kind = "invalid parameter or NaN"
        else:
            kind = f"{_undefined_what(error)} failed"
        self._rejections[kind] = self._rejections.get(kind, 0) + 1
        if kind not in self.rejection_examples:
            if error is None:  # once: it takes one more run of the model
                q = onp.asarray(q, dtype=onp.float64)
                detail = self.describe_nonfinite(q, onp.zeros_like(q) if grad is None else grad)
            else:
                detail = f"{type(error).__name__}: {error}"
            self.rejection_examples[kind] = detail
        return onp.inf

    @property
    def rejections(self) -> dict[str, int]:
        """Evaluations that returned +inf, by kind (see the class docstring):
        those counted in Python plus those the native programs of
        ``value_and_grad`` counted when the compiled NUTS called them."""
        counts = dict(self._rejections)
        programs = [tape.native for tapes in getattr(self._energy_and_grad, "tapes", {}).values()
                    for tape in tapes if getattr(tape, "native", None) is not None]
        if programs:
            from ..ad.compiler.native import REJECTION_KINDS  # imports numba: native runs only

            for program in programs:
                for kind, n in zip(REJECTION_KINDS, program.status[1:1 + len(REJECTION_KINDS)]):
                    if n:
                        counts[kind] = counts.get(kind, 0) + int(n)
        return counts

    _COMPILED = ("_energy", "_energy_and_grad", "_outputs")  # the compiled functions

    def native_tapes(self) -> dict | None:
        """What this potential's functions replay natively, in a form that
        pickles (see :meth:`~probad.ad.compiler.function.Compiled.native_tapes`),
        for a copy of it in another process to :meth:`adopt`; None when it is
        not compiled."""
        if not self.compiled:
            return None
        return {name: getattr(self, name).native_tapes() for name in self._COMPILED}

    def adopt(self, native_tapes: dict | None) -> None:
        """Replay the tapes of another copy's :meth:`native_tapes` here instead
        of recording them again. The copy must be of the same model and data
        (``pb.hmc``'s worker processes build theirs from the same job)."""
        if native_tapes is None or not self.compiled:
            return
        for name in self._COMPILED:
            getattr(self, name).adopt(native_tapes[name])

    @property
    def native(self):
        """The native form of ``value_and_grad`` for compiled samplers, or None.

        A :class:`~probad.ad.compiler.native.NativePotential`: an object with ``fn`` (a numba function ``fn(q, grad_out, prog) ->
        U``) and ``prog`` (its data), for the tape that ``value_and_grad``
        replayed last (recorded now, at ``q = 0``, if none was). None when
        the potential is not compiled natively or that tape fell back to
        numpy. After ``fn`` signals a failed guard (NaN, ``guard_failed()``),
        call ``value_and_grad(q)`` (it retraces) and read this again; see
        :mod:`probad.ad.compiler.native`.
        """
        compiled = self._energy_and_grad
        if getattr(compiled, "backend", "numpy") == "numpy":
            return None
        from ..ad.compiler.native import NativePotential  # imports numba
        q = onp.zeros(self.dim)
        key = compiled.cache_key(q, True, self.discrete_values)
        if not compiled.tapes.get(key):
            self.value_and_grad(q)
        tapes = compiled.tapes.get(key)
        return NativePotential.of(tapes[0]) if tapes else None

    def constrain(self, q, discrete=None) -> dict[str, onp.ndarray]:
        """Constrained values of the latent sites and the deterministic sites
        at ``q`` (and the Gibbs sites' values ``discrete``, by default
        :attr:`discrete_values`)."""
        return self._concrete_outputs(q, False, discrete)[0]

    def unconstrain(self, values: Mapping) -> onp.ndarray:
        """The ``q`` of constrained latent values (other names are ignored)."""
        missing = [name for name in self.sites if name not in values]
        if missing:
            raise ValueError(f"unconstrain needs a value for every latent site; missing: "
                             f"{', '.join(missing)}")
        for site in self.sites.values():
            shape = onp.shape(values[site.name])
            if shape != site.shape:
                raise ValueError(f"site '{site.name}': expected a value of shape {site.shape}, "
                                 f"got {shape}")

        def latent_value(msg):
            if msg["type"] == "plate":
                return self._subsamples.get(msg["name"])
            if msg["name"] in self.discrete:
                site = self.discrete[msg["name"]]
                return values[site.name] if site.name in values else \
                    self._discrete_value(site, self.discrete_values, None)
            if msg["type"] == "sample" and not msg["is_observed"] and not is_enumerated(msg):
                return values[self._site_of(msg).name]
            return None

        return self._q_from_trace(trace(substitute(self._model, substitute_fn=latent_value)
                                        ).get_trace(**self.data))

    def log_likelihood(self, q) -> dict[str, onp.ndarray]:
        """Pointwise log-likelihood of each observed site at ``q``, unscaled
        and unmasked (what ``az.loo`` wants); factor sites are left out."""
        return self._concrete_outputs(q, True)[1]

    def constrain_and_log_likelihood(self, q, discrete=None) -> tuple[dict[str, onp.ndarray],
                                                                       dict[str, onp.ndarray]]:
        """``(constrain(q, discrete), log_likelihood(q))`` from one run of the model.

        This is what packaging a draw needs. With ``compile=True`` the run is
        recorded once and replayed, like ``U``: a draw then costs a fraction
        of an eager model run, and the results are the eager ones.
        """
        return self._concrete_outputs(q, True, discrete)

    def check_start(self, init=None, caller: str = "inference") -> None:
        """Refuse a run that cannot mean anything, before it starts.

        Parameters
        ----------
        init : dict, init strategy or None
            Starting values by site name (or ``init_to_value(values=...)``):
            each name must be a latent site of the model.
        caller : str
            The function asking, for the message (``"pb.hmc"``).

        Raises
        ------
        ValueError
            If the model has no latent sites (nothing to sample or
            optimise), or ``init`` names a site that is not latent (a typo
            would otherwise be ignored).
        """
        if not self.sites and self.discrete:
            raise ValueError(
                f"{caller}: the model's only latent sites are discrete "
                f"({', '.join(repr(n) for n in self.discrete)}), sampled by Gibbs steps between "
                "NUTS transitions, so there is no continuous site for NUTS. Enumerate them "
                "(infer={'enumerate': 'parallel'}) where their support is finite and compute "
                "the posterior with pb.infer_discrete, or give the model a continuous site.")
        if not self.sites:
            observed = ", ".join(f"'{name}'" for name in self.observed) or "none"
            summed = (f"; discrete sites summed out: {', '.join(self.enumerated)}"
                      if self.enumerated else "")
            raise ValueError(
                f"{caller}: the model has no latent sites (every sample site is observed; "
                f"observed sites: {observed}{summed}), so there is nothing to infer. Its log "
                "density at the data is pb.log_density(model, data, {}); to infer a site, "
                "leave its obs out.")
        values = init.values if isinstance(init, init_to_value) else init
        if isinstance(values, Mapping):
            unknown = [name for name in values
                       if name not in self.sites and name not in self.discrete]
            if unknown:
                raise ValueError(
                    f"{caller}: init names {', '.join(repr(n) for n in unknown)}, not a latent "
                    f"site of the model; its latent sites are "
                    f"{', '.join(repr(n) for n in [*self.sites, *self.discrete])}.")

    def initial_point(self, seed=None, strategy=None) -> onp.ndarray:
        """A starting ``q`` where ``U`` and its gradient are finite.

        The Gibbs sites (:attr:`discrete`) start at a draw of their prior
        (or the value ``init_to_value`` gives), kept in :attr:`discrete_values`.

        Parameters
        ----------
        seed : int, numpy.random.Generator or None
        strategy : init strategy, optional
            ``init_to_uniform()`` (Stan's default) when None.

        Raises
        ------
        ValueError
            As :meth:`check_start` (no latent sites, or ``strategy`` gives
            values for sites that are not latent), or (a
            :class:`NoFiniteStartError`) after ``MAX_INIT_ATTEMPTS`` tries,
            naming the sites where the last try failed: an invalid
            distribution parameter, a value outside its support (a draw that
            underflowed to the edge), a log density, Jacobian or gradient
            that was not finite.
        """
        self.check_start(strategy)
        rng = onp.random.default_rng(seed)
        strategy = init_to_uniform() if strategy is None else strategy

        def init_value(msg):
            if msg["type"] == "plate":
                return self._subsamples.get(msg["name"])
            if msg["type"] != "sample":
                return None
            # A value drawn earlier can make this site's parameters invalid
            # (a scale that underflows to 0): that is a failed try, not an error.
            problem = _parameter_problem(msg)
            if problem is not None:
                raise _FailedStart(f"invalid parameter at {problem}")
            if msg["name"] in self.discrete and not (isinstance(strategy, init_to_value)
                                                     and msg["name"] in strategy.values):
                # No unconstrained space to be uniform in: a draw of the prior.
                return onp.asarray(msg["fn"].sample(rng), dtype=onp.float64)
            return None if msg["is_observed"] or is_enumerated(msg) else strategy(msg, rng)

        for _ in range(MAX_INIT_ATTEMPTS):
            try:
                return self._try_start(init_value, rng)
            except _FailedStart as failure:
                last_failure = failure
        raise NoFiniteStartError(
            f"no finite starting point after {MAX_INIT_ATTEMPTS} tries of {strategy!r}; at the "
            f"last try: {last_failure}. Check that the data fit the likelihood and the priors' "
            "supports, or give starting values with init_to_value(values={...}).")

    def _try_start(self, init_value, rng) -> onp.ndarray:
        """One try of ``initial_point``: the ``q`` of the values ``init_value``
        gives, or ``_FailedStart`` naming the sites where it fails."""
        with _checked_at_sites():
            try:
                init_trace = trace(substitute(seeded(self._model, rng), substitute_fn=init_value)
                                   ).get_trace(**self.data)
            except _UNDEFINED_AT as exc:
                # As in sampling, where such a point gets infinite energy: a
                # matrix that is not positive definite, or an ODE solve that
                # fails, here is a failed try.
                raise _FailedStart(f"the model's {_undefined_what(exc)} failed ({exc})") from None
            try:
                q = self._q_from_trace(init_trace)
            except ValueError as exc:  # a draw on the edge of its support (underflow to 0)
                raise _FailedStart(exc) from None
            if self.discrete:
                self.discrete_values = onp.concatenate(
                    [onp.ravel(onp.asarray(init_trace[name]["value"], dtype=onp.float64))
                     for name in self.discrete])
                if not math.isfinite(self(q)):
                    # Prior draws of discrete sites rarely fit the data (a
                    # zero-inflation indicator on a positive count): one Gibbs
                    # sweep at q moves them to where the joint is finite.
                    from .gibbs import gibbs_steps
                    gibbs_steps(self)(rng, q)
            energy, grad = self.value_and_grad(q)
            if _finite(q) and math.isfinite(energy) and _finite(grad):
                return q
            raise _FailedStart(self.describe_nonfinite(q, grad))

    def describe_nonfinite(self, q, grad) -> str:
        """Which terms of ``U`` are not finite at ``q``, for error messages.

        Parameters
        ----------
        q : ndarray
            The point, shape ``(dim,)``.
        grad : ndarray
            ``dU/dq`` there, as ``value_and_grad`` gave it.

        Returns
        -------
        str
            The sites with an invalid distribution parameter at ``q`` (and
            what is wrong with it), the sites whose log density (latent,
            observed or factor) or transform Jacobian is not finite there and
            those whose slice of ``grad`` is not, e.g. ``"log density not
            finite at site(s) ridge"``; or that the model's linear algebra
            failed there.
        """
        try:
            with _checked_at_sites():  # NaN parameters give NaN densities, not errors
                model_trace, log_dets = self._concrete_run(q)
                bad_density = [name for name, msg in model_trace.items()
                               if msg["type"] == "sample" and not _finite(scaled_log_prob(msg))]
        except _UNDEFINED_AT as exc:
            return f"the model's {_undefined_what(exc)} failed ({exc})"
        problems = (_parameter_problem(msg) for msg in model_trace.values()
                    if msg["type"] == "sample")
        invalid = [problem for problem in problems if problem is not None]
        bad_jacobian = [name for name, log_det in log_dets.items() if not _finite(log_det)]
        bad_grad = [site.name for site in self.sites.values()
                    if not _finite(grad[site.offset:site.offset + site.size])]
        parts = [f"invalid parameter at {problem}" for problem in invalid]
        if bad_density:
            parts.append(f"log density not finite at site(s) {', '.join(bad_density)}")
        if bad_jacobian:
            parts.append(f"transform Jacobian not finite at site(s) {', '.join(bad_jacobian)}")
        if bad_grad:
            parts.append(f"gradient not finite for site(s) {', '.join(bad_grad)}")
        return "; ".join(parts) or "the potential was not finite"


def potential(model: Callable, data: Mapping | None = None, *, compile: bool = True,
              backend: str = "auto", gibbs: bool = False) -> Potential:
    """The potential energy of ``model`` over one flat unconstrained vector.

    ``U(q) = -(sum over sample sites of scale * log_prob, masked)
    - sum over latent sites of scale * log|det J|, masked`` where each latent
    site's constrained value is ``biject_to(support)`` of its slice of ``q``
    and its Jacobian term takes the site's scale and mask (NumPyro's rule).

    Parameters
    ----------
    model : callable
        A model calling ``pb.sample`` etc.
    data : mapping, optional
        Keyword arguments of the model. Observed sites get their values
        here; pandas and xarray containers are read as numpy arrays. A site
        whose data is None is latent; if it was written as data
        (``obs=y``), a :class:`MissingDataWarning` names it.
    compile : bool
        Record ``U``, ``(U, dU/dq)`` and the constrained values and
        log-likelihoods of a draw once with ``probad.ad.compile`` and replay
        them (fast); otherwise run the model at every call. With the
        environment variable ``PROBAD_COMPILE_CHECK=1`` every replay is also
        compared with running the model (a debug mode, see
        ``probad.ad.compile``).
    backend : {"numpy", "auto", "native"}
        What replays the recordings (see ``probad.ad.compile``): ``"numpy"``
        is the reference replay; ``"native"`` runs them in compiled code
        where every primitive has a native lowering (and falls back to numpy,
        with one warning naming the primitive, elsewhere); ``"auto"`` is
        native where a cost model predicts it faster (loops, small and
        medium arrays: 3-30x per gradient) and numpy for long vectors of
        exp/log. Results agree to rounding, so a fixed seed gives different
        draws on different backends.
    gibbs : bool
        Accept discrete latent sites that are not enumerated (``pb.hmc``
        samples them with Gibbs steps, :mod:`probad.infer.gibbs`): they are
        left out of ``q`` and listed in ``discrete``, and ``U`` is evaluated
        at their values in ``discrete_values``. Without it such a site is an
        error, as for the optimisers and variational inference.

    Notes
    -----
    ``U`` is a pure function of ``q``: a plate with ``subsample_size`` uses
    the subsample drawn (with seed 0) when the potential is built, scaled up
    to the full size, at every evaluation.

    Returns
    -------
    Potential
        With ``dim``, ``sites``, ``__call__(q)``, ``value_and_grad(q)``,
        ``constrain(q)``, ``unconstrain(values)``, ``initial_point(seed,
        strategy)``, ``log_likelihood(q)``, ``constrain_and_log_likelihood(q)``,
        ``observed``, ``constant_data``, ``dims``.

    Raises
    ------
    ValueError
        Before any evaluation, naming the site: an invalid distribution
        parameter, observed data that is NaN/inf, not numeric (strings,
        objects, complex numbers), outside the support, the wrong shape for
        its plates or smaller than the distribution (broadcasting it would
        count each observation several times), two sites with one name, or a
        latent discrete site that is not enumerated (with ``gibbs``: one
        whose values are vectors).
    """
    return Potential(model, data, compile=compile, backend=backend, gibbs=gibbs)
