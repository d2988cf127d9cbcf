"""Observation sites: the continuous Bernoulli is a proper density; sites move the prototype."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpyro.handlers import seed, trace

from invppl.distributions.likelihood import (
    ContinuousBernoulli,
    image_likelihood,
    likelihood_distribution,
)
from invppl.transforms import Affine


@given(st.floats(0.01, 0.99))
def test_continuous_bernoulli_normalises_and_has_the_stated_mean(lam: float) -> None:
    grid = np.linspace(0.0, 1.0, 20001)
    with jax.enable_x64(True):
        density = np.exp(np.asarray(ContinuousBernoulli(jnp.asarray(lam)).log_prob(grid)))
        mean = float(ContinuousBernoulli(jnp.asarray(lam)).mean)
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.trapezoid(grid * density, grid), mean, atol=1e-6)


def test_continuous_bernoulli_samples_follow_the_density() -> None:
    from scipy import stats

    for lam in (0.2, 0.5, 0.93):
        d = ContinuousBernoulli(jnp.asarray(lam))
        samples = np.asarray(d.sample(jax.random.key(0), (4000,)))
        grid = np.linspace(0, 1, 4001)
        cdf = np.concatenate([[0], np.cumsum(np.exp(np.asarray(d.log_prob(grid)))[1:])]) / 4000

        def curve(x, cdf=cdf, grid=grid):
            return np.interp(x, grid, cdf / cdf[-1])

        assert stats.kstest(samples, curve).pvalue > 1e-3


def test_site_observes_the_moved_prototype() -> None:
    prototype = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))
    eta = jnp.array([[0.3], [-1.0]])

    def model(x):
        return image_likelihood("x", prototype, eta, ["rotation"], obs=x, kind="normal", scale=0.2)

    x = jnp.zeros_like(prototype)
    tr = trace(seed(model, 0)).get_trace(x)
    moved = Affine(("rotation",)).apply(prototype, eta)
    expected = jax.scipy.stats.norm.logpdf(x, moved, 0.2).sum((1, 2, 3))
    np.testing.assert_allclose(tr["x"]["fn"].log_prob(x), expected, rtol=1e-5)
    assert tr["x"]["fn"].event_shape == (8, 8, 1)


def test_bad_input_is_named() -> None:
    prototype = jnp.zeros((2, 8, 8, 1))
    with pytest.raises(ValueError, match="unknown likelihood kind 'poisson'"):
        image_likelihood("x", prototype, None, None, kind="poisson")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"observed images have shape \(2, 9, 9, 1\)"):
        image_likelihood("x", prototype, None, None, obs=jnp.zeros((2, 9, 9, 1)))
    with pytest.raises(ValueError, match="unknown transformation name"):
        image_likelihood("x", prototype, jnp.zeros((2, 1)), ["spin"])
    with pytest.raises(ValueError, match="give both eta and family"):
        image_likelihood("x", prototype, jnp.zeros((2, 1)), None)


def test_a_normal_scale_that_would_grow_the_mean_is_refused() -> None:
    # a per-example (batch,) σ on one-channel images used to broadcast against the channel
    # axis: event (8, 8, 2) and a log density summed over the wrong axis
    mean = jnp.full((2, 8, 8, 1), 0.5)
    for scale in (jnp.full((2,), 0.1), jnp.full((3,), 0.1), jnp.full((2, 1, 1, 1, 1), 0.1)):
        with pytest.raises(
            ValueError,
            match=re.escape(
                f"scale has shape {scale.shape}, which does not broadcast to the mean's shape "
                "(2, 8, 8, 1)"
            ),
        ):
            likelihood_distribution(mean, "normal", scale)
    with pytest.raises(ValueError, match=r"scale has shape \(2,\)"):
        image_likelihood("x", mean, None, None, obs=mean, scale=jnp.full((2,), 0.1))
    with pytest.raises(ValueError, match=r"event_dims=5 must lie in 0\.\.4 for a mean of shape"):
        likelihood_distribution(mean, "normal", 0.1, event_dims=5)


@pytest.mark.parametrize("shape", [(), (1,), (2, 1, 1, 1), (8, 1), (2, 8, 8, 1)])
def test_scales_that_broadcast_to_the_mean_still_work(shape: tuple[int, ...]) -> None:
    mean = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
    scale = jnp.full(shape, 0.3)
    site = likelihood_distribution(mean, "normal", scale)
    assert site.batch_shape == (2,)
    assert site.event_shape == (8, 8, 1)
    expected = jax.scipy.stats.norm.logpdf(mean * 0.5, mean, 0.3).sum((1, 2, 3))
    np.testing.assert_allclose(site.log_prob(mean * 0.5), expected, rtol=1e-5)
    # the scale is unused by the other likelihoods, so any shape is accepted there
    assert likelihood_distribution(mean, "bernoulli", jnp.ones(5)).batch_shape == (2,)


def test_continuous_bernoulli_value_must_broadcast_against_its_batch() -> None:
    density = ContinuousBernoulli(jnp.full((3,), 0.3))
    with pytest.raises(
        ValueError,
        match=r"value of shape \(2,\) has leading axes \(2,\) that "
        r"do not broadcast against the batch shape \(3,\)",
    ):
        density.log_prob(jnp.zeros(2))
    assert density.log_prob(jnp.zeros((4, 1))).shape == (4, 3)
