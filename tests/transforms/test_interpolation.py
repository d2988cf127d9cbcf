"""Resampling against closed forms and against scipy.ndimage (an independent implementation)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from hypothesis import given
from hypothesis import strategies as st

from invppl.transforms import FILL_MODES, METHODS, resample

SCIPY_MODE = {
    "constant": "grid-constant",
    "edge": "nearest",
    "wrap": "grid-wrap",
    "reflect": "reflect",
}


def _points(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=(1, n, 1, 2))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_bilinear_matches_scipy_order_one(fill_mode: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(7, 9)).astype(np.float64)
    coords = _points(rng, 200, -4.0, 12.0)
    with jax.enable_x64(True):
        ours = resample(
            jnp.asarray(image)[None, ..., None], jnp.asarray(coords), fill_mode=fill_mode, cval=0.7
        )
    theirs = scipy.ndimage.map_coordinates(
        image, coords[0, :, 0].T, order=1, mode=SCIPY_MODE[fill_mode], cval=0.7
    )
    np.testing.assert_allclose(np.asarray(ours)[0, :, 0, 0], theirs, atol=1e-12)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_nearest_matches_scipy_order_zero(fill_mode: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(6, 5))
    coords = np.round(_points(rng, 200, -3.0, 9.0)) + rng.uniform(-0.4, 0.4, size=(1, 200, 1, 2))
    with jax.enable_x64(True):
        ours = resample(
            jnp.asarray(image)[None, ..., None],
            jnp.asarray(coords),
            method="nearest",
            fill_mode=fill_mode,
            cval=-2.0,
        )
    theirs = scipy.ndimage.map_coordinates(
        image, coords[0, :, 0].T, order=0, mode=SCIPY_MODE[fill_mode], cval=-2.0
    )
    np.testing.assert_allclose(np.asarray(ours)[0, :, 0, 0], theirs, atol=1e-12)


@given(st.integers(0, 2**31 - 1))
def test_bilinear_exact_on_linear_and_bicubic_exact_on_quadratic_images(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b, c, d, e, f = rng.normal(size=6)
    rows, cols = np.meshgrid(np.arange(12.0), np.arange(12.0), indexing="ij")

    def linear(r, q):
        return a + b * r + c * q

    def quadratic(r, q):
        return linear(r, q) + d * r**2 + e * r * q + f * q**2

    coords = _points(rng, 64, 2.0, 9.0)  # two pixels clear of every border
    r, q = coords[0, :, 0, 0], coords[0, :, 0, 1]
    with jax.enable_x64(True):
        lin = resample(jnp.asarray(linear(rows, cols))[None, ..., None], jnp.asarray(coords))
        quad = resample(
            jnp.asarray(quadratic(rows, cols))[None, ..., None],
            jnp.asarray(coords),
            method="bicubic",
        )
    np.testing.assert_allclose(np.asarray(lin)[0, :, 0, 0], linear(r, q), atol=1e-9)
    np.testing.assert_allclose(np.asarray(quad)[0, :, 0, 0], quadratic(r, q), atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_grid_points_reproduce_pixels_and_far_points_read_cval(method: str) -> None:
    rng = np.random.default_rng(2)
    image = jnp.asarray(rng.uniform(size=(2, 5, 6, 3)), dtype=jnp.float32)
    rows, cols = jnp.meshgrid(jnp.arange(5.0), jnp.arange(6.0), indexing="ij")
    grid = jnp.broadcast_to(jnp.stack([rows, cols], -1), (2, 5, 6, 2))
    np.testing.assert_allclose(resample(image, grid, method=method), image, atol=1e-6)
    far = jnp.full((2, 1, 1, 2), 50.0)
    np.testing.assert_allclose(resample(image, far, method=method, cval=0.25), 0.25)


def test_gradient_in_coordinates_matches_finite_differences_bicubic() -> None:
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        image = jnp.asarray(rng.uniform(size=(1, 8, 8, 2)))
        coords = jnp.asarray(_points(rng, 10, 1.0, 6.0))

        @jax.jit
        def loss(c):
            return jnp.sum(resample(image, c, method="bicubic") ** 2)

        grad = jax.grad(loss)(coords)
        eps = 1e-6
        for index in [(0, 0, 0, 0), (0, 3, 0, 1), (0, 7, 0, 0)]:
            bump = jnp.zeros_like(coords).at[index].set(eps)
            fd = (loss(coords + bump) - loss(coords - bump)) / (2 * eps)
            np.testing.assert_allclose(grad[index], fd, rtol=1e-6)


def test_bad_input_is_named() -> None:
    image = jnp.zeros((1, 4, 4, 1))
    coords = jnp.zeros((1, 2, 2, 2))
    with pytest.raises(ValueError, match="unknown interpolation method 'cubic'"):
        resample(image, coords, method="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fill mode 'mirror'"):
        resample(image, coords, fill_mode="mirror")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank 4"):
        resample(jnp.zeros((4, 4, 1)), coords)
    with pytest.raises(ValueError, match=r"\(batch, out_height, out_width, 2\)"):
        resample(image, jnp.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="does not match images batch"):
        resample(image, jnp.zeros((2, 2, 2, 2)))
    with pytest.raises(TypeError, match="floating point"):
        resample(jnp.zeros((1, 4, 4, 1), jnp.int32), coords)


def test_a_fill_value_that_is_not_per_channel_is_refused() -> None:
    # a (3,) cval on one-channel images used to turn the output into three channels
    image = jnp.zeros((1, 4, 4, 1))
    coords = jnp.full((1, 2, 2, 2), -5.0)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "cval must be a scalar or have one value per channel (1,), got shape (3,) for images "
            "of shape (1, 4, 4, 1)"
        ),
    ):
        resample(image, coords, cval=jnp.array([0.1, 0.2, 0.3]))
    rgb = jnp.zeros((1, 4, 4, 3))
    fill = jnp.array([0.1, 0.2, 0.3])
    out = resample(rgb, coords, cval=fill)
    np.testing.assert_allclose(out, jnp.broadcast_to(fill, (1, 2, 2, 3)), rtol=1e-6)
