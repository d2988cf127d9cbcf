"""The VAE with a RealNVP prior and a conditional coupling guide.

Oracles: the Gaussian VAE of :mod:`invppl.models.vae` (an identity flow must
give its ELBO exactly), and a 2-D quadrature (a trained-looking guide flow is a
normalised density).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from flax import nnx

from invppl.infer import elbo_per_example, fit, iwae_bound
from invppl.models import make_vae
from invppl.models.flow_density import dequantize
from invppl.models.flow_vae import ConditionalCouplings, make_flow_vae

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    levels = np.where(rng.random((6, *SHAPE)) < 0.6, 0, rng.integers(0, 256, (6, *SHAPE)))
    return np.asarray(dequantize(levels.astype(np.uint8), jax.random.key(0)))


def test_identity_flows_give_the_gaussian_vae_bounds_exactly(pixels) -> None:
    """A RealNVP prior and a coupling guide at their (zero) initialisation are the
    identity: same draws of z, same log p(z) and log q(z | x), so the same bounds."""
    options = {"seed": 3, "hidden": 16}
    gaussian = make_vae(SHAPE, 2, kind="continuous_bernoulli", **options)
    flowed = make_flow_vae(SHAPE, 2, prior="realnvp", guide="coupling", **options)
    for bound in (elbo_per_example, iwae_bound):  # one compiled function serves both
        expected = bound(gaussian.model, gaussian.guide, {}, {"x": pixels}, seed=1, num_samples=4)
        ours = bound(flowed.model, flowed.guide, {}, {"x": pixels}, seed=1, num_samples=4)
        assert ours == pytest.approx(expected, abs=1e-4)


def test_a_random_conditional_guide_flow_is_a_normalised_density() -> None:
    """Non-zero couplings (identity_init=False): ∫∫ q(z | c) dz = 1 on a 2-D grid."""
    flow = ConditionalCouplings(
        2, 3, couplings=3, width=8, depth=1, rngs=nnx.Rngs(1), identity_init=False
    )
    base = dist.Normal(jnp.array([0.2, -0.1]), jnp.array([0.8, 1.1])).to_event(1)
    q = flow(base, jnp.array([0.5, -1.0, 2.0]))
    grid = jnp.linspace(-8.0, 8.0, 321)
    points = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    density = jnp.exp(jax.jit(q.log_prob)(points))
    cell = float(grid[1] - grid[0]) ** 2
    assert float(density.sum()) * cell == pytest.approx(1.0, abs=2e-3)
    z = q.sample(jax.random.key(0), (4,))
    assert not np.allclose(q.log_prob(z), base.log_prob(z))  # the flow does something


def test_a_flow_vae_fits_with_dequantised_minibatches() -> None:
    rng = np.random.default_rng(1)
    images = (rng.integers(0, 256, (32, *SHAPE)) / 255).astype(np.float32)
    vae = make_flow_vae(
        SHAPE, 2, seed=0, prior="realnvp", guide="coupling", likelihood="logit_normal", hidden=8
    )
    result = fit(
        vae.model,
        vae.guide,
        {"x": images},
        seed=0,
        num_steps=3,
        batch_size=16,
        augment=vae.augment,
        progress=False,
    )
    assert np.all(np.isfinite(result.losses))
    sites = {"decoder$params", "encoder$params", "prior_flow$params", "guide_flow$params"}
    assert sites | {"x_scale"} <= set(result.params)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="prior"):
        make_flow_vae(SHAPE, 2, seed=0, prior="maf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guide"):
        make_flow_vae(SHAPE, 2, seed=0, guide="iaf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="likelihood"):
        make_flow_vae(SHAPE, 2, seed=0, likelihood="bernoulli")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim"):
        make_flow_vae(SHAPE, 1, seed=0, prior="realnvp")
    flow = ConditionalCouplings(2, 4, couplings=1, width=4, depth=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="context"):
        flow(dist.Normal(jnp.zeros(2), 1.0).to_event(1), jnp.zeros(3))
