"""AugVAE and InvVAE: the augmentation is the symmetry's resampling, InvVAE's data and samples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from numpyro.handlers import seed, substitute, trace
from scipy import ndimage

from invppl.infer import fit
from invppl.models import (
    AugVAE,
    InvVAE,
    LearnedSymmetry,
    decode,
    make_augvae,
    make_invvae,
    make_two_stage_sgm,
)
from invppl.nn import with_fitted_params
from tests.models.scipy_rotation import rotate

# The sizes of tests/models/test_sgm_two_stage.py: a whole test run compiles their ops once.
SHAPE = (16, 16, 1)
SGM = make_two_stage_sgm(
    SHAPE, ("rotation",), seed=0, hidden=16, context_dim=4, knots=4, flow_layers=1
)
# The initial networks stand in for fitted ones: every property here holds for any weights.
SYMMETRY = SGM.learned(
    {"pose_net$params": nnx.to_pure_dict(nnx.state(SGM.pose_net, nnx.Param))},
    {
        "prior_embedding$params": nnx.to_pure_dict(nnx.state(SGM.prior_embedding, nnx.Param)),
        "prior_flow$params": nnx.to_pure_dict(nnx.state(SGM.prior_flow, nnx.Param)),
    },
)


def _images(n: int, seed_: int) -> np.ndarray:
    """``(n, 16, 16, 1)`` smooth random images in [0, 1], zero near the border."""
    rng = np.random.default_rng(seed_)
    images = np.zeros((n, 16, 16))
    images[:, 5:11, 5:11] = rng.uniform(size=(n, 6, 6))
    return ndimage.gaussian_filter(images, (0, 0.7, 0.7))[..., None].astype(np.float32)


X = _images(6, 0)
AUG = make_augvae(SHAPE, 3, SYMMETRY, seed=0, kind="normal", hidden=16)
INV = make_invvae(SHAPE, 3, SYMMETRY, seed=0, kind="normal", hidden=16)


def test_learned_holds_the_given_weights() -> None:
    assert isinstance(SYMMETRY, LearnedSymmetry)
    x = jnp.asarray(X)
    np.testing.assert_allclose(SYMMETRY.pose(x), SGM.pose_net(x), atol=1e-6)


@jax.jit
def _augment_and_parts(key: jax.Array, batch: dict) -> tuple:
    """AugVAE's augmentation, the symmetry's resampling, and the pieces of x' = T_η'(x̂)."""
    pose = SYMMETRY.pose(batch["x"])
    prototypes = SYMMETRY.family.apply(batch["x"], -pose)
    new = SYMMETRY.sample_eta(key, prototypes)
    return AUG.augment(key, batch), SYMMETRY.resample(key, batch["x"]), pose, new


def test_augvae_augment_is_the_symmetry_resampling() -> None:
    assert isinstance(AUG, AugVAE)
    assert AUG.model is AUG.vae.model
    assert AUG.guide is AUG.vae.guide
    key = jax.random.key(3)
    labels = jnp.arange(6)
    batch = {"x": jnp.asarray(X), "label": labels}
    augmented, resampled, pose, new = _augment_and_parts(key, batch)
    assert set(augmented) == {"x", "label"}
    np.testing.assert_array_equal(augmented["label"], labels)
    assert augmented["x"].shape == X.shape
    np.testing.assert_allclose(augmented["x"], resampled, atol=1e-6)
    np.testing.assert_array_equal(batch["x"], X)  # the batch given is not changed
    # The oracle: x' = T_η'(x̂), η' ~ p(η | x̂); rotations commute, so one rotation of x
    # by η' − f(x) (SciPy's), with η' drawn from the same key.
    turns = np.asarray(new - pose)[:, 0]
    expected = np.stack([rotate(image[..., 0], t) for image, t in zip(X, turns, strict=True)])
    np.testing.assert_allclose(augmented["x"][..., 0], expected, atol=1e-4)
    assert float(jnp.abs(augmented["x"] - X).max()) > 0.05  # it did move the images
    other = _augment_and_parts(jax.random.key(4), batch)[0]
    assert not np.allclose(np.asarray(other["x"]), np.asarray(augmented["x"]))


def test_invvae_data_are_the_prototypes() -> None:
    assert isinstance(INV, InvVAE)
    x = _images(5, 1)
    data = INV.data(x, batch_size=2)  # three chunks, the last partial
    assert set(data) == {"x"}
    assert isinstance(data["x"], np.ndarray)
    assert data["x"].dtype == np.float32
    assert data["x"].shape == x.shape
    # the oracle: x̂ = T_f(x)⁻¹(x), a rotation by −f(x) (SciPy's)
    pose = np.asarray(SGM.pose_net(jnp.asarray(x)))[:, 0]
    expected = np.stack([rotate(image[..., 0], -p) for image, p in zip(x, pose, strict=True)])
    np.testing.assert_allclose(data["x"][..., 0], expected, atol=1e-4)


def test_invvae_data_shape_errors_are_named() -> None:
    with pytest.raises(
        ValueError, match=r"x must have shape \(n, \*\(16, 16, 1\)\), got \(5, 16, 16\)"
    ):
        INV.data(X[:5, ..., 0])
    with pytest.raises(ValueError, match=r"got \(2, 8, 8, 1\)"):
        INV.data(np.zeros((2, 8, 8, 1), np.float32))


def _decoder_params(vae: object, *, zero_output: bool) -> dict:
    decoder = nnx.clone(vae.decoder)  # type: ignore[attr-defined]
    if zero_output:  # the last layer outputs 0, so sigmoid(f(z)) = 1/2 for every z
        last = decoder.deconvs[-1]
        last.kernel[...] = jnp.zeros_like(last.kernel[...])
        last.bias[...] = jnp.zeros_like(last.bias[...])
    return {"decoder$params": nnx.to_pure_dict(nnx.state(decoder, nnx.Param))}


_sample = jax.jit(INV.sample, static_argnums=2)


def test_invvae_samples_are_moved_prototypes() -> None:
    params = _decoder_params(INV.vae, zero_output=True)
    prototypes, eta, images = _sample(jax.random.key(0), params, 7)
    assert prototypes.shape == images.shape == (7, *SHAPE)
    assert eta.shape == (7, 1)
    np.testing.assert_allclose(prototypes, 0.5, atol=1e-7)
    assert bool(jnp.all((eta >= -math.pi) & (eta <= math.pi)))
    expected = np.stack([rotate(np.full((16, 16), 0.5), e) for e in np.asarray(eta)[:, 0]])
    np.testing.assert_allclose(images[..., 0], expected, atol=1e-5)
    # with other weights: still T_η(x̂), and the same key gives the same draw
    params = _decoder_params(INV.vae, zero_output=False)
    prototypes, eta, images = _sample(jax.random.key(1), params, 7)
    again = _sample(jax.random.key(1), params, 7)
    for a, b in zip((prototypes, eta, images), again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert bool(jnp.all((prototypes > 0) & (prototypes < 1)))
    assert float(prototypes.std()) > 0
    turned = [
        rotate(p[..., 0], e)
        for p, e in zip(np.asarray(prototypes), np.asarray(eta)[:, 0], strict=True)
    ]
    np.testing.assert_allclose(images[..., 0], np.stack(turned), atol=1e-4)


def test_decode_is_the_model_mean_under_fitted_params() -> None:
    params = _decoder_params(INV.vae, zero_output=False)
    z = jax.random.normal(jax.random.key(2), (4, 3))
    x = jnp.asarray(X[:4])
    model = substitute(seed(INV.model, 0), data={**params, "z": z})
    mean = trace(model).get_trace(x)["x"]["fn"].mean
    np.testing.assert_allclose(decode(INV.vae, params, z), mean, atol=1e-6)
    fitted = with_fitted_params(INV.vae.decoder, "decoder", params)
    np.testing.assert_allclose(decode(INV.vae, params, z), jax.nn.sigmoid(fitted(z)), atol=1e-6)


@pytest.mark.parametrize("make", [make_augvae, make_invvae])
def test_a_symmetry_that_is_not_learned_is_refused(make: object) -> None:
    for wrong in (SGM, SGM.family, None):
        with pytest.raises(TypeError, match="symmetry must be a LearnedSymmetry"):
            make(SHAPE, 2, wrong, seed=0, hidden=16)  # type: ignore[operator]


def test_augvae_fits_with_the_augmentation() -> None:
    traced = []

    def augment(key: jax.Array, batch: dict) -> dict:
        traced.append(batch["x"].shape)
        return AUG.augment(key, batch)

    result = fit(
        AUG.model,
        AUG.guide,
        {"x": _images(16, 2)},
        seed=0,
        num_steps=5,
        batch_size=8,
        optimizer=optax.adam(1e-3),
        augment=augment,
        progress=False,
    )
    # traced into the compiled step (and by fit's shape check), not run once per step
    assert set(traced) == {(8, *SHAPE)}
    assert 1 <= len(traced) <= 2
    assert result.steps_done == 5
    assert not result.stopped_early
    assert np.all(np.isfinite(result.losses))
    assert set(result.params) == {"decoder$params", "encoder$params"}
