"""Grids of images and galleries of transformations.

Figures are built with matplotlib's object API (no global state, no display)
and saved atomically: written to a temporary file, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from jax import Array
from matplotlib.figure import Figure

from invppl._io import atomic_path
from invppl.transforms.family import TransformFamily

__all__ = ["image_grid", "save_figure", "transformation_gallery"]


def _as_displayable(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    if image.shape[-1] == 1:
        return image[..., 0], "gray_r"
    return np.clip(image, 0.0, 1.0), None


def image_grid(
    images: Array | np.ndarray,
    *,
    ncols: int | None = None,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 1.2,
) -> Figure:
    """Draws ``(n, height, width, channels)`` images on a grid, row by row.

    Grey images (1 channel) are drawn dark-on-light; RGB images as they are.
    """
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, height, width, 1 or 3), got {array.shape}")
    count = array.shape[0]
    if count == 0:
        raise ValueError("image_grid needs at least one image")
    ncols = ncols or min(count, 8)
    nrows = -(-count // ncols)
    figure = Figure(figsize=(cell_size * ncols, cell_size * nrows + 0.3), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.set_axis_off()
            continue
        picture, cmap = _as_displayable(array[index])
        ax.imshow(picture, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        if titles is not None and index < len(titles):
            ax.set_title(titles[index], fontsize=7)
        if row_labels is not None and index % ncols == 0 and index // ncols < len(row_labels):
            ax.set_ylabel(row_labels[index // ncols], fontsize=7)
    return figure


def transformation_gallery(
    images: Array | np.ndarray,
    family: TransformFamily,
    etas: Array | np.ndarray,
    *,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Each row one image, each column one η applied to it.

    Args:
        images: ``(rows, height, width, channels)``.
        family: any transformation family.
        etas: ``(columns, family.dim)`` parameter vectors (or integer indices for
            discrete families).
        labels: optional column titles.
    """
    images = np.asarray(images)
    etas = np.asarray(etas)
    rows, columns = images.shape[0], etas.shape[0]
    repeated = np.repeat(images, columns, axis=0)
    tiled = np.tile(etas, (rows,) + (1,) * (etas.ndim - 1))
    moved = np.asarray(family.apply(jnp.asarray(repeated), jnp.asarray(tiled)))
    titles = list(labels) if labels is not None else None
    return image_grid(moved, ncols=columns, titles=titles)


def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Saves a figure atomically (temporary file in the same folder, then rename)."""
    target = Path(path)
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=dpi, format=target.suffix.lstrip(".") or None)
    return target
