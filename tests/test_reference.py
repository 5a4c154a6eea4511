"""docs/reference.md lists every public name and its code runs, so the page
cannot fall behind the package."""
import re
import types
from pathlib import Path

import pytest

import probad as pb
import probad.infer
from probad import distributions, handlers
from probad.distributions import constraints, transforms
from probad.infer import autoguide

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"


def _public(module, names=None) -> set[str]:
    """The public non-module names of ``module`` (its ``__all__`` if it has one)."""
    names = names if names is not None else getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return {n for n in names if not isinstance(getattr(module, n), types.ModuleType)}


PUBLIC = {
    "probad": _public(pb),
    "probad.infer": _public(probad.infer),
    "probad.infer.autoguide": _public(autoguide),
    "probad.distributions": _public(distributions),
    "probad.constraints": _public(constraints),
    "probad.distributions.transforms": _public(transforms),
    "probad.handlers": _public(handlers),
    "probad.optim": _public(pb.optim),
    "probad.ad.scipy.integrate": {"odeint"},
}


def _listed() -> set[str]:
    """Every identifier inside a `code span` of the page."""
    spans = re.findall(r"`([^`\n]+)`", REFERENCE.read_text())
    return {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", span)}


@pytest.mark.parametrize("module", list(PUBLIC))
def test_every_public_name_is_listed(module):
    missing = sorted(PUBLIC[module] - _listed())
    assert not missing, f"docs/reference.md does not list {module}: {missing}"


def test_the_stan_table_maps_constrained_declarations():
    text = REFERENCE.read_text()
    assert "`real<lower=0> sigma; sigma ~ cauchy(0, 1);`" in text and "dist.HalfCauchy(1.0)" in text
    assert "ImproperUniform(constraints.real" in text


def test_code_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", REFERENCE.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace = {"__name__": "reference"}
    for block in blocks:
        exec(compile(block, str(REFERENCE), "exec"), namespace)


def test_the_readme_links_the_reference():
    assert "(docs/reference.md)" in (ROOT / "README.md").read_text()
