"""Closed-form CVAE KL terms against Monte Carlo and a generic k-dimensional Gaussian KL."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from invppl.distributions import (
    PairCorrelation,
    bivariate_kl,
    edge_kl_term,
    gaussian_kl_standard,
    independent_edge_kl_term,
)
from tests.gaussian_oracle import gaussian_kl as gaussian_kl_oracle

# ---------------------------------------------------------------------------
# test-side oracles (float64 NumPy)


def q_pair(mu_i, sigma_i, mu_j, sigma_j, rho):
    cov = np.array(
        [[sigma_i**2, rho * sigma_i * sigma_j], [rho * sigma_i * sigma_j, sigma_j**2]],
        dtype=np.float64,
    )
    return np.array([mu_i, mu_j], dtype=np.float64), cov


def p_pair(tau):
    return np.zeros(2), np.array([[1.0, tau], [tau, 1.0]])


def bivariate_oracle(mu_i, sigma_i, mu_j, sigma_j, rho, tau) -> float:
    return gaussian_kl_oracle(*q_pair(mu_i, sigma_i, mu_j, sigma_j, rho), *p_pair(tau))


def univariate_oracle(mu, sigma) -> float:
    return gaussian_kl_oracle(np.array([mu]), np.array([[sigma**2]]), np.zeros(1), np.eye(1))


def monte_carlo(log_ratio: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of samples of log q − log p."""
    return float(log_ratio.mean()), float(log_ratio.std(ddof=1) / np.sqrt(len(log_ratio)))


def random_params(rng: np.random.Generator, shape: tuple[int, ...]):
    return (
        rng.normal(size=shape),
        rng.uniform(0.3, 2.0, size=shape),
        rng.normal(size=shape),
        rng.uniform(0.3, 2.0, size=shape),
        rng.uniform(-0.9, 0.9, size=shape),
        rng.uniform(-0.9, 0.9, size=shape),
    )


def f32(*arrays):
    return tuple(jnp.asarray(a, dtype=jnp.float32) for a in arrays)


NUM_MC = 200_000
CASES = [
    # mu_i, sigma_i, mu_j, sigma_j, rho_q, tau
    (0.3, 0.8, -0.5, 1.3, 0.6, 0.4),
    (1.2, 0.5, 0.7, 0.9, -0.7, 0.8),
    (-0.4, 1.5, 0.2, 0.6, 0.0, -0.6),
]


# ---------------------------------------------------------------------------
# gaussian_kl_standard


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 1.0), (0.7, 0.4), (-1.5, 2.2)])
def test_gaussian_kl_matches_monte_carlo(mu, sigma):
    rng = np.random.default_rng(0)
    z = rng.normal(mu, sigma, size=NUM_MC)
    mean, se = monte_carlo(stats.norm(mu, sigma).logpdf(z) - stats.norm(0, 1).logpdf(z))
    value = float(gaussian_kl_standard(mu, sigma))
    assert abs(value - mean) < 5 * se + 1e-6, (value, mean, se)
    assert value == pytest.approx(univariate_oracle(mu, sigma), rel=1e-5, abs=1e-6)


def test_gaussian_kl_broadcasts_and_is_zero_at_the_prior():
    mu = jnp.zeros((4, 1, 3))
    sigma = jnp.ones((5, 3))
    out = gaussian_kl_standard(mu, sigma)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(np.asarray(out), 0.0)


# ---------------------------------------------------------------------------
# bivariate_kl


@pytest.mark.parametrize("case", CASES)
def test_bivariate_kl_matches_monte_carlo(case):
    mu_i, sigma_i, mu_j, sigma_j, rho, tau = case
    rng = np.random.default_rng(1)
    mean_q, cov_q = q_pair(mu_i, sigma_i, mu_j, sigma_j, rho)
    mean_p, cov_p = p_pair(tau)
    z = rng.multivariate_normal(mean_q, cov_q, size=NUM_MC)
    log_ratio = stats.multivariate_normal(mean_q, cov_q).logpdf(z) - stats.multivariate_normal(
        mean_p, cov_p
    ).logpdf(z)
    mean, se = monte_carlo(log_ratio)
    value = float(bivariate_kl(*case))
    assert abs(value - mean) < 5 * se + 1e-6, (value, mean, se)


def test_bivariate_kl_matches_generic_gaussian_kl():
    rng = np.random.default_rng(2)
    params = random_params(rng, (7, 5))
    out = np.asarray(bivariate_kl(*f32(*params)))
    assert out.shape == (7, 5)
    expected = np.vectorize(bivariate_oracle)(*params)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)


def test_bivariate_kl_is_zero_when_q_equals_p():
    tau = jnp.array([-0.95, -0.3, 0.0, 0.5, 0.9])
    zeros, ones = jnp.zeros(5), jnp.ones(5)
    out = bivariate_kl(zeros, ones, zeros, ones, tau, tau)
    np.testing.assert_allclose(np.asarray(out), 0.0, atol=1e-6)


def test_bivariate_kl_with_independent_factors_is_the_sum_of_singletons():
    rng = np.random.default_rng(3)
    mu_i, sigma_i, mu_j, sigma_j, _, _ = random_params(rng, (6,))
    pair = bivariate_kl(*f32(mu_i, sigma_i, mu_j, sigma_j), 0.0, 0.0)
    singles = gaussian_kl_standard(*f32(mu_i, sigma_i)) + gaussian_kl_standard(*f32(mu_j, sigma_j))
    np.testing.assert_allclose(np.asarray(pair), np.asarray(singles), rtol=1e-5, atol=1e-6)


@settings(max_examples=40)
@given(
    mu_i=st.floats(-5, 5),
    mu_j=st.floats(-5, 5),
    log_sigma_i=st.floats(-2, 2),
    log_sigma_j=st.floats(-2, 2),
    rho=st.floats(-0.99, 0.99),
    tau=st.floats(-0.99, 0.99),
)
def test_bivariate_kl_is_nonnegative_and_matches_the_oracle(
    mu_i, mu_j, log_sigma_i, log_sigma_j, rho, tau
):
    sigma_i, sigma_j = float(np.exp(log_sigma_i)), float(np.exp(log_sigma_j))
    value = float(bivariate_kl(*f32(mu_i, sigma_i, mu_j, sigma_j, rho, tau)))
    expected = bivariate_oracle(mu_i, sigma_i, mu_j, sigma_j, rho, tau)
    assert expected >= 0
    assert value >= -1e-5  # float32 rounding only
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-5)


# ---------------------------------------------------------------------------
# edge terms


def edge_oracle(mu_i, sigma_i, mu_j, sigma_j, rho, tau) -> np.ndarray:
    """KL(q_ij ‖ p_ij) − KL(q_i ‖ p_0) − KL(q_j ‖ p_0) via the generic oracle, summed over d."""
    pair = np.vectorize(bivariate_oracle)(mu_i, sigma_i, mu_j, sigma_j, rho, tau)
    single = np.vectorize(univariate_oracle)
    return (pair - single(mu_i, sigma_i) - single(mu_j, sigma_j)).sum(axis=-1)


def test_edge_kl_term_matches_the_generic_composition():
    rng = np.random.default_rng(4)
    params = random_params(rng, (2, 6, 4))
    out = np.asarray(edge_kl_term(*f32(*params)))
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out, edge_oracle(*params), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_edge_kl_term_matches_monte_carlo(case):
    mu_i, sigma_i, mu_j, sigma_j, rho, tau = case
    rng = np.random.default_rng(5)
    mean_q, cov_q = q_pair(mu_i, sigma_i, mu_j, sigma_j, rho)
    mean_p, cov_p = p_pair(tau)
    z = rng.multivariate_normal(mean_q, cov_q, size=NUM_MC)
    log_ratio = (
        stats.multivariate_normal(mean_q, cov_q).logpdf(z)
        - stats.multivariate_normal(mean_p, cov_p).logpdf(z)
        - (stats.norm(mu_i, sigma_i).logpdf(z[:, 0]) - stats.norm().logpdf(z[:, 0]))
        - (stats.norm(mu_j, sigma_j).logpdf(z[:, 1]) - stats.norm().logpdf(z[:, 1]))
    )
    mean, se = monte_carlo(log_ratio)
    value = float(edge_kl_term(*(jnp.asarray([v]) for v in case)))
    assert abs(value - mean) < 5 * se + 1e-6, (value, mean, se)


def test_independent_edge_kl_term_matches_its_simple_closed_form():
    rng = np.random.default_rng(6)
    mu_i, sigma_i, mu_j, sigma_j, _, tau = random_params(rng, (3, 5, 4))
    out = np.asarray(independent_edge_kl_term(*f32(mu_i, sigma_i, mu_j, sigma_j, tau)))
    # CVAE_ind, ρ_q = 0: ½ [τ²(σ_i² + σ_j² + μ_i² + μ_j²) − 2τ μ_i μ_j] / (1 − τ²) + ½ log(1 − τ²)
    total = sigma_i**2 + sigma_j**2 + mu_i**2 + mu_j**2
    simple = 0.5 * (tau**2 * total - 2 * tau * mu_i * mu_j) / (1 - tau**2) + 0.5 * np.log(
        1 - tau**2
    )
    np.testing.assert_allclose(out, simple.sum(-1), rtol=1e-4, atol=1e-5)
    with_zero = np.asarray(edge_kl_term(*f32(mu_i, sigma_i, mu_j, sigma_j), 0.0, tau))
    np.testing.assert_allclose(out, with_zero, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        out, edge_oracle(mu_i, sigma_i, mu_j, sigma_j, 0.0, tau), rtol=1e-4, atol=1e-4
    )


def test_edge_term_is_zero_for_independent_prior_and_guide():
    rng = np.random.default_rng(7)
    mu_i, sigma_i, mu_j, sigma_j, _, _ = f32(*random_params(rng, (5, 3)))
    np.testing.assert_array_equal(
        np.asarray(independent_edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, 0.0)), 0.0
    )
    np.testing.assert_array_equal(np.asarray(edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, 0, 0)), 0.0)
    # ...and not zero once either side correlates
    assert np.all(np.asarray(edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, 0.5, 0.0)) > 0)
    assert np.all(np.asarray(independent_edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, 0.5)) != 0)


def test_edge_term_broadcasts_tau_layouts():
    rng = np.random.default_rng(8)
    mu_i, sigma_i, mu_j, sigma_j, rho, _ = f32(*random_params(rng, (2, 6, 3)))
    tau_dim = jnp.asarray([0.1, -0.4, 0.6])
    full = edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, jnp.broadcast_to(tau_dim, (2, 6, 3)))
    np.testing.assert_allclose(
        np.asarray(edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, tau_dim)),
        np.asarray(full),
        rtol=1e-6,
    )
    # a scalar guide correlation still sums over the broadcast latent axis
    assert edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, 0.2, 0.3).shape == (2, 6)


# ---------------------------------------------------------------------------
# jit, grad, errors


def test_jit_and_grads_are_finite():
    rng = np.random.default_rng(9)
    params = f32(*random_params(rng, (4, 3)))

    def loss(*p):
        return (
            edge_kl_term(*p).sum()
            + bivariate_kl(*p).sum()
            + gaussian_kl_standard(p[0], p[1]).sum()
            + independent_edge_kl_term(*p[:4], p[5]).sum()
        )

    np.testing.assert_allclose(
        float(jax.jit(loss)(*params)), float(loss(*params)), rtol=1e-5, atol=1e-5
    )
    grads = jax.jit(jax.grad(loss, argnums=tuple(range(6))))(*params)
    for g in grads:
        assert g.shape == (4, 3)
        assert np.all(np.isfinite(np.asarray(g)))


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=re.escape("mu_i (3,), sigma_i (4,)")):
        bivariate_kl(jnp.zeros(3), jnp.ones(4), 0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=re.escape("mu (2, 3), sigma (2,)")):
        gaussian_kl_standard(jnp.zeros((2, 3)), jnp.ones(2))
    with pytest.raises(ValueError, match="every argument is a scalar"):
        edge_kl_term(0.0, 1.0, 0.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("index", "bad", "message"),
    [
        (1, 0.0, r"sigma_i\[1\] = 0.0"),
        (3, -1.0, r"sigma_j\[1\] = -1.0"),
        (4, 1.0, r"rho_q\[1\] = 1.0"),
        (5, -1.5, r"tau\[1\] = -1.5"),
        (5, float("nan"), r"tau\[1\] = nan"),
    ],
)
def test_concrete_bad_values_raise(index, bad, message):
    params = [jnp.zeros(2), jnp.ones(2), jnp.zeros(2), jnp.ones(2), jnp.zeros(2), jnp.zeros(2)]
    params[index] = params[index].at[1].set(bad)
    with pytest.raises(ValueError, match=message):
        bivariate_kl(*params)
    with pytest.raises(ValueError, match=message):
        edge_kl_term(*params)
    with pytest.raises(ValueError, match=r"sigma = 0.0"):
        gaussian_kl_standard(0.0, 0.0)


def test_traced_bad_values_are_not_checked():
    out = jax.jit(bivariate_kl)(0.0, 1.0, 0.0, 1.0, 0.0, 1.0)
    assert not np.isfinite(float(out))


# ---------------------------------------------------------------------------
# PairCorrelation


def test_pair_correlation_is_exactly_symmetric_and_bounded():
    net = PairCorrelation(6, (32, 16), 4, rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    h_i = 3.0 * jax.random.normal(keys[0], (10, 7, 6))
    h_j = 3.0 * jax.random.normal(keys[1], (10, 7, 6))
    forward, backward = np.asarray(net(h_i, h_j)), np.asarray(net(h_j, h_i))
    assert forward.shape == (10, 7, 4)
    np.testing.assert_array_equal(forward, backward)
    assert np.all(np.abs(forward) < 0.99)
    assert np.std(forward) > 1e-3  # not a constant
    # saturated inputs stay within the bound and keep the KL finite
    huge = net(1e4 * h_i, 1e4 * h_j)
    assert np.all(np.abs(np.asarray(huge)) <= 0.99)
    value = bivariate_kl(0.0, 1.0, 0.0, 1.0, huge, 0.5)
    assert np.all(np.isfinite(np.asarray(value)))


def test_pair_correlation_grads_are_finite_and_feed_the_edge_term():
    net = PairCorrelation(5, 8, 3, rngs=nnx.Rngs(2), max_correlation=0.9)
    rng = np.random.default_rng(10)
    h = jnp.asarray(rng.normal(size=(2, 4, 5)), dtype=jnp.float32)
    mu_i, sigma_i, mu_j, sigma_j, _, tau = f32(*random_params(rng, (4, 3)))

    @nnx.jit
    def loss(model):
        rho = model(h[0], h[1])
        return edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, tau).sum()

    grads = nnx.grad(loss)(net)
    leaves = jax.tree_util.tree_leaves(nnx.state(grads))
    assert leaves
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
    assert any(np.any(np.asarray(leaf) != 0) for leaf in leaves)
    assert np.all(np.abs(np.asarray(net(h[0], h[1]))) < 0.9)


def test_pair_correlation_errors():
    net = PairCorrelation(3, 4, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=re.escape("h_i (2, 3) and h_j (3, 3)")):
        net(jnp.zeros((2, 3)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="ending in 3"):
        net(jnp.zeros((2, 4)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="max_correlation"):
        PairCorrelation(3, 4, 2, rngs=nnx.Rngs(0), max_correlation=1.0)
    with pytest.raises(ValueError, match="latent_dim"):
        PairCorrelation(3, 4, 0, rngs=nnx.Rngs(0))


def test_edge_terms_refuse_a_tau_or_rho_that_widens_the_latent_axis():
    # latent_dim = 1 codes (|E|, 1) with a per-edge (|E|,) tau used to broadcast to
    # (|E|, |E|) and sum every edge's tau into each edge's term
    rng = np.random.default_rng(10)
    mu_i, sigma_i, mu_j, sigma_j, rho, tau = f32(*random_params(rng, (5, 1)))
    per_edge = tau[:, 0]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "edge_kl_term: rho_q (5, 1) and tau (5,) widen the latent axis: the codes (mu_i, "
            "sigma_i, mu_j, sigma_j) broadcast to (5, 1) (d = 1), all six to (5, 5)"
        ),
    ):
        edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, per_edge)
    with pytest.raises(ValueError, match=r"edge_kl_term: rho_q \(5,\) and tau \(5, 1\) widen"):
        edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho[:, 0], tau)
    with pytest.raises(ValueError, match=r"independent_edge_kl_term: rho_q \(\) and tau \(5,\)"):
        independent_edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, per_edge)
    # the per-edge tau as (|E|, 1) is what was meant
    per_dim = np.asarray(edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, per_edge[:, None]))
    assert per_dim.shape == (5,)
    np.testing.assert_allclose(
        per_dim,
        edge_oracle(*(np.asarray(a) for a in (mu_i, sigma_i, mu_j, sigma_j, rho, tau))),
        rtol=1e-4,
        atol=1e-4,
    )


def test_edge_terms_keep_the_allowed_broadcasts():
    rng = np.random.default_rng(11)
    mu_i, sigma_i, mu_j, sigma_j, rho, _ = f32(*random_params(rng, (4, 6, 3)))
    tau_edge = jnp.full((6, 1), 0.3)  # per edge, broadcast over d
    assert edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, tau_edge).shape == (4, 6)
    assert edge_kl_term(mu_i, sigma_i, mu_j, sigma_j, rho, jnp.full((2, 1, 1, 3), 0.3)).shape == (
        2,
        4,
        6,
    )
    # scalar codes: the latent axis comes from rho_q and tau
    assert edge_kl_term(0.0, 1.0, 0.0, 1.0, jnp.zeros(3), jnp.full(3, 0.2)).shape == ()
