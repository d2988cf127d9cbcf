"""Orbax checkpoints: round trips, atomicity, and resumed fits equal to uninterrupted ones."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.infer.svi import SVIState

from invppl.infer import (
    FitResult,
    checkpoint_path,
    fit,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_metadata,
    save_checkpoint,
)
from invppl.infer.checkpoint import MANIFEST
from tests.infer import linear_gaussian as lg

TRAIN = lg.sample_data(200, seed=0)
TEST = lg.sample_data(64, seed=1)


def _state() -> SVIState:
    params = {"a": jnp.arange(3.0), "b": {"c": jnp.full((2, 2), 0.25)}}
    optimiser = optax.adam(1e-3)
    return SVIState(optimiser.init(params), {"m": jnp.int32(7)}, jax.random.PRNGKey(3))


def _assert_trees_equal(left: Any, right: Any) -> None:
    assert str(jax.tree.structure(left)) == str(jax.tree.structure(right))
    for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    state = {"svi_state": _state(), "losses": np.array([1.5, 2.5], np.float32), "step": 2}
    path = save_checkpoint(checkpoint_path(tmp_path, 2), state, {"seed": 0, "note": "x"})
    assert path.name == "step_000000002"
    restored, metadata = load_checkpoint(path, target=state)
    _assert_trees_equal(restored, {**state, "step": np.asarray(2)})
    assert isinstance(restored["svi_state"], SVIState)
    assert metadata == {"seed": 0, "note": "x"}
    assert load_metadata(path) == metadata
    untyped, _ = load_checkpoint(path)  # without a target: plain containers
    assert isinstance(untyped["svi_state"], dict | list)
    assert latest_checkpoint(tmp_path) == path


def test_save_refuses_existing_paths_and_bad_metadata(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "step_000000001", {"a": np.zeros(2)}, {})
    with pytest.raises(FileExistsError, match="already exists"):
        save_checkpoint(path, {"a": np.zeros(2)}, {})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "step_000000002", {"a": np.zeros(2)}, {"f": object()})
    assert not (tmp_path / "step_000000002").exists()


def test_incomplete_checkpoints_are_not_picked_up(tmp_path: Path) -> None:
    good = save_checkpoint(checkpoint_path(tmp_path, 10), {"a": np.ones(3)}, {"step": 10})
    # An interrupted orbax write: the temporary directory, never renamed.
    shutil.copytree(good, tmp_path / "step_000000030.orbax-checkpoint-tmp-1700000000")
    # A directory with a checkpoint's name but without orbax's final marker.
    unfinished = tmp_path / "step_000000020"
    shutil.copytree(good, unfinished)
    (unfinished / "_CHECKPOINT_METADATA").unlink()
    # Garbage under a checkpoint's name.
    (tmp_path / "step_000000040").mkdir()
    (tmp_path / "step_000000040" / "junk.bin").write_bytes(b"\x00\x01")
    assert latest_checkpoint(tmp_path) == good
    assert [step for step, _ in list_checkpoints(tmp_path)] == [10]
    for path in (unfinished, tmp_path / "step_000000040"):
        with pytest.raises(ValueError, match="is not a complete checkpoint"):
            load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "step_000000050")
    assert latest_checkpoint(tmp_path / "missing") is None


def test_corrupted_arrays_give_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"a": np.ones(3)}, {})
    for entry in (path / "state").iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    with pytest.raises(ValueError, match=r"is damaged: state/_METADATA is missing; .*and \d+ more"):
        load_checkpoint(path, target={"a": np.ones(3)})
    (path / MANIFEST).unlink()  # as a checkpoint written before the manifest: orbax finds it
    with pytest.raises(ValueError, match="could not restore the arrays of checkpoint"):
        load_checkpoint(path, target={"a": np.ones(3)})


def _fit(directory: Path, num_steps: int, **kwargs: Any) -> FitResult:
    options: dict[str, Any] = {
        "seed": 0,
        "num_steps": num_steps,
        "batch_size": 32,
        "optimizer": optax.adam(0.02),
        "checkpoint_dir": directory,
        "checkpoint_every": 20,
        "eval_data": {"x": TEST},
        "eval_every": 30,
        "iwae_samples": 8,
        "progress": False,
        **kwargs,
    }
    model = options.pop("model", lg.model)
    data = options.pop("data", TRAIN)
    # A fresh NNX guide each time, as a new process would build it; its call counter is
    # mutable state that must survive the checkpoint.
    return fit(model, lg.make_nnx_guide(), {"x": data}, **options)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    whole = tmp_path_factory.mktemp("whole")
    parts = tmp_path_factory.mktemp("parts")
    uninterrupted = _fit(whole, 70)
    first = _fit(parts, 45)  # checkpoints at 20, 40 and 45 (the end)
    crashed = tmp_path_factory.mktemp("crashed")
    shutil.copytree(parts, crashed, dirs_exist_ok=True)
    extended = _fit(parts, 70)  # resumes from 45
    for step, path in list_checkpoints(crashed):
        if step != 40:
            shutil.rmtree(path)
    # A crash while writing step 60 leaves orbax's temporary directory behind.
    (crashed / "step_000000060.orbax-checkpoint-tmp-1700000000").mkdir()
    (crashed / "step_000000060.orbax-checkpoint-tmp-1700000000" / "partial").write_bytes(b"")
    after_crash = _fit(crashed, 70)  # resumes from 40
    return {
        "whole": whole,
        "uninterrupted": uninterrupted,
        "first": first,
        "extended": extended,
        "after_crash": after_crash,
        "crashed": crashed,
    }


@pytest.mark.parametrize("resumed", ["extended", "after_crash"])
def test_resumed_fit_equals_uninterrupted_fit_bitwise(runs: dict[str, Any], resumed: str) -> None:
    expected, result = runs["uninterrupted"], runs[resumed]
    assert "resumed from" in result.message
    assert result.steps_done == expected.steps_done == 70
    np.testing.assert_array_equal(result.losses, expected.losses)
    _assert_trees_equal(result.state, expected.state)  # params, Adam moments, counter, key
    _assert_trees_equal(result.params, expected.params)
    assert lg.calls(result.state) == 71
    by_step = {record["step"]: record for record in result.eval}
    for record in expected.eval:  # the same evaluations at 30, 60 and 70, bit for bit
        assert by_step[record["step"]] == record


def test_checkpoints_hold_the_run_and_its_settings(runs: dict[str, Any]) -> None:
    steps = [step for step, _ in list_checkpoints(runs["whole"])]
    assert steps == [40, 60, 70]  # every 20 steps and at the end; the latest 3 kept
    metadata = load_metadata(checkpoint_path(runs["whole"], 70))
    assert metadata["seed"] == 0
    assert metadata["batch_size"] == 32
    assert metadata["model"] == "model"
    assert metadata["guide"] == "nnx_guide"
    assert metadata["step"] == 70
    assert metadata["invppl_version"]
    assert [record["step"] for record in metadata["eval"]] == [30, 60, 70]
    # The crash's temporary directory was ignored, not resumed from and not deleted.
    assert (runs["crashed"] / "step_000000060.orbax-checkpoint-tmp-1700000000").is_dir()
    assert [step for step, _ in list_checkpoints(runs["crashed"])] == [40, 60, 70]


def test_resuming_a_finished_run_does_nothing(runs: dict[str, Any]) -> None:
    again = _fit(runs["whole"], 70)
    assert "nothing left to do" in again.message
    np.testing.assert_array_equal(again.losses, runs["uninterrupted"].losses)
    _assert_trees_equal(again.state, runs["uninterrupted"].state)


def _other_model(x: jax.Array) -> None:
    lg.model(x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": 1}, "seed: 0 in the checkpoint, 1 now"),
        ({"batch_size": 16}, "batch_size: 32 in the checkpoint, 16 now"),
        ({"model": _other_model}, "model: 'model' in the checkpoint, '_other_model' now"),
        ({"data": TRAIN + 1.0}, "data_sha256: '[0-9a-f]{64}' in the checkpoint"),
        ({"num_steps": 50}, "is at step 70, past num_steps=50"),
        ({"resume": False}, "already holds checkpoints"),
    ],
)
def test_a_different_run_cannot_resume(
    runs: dict[str, Any], kwargs: dict[str, Any], match: str
) -> None:
    options = {"num_steps": 90, **kwargs}
    with pytest.raises(ValueError, match=match):
        _fit(runs["whole"], **options)
