"""The VAE: its log joint is the textbook sum, and SVI improves its ELBO on real digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.handlers import seed, substitute, trace
from numpyro.infer import SVI, Trace_ELBO

from invppl.datasets import load_digits8
from invppl.models.vae import make_vae


def test_log_joint_is_prior_plus_bernoulli_likelihood() -> None:
    vae = make_vae((8, 8, 1), 3, seed=0)
    x = jnp.asarray(load_digits8().images[:5] > 0.5, dtype=jnp.float32)
    z = jax.random.normal(jax.random.key(1), (5, 3))
    tr = trace(substitute(seed(vae.model, 0), data={"z": z})).get_trace(x)
    decoder = vae.model.keywords["decoder"]
    probs = jnp.clip(jax.nn.sigmoid(decoder(z)), 1e-5, 1 - 1e-5)
    expected_x = (x * jnp.log(probs) + (1 - x) * jnp.log1p(-probs)).sum((1, 2, 3))
    expected_z = jax.scipy.stats.norm.logpdf(z).sum(1)
    np.testing.assert_allclose(tr["x"]["fn"].log_prob(x), expected_x, rtol=1e-5)
    np.testing.assert_allclose(tr["z"]["fn"].log_prob(z), expected_z, rtol=1e-5)


def test_svi_improves_the_elbo_on_digits() -> None:
    vae = make_vae((8, 8, 1), 4, seed=0, hidden=64)
    x = jnp.asarray(load_digits8().images[:256] > 0.5, dtype=jnp.float32)
    svi = SVI(vae.model, vae.guide, optax.adam(3e-3), Trace_ELBO())
    state = svi.init(jax.random.key(0), x)
    start = float(svi.evaluate(state, x)) / 256
    step = jax.jit(svi.update)
    for _ in range(200):
        state, _ = step(state, x)
    end = float(svi.evaluate(state, x)) / 256
    assert np.isfinite(end)
    assert end < start - 5.0  # nats per image


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width, channels\)"):
        make_vae((8, 8), 2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim must be positive"):
        make_vae((8, 8, 1), 0, seed=0)
