"""``probad.ad.numpy``: numpy, differentiable. Use it as ``import probad.ad.numpy as np``."""
from . import numpy_boxes, numpy_vspaces  # noqa: F401  (register ArrayBox and vector spaces)
from . import numpy_vjps  # noqa: F401  (attach derivative rules)
from .numpy_wrapper import *  # noqa: F401,F403
from .numpy_wrapper import __all__ as _wrapped
from . import fft, linalg, random  # noqa: F401
from numpy import __version__  # noqa: F401,E402  (code checks np.__version__, as under autograd)

__all__ = list(_wrapped) + ["fft", "linalg", "random"]
