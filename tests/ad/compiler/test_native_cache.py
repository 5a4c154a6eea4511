"""Where probad's numba-compiled code is cached, and when the cache goes stale."""

import ast
import importlib
import os
import sys

import numba
from numba.core.dispatcher import Dispatcher

from probad.ad.compiler import native_cache
from probad.infer import native_nuts


def test_probads_compiled_functions_are_cached_in_the_users_cache_directory():
    expected = numba.config.CACHE_DIR or native_cache.cache_directory()
    cache_path = native_nuts._nuts_transition._cache._cache_path
    assert os.path.commonpath([expected, cache_path]) == expected
    assert not cache_path.startswith(os.path.dirname(native_nuts.__file__))


def test_functions_outside_probad_are_left_to_numba(tmp_path):
    source = tmp_path / "user_module.py"
    source.write_text("def f():\n    return 1\n")
    locate = native_cache.ProbadCacheLocator.from_function
    assert locate(test_functions_outside_probad_are_left_to_numba, str(source)) is None


def test_an_undeclared_module_is_stamped_with_its_whole_directory(tmp_path):
    # This test module declares no NUMBA_CACHE_DEPENDS: without a declaration
    # any module next to the cached one may be compiled into it.
    (tmp_path / "kernels.py").write_text("X = 1\n")
    (tmp_path / "native.py").write_text("def f():\n    return 1\n")
    locator = native_cache.ProbadCacheLocator(test_an_undeclared_module_is_stamped_with_its_whole_directory,
                                              str(tmp_path / "native.py"))
    before = locator.get_source_stamp()
    assert locator.get_source_stamp() == before
    (tmp_path / "kernels.py").write_text("X = 22\n")
    assert locator.get_source_stamp() != before


def test_the_stamp_covers_the_declared_modules_and_no_others(tmp_path, monkeypatch):
    # The shape of native_nuts (cached kernels compiling kernels' helpers)
    # next to the shape of mcmc (a driver that compiles nothing).
    package = tmp_path / "stamped_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "kern.py").write_text("X = 1\n")
    (package / "driver.py").write_text("Y = 1\n")
    (package / "nuts.py").write_text("NUMBA_CACHE_DEPENDS = ('stamped_pkg.kern',)\n"
                                     "def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    nuts = importlib.import_module("stamped_pkg.nuts")
    try:
        locator = native_cache.ProbadCacheLocator(nuts.f, nuts.__file__)
        before = locator.get_source_stamp()
        (package / "driver.py").write_text("Y = 22\n")
        assert locator.get_source_stamp() == before  # the driver is not compiled in
        (package / "kern.py").write_text("X = 22\n")
        after_kern = locator.get_source_stamp()
        assert after_kern != before
        (package / "nuts.py").write_text("NUMBA_CACHE_DEPENDS = ('stamped_pkg.kern',)\n"
                                         "def f():\n    return 22\n")
        assert locator.get_source_stamp() != after_kern
    finally:
        for name in [m for m in sys.modules if m.startswith("stamped_pkg")]:
            del sys.modules[name]


def _cached_function_modules() -> set[str]:
    """Modules of probad owning a function that numba caches on disk."""
    owners = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("probad"):
            continue
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and \
                    type(value._cache).__name__ != "NullCache":
                owners.add(value.py_func.__module__)
    return owners


def _probad_imports(module) -> set[str]:
    """The probad modules ``module`` imports anywhere in its source."""
    tree = ast.parse(open(module.__file__).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.__name__.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                full = f"{base}.{alias.name}"
                # "from . import x" imports module x; "from .m import f" imports m
                found.add(full if importlib.util.find_spec(base) is not None and
                          _is_module(full) else base)
    return {name for name in found if name.split(".")[0] == "probad"}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_every_cached_module_declares_the_probad_modules_it_imports():
    # A module compiled into a cached function but missing from the list would
    # leave stale machine code after an edit. Every probad module the owner
    # imports is taken as compiled in, except the cache locator itself.
    importlib.import_module("probad.ad.compiler.interpreter")  # defines cached functions

    owners = _cached_function_modules()
    assert {"probad.infer.native_nuts", "probad.infer.kernels",
            "probad.ad.compiler.interpreter"} <= owners
    for name in owners:
        module = sys.modules[name]
        declared = getattr(module, native_cache.DEPENDS, None)
        assert declared is not None, f"{name} has cached functions but no {native_cache.DEPENDS}"
        missing = _probad_imports(module) - set(declared) - {name, native_cache.__name__}
        assert not missing, f"{name} imports {sorted(missing)} but does not declare them"
