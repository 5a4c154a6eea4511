"""``probad.ad.numpy.random``: numpy.random, with every draw announced.

Random draws have no derivative: each function here accepts traced
arguments, computes on their raw values and returns a plain array, so a draw
never carries a gradient (write ``loc + scale * np.random.randn()`` when a
reparameterised sample is wanted).

Draws are *announced*. A function that draws random numbers is not a pure
function of its inputs, so the trace compiler must not replay a tape recorded
from it. Before drawing, every function (and every method of the
:class:`Generator` and :class:`RandomState` returned here) calls each callable
in the module-level list ``_draw_listeners`` with one argument, the name of
the drawing function (``"normal"``, ``"Generator.integers"``, ...). The
compiler appends a listener while it traces and removes it afterwards.

Seeding and state functions (``seed``, ``get_state``, ``set_state``, ...),
bit generators and ``SeedSequence`` draw nothing and pass through unchanged.
A Generator created by plain ``numpy.random.default_rng`` is not announced:
use :func:`default_rng` from this module inside code that will be compiled.
"""
from __future__ import annotations

from typing import Callable

import numpy.random as _npr

from ..tracer import getval, nondiff_primitive

__all__ = ["Generator", "RandomState", "default_rng"]

_draw_listeners: list[Callable[[str], None]] = []

# Names in numpy.random that draw nothing: state handling and constructors.
_PASS_THROUGH = {
    "seed", "get_state", "set_state", "get_bit_generator", "set_bit_generator",
    "BitGenerator", "MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64",
    "SeedSequence", "bit_generator", "mtrand", "test",
}
# Generator/RandomState attributes that draw nothing.
_NON_DRAWING_METHODS = {"bit_generator", "spawn", "seed", "get_state", "set_state"}


def _announce(name: str) -> None:
    for listener in tuple(_draw_listeners):
        listener(name)


def _raw_kwargs(kwargs: dict) -> dict:
    return {k: getval(v) for k, v in kwargs.items()}


def _announced_function(name: str, fun: Callable) -> nondiff_primitive:
    # nondiff_primitive unboxes positional arguments and never boxes the
    # result under a derivative trace; keyword arguments are unboxed here.
    def draw(*args, **kwargs):
        _announce(name)
        return fun(*args, **_raw_kwargs(kwargs))

    draw.__name__ = name
    draw.__doc__ = fun.__doc__
    prim = nondiff_primitive(draw, name)
    prim.pure = False  # two draws are two draws, even with equal arguments
    return prim


def _announced_method(class_name: str, name: str, method: Callable) -> Callable:
    label = f"{class_name}.{name}"

    def draw(self, *args, **kwargs):
        _announce(label)
        return method(self, *[getval(a) for a in args], **_raw_kwargs(kwargs))

    draw.__name__ = name
    draw.__doc__ = method.__doc__
    return draw


def _announcing_class(base: type) -> type:
    """A subclass of ``base`` whose drawing methods announce themselves."""
    namespace = {
        name: _announced_method(base.__name__, name, getattr(base, name))
        for name in dir(base)
        if not name.startswith("_") and name not in _NON_DRAWING_METHODS
        and callable(getattr(base, name))
    }

    def __reduce__(self):
        # numpy's own reduction would rebuild the base class; keep ours.
        _, args, *state = base.__reduce__(self)
        return (type(self), args, *state)

    namespace["__reduce__"] = __reduce__
    namespace["__doc__"] = (f"``numpy.random.{base.__name__}`` whose draws call the "
                            "listeners in ``probad.ad.numpy.random._draw_listeners``.")
    namespace["__module__"] = __name__
    return type(base.__name__, (base,), namespace)


Generator = _announcing_class(_npr.Generator)
RandomState = _announcing_class(_npr.RandomState)


def default_rng(seed=None) -> Generator:
    """``numpy.random.default_rng`` returning an announcing :class:`Generator`.

    Parameters
    ----------
    seed : None, int, array_like of ints, SeedSequence, BitGenerator or Generator
        As for numpy; a Generator is rewrapped around its bit generator, so
        both share one stream of random numbers.
    """
    if isinstance(seed, Generator):
        return seed
    if isinstance(seed, _npr.Generator):
        return Generator(seed.bit_generator)
    if isinstance(seed, _npr.BitGenerator):
        return Generator(seed)
    return Generator(_npr.PCG64(seed))


for _name in dir(_npr):
    if _name.startswith("_") or _name in __all__:
        continue
    _obj = getattr(_npr, _name)
    if _name in _PASS_THROUGH or not callable(_obj):
        globals()[_name] = _obj
    else:
        globals()[_name] = _announced_function(_name, _obj)
    __all__.append(_name)
