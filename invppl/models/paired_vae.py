"""Paired weak supervision: a β-VAE on pairs, Ada-GVAE and Ada-ML-VAE (Locatello et al. 2020).

Locatello et al., "Weakly-Supervised Disentanglement Without Compromises"
(ICML 2020). Pairs (x1, x2) share all factors of variation but a few::

    z1, z2 ~ N(0, I)                          latent codes          (pairs, latent_dim)
    x1 ~ p(x | z1),  x2 ~ p(x | z2)           one decoder for both  (pairs, H, W, C)

    q(z | x1) = N(μ1, σ1²), q(z | x2) = N(μ2, σ2²)      one encoder for both
    δ_j = KL(N(μ1j, σ1j²) ‖ N(μ2j, σ2j²))               per pair and dimension
    shared_j  ⇔  δ_j < τ = (min_j δ_j + max_j δ_j) / 2   the adaptive threshold
    on shared dimensions both posteriors are replaced by one aggregate:
        GVAE:   μ = (μ1 + μ2) / 2,  σ² = (σ1² + σ2²) / 2
        ML-VAE: σ² = σ1² σ2² / (σ1² + σ2²),  μ = σ² (μ1 / σ1² + μ2 / σ2²)
                (the product of the two experts)
    q(z1 | x1, x2), q(z2 | x1, x2): the posteriors with shared dimensions aggregated

Fitting the ELBO with the KL weighted by β (``numpyro.handlers.scale`` on
z1, z2 in both model and guide) maximises, per pair,

    E log p(x1 | z1) + E log p(x2 | z2) − β (KL(q(z1) ‖ p) + KL(q(z2) ‖ p)),

twice disentanglement_lib's loss (the mean of the two reconstructions and of
the two KLs). Variants: ``aggregation="none"`` is a β-VAE on the pairs
treated as single images; ``num_factors=f`` gives the *true-k* variant
(disentanglement_lib's ``*_labels``), where the pair's ``changed`` factors
(``(pairs, f)`` bools) say which dimensions are not shared: dimension j < f
encodes factor j and is shared iff factor j did not change; dimensions j ≥ f
are always shared. One difference from disentanglement_lib: its ML-VAE
doubles the product's variance (``2 σ1² σ2² / (σ1² + σ2²)``); here it is the
plain product, as the paper writes it. The mask is a comparison, so no
gradient flows through the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from numpyro.contrib.module import nnx_module

from invppl._checks import check_int
from invppl.distributions.likelihood import Kind, image_likelihood
from invppl.nn import ConvDecoder, GaussianEncoder, with_fitted_params

__all__ = [
    "AGGREGATIONS",
    "PairedVAE",
    "adaptive_shared",
    "aggregate_posteriors",
    "decode_pairs",
    "known_shared",
    "make_paired_vae",
    "paired_vae_guide",
    "paired_vae_model",
    "per_dimension_kl",
]

Aggregation = Literal["none", "gvae", "mlvae"]
AGGREGATIONS: tuple[str, ...] = ("none", "gvae", "mlvae")
"""How shared dimensions are aggregated: not at all (β-VAE), GVAE, ML-VAE."""


def per_dimension_kl(loc1: Array, scale1: Array, loc2: Array, scale2: Array) -> Array:
    """KL(N(loc1, scale1²) ‖ N(loc2, scale2²)) per dimension; all arguments ``(pairs, d)``.

    >>> float(per_dimension_kl(jnp.zeros(1), jnp.ones(1), jnp.ones(1), jnp.ones(1))[0])
    0.5
    """
    ratio = jnp.square(scale1 / scale2)
    return 0.5 * (ratio + jnp.square((loc1 - loc2) / scale2) - 1.0 - jnp.log(ratio))


def adaptive_shared(kl: Array) -> Array:
    """``(pairs, d)`` bools: the dimensions whose KL is below the midpoint of the pair's range.

    τ = (min_j δ_j + max_j δ_j) / 2 per pair (disentanglement_lib bins δ into
    two equal-width bins and shares the lower one); a pair whose KLs are all
    equal (e.g. two identical posteriors) shares every dimension.

    >>> adaptive_shared(jnp.array([[0.1, 5.0, 0.2, 3.0]])).tolist()
    [[True, False, True, False]]
    """
    low, high = kl.min(axis=-1, keepdims=True), kl.max(axis=-1, keepdims=True)
    return (kl < 0.5 * (low + high)) | (high == low)


def known_shared(changed: Array, latent_dim: int) -> Array:
    """``(pairs, latent_dim)`` bools from the true ``(pairs, f)`` changed factors, f ≤ latent_dim.

    Dimension j < f is shared iff factor j is unchanged; dimensions j ≥ f are shared.

    >>> known_shared(jnp.array([[False, True]]), 3).tolist()
    [[True, False, True]]
    """
    pairs, num_factors = changed.shape
    padding = jnp.zeros((pairs, latent_dim - num_factors), dtype=bool)
    return ~jnp.concatenate([changed.astype(bool), padding], axis=-1)


def aggregate_posteriors(
    loc1: Array,
    scale1: Array,
    loc2: Array,
    scale2: Array,
    shared: Array,
    aggregation: Aggregation,
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Both posteriors ``(loc, scale)``, each ``(pairs, d)``, with ``shared`` dimensions aggregated.

    ``aggregation``: ``"gvae"`` averages the means and the variances,
    ``"mlvae"`` takes the product of the two Gaussians, ``"none"`` leaves both as they are.
    """
    if aggregation == "none":
        return (loc1, scale1), (loc2, scale2)
    var1, var2 = jnp.square(scale1), jnp.square(scale2)
    if aggregation == "gvae":
        loc, var = 0.5 * (loc1 + loc2), 0.5 * (var1 + var2)
    elif aggregation == "mlvae":
        var = var1 * var2 / (var1 + var2)
        loc = var * (loc1 / var1 + loc2 / var2)
    else:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    scale = jnp.sqrt(var)
    first = (jnp.where(shared, loc, loc1), jnp.where(shared, scale, scale1))
    second = (jnp.where(shared, loc, loc2), jnp.where(shared, scale, scale2))
    return first, second


def _check_pair(x1: Array, x2: Array) -> None:
    if jnp.ndim(x1) != 4 or jnp.shape(x1) != jnp.shape(x2):
        raise ValueError(
            "x1 and x2 must be image batches of one shape (pairs, height, width, channels), "
            f"got {jnp.shape(x1)} and {jnp.shape(x2)}"
        )


def paired_vae_model(
    x1: Array,
    x2: Array,
    changed: Array | None = None,
    *,
    decoder: nnx.Module,
    latent_dim: int,
    beta: float = 1.0,
    kind: Kind = "continuous_bernoulli",
    scale: float = 0.1,
) -> None:
    """p(z1) p(z2) p(x1 | z1) p(x2 | z2) over pairs ``x1``, ``x2`` ``(pairs, H, W, C)``.

    The prior terms are scaled by ``beta``; ``changed`` is the guide's (unused here).
    """
    _check_pair(x1, x2)
    decode = nnx_module("decoder", decoder)
    prior = dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1)
    with numpyro.plate("pairs", x1.shape[0]):
        with numpyro.handlers.scale(scale=beta):
            z1 = numpyro.sample("z1", prior)
            z2 = numpyro.sample("z2", prior)
        image_likelihood(
            "x1", jax.nn.sigmoid(decode(z1)), None, None, obs=x1, kind=kind, scale=scale
        )
        image_likelihood(
            "x2", jax.nn.sigmoid(decode(z2)), None, None, obs=x2, kind=kind, scale=scale
        )


def paired_vae_guide(
    x1: Array,
    x2: Array,
    changed: Array | None = None,
    *,
    encoder: nnx.Module,
    latent_dim: int,
    beta: float = 1.0,
    aggregation: Aggregation = "gvae",
    num_factors: int | None = None,
    **_: Any,
) -> tuple[Array, Array]:
    """q(z1 | x1, x2) q(z2 | x1, x2) for pairs ``(pairs, H, W, C)``: shared dimensions aggregated.

    Without ``num_factors`` the shared dimensions are found by
    :func:`adaptive_shared` (``changed`` is ignored); with it, ``changed``
    ``(pairs, num_factors)`` is required and :func:`known_shared` decides.
    """
    _check_pair(x1, x2)
    encode = nnx_module("encoder", encoder)
    loc1, scale1 = encode(x1)
    loc2, scale2 = encode(x2)
    if num_factors is None:
        shared = adaptive_shared(per_dimension_kl(loc1, scale1, loc2, scale2))
    else:
        if changed is None or jnp.shape(changed) != (x1.shape[0], num_factors):
            got = None if changed is None else jnp.shape(changed)
            raise ValueError(
                f"the true-k variant needs changed of shape (pairs, num_factors) = "
                f"({x1.shape[0]}, {num_factors}), got {got}"
            )
        shared = known_shared(changed, latent_dim)
    first, second = aggregate_posteriors(loc1, scale1, loc2, scale2, shared, aggregation)
    with numpyro.plate("pairs", x1.shape[0]), numpyro.handlers.scale(scale=beta):
        z1 = numpyro.sample("z1", dist.Normal(*first).to_event(1))
        z2 = numpyro.sample("z2", dist.Normal(*second).to_event(1))
    return z1, z2


@dataclass(frozen=True)
class PairedVAE:
    """A paired VAE's model and guide, networks bound: ``fit(pvae.model, pvae.guide, ...)``.

    The data are ``{"x1": images1, "x2": images2}``, plus ``"changed"`` for the
    true-k variant (``num_factors`` set), e.g. from
    :func:`invppl.datasets.make_paired_shapes`. Param sites ``"decoder$params"``
    and ``"encoder$params"``.
    """

    model: Any
    guide: Any
    latent_dim: int
    image_shape: tuple[int, int, int]
    aggregation: str
    num_factors: int | None
    decoder: nnx.Module
    encoder: nnx.Module


def decode_pairs(pvae: PairedVAE, params: Mapping[str, Any], z: Array) -> Array:
    """The mean images ``(batch, H, W, C)`` of codes ``z`` ``(batch, latent_dim)``."""
    return jax.nn.sigmoid(with_fitted_params(pvae.decoder, "decoder", params)(z))


def make_paired_vae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    seed: int,
    aggregation: Aggregation = "gvae",
    num_factors: int | None = None,
    beta: float = 1.0,
    kind: Kind = "continuous_bernoulli",
    scale: float = 0.1,
    hidden: int = 256,
) -> PairedVAE:
    """Builds convolutional networks for pairs of images of ``image_shape`` and binds them.

    Args:
        image_shape: ``(height, width, channels)``.
        latent_dim: code size d, at least ``num_factors`` for the true-k variant.
        seed: seeds the networks' initialisation.
        aggregation: ``"gvae"`` (Ada-GVAE), ``"mlvae"`` (Ada-ML-VAE) or
            ``"none"`` (a β-VAE on pairs treated as singles).
        num_factors: f, for the true-k variant (the data then carry ``changed``).
        beta: the weight of the KL terms, positive.
        kind, scale: the image likelihood, as
            :func:`~invppl.distributions.likelihood.image_likelihood`; by default
            the continuous Bernoulli, as the paired shapes are anti-aliased
            (NumPyro's Bernoulli gives −inf on fractional pixels).
        hidden: the networks' width.

    >>> pvae = make_paired_vae((8, 8, 1), 6, seed=0, aggregation="mlvae", num_factors=5)
    >>> pvae.aggregation, pvae.num_factors
    ('mlvae', 5)
    """
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if num_factors is not None:
        num_factors = check_int(num_factors, "num_factors", minimum=1)
        if aggregation == "none":
            raise ValueError(
                "the true-k variant (num_factors given) needs aggregation 'gvae' or 'mlvae'"
            )
        if latent_dim < num_factors:
            raise ValueError(
                f"latent_dim {latent_dim} is smaller than num_factors {num_factors}: the true-k "
                "variant gives factor j its own dimension j, so it needs latent_dim ≥ num_factors"
            )
    if isinstance(beta, bool) or not float(beta) > 0:
        raise ValueError(f"beta must be a positive number (a NumPyro scale), got {beta!r}")
    rngs = nnx.Rngs(seed)
    decoder = ConvDecoder(latent_dim, image_shape, rngs=rngs, hidden=hidden)
    encoder = GaussianEncoder(image_shape, latent_dim, rngs=rngs, hidden=hidden)
    model = partial(
        paired_vae_model, decoder=decoder, latent_dim=latent_dim, beta=beta, kind=kind, scale=scale
    )
    guide = partial(
        paired_vae_guide,
        encoder=encoder,
        latent_dim=latent_dim,
        beta=beta,
        aggregation=aggregation,
        num_factors=num_factors,
    )
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    return PairedVAE(model, guide, latent_dim, shape, aggregation, num_factors, decoder, encoder)
