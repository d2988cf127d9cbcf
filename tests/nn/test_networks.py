"""NNX networks: shapes, clear shape errors, and training through numpyro.contrib.module."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from flax import nnx
from numpyro.contrib.module import nnx_module
from numpyro.infer import SVI, Trace_ELBO

from invppl.nn import MLP, ConvDecoder, ConvEncoder, GaussianHead


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (27, 20, 3)])
def test_encoder_decoder_shapes(shape: tuple[int, int, int]) -> None:
    rngs = nnx.Rngs(0)
    encoder = ConvEncoder(shape, 6, rngs=rngs)
    decoder = ConvDecoder(4, shape, rngs=rngs)
    assert encoder(jnp.ones((3, *shape))).shape == (3, 6)
    assert decoder(jnp.ones((3, 4))).shape == (3, *shape)
    loc, scale = GaussianHead(6, 4, rngs=rngs)(jnp.ones((3, 6)))
    assert loc.shape == scale.shape == (3, 4)
    assert bool(jnp.all(scale > 0))


def test_shape_errors_name_expected_and_got() -> None:
    rngs = nnx.Rngs(0)
    with pytest.raises(
        ValueError,
        match=r"ConvEncoder expects inputs ending in shape \(28, 28, 1\) after one batch axis, "
        r"\(batch, height, width, channels\), got shape \(2, 8, 8, 1\)",
    ):
        ConvEncoder((28, 28, 1), 4, rngs=rngs)(jnp.ones((2, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"MLP expects inputs ending in shape \(3,\), got"):
        MLP(3, (4,), 2, rngs=rngs)(jnp.ones((2, 5)))


def test_networks_train_as_numpyro_modules() -> None:
    """A decoder registered with nnx_module is fitted by SVI: the loss falls a lot."""
    key = jax.random.key(0)
    z_true = jax.random.normal(key, (64, 2))
    weights = jax.random.normal(jax.random.key(1), (2, 5))
    x = jnp.tanh(z_true @ weights)
    net = MLP(2, (16,), 5, rngs=nnx.Rngs(0))

    def model(z, x):
        regress = nnx_module("regress", net)
        with numpyro.plate("data", z.shape[0]):
            numpyro.sample("x", dist.Normal(regress(z), 0.1).to_event(1), obs=x)

    def guide(z, x):
        pass

    svi = SVI(model, guide, optax.adam(1e-2), Trace_ELBO())
    state = svi.init(jax.random.key(2), z_true, x)
    first = float(svi.evaluate(state, z_true, x))
    step = jax.jit(svi.update)
    for _ in range(300):
        state, loss = step(state, z_true, x)
    assert float(loss) < 0.05 * first
    params = svi.get_params(state)
    assert any(name.startswith("regress") for name in params)
    np.testing.assert_array_equal(np.isfinite(float(loss)), True)


@pytest.mark.parametrize("shape", [(8, 8, 1), (2, 2, 8, 8, 1)])
def test_encoder_needs_exactly_one_batch_axis(shape: tuple[int, ...]) -> None:
    # an unbatched image used to be flattened row by row into a confusing MLP error
    encoder = ConvEncoder((8, 8, 1), 3, rngs=nnx.Rngs(0), hidden=8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "ConvEncoder expects inputs ending in shape (8, 8, 1) after one batch axis, "
            f"(batch, height, width, channels), got shape {shape}"
        ),
    ):
        encoder(jnp.zeros(shape))


@pytest.mark.parametrize("shape", [(3,), (2, 2, 3), (2, 4)])
def test_decoder_needs_batch_by_in_features_codes(shape: tuple[int, ...]) -> None:
    decoder = ConvDecoder(3, (8, 8, 1), rngs=nnx.Rngs(0), hidden=8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "ConvDecoder expects inputs ending in shape (3,) after one batch axis, "
            f"(batch, in_features), got shape {shape}"
        ),
    ):
        decoder(jnp.zeros(shape))
    assert decoder(jnp.zeros((1, 3))).shape == (1, 8, 8, 1)


def test_gaussian_head_names_its_input_width() -> None:
    head = GaussianHead(4, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"GaussianHead expects inputs ending in shape \(4,\)"):
        head(jnp.zeros((3, 5)))
    loc, scale = head(jnp.zeros((5, 3, 4)))  # any leading axes
    assert loc.shape == scale.shape == (5, 3, 2)
