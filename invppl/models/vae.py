"""The variational auto-encoder, the baseline of every comparison.

    z ~ p(z) = N(0, I)                       latent code           (batch, latent_dim)
    x ~ p(x | z) = Likelihood(sigmoid(f(z)))  observation           (batch, H, W, C)
    q(z | x) = N(μ(x), diag σ(x)²)           amortised guide

f is a Flax NNX decoder and (μ, σ) a Flax NNX encoder, both registered with
NumPyro through ``numpyro.contrib.module.nnx_module`` so that SVI owns their
parameters. The model and guide are plain functions of the data; bind the
networks with :func:`make_vae` (or ``functools.partial``) and fit them with
:func:`invppl.infer.fit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from numpyro.contrib.module import nnx_module

from invppl.distributions.likelihood import Kind, check_kind, image_likelihood
from invppl.nn import ConvDecoder, GaussianEncoder, with_fitted_params

__all__ = ["VAE", "decode", "make_vae", "vae_guide", "vae_model"]


def vae_model(
    x: Array,
    *,
    decoder: nnx.Module,
    latent_dim: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
) -> Array:
    """p(z) p(x | z) over a batch ``x`` of shape ``(batch, height, width, channels)``."""
    decode = nnx_module("decoder", decoder)
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        mean = jax.nn.sigmoid(decode(z))
        return image_likelihood("x", mean, None, None, obs=x, kind=kind, scale=scale)


def vae_guide(x: Array, *, encoder: nnx.Module, **_: Any) -> Array:
    """q(z | x) = N(μ(x), σ(x)) for a batch ``x`` of shape ``(batch, height, width, channels)``."""
    encode = nnx_module("encoder", encoder)
    loc, scale = encode(x)
    with numpyro.plate("data", x.shape[0]):
        return numpyro.sample("z", dist.Normal(loc, scale).to_event(1))


@dataclass(frozen=True)
class VAE:
    """A VAE's model and guide with their networks bound; ``fit(vae.model, vae.guide, ...)``.

    ``decoder`` and ``encoder`` are the initial networks (param sites
    ``"decoder$params"`` and ``"encoder$params"``); see :meth:`decode`.
    """

    model: Any
    guide: Any
    latent_dim: int
    image_shape: tuple[int, int, int]
    decoder: nnx.Module
    encoder: nnx.Module


def decode(vae: VAE, params: Mapping[str, Any], z: Array) -> Array:
    """The mean image sigmoid(f(z)) ``(batch, H, W, C)`` of codes ``z`` ``(batch, latent_dim)``.

    ``params`` are fitted params (e.g. ``FitResult.params``).
    """
    return jax.nn.sigmoid(with_fitted_params(vae.decoder, "decoder", params)(z))


def make_vae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    seed: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
    hidden: int = 256,
) -> VAE:
    """Builds convolutional networks for images of ``image_shape`` and binds them.

    >>> vae = make_vae((8, 8, 1), 2, seed=0)
    >>> vae.latent_dim
    2
    """
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be positive, got {latent_dim}")
    check_kind(kind)
    rngs = nnx.Rngs(seed)
    decoder = ConvDecoder(latent_dim, image_shape, rngs=rngs, hidden=hidden)
    encoder = GaussianEncoder(image_shape, latent_dim, rngs=rngs, hidden=hidden)
    model = partial(vae_model, decoder=decoder, latent_dim=latent_dim, kind=kind, scale=scale)
    guide = partial(vae_guide, encoder=encoder)
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    return VAE(model, guide, latent_dim, shape, decoder, encoder)
