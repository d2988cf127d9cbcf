"""Image density models on 8-bit pixels: RealNVP, a Gaussian baseline, and bits per dimension.

An 8-bit image holds levels k ∈ {0, …, 255}^D (D = H·W·C), given either as
integers or as floats k/255 in [0, 1]. The models are densities of the
*dequantised* pixels, and the flow sees them through the logit pre-processing
of Dinh et al. (2017)::

    u ~ U[0, 1)^D,      x̃ = (k + u) / 256 ∈ [0, 1)^D        dequantised pixels   (batch, H, W, C)
    s = α + (1 − 2α) x̃,  y = logit(s)                        pre-processing       (batch, H, W, C)
    y ~ p_Y = RealNVP(N(0, I))  (or a Gaussian)              the density of y
    log p(x̃) = log p_Y(y) + Σ_d log[(1 − 2α) / (s_d (1 − s_d))]   change of variables

so ``log p(x̃)`` is a density on the original pixel scale [0, 1]^D. (The
paper writes ``α + (1 − α)·x``; the symmetric ``α + (1 − 2α)·x`` used here,
as in MAF and Glow's code, maps [0, 1] onto [α, 1 − α].) In the NumPyro
model the pre-processing is the transform ``x̃ = (sigmoid(y) − α) / (1 − 2α)``
after the flow, so NumPyro's ``TransformedDistribution`` adds the same
log-determinant.

Bits per dimension (the usual convention, as in RealNVP, Glow and PixelCNN):
the discrete model is P(k) = ∫ over the cell [k/256, (k+1)/256)^D of p(x̃) dx̃,
and by Jensen's inequality with u uniform,
log P(k) ≥ E_u[log p((k + u)/256)] − D·log 256. The reported number is

    bits/dim = −(log p(x̃) − D·log 256) / (D·log 2)

averaged over held-out images, each dequantised once with a seeded u: an
unbiased estimate of an upper bound on the discrete model's code length, in
bits per pixel (8 for the uniform density on [0, 1]^D). A VAE's importance-
weighted bound IWAE_K ≤ log p(x̃) goes through the same formula when its
likelihood is a density on the dequantised pixels in [0, 1] (the continuous
Bernoulli, or a Normal on the logit scale mapped back by this pre-processing);
a Bernoulli likelihood is a probability of binary pixels, not a density, and
cannot be converted (:func:`iwae_bits_per_dim`).

Fit a flow with :func:`invppl.infer.fit`, dequantising each minibatch with
the ``augment`` hook::

    density = make_flow_density((14, 14, 1), seed=0)
    result = fit(density.model, density.guide, {"x": images}, seed=0,
                 num_steps=2000, batch_size=64, augment=density.augment)
    evaluate_bits_per_dim(density.distribution(result.params), test_images, seed=0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
from jax.typing import ArrayLike
from numpyro.contrib.module import nnx_module
from numpyro.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    ReshapeTransform,
    SigmoidTransform,
)

from invppl.distributions.realnvp_flow import RealNVP, initialize_actnorm
from invppl.nn import with_fitted_params

__all__ = [
    "ALPHA",
    "DENSITY_LIKELIHOODS",
    "FlowDensity",
    "bits_per_dim",
    "dequantize",
    "dequantize_batch",
    "evaluate_bits_per_dim",
    "fit_gaussian_baseline",
    "flow_density_guide",
    "flow_density_model",
    "iwae_bits_per_dim",
    "logit_preprocess",
    "make_flow_density",
    "pixel_distribution",
    "pixel_levels",
]

ALPHA = 0.05
"""α of the logit pre-processing (RealNVP's value)."""

LEVELS = 256
"""Pixel levels of 8-bit data."""

DENSITY_LIKELIHOODS: tuple[str, ...] = ("continuous_bernoulli", "logit_normal", "normal")
"""VAE likelihoods that are densities on the dequantised pixels (their IWAE converts)."""


# ---------------------------------------------------------------------------
# 8-bit pixels and their dequantisation


def pixel_levels(x: ArrayLike, what: str = "x") -> np.ndarray:
    """The levels k ``(n, ...)`` (float32, integers 0..255) of 8-bit images, checked.

    ``x`` holds integers in 0..255 (any integer dtype) or floats k/255 in [0, 1].

    Raises:
        ValueError: NaN or infinite values; integers outside 0..255; floats
            outside [0, 1]; floats that are not on the 8-bit grid k/255.

    >>> pixel_levels(np.array([0.0, 1.0, 128 / 255]))
    array([  0., 255., 128.], dtype=float32)
    """
    array = np.asarray(x)
    if array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() > LEVELS - 1):
            raise ValueError(
                f"{what}: integer pixels must lie in 0..255, got {array.min()}..{array.max()}"
            )
        return array.astype(np.float32)
    if array.dtype.kind != "f":
        raise ValueError(f"{what}: expected integer or float pixels, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: the images hold NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"{what}: float pixels must lie in [0, 1] (8-bit levels k/255), got "
            f"{array.min():.4g}..{array.max():.4g}; for 0..255 data pass integers (uint8)"
        )
    levels = array.astype(np.float64) * (LEVELS - 1)
    off_grid = np.abs(levels - np.round(levels))
    if off_grid.size and off_grid.max() > 1e-3:
        raise ValueError(
            f"{what}: not 8-bit data: {int(np.sum(off_grid > 1e-3))} values are not of the form "
            "k/255 (e.g. averaged or rescaled pixels); round them to levels first"
        )
    return np.round(levels).astype(np.float32)


def dequantize(x: ArrayLike, key: Array) -> Array:
    """``x̃ = (k + u) / 256`` ``(n, ...)`` in [0, 1), u ~ U[0, 1) per pixel, for 8-bit ``x``.

    ``x`` is checked by :func:`pixel_levels` (so this runs on concrete arrays;
    inside a compiled step use :func:`dequantize_batch`).

    >>> x̃ = dequantize(np.array([[0.0, 1.0]]), jax.random.key(0))
    >>> bool(0 <= x̃[0, 0] < 1 / 256), bool(255 / 256 <= x̃[0, 1] < 1)
    (True, True)
    """
    levels = jnp.asarray(pixel_levels(x))
    return (levels + jax.random.uniform(key, levels.shape)) / LEVELS


def dequantize_batch(key: Array, batch: Mapping[str, Array]) -> dict[str, Array]:
    """``fit``'s ``augment`` hook: ``batch["x"]`` (floats k/255) → ``(round(255·x) + u) / 256``.

    Traceable (no checks: check the data once with :func:`pixel_levels`);
    other keys pass through unchanged.
    """
    levels = jnp.round(jnp.asarray(batch["x"]) * (LEVELS - 1))
    noise = jax.random.uniform(key, levels.shape, dtype=levels.dtype)
    return {**batch, "x": (levels + noise) / LEVELS}


# ---------------------------------------------------------------------------
# the logit pre-processing and densities on the pixel scale


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    return float(alpha)


def logit_preprocess(x: ArrayLike, alpha: float = ALPHA, event_dim: int = 3) -> tuple[Array, Array]:
    """``y = logit(α + (1 − 2α)·x)`` and ``Σ log |dy/dx|`` over the last ``event_dim`` axes.

    ``log |dy/dx_d| = log(1 − 2α) − log s_d − log(1 − s_d)`` with ``s = α + (1 − 2α)·x``.

    >>> y, log_det = logit_preprocess(jnp.array([0.5]), 0.05, event_dim=1)
    >>> float(y[0]), round(float(log_det), 4)  # log(0.9 / 0.25)
    (0.0, 1.2809)
    """
    alpha = _check_alpha(alpha)
    squashed = alpha + (1 - 2 * alpha) * jnp.asarray(x)
    log_det = math.log(1 - 2 * alpha) - jnp.log(squashed) - jnp.log1p(-squashed)
    axes = tuple(range(-event_dim, 0))
    return jnp.log(squashed) - jnp.log1p(-squashed), jnp.sum(log_det, axes)


def pixel_distribution(base: dist.Distribution, alpha: float = ALPHA) -> dist.Distribution:
    """The law of ``x̃ = (sigmoid(y) − α) / (1 − 2α)`` for ``y ~ base``: a density on pixels.

    ``base`` is a distribution of the pre-processed images y (event ``(H, W, C)``);
    its ``log_prob(x̃)`` is ``log p_Y(y) + Σ log |dy/dx̃|`` (see the module docstring).
    """
    alpha = _check_alpha(alpha)
    to_pixels = ComposeTransform(
        [SigmoidTransform(), AffineTransform(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha))]
    )
    return dist.TransformedDistribution(base, to_pixels)


# ---------------------------------------------------------------------------
# the flow density model


def flow_density_model(x: Array, *, flow: RealNVP, alpha: float = ALPHA) -> None:
    """x̃ ~ p(x̃) = pixels(RealNVP), over dequantised images ``x`` ``(batch, H, W, C)`` in [0, 1).

    One observed site ``"x"``; the flow's weights are the param site ``"flow$params"``.
    """
    if tuple(x.shape[1:]) != flow.event_shape:
        raise ValueError(
            f"flow_density_model: images of shape {tuple(x.shape[1:])} for a flow over "
            f"{flow.event_shape}"
        )
    p_y = nnx_module("flow", flow)()
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", pixel_distribution(p_y, alpha), obs=x)


def flow_density_guide(x: Array, **_: Any) -> None:
    """No latent variables: maximum likelihood (the ELBO is log p(x̃))."""


@dataclass(frozen=True)
class FlowDensity:
    """A RealNVP image density bound into ``model`` / ``guide``, with ``augment`` for ``fit``.

    ``augment`` dequantises each minibatch (:func:`dequantize_batch`); the data
    passed to ``fit`` are 8-bit floats k/255.
    """

    model: Any
    guide: Any
    flow: RealNVP
    image_shape: tuple[int, int, int]
    alpha: float

    @property
    def augment(self) -> Any:
        return dequantize_batch

    def distribution(self, params: Mapping[str, Any]) -> dist.Distribution:
        """The fitted density of dequantised pixels (``params`` from ``fit``)."""
        return pixel_distribution(with_fitted_params(self.flow, "flow", params)(), self.alpha)


def make_flow_density(
    image_shape: tuple[int, int, int],
    *,
    seed: int,
    num_scales: int = 2,
    couplings: int = 2,
    width: int = 32,
    blocks: int = 1,
    alpha: float = ALPHA,
    normalization: Literal["actnorm"] | None = None,
    init_data: ArrayLike | None = None,
) -> FlowDensity:
    """A multi-scale RealNVP over ``image_shape`` ``(H, W, C)`` as a density on 8-bit pixels.

    Args:
        image_shape: ``(H, W, C)``; H and W divisible by ``2**(num_scales − 1)``.
        seed: the weights' initialisation.
        num_scales, couplings, width, blocks: the flow (see :class:`RealNVP`).
        alpha: the pre-processing's α.
        normalization: ``"actnorm"`` (initialised on ``init_data``) or None.
        init_data: 8-bit images ``(n, H, W, C)`` for ActNorm's data-dependent
            initialisation (dequantised with ``seed``).

    Raises:
        ValueError: before building anything, for a bad shape (e.g. an odd size
            for a multi-scale flow), α, normalisation, or ``init_data``.

    >>> density = make_flow_density((4, 4, 1), seed=0, width=4)
    >>> weights = nnx.to_pure_dict(nnx.state(density.flow, nnx.Param))
    >>> density.distribution({"flow$params": weights}).event_shape
    (4, 4, 1)
    """
    alpha = _check_alpha(alpha)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    if normalization not in ("actnorm", None):
        raise ValueError(f'normalization must be "actnorm" or None, got {normalization!r}')
    if (normalization is None) != (init_data is None):
        raise ValueError("give init_data exactly when normalization='actnorm'")
    if init_data is not None:
        init_levels = pixel_levels(init_data, "init_data")
        if init_levels.shape[1:] != tuple(image_shape) or init_levels.shape[0] < 2:
            raise ValueError(
                f"init_data must be (n ≥ 2, *{tuple(image_shape)}), got shape {init_levels.shape}"
            )
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    flow = RealNVP(
        shape,
        num_scales=num_scales,
        couplings=couplings,
        width=width,
        blocks=blocks,
        normalization=normalization,
        rngs=nnx.Rngs(seed),
    )
    if init_data is not None:
        pixels = (init_levels + jax.random.uniform(jax.random.key(seed), init_levels.shape)) / 256
        flow = initialize_actnorm(flow, logit_preprocess(pixels, alpha)[0])
    model = partial(flow_density_model, flow=flow, alpha=alpha)
    return FlowDensity(model, flow_density_guide, flow, shape, alpha)


# ---------------------------------------------------------------------------
# the Gaussian baseline


def fit_gaussian_baseline(
    x: ArrayLike,
    *,
    seed: int,
    alpha: float = ALPHA,
    covariance: Literal["full", "diagonal"] = "full",
    jitter: float = 1e-6,
) -> dist.Distribution:
    """The maximum-likelihood Gaussian of the pre-processed images, as a density on pixels.

    ``x`` ``(n, H, W, C)`` 8-bit images are dequantised once (key ``seed``) and
    pre-processed to ``y`` ``(n, D)``; the Gaussian is ``N(ȳ, Σ̂ + jitter·I)``
    with ``Σ̂ = (1/n) Σ_i (y_i − ȳ)(y_i − ȳ)ᵀ`` (``"full"``) or its diagonal,
    reshaped to ``(H, W, C)`` and mapped by :func:`pixel_distribution`.
    """
    if covariance not in ("full", "diagonal"):
        raise ValueError(f'covariance must be "full" or "diagonal", got {covariance!r}')
    levels = pixel_levels(x)
    if levels.ndim != 4 or levels.shape[0] < 2:
        raise ValueError(f"x must be images (n ≥ 2, H, W, C), got shape {levels.shape}")
    pixels = dequantize(levels.astype(np.uint8), jax.random.key(seed))
    y = np.asarray(logit_preprocess(pixels, alpha)[0], dtype=np.float64).reshape(len(levels), -1)
    mean = y.mean(0)
    centred = y - mean
    if covariance == "full":
        sigma = centred.T @ centred / len(y) + jitter * np.eye(y.shape[1])
        base: dist.Distribution = dist.MultivariateNormal(
            jnp.asarray(mean, jnp.float32),
            scale_tril=jnp.asarray(np.linalg.cholesky(sigma), jnp.float32),
        )
    else:
        sd = np.sqrt(np.mean(centred**2, 0) + jitter)
        base = dist.Normal(jnp.asarray(mean, jnp.float32), jnp.asarray(sd, jnp.float32))
        base = base.to_event(1)
    shaped = dist.TransformedDistribution(
        base, ReshapeTransform(levels.shape[1:], (int(y.shape[1]),))
    )
    return pixel_distribution(shaped, alpha)


# ---------------------------------------------------------------------------
# bits per dimension


def bits_per_dim(log_density: ArrayLike, num_dims: int) -> float:
    """``−(mean log p(x̃) − D·log 256) / (D·log 2)`` for densities on [0, 1]^D, in bits.

    ``log_density`` is one log p(x̃) in nats per image (an array of them is
    averaged). The uniform density (log p = 0) gives 8.

    >>> bits_per_dim(0.0, 784)
    8.0
    """
    if num_dims < 1:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    values = np.asarray(log_density, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("log_density must hold finite values")
    mean = float(np.mean(values))
    return -(mean - num_dims * math.log(LEVELS)) / (num_dims * math.log(2))


def evaluate_bits_per_dim(
    distribution: dist.Distribution, x: ArrayLike, *, seed: int, batch_size: int = 500
) -> float:
    """Held-out bits/dim of a density on pixels: 8-bit ``x`` ``(n, H, W, C)`` dequantised once.

    ``u`` is drawn with key ``seed`` (the same test pixels for every model given
    the same seed); ``log p(x̃)`` is computed ``batch_size`` images at a time.
    """
    levels = pixel_levels(x)
    if levels.shape[1:] != tuple(distribution.event_shape):
        raise ValueError(
            f"images of shape {levels.shape[1:]} for a density over {distribution.event_shape}"
        )
    pixels = dequantize(levels.astype(np.uint8), jax.random.key(seed))
    log_prob = jax.jit(distribution.log_prob)
    chunks = [
        np.asarray(log_prob(pixels[i : i + batch_size])) for i in range(0, len(levels), batch_size)
    ]
    return bits_per_dim(np.concatenate(chunks), math.prod(levels.shape[1:]))


def iwae_bits_per_dim(iwae: float, image_shape: tuple[int, ...], likelihood: str) -> float:
    """A VAE's IWAE bound (nats per image, on dequantised pixels) in bits/dim.

    Valid only when the VAE's likelihood is a density of x̃ ∈ [0, 1]^D
    (:data:`DENSITY_LIKELIHOODS`); then IWAE_K ≤ log p(x̃) and the bits/dim is
    an upper bound, in :func:`bits_per_dim`'s units.

    >>> iwae_bits_per_dim(0.0, (2, 2, 1), "continuous_bernoulli")
    8.0
    """
    if likelihood not in DENSITY_LIKELIHOODS:
        raise ValueError(
            f"a VAE's bound with likelihood {likelihood!r} is not a density on the dequantised "
            f"pixels, so it has no bits/dim; use one of {DENSITY_LIKELIHOODS}"
        )
    return bits_per_dim(iwae, math.prod(image_shape))
