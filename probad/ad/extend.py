"""``probad.ad.extend``: define your own primitives and derivative rules.

>>> from probad.ad.extend import primitive, defvjp
>>> @primitive
... def logsumexp(x):
...     m = x.max()
...     return m + onp.log(onp.sum(onp.exp(x - m)))
>>> defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))
"""
from .core import (SparseObject, VSpace, def_linear, defjvp, defjvp_argnum, defvjp,  # noqa: F401
                   defvjp_argnum, vspace)
from .tracer import Box, notrace_primitive, nondiff_primitive, primitive  # noqa: F401

__all__ = ["primitive", "nondiff_primitive", "notrace_primitive", "defvjp", "defvjp_argnum",
           "defjvp", "defjvp_argnum", "def_linear", "Box", "VSpace", "vspace", "SparseObject"]
