"""``probad.ad.scipy``: scipy functions with derivative rules.

Use ``import probad.ad.scipy.special as sp`` (and ``stats``, ``linalg``,
``signal``, ``integrate``) in place of scipy inside differentiated code.
"""
from . import integrate, linalg, signal, special, stats  # noqa: F401

__all__ = ["integrate", "linalg", "signal", "special", "stats"]
