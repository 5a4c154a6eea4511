"""The Gaussian families of probad.infer.gaussian: gradients, entropy, moments, frames.

The fits built on them (ADVI, Laplace) are tested in test_advi.py and
test_laplace.py.
"""
import numpy as onp
import pytest

from probad.infer.gaussian import gaussian_family


# ------------------------------------------------------------ the families
def _quadratic(dim, seed=0):
    rng = onp.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    prec = a @ a.T + dim * onp.eye(dim)
    shift = rng.standard_normal(dim)
    return lambda z: (0.5 * (z - shift) @ prec @ (z - shift), prec @ (z - shift))


@pytest.mark.parametrize("method", ["meanfield", "fullrank", "lowrank"])
def test_family_gradient_matches_finite_differences(method):
    dim = 4
    fam = gaussian_family(method, dim, 2)
    rng = onp.random.default_rng(1)
    theta = 0.5 * rng.standard_normal(2 * dim + fam.num_extra)
    eps = rng.standard_normal((3, fam.num_noise))
    vg = _quadratic(dim)

    def loss(th):
        z, _ = fam.draw(th, eps)
        return onp.mean([vg(zi)[0] for zi in z]) - fam.entropy(th)

    z, aux = fam.draw(theta, eps)
    grad = fam.grad(theta, eps, onp.array([vg(zi)[1] for zi in z]), aux)
    h = 1e-6
    numeric = onp.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h)
                         for e in onp.eye(len(theta))])
    onp.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["meanfield", "fullrank", "lowrank"])
def test_family_entropy_moments_and_frames(method):
    dim = 5
    fam = gaussian_family(method, dim, 2)
    rng = onp.random.default_rng(2)
    theta = 0.3 * rng.standard_normal(2 * dim + fam.num_extra)
    cov = fam.covariance(theta)
    # Entropy of a Gaussian: 0.5 log det(2 pi e cov).
    gaussian_entropy = 0.5 * onp.linalg.slogdet(2 * onp.pi * onp.e * cov)[1]
    assert fam.entropy(theta) == pytest.approx(gaussian_entropy)
    onp.testing.assert_allclose(fam.marginal_sd(theta), onp.sqrt(onp.diag(cov)))
    # Draws have the stated covariance.
    z, _ = fam.draw(theta, rng.standard_normal((200_000, fam.num_noise)))
    onp.testing.assert_allclose(onp.cov(z.T), cov, atol=0.02 * onp.max(onp.diag(cov)))
    # Re-expressing the guide in its own frame and back changes nothing.
    frame = fam.frame_of(theta)
    onp.testing.assert_allclose(fam.push_forward(fam.standard_params(theta), frame), theta,
                                atol=1e-12)
    # Setting marginal variances.
    var = onp.linspace(0.5, 2.0, dim)
    onp.testing.assert_allclose(fam.marginal_sd(fam.with_marginal_var(theta, var)) ** 2, var)
