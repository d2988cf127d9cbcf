"""Conditioners for RealNVP's affine couplings: ``b⊙x ↦ (s, t)`` as Flax NNX modules.

:class:`ResNetConditioner` is the convolutional residual network of Dinh et
al. (2017) at CPU scale, for image events ``(..., H, W, C)``; vectors use
:class:`invppl.nn.MLPConditioner` with ``out_shape = (D, 2)``. Both hold
``nnx.Param`` s only (no batch statistics), so they register with NumPyro
through ``numpyro.contrib.module.nnx_module`` without mutable state.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> net = ResNetConditioner(3, width=8, blocks=1, rngs=nnx.Rngs(0))
>>> net(jnp.ones((2, 4, 4, 3))).shape
(2, 4, 4, 3, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from invppl._checks import check_int

__all__ = ["ResNetConditioner"]


class _ResidualBlock(nnx.Module):
    """``h + conv(relu(conv(relu(h))))`` at a fixed width, 3×3 convolutions."""

    def __init__(self, width: int, *, rngs: nnx.Rngs) -> None:
        self.first = nnx.Conv(width, width, (3, 3), padding="SAME", rngs=rngs)
        self.second = nnx.Conv(width, width, (3, 3), padding="SAME", rngs=rngs)

    def __call__(self, h: Array) -> Array:
        return h + self.second(jax.nn.relu(self.first(jax.nn.relu(h))))


class ResNetConditioner(nnx.Module):
    """``(..., H, W, C) → (..., H, W, C, 2)``: a 3×3 convolution in, residual blocks, one out.

    The last axis of the output holds the raw log-scale ``s`` and shift ``t``
    per coordinate (what :class:`invppl.distributions.AffineCoupling` takes).

    Args:
        channels: C, the image's channels (in and out).
        width: the hidden channels.
        blocks: how many residual blocks.
        zero_output: start the output convolution at zero, so that the coupling
            starts as the identity (as Glow does); ``False`` draws it like the others.
        rngs: the initialisation's random streams.
    """

    def __init__(
        self,
        channels: int,
        *,
        width: int = 32,
        blocks: int = 2,
        zero_output: bool = True,
        rngs: nnx.Rngs,
    ) -> None:
        self.channels = check_int(channels, "channels", minimum=1)
        width = check_int(width, "width", minimum=1)
        blocks = check_int(blocks, "blocks", minimum=0)
        self.first = nnx.Conv(self.channels, width, (3, 3), padding="SAME", rngs=rngs)
        self.blocks = nnx.List([_ResidualBlock(width, rngs=rngs) for _ in range(blocks)])
        self.last = nnx.Conv(width, 2 * self.channels, (3, 3), padding="SAME", rngs=rngs)
        if zero_output:
            self.last.kernel[...] = jnp.zeros_like(self.last.kernel[...])
            self.last.bias[...] = jnp.zeros_like(self.last.bias[...])  # type: ignore[index]

    def __call__(self, kept: Array) -> Array:
        if kept.ndim < 3 or kept.shape[-1] != self.channels:
            raise ValueError(
                f"ResNetConditioner: expected (..., H, W, {self.channels}), got shape {kept.shape}"
            )
        leading, image = kept.shape[:-3], kept.shape[-3:]
        h = self.first(kept.reshape((-1, *image)))
        for block in self.blocks:
            h = block(h)
        raw = self.last(jax.nn.relu(h))
        return jnp.reshape(raw, (*leading, *image, 2))
