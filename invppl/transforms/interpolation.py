"""Resampling a batch of images at arbitrary (sub-pixel) coordinates.

One function, :func:`resample`, does every warp in invppl: a chain of
transformations is composed first and the image is interpolated once.
``jax.scipy.ndimage.map_coordinates`` has orders 0 and 1 only; the bicubic
kernel (Keys 1981, a = -0.5) is written here. All three orders share one
gather-and-weight loop, so fill modes behave identically across them.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["FILL_MODES", "METHODS", "FillMode", "Method", "check_images", "resample"]

Method = Literal["nearest", "bilinear", "bicubic"]
FillMode = Literal["constant", "edge", "wrap", "reflect"]
METHODS: tuple[str, ...] = ("nearest", "bilinear", "bicubic")
FILL_MODES: tuple[str, ...] = ("constant", "edge", "wrap", "reflect")


def check_method_and_fill(method: str, fill_mode: str) -> None:
    """Raises ``ValueError`` for an unknown interpolation method or fill mode."""
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"unknown fill mode {fill_mode!r}; expected one of {FILL_MODES}")


def check_images(images: Array) -> Array:
    """Checks a ``(batch, height, width, channels)`` floating-point image batch."""
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"images must have rank 4 (batch, height, width, channels), got shape {images.shape}"
        )
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(
            f"images must be floating point (e.g. float32 in [0, 1]), got dtype {images.dtype}"
        )
    return images


def _keys_cubic(t: Array) -> Array:
    """Keys' cubic convolution kernel with a = -0.5 (exact for quadratics)."""
    a = -0.5
    t = jnp.abs(t)
    inner = (a + 2) * t**3 - (a + 3) * t**2 + 1
    outer = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return jnp.where(t <= 1, inner, jnp.where(t < 2, outer, 0.0))


def _taps(position: Array, method: str) -> tuple[list[Array], list[Array]]:
    """Integer sample positions and their weights along one axis."""
    if method == "nearest":
        # round half away from zero is not needed: ties are measure-zero for warps
        return [jnp.round(position).astype(jnp.int32)], [jnp.ones_like(position)]
    base = jnp.floor(position)
    frac = position - base
    base = base.astype(jnp.int32)
    if method == "bilinear":
        return [base, base + 1], [1.0 - frac, frac]
    offsets = (-1, 0, 1, 2)
    return [base + o for o in offsets], [_keys_cubic(frac - o) for o in offsets]


def _fold(index: Array, size: int, fill_mode: str) -> tuple[Array, Array]:
    """Maps indices into ``[0, size)`` by the fill mode; returns (index, inside-mask).

    The mask is all-true except for ``"constant"``, where taps outside the image
    read ``cval`` instead of a pixel.
    """
    inside = (index >= 0) & (index < size)
    if fill_mode == "wrap":
        return jnp.mod(index, size), jnp.ones_like(inside)
    if fill_mode == "reflect":
        # symmetric reflection about the edges: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        folded = jnp.mod(index, 2 * size)
        return jnp.where(folded >= size, 2 * size - 1 - folded, folded), jnp.ones_like(inside)
    clamped = jnp.clip(index, 0, size - 1)
    return clamped, inside if fill_mode == "constant" else jnp.ones_like(inside)


def _resample_one(
    image: Array, rows: Array, cols: Array, method: str, fill_mode: str, cval: float | Array
) -> Array:
    height, width, _ = image.shape
    row_idx, row_w = _taps(rows, method)
    col_idx, col_w = _taps(cols, method)
    out = jnp.zeros(rows.shape + image.shape[-1:], dtype=image.dtype)
    for r, wr in zip(row_idx, row_w, strict=True):
        r_in, r_ok = _fold(r, height, fill_mode)
        for c, wc in zip(col_idx, col_w, strict=True):
            c_in, c_ok = _fold(c, width, fill_mode)
            value = image[r_in, c_in]
            value = jnp.where((r_ok & c_ok)[..., None], value, jnp.asarray(cval, image.dtype))
            out = out + (wr * wc)[..., None].astype(image.dtype) * value
    return out


def resample(
    images: Array,
    coordinates: Array,
    *,
    method: Method = "bilinear",
    fill_mode: FillMode = "constant",
    cval: float | Array = 0.0,
) -> Array:
    """Samples each image at the given pixel coordinates.

    Args:
        images: ``(batch, height, width, channels)`` floating-point images.
        coordinates: ``(batch, out_height, out_width, 2)`` positions in pixel units
            as ``(row, column)``; ``(0, 0)`` is the centre of the top-left pixel.
        method: ``"nearest"``, ``"bilinear"`` (default) or ``"bicubic"``.
        fill_mode: what lies outside the image: ``"constant"`` (``cval``),
            ``"edge"`` (nearest border pixel), ``"wrap"`` (periodic) or
            ``"reflect"`` (mirrored about the border).
        cval: the fill value for ``fill_mode="constant"``: a scalar, or one
            value per channel ``(channels,)``.

    Returns:
        ``(batch, out_height, out_width, channels)`` resampled images.

    Raises:
        ValueError: the images are not rank 4; ``coordinates`` are not
            ``(batch, out_height, out_width, 2)`` for the images' batch; ``cval``
            is neither a scalar nor ``(channels,)`` (a ``(3,)`` fill on
            one-channel images would otherwise turn them into three-channel ones).
        TypeError: the images are not floating point.

    Differentiable in ``coordinates`` (almost everywhere for bilinear, everywhere
    for bicubic) and in ``images``; works under ``jit``, ``vmap`` and ``grad``.

    >>> import jax.numpy as jnp
    >>> image = jnp.arange(4.0).reshape(1, 2, 2, 1)
    >>> coords = jnp.array([[[[0.5, 0.5]]]])  # the centre of the four pixels
    >>> float(resample(image, coords)[0, 0, 0, 0])
    1.5
    """
    check_method_and_fill(method, fill_mode)
    images = check_images(images)
    coordinates = jnp.asarray(coordinates)
    channels = images.shape[-1]
    if jnp.ndim(cval) != 0 and jnp.shape(cval) != (channels,):
        raise ValueError(
            f"cval must be a scalar or have one value per channel ({channels},), got shape "
            f"{jnp.shape(cval)} for images of shape {images.shape}"
        )
    if coordinates.ndim != 4 or coordinates.shape[-1] != 2:
        raise ValueError(
            "coordinates must have shape (batch, out_height, out_width, 2), "
            f"got {coordinates.shape}"
        )
    if coordinates.shape[0] != images.shape[0]:
        raise ValueError(
            f"coordinates batch {coordinates.shape[0]} does not match images batch "
            f"{images.shape[0]}"
        )
    coordinates = coordinates.astype(images.dtype)
    return jax.vmap(_resample_one, in_axes=(0, 0, 0, None, None, None))(
        images, coordinates[..., 0], coordinates[..., 1], method, fill_mode, cval
    )
