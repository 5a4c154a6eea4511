"""First-order optimisers with explicit state, over nests of arrays.

The interface is NumPyro's (itself JAX's ``example_libraries.optimizers``)::

    opt = Adam(0.01)
    state = opt.init(params)            # params: array or dict/tuple/list nest
    state = opt.update(grads, state)    # grads: same nest as params
    params = opt.get_params(state)

The state is an immutable :class:`OptimizerState`; nothing is stored on the
optimiser, so one optimiser object can drive many independent fits, a state
can be copied, pickled or rolled back (the VI drivers roll back a step whose
gradient was not finite simply by not calling ``update``).

Step sizes may be a float or a schedule ``step_size(i) -> float`` of the
number of updates already applied. Arithmetic is plain numpy on the raw
leaves: optimisers run outside any trace.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, NamedTuple, Union

import numpy as onp

__all__ = [
    "OptimizerState", "Optimizer", "SGD", "Momentum", "Adam", "ClippedAdam",
    "Adagrad", "RMSProp", "clip_by_global_norm",
]

StepSize = Union[float, Callable[[int], float]]


class OptimizerState(NamedTuple):
    """Everything an optimiser needs between steps.

    Attributes
    ----------
    step : int
        Number of updates applied so far.
    params : tuple of ndarray
        The current parameter leaves, in the order of ``treedef``.
    slots : tuple of tuple of ndarray
        Per-optimiser accumulators (moments, sums of squares), one tuple of
        leaves per slot.
    treedef : object
        The nest's structure, used to rebuild it in :meth:`Optimizer.get_params`.
    """

    step: int
    params: tuple
    slots: tuple
    treedef: Any


# --------------------------------------------------------------- nests
# A treedef is ``None`` for a leaf, ``("dict", keys, children)`` or
# ``(seq_type, children)`` for a tuple/list. Gradients are read *against* the
# parameters' treedef, so a gradient dict may list its keys in any order.

def _flatten(nest) -> tuple[list, Any]:
    if isinstance(nest, dict):
        keys = tuple(nest)
        leaves, children = [], []
        for k in keys:
            sub, td = _flatten(nest[k])
            leaves += sub
            children.append(td)
        return leaves, ("dict", keys, tuple(children))
    if isinstance(nest, (tuple, list)):
        leaves, children = [], []
        for v in nest:
            sub, td = _flatten(v)
            leaves += sub
            children.append(td)
        return leaves, (type(nest), tuple(children))
    return [_as_float_array(nest)], None


def _leaves_like(nest, treedef, path="") -> list:
    """The leaves of ``nest`` in the order of ``treedef`` (which it must match)."""
    if treedef is None:
        return [_as_float_array(nest)]
    if treedef[0] == "dict":
        _, keys, children = treedef
        if not isinstance(nest, dict):
            raise TypeError(f"gradient{path or ''} should be a dict like the parameters, "
                            f"got {type(nest).__name__}")
        out = []
        for k, td in zip(keys, children):
            if k not in nest:
                raise KeyError(f"gradient has no entry for parameter {path}[{k!r}]")
            out += _leaves_like(nest[k], td, f"{path}[{k!r}]")
        return out
    _, children = treedef
    if not isinstance(nest, (tuple, list)) or len(nest) != len(children):
        raise TypeError(f"gradient{path or ''} should be a sequence of {len(children)} like "
                        "the parameters")
    out = []
    for i, (v, td) in enumerate(zip(nest, children)):
        out += _leaves_like(v, td, f"{path}[{i}]")
    return out


def _unflatten(treedef, leaves):
    it = iter(leaves)

    def build(td):
        if td is None:
            return next(it)
        if td[0] == "dict":
            return {k: build(c) for k, c in zip(td[1], td[2])}
        return td[0](build(c) for c in td[1])

    return build(treedef)


def _as_float_array(x) -> onp.ndarray:
    x = onp.asarray(getattr(x, "_value", x))
    if x.dtype.kind not in "fc":
        x = x.astype(float)
    return x


def clip_by_global_norm(leaves, max_norm: float):
    """Scale ``leaves`` (a list of arrays) so their joint L2 norm is at most ``max_norm``.

    Returns ``(clipped_leaves, norm_before)``. Clipping the *joint* norm keeps
    the update's direction, unlike clipping each element.
    """
    norm = onp.sqrt(sum(float(onp.vdot(g, g).real) for g in leaves))
    if norm > max_norm:
        scale = max_norm / norm
        leaves = [g * scale for g in leaves]
    return leaves, norm


# ----------------------------------------------------------- optimisers
class Optimizer(ABC):
    """Base class: subclasses define ``_init_slots`` and ``_update_leaf``.

    Parameters
    ----------
    step_size : float or callable
        Learning rate, or a schedule ``i -> rate`` of the update count.
    """

    num_slots = 0

    def __init__(self, step_size: StepSize):
        self.step_size = step_size

    def __repr__(self):
        return f"{type(self).__name__}(step_size={self.step_size!r})"

    def init(self, params) -> OptimizerState:
        """The initial state for ``params`` (an array or a nest of arrays)."""
        leaves, treedef = _flatten(params)
        leaves = tuple(onp.array(x, copy=True) for x in leaves)
        slots = tuple(tuple(onp.zeros_like(x) for x in leaves) for _ in range(self.num_slots))
        return OptimizerState(0, leaves, slots, treedef)

    def update(self, grads, state: OptimizerState) -> OptimizerState:
        """Apply one update with ``grads`` (same nest as the parameters)."""
        lr = self._rate(state.step)
        if state.treedef is None:
            # A single array (how the VI drivers use it): skip the nest bookkeeping.
            g = self._prepare([_as_float_array(grads)], state)[0]
            x, slots = self._update_leaf(state.params[0], g, tuple(s[0] for s in state.slots),
                                         lr, state.step)
            return OptimizerState(state.step + 1, (x,), tuple((s,) for s in slots), None)
        g_leaves = self._prepare(_leaves_like(grads, state.treedef), state)
        new_params, new_slots = [], [[] for _ in range(self.num_slots)]
        for j, (x, g) in enumerate(zip(state.params, g_leaves)):
            x, slots = self._update_leaf(x, g, tuple(s[j] for s in state.slots), lr, state.step)
            new_params.append(x)
            for k, s in enumerate(slots):
                new_slots[k].append(s)
        return OptimizerState(state.step + 1, tuple(new_params),
                              tuple(tuple(s) for s in new_slots), state.treedef)

    def get_params(self, state: OptimizerState):
        """The parameters held by ``state``, as the nest given to :meth:`init`."""
        return _unflatten(state.treedef, state.params)

    def eval_and_update(self, fn: Callable, state: OptimizerState):
        """Evaluate ``fn(params)`` with its gradient and apply one update.

        ``fn`` is differentiated with ``probad.ad.value_and_grad``.
        Returns ``(loss, new_state)``.
        """
        from .ad import value_and_grad

        loss, grads = value_and_grad(fn)(self.get_params(state))
        return loss, self.update(grads, state)

    def _rate(self, i: int) -> float:
        return self.step_size(i) if callable(self.step_size) else self.step_size

    def _prepare(self, g_leaves, state):
        return g_leaves

    @abstractmethod
    def _update_leaf(self, x, g, slots, lr, i):
        """Return ``(new_x, new_slots)`` for one leaf at update ``i``."""


class SGD(Optimizer):
    """Plain gradient descent: ``x -= step_size * g``."""

    def _update_leaf(self, x, g, slots, lr, i):
        return x - lr * g, ()


class Momentum(Optimizer):
    """Gradient descent with heavy-ball momentum.

    ``v = mass * v + g``; ``x -= step_size * v``.
    """

    num_slots = 1

    def __init__(self, step_size: StepSize, mass: float = 0.9):
        super().__init__(step_size)
        self.mass = mass

    def _update_leaf(self, x, g, slots, lr, i):
        v = self.mass * slots[0] + g
        return x - lr * v, (v,)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected moment estimates.

    Parameters
    ----------
    step_size : float or callable
    b1, b2 : float
        Decay rates of the first and second moment averages.
    eps : float
        Added to the root second moment to keep the step finite.
    """

    num_slots = 2

    def __init__(self, step_size: StepSize = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(step_size)
        self.b1, self.b2, self.eps = b1, b2, eps

    def _update_leaf(self, x, g, slots, lr, i):
        b1, b2 = self.b1, self.b2
        m = b1 * slots[0] + (1.0 - b1) * g
        v = b2 * slots[1] + (1.0 - b2) * (g * g)
        t = i + 1
        # Fold both bias corrections into the scalar rate: two array ops fewer.
        rate = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        return x - rate * m / (onp.sqrt(v) + self.eps), (m, v)


class ClippedAdam(Adam):
    """Adam with the gradient's global L2 norm clipped and a decaying rate.

    Parameters
    ----------
    step_size : float or callable
    clip_norm : float
        Gradients whose joint norm (over every leaf) exceeds this are scaled
        down to it before the moment updates.
    lrd : float
        Learning-rate decay per step: the rate at update ``i`` is
        ``step_size * lrd**i`` (Pyro's ``ClippedAdam`` convention).
    b1, b2, eps : float
        As in :class:`Adam`.
    """

    def __init__(self, step_size: StepSize = 1e-3, clip_norm: float = 10.0, lrd: float = 1.0,
                 b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        super().__init__(step_size, b1, b2, eps)
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive, got {clip_norm}")
        self.clip_norm, self.lrd = clip_norm, lrd

    def _rate(self, i):
        return super()._rate(i) * self.lrd**i

    def _prepare(self, g_leaves, state):
        return clip_by_global_norm(g_leaves, self.clip_norm)[0]


class Adagrad(Optimizer):
    """Adagrad: per-coordinate rates shrinking with the summed squared gradients.

    ``s += g**2``; ``x -= step_size * g / (sqrt(s) + eps)``.
    """

    num_slots = 1

    def __init__(self, step_size: StepSize = 0.1, eps: float = 1e-8):
        super().__init__(step_size)
        self.eps = eps

    def _update_leaf(self, x, g, slots, lr, i):
        s = slots[0] + g * g
        return x - lr * g / (onp.sqrt(s) + self.eps), (s,)


class RMSProp(Optimizer):
    """RMSProp: steps scaled by a running root-mean-square of the gradient.

    ``a = gamma * a + (1 - gamma) * g**2``; ``x -= step_size * g / (sqrt(a) + eps)``.
    """

    num_slots = 1

    def __init__(self, step_size: StepSize = 1e-2, gamma: float = 0.9, eps: float = 1e-8):
        super().__init__(step_size)
        self.gamma, self.eps = gamma, eps

    def _update_leaf(self, x, g, slots, lr, i):
        a = self.gamma * slots[0] + (1.0 - self.gamma) * (g * g)
        return x - lr * g / (onp.sqrt(a) + self.eps), (a,)
