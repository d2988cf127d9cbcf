"""Affine transformations of images as exponentials of Lie-algebra generators.

A parameter vector η = (η_1, ..., η_k) over chosen generators G_i gives the
affine map

    A(η) = expm(Σ_i η_i G_i)            (3×3, homogeneous coordinates)

so η = 0 is the identity and A(η)⁻¹ = expm(−Σ_i η_i G_i). An image is moved by
A as (T_A x)(u) = x(A⁻¹ u): the content at u came from A⁻¹ u. Composition is
matrix multiplication, T_B T_A = T_{BA}, so a chain is interpolated once.

Coordinates are normalised: x points right, y points up, the origin is the
image centre, and the longer side spans [-1, 1]. So ``tx = 1`` moves content
half an image width to the right and a positive ``rotation`` turns it
counter-clockwise as displayed (row 0 at the top).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.linalg import expm

from invppl.transforms.interpolation import (
    FillMode,
    Method,
    check_images,
    check_method_and_fill,
    resample,
)
from invppl.transforms.support import (
    Interval,
    NamedParameters,
    Periodic,
    Support,
    check_names,
)

__all__ = [
    "AFFINE_NAMES",
    "GENERATORS",
    "Affine",
    "AffineMap",
    "affine_matrix",
    "sampling_grid",
    "warp",
]


def _generator(entries: dict[tuple[int, int], float]) -> np.ndarray:
    g = np.zeros((3, 3))
    for index, value in entries.items():
        g[index] = value
    return g


GENERATORS: dict[str, np.ndarray] = {
    "tx": _generator({(0, 2): 1.0}),
    "ty": _generator({(1, 2): 1.0}),
    "rotation": _generator({(0, 1): -1.0, (1, 0): 1.0}),
    "log_scale_x": _generator({(0, 0): 1.0}),
    "log_scale_y": _generator({(1, 1): 1.0}),
    "shear": _generator({(0, 1): 1.0, (1, 0): 1.0}),
}
"""The Lie-algebra generators, in normalised homogeneous coordinates (x, y, 1)."""

AFFINE_NAMES: tuple[str, ...] = tuple(GENERATORS)

DEFAULT_SUPPORTS: dict[str, Support] = {
    "tx": Interval(-1.0, 1.0),
    "ty": Interval(-1.0, 1.0),
    "rotation": Periodic(),
    "log_scale_x": Interval(-math.log(2.0), math.log(2.0)),
    "log_scale_y": Interval(-math.log(2.0), math.log(2.0)),
    "shear": Interval(-0.5, 0.5),
}


def check_parameters(eta: Array, names: Sequence[str], what: str) -> Array:
    """η as a float array after checking that its last axis has one entry per name.

    Args:
        eta: ``(..., k)`` parameters, any leading axes.
        names: the k parameter names, in η's order.
        what: the caller, for messages.

    Raises:
        ValueError: η is a scalar or its last axis is not k (indexing or
            contracting it would otherwise read or drop entries silently).
    """
    eta = jnp.asarray(eta)
    if eta.ndim == 0 or eta.shape[-1] != len(names):
        raise ValueError(
            f"{what}: eta of shape {eta.shape}, expected shape (..., {len(names)}): one entry "
            f"per parameter {tuple(names)}"
        )
    if not jnp.issubdtype(eta.dtype, jnp.floating):
        eta = eta.astype(jnp.result_type(float))
    return eta


def check_eta(eta: Array, dim: int, batch: int | None = None) -> Array:
    """Checks that η has trailing size ``dim`` (and leading ``batch`` if given)."""
    eta = jnp.asarray(eta)
    if eta.ndim == 0 or eta.shape[-1] != dim:
        raise ValueError(f"eta must have a trailing axis of size {dim}, got shape {eta.shape}")
    if batch is not None and eta.ndim == 2 and eta.shape[0] not in (1, batch):
        raise ValueError(f"eta has {eta.shape[0]} rows but the images batch is {batch}")
    if eta.ndim > 2:
        raise ValueError(f"eta must have shape ({dim},) or (batch, {dim}), got {eta.shape}")
    if not jnp.issubdtype(eta.dtype, jnp.floating):
        eta = eta.astype(jnp.result_type(float))
    return eta


def affine_matrix(eta: Array, names: Sequence[str]) -> Array:
    """expm(Σ_i η_i G_i) for the named generators.

    Args:
        eta: ``(..., k)`` parameters, one per name.
        names: ``k`` generator names from :data:`AFFINE_NAMES`.

    Returns:
        ``(..., 3, 3)`` homogeneous affine matrices.

    Raises:
        ValueError: an unknown or repeated name; η's last axis is not k.
    """
    names = check_names(names, AFFINE_NAMES, "affine transformation")
    eta = check_parameters(eta, names, "affine_matrix")
    generators = jnp.asarray(np.stack([GENERATORS[n] for n in names]), dtype=eta.dtype)
    algebra = jnp.einsum("...k,kij->...ij", eta, generators)
    flat = algebra.reshape((-1, 3, 3))
    return jax.vmap(expm)(flat).reshape(algebra.shape)


def sampling_grid(height: int, width: int, sampling_matrix: Array) -> Array:
    """Pixel coordinates to read for each output pixel, given A⁻¹.

    Args:
        height, width: the image size.
        sampling_matrix: ``(batch, 3, 3)`` inverse maps A⁻¹ in normalised coordinates.

    Returns:
        ``(batch, height, width, 2)`` (row, column) source positions in pixels.

    Raises:
        ValueError: ``sampling_matrix`` is not ``(batch, 3, 3)`` (a ``(batch, 4, 3)``
            would otherwise lose its extra rows silently).
    """
    if sampling_matrix.ndim != 3 or sampling_matrix.shape[1:] != (3, 3):
        raise ValueError(
            f"sampling_matrix must have shape (batch, 3, 3), got {sampling_matrix.shape}"
        )
    scale = max(height, width) / 2.0
    rows = jnp.arange(height, dtype=sampling_matrix.dtype)
    cols = jnp.arange(width, dtype=sampling_matrix.dtype)
    row_grid, col_grid = jnp.meshgrid(rows, cols, indexing="ij")
    x = (col_grid - (width - 1) / 2.0) / scale
    y = -(row_grid - (height - 1) / 2.0) / scale
    points = jnp.stack([x, y, jnp.ones_like(x)], axis=-1)  # (H, W, 3)
    source = jnp.einsum("bij,hwj->bhwi", sampling_matrix, points)
    src_col = source[..., 0] * scale + (width - 1) / 2.0
    src_row = -source[..., 1] * scale + (height - 1) / 2.0
    return jnp.stack([src_row, src_col], axis=-1)


def _warp_by_inverse(
    images: Array, inverse: Array, method: Method, fill_mode: FillMode, cval: float
) -> Array:
    batch, height, width, _ = images.shape
    if inverse.shape not in ((3, 3), (1, 3, 3), (batch, 3, 3)):
        raise ValueError(
            f"affine maps of shape {inverse.shape} for {batch} images of shape {images.shape}; "
            f"expected (3, 3), (1, 3, 3) or ({batch}, 3, 3)"
        )
    inverse = jnp.broadcast_to(inverse, (batch, 3, 3)).astype(images.dtype)
    return resample(
        images,
        sampling_grid(height, width, inverse),
        method=method,
        fill_mode=fill_mode,
        cval=cval,
    )


def warp(
    images: Array,
    matrix: Array,
    *,
    method: Method = "bilinear",
    fill_mode: FillMode = "constant",
    cval: float = 0.0,
) -> Array:
    """Moves each image by an affine matrix A, reading x(A⁻¹ u) at every pixel u.

    Args:
        images: ``(batch, height, width, channels)``.
        matrix: ``(3, 3)`` or ``(batch, 3, 3)`` affine maps in normalised coordinates.

    Returns:
        ``(batch, height, width, channels)`` warped images.

    Raises:
        ValueError: the images are not rank 4; ``matrix`` is not ``(3, 3)``,
            ``(1, 3, 3)`` or ``(batch, 3, 3)``; an unknown method or fill mode.
    """
    images = check_images(images)
    check_method_and_fill(method, fill_mode)
    matrix = jnp.asarray(matrix)
    if matrix.shape[-2:] != (3, 3):  # before the inverse, which needs square matrices
        raise ValueError(f"matrix must have shape (3, 3) or (batch, 3, 3), got {matrix.shape}")
    return _warp_by_inverse(images, jnp.linalg.inv(matrix), method, fill_mode, cval)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class AffineMap:
    """A batch of affine maps with their inverses, composable before warping.

    ``(b << a)`` is "a, then b" (matrix ``b.matrix @ a.matrix``), so a chain of
    maps costs one interpolation when applied.

    Attributes:
        matrix: ``(..., 3, 3)`` the maps A.
        inverse_matrix: ``(..., 3, 3)`` their inverses A⁻¹.
    """

    matrix: Array
    inverse_matrix: Array

    @classmethod
    def from_matrix(cls, matrix: Array) -> AffineMap:
        matrix = jnp.asarray(matrix)
        return cls(matrix, jnp.linalg.inv(matrix))

    def __lshift__(self, first: AffineMap) -> AffineMap:
        return AffineMap(self.matrix @ first.matrix, first.inverse_matrix @ self.inverse_matrix)

    def inverse(self) -> AffineMap:
        return AffineMap(self.inverse_matrix, self.matrix)

    def apply(
        self,
        images: Array,
        *,
        method: Method = "bilinear",
        fill_mode: FillMode = "constant",
        cval: float = 0.0,
    ) -> Array:
        """Warps ``(batch, height, width, channels)`` images by these maps, once."""
        images = check_images(images)
        check_method_and_fill(method, fill_mode)
        return _warp_by_inverse(images, self.inverse_matrix, method, fill_mode, cval)


@dataclass(frozen=True)
class Affine(NamedParameters):
    """The affine transformation family over a chosen subset of generators.

    Args:
        names: generator names, any subset of ``("tx", "ty", "rotation",
            "log_scale_x", "log_scale_y", "shear")``, in the order η lists them.
        supports: optional overrides of the declared supports, by name.
        method: interpolation, ``"bilinear"`` (default), ``"nearest"`` or ``"bicubic"``.
        fill_mode: ``"constant"`` (default), ``"edge"``, ``"wrap"`` or ``"reflect"``.
        cval: fill value for ``"constant"``.

    >>> import jax.numpy as jnp
    >>> family = Affine(("rotation", "tx"))
    >>> [p.name for p in family.parameters]
    ['rotation', 'tx']
    >>> images = jnp.zeros((2, 8, 8, 1))
    >>> family.apply(images, jnp.array([[0.3, 0.1], [-0.2, 0.0]])).shape
    (2, 8, 8, 1)
    """

    names: tuple[str, ...]
    supports: Mapping[str, Support] = field(default_factory=dict)
    method: Method = "bilinear"
    fill_mode: FillMode = "constant"
    cval: float = 0.0
    FAMILY: ClassVar[str] = "affine transformation"
    DEFAULT_SUPPORTS: ClassVar[Mapping[str, Support]] = DEFAULT_SUPPORTS

    def __post_init__(self) -> None:
        self._check_declaration()
        check_method_and_fill(self.method, self.fill_mode)

    def matrix(self, eta: Array) -> Array:
        """``(..., k)`` parameters → ``(..., 3, 3)`` maps A(η)."""
        return affine_matrix(eta, self.names)

    def __call__(self, eta: Array) -> AffineMap:
        """``(..., k)`` parameters → the :class:`AffineMap` A(η), inverse expm(−Σ η_i G_i)."""
        eta = jnp.asarray(eta)
        return AffineMap(affine_matrix(eta, self.names), affine_matrix(-eta, self.names))

    def apply(self, images: Array, eta: Array) -> Array:
        """Moves ``(batch, height, width, channels)`` images by ``(batch, k)`` or ``(k,)`` η."""
        images = check_images(images)
        eta = check_eta(eta, self.dim, images.shape[0])
        inverse = affine_matrix(-eta, self.names)
        return _warp_by_inverse(images, inverse, self.method, self.fill_mode, self.cval)
