"""``from probad import constraints``: the constraints of ``probad.distributions``."""
from .distributions.constraints import *  # noqa: F401,F403
from .distributions.constraints import Constraint, __all__  # noqa: F401
