"""fit(..., augment=...): the documented key per step, reproducible and resumable runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from jax import Array
from scipy import stats

from invppl.infer import FitResult, fit, minibatch_indices

N, DIM, BATCH = 40, 2, 8
DATA = np.arange(N * DIM, dtype=np.float32).reshape(N, DIM) / N  # every row different


def model(x: Array) -> None:
    """x_i ~ N(loc, 1) with a learnable loc; no latent variables."""
    loc = numpyro.param("loc", jnp.zeros(DIM))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


def guide(x: Array) -> None:
    pass


def add_noise(key: Array, batch: dict[str, Array]) -> dict[str, Array]:
    return {**batch, "x": batch["x"] + jax.random.normal(key, batch["x"].shape)}


def add_other_noise(key: Array, batch: dict[str, Array]) -> dict[str, Array]:
    return {**batch, "x": batch["x"] - jax.random.normal(key, batch["x"].shape)}


def _fit(**kwargs: Any) -> FitResult:
    options: dict[str, Any] = {
        "seed": 0,
        "num_steps": 30,
        "batch_size": BATCH,
        "optimizer": optax.adam(0.05),
        "augment": add_noise,
        "progress": False,
        **kwargs,
    }
    return fit(model, guide, {"x": DATA}, **options)


def _assert_trees_equal(left: Any, right: Any) -> None:
    assert str(jax.tree.structure(left)) == str(jax.tree.structure(right))
    for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_each_step_augments_its_minibatch_with_the_documented_key() -> None:
    # loc stays 0 (learning rate 0), so step s's loss is the mean over its minibatch of
    # −log N(x_i + ε_i; 0, 1), ε = normal(fold_in(fold_in(PRNGKey(seed), 1), s)).
    seed, steps = 7, 12
    evaluation = np.linspace(-1.0, 1.0, 2 * DIM, dtype=np.float32).reshape(2, DIM)
    result = _fit(
        seed=seed,
        num_steps=steps,
        optimizer=optax.sgd(0.0),
        eval_data={"x": evaluation},
        iwae_samples=2,
    )
    base = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    expected = []
    for step in range(steps):
        rows = minibatch_indices(seed, N, BATCH, step)
        noise = np.asarray(jax.random.normal(jax.random.fold_in(base, step), (BATCH, DIM)))
        augmented = DATA[rows].astype(np.float64) + noise
        expected.append(-stats.norm.logpdf(augmented).sum(-1).mean())
    np.testing.assert_allclose(result.losses, expected, rtol=1e-5)
    assert len(set(result.losses.tolist())) == steps  # a fresh draw every step
    # evaluations use eval_data as given, unaugmented
    exact = stats.norm.logpdf(evaluation.astype(np.float64)).sum(-1).mean()
    assert result.eval[-1]["elbo"] == pytest.approx(exact, rel=1e-5)


def test_noise_added_every_step_is_seen_by_the_fit() -> None:
    # A learnable scale: the data's spread is 0.5; with N(0, 1) noise drawn afresh each
    # step the fitted scale is near sqrt(0.5² + 1) instead.
    def scale_model(x: Array) -> None:
        loc = numpyro.param("loc", jnp.zeros(DIM))
        scale = numpyro.param("scale", jnp.ones(DIM), constraint=dist.constraints.positive)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)

    zeros_and_ones = np.tile(np.array([[0.0], [1.0]], np.float32), (N // 2, DIM))
    options: dict[str, Any] = {
        "seed": 0,
        "num_steps": 300,
        "batch_size": N,
        "optimizer": optax.adam(0.05),
        "progress": False,
    }
    plain = fit(scale_model, guide, {"x": zeros_and_ones}, **options)
    noisy = fit(scale_model, guide, {"x": zeros_and_ones}, augment=add_noise, **options)
    np.testing.assert_allclose(np.asarray(plain.params["scale"]), 0.5, atol=0.02)
    np.testing.assert_allclose(np.asarray(noisy.params["scale"]), np.sqrt(1.25), atol=0.2)
    np.testing.assert_allclose(np.asarray(noisy.params["loc"]), 0.5, atol=0.4)


def test_augmented_fit_is_bit_reproducible() -> None:
    first, again, other = _fit(), _fit(), _fit(seed=1)
    np.testing.assert_array_equal(first.losses, again.losses)
    _assert_trees_equal(first.state, again.state)
    assert not np.array_equal(first.losses, other.losses)


def test_resumed_augmented_fit_equals_uninterrupted_fit(tmp_path: Path) -> None:
    whole = _fit(num_steps=30, checkpoint_dir=tmp_path / "whole", checkpoint_every=10)
    parts = tmp_path / "parts"
    _fit(num_steps=15, checkpoint_dir=parts, checkpoint_every=10)  # checkpoints at 10, 15
    resumed = _fit(num_steps=30, checkpoint_dir=parts, checkpoint_every=10)
    assert "resumed from" in resumed.message
    assert resumed.steps_done == 30
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    _assert_trees_equal(resumed.state, whole.state)
    _assert_trees_equal(resumed.params, whole.params)


@pytest.mark.parametrize(
    ("augment", "match"),
    [
        (add_other_noise, "augment: 'add_noise' in the checkpoint, 'add_other_noise' now"),
        (None, "augment: 'add_noise' in the checkpoint, None now"),
    ],
    ids=["another-augment", "no-augment"],
)
def test_a_run_with_another_augment_cannot_resume(tmp_path: Path, augment: Any, match: str) -> None:
    _fit(num_steps=5, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=match):
        _fit(num_steps=10, checkpoint_dir=tmp_path, augment=augment)


def _must_not_run(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the model ran before the arguments were checked")


@pytest.mark.parametrize("augment", [3, "noise", {"x": 1.0}])
def test_non_callable_augment_raises_before_any_work(tmp_path: Path, augment: Any) -> None:
    with pytest.raises(TypeError, match=r"augment must be a function \(key, batch\) -> batch"):
        fit(
            _must_not_run,
            _must_not_run,
            {"x": DATA},
            seed=0,
            num_steps=5,
            batch_size=BATCH,
            augment=augment,
            checkpoint_dir=tmp_path / "run",
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_augment_that_drops_a_key_is_refused_before_fitting() -> None:
    with pytest.raises(ValueError, match="augment must keep the minibatch's keys"):
        _fit(num_steps=2, augment=lambda key, batch: {})


@pytest.mark.parametrize(
    "augment",
    [
        lambda key, batch: {"x": batch["x"][:2]},
        lambda key, batch: {"x": batch["x"][:, :1]},
    ],
    ids=["fewer-rows", "other-trailing-shape"],
)
def test_augment_that_changes_shapes_is_refused(augment: Any) -> None:
    with pytest.raises(ValueError, match="augment must keep the minibatch's keys, shapes"):
        _fit(num_steps=2, augment=augment)
