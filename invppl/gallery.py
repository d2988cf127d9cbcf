"""The `invppl gallery` job: every transformation family on a real digit and a sprite.

Writes PNG pictures and a ``manifest.json`` (what was drawn, with what seed,
and the measured round-trip errors) into the output folder.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from invppl._io import write_json
from invppl.datasets import load_mnist, make_dsprites
from invppl.plots import image_grid, save_figure, transformation_gallery
from invppl.transforms import Affine, Colour, CyclicRotation, Flip

__all__ = ["run_gallery"]


def _round_trip(images: Array, rng: np.random.Generator) -> tuple[Any, dict[str, float]]:
    """A random move and its inverse, and two moves composed vs in turn, of ``(n, H, W, C)``.

    Returns the picture and the mean absolute pixel differences; content pushed
    out of the frame by the first warp is lost, which is why composing before
    warping (one resampling) matters.
    """
    family = Affine(("rotation", "tx", "ty", "log_scale_x"), method="bicubic")
    spread = jnp.array([0.6, 0.1, 0.1, 0.2])  # rotation, tx, ty, log-scale
    eta = spread * jnp.asarray(rng.uniform(-1, 1, size=(images.shape[0], 4)), dtype=jnp.float32)
    moved = family.apply(images, eta)
    back = family.apply(moved, -eta)
    second = spread * jnp.asarray(rng.uniform(-1, 1, size=(images.shape[0], 4)), dtype=jnp.float32)
    composed = (family(second) << family(eta)).apply(images, method="bicubic")
    in_turn = family.apply(moved, second)
    figure = image_grid(
        jnp.concatenate([images, moved, back, in_turn, composed]),
        ncols=images.shape[0],
        row_labels=["x", "T_η x", "T_-η T_η x", "in turn", "composed"],
    )
    return figure, {
        "round_trip_mean_abs_error": float(jnp.abs(back - images).mean()),
        "composed_vs_in_turn_mean_abs_difference": float(jnp.abs(composed - in_turn).mean()),
    }


def run_gallery(out: str | os.PathLike[str], *, seed: int = 0) -> dict[str, Any]:
    """Draws each family on a digit and a sprite; returns the manifest it writes."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mnist = load_mnist()
    digits = mnist.images[[int(np.flatnonzero(mnist.labels == d)[0]) for d in (1, 4, 7)]]
    sprites = make_dsprites(3, seed=seed, size=28).images
    images = jnp.asarray(np.concatenate([digits, sprites]))
    pictures: dict[str, str] = {}

    def save(name: str, figure: Any) -> None:
        pictures[name] = save_figure(figure, folder / f"{name}.png").name

    angles = np.linspace(-math.pi, math.pi, 9)[:-1]
    save(
        "rotation",
        transformation_gallery(
            images, Affine(("rotation",)), angles[:, None], labels=[f"{a:+.2f}" for a in angles]
        ),
    )
    shifts = np.array([[-0.3, 0.0], [0.0, 0.0], [0.3, 0.0], [0.0, -0.3], [0.0, 0.3]])
    save(
        "translation",
        transformation_gallery(
            images, Affine(("tx", "ty")), shifts, labels=[f"{x:+.1f},{y:+.1f}" for x, y in shifts]
        ),
    )
    scales = np.array([[-0.5, 0.0, 0.0], [0.4, 0.4, 0.0], [0.0, 0.0, 0.4], [0.0, 0.0, -0.4]])
    save(
        "scale_and_shear",
        transformation_gallery(
            images,
            Affine(("log_scale_x", "log_scale_y", "shear")),
            scales,
            labels=["sx -0.5", "sx,sy +0.4", "shear +.4", "shear -.4"],
        ),
    )
    save(
        "discrete",
        transformation_gallery(
            images, CyclicRotation(4), np.arange(4), labels=["C4: 0", "90°", "180°", "270°"]
        ),
    )
    save("flips", transformation_gallery(images, Flip("horizontal"), np.arange(2)))
    colour = jnp.asarray(digits) * jnp.array([1.0, 0.15, 0.15])
    hues = np.linspace(0, 2 * math.pi, 7)[:-1]
    save(
        "hue",
        transformation_gallery(
            colour, Colour(("hue",)), hues[:, None], labels=[f"{h:.2f}" for h in hues]
        ),
    )

    figure, errors = _round_trip(images, rng)
    save("round_trip_and_composition", figure)
    manifest = {
        "job": "transformations demo",
        "seed": seed,
        "data": {"mnist": mnist.source, "dsprites": "procedural, size 28"},
        "pictures": pictures,
        # mean absolute pixel differences (see _round_trip)
        **errors,
        "machine": {"platform": platform.platform(), "jax_backend": jax.default_backend()},
    }
    write_json(manifest, folder / "manifest.json")
    return manifest
