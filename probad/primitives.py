"""The statements a model is written in: ``sample``, ``param``,
``deterministic``, ``factor``, ``plate`` and ``markov``.

A primitive does not decide what it means. It builds a *message* (a plain
dict) and hands it to :func:`apply_stack`, which lets every active effect
handler (``probad.handlers``) look at it, innermost first. With no handler
active the model is a forward simulator: ``sample`` draws from its
distribution. Under ``substitute`` + ``trace`` the same code becomes a log
density, under ``condition`` an observation, and so on. This is the design
of Pyro's minipyro and NumPyro.

A message has the keys::

    type              "sample", "param", "deterministic" or "plate"
    name              the site name
    fn                the distribution (sample), or what computes the default value
    args, kwargs      arguments for the default value; kwargs["rng"] is the
                      numpy Generator a sample site draws from (None: the global one)
    value             the site's value; None until a handler or the default sets it
    is_observed       True when the value is data
    scale, mask       log-density multiplier and boolean mask (None: no effect)
    cond_indep_stack  the plates the site sits in, innermost first
    infer             free-form options for inference algorithms
    stop              a handler set this to hide the message from outer handlers
"""
from __future__ import annotations

import functools
import itertools
import numbers
import threading
from collections import namedtuple
from contextlib import ExitStack, contextmanager

import numpy as onp

from .distributions import Distribution, Unit, constraints

__all__ = [
    "Messenger", "apply_stack", "sample", "param", "deterministic", "factor",
    "plate", "plate_stack", "markov", "CondIndepStackFrame", "set_rng_seed", "SiteError",
]

# The active handlers, outermost first, in ``_LOCAL.handlers``: one list per
# thread, since chains run on a thread pool each trace their own model and a
# shared stack would let one thread's ``trace`` record another's sites. A
# plain ``threading.local`` (a subclass with ``__init__`` reads slower), so a
# thread's list is made on its first use.
_LOCAL = threading.local()


def _active_handlers() -> list:
    """The calling thread's active handlers, outermost first (the live list)."""
    try:
        return _LOCAL.handlers
    except AttributeError:
        _LOCAL.handlers = []
        return _LOCAL.handlers


# Draws of a model run without ``handlers.seed``. Kept in a one-element list so
# that ``set_rng_seed`` can replace it without a ``global`` statement.
_GLOBAL_RNG = [onp.random.default_rng()]


class SiteError(ValueError):
    """A problem with a model, reported at the site (or plate) where it is."""


def set_rng_seed(seed) -> None:
    """Reseed the generator that ``sample`` sites draw from when no
    ``handlers.seed`` reaches them (a model run as a plain simulator)."""
    _GLOBAL_RNG[0] = onp.random.default_rng(seed)


class Messenger:
    """Base class of effect handlers.

    A handler is a context manager (``with h: model()``), a wrapper
    (``h(model)(*args)`` via ``Handler(model, ...)``) and a decorator
    (``@Handler(...)``). Subclasses override :meth:`process_message`, called
    on the way in (innermost handler first), and :meth:`postprocess_message`,
    called once the value is known.
    """

    def __init__(self, fn=None):
        self.fn = fn
        if fn is not None:
            functools.update_wrapper(self, fn, updated=())

    def __enter__(self):
        try:
            _LOCAL.handlers.append(self)
        except AttributeError:  # this thread's first handler
            _active_handlers().append(self)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        stack = _LOCAL.handlers  # made by __enter__ in this thread
        # After an exception, handlers entered inside this one may still be
        # on the stack (their __exit__ never ran): drop them with it.
        if exc_type is None:
            assert stack[-1] is self, "effect handlers exited out of order"
            stack.pop()
        elif self in stack:
            del stack[stack.index(self):]

    def process_message(self, msg: dict) -> None:
        """Inspect or change ``msg`` before its value is computed."""

    def postprocess_message(self, msg: dict) -> None:
        """Inspect or change ``msg`` after its value is computed."""

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            # Used as a decorator: ``@handlers.condition(data=...)``.
            if len(args) != 1 or kwargs or not callable(args[0]):
                raise TypeError(f"{type(self).__name__} has no function to run: wrap a model "
                                f"with {type(self).__name__}(model, ...) or use it as a decorator")
            self.fn = args[0]
            functools.update_wrapper(self, self.fn, updated=())
            return self
        with self:
            return self.fn(*args, **kwargs)


def apply_stack(msg: dict) -> dict:
    """Send ``msg`` through the active handlers and give it a value.

    Handlers see the message innermost first; one that sets ``msg["stop"]``
    hides it from those further out. If no handler set a value, the default
    is computed (a draw for ``sample``). Then the handlers that saw the
    message post-process it, outermost of them first.
    """
    try:
        stack = _LOCAL.handlers
    except AttributeError:  # this thread has entered no handler yet
        stack = _active_handlers()
    visited = 0
    for handler in reversed(stack):
        visited += 1
        handler.process_message(msg)
        if msg["stop"]:
            break
    if msg["value"] is None:
        if msg["type"] == "sample":
            rng = msg["kwargs"]["rng"]
            msg["value"] = msg["fn"].sample(_GLOBAL_RNG[0] if rng is None else rng)
        else:
            msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
    for handler in stack[len(stack) - visited:]:
        handler.postprocess_message(msg)
    return msg


def _message(type_, name, fn, value, *, args=(), kwargs=None, is_observed=False, infer=None):
    if not isinstance(name, str):
        raise TypeError(f"a site name must be a string, got {name!r}")
    return {
        "type": type_, "name": name, "fn": fn, "args": args,
        "kwargs": {} if kwargs is None else kwargs, "value": value,
        "is_observed": is_observed, "scale": None, "mask": None,
        "cond_indep_stack": [], "infer": {} if infer is None else dict(infer), "stop": False,
    }


# The packages whose containers (pandas Series/DataFrame, xarray DataArray)
# are data: converted to numpy where data enters a model. Checked by the
# type's module, so neither package is imported unless the value is one.
_CONTAINER_PACKAGES = ("pandas", "xarray")
_PLAIN, _CONTAINER, _SEQUENCE = 0, 1, 2
# The kind of each type seen, so that ``sample`` pays a dict lookup per
# observed site instead of a string test.
_KIND_OF_TYPE: dict[type, int] = {}


def _data_kind(value) -> int:
    cls = type(value)
    kind = _KIND_OF_TYPE.get(cls)
    if kind is None:
        if issubclass(cls, (list, tuple)):
            kind = _SEQUENCE
        elif cls.__module__.partition(".")[0] in _CONTAINER_PACKAGES \
                and hasattr(cls, "to_numpy"):
            kind = _CONTAINER
        else:
            kind = _PLAIN
        _KIND_OF_TYPE[cls] = kind
    return kind


def as_model_argument(value):
    """``value`` as a model argument: a pandas or xarray container becomes a
    numpy array, anything else is returned as it is (a list may be a
    structure, not data).

    The model then computes with arrays, never with a labelled container whose
    arithmetic aligns on its index or falls back to Python objects.
    """
    return value.to_numpy() if _data_kind(value) == _CONTAINER else value


def _observed_value(obs):
    """``obs`` as an observation: containers as in ``as_model_argument``, and a list or
    tuple as the array numpy makes of it (PyMC's rule for observed values)."""
    kind = _data_kind(obs)
    if kind == _PLAIN:
        return obs
    return obs.to_numpy() if kind == _CONTAINER else onp.asarray(obs)


class _Omitted:
    """The default of ``sample``'s ``obs``: it tells ``obs=y`` with ``y``
    None (a site written as data that got none) from no ``obs`` at all (a
    latent site). Shown as None, which is what it means."""

    def __repr__(self):
        return "None"


_OMITTED = _Omitted()


def sample(name: str, fn, obs=_OMITTED, infer: dict | None = None):
    """A random variable named ``name`` with distribution ``fn``.

    Parameters
    ----------
    name : str
        Unique site name (inference output uses it).
    fn : Distribution
        The site's distribution; plates broadcast it to their batch shape.
    obs : array_like, optional
        Observed value. The site is then data and ``sample`` returns ``obs``
        (a list, pandas or xarray container as a numpy array). ``obs=None``
        leaves the site latent; inference then warns once that a site
        written as data has none (see ``probad.infer.potential``).
    infer : dict, optional
        Options for inference algorithms, carried on the message.

    Returns
    -------
    The observed value, the value a handler chose, or a draw from ``fn``.

    Raises
    ------
    TypeError
        If ``fn`` is not a distribution.
    """
    if not isinstance(fn, Distribution):
        raise TypeError(f"site '{name}': pb.sample needs a distribution as its second argument, "
                        f"got {type(fn).__name__} {fn!r}; write e.g. pb.sample({name!r}, "
                        "dist.Normal(0.0, 1.0)), or pb.deterministic for a computed value")
    if obs is not None and obs is not _OMITTED:
        if _KIND_OF_TYPE.get(type(obs)) != _PLAIN:  # (inline: this runs at every evaluation)
            obs = _observed_value(obs)
        msg = _message("sample", name, fn, obs, kwargs={"rng": None},
                       is_observed=True, infer=infer)
    else:
        msg = _message("sample", name, fn, None, kwargs={"rng": None}, infer=infer)
        if obs is None:
            # ``obs=y`` with y None: the site was written as data, but has none.
            msg["infer"]["obs_is_none"] = True
    return apply_stack(msg)["value"]


def _param_init(init_value, constraint=constraints.real, event_dim=None):
    return init_value


def param(name: str, init_value, constraint=constraints.real, event_dim: int | None = None):
    """A named parameter: not random, but something an optimiser may tune.

    Parameters
    ----------
    name : str
        Site name.
    init_value : array_like
        Value used unless a handler (``substitute``, ``lift``) says otherwise.
    constraint : Constraint
        Support of the parameter (optimisers work in unconstrained space).
    event_dim : int, optional
        Number of rightmost dimensions that belong together.

    Returns
    -------
    The parameter's value.
    """
    msg = _message("param", name, _param_init, None, args=(init_value,),
                   kwargs={"constraint": constraint, "event_dim": event_dim})
    return apply_stack(msg)["value"]


def deterministic(name: str, value):
    """Record ``value``, a function of other sites, under ``name``.

    Inference reports it next to the latent sites (``theta = mu + tau *
    theta_t`` in non-centred eight schools). Returns ``value``.
    """
    return apply_stack(_message("deterministic", name, None, value))["value"]


def factor(name: str, log_weight):
    """Add ``log_weight`` to the model's log density.

    Implemented as an observed site of ``dist.Unit(log_weight)``, so plates,
    ``scale`` and ``mask`` apply to it as to any observation. Use it for
    likelihoods written by hand, e.g. a mixture marginalised with
    ``logsumexp``.
    """
    unit = Unit(log_weight)
    # The observed value is Unit's only value, an empty array: nothing is drawn.
    msg = _message("sample", name, unit, unit.sample(_GLOBAL_RNG[0]), kwargs={"rng": None},
                   is_observed=True, infer={"is_factor": True})
    apply_stack(msg)


# ------------------------------------------------------------------- plates
CondIndepStackFrame = namedtuple("CondIndepStackFrame", ["name", "dim", "size"])
CondIndepStackFrame.__doc__ = """A plate a site sits in: its name, the batch
dimension it owns (negative, counted from the right of the batch shape) and
its size (the subsample size when subsampling)."""


def _subsample_indices(size, subsample_size, rng=None):
    if subsample_size is None or subsample_size == size:
        return onp.arange(size)
    return onp.sort((_GLOBAL_RNG[0] if rng is None else rng).choice(size, subsample_size,
                                                                   replace=False))


def _plate_batch_shape(frames) -> tuple:
    batch = [1] * max(-f.dim for f in frames)
    for f in frames:
        batch[f.dim] = f.size
    return tuple(batch)


def _whole_number(plate_name, what, value) -> int:
    """``value`` as an int; a fraction (``plate("n", 5.7)``) is an error, not
    rounded down to a plate of the wrong size."""
    if isinstance(value, onp.ndarray) and value.ndim == 0:  # a size read from array data
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"plate '{plate_name}': {what} must be an integer, got "
                        f"{type(value).__name__} {value!r}")
    number = int(value)
    if number != value:
        raise ValueError(f"plate '{plate_name}': {what} must be a whole number, got {value!r}; "
                         f"pass the number of copies, e.g. len(data)")
    return number


class plate(Messenger):
    """Conditionally independent copies: ``with plate("school", J): ...``.

    Sample sites inside are broadcast (``fn.expand``) so that the plate owns
    batch dimension ``dim`` of size ``size`` (or ``subsample_size``).
    Dimensions count from the right; by default a plate takes the
    rightmost dimension not used by the plates around it, so nested plates
    stack leftwards. Under subsampling, log densities of the sites inside are
    scaled by ``size / subsample_size`` so they estimate the full-data sum.

    Parameters
    ----------
    name : str
        Plate name; also the ArviZ dim name of the sites inside.
    size : int
        Number of independent copies.
    dim : int, optional
        Negative batch dimension to use.
    subsample_size : int, optional
        Take a random subset of this many indices (drawn without replacement
        from the ``seed`` handler's generator). Keyword-only: NumPyro takes
        it third, where probad's contract puts ``dim``.

    Entering the plate returns the (subsample) indices, an int array.
    """

    def __init__(self, name: str, size: int, dim: int | None = None, *,
                 subsample_size: int | None = None):
        size = _whole_number(name, "size", size)
        if size < 1:
            raise ValueError(f"plate '{name}': size must be a positive integer, got {size}")
        if subsample_size is not None:
            subsample_size = _whole_number(name, "subsample_size", subsample_size)
        if dim is not None and dim >= 0:
            raise ValueError(f"plate '{name}': dim counts from the right and must be negative, "
                             f"got {dim} (to subsample, pass plate(name, size, subsample_size=n))")
        if subsample_size is not None and not 1 <= subsample_size <= size:
            raise ValueError(f"plate '{name}': subsample_size must be in [1, {size}], "
                             f"got {subsample_size}")
        self.name = name
        self.size = size
        # The plate is itself a message, so that seed can supply the
        # subsample's randomness and trace/replay/substitute can record or fix it.
        value = None if subsample_size not in (None, size) else onp.arange(size)
        msg = _message("plate", name, _subsample_indices, value, args=(size, subsample_size),
                       kwargs={"rng": None})
        apply_stack(msg)
        self.indices = onp.asarray(msg["value"])
        self.subsample_size = len(self.indices)
        used = {f.dim: f.name for f in msg["cond_indep_stack"]}
        if dim is None:
            dim = -1
            while dim in used:
                dim -= 1
        elif dim in used:
            raise SiteError(f"plate '{name}' asks for dim {dim}, which the enclosing plate "
                            f"'{used[dim]}' already uses; choose another dim or leave it None")
        self.dim = dim
        super().__init__()

    def __enter__(self):
        super().__enter__()
        return self.indices

    def process_message(self, msg):
        if msg["type"] not in ("sample", "param", "deterministic", "plate"):
            return
        frame = CondIndepStackFrame(self.name, self.dim, self.subsample_size)
        msg["cond_indep_stack"].append(frame)
        if msg["type"] != "sample":
            return
        fn = msg["fn"]
        expected = _plate_batch_shape(msg["cond_indep_stack"])
        batch = tuple(fn.batch_shape)
        # Dims left of this plate's that only enclosing plates own stay as
        # they are; the rest must broadcast against the plates' sizes.
        overlap = max(len(expected) - len(batch), 0)
        try:
            shape = expected[:overlap] + onp.broadcast_shapes(expected[overlap:], batch)
        except ValueError:
            raise SiteError(
                f"site '{msg['name']}': the batch shape {batch} of its "
                f"{type(fn).__name__} clashes with plate '{self.name}' (size "
                f"{self.subsample_size}, dim {self.dim}), which needs batch shape "
                f"{expected} (1 broadcasts). Give the distribution's parameters size "
                f"{self.subsample_size} or 1 along dim {self.dim}, index them with the "
                "plate's subsample indices, or move the site out of the plate."
            ) from None
        if shape != batch:
            msg["fn"] = fn.expand(shape)
        if self.subsample_size < self.size:
            ratio = self.size / self.subsample_size
            msg["scale"] = ratio if msg["scale"] is None else msg["scale"] * ratio


@contextmanager
def plate_stack(prefix: str, sizes, rightmost_dim: int = -1):
    """Nested plates named ``f"{prefix}_{i}"`` owning the rightmost
    ``len(sizes)`` batch dims: ``sizes[-1]`` at ``rightmost_dim``, ``sizes[-2]``
    left of it, and so on."""
    with ExitStack() as stack:
        for i, size in enumerate(reversed(sizes)):
            stack.enter_context(plate(f"{prefix}_{i}", size, dim=rightmost_dim - i))
        yield


# ------------------------------------------------------------------- markov
# A number per markov context, unique within the process: contexts are told
# apart by it (an id() could be reused by a later loop of the same run).
_MARKOV_IDS = itertools.count()


class markov(Messenger):
    """Declare a sequential loop Markov: step ``t`` depends on steps
    ``t - history .. t`` only.

    Used as an iterator, ``for t in pb.markov(range(T)):``, each iteration
    is one step; used as a context manager, each ``with m:`` entry of the
    same object ``m`` is one step. Sample sites record their step, so that
    enumeration (``infer={"enumerate": "parallel"}``) can reuse the batch
    dimension of a site once it is out of the window: a hidden Markov model
    with one ``Categorical`` per step then costs O(T K^2) to sum out, not
    K^T. Without enumeration the loop runs as it would without ``markov``.

    Parameters
    ----------
    iterable : iterable, optional
        What the loop runs over.
    history : int
        How many previous steps a step may depend on (1: a first-order chain).
    """

    def __init__(self, iterable=None, history: int = 1):
        if int(history) != history or history < 0:
            raise ValueError(f"markov: history must be an integer >= 0, got {history}")
        self.iterable = iterable
        self.history = int(history)
        self.id = next(_MARKOV_IDS)
        self.step = -1
        super().__init__()

    def __enter__(self):
        self.step += 1
        return super().__enter__()

    def __iter__(self):
        if self.iterable is None:
            raise TypeError("markov() has nothing to iterate over: use pb.markov(range(T)), or "
                            "`with m:` on one markov object m per loop")
        for item in self.iterable:
            with self:
                yield item

    def process_message(self, msg):
        if msg["type"] == "sample":
            # Innermost context first, so prepend: the path runs outermost first.
            msg["infer"]["_markov"] = ((self.id, self.step, self.history),) \
                + msg["infer"].get("_markov", ())
