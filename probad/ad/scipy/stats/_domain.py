"""Parameter domains and supports: where-masking shared by the distributions.

Every function keeps both branches of a ``where`` finite, so gradients of
the valid branch stay clean and no numpy warning is raised.
"""
from __future__ import annotations

import numpy as onp

from ... import numpy as np


def positive(param):
    """``(safe, ok)``: ``ok`` marks ``param > 0``; ``safe`` is 1 elsewhere."""
    ok = param > 0
    return np.where(ok, param, 1.0), ok


def nan_unless(ok, value):
    """``value`` where the parameters are valid, NaN elsewhere (scipy's rule)."""
    return np.where(ok, value, onp.nan)


def safe_log(p):
    """``log(p)`` with ``log(0) = -inf`` and no warning."""
    pos = p > 0
    return np.where(pos, np.log(np.where(pos, p, 1.0)), -onp.inf)


def standardize(x, loc, scale):
    """``((x - loc) / scale, log(scale), ok)`` with a safe ``scale``."""
    scale, ok = positive(scale)
    return (x - loc) / scale, np.log(scale), ok
