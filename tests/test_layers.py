"""What one layer of probad uses of another is public there.

Code outside ``probad.ad`` reaches the autodiff through its public modules
(``probad.ad``, ``probad.ad.numpy``, ``probad.ad.scipy``, ``probad.ad.extend``,
the ``probad.ad.compiler`` package), never through the tracer, the core or the
numpy wrapping's implementation modules; and no module imports another
module's private (underscored) name. A name that another module needs is
public in its home module, so renaming a private helper never breaks a
distant caller. ``probad.ad``'s own modules share their internals freely.
"""
import ast
import pathlib

import pytest

import probad

PACKAGE = pathlib.Path(probad.__file__).parent
AD_INTERNALS = ("probad.ad.tracer", "probad.ad.core", "probad.ad.numpy.numpy_")
OUTSIDE_AD = sorted(p for p in PACKAGE.rglob("*.py") if "ad" not in p.relative_to(PACKAGE).parts[:1])


def _module_name(path: pathlib.Path) -> str:
    parts = ("probad",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """``(line, absolute module, imported names)`` of every import from probad in ``path``."""
    package = _module_name(path).split(".") if path.name == "__init__.py" else _module_name(path).split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield node.lineno, module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


@pytest.mark.parametrize("path", OUTSIDE_AD, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_autodiff_internals_outside_probad_ad(path):
    bad = [f"line {line}: {module}" for line, module, _ in _imports(path) if module.startswith(AD_INTERNALS)]
    assert not bad, f"import these from probad.ad.extend (or another public module) instead: {bad}"


@pytest.mark.parametrize("path", OUTSIDE_AD, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_cross_modules(path):
    bad = [f"line {line}: {name} from {module}" for line, module, names in _imports(path)
           if module.startswith("probad") for name in names if name.startswith("_") and not name.startswith("__")]
    assert not bad, f"give these a public name in their home module: {bad}"


def test_the_scan_sees_relative_imports():
    # The test of the test: the scan resolves the relative imports the package uses.
    found = {(module, tuple(names)) for _, module, names in _imports(PACKAGE / "infer" / "svi.py")}
    assert ("probad.ad.extend", ("getval",)) in found
    assert ("probad.infer.density", ("scaled_log_prob",)) in found
