"""Serve ``probad.ad`` under the name ``autograd``, so that code written for
autograd runs unchanged: ``import autograd.numpy as np`` then gives
``probad.ad.numpy``, ``from autograd.misc.optimizers import adam`` gives
``probad.ad.misc.optimizers.adam``, and so on for every module autograd has.

>>> from probad.ad import autograd_alias
>>> with autograd_alias.aliased():
...     import autograd.numpy as np
>>> np.__name__
'probad.ad.numpy'

The alias is an import hook (a finder at the front of ``sys.meta_path``), so
``autograd.X.Y`` is exactly the module object ``probad.ad.X.Y``: rules that
autograd code registers through ``autograd.extend`` land in probad's
registries.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

__all__ = ["install", "uninstall", "aliased", "target_of"]

ALIAS = "autograd"
TARGET = "probad.ad"
# autograd modules whose names probad spells differently.
RENAMED = {"autograd.util": "probad.ad.wrap_util"}


def target_of(name: str) -> str:
    """The ``probad.ad`` module that the autograd module ``name`` resolves to."""
    if name in RENAMED:
        return RENAMED[name]
    return TARGET + name[len(ALIAS):]


class _Loader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        """The target module ran when it was imported."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != ALIAS and not name.startswith(ALIAS + "."):
            return None
        real = target_of(name)
        real_spec = importlib.util.find_spec(real)
        if real_spec is None:
            return None  # -> ModuleNotFoundError for the autograd name
        return importlib.machinery.ModuleSpec(name, _Loader(real),
                                              is_package=real_spec.submodule_search_locations is not None)


_FINDER = _Finder()
_saved: dict = {}


def _autograd_modules():
    return [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]


def install() -> None:
    """Resolve ``autograd`` and its submodules to ``probad.ad`` from now on.

    An autograd already imported is set aside (:func:`uninstall` restores it).
    """
    if _FINDER in sys.meta_path:
        return
    for name in _autograd_modules():
        _saved[name] = sys.modules.pop(name)
    sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo :func:`install`: ``autograd`` is the real package again (if installed)."""
    if _FINDER not in sys.meta_path:
        return
    sys.meta_path.remove(_FINDER)
    for name in _autograd_modules():
        del sys.modules[name]
    sys.modules.update(_saved)
    _saved.clear()


@contextlib.contextmanager
def aliased():
    """``with aliased():`` imports of ``autograd`` inside give ``probad.ad``."""
    install()
    try:
        yield
    finally:
        uninstall()
