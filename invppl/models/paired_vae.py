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

**The latent-transformation model** (the research notes behind this
project): no aggregation; instead a low-capacity map f_ψ must carry z1 to a
code whose decoding reconstructs x2::

    m = moved(q(z | x1), q(z | x2))     (pairs, d) 0/1: the units f_ψ may move,
                                        the ``capacity`` largest δ_j, or the
                                        δ_j above the adaptive threshold τ
    f_ψ(z1, z2) = z1 + m ⊙ s(z1, z2)    s = z2 − z1 ("shift") or a small MLP
                                        of (z1, z2) ("mlp")
    objective   = E log p(x1 | z1) + E log p(x2 | z2)
                  − β (KL(q(z1) ‖ p) + KL(q(z2) ‖ p)) + γ E log p(x2 | f_ψ(z1, z2))

The mask is the guide's (a ``Delta`` site ``"moved"``, chosen from the two
posteriors as the Ada threshold is; the model's site is masked out, so it adds
nothing to the objective), and the γ term is a second, γ-scaled observation
of x2. :func:`moved_units_report` says how many units f_ψ moved per pair
against the factors that changed, and whether the moved units encode them.

**Circular codes** (``num_circular=c``): rotation is periodic (a square at 0
and at 90 degrees is one image), which a Euclidean code must cut somewhere.
The first 2c latent dimensions are read in pairs (a, b) and the decoder sees
only their direction (a, b) / ‖(a, b)‖ = (cos θ, sin θ): the prior N(0, I₂)
makes θ uniform, the Gaussian posterior over (a, b) gives θ a projected-normal
posterior, and :func:`readout_codes` reports θ = atan2(b, a) as the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from numpy.typing import ArrayLike
from numpyro.contrib.module import nnx_module

from invppl._checks import check_int
from invppl.distributions.likelihood import Kind, check_kind, image_likelihood
from invppl.nn import MLP, ConvDecoder, GaussianEncoder, with_fitted_params

__all__ = [
    "AGGREGATIONS",
    "LATENT_MAPS",
    "LatentMapVAE",
    "MovedUnitsReport",
    "PairedVAE",
    "adaptive_shared",
    "aggregate_posteriors",
    "circular_code",
    "decode_pairs",
    "encoder_means",
    "known_shared",
    "latent_map",
    "latent_map_guide",
    "latent_map_model",
    "make_latent_map_vae",
    "make_paired_vae",
    "moved_units",
    "moved_units_report",
    "paired_vae_guide",
    "paired_vae_model",
    "per_dimension_kl",
    "readout_codes",
]

Aggregation = Literal["none", "gvae", "mlvae"]
AGGREGATIONS: tuple[str, ...] = ("none", "gvae", "mlvae")
"""How shared dimensions are aggregated: not at all (β-VAE), GVAE, ML-VAE."""

LatentMapKind = Literal["shift", "mlp"]
LATENT_MAPS: tuple[str, ...] = ("shift", "mlp")
"""The latent map's shift s(z1, z2): z2 − z1, or a small MLP of (z1, z2)."""
Capacity = int | Literal["adaptive"]

_EPS = 1e-6


def circular_code(z: Array, num_circular: int) -> Array:
    """``(batch, d)`` codes with the first ``2 · num_circular`` dims, in pairs, put on the circle.

    Each pair (a, b) becomes (a, b) / ‖(a, b)‖ = (cos θ, sin θ); the other
    dimensions are unchanged. This is what the decoder of a model with
    circular codes sees.

    >>> np.round(np.asarray(circular_code(jnp.array([[3.0, 4.0, 7.0]]), 1), float), 3).tolist()
    [[0.6, 0.8, 7.0]]
    """
    if num_circular == 0:
        return z
    pairs = z[..., : 2 * num_circular].reshape(*z.shape[:-1], num_circular, 2)
    norm = jnp.sqrt(jnp.sum(jnp.square(pairs), axis=-1, keepdims=True) + _EPS)
    unit = (pairs / norm).reshape(*z.shape[:-1], 2 * num_circular)
    return jnp.concatenate([unit, z[..., 2 * num_circular :]], axis=-1)


def readout_codes(z: ArrayLike, num_circular: int) -> np.ndarray:
    """``(batch, d − num_circular)`` codes for the metrics: circular pairs' angles, then the rest.

    θ = atan2(b, a) ∈ (−π, π] of each pair (a, b) of the first ``2 · num_circular`` dims.

    >>> readout_codes(np.array([[0.0, 2.0, 5.0]]), 1).round(4).tolist()
    [[1.5708, 5.0]]
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2 * num_circular:
        raise ValueError(
            f"codes must be (batch, d) with d ≥ 2 · num_circular = {2 * num_circular}, "
            f"got shape {z.shape}"
        )
    angles = np.arctan2(z[:, 1 : 2 * num_circular : 2], z[:, 0 : 2 * num_circular : 2])
    return np.concatenate([angles, z[:, 2 * num_circular :]], axis=1)


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


def _paired_likelihood(
    x1: Array,
    x2: Array,
    decode: Callable[[Array], Array],
    *,
    latent_dim: int,
    beta: float,
    kind: Kind,
    scale: float,
) -> tuple[Array, Array]:
    """β-scaled priors on z1, z2 and the two reconstructions, in the plate ``"pairs"``.

    Must be called inside ``numpyro.plate("pairs", x1.shape[0])``; ``decode`` maps
    ``(pairs, d)`` codes to ``(pairs, H, W, C)`` mean images. Returns z1, z2.
    """
    prior = dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1)
    with numpyro.handlers.scale(scale=beta):
        z1 = numpyro.sample("z1", prior)
        z2 = numpyro.sample("z2", prior)
    image_likelihood("x1", decode(z1), None, None, obs=x1, kind=kind, scale=scale)
    image_likelihood("x2", decode(z2), None, None, obs=x2, kind=kind, scale=scale)
    return z1, z2


def _decoder_means(decoder: Callable[[Array], Array], num_circular: int) -> Callable:
    """Codes ``(batch, d)`` → mean images: circular pairs normalised, then the decoder, sigmoid."""
    return lambda z: jax.nn.sigmoid(decoder(circular_code(z, num_circular)))


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
    num_circular: int = 0,
) -> None:
    """p(z1) p(z2) p(x1 | z1) p(x2 | z2) over pairs ``x1``, ``x2`` ``(pairs, H, W, C)``.

    The prior terms are scaled by ``beta``; ``changed`` is the guide's (unused
    here); the first ``2 · num_circular`` dims are circular (:func:`circular_code`).
    """
    _check_pair(x1, x2)
    decode = _decoder_means(nnx_module("decoder", decoder), num_circular)
    with numpyro.plate("pairs", x1.shape[0]):
        _paired_likelihood(x1, x2, decode, latent_dim=latent_dim, beta=beta, kind=kind, scale=scale)


def _sample_codes(
    first: tuple[Array, Array], second: tuple[Array, Array], beta: float
) -> tuple[Array, Array]:
    """Samples z1 ~ N(*first), z2 ~ N(*second), β-scaled; inside the plate ``"pairs"``."""
    with numpyro.handlers.scale(scale=beta):
        z1 = numpyro.sample("z1", dist.Normal(*first).to_event(1))
        z2 = numpyro.sample("z2", dist.Normal(*second).to_event(1))
    return z1, z2


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
    with numpyro.plate("pairs", x1.shape[0]):
        return _sample_codes(first, second, beta)


@dataclass(frozen=True)
class PairedVAE:
    """A paired VAE's model and guide, networks bound: ``fit(pvae.model, pvae.guide, ...)``.

    The data are ``{"x1": images1, "x2": images2}``, plus ``"changed"`` for the
    true-k variant (``num_factors`` set), e.g. from
    :func:`invppl.datasets.make_paired_shapes`. Param sites ``"decoder$params"``
    and ``"encoder$params"``; ``num_circular`` circular code pairs lead the code.
    """

    model: Any
    guide: Any
    latent_dim: int
    image_shape: tuple[int, int, int]
    aggregation: str
    num_factors: int | None
    decoder: nnx.Module
    encoder: nnx.Module
    num_circular: int = 0


def decode_pairs(pvae: PairedVAE | LatentMapVAE, params: Mapping[str, Any], z: Array) -> Array:
    """The mean images ``(batch, H, W, C)`` of codes ``z`` ``(batch, latent_dim)``."""
    decoder = with_fitted_params(pvae.decoder, "decoder", params)
    return _decoder_means(decoder, pvae.num_circular)(z)


def encoder_means(
    pvae: PairedVAE | LatentMapVAE, params: Mapping[str, Any], *, batch_size: int = 256
) -> Callable[[ArrayLike], tuple[np.ndarray, np.ndarray]]:
    """``encode(images)``: q(z | x)'s means and sds, each ``(n, latent_dim)``, of ``(n, H, W, C)``.

    One compiled function for every call: the images go through the fitted
    encoder in chunks of ``batch_size`` (the last one padded), so that many
    calls of different sizes (a metric's group sampler) compile once.
    """
    encoder = with_fitted_params(pvae.encoder, "encoder", params)
    compiled = jax.jit(lambda x: encoder(x))
    chunk = check_int(batch_size, "batch_size", minimum=1)

    def encode(images: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(images, dtype=np.float32)
        if array.ndim != 4 or array.shape[1:] != pvae.image_shape:
            raise ValueError(f"images must be (n, *{pvae.image_shape}), got shape {array.shape}")
        n = array.shape[0]
        padded = np.concatenate([array, np.zeros((-n % chunk, *array.shape[1:]), np.float32)])
        parts = [compiled(padded[i : i + chunk]) for i in range(0, padded.shape[0], chunk)]
        loc = np.concatenate([np.asarray(part[0]) for part in parts])[:n]
        sd = np.concatenate([np.asarray(part[1]) for part in parts])[:n]
        return loc, sd

    return encode


def _check_common(
    image_shape: tuple[int, int, int], latent_dim: int, beta: float, num_circular: int, kind: str
) -> tuple[tuple[int, int, int], int, int]:
    """Checks the arguments every paired factory takes; returns the shape, d and c."""
    check_kind(kind)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    num_circular = check_int(num_circular, "num_circular", minimum=0)
    if 2 * num_circular > latent_dim:
        raise ValueError(
            f"num_circular = {num_circular} circular pairs need latent_dim ≥ {2 * num_circular}, "
            f"got {latent_dim}"
        )
    if isinstance(beta, bool) or not float(beta) > 0:
        raise ValueError(f"beta must be a positive number (a NumPyro scale), got {beta!r}")
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    return shape, latent_dim, num_circular


def _networks(
    shape: tuple[int, int, int], latent_dim: int, seed: int, hidden: int, channels: tuple[int, ...]
) -> tuple[ConvDecoder, GaussianEncoder]:
    """The decoder and encoder of a paired model, initialised from ``seed``."""
    if len(channels) < 1 or any(isinstance(c, bool) or int(c) < 1 for c in channels):
        raise ValueError(f"channels must be positive integers, got {channels!r}")
    rngs = nnx.Rngs(seed)
    down = tuple(int(c) for c in channels)
    decoder = ConvDecoder(latent_dim, shape, rngs=rngs, hidden=hidden, channels=down[::-1])
    encoder = GaussianEncoder(shape, latent_dim, rngs=rngs, hidden=hidden, channels=down)
    return decoder, encoder


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
    channels: tuple[int, ...] = (32, 64),
    num_circular: int = 0,
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
        channels: the encoder's convolution channels (the decoder's, reversed).
        num_circular: c ≥ 0 circular code pairs (the first 2c dims, :func:`circular_code`).

    >>> pvae = make_paired_vae((8, 8, 1), 6, seed=0, aggregation="mlvae", num_factors=5)
    >>> pvae.aggregation, pvae.num_factors
    ('mlvae', 5)
    """
    shape, latent_dim, num_circular = _check_common(
        image_shape, latent_dim, beta, num_circular, kind
    )
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
    decoder, encoder = _networks(shape, latent_dim, seed, hidden, channels)
    model = partial(
        paired_vae_model,
        decoder=decoder,
        latent_dim=latent_dim,
        beta=beta,
        kind=kind,
        scale=scale,
        num_circular=num_circular,
    )
    guide = partial(
        paired_vae_guide,
        encoder=encoder,
        latent_dim=latent_dim,
        beta=beta,
        aggregation=aggregation,
        num_factors=num_factors,
    )
    return PairedVAE(
        model, guide, latent_dim, shape, aggregation, num_factors, decoder, encoder, num_circular
    )


# --- the latent-transformation model ------------------------------------------------------------


def moved_units(kl: Array, capacity: Capacity) -> Array:
    """``(pairs, d)`` bools: the units a latent map may move, from the ``(pairs, d)`` KLs δ.

    ``capacity = c`` (an int) picks the c units of largest δ per pair (ties by
    position); ``"adaptive"`` the units at or above the adaptive threshold,
    the complement of :func:`adaptive_shared` (none if all δ are equal).

    >>> moved_units(jnp.array([[0.1, 5.0, 0.2, 3.0]]), 1).tolist()
    [[False, True, False, False]]
    >>> moved_units(jnp.array([[0.1, 5.0, 0.2, 3.0]]), "adaptive").tolist()
    [[False, True, False, True]]
    """
    if capacity == "adaptive":
        return ~adaptive_shared(kl)
    rank = jnp.argsort(jnp.argsort(-kl, axis=-1, stable=True), axis=-1)
    return rank < capacity


def latent_map(z1: Array, z2: Array, moved: Array, shift: Array | None = None) -> Array:
    """f(z1, z2) = z1 + m ⊙ s, ``(pairs, d)``: only the ``moved`` units m leave z1.

    ``shift`` s defaults to z2 − z1 (the moved units then take z2's values);
    otherwise it is e.g. a network's ``(pairs, d)`` output.

    >>> latent_map(jnp.zeros((1, 3)), jnp.ones((1, 3)), jnp.array([[False, True, False]])).tolist()
    [[0.0, 1.0, 0.0]]
    """
    step = z2 - z1 if shift is None else shift
    return z1 + jnp.where(moved, step, 0.0)


def latent_map_model(
    x1: Array,
    x2: Array,
    changed: Array | None = None,
    *,
    decoder: nnx.Module,
    latent_dim: int,
    map_network: nnx.Module | None = None,
    beta: float = 1.0,
    gamma: float = 1.0,
    kind: Kind = "continuous_bernoulli",
    scale: float = 0.1,
    num_circular: int = 0,
) -> None:
    """The paired VAE's model plus γ · log p(x2 | f_ψ(z1, z2)), pairs ``(pairs, H, W, C)``.

    The guide's ``"moved"`` mask ``(pairs, d)`` enters through a masked site (no
    term of its own); ``map_network`` (an MLP of ``(z1, z2)``, 2d → d) gives the
    shift, or None for z2 − z1. ``changed`` is unused.
    """
    _check_pair(x1, x2)
    decode = _decoder_means(nnx_module("decoder", decoder), num_circular)
    with numpyro.plate("pairs", x1.shape[0]):
        z1, z2 = _paired_likelihood(
            x1, x2, decode, latent_dim=latent_dim, beta=beta, kind=kind, scale=scale
        )
        placeholder = dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1).mask(False)
        moved = numpyro.sample("moved", placeholder) > 0.5
        shift = None
        if map_network is not None:
            shift = nnx_module("latent_map", map_network)(jnp.concatenate([z1, z2], axis=-1))
        mapped = latent_map(z1, z2, moved, shift)
        with numpyro.handlers.scale(scale=gamma):
            image_likelihood("x2_map", decode(mapped), None, None, obs=x2, kind=kind, scale=scale)


def latent_map_guide(
    x1: Array,
    x2: Array,
    changed: Array | None = None,
    *,
    encoder: nnx.Module,
    latent_dim: int,
    capacity: Capacity = 1,
    beta: float = 1.0,
    **_: Any,
) -> tuple[Array, Array, Array]:
    """q(z1 | x1) q(z2 | x2) and the moved units, :func:`moved_units` of their per-dimension KLs.

    Returns z1, z2 ``(pairs, d)`` and the ``(pairs, d)`` mask (a ``Delta`` site ``"moved"``).
    """
    _check_pair(x1, x2)
    encode = nnx_module("encoder", encoder)
    loc1, scale1 = encode(x1)
    loc2, scale2 = encode(x2)
    moved = moved_units(per_dimension_kl(loc1, scale1, loc2, scale2), capacity)
    with numpyro.plate("pairs", x1.shape[0]):
        z1, z2 = _sample_codes((loc1, scale1), (loc2, scale2), beta)
        mask = numpyro.sample("moved", dist.Delta(moved.astype(loc1.dtype), event_dim=1))
    return z1, z2, mask


@dataclass(frozen=True)
class LatentMapVAE:
    """The latent-transformation model and guide, networks bound (see the module docstring).

    Fitted as a :class:`PairedVAE` on ``{"x1": ..., "x2": ...}``; param sites
    ``"decoder$params"``, ``"encoder$params"`` and, for ``latent_map="mlp"``,
    ``"latent_map$params"``.
    """

    model: Any
    guide: Any
    latent_dim: int
    image_shape: tuple[int, int, int]
    capacity: Capacity
    latent_map: str
    decoder: nnx.Module
    encoder: nnx.Module
    map_network: nnx.Module | None
    num_circular: int = 0


def _check_capacity(capacity: object, latent_dim: int) -> Capacity:
    if isinstance(capacity, str) and capacity == "adaptive":
        return "adaptive"
    description = f"an integer in 1..{latent_dim} (the latent dimension) or 'adaptive'"
    return check_int(capacity, "capacity", minimum=1, maximum=latent_dim, description=description)


def make_latent_map_vae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    seed: int,
    capacity: Capacity = "adaptive",
    latent_map: LatentMapKind = "shift",
    gamma: float = 1.0,
    beta: float = 1.0,
    kind: Kind = "continuous_bernoulli",
    scale: float = 0.1,
    hidden: int = 256,
    channels: tuple[int, ...] = (32, 64),
    map_hidden: int = 32,
    num_circular: int = 0,
) -> LatentMapVAE:
    """Builds the latent-transformation model's networks for pairs of ``image_shape`` images.

    Args:
        image_shape, latent_dim, seed, beta, kind, scale, hidden, channels, num_circular:
            as :func:`make_paired_vae`.
        capacity: how many units f_ψ may move per pair: an int c (the c of
            largest KL between the pair's posteriors) or ``"adaptive"`` (those
            above the adaptive threshold), see :func:`moved_units`.
        latent_map: ``"shift"`` (s = z2 − z1, no parameters) or ``"mlp"`` (s a
            one-hidden-layer MLP of (z1, z2) of width ``map_hidden``).
        gamma: the weight of log p(x2 | f_ψ(z1, z2)), non-negative.

    >>> lm = make_latent_map_vae((8, 8, 1), 4, seed=0, capacity=2, latent_map="mlp", hidden=16)
    >>> lm.capacity, lm.map_network is not None
    (2, True)
    """
    shape, latent_dim, num_circular = _check_common(
        image_shape, latent_dim, beta, num_circular, kind
    )
    capacity = _check_capacity(capacity, latent_dim)
    if latent_map not in LATENT_MAPS:
        raise ValueError(f"latent_map must be one of {LATENT_MAPS}, got {latent_map!r}")
    if isinstance(gamma, bool) or not float(gamma) >= 0:
        raise ValueError(f"gamma must be a non-negative number (a NumPyro scale), got {gamma!r}")
    map_hidden = check_int(map_hidden, "map_hidden", minimum=1)
    decoder, encoder = _networks(shape, latent_dim, seed, hidden, channels)
    network = MLP(2 * latent_dim, (map_hidden,), latent_dim, rngs=nnx.Rngs(seed + 1))
    map_network = network if latent_map == "mlp" else None
    model = partial(
        latent_map_model,
        decoder=decoder,
        latent_dim=latent_dim,
        map_network=map_network,
        beta=beta,
        gamma=gamma,
        kind=kind,
        scale=scale,
        num_circular=num_circular,
    )
    guide = partial(
        latent_map_guide, encoder=encoder, latent_dim=latent_dim, capacity=capacity, beta=beta
    )
    return LatentMapVAE(
        model,
        guide,
        latent_dim,
        shape,
        capacity,
        latent_map,
        decoder,
        encoder,
        map_network,
        num_circular,
    )


@dataclass(frozen=True)
class MovedUnitsReport:
    """The result of :func:`moved_units_report`.

    Attributes:
        num_moved: ``(pairs,)`` units moved (or detected as not shared) per pair.
        num_changed: ``(pairs,)`` factors that changed per pair.
        unit_factor: ``(d,)`` the factor each unit encodes (the largest entry of
            its importance row), −1 for a unit holding under ``min_share`` of
            the total importance.
        encodes_changed: ``(pairs,)`` the factors of the moved units are exactly
            the changed factors (and no moved unit encodes nothing).
        fraction_count: the share of pairs with ``num_moved == num_changed``.
        fraction_exact: the share of pairs with ``encodes_changed``.
    """

    num_moved: np.ndarray
    num_changed: np.ndarray
    unit_factor: np.ndarray
    encodes_changed: np.ndarray
    fraction_count: float
    fraction_exact: float


def moved_units_report(
    moved: ArrayLike, changed: ArrayLike, importance: ArrayLike, *, min_share: float = 0.02
) -> MovedUnitsReport:
    """How many units moved per pair against the changed factors, and whether they encode them.

    Args:
        moved: ``(pairs, d)`` bools, the units a latent map moved (or that a
            paired VAE found not shared, ``~adaptive_shared``).
        changed: ``(pairs, f)`` bools, the factors that changed.
        importance: ``(d, f)`` non-negative, how much unit i tells of factor j
            (e.g. :class:`~invppl.metrics.disentanglement.DCIResult`'s
            importance, or :class:`~invppl.metrics.disentanglement.MIGResult`'s
            mutual information).
        min_share: a unit with less than this share of the total importance encodes no factor.

    >>> report = moved_units_report([[True, False, False]], [[False, True]],
    ...                             [[0.0, 0.9], [0.8, 0.1], [0.0, 0.0]])
    >>> report.unit_factor.tolist(), report.encodes_changed.tolist()
    ([1, 0, -1], [True])
    """
    moved, changed = np.asarray(moved, dtype=bool), np.asarray(changed, dtype=bool)
    weights = np.asarray(importance, dtype=np.float64)
    if moved.ndim != 2 or changed.ndim != 2 or moved.shape[0] != changed.shape[0]:
        raise ValueError(
            f"moved (pairs, d) and changed (pairs, f) must share their pairs, got shapes "
            f"{moved.shape} and {changed.shape}"
        )
    if weights.shape != (moved.shape[1], changed.shape[1]):
        raise ValueError(
            f"importance must be (d, f) = {(moved.shape[1], changed.shape[1])}, got {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("importance must be finite, non-negative and not all zero")
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    share = weights.sum(axis=1) / weights.sum()
    unit_factor = np.where(share >= min_share, weights.argmax(axis=1), -1)
    one_hot = unit_factor[:, None] == np.arange(changed.shape[1])[None, :]  # (d, f)
    covered = (moved.astype(np.int64) @ one_hot.astype(np.int64)) > 0  # (pairs, f)
    silent = (moved & (unit_factor < 0)[None, :]).any(axis=1)
    exact = np.all(covered == changed, axis=1) & ~silent
    num_moved, num_changed = moved.sum(axis=1), changed.sum(axis=1)
    return MovedUnitsReport(
        num_moved=num_moved,
        num_changed=num_changed,
        unit_factor=unit_factor,
        encodes_changed=exact,
        fraction_count=float(np.mean(num_moved == num_changed)),
        fraction_exact=float(np.mean(exact)),
    )
