"""The Lie derivative, the local equivariance error and the Lie-derivative factor.

Oracles: closed forms that the warp obeys exactly at t = 0 (bicubic
interpolation differentiates as central differences, and summation by parts
over an image with a zero border is exact for linear velocity fields): the
mass and centroid of an image move as d/dt mass = (div v) · mass and
d/dt centroid = v(centroid), with v(u) = G (u, 1) the generator's velocity
field in normalised coordinates (x right, y up); the colour generators'
matrices written out; and central finite differences.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import Array
from numpyro.contrib.module import nnx_module
from numpyro.infer.util import log_density

from invppl.distributions import lie_derivative_factor
from invppl.metrics import LocalEquivarianceError, local_equivariance_error
from invppl.nn import ConvEncoder
from invppl.transforms import (
    AFFINE_NAMES,
    GENERATORS,
    Affine,
    AffineColour,
    Colour,
    CyclicRotation,
    Flip,
)
from invppl.transforms.lie import lie_derivative, lie_derivatives, mean_squared_lie_derivative

SIZE = 12
AFFINE = Affine(AFFINE_NAMES, method="bicubic")
seeds = st.integers(0, 2**31 - 1)


def blobs(seed: int, batch: int = 3, size: int = SIZE, channels: int = 1) -> Array:
    """Random images that vanish on a 2-pixel border."""
    inside = jax.random.uniform(jax.random.key(seed), (batch, size - 4, size - 4, channels))
    return jnp.pad(inside, ((0, 0), (2, 2), (2, 2), (0, 0)))


def mass_and_centroid(images: Array) -> Array:
    """``(batch, 3)``: total mass and the centroid (x, y) in invppl's normalised coordinates."""
    _, height, width, _ = images.shape
    scale = max(height, width) / 2
    x = (jnp.arange(width) - (width - 1) / 2) / scale
    y = -(jnp.arange(height) - (height - 1) / 2) / scale
    density = images.sum(-1)
    mass = density.sum((1, 2))
    cx = (density * x[None, None, :]).sum((1, 2)) / mass
    cy = (density * y[None, :, None]).sum((1, 2)) / mass
    return jnp.stack([mass, cx, cy], axis=-1)


@pytest.fixture(scope="module")
def affine_derivatives():
    return jax.jit(lambda images: lie_derivatives(mass_and_centroid, images, AFFINE))


@settings(max_examples=5)
@given(seed=seeds)
def test_mass_and_centroid_move_with_the_generators_velocity(affine_derivatives, seed) -> None:
    images = blobs(seed)
    values = mass_and_centroid(images)
    derivatives = affine_derivatives(images)  # (generators, batch, 3)
    for k, name in enumerate(AFFINE_NAMES):
        generator = GENERATORS[name]
        linear, shift = generator[:2, :2], generator[:2, 2]
        velocity = values[:, 1:] @ linear.T + shift  # v(centroid)
        divergence = np.trace(linear)
        np.testing.assert_allclose(derivatives[k, :, 0], divergence * values[:, 0], atol=1e-4)
        np.testing.assert_allclose(derivatives[k, :, 1:], velocity, atol=1e-5, err_msg=name)
    # signs and units: tx moves the centroid right at rate 1, ty up, rotation counter-clockwise
    np.testing.assert_allclose(derivatives[0, :, 1], 1.0, atol=1e-5)
    np.testing.assert_allclose(derivatives[1, :, 2], 1.0, atol=1e-5)
    np.testing.assert_allclose(derivatives[2, :, 1], -values[:, 2], atol=1e-5)
    # the total mass is exactly invariant to rotation, translation and shear
    np.testing.assert_allclose(derivatives[jnp.array([0, 1, 2, 5]), :, 0], 0.0, atol=1e-4)


def central_differences(function, images: Array, family, step: float) -> Array:
    """``(generators, batch, ...)``: (f(T_{h e_k} x) − f(T_{−h e_k} x)) / 2h, one compile."""
    directions = step * jnp.eye(len(family.parameters))
    moved = jax.jit(jax.vmap(lambda eta: function(family.apply(images, eta))))
    return (moved(directions) - moved(-directions)) / (2 * step)


def test_matches_central_finite_differences(affine_derivatives) -> None:
    images = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    network = ConvEncoder((8, 8, 3), 4, rngs=nnx.Rngs(0), channels=(4,), hidden=16)
    family = AffineColour(
        Affine(("rotation", "log_scale_x"), method="bicubic"), Colour(("hue",), clip=False)
    )
    exact = jax.jit(lambda im: lie_derivatives(lambda x: network(x), im, family))(images)
    differences = central_differences(lambda x: network(x), images, family, 1e-3)
    np.testing.assert_allclose(differences, exact, atol=2e-2 * float(jnp.abs(exact).max()))
    # the interpolant's second derivative jumps at t = 0: the error is O(step)
    images = blobs(2)
    exact = affine_derivatives(images)
    differences = central_differences(mass_and_centroid, images, AFFINE, 1e-3)
    values = jnp.abs(mass_and_centroid(images)).max(axis=0)  # float32 rounding scales with f
    for k, name in enumerate(AFFINE_NAMES):
        tolerance = 2e-3 * (jnp.abs(exact[k]).max(axis=0) + values) + 1e-4  # mass, cx, cy
        assert bool(jnp.all(jnp.abs(differences[k] - exact[k]) <= tolerance)), name


def test_colour_generators_closed_forms_and_invariants() -> None:
    images = jax.random.uniform(jax.random.key(3), (2, 4, 4, 3), minval=0.2, maxval=0.8)
    grey = np.full(3, 1 / math.sqrt(3))
    projection = np.outer(grey, grey)
    cross = np.cross(grey, np.eye(3)).T  # column j is g × e_j, so K v = g × v
    np.testing.assert_allclose(cross @ np.array([1.0, 0, 0]), np.cross(grey, [1.0, 0, 0]))
    generators = {"hue": cross, "saturation": np.eye(3) - projection, "value": np.eye(3)}
    family = Colour(tuple(generators))
    derivatives = lie_derivatives(lambda x: x, images, family)
    for k, matrix in enumerate(generators.values()):
        expected = jnp.einsum("ij,bhwj->bhwi", jnp.asarray(matrix, jnp.float32), images)
        np.testing.assert_allclose(derivatives[k], expected, atol=1e-6)
    brightness = lambda x: x.mean(-1)  # hue and saturation keep the grey level
    assert float(mean_squared_lie_derivative(brightness, images, family, ["hue", 1])) < 1e-12
    np.testing.assert_allclose(
        lie_derivative(brightness, images, family, "value"), brightness(images), atol=1e-6
    )


def test_equivariant_outputs_are_moved_back() -> None:
    images = blobs(4)
    rotation = Affine(("rotation",), method="bicubic")

    @jax.jit
    def derivatives(images: Array) -> tuple[Array, Array, Array]:
        return (
            lie_derivative(lambda x: x, images, rotation, 0),
            lie_derivative(lambda x: x, images, rotation, 0, equivariant=True),
            lie_derivative(lambda x: 2 * x, images, rotation, "rotation", equivariant=True),
        )

    moved, back, doubled = derivatives(images)
    assert float(jnp.abs(moved).max()) > 0.1  # the identity map is not invariant ...
    np.testing.assert_allclose(back, 0.0, atol=1e-5)  # ... but it is equivariant
    np.testing.assert_allclose(doubled, 0.0, atol=1e-5)


def test_local_equivariance_error_normalisation() -> None:
    images = jax.random.uniform(jax.random.key(5), (4, 8, 8, 1))
    weights = jax.random.normal(jax.random.key(6), (64, 5))
    network = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ weights)  # logits of 5 classes
    family = Affine(("tx", "rotation"), method="bicubic")
    error = jax.jit(lambda im: local_equivariance_error(network, im, family, ["rotation", "tx"]))(
        images
    )
    assert isinstance(error, LocalEquivarianceError)
    assert error.names == ("rotation", "tx")
    assert error.per_example.shape == (4, 2)

    def probabilities(eta: Array) -> Array:  # through the family's own warp (expm)
        return jax.nn.softmax(network(family.apply(images, eta)), axis=-1)

    by_hand = jnp.abs(jax.jit(jax.jacfwd(probabilities))(jnp.zeros(2))).mean(1)  # over classes
    np.testing.assert_allclose(error.per_example, by_hand[:, ::-1], rtol=1e-4, atol=1e-7)
    assert error.mean == pytest.approx(
        {
            "rotation": float(error.per_example[:, 0].mean()),
            "tx": float(error.per_example[:, 1].mean()),
        }
    )
    raw = jax.jit(
        lambda im: (
            local_equivariance_error(
                mass_and_centroid, im, family, "rotation", outputs="raw"
            ).per_example
        )
    )(blobs(6))
    centroid = mass_and_centroid(blobs(6))  # |0| + |−c_y| + |c_x|, over 3 outputs
    expected = (jnp.abs(centroid[:, 2]) + jnp.abs(centroid[:, 1])) / 3
    np.testing.assert_allclose(raw[:, 0], expected, atol=1e-5)


def test_factor_adds_minus_weight_times_the_value_to_the_log_density() -> None:
    images = jax.random.uniform(jax.random.key(7), (3, 8, 8, 1))
    module = ConvEncoder((8, 8, 1), 2, rngs=nnx.Rngs(2), channels=(4,), hidden=8)
    family = Affine(("rotation", "tx"), method="bicubic")

    def model(weight: float | None) -> None:
        network = nnx_module("net", module)
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=network(images).sum())
        if weight is not None:
            lie_derivative_factor("lie", network, images, family, "tx", weight=weight)

    @jax.jit
    def densities() -> dict[str, Array]:
        with_factor, trace = log_density(model, (2.5,), {}, {})
        return {
            "base": log_density(model, (None,), {}, {})[0],
            "with": with_factor,
            "factor": trace["lie"]["fn"].log_factor,
            "value": mean_squared_lie_derivative(lambda x: module(x), images, family, "tx"),
        }

    got = densities()
    assert float(got["value"]) > 0
    np.testing.assert_allclose(got["factor"], -2.5 * got["value"], rtol=1e-5)
    np.testing.assert_allclose(got["with"] - got["base"], -2.5 * got["value"], rtol=1e-5)
    rgb = jnp.concatenate([images] * 3, axis=-1)
    brightness = lambda x: x.sum((1, 2, 3))  # L_value brightness = brightness
    trace = numpyro.handlers.trace(lie_derivative_factor).get_trace(
        "lie", brightness, rgb, Colour(("value",)), weight=0.5
    )
    assert trace["lie"]["type"] == "sample"  # a numpyro.factor: an observed Unit site
    expected = -0.5 * jnp.mean(brightness(rgb) ** 2)
    np.testing.assert_allclose(trace["lie"]["fn"].log_factor, expected, rtol=1e-5)


def test_bad_input_gives_clear_errors() -> None:
    images = blobs(8)
    f = mass_and_centroid
    with pytest.raises(ValueError, match=r"CyclicRotation is a discrete family.*no generator"):
        lie_derivative(f, images, CyclicRotation(4), 0)
    with pytest.raises(ValueError, match="Flip is a discrete family"):
        local_equivariance_error(f, images, Flip(), outputs="raw")
    with pytest.raises(
        ValueError,
        match=r"generator index 6 out of range: the family has 6 generator\(s\).*indices 0\.\.5",
    ):
        lie_derivative(f, images, AFFINE, 6)
    with pytest.raises(ValueError, match="generator index True out of range"):
        lie_derivative(f, images, AFFINE, True)
    assert lie_derivatives(f, images, AFFINE, np.int64(2)).shape == (1, 3, 3)
    with pytest.raises(ValueError, match="generator index -1 out of range"):
        lie_derivatives(f, images, AFFINE, [0, -1])
    with pytest.raises(ValueError, match=r"unknown generator 'hue'; the family's are \('tx',"):
        mean_squared_lie_derivative(f, images, AFFINE, "hue")
    with pytest.raises(ValueError, match="no generator chosen"):
        lie_derivatives(f, images, AFFINE, [])
    with pytest.raises(ValueError, match=r"interpolates by 'nearest'.*use method='bicubic'"):
        lie_derivative(f, images, Affine(("rotation",), method="nearest"), 0)
    with pytest.raises(TypeError, match="needs a transformation family with parameters and apply"):
        lie_derivative(f, images, "rotation", 0)
    with pytest.raises(ValueError, match=r"unknown outputs 'logits'; expected one of"):
        local_equivariance_error(f, images, AFFINE, outputs="logits")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="images must have rank 4"):
        lie_derivative(f, images[0], AFFINE, 0)
    with pytest.raises(ValueError, match=r"weight must be finite and >= 0, got -1\.0"):
        lie_derivative_factor("lie", f, images, AFFINE, weight=-1.0)
    with pytest.raises(ValueError, match="discrete family"):
        lie_derivative_factor("lie", f, images, CyclicRotation(4))
