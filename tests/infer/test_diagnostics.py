"""The after-sampling checks: E-BFMI computed without ArviZ's numba code."""
import arviz as az
import numpy as onp
import pytest

from probad.infer.diagnostics import check_sampling, energy_bfmi


def _energies(rho, seed=0, chains=3, draws=400):
    """AR(1) energies: E-BFMI is about 2 (1 - rho), low for rho near 1."""
    rng = onp.random.default_rng(seed)
    e = onp.empty((chains, draws))
    e[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        e[:, t] = rho * e[:, t - 1] + rng.normal(size=chains)
    return e


@pytest.mark.parametrize("rho", [0.0, 0.95])
def test_energy_bfmi_agrees_with_arviz(rho):
    energy = _energies(rho)
    idata = az.from_dict(posterior={"x": onp.zeros_like(energy)},
                         sample_stats={"energy": energy})
    onp.testing.assert_allclose(energy_bfmi(energy), az.bfmi(idata), rtol=1e-12)


def test_low_bfmi_is_reported_without_arviz_bfmi(monkeypatch):
    # az.bfmi compiles a numba function in every new process (~1.4 s of a small
    # model's whole call); the check must not call it.
    def refuse(*args, **kwargs):
        raise AssertionError("arviz.bfmi was called")

    monkeypatch.setattr(az, "bfmi", refuse)
    energy = _energies(0.95)  # E-BFMI ~ 0.1 in each chain
    x = onp.random.default_rng(1).normal(size=energy.shape)
    idata = az.from_dict(posterior={"x": x}, sample_stats={"energy": energy})
    problems = check_sampling(idata, warn=False)
    assert any("E-BFMI below 0.3 in chain(s) [0, 1, 2]" in p for p in problems)
