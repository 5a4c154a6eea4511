"""Helpers that sit on top of the autodiff: flattening nests, optimisers and ``const_graph``."""
from . import optimizers  # noqa: F401
from .flatten import flatten, flatten_func  # noqa: F401
from .tracers import const_graph  # noqa: F401
