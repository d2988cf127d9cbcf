"""The affine family: group laws, round trips within a stated bound, gradients, conventions."""

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
    AFFINE_NAMES,
    FILL_MODES,
    GENERATORS,
    METHODS,
    Affine,
    Interval,
    Periodic,
    affine_matrix,
    rotate90,
    sampling_grid,
    warp,
)
from tests.transforms.smooth import bilinear_error_bound, gaussian_blobs

ALL = Affine(AFFINE_NAMES)
angles = st.floats(-math.pi, math.pi)
shifts = st.floats(-0.15, 0.15)
small = st.floats(-0.3, 0.3)

WIDTH = 3.0
BLOBS = gaussian_blobs(32, np.array([[15.5, 15.5], [13.0, 18.0]]), WIDTH)


@jax.jit
def _rigid(images, eta):
    return Affine(("rotation", "tx", "ty")).apply(images, eta)


@given(st.lists(small, min_size=6, max_size=6), st.lists(small, min_size=6, max_size=6))
def test_matrices_form_a_group(eta1: list[float], eta2: list[float]) -> None:
    a, b = ALL(jnp.array(eta1)), ALL(jnp.array(eta2))
    np.testing.assert_allclose(a.matrix @ a.inverse_matrix, np.eye(3), atol=1e-5)
    both = b << a
    np.testing.assert_allclose(both.matrix, b.matrix @ a.matrix, atol=1e-6)
    np.testing.assert_allclose(both.matrix @ both.inverse_matrix, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(both.inverse().matrix, both.inverse_matrix)
    np.testing.assert_allclose(ALL.matrix(jnp.zeros(6)), np.eye(3), atol=0)


@given(angles, shifts, shifts)
def test_generators_give_the_textbook_maps(theta: float, tx: float, ty: float) -> None:
    rotation = np.array(affine_matrix(jnp.array([theta]), ["rotation"]))
    c, s = math.cos(theta), math.sin(theta)
    np.testing.assert_allclose(rotation, [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-5)
    shift = np.array(affine_matrix(jnp.array([tx, ty]), ["tx", "ty"]))
    np.testing.assert_allclose(shift, [[1, 0, tx], [0, 1, ty], [0, 0, 1]], atol=1e-6)
    scale = np.array(affine_matrix(jnp.array([tx, ty]), ["log_scale_x", "log_scale_y"]))
    np.testing.assert_allclose(np.diag(scale), [math.exp(tx), math.exp(ty), 1], rtol=1e-5)
    eta = jnp.array([theta, tx, ty, 0.1, -0.2, 0.05])
    algebra = sum(e * GENERATORS[n] for e, n in zip(np.array(eta), AFFINE_NAMES, strict=True))
    np.testing.assert_allclose(ALL.matrix(eta), expm(jnp.asarray(algebra)), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_zero_eta_is_the_identity(method: str, fill_mode: str) -> None:
    images = jax.random.uniform(jax.random.key(0), (3, 9, 7, 2))
    family = Affine(AFFINE_NAMES, method=method, fill_mode=fill_mode)  # type: ignore[arg-type]
    np.testing.assert_allclose(family.apply(images, jnp.zeros((3, 6))), images, atol=1e-5)


@given(angles, shifts, shifts)
def test_round_trip_stays_within_the_interpolation_bound(theta, tx, ty) -> None:
    eta = jnp.array([[theta, tx, ty], [-theta, ty, tx]])
    back = _rigid(_rigid(BLOBS, eta), -eta)
    # A(-η) = expm(-Σ η_i G_i) = A(η)^{-1} exactly, so only interpolation errs
    bound = 2 * bilinear_error_bound(WIDTH)  # two resamplings of a blob, isometries
    assert float(jnp.abs(back - BLOBS).max()) <= bound


def test_bicubic_round_trip_beats_bilinear() -> None:
    eta = jnp.array([[0.7, 0.1, -0.05], [2.5, -0.1, 0.0]])
    errors = {}
    for method in ("bilinear", "bicubic"):
        family = Affine(("rotation", "tx", "ty"), method=method)  # type: ignore[arg-type]
        errors[method] = float(jnp.abs(family.apply(family.apply(BLOBS, eta), -eta) - BLOBS).max())
    assert errors["bicubic"] < 0.6 * errors["bilinear"]


@given(st.lists(small, min_size=3, max_size=3), st.lists(small, min_size=3, max_size=3))
def test_composing_equals_applying_in_turn(eta1: list[float], eta2: list[float]) -> None:
    family = Affine(("rotation", "tx", "ty"))
    first, second = family(jnp.array(eta1)), family(jnp.array(eta2))
    once = (second << first).apply(BLOBS)
    in_turn = second.apply(first.apply(BLOBS))
    # each approximates x((BA)^{-1} u); in turn resamples twice, composed once
    assert float(jnp.abs(once - in_turn).max()) <= 3 * bilinear_error_bound(WIDTH)
    np.testing.assert_allclose(
        (second << first).matrix,
        family.matrix(jnp.array(eta2)) @ family.matrix(jnp.array(eta1)),
        atol=1e-6,
    )


def test_full_turn_is_the_identity() -> None:
    images = jax.random.uniform(jax.random.key(1), (2, 10, 10, 1))
    turned = Affine(("rotation",)).apply(images, jnp.array([[2 * math.pi], [-2 * math.pi]]))
    np.testing.assert_allclose(turned, images, atol=1e-3)


@pytest.mark.parametrize("size", [8, 9])
def test_quarter_turn_matches_exact_rot90_and_conventions(size: int) -> None:
    images = jax.random.uniform(jax.random.key(2), (2, size, size, 1))
    turned = Affine(("rotation",)).apply(images, jnp.array([[math.pi / 2]]))
    np.testing.assert_allclose(turned, rotate90(images, 1), atol=1e-5)
    dot = jnp.zeros((1, 16, 16, 1)).at[0, 8, 8, 0].set(1.0)
    right = Affine(("tx",)).apply(dot, jnp.array([[4 / 8]]))  # half a width = 8 px, so 4 px
    up = Affine(("ty",)).apply(dot, jnp.array([[4 / 8]]))
    assert np.argwhere(np.asarray(right)[0, ..., 0] > 0.5).tolist() == [[8, 12]]
    assert np.argwhere(np.asarray(up)[0, ..., 0] > 0.5).tolist() == [[4, 8]]


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_eta_gradients_match_finite_differences(method: str) -> None:
    with jax.enable_x64(True):
        images = jnp.asarray(BLOBS, dtype=jnp.float64)
        family = Affine(AFFINE_NAMES, method=method)  # type: ignore[arg-type]
        weights = jax.random.normal(jax.random.key(3), images.shape, dtype=jnp.float64)
        eta = jnp.array([[0.05, -0.03, 0.4, 0.1, -0.1, 0.05], [0.0, 0.1, -1.0, 0.0, 0.2, 0.0]])

        @jax.jit
        def loss(e):
            return jnp.sum(weights * family.apply(images, e))

        grad = jax.grad(loss)(eta)
        eps = 1e-5
        fd = np.zeros(eta.shape)
        for index in np.ndindex(*eta.shape):
            bump = jnp.zeros_like(eta).at[index].set(eps)
            fd[index] = (loss(eta + bump) - loss(eta - bump)) / (2 * eps)
    # bilinear is only piecewise smooth: a sample crossing a pixel edge bends the FD
    np.testing.assert_allclose(grad, fd, rtol=2e-2 if method == "bilinear" else 1e-5, atol=1e-3)


def test_works_under_jit_vmap_and_grad() -> None:
    family = Affine(("rotation", "log_scale_x"))
    images = jax.random.uniform(jax.random.key(4), (5, 3, 12, 12, 1))
    eta = jax.random.normal(jax.random.key(5), (5, 3, 2)) * 0.3
    eager = jnp.stack([family.apply(i, e) for i, e in zip(images, eta, strict=True)])
    batched = jax.jit(jax.vmap(family.apply))(images, eta)
    np.testing.assert_allclose(batched, eager, atol=1e-5)
    grads = jax.jit(jax.grad(lambda e: family.apply(images[0], e).sum()))(eta[0])
    assert grads.shape == (3, 2)
    assert bool(jnp.all(jnp.isfinite(grads)))


def test_warp_by_matrix_equals_family_apply() -> None:
    eta = jnp.array([[0.3, 0.1]])
    family = Affine(("rotation", "tx"))
    np.testing.assert_allclose(
        warp(BLOBS[:1], family.matrix(eta)), family.apply(BLOBS[:1], eta), atol=1e-5
    )


def test_declared_supports() -> None:
    params = {p.name: p.support for p in ALL.parameters}
    assert params["rotation"] == Periodic(-math.pi, 2 * math.pi)
    assert isinstance(params["tx"], Interval)
    custom = Affine(("tx",), supports={"tx": Interval(-0.2, 0.2)})
    assert custom.parameters[0].support == Interval(-0.2, 0.2)
    wrapped = Periodic().wrap(jnp.array([3 * math.pi, -math.pi, math.pi]))
    np.testing.assert_allclose(wrapped, [-math.pi, -math.pi, -math.pi], atol=1e-6)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown affine transformation name\(s\) \['spin'\]"):
        Affine(("rotation", "spin"))
    with pytest.raises(ValueError, match="at least one parameter name"):
        Affine(())
    with pytest.raises(TypeError, match="sequence of strings"):
        Affine("rotation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not repeat"):
        Affine(("tx", "tx"))
    with pytest.raises(ValueError, match="Interval is empty"):
        Interval(1.0, 1.0)
    with pytest.raises(ValueError, match="supports given for names not in the family"):
        Affine(("tx",), supports={"ty": Interval(0, 1)})
    family = Affine(("rotation",))
    with pytest.raises(ValueError, match="trailing axis of size 1"):
        family.apply(BLOBS, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="eta has 3 rows but the images batch is 2"):
        family.apply(BLOBS, jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="rank 4"):
        family.apply(BLOBS[0], jnp.zeros((1,)))
    with pytest.raises(TypeError, match="floating point"):
        family.apply(BLOBS.astype(jnp.uint8), jnp.zeros((2, 1)))


@pytest.mark.parametrize("eta_shape", [(2, 2), (4, 3, 2), (5, 2, 4), (), (3, 2, 1)])
def test_affine_matrix_needs_one_entry_per_name_on_any_batch(eta_shape) -> None:
    # batched η of rank > 2 used to skip the check (an einsum error or worse)
    names = ("rotation", "tx", "ty")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"affine_matrix: eta of shape {eta_shape}, expected shape (..., 3): one entry per "
            "parameter ('rotation', 'tx', 'ty')"
        ),
    ):
        affine_matrix(jnp.zeros(eta_shape), names)


def test_affine_matrix_keeps_every_batch_shape() -> None:
    eta = jax.random.normal(jax.random.key(0), (4, 3, 2))
    matrices = affine_matrix(eta, ("rotation", "tx"))
    assert matrices.shape == (4, 3, 3, 3)
    np.testing.assert_allclose(matrices[2, 1], affine_matrix(eta[2, 1], ("rotation", "tx")))
    np.testing.assert_allclose(
        affine_matrix(jnp.array([[1, 0]]), ("rotation", "tx")),  # integers become floats
        affine_matrix(jnp.array([[1.0, 0.0]]), ("rotation", "tx")),
    )


def test_maps_of_a_wrong_shape_are_refused() -> None:
    family = Affine(("rotation",))
    with pytest.raises(
        ValueError,
        match=r"sampling_matrix must have shape \(batch, 3, 3\), got "
        r"\(2, 4, 3\)",
    ):
        sampling_grid(8, 8, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"sampling_matrix must have shape \(batch, 3, 3\)"):
        sampling_grid(8, 8, jnp.eye(3))
    with pytest.raises(
        ValueError,
        match=r"matrix must have shape \(3, 3\) or \(batch, 3, 3\), "
        r"got \(2, 3\)",
    ):
        warp(BLOBS, jnp.zeros((2, 3)))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "affine maps of shape (3, 3, 3) for 2 images of shape (2, 32, 32, 1); expected "
            "(3, 3), (1, 3, 3) or (2, 3, 3)"
        ),
    ):
        warp(BLOBS, jnp.broadcast_to(jnp.eye(3), (3, 3, 3)))
    with pytest.raises(ValueError, match=r"affine maps of shape \(2, 2, 3, 3\) for 2 images"):
        family(jnp.zeros((2, 2, 1))).apply(BLOBS)
    # the shapes that are allowed
    for matrix in (jnp.eye(3), jnp.eye(3)[None], jnp.broadcast_to(jnp.eye(3), (2, 3, 3))):
        np.testing.assert_allclose(warp(BLOBS, matrix), BLOBS, atol=1e-6)
    np.testing.assert_allclose(family(jnp.zeros((1, 1))).apply(BLOBS), BLOBS, atol=1e-6)
