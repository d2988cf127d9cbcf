"""Congealing recovers known poses of copies of one image, up to the common offset."""

import jax.numpy as jnp
import numpy as np
import pytest

from invppl.metrics.congealing import congeal
from invppl.transforms import Affine


def _letter() -> jnp.ndarray:
    """An asymmetric 16 x 16 'L' (no rotational symmetry): ``(1, 16, 16, 1)``."""
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 3:13, 6:8, 0] = 1.0
    image[0, 11:13, 6:11, 0] = 1.0
    return jnp.asarray(image)


def test_known_rotations_are_recovered_up_to_their_median() -> None:
    family = Affine(("rotation",))
    angles = np.random.default_rng(0).uniform(-0.5, 0.5, 12)
    moved = family.apply(jnp.repeat(_letter(), 12, axis=0), jnp.asarray(angles)[:, None])
    result = congeal(moved, family, low=-0.8, high=0.8, num_grid=33, rounds=4)
    error = result.poses - (angles - np.median(angles))
    assert np.max(np.abs(error)) < 0.03  # the refined grid's step is 0.0125
    assert result.last_change < 0.01
    assert result.template.shape == (16, 16, 1)


def test_known_shifts_are_recovered() -> None:
    family = Affine(("tx",))
    shifts = np.array([-0.2, -0.1, 0.0, 0.15, 0.25])
    moved = family.apply(jnp.repeat(_letter(), 5, axis=0), jnp.asarray(shifts)[:, None])
    result = congeal(moved, family, low=-0.4, high=0.4, num_grid=33, rounds=3)
    np.testing.assert_allclose(result.poses, shifts - np.median(shifts), atol=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": Affine(("rotation", "tx"))}, "one-parameter"),
        ({"images": jnp.zeros((1, 16, 16, 1))}, "at least 2"),
        ({"low": 0.5, "high": -0.5}, "high > low"),
        ({"num_grid": 2}, "num_grid"),
        ({"images": jnp.full((3, 16, 16, 1), jnp.nan)}, "finite"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    arguments = {
        "images": jnp.zeros((3, 16, 16, 1)),
        "family": Affine(("rotation",)),
        "low": -0.5,
        "high": 0.5,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        congeal(**arguments)
