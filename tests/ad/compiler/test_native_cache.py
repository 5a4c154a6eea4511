"""Where probad's numba-compiled code is cached, and when the cache goes stale."""

import os

import numba

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


def test_editing_a_sibling_module_invalidates_the_cache(tmp_path):
    # native_nuts compiles helpers of kernels.py into its functions, so a change
    # to any module of the directory must change the stamp numba compares.
    (tmp_path / "kernels.py").write_text("X = 1\n")
    (tmp_path / "native.py").write_text("def f():\n    return 1\n")
    locator = native_cache.ProbadCacheLocator(test_editing_a_sibling_module_invalidates_the_cache,
                                              str(tmp_path / "native.py"))
    before = locator.get_source_stamp()
    assert locator.get_source_stamp() == before
    (tmp_path / "kernels.py").write_text("X = 22\n")
    assert locator.get_source_stamp() != before
