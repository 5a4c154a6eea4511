"""Flatten nests of arrays (tuples, lists, dicts) into one vector and back."""
from __future__ import annotations

from .. import numpy as np
from ..core import make_vjp


def flatten(value):
    """Return ``(flat_vector, unflatten)`` for a nest of arrays.

    Dicts are flattened in sorted key order. ``unflatten`` is differentiable,
    so a function of the nest becomes a function of one vector.
    """
    unflatten, flat = make_vjp(_flatten, value)
    return flat, unflatten


def _flatten(value):
    if isinstance(value, dict) or type(value).__name__ == "DictBox":
        return _concat([_flatten(value[k]) for k in sorted(value.keys())])
    if isinstance(value, (tuple, list)) or type(value).__name__ == "SequenceBox":
        return _concat([_flatten(v) for v in value])
    return np.ravel(value)


def _concat(parts):
    return np.concatenate(parts) if parts else np.zeros(0)


def flatten_func(func, example):
    """Wrap ``func`` of a nest so that it takes the flat vector instead.

    Returns ``(flat_func, unflatten, flat_example)``.
    """
    flat, unflatten = flatten(example)

    def flat_func(x, *args, **kwargs):
        return func(unflatten(x), *args, **kwargs)

    return flat_func, unflatten, flat


__all__ = ["flatten", "flatten_func"]
