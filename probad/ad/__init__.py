"""``probad.ad``: tracing automatic differentiation of numpy code.

The public API mirrors autograd's, so ``import probad.ad as ag`` reads like
``import autograd``. Use ``probad.ad.numpy`` in place of numpy inside the
functions you differentiate.
"""
from . import numpy  # noqa: F401  (registers array boxes and vector spaces)
from . import builtins as _builtins
from .compiler import (CompileMismatchError, CompileWarning, compile, compile_grad,  # noqa: F401
                       compile_hvp, compile_value_and_grad)
from .core import vspace  # noqa: F401
from .decorators import function, gradient, hessian_vector  # noqa: F401
from .differential_operators import (checkpoint, deriv, elementwise_grad, grad, grad_and_aux,  # noqa: F401
                                     grad_named, hessian, hessian_tensor_product,
                                     hessian_vector_product, holomorphic_grad, jacobian,
                                     make_ggnvp, make_hvp, make_jvp, make_vjp, multigrad_dict,
                                     tensor_jacobian_product, value_and_grad,
                                     vector_jacobian_product)

tuple = _builtins.tuple
list = _builtins.list
dict = _builtins.dict
isinstance = _builtins.isinstance
type = _builtins.type

__all__ = [
    "grad", "value_and_grad", "grad_and_aux", "elementwise_grad", "jacobian", "hessian",
    "make_vjp", "make_jvp", "deriv", "make_hvp", "hessian_tensor_product",
    "hessian_vector_product", "tensor_jacobian_product", "vector_jacobian_product",
    "make_ggnvp", "checkpoint", "holomorphic_grad", "grad_named", "multigrad_dict",
    "vspace", "tuple", "list", "dict", "isinstance", "type",
    "compile", "compile_value_and_grad", "compile_grad", "compile_hvp", "CompileWarning",
    "CompileMismatchError",
    "function", "gradient", "hessian_vector",
]
