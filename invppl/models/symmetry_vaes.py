"""VAEs that use a learned symmetry (Allingham et al., NeurIPS 2024): AugVAE and InvVAE.

Both take a :class:`~invppl.models.sgm_two_stage.LearnedSymmetry` (the pose
function f, prototypes x̂ = T_f(x)⁻¹(x) and the conditional flow p(η | x̂)).

**AugVAE** is the VAE of :mod:`invppl.models.vae` trained on data resampled from
the SGM: at every step each x is replaced by

    x' = T_η'(x̂),   η' ~ p(η | x̂),   x̂ = T_f(x)⁻¹(x)

(one resampling of x). The model and guide are the VAE's; the resampling is
``augvae.augment``, passed to ``fit(..., augment=augvae.augment)``. Its test
bound on log p(x) is that of the plain VAE model on untouched test data, so
the two compare directly.

**InvVAE** is a VAE over the prototypes; with p(η | x̂) it generates data:

    z ~ N(0, I),   x̂ = sigmoid(f(z)),   η ~ p(η | x̂),   x = T_η(x̂)

fit it with ``fit(invvae.model, invvae.guide, invvae.data(x))`` and draw new
images with :meth:`InvVAE.sample`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from invppl.distributions.likelihood import Kind
from invppl.models.sgm_two_stage import LearnedSymmetry
from invppl.models.vae import VAE, decode, make_vae

__all__ = ["AugVAE", "InvVAE", "make_augvae", "make_invvae"]


@dataclass(frozen=True)
class _VAEWithSymmetry:
    """A VAE (its ``model`` and ``guide`` are the VAE's) and a learned symmetry."""

    vae: VAE
    symmetry: LearnedSymmetry

    @property
    def model(self) -> Any:
        return self.vae.model

    @property
    def guide(self) -> Any:
        return self.vae.guide


@dataclass(frozen=True)
class AugVAE(_VAEWithSymmetry):
    """A VAE and the symmetry whose resampling augments its training data."""

    def augment(self, key: Array, batch: Mapping[str, Array]) -> dict[str, Array]:
        """``batch`` with ``"x"`` resampled by the symmetry (``fit``'s ``augment`` hook)."""
        return self.symmetry.augment(key, batch)


@dataclass(frozen=True)
class InvVAE(_VAEWithSymmetry):
    """A VAE over prototypes and the symmetry that moves them."""

    def data(self, x: ArrayLike, *, batch_size: int = 512) -> dict[str, np.ndarray]:
        """``{"x": prototypes}`` ``(n, H, W, C)`` of images ``x``, the InvVAE's training data."""
        images = np.asarray(x, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != self.vae.image_shape:
            raise ValueError(f"x must have shape (n, *{self.vae.image_shape}), got {images.shape}")
        prototype = jax.jit(self.symmetry.prototype)
        parts = [
            np.asarray(prototype(jnp.asarray(images[start : start + batch_size])))
            for start in range(0, images.shape[0], batch_size)
        ]
        return {"x": np.concatenate(parts) if parts else images}

    def sample(self, key: Array, params: Mapping[str, Any], num: int) -> tuple[Array, Array, Array]:
        """Draws ``num`` new images: returns (prototypes, η, images).

        Shapes ``(num, H, W, C)``, ``(num, k)``, ``(num, H, W, C)``; the images
        are the transformed prototypes (the likelihood's mean, without noise).
        ``params`` are the InvVAE's fitted params.
        """
        z_key, eta_key = jax.random.split(key)
        z = jax.random.normal(z_key, (int(num), self.vae.latent_dim))
        prototypes = decode(self.vae, params, z)
        eta = self.symmetry.sample_eta(eta_key, prototypes)
        return prototypes, eta, self.symmetry.family.apply(prototypes, eta)


def _vae_for(
    symmetry: LearnedSymmetry,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    seed: int,
    kind: Kind,
    scale: float,
    hidden: int,
) -> VAE:
    if not isinstance(symmetry, LearnedSymmetry):
        raise TypeError(
            "symmetry must be a LearnedSymmetry (e.g. fit_two_stage(...).symmetry), "
            f"got {type(symmetry).__name__}"
        )
    return make_vae(image_shape, latent_dim, seed=seed, kind=kind, scale=scale, hidden=hidden)


def make_augvae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    symmetry: LearnedSymmetry,
    *,
    seed: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
    hidden: int = 256,
) -> AugVAE:
    """An AugVAE: :func:`~invppl.models.make_vae`'s networks plus ``symmetry``'s resampling."""
    return AugVAE(_vae_for(symmetry, image_shape, latent_dim, seed, kind, scale, hidden), symmetry)


def make_invvae(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    symmetry: LearnedSymmetry,
    *,
    seed: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
    hidden: int = 256,
) -> InvVAE:
    """An InvVAE: a VAE for the prototypes of ``symmetry`` and its p(η | x̂)."""
    return InvVAE(_vae_for(symmetry, image_shape, latent_dim, seed, kind, scale, hidden), symmetry)
