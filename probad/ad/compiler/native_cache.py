"""Where numba keeps probad's compiled machine code: the user's cache directory.

Functions compiled with ``numba.njit(cache=True)`` are written to disk so a new
process loads them instead of compiling again. By default numba writes next to
the source file (``__pycache__`` inside the package, i.e. often the user's
working tree), or, if that is not writable, to a numba-wide user cache. For
probad's own modules this module makes it always the user's cache directory
(``$XDG_CACHE_HOME/probad/numba``, ``~/.cache/probad/numba`` on Linux), in a
subdirectory per source tree, so two checkouts never share stale code.

Numba checks only the stamp of the cached function's own source file, but a
compiled function carries copies of the functions it calls; probad's compiled
kernels call functions of other modules (``native_nuts`` compiles helpers of
``kernels``). So each module that defines cached functions declares, before
its first decorator, the modules whose code numba compiles into them::

    NUMBA_CACHE_DEPENDS = ("probad.infer.kernels",)

and the stamp here covers the function's own file and exactly those: an edit
to one of them recompiles the cached functions instead of leaving stale
machine code behind, and an edit anywhere else (the MCMC driver next door)
loads them as they are. ``tests/ad/compiler/test_native_cache.py`` checks
that every probad module the declaring module imports is declared. A module
of probad's that declares nothing is stamped with its whole directory, the
safe guess.

A user's ``NUMBA_CACHE_DIR`` still wins: numba asks its own locator for that
first. Functions outside the probad package are left to numba's defaults.

Loading is made cheaper too: numba refreshes all its typing and lowering
registries before it loads a cached function, which a new process pays once
(0.4-0.7 s, measured here: the first native gradient of eight schools in a
new process went from 0.75 s to 0.34 s under load without it). For probad's
cached code only, the load initialises numba's runtime and skips the
refresh; numba still refreshes before it compiles anything.

Importing this module installs the locator and the load; every module of probad that
caches compiled code imports it before decorating anything.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec

from numba.core import caching
from numba.core.runtime import rtsys
from numba.misc.appdirs import AppDirs

# Newer numba releases dropped the underscore of these names; accept both spellings.
_CacheImpl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
_UserProvidedCacheLocator = (getattr(caching, "UserProvidedCacheLocator", None)
                             or caching._UserProvidedCacheLocator)
_UserWideCacheLocator = (getattr(caching, "UserWideCacheLocator", None)
                         or caching._UserWideCacheLocator)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cache_directory() -> str:
    """The directory under which probad's numba cache lives."""
    return os.path.join(AppDirs(appname="probad", appauthor=False).user_cache_dir, "numba")


#: The module-level name under which a module lists, as module names, the
#: modules whose code numba compiles into its cached functions.
DEPENDS = "NUMBA_CACHE_DEPENDS"


def source_stamp(py_file: str, depends: tuple[str, ...] | None) -> tuple:
    """What numba compares to decide whether cached code of ``py_file`` is
    stale: ``(file name, mtime, size)`` of ``py_file`` and of the files of the
    modules ``depends`` names, or of every module of its directory when
    ``depends`` is None (undeclared)."""
    if depends is None:
        directory = os.path.dirname(py_file)
        files = [os.path.join(directory, name) for name in sorted(os.listdir(directory))
                 if name.endswith(".py")]
    else:
        files = [py_file] + [_module_file(name) for name in depends]
    stamps = []
    for path in files:
        stat = os.stat(path)
        stamps.append((os.path.basename(path), stat.st_mtime, stat.st_size))
    return tuple(stamps)


def _module_file(name: str) -> str:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None) if module is not None else None
    return path or find_spec(name).origin


class ProbadCacheLocator(_UserWideCacheLocator):
    """Numba cache locator for functions defined in probad's source files."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(cache_directory(),
                                        self.get_suitable_cache_subpath(py_file))
        self._depends = py_func.__globals__.get(DEPENDS)

    def get_source_stamp(self):
        return source_stamp(self._py_file, self._depends)

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.commonpath([_PACKAGE_DIR, os.path.abspath(py_file)]) != _PACKAGE_DIR:
            return None
        return super().from_function(py_func, py_file)


def _ours(cache) -> bool:
    """Whether a numba cache holds code of probad's (its package or its generated loops)."""
    py_file = os.path.abspath(getattr(cache._impl.locator, "_py_file", "") or "")
    return any(os.path.commonpath([root, py_file]) == root
               for root in (_PACKAGE_DIR, cache_directory()))


_numba_load_overload = caching.Cache.load_overload


def _load_overload(self, sig, target_context):
    # Loading cached machine code needs numba's runtime (NRT) but not its
    # typing and lowering registries, whose first "refresh" imports and
    # registers every implementation numba has (0.4-0.7 s, half of a new
    # process's time to its first native gradient). numba refreshes them
    # itself before it compiles anything, so a cache miss still compiles.
    if not _ours(self):
        return _numba_load_overload(self, sig, target_context)
    rtsys.initialize(target_context)
    with self._guard_against_spurious_io_errors():
        return self._load_overload(sig, target_context)


def _install() -> None:
    locators = _CacheImpl._locator_classes
    if ProbadCacheLocator not in locators:
        # Right after numba's NUMBA_CACHE_DIR locator, before its in-tree one.
        locators.insert(locators.index(_UserProvidedCacheLocator) + 1, ProbadCacheLocator)
    caching.Cache.load_overload = _load_overload


_install()
