"""Alignment to templates by search (invppl.transforms.align), against known poses."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from invppl.transforms import Affine, align_poses, fit_templates, gaussian_blur, search_widths
from invppl.transforms.support import Interval
from tests.transforms.shapes import ROTATION, SIZE, letter, spread, turned


def test_the_search_finds_rotations_on_the_whole_circle() -> None:
    angles = np.array([-3.0, -1.7, -0.4, 0.0, 0.9, 2.2, 3.1])
    template = gaussian_blur(jnp.asarray(letter("L"))[None], 1.0, radius=3)
    poses, nearest, cost = align_poses(
        ROTATION, turned("L", angles), jnp.zeros((7, 1)), template, half_widths=(math.pi,)
    )
    error = np.angle(np.exp(1j * (np.asarray(poses)[:, 0] - angles)))
    assert np.max(np.abs(error)) < 0.03, error
    assert np.all(np.asarray(nearest) == 0)
    assert np.all(np.asarray(cost) >= -1e-3)


def test_the_search_finds_shifts_one_parameter_at_a_time() -> None:
    family = Affine(("tx", "ty"))
    shifts = np.array([[0.2, -0.1], [-0.25, 0.15], [0.0, 0.3]], np.float32)
    image = jnp.asarray(letter("T"))[None]
    moved = family.apply(jnp.repeat(image, 3, axis=0), jnp.asarray(shifts))
    template = gaussian_blur(image, 1.0, radius=3)
    poses, _, _ = align_poses(
        family, moved, jnp.zeros((3, 2)), template, half_widths=search_widths(family)
    )
    np.testing.assert_allclose(np.asarray(poses), shifts, atol=0.02)


def test_the_nearest_template_is_the_shape() -> None:
    templates = gaussian_blur(jnp.stack([letter("L"), letter("T")]), 1.0, radius=3)
    images = jnp.concatenate([turned("L", np.array([0.5, -2.0])), turned("T", np.array([1.0]))])
    _, nearest, _ = align_poses(
        ROTATION, images, jnp.zeros((3, 1)), templates, half_widths=(math.pi,)
    )
    assert np.asarray(nearest).tolist() == [0, 0, 1]


def test_fitted_templates_make_the_frames_of_one_class_agree() -> None:
    """Starting poses equivariant but each in its own frame: after fitting, one frame a shape."""
    rng = np.random.default_rng(0)
    angles = {kind: rng.uniform(-math.pi, math.pi, 16) for kind in ("L", "T")}
    images = jnp.concatenate([turned(kind, angles[kind]) for kind in ("L", "T")])
    truth = np.concatenate([angles["L"], angles["T"]])
    # the network's frames: the truth plus an offset per example (two styles per shape)
    frames = np.where(np.arange(32) % 2 == 0, 0.6, -0.4) + rng.normal(0.0, 0.1, 32)
    start = (truth + frames)[:, None]
    fitted = fit_templates(ROTATION, images, start, count=4, seed=0, rounds=2, num_grid=32)
    poses = np.asarray(fitted.align(ROTATION, images, jnp.asarray(start, jnp.float32)))[:, 0]
    for part in (slice(0, 16), slice(16, 32)):
        assert spread(start[part, 0] - truth[part]) > 0.4
        assert spread(poses[part] - truth[part]) < 0.04, spread(poses[part] - truth[part])
    assert fitted.templates.shape == (4, SIZE, SIZE, 1)
    assert int(fitted.sizes.sum()) == 32


def test_search_widths_follow_the_supports() -> None:
    family = Affine(("rotation", "tx"), supports={"tx": Interval(-0.4, 0.4)})
    assert search_widths(family) == pytest.approx((math.pi, 0.2))
    assert search_widths(family, {"rotation": 0.5}) == pytest.approx((0.5, 0.2))
    with pytest.raises(ValueError, match="half_width names \\['spin'\\] are not in"):
        search_widths(family, {"spin": 1.0})
    with pytest.raises(ValueError, match="half_width of 'tx' must be positive"):
        search_widths(family, {"tx": -1.0})


def test_bad_input_is_named_before_any_work() -> None:
    images = turned("L", np.zeros(3))
    start = np.zeros((3, 1))
    with pytest.raises(ValueError, match="start must have shape \\(3, 1\\)"):
        fit_templates(ROTATION, images, np.zeros((3, 2)), count=2, seed=0)
    with pytest.raises(ValueError, match="need at least count=4 images"):
        fit_templates(ROTATION, images, start, count=4, seed=0)
    with pytest.raises(ValueError, match="count must be at least 1"):
        fit_templates(ROTATION, images, start, count=0, seed=0)
    with pytest.raises(ValueError, match="blur must be a positive width"):
        fit_templates(ROTATION, images, start, count=2, seed=0, blur=0.0)
    with pytest.raises(ValueError, match="must be finite"):
        fit_templates(ROTATION, images.at[0, 0, 0, 0].set(jnp.nan), start, count=2, seed=0)
    with pytest.raises(ValueError, match="images must have rank 4"):
        fit_templates(ROTATION, images[0], start, count=2, seed=0)
