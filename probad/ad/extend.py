"""``probad.ad.extend``: define your own primitives and derivative rules.

>>> from probad.ad.extend import primitive, defvjp
>>> @primitive
... def logsumexp(x):
...     m = x.max()
...     return m + onp.log(onp.sum(onp.exp(x - m)))
>>> defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))
"""
from .core import (ForwardTrace, SparseObject, VSpace, def_linear, defjvp, defjvp_argnum,  # noqa: F401
                   defjvp_argnums, defvjp, defvjp_rule, defvjp_argnum, defvjp_argnums, vspace)
from .tracer import (Box, ReverseTrace, nondiff_primitive, notrace_primitive, primitive,  # noqa: F401
                     register_notrace)

__all__ = ["primitive", "nondiff_primitive", "notrace_primitive", "register_notrace",
           "defvjp", "defvjp_rule", "defvjp_argnum", "defvjp_argnums", "defjvp", "defjvp_argnum", "defjvp_argnums",
           "def_linear", "Box", "VSpace", "vspace", "SparseObject", "ReverseTrace", "ForwardTrace"]
