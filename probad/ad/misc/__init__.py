"""Helpers that sit on top of the autodiff: flattening nests and optimisers."""
from . import optimizers  # noqa: F401
from .flatten import flatten, flatten_func  # noqa: F401
