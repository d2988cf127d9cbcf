"""PSIS k̂ per example and the importance log-weights, against closed forms and NumPyro."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from numpyro.infer import psis_diagnostic
from numpyro.infer.importance import _psis_khat

import invppl.diagnostics.psis
from invppl.diagnostics import KHAT_UNRELIABLE, log_weights, pareto_khat
from tests.diagnostics import pointcloud as pc

NUM_SAMPLES = 6000
# one guide per block of rows, all in one call: exact, under-confident (0.8 K), shifted by
# 0.1 rad, and over-confident (10 K) twice over
BLOCKS = {"exact": (1.0, 0.0), "wider": (0.8, 0.0), "shifted": (1.0, 0.1), "narrow": (10.0, 0.0)}
ROWS = {"exact": 1, "wider": 1, "shifted": 1, "narrow": 2}


@pytest.fixture(scope="module")
def rows(x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The examples repeated once per block row, and each row's block name."""
    names = [name for name, count in ROWS.items() for _ in range(count * x.shape[0])]
    repeats = sum(ROWS.values())
    return np.tile(x, (repeats, 1, 1)), names


@pytest.fixture(scope="module")
def mixed_guide(rows: tuple[np.ndarray, list[str]]) -> Callable[[jax.Array], None]:
    _, names = rows
    factor = jnp.array([BLOCKS[n][0] for n in names])
    offset = jnp.array([BLOCKS[n][1] for n in names])
    return pc.make_guide(factor, offset)


@pytest.fixture(scope="module")
def computed(
    rows: tuple[np.ndarray, list[str]], mixed_guide: Callable[[jax.Array], None]
) -> tuple[pd.DataFrame, np.ndarray]:
    """k̂ per row, and the log-weights it was computed from (caught on the way)."""
    data, names = rows
    caught: list[np.ndarray] = []

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        caught.append(log_weights(*args, **kwargs))
        return caught[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(invppl.diagnostics.psis, "log_weights", spy)
        table = pareto_khat(
            pc.model,
            mixed_guide,
            {},
            data,
            num_samples=NUM_SAMPLES,
            seed=0,
            examples=range(len(names)),
        )
    table["block"] = names
    assert len(caught) == 1
    return table, caught[0]


@pytest.fixture(scope="module")
def khat(computed: tuple[pd.DataFrame, np.ndarray]) -> pd.DataFrame:
    return computed[0]


@pytest.fixture(scope="module")
def weights(computed: tuple[pd.DataFrame, np.ndarray]) -> np.ndarray:
    return computed[1]


def test_khat_table_layout(khat: pd.DataFrame) -> None:
    assert khat.index.name == "example"
    assert list(khat.index) == list(range(len(khat)))
    assert list(khat.columns[:3]) == ["khat", "ess", "reliable"]
    assert ((khat.ess > 0) & (khat.ess <= NUM_SAMPLES * (1 + 1e-9))).all()
    np.testing.assert_array_equal(khat.reliable, khat.khat <= KHAT_UNRELIABLE)


def test_exact_guide_has_constant_weights(khat: pd.DataFrame) -> None:
    exact = khat[khat.block == "exact"]
    # the weights are all p(x): no tail to fit (k̂ = −∞ up to float error), every draw counts
    assert (exact.khat <= 0.5).all()
    np.testing.assert_allclose(exact.ess, NUM_SAMPLES, rtol=1e-3)
    assert exact.reliable.all()


def test_slightly_wrong_guides_are_reliable(khat: pd.DataFrame) -> None:
    for block in ("wider", "shifted"):
        table = khat[khat.block == block]
        assert (table.khat < KHAT_UNRELIABLE).all(), table
        assert table.reliable.all()
    # a wider guide covers the posterior's tails: bounded weights, k̂ well below 0
    assert (khat[khat.block == "wider"].khat < 0).all()


def test_over_confident_guide_is_unreliable(khat: pd.DataFrame) -> None:
    narrow = khat[khat.block == "narrow"]
    assert narrow.khat.median() > KHAT_UNRELIABLE, narrow
    assert (narrow.khat > KHAT_UNRELIABLE).mean() >= 0.5
    assert (narrow.khat > 0.5).all()
    assert (narrow.ess < 0.2 * NUM_SAMPLES).all()
    assert narrow.khat.min() > khat[khat.block != "narrow"].khat.max()


def test_khat_agrees_with_numpyro_on_the_same_weights(
    rows: tuple[np.ndarray, list[str]], weights: np.ndarray, khat: pd.DataFrame
) -> None:
    # NumPyro's k̂ fit is an independent implementation of Vehtari et al.'s PSIS
    # (Zhang–Stephens fit with the weak prior); the two differ in details by ~0.01
    _, names = rows
    assert weights.shape == (len(names), NUM_SAMPLES)
    for row, name in enumerate(names):
        if name != "exact":
            assert khat.khat[row] == pytest.approx(_psis_khat(weights[row]), abs=0.02), row


@pytest.mark.slow
def test_khat_of_one_example_agrees_with_psis_diagnostic(
    x: np.ndarray, rows: tuple[np.ndarray, list[str]], khat: pd.DataFrame
) -> None:
    # NumPyro's public diagnostic draws its own weights: k̂ agrees up to Monte Carlo noise
    _, names = rows
    one = jnp.asarray(x[1:2])
    ours = khat.khat[names.index("narrow") + 1]  # example 1 under the 10 K guide
    theirs = psis_diagnostic(
        jax.random.PRNGKey(1), {}, pc.model, pc.make_guide(10.0), one, num_particles=3000
    )
    assert ours > 0.5
    assert theirs > 0.5
    assert ours == pytest.approx(theirs, abs=0.3)


# ---------------------------------------------------------------- log-weights by hand


def test_exact_guide_weights_are_the_evidence(
    x: np.ndarray, rows: tuple[np.ndarray, list[str]], weights: np.ndarray
) -> None:
    # with q = p(η | x): log p(x, η) − log q(η | x) = log p(x) for every draw
    _, names = rows
    exact = weights[[i for i, name in enumerate(names) if name == "exact"]]
    expected = np.broadcast_to(pc.log_evidence(x)[:, None], exact.shape)
    np.testing.assert_allclose(exact, expected, atol=2e-3)


class AngleSet(dist.Distribution):
    """η_n ∈ {angles[n, 0..J−1]} with probabilities ``probs``; log_prob is the log-mass."""

    support = dist.constraints.circular

    def __init__(self, angles: jax.Array, probs: jax.Array) -> None:
        self.angles, self.probs = angles, probs
        super().__init__(batch_shape=angles.shape[:1], event_shape=(1,))

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        shape = sample_shape + self.batch_shape
        index = jax.random.categorical(key, jnp.log(self.probs), shape=shape)
        return jnp.take_along_axis(
            jnp.broadcast_to(self.angles, (*shape[:-1], *self.angles.shape)), index[..., None], -1
        )

    def log_prob(self, value: jax.Array) -> jax.Array:
        index = jnp.argmin(jnp.abs(value - self.angles), axis=-1)
        return jnp.log(self.probs)[index]


ANGLES = np.array([[-3.0, 0.4, 2.0], [-1.0, -0.5, 0.3], [1.5, 2.2, 3.1], [-2.0, 0.0, 2.5]])
PROBS = np.array([0.2, 0.3, 0.5])


def test_log_weights_match_the_closed_form_densities(x: np.ndarray) -> None:
    def guide(x: jax.Array) -> None:
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("eta", AngleSet(jnp.asarray(ANGLES, x.dtype), jnp.asarray(PROBS)))

    # 50 draws in chunks of 7: the last chunk is partial
    weights = log_weights(pc.model, guide, {}, x, num_samples=50, seed=0, chunk_size=7)
    assert weights.shape == (4, 50)
    for n in range(4):
        # the only possible weights: log p(x_n, a_j) − log P(a_j), by SciPy
        possible = pc.log_joint(x[n], ANGLES[n]) - np.log(PROBS)
        assert np.min(np.abs(possible[:, None] - possible[None, :]) + np.eye(3) * 1e9) > 0.1
        gap = np.abs(weights[n][:, None] - possible[None, :])
        assert np.all(gap.min(axis=1) < 2e-3), (n, weights[n], possible)
        assert set(gap.argmin(axis=1)) == {0, 1, 2}  # every angle was drawn


def test_khat_refuses_non_finite_weights() -> None:
    def model(x: jax.Array) -> None:
        with numpyro.plate("data", x.shape[0]):
            eta = numpyro.sample("eta", dist.Uniform(0.0, 1.0).expand([1]).to_event(1))
            numpyro.sample("x", dist.Normal(eta, 1.0).to_event(1), obs=x)

    def guide(x: jax.Array) -> None:
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([1]).to_event(1))

    with pytest.raises(
        ValueError, match=r"non-finite importance log-weights for examples \[0, 1\]"
    ):
        pareto_khat(model, guide, {}, jnp.zeros((2, 1)), num_samples=50)
