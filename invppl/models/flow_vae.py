"""The VAE with a RealNVP prior p(z) and a conditional coupling-flow guide q(z | x).

The model and the guide::

    z ~ p(z) = N(0, I)  or  RealNVP(N(0, I))                       code      (batch, d)
    x̃ ~ p(x̃ | z) = Lik(f(z))                                       pixels    (batch, H, W, C)
    q(z | x̃) = N(μ(x̃), diag σ(x̃)²)  or  T_K ∘ … ∘ T_1 of it,       guide
        T_k(z) = b_k⊙z + (1 − b_k)⊙(z·exp(s_k(b_k⊙z, c)) + t_k(b_k⊙z, c)),
        c = (μ(x̃), log σ(x̃))                                        the encoder's context

Each T_k is an :class:`~invppl.distributions.AffineCoupling` whose conditioner
(an MLP of the kept coordinates and c) is closed over the context, so the
guide is a ``TransformedDistribution`` of the Gaussian and the density
``log q(z | x̃) = log N(z₀; μ, σ) − Σ_k Σ (1 − b_k)⊙s_k`` is exact. Both flows
start at the identity (their conditioners' last layers are zero), so before
training the model and guide are the Gaussian VAE's exactly.

The likelihoods are densities of dequantised pixels x̃ ∈ [0, 1)^D (train with
``fit(..., augment=vae.augment)``), so that the IWAE bound converts to bits per
dimension (:func:`invppl.models.flow_density.iwae_bits_per_dim`):

- ``"continuous_bernoulli"``: ``CB(sigmoid(f(z)))`` per pixel, a density on [0, 1];
- ``"logit_normal"``: ``y = logit(α + (1 − 2α)·x̃) ~ N(f(z), diag σ²)``, σ a
  learned per-pixel param ``"x_scale"``, mapped back to the pixels by
  :func:`~invppl.models.flow_density.pixel_distribution` (the flow density's
  pre-processing and its log-determinant).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from numpyro.contrib.module import nnx_module
from numpyro.distributions import constraints

from invppl.distributions.likelihood import likelihood_distribution
from invppl.distributions.realnvp import AffineCoupling, alternating_mask
from invppl.distributions.realnvp_flow import RealNVP
from invppl.models.flow_density import ALPHA, dequantize_batch, pixel_distribution
from invppl.nn import ConvDecoder, GaussianEncoder, MLPConditioner

__all__ = [
    "ConditionalCouplings",
    "FlowVAE",
    "flow_vae_guide",
    "flow_vae_model",
    "make_flow_vae",
]

Likelihood = Literal["continuous_bernoulli", "logit_normal"]
LIKELIHOODS: tuple[str, ...] = ("continuous_bernoulli", "logit_normal")


def _zero_last_layer(net: nnx.Module) -> None:
    """Makes an :class:`MLPConditioner` output 0 everywhere, so its coupling is the identity."""
    if not isinstance(net, MLPConditioner):
        raise TypeError(f"expected an MLPConditioner, got {type(net).__name__}")
    last = net.layers[-1]
    last.kernel[...] = jnp.zeros_like(last.kernel[...])
    last.bias[...] = jnp.zeros_like(last.bias[...])  # type: ignore[index]


class ConditionalCouplings(nnx.Module):
    """``K`` affine couplings on ``z`` ``(..., d)`` whose conditioners also see a context c.

    Called as ``flow(base, context)`` with ``base`` a distribution of event
    ``(d,)`` and ``context`` ``(..., context_dim)``, returns the
    ``TransformedDistribution`` of ``base`` through the couplings (alternating
    masks), each conditioner ``MLP(b⊙z, c) → (s, t)`` ``(..., d, 2)``.

    >>> flow = ConditionalCouplings(2, 3, couplings=2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> q = flow(dist.Normal(jnp.zeros((4, 2)), 1.0).to_event(1), jnp.ones((4, 3)))
    >>> q.batch_shape, q.event_shape
    ((4,), (2,))
    """

    def __init__(
        self,
        latent_dim: int,
        context_dim: int,
        *,
        couplings: int,
        width: int,
        depth: int,
        rngs: nnx.Rngs,
        identity_init: bool = True,
    ) -> None:
        self.latent_dim, self.context_dim = int(latent_dim), int(context_dim)
        self.masks = tuple(
            tuple(bool(b) for b in alternating_mask(self.latent_dim, parity=i))
            for i in range(couplings)
        )
        nets = [
            MLPConditioner(
                (self.latent_dim,),
                (self.latent_dim, 2),
                self.context_dim,
                width=width,
                depth=depth,
                rngs=rngs,
            )
            for _ in range(couplings)
        ]
        if identity_init:
            for net in nets:
                _zero_last_layer(net)
        self.nets = nnx.List(nets)

    def __call__(self, base: dist.Distribution, context: Array) -> dist.TransformedDistribution:
        if base.event_shape != (self.latent_dim,) or context.shape[-1:] != (self.context_dim,):
            raise ValueError(
                f"ConditionalCouplings: expected a base of event ({self.latent_dim},) and a "
                f"context (..., {self.context_dim}), got {base.event_shape} and {context.shape}"
            )
        parts = [
            AffineCoupling(np.asarray(mask), partial(net, context=context), log_scale_bound=3.0)
            for mask, net in zip(self.masks, self.nets, strict=True)
        ]
        return dist.TransformedDistribution(base, parts)


def _likelihood(
    decoded: Array, likelihood: Likelihood, alpha: float, image_shape: tuple[int, ...]
) -> dist.Distribution:
    """p(x̃ | z) from the decoder's output ``f(z)`` ``(batch, H, W, C)``."""
    if likelihood == "continuous_bernoulli":
        return likelihood_distribution(jax.nn.sigmoid(decoded), "continuous_bernoulli")
    scale = numpyro.param("x_scale", jnp.full(image_shape, 0.5), constraint=constraints.positive)
    return pixel_distribution(dist.Normal(decoded, scale).to_event(3), alpha)


def flow_vae_model(
    x: Array,
    *,
    decoder: nnx.Module,
    latent_dim: int,
    prior_flow: RealNVP | None = None,
    likelihood: Likelihood = "continuous_bernoulli",
    alpha: float = ALPHA,
) -> None:
    """p(z) p(x̃ | z) over dequantised images ``x`` ``(batch, H, W, C)`` in [0, 1).

    ``prior_flow`` None: ``p(z) = N(0, I)``; else its weights are ``"prior_flow$params"``.
    """
    decode = nnx_module("decoder", decoder)
    if prior_flow is None:
        prior: dist.Distribution = dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1)
    else:
        prior = nnx_module("prior_flow", prior_flow)()
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", prior)
        numpyro.sample("x", _likelihood(decode(z), likelihood, alpha, x.shape[1:]), obs=x)


def flow_vae_guide(
    x: Array, *, encoder: nnx.Module, guide_flow: ConditionalCouplings | None = None, **_: Any
) -> Array:
    """q(z | x̃): the encoder's Gaussian, pushed through ``guide_flow`` given c = (μ, log σ)."""
    loc, scale = nnx_module("encoder", encoder)(x)
    q: dist.Distribution = dist.Normal(loc, scale).to_event(1)
    if guide_flow is not None:
        context = jnp.concatenate([loc, jnp.log(scale)], axis=-1)
        q = nnx_module("guide_flow", guide_flow)(q, context)
    with numpyro.plate("data", x.shape[0]):
        return numpyro.sample("z", q)


@dataclass(frozen=True)
class FlowVAE:
    """A VAE with optional flows; ``fit(vae.model, vae.guide, data, augment=vae.augment)``.

    ``prior_flow`` / ``guide_flow`` are None for the Gaussian versions.
    """

    model: Any
    guide: Any
    latent_dim: int
    image_shape: tuple[int, int, int]
    likelihood: Likelihood
    decoder: nnx.Module
    encoder: nnx.Module
    prior_flow: RealNVP | None
    guide_flow: ConditionalCouplings | None

    @property
    def augment(self) -> Any:
        """Dequantises each minibatch of 8-bit floats k/255 (``fit``'s ``augment``)."""
        return dequantize_batch


def make_flow_vae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    seed: int,
    prior: Literal["gaussian", "realnvp"] = "gaussian",
    guide: Literal["gaussian", "coupling"] = "gaussian",
    likelihood: Likelihood = "continuous_bernoulli",
    alpha: float = ALPHA,
    hidden: int = 256,
    flow_couplings: int = 4,
    flow_width: int = 64,
    flow_depth: int = 2,
) -> FlowVAE:
    """Builds the networks (the decoder and encoder first, drawn as :func:`make_vae` draws them).

    Raises:
        ValueError: before building anything, for an unknown ``prior``,
            ``guide`` or ``likelihood``, a bad shape, or ``latent_dim < 2`` with a flow.

    >>> vae = make_flow_vae((8, 8, 1), 2, seed=0, prior="realnvp", guide="coupling", hidden=16)
    >>> vae.prior_flow is not None, vae.guide_flow is not None
    (True, True)
    """
    if prior not in ("gaussian", "realnvp"):
        raise ValueError(f'prior must be "gaussian" or "realnvp", got {prior!r}')
    if guide not in ("gaussian", "coupling"):
        raise ValueError(f'guide must be "gaussian" or "coupling", got {guide!r}')
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    if latent_dim < 1 or (latent_dim < 2 and (prior, guide) != ("gaussian", "gaussian")):
        raise ValueError(f"latent_dim must be ≥ 2 for a flow (≥ 1 without), got {latent_dim}")
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    rngs = nnx.Rngs(seed)
    decoder = ConvDecoder(latent_dim, shape, rngs=rngs, hidden=hidden)
    encoder = GaussianEncoder(shape, latent_dim, rngs=rngs, hidden=hidden)
    prior_flow = None
    if prior == "realnvp":
        prior_flow = RealNVP(
            (latent_dim,), couplings=flow_couplings, width=flow_width, blocks=flow_depth, rngs=rngs
        )
        for step in prior_flow.steps:
            _zero_last_layer(step.conditioner)
    guide_flow = None
    if guide == "coupling":
        guide_flow = ConditionalCouplings(
            latent_dim,
            2 * latent_dim,
            couplings=flow_couplings,
            width=flow_width,
            depth=flow_depth,
            rngs=rngs,
        )
    model = partial(
        flow_vae_model,
        decoder=decoder,
        latent_dim=latent_dim,
        prior_flow=prior_flow,
        likelihood=likelihood,
        alpha=alpha,
    )
    bound_guide = partial(flow_vae_guide, encoder=encoder, guide_flow=guide_flow)
    return FlowVAE(
        model, bound_guide, latent_dim, shape, likelihood, decoder, encoder, prior_flow, guide_flow
    )
