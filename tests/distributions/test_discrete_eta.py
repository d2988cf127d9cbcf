"""Distributions over η for discrete symmetries, against quadrature and SciPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import constraints
from scipy import stats

from invppl.distributions import DiscreteRotationMixture, categorical_eta, group_angles
from invppl.transforms.support import Discrete, Interval, Parameter, Periodic


def _circle_grid(circle, points=20_000):
    nodes = circle.low + circle.period * np.arange(points) / points
    return nodes, circle.period / points


@pytest.mark.parametrize("circle", [Periodic(), Periodic(low=0.0, period=1.0)])
def test_mixture_integrates_to_one_on_the_circle(circle):
    logits = jax.random.normal(jax.random.key(0), (3, 5))
    mixture = DiscreteRotationMixture(logits, jnp.array([0.5, 4.0, 30.0]), support=circle)
    assert mixture.batch_shape == (3,)
    assert mixture.event_shape == ()
    nodes, weight = _circle_grid(circle)
    log_prob = jax.jit(mixture.log_prob)(jnp.asarray(nodes, jnp.float32)[:, None])
    np.testing.assert_allclose(
        np.exp(np.asarray(log_prob, np.float64)).sum(0) * weight, 1.0, rtol=1e-4
    )


def test_mixture_matches_scipy_von_mises_mixture():
    logits = jnp.array([0.3, -1.0, 2.0, 0.1])
    kappa = 6.0
    angles = np.linspace(-math.pi, math.pi, 101)
    weights = np.exp(logits) / np.exp(logits).sum()
    expected = sum(
        w * stats.vonmises(kappa, loc=2 * math.pi * j / 4).pdf(angles)
        for j, w in enumerate(np.asarray(weights))
    )
    got = np.exp(DiscreteRotationMixture(logits, kappa).log_prob(jnp.asarray(angles)))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("n", [2, 4, 6])
def test_uniform_mixture_is_invariant_to_group_shifts(n):
    mixture = DiscreteRotationMixture(jnp.zeros(n), 8.0)
    angles = jax.random.uniform(jax.random.key(n), (64,), minval=-math.pi, maxval=math.pi)
    shifted = Periodic().wrap(angles + 2 * math.pi / n)
    np.testing.assert_allclose(mixture.log_prob(shifted), mixture.log_prob(angles), atol=1e-5)
    # and not under a shift that is not a group element
    off = Periodic().wrap(angles + math.pi / n)
    assert float(jnp.max(jnp.abs(mixture.log_prob(off) - mixture.log_prob(angles)))) > 0.1


def test_mixture_samples_follow_the_density_and_stay_on_the_circle():
    circle = Periodic(low=0.0, period=1.0)
    mixture = DiscreteRotationMixture(jnp.array([1.0, 0.0, -0.5]), 10.0, support=circle)
    sample = jax.jit(mixture.sample, static_argnums=1)
    samples = np.asarray(sample(jax.random.PRNGKey(1), (3000,)), np.float64)
    assert np.all((samples >= 0.0) & (samples < 1.0))
    assert bool(jnp.all(mixture.support(samples)))
    nodes, weight = _circle_grid(circle)
    cdf = np.cumsum(np.exp(np.asarray(mixture.log_prob(jnp.asarray(nodes)), np.float64))) * weight
    assert stats.kstest(samples, lambda v: np.interp(v, nodes, cdf / cdf[-1])).pvalue > 0.01
    component = mixture.component_distribution(2)
    assert np.allclose(
        np.asarray(component.sample(jax.random.PRNGKey(2), (500,))).mean(), 2 / 3, atol=0.02
    )


def test_mixture_log_prob_gradients_match_finite_differences():
    with jax.enable_x64(True):

        def log_prob(logits, kappa):
            return (
                DiscreteRotationMixture(logits, kappa).log_prob(jnp.array([0.2, 2.9, -1.4])).sum()
            )

        logits, kappa = jnp.array([0.3, -0.2, 0.5, 0.0]), jnp.asarray(3.0)
        grad_logits, grad_kappa = jax.jit(jax.grad(log_prob, argnums=(0, 1)))(logits, kappa)
        step = 1e-6
        numeric_kappa = (log_prob(logits, kappa + step) - log_prob(logits, kappa - step)) / (
            2 * step
        )
        assert float(grad_kappa) == pytest.approx(float(numeric_kappa), rel=1e-6)
        delta = jnp.zeros(4).at[2].set(step)
        numeric_logit = (log_prob(logits + delta, kappa) - log_prob(logits - delta, kappa)) / (
            2 * step
        )
        assert float(grad_logits[2]) == pytest.approx(float(numeric_logit), rel=1e-6)


def test_group_angles():
    np.testing.assert_allclose(group_angles(4), [0.0, math.pi / 2, -math.pi, -math.pi / 2])
    np.testing.assert_allclose(group_angles(3, Periodic(0.0, 1.0)), [0.0, 1 / 3, 2 / 3])


def test_categorical_respects_discrete_support():
    parameter = Parameter("quarter_turns", Discrete(4))
    categorical = categorical_eta(parameter, jnp.array([[0.0, 1.0, 2.0, 3.0]] * 5))
    assert categorical.batch_shape == (5,)
    assert isinstance(categorical.support, constraints.integer_interval)
    assert categorical.support.lower_bound == 0
    assert categorical.support.upper_bound == 3
    samples = categorical.sample(jax.random.PRNGKey(0), (1000,))
    assert set(np.unique(np.asarray(samples)).tolist()) <= {0, 1, 2, 3}
    np.testing.assert_allclose(
        np.exp(categorical_eta(Discrete(4)).log_prob(jnp.arange(4))), 0.25, rtol=1e-6
    )


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match=r"parameter 'x' must be Discrete\(n\).*got Interval"):
        categorical_eta(Parameter("x", Interval(0.0, 1.0)))
    with pytest.raises(ValueError, match=r"logits must have shape \(\.\.\., 4\) for Discrete\(4\)"):
        categorical_eta(Discrete(4), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"concentration must be positive"):
        DiscreteRotationMixture(jnp.zeros(4), -1.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(\.\.\., n\) with n >= 1"):
        DiscreteRotationMixture(jnp.zeros(()), 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        DiscreteRotationMixture(jnp.zeros((3, 4)), jnp.ones(2))
    with pytest.raises(TypeError, match="support must be Periodic"):
        DiscreteRotationMixture(jnp.zeros(4), 1.0, support=Interval(0.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order n must be a positive integer, got 0"):
        group_angles(0)


def test_mixture_value_must_broadcast_against_its_batch():
    mixture = DiscreteRotationMixture(jnp.zeros((3, 4)), 2.0)
    with pytest.raises(
        ValueError,
        match=r"DiscreteRotationMixture\.log_prob: value of shape \(2,\) has leading axes \(2,\) "
        r"that do not broadcast against the batch shape \(3,\)",
    ):
        mixture.log_prob(jnp.zeros(2))
    assert mixture.log_prob(jnp.zeros(3)).shape == (3,)
    assert mixture.log_prob(jnp.zeros((5, 1))).shape == (5, 3)
