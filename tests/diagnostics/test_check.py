"""The NUTS reference against the closed form, and check_eta end to end on the point cloud.

Everything here shares one NUTS reference of the four point-cloud examples (a
run costs ~20 s of CPU, nearly all of it compilation): the reference tests
check it against the closed-form posterior, and the exact, over-confident and
SVI-fitted guides are judged against it through ``check_eta(reference=...)``.
pytest-xdist (``--dist loadscope``) keeps the module on one worker.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import SVI, TraceGraph_ELBO
from scipy import special
from xarray import DataTree

from invppl.diagnostics import EtaCheck, check_eta, convergence, reference_posterior
from invppl.metrics import wasserstein_to_law
from tests.diagnostics import pointcloud as pc

TWO_PI = 2 * math.pi
NUTS = {"num_chains": 4, "num_warmup": 300, "num_samples": 1000}


@pytest.fixture(scope="module")
def reference(x: np.ndarray) -> DataTree:
    """The NUTS reference of the four examples :func:`x`."""
    return reference_posterior(pc.model, {}, x, parameters=pc.PARAMETERS, seed=1, **NUTS)


# ---------------------------------------------------------------- the reference


def test_reference_layout(reference: DataTree, x: np.ndarray) -> None:
    chains, draws = NUTS["num_chains"], NUTS["num_samples"]
    eta = reference.posterior["eta"]
    assert eta.dims == ("chain", "draw", "example", "parameter")
    assert eta.shape == (chains, draws, 4, 1)
    assert list(eta.coords["parameter"].values) == ["rotation"]
    for name in ("diverging", "tree_depth", "accept_prob"):
        stat = reference.sample_stats[name]
        assert stat.dims == ("chain", "draw", "example")
        assert stat.shape == (chains, draws, 4)
    accept = reference.sample_stats["accept_prob"].values
    assert np.all((accept >= 0) & (accept <= 1))
    assert np.all(reference.sample_stats["tree_depth"].values >= 1)
    np.testing.assert_array_equal(reference.observed_data["x"].values, x)
    # the draws lie on the support [−π, π)
    assert np.all((eta.values >= -math.pi) & (eta.values < math.pi))


def test_reference_matches_the_closed_form(reference: DataTree, x: np.ndarray) -> None:
    m, kappa = pc.posterior(x)
    assert kappa[pc.WIDE] < 3
    assert np.delete(kappa, pc.WIDE).min() > 15
    eta = reference.posterior["eta"].values[..., 0]
    for n in range(4):
        draws = eta[:, :, n].ravel()
        cdf = pc.posterior_cdf(m[n], kappa[n])
        w1 = wasserstein_to_law(draws, cdf, period=TWO_PI)
        # the W1 of an exact, independent sample of the same size: the Monte Carlo noise
        noise = wasserstein_to_law(
            pc.exact_sample(m[n], kappa[n], draws.size, seed=n), cdf, period=TWO_PI
        )
        assert w1 < max(3 * noise, 0.05), (n, w1, noise)
        # the mean resultant length of VonMises(m, K) is I1(K) / I0(K)
        length = special.i1e(kappa[n]) / special.i0e(kappa[n])
        spread = math.sqrt(-2 * math.log(length))  # the circular standard deviation
        assert pc.arc(pc.circular_mean(draws), m[n]) < 0.15 * spread, n
        assert pc.resultant_length(draws) == pytest.approx(length, abs=0.03), n


def test_reference_chains_cross_the_seam(reference: DataTree) -> None:
    # example 0's posterior straddles ±π: every chain visits both sides
    eta = reference.posterior["eta"].values[:, :, 0, 0]
    assert np.all((eta > 2.9).any(axis=1) & (eta < -2.9).any(axis=1))


def test_well_run_reference_is_converged(reference: DataTree) -> None:
    table = convergence(reference, pc.PARAMETERS)
    assert list(table.columns) == ["rhat", "ess_bulk", "ess_tail", "divergences", "converged"]
    assert list(table.index) == [0, 1, 2, 3]
    assert table.converged.all(), table
    assert (table.rhat < 1.01).all()
    assert (table.ess_bulk > 400).all()
    assert (table.divergences == 0).all()


SUMMARY = [
    "w1",
    "ref_sd",
    "w1_relative",
    "coverage_50",
    "coverage_90",
    "khat",
    "psis_ess",
    "rhat",
    "ess_bulk",
    "ess_tail",
    "divergences",
    "reference_converged",
    "trusted",
    "why",
]


def check(guide: Any, params: dict, x: np.ndarray, reference: DataTree, **kwargs: Any) -> EtaCheck:
    """check_eta against the module's NUTS run (no second reference)."""
    return check_eta(
        pc.model,
        guide,
        params,
        x,
        parameters=pc.PARAMETERS,
        guide_samples=1000,
        reference=reference,
        seed=0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def exact(x: np.ndarray, reference: DataTree) -> EtaCheck:
    loss = np.array([3.0, 2.0, 1.5])
    return check(pc.make_guide(), {}, x, reference, sbc_simulations=200, loss=loss)


@pytest.fixture(scope="module")
def over_confident(x: np.ndarray, reference: DataTree) -> EtaCheck:
    return check(pc.make_guide(10.0), {}, x, reference, sbc_simulations=200)


# ---------------------------------------------------------------- check_eta


def test_check_layout(exact: EtaCheck, x: np.ndarray) -> None:
    assert list(exact.summary.columns) == SUMMARY
    assert list(exact.summary.index) == [(n, "rotation") for n in range(4)]
    assert exact.parameters == pc.PARAMETERS
    tree = exact.tree
    for group in (
        "posterior",
        "reference_posterior",
        "reference_sample_stats",
        "observed_data",
        "psis",
        "sbc",
        "fit",
    ):
        assert group in tree.children, group
    assert tree.posterior["eta"].shape == (1, 1000, 4, 1)
    assert tree.reference_posterior["eta"].shape == (NUTS["num_chains"], NUTS["num_samples"], 4, 1)
    assert tree.psis["khat"].dims == ("example",)
    assert tree.sbc["ranks"].shape == (200, 1)
    np.testing.assert_array_equal(tree.fit["loss"].values, [3.0, 2.0, 1.5])
    np.testing.assert_array_equal(tree.observed_data["x"].values, x)


def test_exact_guide_is_trusted(exact: EtaCheck) -> None:
    summary = exact.summary
    assert summary.trusted.sum() >= 3, summary
    assert summary.reference_converged.sum() >= 3
    assert (summary.khat <= 0.5).all()
    assert (summary.w1_relative < 0.2).all()
    np.testing.assert_allclose(summary.coverage_90, 0.9, atol=0.06)
    np.testing.assert_allclose(summary.coverage_50, 0.5, atol=0.08)
    assert exact.sbc is not None
    assert exact.sbc.table.loc["rotation", "p_value"] > 1e-3
    assert exact.sbc.table.loc["rotation", "chi2_p_value"] > 1e-3
    assert exact.sbc.table.loc["rotation", "mean_pit"] == pytest.approx(0.5, abs=0.06)


def test_over_confident_guide_is_not_trusted(over_confident: EtaCheck) -> None:
    summary = over_confident.summary
    assert not summary.trusted.any(), summary
    # the reference is the same as the exact guide's: the guide is to blame
    assert summary.reference_converged.sum() >= 3
    assert (summary.coverage_90 < 0.7).all()
    assert (summary.khat > 0.5).all()
    assert over_confident.sbc is not None
    assert over_confident.sbc.table.loc["rotation", "p_value"] < 1e-6
    assert over_confident.sbc.table.loc["rotation", "chi2_p_value"] < 1e-6
    # truth often outside the guide's draws: a ∪-shaped rank histogram
    counts = over_confident.sbc.histogram("rotation")
    assert counts[0] + counts[-1] > 4 * counts[5:15].mean()
    worst = over_confident.worst(2)
    assert len(worst) == 2
    assert worst.w1_relative.iloc[0] == summary.w1_relative.max()


def test_to_dict_is_json(exact: EtaCheck, over_confident: EtaCheck) -> None:
    for result in (exact, over_confident):
        digest = result.to_dict()
        text = json.dumps(digest, allow_nan=False)  # no NaN nor ±inf anywhere
        back = json.loads(text)
        assert back["parameters"] == ["rotation"]
        assert back["examples"] == 4
        assert len(back["summary"]) == 4
        assert back["sbc"]["simulations"] == 200
        assert back["sbc"]["guide_samples"] == 99
        assert back["sbc"]["tests"][0]["parameter"] == "rotation"
    exact_digest = exact.to_dict()
    # k̂ = −∞ for the exact guide becomes null
    assert all(row["khat"] is None for row in exact_digest["summary"])
    assert exact_digest["unreliable_psis_examples"] == []
    untrusted = over_confident.to_dict()["untrusted_examples"]
    assert untrusted == [0, 1, 2, 3]


def test_why_says_which_test_an_untrusted_example_failed(
    exact: EtaCheck, over_confident: EtaCheck
) -> None:
    assert (exact.summary.why[exact.summary.trusted] == "").all()
    summary = over_confident.summary
    for (_, _), row in summary.iterrows():
        assert (f"90% coverage {row.coverage_90:.2f} < 0.8" in row.why) == (row.coverage_90 < 0.8)
        assert (f"PSIS k-hat {row.khat:.2f} > 0.7" in row.why) == (row.khat > 0.7)
        assert ("reference not converged" in row.why) == (not row.reference_converged)
    why = over_confident.to_dict()["untrusted_why"]
    assert sorted(why) == ["0", "1", "2", "3"]
    assert all("rotation: 90% coverage" in reason for reason in why.values())


def test_progress_shows_a_bar_over_the_stages(
    x: np.ndarray, reference: DataTree, capsys: pytest.CaptureFixture[str]
) -> None:
    check(pc.make_guide(), {}, x, reference, progress=True, sbc_simulations=None)
    err = capsys.readouterr().err
    assert "check_eta" in err
    assert "4/4" in err  # guide draws, NUTS reference (given here), comparison, PSIS k-hat
    for stage in ("guide draws", "comparison", "PSIS k-hat"):
        assert stage in err, stage
    assert "SBC" not in err
    check(pc.make_guide(), {}, x, reference, sbc_simulations=None)
    assert "check_eta" not in capsys.readouterr().err


def test_eta_summary_is_circular_where_a_plain_mean_is_not(exact: EtaCheck) -> None:
    table = exact.eta_summary()
    assert table.circular.all()
    eta = exact.tree.posterior["eta"]
    for example in range(4):
        draws = np.asarray(eta.sel(example=example, parameter="rotation")).ravel()
        resultant = np.mean(np.exp(1j * draws))  # the oracle: the mean direction
        row = table.loc[(example, "rotation")]
        assert row["mean"] == pytest.approx(np.angle(resultant), abs=1e-5)
        # float32 draws: rel 1e-6 failed by 1.06e-6 under XLA -O0
        assert row["sd"] == pytest.approx(np.sqrt(-2 * np.log(np.abs(resultant))), rel=1e-5)
        assert row["q5%"] < row["mean"] < row["q95%"]
    shifted = exact.tree.copy()
    centre = np.angle(np.mean(np.exp(1j * eta.values[..., 0, 0])))
    turned = np.angle(np.exp(1j * (eta.values - centre + np.pi)))  # example 0 now straddles ±π
    shifted["posterior"] = exact.tree.posterior.to_dataset().assign(eta=(eta.dims, turned))
    table = EtaCheck(shifted, exact.summary, None, exact.parameters).eta_summary()
    row = table.loc[(0, "rotation")]
    draws = turned[..., 0, 0].ravel()
    assert abs(abs(row["mean"]) - np.pi) < 1e-4  # at ±π, where the draws are
    assert abs(np.mean(draws)) < 1.5  # the line's mean: towards the other side


# ---------------------------------------------------------------- a guide fitted by SVI

# natural parameters (a, b) = SCALE · W (A, B) + c; the optimum is W = I / (σ² SCALE),
# c = κ0 (cos μ0, sin μ0). SCALE keeps W of order one for Adam's step sizes.
SCALE = 10.0


def amortised_guide(x: jax.Array) -> None:
    w = numpyro.param("W", 0.3 * jnp.eye(2))
    c = numpyro.param("c", jnp.zeros(2))
    natural = SCALE * jnp.stack(pc.features(x), axis=-1) @ w.T + c
    loc = jnp.arctan2(natural[:, 1], natural[:, 0])
    concentration = jnp.hypot(natural[:, 0], natural[:, 1])
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("eta", dist.VonMises(loc[:, None], concentration[:, None]).to_event(1))


@pytest.fixture(scope="module")
def fitted() -> tuple[dict[str, jax.Array], np.ndarray]:
    """SVI on 512 simulated clouds; NumPyro's von Mises sampler is not reparameterised,
    so TraceGraph_ELBO's score-function gradient (per example, through the plate)."""
    data, _ = pc.sample_data(512, seed=7)
    steps = 200
    svi = SVI(
        pc.model,
        amortised_guide,
        optax.adam(optax.cosine_decay_schedule(0.05, steps)),
        TraceGraph_ELBO(),
    )
    result = svi.run(jax.random.PRNGKey(0), steps, jnp.asarray(data), progress_bar=False)
    return result.params, np.asarray(result.losses)


def test_svi_finds_the_exact_guide(fitted: tuple[dict[str, jax.Array], np.ndarray]) -> None:
    params, losses = fitted
    assert losses[-50:].mean() < losses[:10].mean() - 100
    np.testing.assert_allclose(params["W"], np.eye(2) / (pc.SIGMA**2 * SCALE), atol=0.1)
    expected_c = pc.KAPPA0 * np.array([math.cos(pc.MU0), math.sin(pc.MU0)])
    np.testing.assert_allclose(params["c"], expected_c, atol=0.25)


def test_fitted_guide_is_trusted(
    fitted: tuple[dict[str, jax.Array], np.ndarray], x: np.ndarray, reference: DataTree
) -> None:
    params, losses = fitted
    result = check(amortised_guide, params, x, reference, sbc_simulations=None, loss=losses)
    assert result.sbc is None
    assert "sbc" not in result.tree.children
    assert result.summary.trusted.sum() >= 3, result.summary
    assert (result.summary.khat < 0.7).all()
    np.testing.assert_allclose(result.tree.fit["loss"].values, losses)
    # the guide's draws against the closed-form posterior
    m, kappa = pc.posterior(x)
    eta = result.tree.posterior["eta"].values[0, :, :, 0]
    for n in range(4):
        w1 = wasserstein_to_law(eta[:, n], pc.posterior_cdf(m[n], kappa[n]), period=2 * math.pi)
        assert w1 < 0.08, (n, w1)
    assert "sbc" not in result.to_dict()


def test_a_given_reference_must_match(x: np.ndarray, reference: DataTree) -> None:
    with pytest.raises(ValueError, match=r"reference holds examples \[0, 1, 2, 3\], the check"):
        check(pc.make_guide(), {}, x[:2], reference, sbc_simulations=None)
    with pytest.raises(ValueError, match="reference holds examples"):
        check(pc.make_guide(), {}, x, reference, examples=[5, 6, 7, 8], sbc_simulations=None)


def test_the_check_hands_its_reference_on(exact: EtaCheck, reference: DataTree) -> None:
    handed = exact.reference
    np.testing.assert_array_equal(handed.posterior["eta"].values, reference.posterior["eta"].values)
    np.testing.assert_array_equal(
        handed.sample_stats["diverging"].values, reference.sample_stats["diverging"].values
    )
