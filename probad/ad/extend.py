"""``probad.ad.extend``: define your own primitives and derivative rules.

Everything code outside ``probad.ad`` needs to extend it lives here (as in
autograd's ``extend``): ``primitive`` and the rule definers (``defprimitive``
declares all that probad knows about a primitive in one call); ``getval`` and
``isbox`` to look under a traced value; ``unbroadcast_f`` to write the VJP of
a broadcasting primitive.

>>> import numpy as onp
>>> import probad.ad.numpy as np
>>> from probad.ad.extend import primitive, defvjp
>>> @primitive
... def logsumexp(x):
...     m = x.max()
...     return m + onp.log(onp.sum(onp.exp(x - m)))
>>> defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))
"""
from .core import (ForwardTrace, SparseObject, VSpace, def_linear, defjvp, defjvp_argnum,  # noqa: F401
                   defjvp_argnums, defprimitive, defvjp, defvjp_rule, defvjp_argnum, defvjp_argnums, vspace)
from .numpy.numpy_vjps import unbroadcast_f  # noqa: F401
from .tracer import (Box, ReverseTrace, getval, isbox, nondiff_primitive, notrace_primitive,  # noqa: F401
                     primitive, register_notrace, shared_calls)

__all__ = ["primitive", "nondiff_primitive", "notrace_primitive", "register_notrace",
           "defprimitive", "defvjp", "defvjp_rule", "defvjp_argnum", "defvjp_argnums", "defjvp", "defjvp_argnum",
           "defjvp_argnums",
           "def_linear", "Box", "VSpace", "vspace", "SparseObject", "ReverseTrace", "ForwardTrace",
           "getval", "isbox", "unbroadcast_f", "shared_calls"]
