"""Importance-weighted bounds against the linear-Gaussian model's exact log p(x)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats

from invppl.infer import elbo_per_example, iwae_bound, per_example_log_weight
from tests.infer import linear_gaussian as lg


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return lg.sample_data(37, seed=3)


@pytest.mark.parametrize("num_samples", [1, 20])
def test_exact_posterior_guide_gives_log_marginal_for_every_k(
    x: np.ndarray, num_samples: int
) -> None:
    # With q = p(z | x) every weight equals p(x_i): the bounds are exact for any K.
    # batch_size 16 does not divide 37, so padded rows must be left out of the mean.
    exact = lg.log_marginal(x).mean()
    kwargs: dict[str, Any] = {"seed": 0, "num_samples": num_samples, "batch_size": 16}
    assert iwae_bound(lg.model, lg.exact_guide, {}, {"x": x}, **kwargs) == pytest.approx(
        exact, abs=2e-4
    )
    assert elbo_per_example(lg.model, lg.exact_guide, {}, {"x": x}, **kwargs) == pytest.approx(
        exact, abs=2e-4
    )


def test_per_example_log_weight_of_exact_guide_is_log_marginal(x: np.ndarray) -> None:
    weights = jax.jit(
        lambda x, key: per_example_log_weight(lg.model, lg.exact_guide, {}, {"x": x}, key=key)
    )(jnp.asarray(x), jax.random.PRNGKey(1))
    assert weights.shape == (x.shape[0],)
    np.testing.assert_allclose(np.asarray(weights), lg.log_marginal(x), atol=2e-4)


def test_bounds_order_for_optimal_factorised_guide() -> None:
    # The best factorised q has a known ELBO gap KL(q* ‖ p(z|x)); IWAE_K closes it as K grows.
    x = lg.sample_data(200, seed=4)
    exact = lg.log_marginal(x).mean()
    gap = lg.mean_field_gap()
    params = lg.optimal_mean_field_params()
    data = {"x": x}

    def iwae(k: int) -> float:
        return iwae_bound(lg.model, lg.param_guide, params, data, seed=0, num_samples=k)

    # 1000 samples per example: the ELBO's Monte Carlo error is tiny.
    elbo = elbo_per_example(lg.model, lg.param_guide, params, data, seed=0, num_samples=1000)
    assert elbo == pytest.approx(exact - gap, abs=0.01)
    iwae_1, iwae_10, iwae_1000 = iwae(1), iwae(10), iwae(1000)
    assert iwae_1 == pytest.approx(exact - gap, abs=0.1)  # one sample: the ELBO, noisily
    assert elbo < iwae_10 < iwae_1000
    assert iwae_10 > exact - 0.5 * gap
    # q* is narrower than p(z|x), so IWAE converges slowly: a float64 NumPy Monte Carlo
    # of the same bound gives exact - 0.06 at K = 1000 and exact - 0.006 at K = 100000.
    assert exact - 0.2 * gap < iwae_1000 < exact + 0.01


def test_global_site_goes_to_every_example() -> None:
    # theta ~ N(0, 1) outside the data plate, x_i | theta ~ N(theta, 1) inside it,
    # q(theta) = N(0.3, 0.7). Convention: log w_i = log p(theta) - log q(theta) + log p(x_i|theta).
    def model(x: jax.Array) -> None:
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(theta, 1.0), obs=x)

    def guide(x: jax.Array) -> None:
        numpyro.sample("theta", dist.Normal(0.3, 0.7))

    x = np.array([-1.0, 0.5, 2.0], np.float32)
    weights = np.asarray(
        per_example_log_weight(model, guide, {}, {"x": x}, key=jax.random.PRNGKey(5)), np.float64
    )
    # Recover theta from two examples' difference: w_0 - w_1 = (x_1² - x_0²)/2 + theta (x_0 - x_1).
    theta = (weights[0] - weights[1] - (x[1] ** 2 - x[0] ** 2) / 2) / (x[0] - x[1])
    expected = (
        stats.norm(0, 1).logpdf(theta)
        - stats.norm(0.3, 0.7).logpdf(theta)
        + stats.norm(theta, 1).logpdf(x.astype(np.float64))
    )
    np.testing.assert_allclose(weights, expected, atol=1e-4)


def test_latent_missing_from_guide_raises(x: np.ndarray) -> None:
    def empty_guide(x: jax.Array) -> None:
        pass

    with pytest.raises(
        ValueError, match="latent site 'z' of the model is not sampled by the guide"
    ):
        iwae_bound(lg.model, empty_guide, {}, {"x": x}, seed=0, num_samples=2)


def test_model_without_the_data_plate_raises(x: np.ndarray) -> None:
    def other_plate_model(x: jax.Array) -> None:
        with numpyro.plate("examples", x.shape[0]):
            numpyro.sample("x", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1), obs=x)

    with pytest.raises(
        ValueError, match="no sample site of the model lies in a plate named 'data'"
    ):
        iwae_bound(other_plate_model, lambda x: None, {}, {"x": x}, seed=0, num_samples=2)
    bound = iwae_bound(
        other_plate_model,
        lambda x: None,
        {},
        {"x": x},
        seed=0,
        num_samples=1,
        plate_name="examples",
    )
    expected = stats.norm.logpdf(x.astype(np.float64)).sum(axis=1).mean()
    assert bound == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "num_samples must be a positive integer"),
        ({"num_samples": 2.5}, TypeError, "num_samples must be a positive integer"),
        ({"num_samples": 2, "batch_size": 0}, ValueError, "batch_size must be a positive"),
        ({"num_samples": 2, "seed": -1}, ValueError, "seed must be an integer in"),
    ],
)
def test_bad_arguments_raise(
    x: np.ndarray, kwargs: dict[str, float], error: type[Exception], match: str
) -> None:
    arguments = {"seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        iwae_bound(lg.model, lg.exact_guide, {}, {"x": x}, **arguments)  # type: ignore[arg-type]


def test_nan_in_data_raises_naming_the_key(x: np.ndarray) -> None:
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"data\['x'\] contains 1 NaN"):
        iwae_bound(lg.model, lg.exact_guide, {}, {"x": bad}, seed=0, num_samples=2)
