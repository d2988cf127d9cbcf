"""EdgeFactor: the pair factor N₂ / (N N) against SciPy densities and Monte Carlo."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions.kl import kl_divergence
from scipy import stats

from invppl.distributions import EdgeFactor, edge_kl_term


def _random_factor(seed: int, batch: tuple[int, ...], latent_dim: int) -> EdgeFactor:
    rng = np.random.default_rng(seed)
    loc = rng.normal(0.0, 1.0, (*batch, 2, latent_dim))
    scale = np.exp(rng.normal(0.0, 0.4, (*batch, 2, latent_dim)))
    rho = rng.uniform(-0.9, 0.9, (*batch, latent_dim))
    return EdgeFactor(jnp.asarray(loc), jnp.asarray(scale), jnp.asarray(rho))


def test_log_prob_is_the_log_ratio_of_scipy_densities() -> None:
    factor = _random_factor(0, (3,), 2)
    value = np.random.default_rng(1).normal(0.0, 1.5, (3, 2, 2))
    expected = np.zeros(3)
    for b in range(3):
        for d in range(2):
            m = np.asarray(factor.loc[b, :, d], np.float64)
            s = np.asarray(factor.scale[b, :, d], np.float64)
            r = float(factor.rho[b, d])
            cov = np.array([[s[0] ** 2, r * s[0] * s[1]], [r * s[0] * s[1], s[1] ** 2]])
            z = value[b, :, d]
            expected[b] += (
                stats.multivariate_normal(m, cov).logpdf(z)
                - stats.norm(m[0], s[0]).logpdf(z[0])
                - stats.norm(m[1], s[1]).logpdf(z[1])
            )
    np.testing.assert_allclose(factor.log_prob(jnp.asarray(value)), expected, rtol=1e-4, atol=1e-5)


def test_samples_have_the_pairs_mean_and_covariance() -> None:
    factor = _random_factor(2, (), 3)
    draws = np.asarray(factor.sample(jax.random.key(0), (100_000,)), np.float64)
    assert draws.shape == (100_000, 2, 3)
    np.testing.assert_allclose(draws.mean(0), factor.loc, atol=0.03)
    np.testing.assert_allclose(draws.std(0), factor.scale, rtol=0.02)
    for d in range(3):
        correlation = np.corrcoef(draws[:, 0, d], draws[:, 1, d])[0, 1]
        assert correlation == pytest.approx(float(factor.rho[d]), abs=0.01)


@pytest.mark.parametrize("prior_loc", [0.0, 0.3])
def test_registered_kl_matches_monte_carlo(prior_loc: float) -> None:
    """E_q[log f_q − log f_p], also for a prior with non-standard moments."""
    q = _random_factor(3, (4,), 2)
    p = EdgeFactor(jnp.full((2, 2), prior_loc), jnp.full((2, 2), 1.0 + prior_loc), 0.7)
    draws = q.sample(jax.random.key(1), (200_000,))
    terms = np.asarray(q.log_prob(draws) - p.log_prob(draws), np.float64)
    mean, error = terms.mean(0), terms.std(0) / np.sqrt(terms.shape[0])
    closed = np.asarray(kl_divergence(q, p))
    assert closed.shape == (4,)
    assert np.all(np.abs(closed - mean) < 5 * error + 1e-4), (closed, mean, error)


def test_kl_against_the_standard_prior_is_the_edge_term() -> None:
    q = _random_factor(4, (5,), 3)
    p = EdgeFactor(jnp.zeros((2, 3)), jnp.ones((2, 3)), 0.5)
    expected = edge_kl_term(
        q.loc[:, 0], q.scale[:, 0], q.loc[:, 1], q.scale[:, 1], q.rho, jnp.full(3, 0.5)
    )
    np.testing.assert_allclose(kl_divergence(q, p), expected, rtol=1e-6)
    # independent pairs on both sides: the factor is 1 and the term 0
    flat_q = EdgeFactor(q.loc, q.scale, 0.0)
    np.testing.assert_allclose(kl_divergence(flat_q, EdgeFactor(q.loc, q.scale, 0.0)), 0.0)


def test_works_under_jit_vmap_and_grad() -> None:
    q = _random_factor(5, (3,), 2)
    p = EdgeFactor(jnp.zeros((2, 2)), jnp.ones((2, 2)), 0.6)

    def loss(loc: jax.Array) -> jax.Array:
        return kl_divergence(EdgeFactor(loc, q.scale, q.rho), p).sum()

    gradient = jax.jit(jax.grad(loss))(q.loc)
    step = 1e-3
    bumped = q.loc.at[1, 0, 1].add(step)
    lowered = q.loc.at[1, 0, 1].add(-step)
    numeric = (loss(bumped) - loss(lowered)) / (2 * step)
    assert float(gradient[1, 0, 1]) == pytest.approx(float(numeric), rel=1e-2)
    values = jax.vmap(lambda key: q.sample(key))(jax.random.split(jax.random.key(0), 4))
    assert values.shape == (4, 3, 2, 2)


@pytest.mark.parametrize(
    ("loc", "scale", "rho", "message"),
    [
        (np.zeros(3), np.ones(3), 0.0, r"\(\.\.\., 2, d\)"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 0.0, "positive"),
        (np.zeros((2, 3)), np.ones((2, 3)), 1.0, "correlation"),
        (np.zeros((2, 3)), np.ones((2, 3)), np.zeros(4), "broadcast"),
    ],
)
def test_bad_arguments_are_named(loc, scale, rho, message) -> None:
    with pytest.raises(ValueError, match=message):
        EdgeFactor(loc, scale, rho)


@pytest.mark.parametrize("shape", [(1, 3), (2, 1), (3,), (3, 3), (3, 2)])
def test_log_prob_of_a_wrong_shape_names_both_shapes(shape) -> None:
    # (1, 3), (2, 1) and (3,) used to broadcast against loc (2, 3) into a number
    factor = EdgeFactor(jnp.zeros((2, 3)), jnp.ones((2, 3)), 0.5)
    message = re.escape(
        f"value of shape {shape}, expected shape (..., 2, latent_dim) = (..., 2, 3)"
    )
    with pytest.raises(ValueError, match=message):
        factor.log_prob(jnp.zeros(shape))
    with pytest.raises(ValueError, match=message):
        jax.jit(factor.log_prob)(jnp.zeros(shape))


def test_log_prob_keeps_batch_broadcasting() -> None:
    factor = _random_factor(3, (4,), 3)
    value = jax.random.normal(jax.random.key(0), (5, 1, 2, 3))
    assert factor.log_prob(value).shape == (5, 4)
    assert factor.log_prob(value[0, 0]).shape == (4,)
    np.testing.assert_allclose(
        np.asarray(factor.log_prob(value))[:, 1],
        np.asarray(EdgeFactor(factor.loc[1], factor.scale[1], factor.rho[1]).log_prob(value[:, 0])),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"leading axes \(3,\) that do not broadcast"):
        factor.log_prob(jnp.zeros((3, 2, 3)))


def test_kl_between_factors_of_different_latent_dims_is_refused() -> None:
    # a d = 1 factor used to broadcast against the other's d = 3 (KL 0 here)
    wide = EdgeFactor(jnp.zeros((2, 3)), jnp.ones((2, 3)), 0.5)
    narrow = EdgeFactor(jnp.zeros((2, 1)), jnp.ones((2, 1)), 0.5)
    for q, p in ((wide, narrow), (narrow, wide)):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"one event shape (2, latent_dim), got q's {q.event_shape} and p's {p.event_shape}"
            ),
        ):
            kl_divergence(q, p)
    with pytest.raises(ValueError, match=r"batch shapes do not broadcast, q's \(4,\) and p's \(5,"):
        kl_divergence(_random_factor(0, (4,), 3), _random_factor(1, (5,), 3))
    # batch shapes that broadcast still do, as with NumPyro's own pairs
    assert kl_divergence(_random_factor(0, (4,), 3), wide).shape == (4,)
    assert kl_divergence(_random_factor(0, (4, 1), 3), _random_factor(1, (5,), 3)).shape == (4, 5)
