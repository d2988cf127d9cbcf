"""The flow density model: dequantisation, the logit pre-processing, bits/dim, the baseline.

Oracles are written by hand with NumPy/SciPy: the change of variables of the
logit pre-processing, the maximum-likelihood Gaussian and the bits/dim formula.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from flax import nnx
from numpyro.infer import Trace_ELBO
from scipy import integrate, stats

from invppl.infer import fit
from invppl.models.flow_density import (
    bits_per_dim,
    dequantize,
    dequantize_batch,
    evaluate_bits_per_dim,
    fit_gaussian_baseline,
    iwae_bits_per_dim,
    logit_preprocess,
    make_flow_density,
    pixel_distribution,
    pixel_levels,
)

ALPHA = 0.05


def _digits(n: int, shape=(4, 4, 1), seed: int = 0) -> np.ndarray:
    """8-bit images as floats k/255, mostly background like digits."""
    rng = np.random.default_rng(seed)
    levels = np.where(rng.random((n, *shape)) < 0.6, 0, rng.integers(0, 256, (n, *shape)))
    return (levels / 255).astype(np.float32)


def _by_hand(pixels: np.ndarray, log_p_y) -> np.ndarray:
    """log p(x̃) = log p_Y(logit(s)) + Σ log[(1 − 2α) / (s (1 − s))], s = α + (1 − 2α) x̃."""
    s = ALPHA + (1 - 2 * ALPHA) * pixels.astype(np.float64)
    y = np.log(s / (1 - s))
    jacobian = np.log(1 - 2 * ALPHA) - np.log(s) - np.log(1 - s)
    n = len(pixels)
    return log_p_y(y.reshape(n, -1)) + jacobian.reshape(n, -1).sum(1)


def _standard_normal(y: np.ndarray) -> np.ndarray:
    return stats.norm.logpdf(y).sum(1)


def test_standard_normal_density_on_pixels_is_the_change_of_variables() -> None:
    pixels = np.asarray(dequantize(_digits(5), jax.random.key(0)))
    base = dist.Normal(jnp.zeros((4, 4, 1)), 1.0).to_event(3)
    ours = np.asarray(pixel_distribution(base, ALPHA).log_prob(pixels))
    np.testing.assert_allclose(ours, _by_hand(pixels, _standard_normal), rtol=1e-5)
    y, log_det = logit_preprocess(pixels, ALPHA)
    np.testing.assert_allclose(log_det, _by_hand(pixels, lambda y: 0.0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y).reshape(5, -1), _by_hand_y(pixels), rtol=1e-5)


def _by_hand_y(pixels: np.ndarray) -> np.ndarray:
    s = ALPHA + (1 - 2 * ALPHA) * pixels.astype(np.float64)
    return np.log(s / (1 - s)).reshape(len(pixels), -1)


def test_an_identity_realnvp_is_the_standard_normal_density_in_the_model() -> None:
    """The initial RealNVP (zero output convolutions) is the identity: the model's
    observed site scores log N(y; 0, I) + the pre-processing's log-det, and the
    ELBO of the latent-free model is that log-density."""
    density = make_flow_density((4, 4, 1), seed=0, width=4)
    weights = {"flow$params": nnx.to_pure_dict(nnx.state(density.flow, nnx.Param))}
    pixels = np.asarray(dequantize(_digits(6), jax.random.key(1)))
    expected = _by_hand(pixels, _standard_normal)
    ours = np.asarray(jax.jit(density.distribution(weights).log_prob)(pixels))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    elbo_loss = jax.jit(
        lambda x: Trace_ELBO().loss(jax.random.key(0), {}, density.model, density.guide, x)
    )
    loss = elbo_loss(pixels)
    np.testing.assert_allclose(-float(loss), expected.sum(), rtol=1e-5)
    assert _sample_sites(density.model, pixels) == {"x": True}


def _sample_sites(model, x) -> dict:
    """``{name: is_observed}`` of the model's sample sites (traced abstractly)."""
    sites = {}

    def probe(x):
        trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(x)
        sites.update({k: v["is_observed"] for k, v in trace.items() if v["type"] == "sample"})
        return 0

    jax.eval_shape(probe, x)
    return sites


def test_the_pixel_density_integrates_to_one_on_the_unit_interval() -> None:
    """A density on the dequantised pixels: one pixel, y ~ N(0.3, 0.7²), ∫₀¹ p(x̃) dx̃ = 1."""
    density = pixel_distribution(dist.Normal(0.3, 0.7), ALPHA)
    total, _ = integrate.quad(lambda x: float(np.exp(density.log_prob(x))), 0.0, 1.0)
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_gaussian_baseline_bits_per_dim_is_the_closed_form(covariance: str) -> None:
    train, test = _digits(60, (2, 2, 1), seed=1), _digits(7, (2, 2, 1), seed=2)
    gaussian = fit_gaussian_baseline(train, seed=3, covariance=covariance, jitter=1e-6)
    ours = evaluate_bits_per_dim(gaussian, test, seed=4)
    # by hand: the same uniform draws, the maximum-likelihood Gaussian of y, the formula
    u_train = np.asarray(jax.random.uniform(jax.random.key(3), train.shape))
    u_test = np.asarray(jax.random.uniform(jax.random.key(4), test.shape))
    y = _by_hand_y((np.round(train * 255) + u_train) / 256)
    mean = y.mean(0)
    sigma = np.cov(y.T, bias=True) + 1e-6 * np.eye(4)
    if covariance == "diagonal":
        sigma = np.diag(np.diag(sigma))
    log_p = _by_hand(
        (np.round(test * 255) + u_test) / 256,
        lambda y: stats.multivariate_normal(mean, sigma).logpdf(y),
    )
    expected = -(log_p.mean() - 4 * math.log(256)) / (4 * math.log(2))
    assert ours == pytest.approx(expected, abs=2e-4)


def test_bits_per_dim_by_hand() -> None:
    assert bits_per_dim(0.0, 196) == pytest.approx(8.0)  # the uniform density on [0, 1]^D
    # log p = 300 nats on D = 196 pixels: −(300 − 196 ln 256) / (196 ln 2)
    assert bits_per_dim(np.array([250.0, 350.0]), 196) == pytest.approx(
        8 - 300 / (196 * 0.6931471805599453)
    )
    assert iwae_bits_per_dim(-100.0, (14, 14, 1), "continuous_bernoulli") == pytest.approx(
        (100 + 196 * math.log(256)) / (196 * math.log(2))
    )
    with pytest.raises(ValueError, match="not a density"):
        iwae_bits_per_dim(-100.0, (14, 14, 1), "bernoulli")


def test_dequantised_pixels_stay_in_their_cells() -> None:
    x = _digits(20)
    levels = np.round(x * 255)
    for pixels in (
        np.asarray(dequantize(x, jax.random.key(0))),
        np.asarray(dequantize_batch(jax.random.key(1), {"x": jnp.asarray(x)})["x"]),
    ):
        assert np.all(levels / 256 <= pixels)
        assert np.all(pixels < (levels + 1) / 256)
    np.testing.assert_array_equal(pixel_levels(levels.astype(np.uint8)), levels)


def test_a_short_fit_lowers_the_held_out_bits_per_dim() -> None:
    train, test = _digits(64), _digits(32, seed=5)
    density = make_flow_density((4, 4, 1), seed=0, num_scales=1, width=8, couplings=1)
    weights = {"flow$params": nnx.to_pure_dict(nnx.state(density.flow, nnx.Param))}
    before = evaluate_bits_per_dim(density.distribution(weights), test, seed=0)
    result = fit(
        density.model,
        density.guide,
        {"x": train},
        seed=0,
        num_steps=60,
        batch_size=32,
        augment=density.augment,
        progress=False,
    )
    after = evaluate_bits_per_dim(density.distribution(result.params), test, seed=0)
    assert after < before - 0.3


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.full((2, 4, 4, 1), 1.5, np.float32), r"must lie in \[0, 1\]"),
        (np.full((2, 4, 4, 1), -0.1, np.float32), r"must lie in \[0, 1\]"),
        (np.full((2, 4, 4, 1), 300, np.int32), "0..255"),
        (np.full((2, 4, 4, 1), 0.5 / 255, np.float32), "not 8-bit"),
        (np.full((2, 4, 4, 1), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_pixels_are_refused(images: np.ndarray, match: str) -> None:
    gaussian = pixel_distribution(dist.Normal(jnp.zeros((4, 4, 1)), 1.0).to_event(3))
    with pytest.raises(ValueError, match=match):
        evaluate_bits_per_dim(gaussian, images, seed=0)
    with pytest.raises(ValueError, match=match):
        fit_gaussian_baseline(images, seed=0)
    with pytest.raises(ValueError, match=match):
        make_flow_density((4, 4, 1), seed=0, normalization="actnorm", init_data=images)


def test_bad_settings_are_refused_before_building() -> None:
    with pytest.raises(ValueError, match="divisible by 2"):
        make_flow_density((7, 7, 1), seed=0, num_scales=2)
    with pytest.raises(ValueError, match="alpha"):
        make_flow_density((4, 4, 1), seed=0, alpha=0.5)
    with pytest.raises(ValueError, match="init_data"):
        make_flow_density((4, 4, 1), seed=0, normalization="actnorm")
    density = make_flow_density((4, 4, 1), seed=0, width=4)
    with pytest.raises(ValueError, match="images of shape"):
        density.model(jnp.zeros((2, 8, 8, 1)))


def test_actnorm_initialisation_standardises_the_training_pixels() -> None:
    train = _digits(64)
    density = make_flow_density(
        (4, 4, 1),
        seed=0,
        num_scales=1,
        couplings=1,
        width=4,
        normalization="actnorm",
        init_data=train,
    )
    # the first ActNorm (data side) normalises y per channel: its shift is y's mean
    u = np.asarray(jax.random.uniform(jax.random.key(0), train.shape))
    y = _by_hand_y((np.round(train * 255) + u) / 256)
    first = density.flow.steps[0].norm
    np.testing.assert_allclose(float(first.shift[...][0]), y.mean(), rtol=1e-4)
