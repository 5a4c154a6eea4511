"""probad.infer.gaussian: the families (gradients, entropy, moments, frames) and the
standard forms (moments, draws, the Laplace factor).

The fits built on them (ADVI, Laplace) are tested in test_advi.py and
test_laplace.py.
"""
import numpy as onp
import pytest

from probad.infer.gaussian import (DenseGaussian, DiagonalGaussian, LowRankGaussian, factor_rank,
                                  gaussian_family, laplace_gaussian)


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


# ------------------------------------------------ Gaussians in standard form
def _standard_forms(dim=4, seed=5):
    rng = onp.random.default_rng(seed)
    loc = rng.standard_normal(dim)
    a = rng.standard_normal((dim, dim))
    hess = a @ a.T + dim * onp.eye(dim)
    return {
        "diagonal": DiagonalGaussian(loc, onp.exp(rng.standard_normal(dim))),
        "dense": DenseGaussian(loc, onp.tril(rng.standard_normal((dim, dim)))),
        "lowrank": LowRankGaussian(loc, rng.standard_normal((dim, 2)),
                                   onp.exp(rng.standard_normal(dim))),
        "laplace": laplace_gaussian(loc, hess),
    }


@pytest.mark.parametrize("form", ["diagonal", "dense", "lowrank", "laplace"])
def test_standard_form_moments_and_draws(form):
    g = _standard_forms()[form]
    onp.testing.assert_allclose(g.marginal_sd, onp.sqrt(onp.diag(g.cov)), rtol=1e-12)
    z = g.sample(onp.random.default_rng(0), 200_000)
    assert z.shape == (200_000, len(g.loc))
    # Sample moments of 2e5 draws: the standard error of a mean is sd/447 and
    # of a covariance entry at most ~sqrt(2)*var/447; 0.02 * max var is > 6 of
    # those, a false-failure rate below 1e-8 per entry.
    scale = onp.max(onp.diag(g.cov))
    onp.testing.assert_allclose(z.mean(0), g.loc, atol=0.02 * onp.sqrt(scale))
    onp.testing.assert_allclose(onp.cov(z.T), g.cov, atol=0.02 * scale)


def test_laplace_gaussian_covariance_is_the_inverse_hessian():
    rng = onp.random.default_rng(1)
    a = rng.standard_normal((5, 5))
    hess = a @ a.T + onp.eye(5)
    g = laplace_gaussian(onp.zeros(5), hess)
    onp.testing.assert_allclose(g.cov @ hess, onp.eye(5), atol=1e-10)
    with pytest.raises(onp.linalg.LinAlgError):
        laplace_gaussian(onp.zeros(2), onp.diag([1.0, -1.0]))


def test_a_zero_scale_is_a_point_mass():
    g = DiagonalGaussian(onp.array([1.0, 2.0]), onp.zeros(2))
    onp.testing.assert_array_equal(g.sample(onp.random.default_rng(0), 3), [[1.0, 2.0]] * 3)


@pytest.mark.parametrize("method", ["meanfield", "fullrank", "lowrank"])
def test_a_family_member_is_a_gaussian_drawn_as_the_family_draws(method):
    fam = gaussian_family(method, 5, 2)
    theta = 0.3 * onp.random.default_rng(2).standard_normal(10 + fam.num_extra)
    g = fam.gaussian(theta)
    onp.testing.assert_array_equal(g.loc, fam.loc(theta))
    onp.testing.assert_array_equal(g.cov, fam.covariance(theta))
    eps = onp.random.default_rng(3).standard_normal((7, fam.num_noise))
    onp.testing.assert_array_equal(g.sample(onp.random.default_rng(3), 7), fam.draw(theta, eps)[0])


def test_factor_rank():
    assert [factor_rank(d) for d in (1, 2, 7, 20, 100)] == [1, 1, 3, 10, 10]
    assert factor_rank(7, 5) == 5
    with pytest.raises(ValueError, match="rank must be a positive integer, got 0"):
        factor_rank(7, 0)
