"""gaussian_blur against SciPy, and move = T_target ∘ T_source⁻¹ against composed maps."""

import math
from dataclasses import dataclass
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import Array
from scipy import ndimage

from invppl.transforms import (
    GENERATORS,
    Affine,
    AffineColour,
    Colour,
    Parameter,
    Real,
    colour_matrix,
    gaussian_blur,
    move,
    transform_family,
    warp,
)
from tests.transforms.smooth import bilinear_error_bound, gaussian_blobs

WIDTH = 3.0
BLOBS = gaussian_blobs(32, np.array([[15.5, 15.5], [13.0, 18.0], [17.0, 14.5]]), WIDTH)
FEW = settings(max_examples=10)

blur = jax.jit(gaussian_blur, static_argnames="radius")
ROTATION = Affine(("rotation",))
rotate = jax.jit(ROTATION.apply)
move_rotation = jax.jit(partial(move, ROTATION))
AFFINE_NAMES4 = ("rotation", "tx", "ty", "log_scale_x")
AFFINE4 = Affine(AFFINE_NAMES4)
move_affine4 = jax.jit(partial(move, AFFINE4))
AFFINE_COLOUR = transform_family(["rotation", "tx", "hue", "saturation", "value"])
move_affine_colour = jax.jit(partial(move, AFFINE_COLOUR))
warp_by = jax.jit(warp)  # eager warps compile op by op: slow for a test


def _scipy_blur(images: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """SciPy's truncated, normalised Gaussian over the two spatial axes, zeros outside."""
    if sigma == 0:
        return images
    # scipy's window half-width is int(truncate * sigma + 0.5) = radius
    return ndimage.gaussian_filter(
        np.asarray(images, np.float64),
        sigma=(0, sigma, sigma, 0),
        mode="constant",
        cval=0.0,
        truncate=radius / sigma,
    )


# ---------------------------------------------------------------------------
# gaussian_blur


@FEW
@given(
    sigma=st.floats(0.3, 3.0),
    radius=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    shape=st.sampled_from([(2, 12, 12, 1), (1, 9, 14, 3), (3, 5, 7, 2)]),
)
def test_blur_matches_scipy_gaussian_filter(
    sigma: float, radius: int, seed: int, shape: tuple[int, int, int, int]
) -> None:
    images = np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
    blurred = blur(jnp.asarray(images), sigma, radius=radius)
    assert blurred.shape == images.shape
    assert blurred.dtype == jnp.float32
    np.testing.assert_allclose(blurred, _scipy_blur(images, sigma, radius), atol=2e-6)


@pytest.mark.parametrize("radius", [0, 1, 4])
def test_zero_sigma_is_the_identity(radius: int) -> None:
    images = jax.random.uniform(jax.random.key(0), (2, 11, 9, 2))
    np.testing.assert_array_equal(gaussian_blur(images, 0.0, radius=radius), images)
    # radius 0 is a one-tap kernel: the identity whatever sigma
    np.testing.assert_array_equal(gaussian_blur(images, 2.0, radius=0), images)


@FEW
@given(sigma=st.floats(0.2, 2.0), seed=st.integers(0, 2**16))
def test_mass_is_preserved_away_from_the_borders(sigma: float, seed: int) -> None:
    radius = math.ceil(3 * sigma)
    images = np.zeros((2, 16, 16, 1), np.float32)
    inner = np.random.default_rng(seed).uniform(size=(2, 16 - 2 * radius, 16 - 2 * radius, 1))
    images[:, radius : 16 - radius, radius : 16 - radius] = inner
    blurred = np.asarray(blur(jnp.asarray(images), sigma, radius=radius))
    np.testing.assert_allclose(blurred.sum((1, 2, 3)), images.sum((1, 2, 3)), rtol=1e-5)
    assert blurred.min() >= 0.0
    # A wider blur spreads mass: the peak falls.
    assert blurred.max() < images.max()


def test_mass_leaks_out_of_the_frame_with_zero_padding() -> None:
    corner = jnp.zeros((1, 8, 8, 1)).at[0, 0, 0, 0].set(1.0)
    blurred = gaussian_blur(corner, 1.0, radius=3)
    expected = _scipy_blur(np.asarray(corner), 1.0, 3)
    np.testing.assert_allclose(blurred, expected, atol=1e-6)
    assert float(blurred.sum()) < 0.5  # three quarters of the kernel fall outside


def test_traced_sigma_compiles_once() -> None:
    images = jax.random.uniform(jax.random.key(1), (2, 12, 12, 1))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def blur_radius_4(images: Array, sigma: Array) -> Array:
        return gaussian_blur(images, sigma, radius=4)

    for sigma in (1.3, 0.0, 0.7, 1.1):
        expected = _scipy_blur(np.asarray(images), sigma, 4)
        np.testing.assert_allclose(blur_radius_4(images, sigma), expected, atol=2e-6)


def test_sigma_gradient_matches_finite_differences() -> None:
    # The width is annealed inside compiled objectives: its gradient must be right too.
    images = jnp.asarray(np.random.default_rng(2).uniform(size=(1, 10, 10, 1)), jnp.float32)
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(1, 10, 10, 1)), jnp.float32)

    def objective(sigma: Array) -> Array:
        return jnp.sum(weights * gaussian_blur(images, sigma, radius=5))

    def oracle(sigma: float) -> float:
        blurred = _scipy_blur(np.asarray(images), sigma, 5)
        return float(np.sum(np.asarray(weights, np.float64) * blurred))

    sigma, eps = 1.2, 1e-4
    finite_difference = (oracle(sigma + eps) - oracle(sigma - eps)) / (2 * eps)
    grad = float(jax.jit(jax.grad(objective))(jnp.float32(sigma)))
    assert grad == pytest.approx(finite_difference, rel=2e-3, abs=1e-4)


def test_blur_bad_input_is_named() -> None:
    images = jnp.zeros((1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"sigma must be a scalar, got shape \(2,\)"):
        gaussian_blur(images, jnp.array([1.0, 2.0]), radius=2)
    with pytest.raises(ValueError, match="radius must be at least 0, got -1"):
        gaussian_blur(images, 1.0, radius=-1)
    with pytest.raises(TypeError, match="radius must be an integer"):
        gaussian_blur(images, 1.0, radius=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="radius must be an integer"):
        gaussian_blur(images, 1.0, radius=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank 4"):
        gaussian_blur(images[0], 1.0, radius=2)
    with pytest.raises(TypeError, match="floating point"):
        gaussian_blur(images.astype(jnp.int32), 1.0, radius=2)


# ---------------------------------------------------------------------------
# move


def _expm(eta: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """``(batch, 3, 3)`` expm(Σ η_i G_i) in float64 by SciPy (independent of invppl's expm)."""
    return np.stack(
        [
            scipy.linalg.expm(sum(e * GENERATORS[n] for e, n in zip(row, names, strict=True)))
            for row in np.asarray(eta, np.float64)
        ]
    )


angles = st.floats(-math.pi, math.pi)
shifts = st.floats(-0.15, 0.15)


@FEW
@given(st.lists(angles, min_size=3, max_size=3), st.lists(angles, min_size=3, max_size=3))
def test_move_takes_a_rotated_image_to_the_target_pose(a: list[float], b: list[float]) -> None:
    source, target = jnp.array(a)[:, None], jnp.array(b)[:, None]
    moved = move_rotation(rotate(BLOBS, source), source, target)
    # two resamplings (posing, then moving) against one
    error = float(jnp.abs(moved - rotate(BLOBS, target)).max())
    assert error <= 3 * bilinear_error_bound(WIDTH)


@FEW
@given(st.lists(angles, min_size=3, max_size=3), st.lists(angles, min_size=3, max_size=3))
def test_move_resamples_once(a: list[float], b: list[float]) -> None:
    # Rotations commute, so T_b ∘ T_a⁻¹ = T_{b − a}: one interpolation gives the same
    # pixels on any image, not only smooth ones, if move composes before resampling.
    # (Resampling noise twice instead errs by ~0.2; float32 composition by < 1e-4.)
    images = jax.random.uniform(jax.random.key(4), BLOBS.shape)  # the shape compiled above
    source, target = jnp.array(a)[:, None], jnp.array(b)[:, None]
    np.testing.assert_allclose(
        move_rotation(images, source, target), rotate(images, target - source), atol=5e-4
    )


@FEW
@given(
    st.tuples(angles, shifts, shifts, st.floats(-0.2, 0.2)),
    st.tuples(angles, shifts, shifts, st.floats(-0.2, 0.2)),
)
def test_move_composes_non_commuting_maps_in_the_right_order(
    a: tuple[float, ...], b: tuple[float, ...]
) -> None:
    images = jax.random.uniform(jax.random.key(5), (2, 12, 10, 2))
    source = np.array([a, b], np.float32)
    target = np.array([b, a], np.float32)
    both = _expm(target, AFFINE_NAMES4) @ np.linalg.inv(_expm(source, AFFINE_NAMES4))  # A(t) A(s)⁻¹
    expected = warp_by(images, jnp.asarray(both, jnp.float32))
    moved = move_affine4(images, jnp.asarray(source), jnp.asarray(target))
    np.testing.assert_allclose(moved, expected, atol=1e-4)


@pytest.mark.parametrize("which", ["rotation", "affine"])
def test_move_from_a_pose_to_itself_is_the_identity(which: str) -> None:
    # the shapes the other tests compile these for
    family, moving, shape = (
        (ROTATION, move_rotation, BLOBS.shape)
        if which == "rotation"
        else (AFFINE4, move_affine4, (2, 12, 10, 2))
    )
    images = jax.random.uniform(jax.random.key(6), shape)
    eta = jax.random.uniform(jax.random.key(7), (shape[0], family.dim), minval=-0.4, maxval=0.4)
    eta = eta.at[:, 0].set(jnp.array([3.0, -2.0, 0.5])[: shape[0]])  # large angles too
    np.testing.assert_allclose(moving(images, eta, eta), images, atol=1e-4)


def _colour_images(seed: int) -> Array:
    """RGB images near grey (every channel in [0.25, 0.6]): one map of |η| ≤ 0.25 does not clip."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(0.25 + 0.35 * rng.uniform(size=(3, 6, 5, 3)), jnp.float32)


colour_eta = st.lists(st.floats(-0.25, 0.25), min_size=3, max_size=3)


@FEW
@given(colour_eta, colour_eta)
def test_colour_move_is_the_difference_of_parameters(s: list[float], t: list[float]) -> None:
    family = Colour(("hue", "saturation", "value"))
    images = _colour_images(0)
    source, target = jnp.array(s), jnp.array(t)
    moved = move(family, images, source, target)
    # oracle: the RGB matrices C(t) C(s)⁻¹, applied by hand
    matrix = np.asarray(colour_matrix(target, family.names), np.float64) @ np.linalg.inv(
        np.asarray(colour_matrix(source, family.names), np.float64)
    )
    expected = np.einsum("ij,bhwj->bhwi", matrix, np.asarray(images, np.float64))
    assert expected.min() > 0  # nothing clips
    assert expected.max() < 1
    np.testing.assert_allclose(moved, expected, atol=1e-5)
    np.testing.assert_allclose(moved, family.apply(images, target - source), atol=1e-6)
    # (k,) parameters broadcast over the batch like (batch, k) copies
    tiled = move(family, images, jnp.tile(source, (3, 1)), jnp.tile(target, (3, 1)))
    np.testing.assert_allclose(tiled, moved, atol=1e-6)


@FEW
@given(
    st.tuples(angles, shifts),
    st.tuples(angles, shifts),
    colour_eta.map(tuple),
    colour_eta.map(tuple),
)
def test_affine_colour_move_splits_its_parameters(
    affine_s: tuple[float, ...],
    affine_t: tuple[float, ...],
    colour_s: tuple[float, ...],
    colour_t: tuple[float, ...],
) -> None:
    family = AFFINE_COLOUR
    assert isinstance(family, AffineColour)
    images = _colour_images(1)
    source = jnp.array([[*affine_s, *colour_s]])
    target = jnp.array([[*affine_t, *colour_t]])
    moved = move_affine_colour(images, source, target)
    # oracle: the colours moved by t − s (per-pixel linear, so before the warp) and clipped
    # to [0, 1] like Colour(clip=True) (t − s reaches 0.5 per parameter, e^0.5 · 0.6 > 1 in
    # places), then one warp by A(t) A(s)⁻¹ from SciPy's expm
    names = ("rotation", "tx")
    recoloured = np.einsum(
        "ij,bhwj->bhwi",
        np.asarray(colour_matrix(jnp.array(colour_t) - jnp.array(colour_s), family.colour.names)),
        np.asarray(images),
    ).clip(0.0, 1.0)
    both = _expm(np.array([affine_t]), names) @ np.linalg.inv(_expm(np.array([affine_s]), names))
    expected = warp_by(jnp.asarray(recoloured, jnp.float32), jnp.asarray(both[0], jnp.float32))
    np.testing.assert_allclose(moved, expected, atol=1e-4)


@dataclass(frozen=True)
class _Offset:
    """A family that is none of invppl's: x ↦ x + η (one parameter, on the real line)."""

    names: tuple[str, ...] = ("offset",)
    parameters: tuple[Parameter, ...] = (Parameter("offset", Real()),)
    dim: int = 1

    def apply(self, images: Array, eta: Array) -> Array:
        return images + jnp.reshape(jnp.asarray(eta), (-1, 1, 1, 1))


def test_move_applies_other_families_in_turn() -> None:
    images = jax.random.uniform(jax.random.key(8), (2, 4, 4, 1))
    source, target = jnp.array([[0.25], [-1.0]]), jnp.array([[1.0], [0.5]])
    expected = np.asarray(images) + np.array([0.75, 1.5])[:, None, None, None]
    np.testing.assert_allclose(move(_Offset(), images, source, target), expected, atol=1e-6)


def test_move_bad_input_is_named() -> None:
    family = Affine(("rotation", "tx"))
    images = jnp.zeros((2, 6, 6, 1))
    with pytest.raises(ValueError, match="trailing axis of size 2"):
        move(family, images, jnp.zeros((2, 1)), jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="eta has 3 rows but the images batch is 2"):
        move(family, images, jnp.zeros((2, 2)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="rank 4"):
        move(family, images[0], jnp.zeros((2, 2)), jnp.zeros((2, 2)))
