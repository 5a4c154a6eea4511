"""HMC/NUTS kernels (the single-chain runner: test_chain.py).

Sampling tests compare Monte Carlo estimates with exact values through
z-scores ``(estimate - truth) / (sd / sqrt(ESS))`` and require ``|z| < 4``
with fixed seeds; a test that fails is a bug, not a tolerance to widen.
"""

import math
from typing import NamedTuple

import arviz
import numpy as np
import pytest
import scipy.special

from probad.infer import kernels
from probad.infer.chain import run_chain


def standard_normal(q):
    return 0.5 * q.dot(q), q


def gaussian(covariance):
    """Potential of N(0, covariance)."""
    precision = np.linalg.inv(covariance)

    def potential(q):
        grad = precision @ q
        return 0.5 * q.dot(grad), grad

    return potential


def ill_conditioned_covariance():
    """2-D covariance with eigenvalues 100 and 0.01 (condition number 1e4), rotated 45 degrees."""
    rotation = np.array([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2.0)
    return rotation @ np.diag([100.0, 0.01]) @ rotation.T


def z_scores(samples, truth):
    """Per-column z-scores of the sample means of ``samples`` (draws x dim) against ``truth``."""
    ess = np.array([arviz.ess(column[None, :]) for column in samples.T])
    return (samples.mean(axis=0) - truth) / (samples.std(axis=0) / np.sqrt(ess))


def assert_moments(draws, mean, variance):
    """First and second moments agree with the truth within Monte Carlo error."""
    assert np.all(np.abs(z_scores(draws, mean)) < 4)
    assert np.all(np.abs(z_scores((draws - mean) ** 2, variance)) < 4)


# ---------------------------------------------------------------- metric and integrator


@pytest.mark.parametrize("dense", [False, True])
def test_metric_momentum_distribution_and_velocity(dense):
    rng = np.random.default_rng(0)
    if dense:
        a = rng.standard_normal((3, 3))
        inverse_metric = a @ a.T + 0.5 * np.eye(3)
        inverse_matrix = inverse_metric
    else:
        inverse_metric = np.array([0.25, 1.0, 9.0])
        inverse_matrix = np.diag(inverse_metric)
    assert_metric_is(kernels.make_metric(inverse_metric), inverse_matrix, rng)


def assert_metric_is(metric, inverse_matrix, rng):
    """Momenta ~ N(0, M), velocity M^{-1} p and kinetic energy p M^{-1} p / 2.

    Entry (i, j) of a sample covariance has sd sqrt((M_ii M_jj + M_ij^2) / n):
    4-sd bounds fail for a correct metric with probability < 1e-3 over the
    entries of a 4 x 4 matrix.
    """
    metric_matrix = np.linalg.inv(inverse_matrix)
    n = 40_000
    momenta = np.array([metric.sample_momentum(rng) for _ in range(n)])
    se = np.sqrt((np.outer(np.diag(metric_matrix), np.diag(metric_matrix)) + metric_matrix**2) / n)
    assert np.all(np.abs(np.cov(momenta.T) - metric_matrix) < 4 * se)

    p = rng.standard_normal(len(inverse_matrix))
    np.testing.assert_allclose(metric.velocity(p), inverse_matrix @ p, rtol=1e-12)
    np.testing.assert_allclose(metric.kinetic_energy(p), 0.5 * p @ inverse_matrix @ p, rtol=1e-12)


@pytest.mark.parametrize(
    "inverse_metric",
    [np.array([1.0, 0.0]), np.array([1.0, np.nan]), np.array([[1.0, 2.0], [2.0, 1.0]]),
     np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones((2, 3))],
    ids=["zero", "nan", "indefinite", "asymmetric", "not-square"],
)
def test_make_metric_rejects_invalid_inverse_metric(inverse_metric):
    with pytest.raises(ValueError, match="inverse metric"):
        kernels.make_metric(inverse_metric)


def test_init_rejects_non_finite_potential():
    with pytest.raises(ValueError, match="not finite"):
        kernels.init(np.zeros(2), lambda q: (np.inf, q))


@pytest.mark.parametrize("dense", [False, True])
def test_leapfrog_is_reversible(dense):
    rng = np.random.default_rng(1)
    covariance = np.array([[2.0, 0.9], [0.9, 1.0]])
    potential = gaussian(covariance)
    metric = kernels.make_metric(covariance if dense else np.diag(covariance))
    q = rng.standard_normal(2)
    start = kernels.IntegratorState(q, rng.standard_normal(2), *potential(q))

    z = start
    for _ in range(25):
        z = kernels.leapfrog(z, 0.1, metric, potential)
    z = z._replace(momentum=-z.momentum)
    for _ in range(25):
        z = kernels.leapfrog(z, 0.1, metric, potential)
    np.testing.assert_allclose(z.position, start.position, atol=1e-12)
    np.testing.assert_allclose(-z.momentum, start.momentum, atol=1e-12)

    # Integrating with a negative step is the same as flipping the momentum.
    forward = kernels.leapfrog(start._replace(momentum=-start.momentum), 0.1, metric, potential)
    backward = kernels.leapfrog(start, -0.1, metric, potential)
    np.testing.assert_allclose(backward.position, forward.position, atol=1e-15)
    np.testing.assert_allclose(backward.momentum, -forward.momentum, atol=1e-15)


def test_leapfrog_energy_error_is_second_order():
    rng = np.random.default_rng(2)
    covariance = np.array([[2.0, 0.9], [0.9, 1.0]])
    potential = gaussian(covariance)
    metric = kernels.make_metric(np.ones(2))
    q = rng.standard_normal(2)
    start = kernels.IntegratorState(q, rng.standard_normal(2), *potential(q))
    energy0 = kernels.hamiltonian(start, metric)

    def max_energy_error(step_size):
        z, worst = start, 0.0
        for _ in range(round(3.0 / step_size)):  # the same integration time for every step size
            z = kernels.leapfrog(z, step_size, metric, potential)
            worst = max(worst, abs(kernels.hamiltonian(z, metric) - energy0))
        return worst

    errors = [max_energy_error(h) for h in (0.1, 0.05, 0.025)]
    assert errors[0] < 0.05
    # Halving the step divides the energy error by 4 for a second-order integrator.
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.5 < coarse / fine < 4.5


# ---------------------------------------------------------------- single transitions


@pytest.mark.parametrize("step", ["nuts", "hmc"])
def test_info_reports_energies_relative_to_the_initial_hamiltonian(step):
    potential = gaussian(np.array([[2.0, 0.9], [0.9, 1.0]]))
    metric = kernels.make_metric(np.array([2.0, 1.0]))
    state = kernels.init(np.array([0.3, -0.4]), potential)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        # Both kernels start by drawing the momentum, so a copy of the generator replays it.
        p0 = metric.sample_momentum(np.random.default_rng(seed))
        energy0 = state.potential_energy + metric.kinetic_energy(p0)
        if step == "nuts":
            new_state, info = kernels.nuts_step(rng, state, potential, 0.4, metric)
        else:
            new_state, info = kernels.hmc_step(rng, state, potential, 0.4, metric, num_steps=5)
        assert info.energy - info.energy_error == pytest.approx(energy0, abs=1e-12)
        assert abs(info.max_energy_error) >= abs(info.energy_error)
        assert 0.0 <= info.acceptance_rate <= 1.0
        assert not info.diverging
        assert new_state.potential_energy == potential(new_state.position)[0]


def test_nuts_tree_depth_and_leapfrog_count_are_consistent():
    metric = kernels.make_metric(np.ones(3))
    rng = np.random.default_rng(3)
    state = kernels.init(np.ones(3), standard_normal)
    depths = set()
    for _ in range(300):
        state, info = kernels.nuts_step(rng, state, standard_normal, 0.3, metric)
        # A trajectory holds 2**depth - 1 accepted steps plus part of a rejected last subtree.
        assert 2**info.tree_depth - 1 <= info.n_steps < 2 ** (info.tree_depth + 1)
        depths.add(info.tree_depth)
    assert len(depths) > 1


def test_nuts_stops_at_max_tree_depth():
    metric = kernels.make_metric(np.ones(2))
    state = kernels.init(np.ones(2), standard_normal)
    _, info = kernels.nuts_step(np.random.default_rng(4), state, standard_normal, 1e-4, metric,
                            max_tree_depth=6)
    assert info.tree_depth == 6
    assert info.n_steps == 2**6 - 1
    assert info.acceptance_rate == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("step", ["nuts", "hmc"])
def test_absurd_step_size_diverges(step):
    metric = kernels.make_metric(np.ones(5))
    state = kernels.init(np.ones(5), standard_normal)
    rng = np.random.default_rng(5)
    for _ in range(10):
        if step == "nuts":
            new_state, info = kernels.nuts_step(rng, state, standard_normal, 1e3, metric)
        else:
            new_state, info = kernels.hmc_step(rng, state, standard_normal, 1e3, metric, num_steps=10)
        assert info.diverging
        assert info.max_energy_error > kernels.DIVERGENCE_THRESHOLD
        assert info.acceptance_rate < 1e-100
        np.testing.assert_array_equal(new_state.position, state.position)


def test_nan_potential_is_a_divergence_not_an_error():
    def nan_outside_unit_ball(q):
        return (0.5 * q.dot(q) if q.dot(q) < 1.0 else np.nan), q

    metric = kernels.make_metric(np.ones(2))
    state = kernels.init(np.array([0.5, 0.5]), nan_outside_unit_ball)
    rng = np.random.default_rng(6)
    divergences = 0
    for _ in range(50):
        state, info = kernels.nuts_step(rng, state, nan_outside_unit_ball, 0.5, metric)
        assert np.isfinite(state.potential_energy)
        divergences += info.diverging
    assert divergences > 0


class StanNutsOracle:
    """Line-by-line transliteration of Stan's ``base_nuts.hpp`` (>= 2.21), diagonal metric.

    It keeps Stan's structure (a mutable current point, vectors passed by
    reference and filled in place), which is very different from the kernel's
    functional recursion; drawing from the same generator in the same order,
    both must produce bit-identical transitions.
    """

    class Point(NamedTuple):
        q: np.ndarray
        p: np.ndarray
        U: float
        g: np.ndarray

    def __init__(self, rng, potential_fn, step_size, inverse_metric, max_depth=10):
        self.rng, self.potential_fn, self.step_size = rng, potential_fn, step_size
        self.minv, self.max_depth = inverse_metric, max_depth

    def hamiltonian(self, z):
        return float(z.U + 0.5 * z.p.dot(self.minv * z.p))

    def evolve(self, epsilon):
        z = self.z
        p = z.p - 0.5 * epsilon * z.g
        q = z.q + epsilon * (self.minv * p)
        U, g = self.potential_fn(q)
        self.z = self.Point(q, p - 0.5 * epsilon * g, U, g)

    @staticmethod
    def log_sum_exp(a, b):
        if a == -math.inf:
            return b
        return a + math.log1p(math.exp(b - a)) if a > b else b + math.log1p(math.exp(a - b))

    @staticmethod
    def compute_criterion(p_sharp_minus, p_sharp_plus, rho):
        return p_sharp_plus.dot(rho) > 0 and p_sharp_minus.dot(rho) > 0

    def transition(self, q, U, g):
        rng, n = self.rng, len(q)
        self.z = self.Point(q, rng.standard_normal(n) * (1.0 / np.sqrt(self.minv)), U, g)
        z_fwd = z_bck = z_sample = self.z
        z_propose = [self.z]
        p_fwd_fwd, p_fwd_bck = self.z.p.copy(), self.z.p.copy()
        p_bck_fwd, p_bck_bck = self.z.p.copy(), self.z.p.copy()
        p_sharp_fwd_fwd = self.minv * self.z.p
        p_sharp_fwd_bck, p_sharp_bck_fwd = p_sharp_fwd_fwd.copy(), p_sharp_fwd_fwd.copy()
        p_sharp_bck_bck = p_sharp_fwd_fwd.copy()
        rho = self.z.p.copy()
        log_sum_weight = 0.0
        H0 = self.hamiltonian(self.z)
        self.n_leapfrog, self.sum_metro_prob, self.divergent = 0, 0.0, False
        self.depth = 0
        while self.depth < self.max_depth:
            rho_fwd, rho_bck = np.zeros(n), np.zeros(n)
            log_sum_weight_subtree = [-math.inf]
            if rng.random() > 0.5:
                self.z = z_fwd
                rho_bck[:] = rho
                p_bck_fwd[:] = p_fwd_fwd
                p_sharp_bck_fwd[:] = p_sharp_fwd_fwd
                valid = self.build_tree(self.depth, z_propose, p_sharp_fwd_bck, p_sharp_fwd_fwd,
                                        rho_fwd, p_fwd_bck, p_fwd_fwd, H0, 1,
                                        log_sum_weight_subtree)
                z_fwd = self.z
            else:
                self.z = z_bck
                rho_fwd[:] = rho
                p_fwd_bck[:] = p_bck_bck
                p_sharp_fwd_bck[:] = p_sharp_bck_bck
                valid = self.build_tree(self.depth, z_propose, p_sharp_bck_fwd, p_sharp_bck_bck,
                                        rho_bck, p_bck_fwd, p_bck_bck, H0, -1,
                                        log_sum_weight_subtree)
                z_bck = self.z
            if not valid:
                break
            self.depth += 1
            if log_sum_weight_subtree[0] > log_sum_weight:
                z_sample = z_propose[0]
            elif rng.random() < math.exp(log_sum_weight_subtree[0] - log_sum_weight):
                z_sample = z_propose[0]
            log_sum_weight = self.log_sum_exp(log_sum_weight, log_sum_weight_subtree[0])
            rho = rho_bck + rho_fwd
            persist = self.compute_criterion(p_sharp_bck_bck, p_sharp_fwd_fwd, rho)
            rho_extended = rho_bck + p_fwd_bck
            persist &= self.compute_criterion(p_sharp_bck_bck, p_sharp_fwd_bck, rho_extended)
            rho_extended = rho_fwd + p_bck_fwd
            persist &= self.compute_criterion(p_sharp_bck_fwd, p_sharp_fwd_fwd, rho_extended)
            if not persist:
                break
        return z_sample, self.sum_metro_prob / self.n_leapfrog

    def build_tree(self, depth, z_propose, p_sharp_beg, p_sharp_end, rho, p_beg, p_end, H0,
                   sign, log_sum_weight):
        if depth == 0:
            self.evolve(sign * self.step_size)
            self.n_leapfrog += 1
            h = self.hamiltonian(self.z)
            if math.isnan(h):
                h = math.inf
            if h - H0 > 1000:
                self.divergent = True
            log_sum_weight[0] = self.log_sum_exp(log_sum_weight[0], H0 - h)
            self.sum_metro_prob += 1 if H0 - h > 0 else math.exp(H0 - h)
            z_propose[0] = self.z
            p_sharp_beg[:] = self.minv * self.z.p
            p_sharp_end[:] = p_sharp_beg
            rho += self.z.p
            p_beg[:] = self.z.p
            p_end[:] = p_beg
            return not self.divergent

        n = len(rho)
        log_sum_weight_init = [-math.inf]
        p_init_end, p_sharp_init_end, rho_init = np.empty(n), np.empty(n), np.zeros(n)
        if not self.build_tree(depth - 1, z_propose, p_sharp_beg, p_sharp_init_end, rho_init,
                               p_beg, p_init_end, H0, sign, log_sum_weight_init):
            return False
        z_propose_final = [self.z]
        log_sum_weight_final = [-math.inf]
        p_final_beg, p_sharp_final_beg, rho_final = np.empty(n), np.empty(n), np.zeros(n)
        if not self.build_tree(depth - 1, z_propose_final, p_sharp_final_beg, p_sharp_end,
                               rho_final, p_final_beg, p_end, H0, sign, log_sum_weight_final):
            return False
        log_sum_weight_subtree = self.log_sum_exp(log_sum_weight_init[0], log_sum_weight_final[0])
        log_sum_weight[0] = self.log_sum_exp(log_sum_weight[0], log_sum_weight_subtree)
        if log_sum_weight_final[0] > log_sum_weight_subtree:
            z_propose[0] = z_propose_final[0]
        elif self.rng.random() < math.exp(log_sum_weight_final[0] - log_sum_weight_subtree):
            z_propose[0] = z_propose_final[0]
        rho_subtree = rho_init + rho_final
        rho += rho_subtree
        persist = self.compute_criterion(p_sharp_beg, p_sharp_end, rho_subtree)
        rho_subtree = rho_init + p_final_beg
        persist &= self.compute_criterion(p_sharp_beg, p_sharp_final_beg, rho_subtree)
        rho_subtree = rho_final + p_init_end
        persist &= self.compute_criterion(p_sharp_init_end, p_sharp_end, rho_subtree)
        return persist


@pytest.mark.parametrize(
    "target, dim, step_size, diverges",
    [("gaussian", 20, 0.15, False), ("gaussian", 20, 0.6, True), ("log_gamma", 2, 1.4, True)],
)
def test_nuts_matches_a_transliteration_of_stan(target, dim, step_size, diverges):
    rng = np.random.default_rng(20)
    if target == "gaussian":
        a = rng.standard_normal((dim, dim))
        potential = gaussian(a @ a.T / dim + 0.1 * np.eye(dim))
    else:
        potential = log_gamma_potential(np.array([1.5, 4.0]))
    inverse_metric = rng.uniform(0.5, 2.0, dim)
    metric = kernels.make_metric(inverse_metric)
    state = kernels.init(rng.standard_normal(dim), potential)
    kernel_rng, oracle_rng = np.random.default_rng(21), np.random.default_rng(21)
    oracle = StanNutsOracle(oracle_rng, potential, step_size, inverse_metric, max_depth=8)
    q, depths, divergences = state.position, set(), 0
    for _ in range(150):
        state, info = kernels.nuts_step(kernel_rng, state, potential, step_size, metric,
                                    max_tree_depth=8)
        z, acceptance_rate = oracle.transition(q, *potential(q))
        q = z.q
        np.testing.assert_array_equal(state.position, z.q)
        assert (info.tree_depth, info.n_steps, info.diverging, info.acceptance_rate) == (
            oracle.depth, oracle.n_leapfrog, oracle.divergent, acceptance_rate)
        assert info.energy == oracle.hamiltonian(z)
        depths.add(info.tree_depth)
        divergences += info.diverging
    # The comparison covered trees of several depths, and divergent subtrees where expected.
    assert len(depths) > 1
    assert (divergences > 0) == diverges


# ---------------------------------------------------------------- sampling correctness


def log_gamma_potential(shape):
    """y = log(x) with x ~ Gamma(shape, 1): a skewed target with known moments."""

    def potential(q):
        e = np.exp(q)
        return float(np.sum(e - shape * q)), e - shape

    return potential


@pytest.mark.parametrize("dense", [False, True])
def test_nuts_kernel_preserves_a_skewed_target(dense):
    # Fixed step size and metric: this checks the transition itself, not adaptation.
    # The step is large (acceptance ~0.5) so that wrong weights in the multinomial or
    # progressive sampling would bias the moments well beyond Monte Carlo error.
    shape = np.array([1.5, 4.0])
    metric = kernels.make_metric(np.array([[0.8, 0.1], [0.1, 0.3]]) if dense else np.array([0.8, 0.3]))
    potential = log_gamma_potential(shape)
    rng = np.random.default_rng(7)
    state = kernels.init(np.zeros(2), potential)
    draws = np.empty((10_000, 2))
    for i in range(len(draws)):
        state, _ = kernels.nuts_step(rng, state, potential, 1.4, metric)
        draws[i] = state.position
    assert_moments(draws, scipy.special.digamma(shape), scipy.special.polygamma(1, shape))


def test_nuts_recovers_100d_standard_normal():
    result = run_chain(standard_normal, np.full(100, 2.0), seed_or_rng=8, draws=1000, tune=500)
    assert not result.stats["diverging"].any()
    assert_moments(result.positions, np.zeros(100), np.ones(100))


def test_dense_adaptation_samples_ill_conditioned_gaussian():
    covariance = ill_conditioned_covariance()
    result = run_chain(gaussian(covariance), np.array([1.0, 1.0]), seed_or_rng=9, draws=2000,
                       tune=1000, dense_mass=True)
    # In the target's whitened coordinates the learned metric should be near identity;
    # its last window estimates it from ~500 nearly independent draws (rel. sd ~ 0.06).
    chol = np.linalg.cholesky(covariance)
    whitened = np.linalg.solve(chol, np.linalg.solve(chol, result.inverse_metric).T)
    assert np.all(np.abs(np.linalg.eigvalsh(whitened) - 1.0) < 0.25)
    # Once whitened the target is a 2-D standard normal, which NUTS steps through quickly.
    assert result.step_size > 0.5
    assert not result.stats["diverging"].any()
    assert_moments(result.positions, np.zeros(2), np.diag(covariance))
    # The correlation of ~0.9998 is only recovered if the long direction is explored.
    whitened_draws = np.linalg.solve(chol, result.positions.T).T
    assert_moments(whitened_draws, np.zeros(2), np.ones(2))


def test_static_hmc_samples_correlated_gaussian():
    covariance = np.array([[4.0, 1.8], [1.8, 1.0]])
    result = run_chain(gaussian(covariance), np.zeros(2), seed_or_rng=10, algorithm="hmc",
                       path_length=3.0, jitter=0.2, draws=3000, tune=500, dense_mass=True)
    assert_moments(result.positions, np.zeros(2), np.diag(covariance))
    assert np.all(result.stats["tree_depth"] == 0)
    steps = result.stats["n_steps"]
    assert np.all(steps == max(1, int(3.0 / result.step_size)))


def test_static_hmc_kernel_preserves_a_skewed_target():
    shape = np.array([2.0])
    potential = log_gamma_potential(shape)
    metric = kernels.make_metric(np.array([0.5]))
    rng = np.random.default_rng(11)
    state = kernels.init(np.zeros(1), potential)
    draws = np.empty((10_000, 1))
    for i in range(len(draws)):
        # Acceptance ~0.9: without the Metropolis correction the mean is off by ~19 sd.
        state, _ = kernels.hmc_step(rng, state, potential, 1.0, metric, num_steps=3, jitter=0.3)
        draws[i] = state.position
    assert_moments(draws, scipy.special.digamma(shape), scipy.special.polygamma(1, shape))
