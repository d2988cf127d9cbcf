"""Simulation-based calibration: uniform ranks for the exact guide, rejections otherwise."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import special

from invppl.diagnostics import SBCResult, sbc, simulate
from invppl.metrics import wasserstein_to_law
from tests.diagnostics import pointcloud as pc

SIMULATIONS = 500
SAMPLES = 99
TEMPLATE = np.zeros((100, pc.POINTS, 2), dtype=np.float32)


def run(factor: float, simulations: int = SIMULATIONS) -> SBCResult:
    return sbc(
        pc.model,
        pc.make_guide(factor),
        {},
        TEMPLATE,
        parameters=pc.PARAMETERS,
        num_simulations=simulations,
        num_samples=SAMPLES,
        seed=0,
    )


@pytest.fixture(scope="module")
def exact() -> SBCResult:
    return run(1.0)


def test_result_layout(exact: SBCResult) -> None:
    assert exact.ranks.shape == (SIMULATIONS, 1)
    assert exact.ranks.min() >= 0
    assert exact.ranks.max() <= SAMPLES
    assert np.issubdtype(exact.ranks.dtype, np.integer)
    assert exact.num_samples == SAMPLES
    assert exact.parameters == pc.PARAMETERS
    assert list(exact.table.index) == ["rotation"]
    assert list(exact.table.columns) == ["p_value", "chi2_p_value", "mean_pit"]
    # 50 bins by default would be too many for 500 ranks: at most 20, dividing L + 1 = 100
    assert exact.bins == 20
    counts = exact.histogram("rotation")
    assert counts.shape == (20,)
    assert counts.sum() == SIMULATIONS


def test_exact_guide_ranks_are_uniform(exact: SBCResult) -> None:
    row = exact.table.loc["rotation"]
    assert row.p_value > 1e-3
    assert row.chi2_p_value > 1e-3
    assert row.mean_pit == pytest.approx(0.5, abs=0.04)
    # every rank bin holds about 25 of the 500 ranks
    assert exact.histogram("rotation").max() < 50


def test_under_confident_guide_is_rejected() -> None:
    # κ three times too small: truth in the middle of the guide's draws, a ∩ shape.
    # (The over-confident guide's ∪ shape is checked through check_eta, test_check.py.)
    # 450 simulations in batches of 100: the last batch is cut short
    result = run(0.3, simulations=450)
    assert result.ranks.shape == (450, 1)
    assert result.table.loc["rotation", "p_value"] < 1e-6
    assert result.table.loc["rotation", "chi2_p_value"] < 1e-6
    counts = result.histogram("rotation")
    assert counts[8:12].mean() > 2 * (counts[0] + counts[-1]) / 2


# ---------------------------------------------------------------- simulate


@pytest.fixture(scope="module")
def simulated() -> tuple[jax.Array, dict[str, jax.Array]]:
    return simulate(pc.model, {}, jnp.zeros((4000, pc.POINTS, 2)), seed=0)


def test_simulate_shapes(simulated: tuple[jax.Array, dict[str, jax.Array]]) -> None:
    x, latents = simulated
    assert x.shape == (4000, pc.POINTS, 2)
    assert x.dtype == jnp.float32
    assert set(latents) == {"eta"}
    assert latents["eta"].shape == (4000, 1)


def test_simulated_eta_follows_the_prior(
    simulated: tuple[jax.Array, dict[str, jax.Array]],
) -> None:
    eta = np.asarray(simulated[1]["eta"][:, 0])
    assert pc.arc(pc.circular_mean(eta), pc.MU0) < 0.1
    expected = special.i1e(pc.KAPPA0) / special.i0e(pc.KAPPA0)  # mean resultant length
    assert pc.resultant_length(eta) == pytest.approx(expected, abs=0.03)
    prior = pc.posterior_cdf(pc.MU0, pc.KAPPA0)
    assert wasserstein_to_law(eta, prior, period=2 * math.pi) < 0.06


def test_simulated_data_given_eta(simulated: tuple[jax.Array, dict[str, jax.Array]]) -> None:
    x, latents = (np.asarray(a) for a in (simulated[0], simulated[1]["eta"]))
    residual = x - np.einsum("bij,pj->bpi", pc.rotation(latents[:, 0]), pc.Y)
    assert abs(residual.mean()) < 0.01
    assert residual.std() == pytest.approx(pc.SIGMA, rel=0.02)


def test_simulate_is_seeded_and_ignores_factors(
    simulated: tuple[jax.Array, dict[str, jax.Array]],
) -> None:
    def model(x: jax.Array) -> None:
        pc.model(x)
        numpyro.factor("penalty", -1.0)

    template = np.ones((4000, pc.POINTS, 2), dtype=np.float32)
    a, latents = simulate(model, {}, template, seed=0)
    b, _ = simulate(model, {}, template, seed=jax.random.PRNGKey(1))
    assert set(latents) == {"eta"}
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, template)  # the template's values are not used
    # the factor changes nothing: the same seed draws the same batch as without it
    x, _ = simulated
    np.testing.assert_array_equal(a, x)


def test_simulate_needs_exactly_one_observed_site() -> None:
    def two(x: jax.Array) -> None:
        pc.model(x)
        numpyro.sample("count", dist.Poisson(3.0), obs=jnp.ones(x.shape[0]))

    def none(x: jax.Array) -> None:
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([1]).to_event(1))

    with pytest.raises(ValueError, match=r"exactly one observed site.*\['x', 'count'\]"):
        simulate(two, {}, jnp.zeros((2, pc.POINTS, 2)), seed=0)
    with pytest.raises(ValueError, match=r"exactly one observed site.*\[\]"):
        simulate(none, {}, jnp.zeros((2, pc.POINTS, 2)), seed=0)


def test_simulate_refuses_data_of_another_shape() -> None:
    def model(x: jax.Array) -> None:
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1), obs=x[:, :2])

    with pytest.raises(ValueError, match=r"has shape \(4, 2\), the data \(4, 3\)"):
        simulate(model, {}, jnp.zeros((4, 3)), seed=0)
