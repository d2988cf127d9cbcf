"""Colour maps (closed form, periodicity, gradients through clipping) and discrete groups."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.scipy.linalg import expm

from invppl.transforms import (
    COLOUR_NAMES,
    Affine,
    AffineColour,
    Colour,
    CyclicRotation,
    Discrete,
    Flip,
    Periodic,
    colour_matrix,
    rotate90,
    transform_family,
)
from tests.transforms.smooth import bilinear_error_bound, gaussian_blobs

HSV = Colour(COLOUR_NAMES, clip=False)
etas = st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3)
seeds = st.integers(0, 2**31 - 1)


@given(etas)
def test_closed_form_equals_expm_of_generators(eta: list[float]) -> None:
    grey = np.ones(3) / math.sqrt(3)
    projection = np.outer(grey, grey)
    cross = np.array([[0, -grey[2], grey[1]], [grey[2], 0, -grey[0]], [-grey[1], grey[0], 0]])
    algebra = eta[0] * cross + eta[1] * (np.eye(3) - projection) + eta[2] * np.eye(3)
    np.testing.assert_allclose(
        colour_matrix(jnp.array(eta), COLOUR_NAMES),
        expm(jnp.asarray(algebra)),
        rtol=1e-4,
        atol=1e-5,
    )


@given(etas, seeds)
def test_colour_group_laws(eta: list[float], seed: int) -> None:
    images = jax.random.uniform(jax.random.key(seed % 1000), (2, 4, 4, 3))
    e = jnp.array(eta)
    np.testing.assert_allclose(HSV.apply(HSV.apply(images, e), -e), images, atol=1e-4)
    np.testing.assert_allclose(HSV.apply(images, jnp.zeros(3)), images, atol=1e-6)
    full_turn = e.at[0].add(2 * math.pi)
    np.testing.assert_allclose(HSV.apply(images, full_turn), HSV.apply(images, e), atol=1e-4)
    grey = jnp.full((1, 2, 2, 3), 0.4)
    hue_sat = Colour(("hue", "saturation"))
    np.testing.assert_allclose(hue_sat.apply(grey, e[:2]), grey, atol=1e-6)


def test_hue_turns_the_primaries_like_hsv() -> None:
    primaries = jnp.eye(3).reshape(3, 1, 1, 3)
    third = Colour(("hue",)).apply(primaries, jnp.array([2 * math.pi / 3]))
    np.testing.assert_allclose(third.reshape(3, 3), jnp.roll(jnp.eye(3), 1, axis=1), atol=1e-6)


def test_gradients_survive_clipping_and_match_finite_differences() -> None:
    white = jnp.ones((1, 2, 2, 3))
    value = Colour(("value",))
    grad = jax.grad(lambda v: value.apply(white, v).sum())(jnp.array([0.5]))
    assert float(grad[0]) > 0  # a plain clip would give exactly zero here
    with jax.enable_x64(True):
        images = jax.random.uniform(jax.random.key(0), (2, 3, 3, 3), dtype=jnp.float64)
        eta = jnp.array([0.4, -0.2, 0.1])

        def loss(e):
            return jnp.sum(jnp.sin(3 * HSV.apply(images, e)))

        grad = jax.grad(loss)(eta)
        fd = [(loss(eta.at[i].add(1e-6)) - loss(eta.at[i].add(-1e-6))) / 2e-6 for i in range(3)]
        np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_colour_declares_supports_and_rejects_bad_input() -> None:
    assert HSV.parameters[0].support == Periodic()
    with pytest.raises(ValueError, match="3 channels"):
        HSV.apply(jnp.zeros((1, 2, 2, 1)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"unknown colour transformation name\(s\) \['tint'\]"):
        Colour(("hue", "tint"))


@given(seeds)
def test_four_quarter_turns_return_the_original_exactly(seed: int) -> None:
    images = jax.random.uniform(jax.random.key(seed % 1000), (3, 5, 5, 2))
    out = images
    for _ in range(4):
        out = rotate90(out, 1)
    assert bool(jnp.all(out == images))
    assert bool(jnp.all(rotate90(rotate90(images, 1), -1) == images))
    c4 = CyclicRotation(4)
    k = jnp.array([0, 1, 3])
    assert bool(jnp.all(c4.apply(images, k) == rotate90(images, k)))
    flip = Flip("horizontal")
    assert bool(jnp.all(flip.apply(flip.apply(images, 1), 1) == images))
    np.testing.assert_array_equal(flip.apply(images, 1), images[:, :, ::-1])
    np.testing.assert_array_equal(Flip("vertical").apply(images, 1), images[:, ::-1])


def test_discrete_actions_under_jit_and_other_orders() -> None:
    images = jax.random.uniform(jax.random.key(7), (4, 8, 8, 1))
    k = jnp.array([0, 1, 2, 3])
    jitted = jax.jit(CyclicRotation(4).apply)(images, k)
    np.testing.assert_array_equal(jitted, rotate90(images, k))
    c8 = CyclicRotation(8)
    np.testing.assert_allclose(c8.apply(images, 2 * k), rotate90(images, k), atol=1e-5)
    assert c8.parameters[0].support == Discrete(8)
    blobs = gaussian_blobs(32, np.array([[15.5, 15.5], [12.0, 18.0]]), 3.0)
    c3 = CyclicRotation(3)
    thrice = c3.apply(c3.apply(c3.apply(blobs, 1), 1), 1)
    assert float(jnp.abs(thrice - blobs).max()) <= 3 * bilinear_error_bound(3.0)
    with pytest.raises(TypeError, match="integers"):
        c3.apply(blobs, jnp.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="positive integer"):
        CyclicRotation(0)


def test_families_by_name() -> None:
    family = transform_family(["rotation", "tx", "hue", "value"])
    assert isinstance(family, AffineColour)
    assert family.names == ("rotation", "tx", "hue", "value")
    assert isinstance(transform_family(["tx"]), Affine)
    assert isinstance(transform_family(["saturation"]), Colour)
    images = 0.3 + 0.4 * jax.random.uniform(jax.random.key(3), (2, 12, 12, 3))
    eta = jnp.array([[0.3, 0.05, 1.0, 0.1], [-0.5, 0.0, -2.0, -0.1]])
    warped_first = Colour(("hue", "value")).apply(
        Affine(("rotation", "tx")).apply(images, eta[:, :2]), eta[:, 2:]
    )
    np.testing.assert_allclose(family.apply(images, eta), warped_first, atol=1e-5)
    with pytest.raises(ValueError, match="affine names before colour names"):
        transform_family(["hue", "rotation"])
    with pytest.raises(ValueError, match="unknown transformation name"):
        transform_family(["rotate"])


@pytest.mark.parametrize("eta_shape", [(4,), (4, 3), (2, 4, 2), ()])
def test_colour_matrix_needs_one_entry_per_name(eta_shape: tuple[int, ...]) -> None:
    # a (batch,) hue used to be read as one η (its first entry), a (batch, 3) η for one name
    # lost its other columns
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"colour_matrix: eta of shape {eta_shape}, expected shape (..., 1): one entry per "
            "parameter ('hue',)"
        ),
    ):
        colour_matrix(jnp.zeros(eta_shape), ("hue",))


def test_colour_matrix_keeps_every_batch_shape() -> None:
    eta = jax.random.normal(jax.random.key(0), (4, 2, 3))
    matrices = colour_matrix(eta, COLOUR_NAMES)
    assert matrices.shape == (4, 2, 3, 3)
    np.testing.assert_allclose(matrices[3, 1], colour_matrix(eta[3, 1], COLOUR_NAMES), atol=1e-6)


def test_families_share_their_declared_parameters() -> None:
    for family, known in ((Colour(["value", "hue"]), COLOUR_NAMES), (Affine(["tx"]), None)):
        assert family.names == tuple(family.names)  # a list is stored as a tuple
        assert family.dim == len(family.names)
        assert [p.name for p in family.parameters] == list(family.names)
        if known is not None:
            assert tuple(family.DEFAULT_SUPPORTS) == known
