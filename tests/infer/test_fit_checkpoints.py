"""fit()'s run checkpoints: the stored format, rotation, finding and restoring a run.

The format is pinned here (tree keys, metadata keys in order, the data's SHA-256
spelled out with hashlib): a checkpoint written by an earlier version must still
resume, and a resumed run refuses data whose fingerprint differs.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.infer.svi import SVIState

import invppl
from invppl.infer import checkpoint_path, list_checkpoints, load_checkpoint
from invppl.infer._fit_checkpoints import (
    ResumePoint,
    check_resumable,
    find_resume_point,
    fingerprint,
    restore,
    run_metadata,
    save_run,
)

ARRAYS = {"x": np.arange(12, dtype=np.float32).reshape(6, 2), "y": np.arange(6)}


def _state(value: float = 0.5) -> SVIState:
    params = {"loc": jnp.full(2, value), "net": {"w": jnp.eye(2)}}
    return SVIState(optax.adam(1e-3).init(params), {"calls": jnp.int32(4)}, jax.random.PRNGKey(1))


def _model(x: jax.Array) -> None:
    pass


def _guide(x: jax.Array) -> None:
    pass


def _metadata(state: SVIState) -> dict[str, object]:
    return run_metadata(_model, _guide, ARRAYS, state, 3, 4, None, None)


def _leaves(tree: object) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def test_the_fingerprint_is_sha256_of_names_shapes_dtypes_and_bytes() -> None:
    digest = hashlib.sha256()
    for name, array in ARRAYS.items():
        digest.update(f"{name}:{array.shape}:{array.dtype};".encode())
        digest.update(array.tobytes())
    assert fingerprint(ARRAYS) == digest.hexdigest()
    transposed = {"x": np.asfortranarray(ARRAYS["x"]), "y": ARRAYS["y"]}
    assert fingerprint(transposed) == fingerprint(ARRAYS)  # memory layout does not count
    assert fingerprint({**ARRAYS, "y": ARRAYS["y"] + 1}) != fingerprint(ARRAYS)


def test_the_metadata_names_the_settings_a_resumed_run_must_share() -> None:
    state = _state()
    assert _metadata(state) == {
        "augment": None,
        "extend_batch": None,
        "seed": 3,
        "batch_size": 4,
        "model": "_model",
        "guide": "_guide",
        "num_examples": 6,
        "data": {"x": [[2], "float32"], "y": [[], str(ARRAYS["y"].dtype)]},
        "data_sha256": fingerprint(ARRAYS),
        "state_structure": str(jax.tree.structure(state)),
    }
    assert list(_metadata(state))[:2] == ["augment", "extend_batch"]


def test_a_saved_run_has_the_documented_layout(tmp_path: Path) -> None:
    state, losses = _state(), np.array([3.0, 2.0, 1.5], np.float32)
    evaluations = [{"step": 2, "loss": 2.5}]
    save_run(str(tmp_path), 3, state, losses, evaluations, _metadata(state), keep=3)
    tree, metadata = load_checkpoint(checkpoint_path(tmp_path, 3))  # no target: plain containers
    assert set(tree) == {"svi_state", "losses", "step"}
    np.testing.assert_array_equal(tree["losses"], losses)
    assert int(tree["step"]) == 3
    assert np.asarray(tree["step"]).dtype == np.int64
    assert list(metadata) == [*_metadata(state), "step", "loss_dtype", "eval", "invppl_version"]
    assert metadata["step"] == 3
    assert metadata["loss_dtype"] == "float32"
    assert metadata["eval"] == evaluations
    assert metadata["invppl_version"] == invppl.__version__


def test_saving_keeps_the_latest_checkpoints_and_replaces_a_stale_directory(
    tmp_path: Path,
) -> None:
    state = _state()
    stale = checkpoint_path(tmp_path, 4)
    stale.mkdir(parents=True)  # an interrupted write of step 4, without orbax's marker
    (stale / "junk").write_bytes(b"")
    for step in range(1, 6):
        losses = np.arange(step, dtype=np.float32)
        save_run(str(tmp_path), step, state, losses, [], _metadata(state), keep=3)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4, 5]
    assert not (stale / "junk").exists()


def test_a_run_is_restored_bit_for_bit_into_the_state_structure(tmp_path: Path) -> None:
    saved, losses = _state(0.25), np.array([1.0, np.float32(1 / 3)], np.float32)
    evaluations = [{"step": 1, "loss": 1.0, "elbo": -2.0, "iwae": -1.9}]
    save_run(str(tmp_path), 2, saved, losses, evaluations, _metadata(saved), keep=3)
    point, notes = find_resume_point(str(tmp_path), True, 10)
    assert point is not None
    assert notes == []
    assert point.step == 2
    assert point.path == checkpoint_path(tmp_path, 2)
    state, restored_losses, restored_evaluations = restore(point, _state(9.0))
    assert isinstance(state, SVIState)
    for got, want in zip(_leaves(state), _leaves(saved), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(restored_losses, losses)
    assert restored_losses.dtype == np.float32
    assert restored_evaluations == evaluations
    check_resumable(point, _metadata(state))  # the same settings: no error


def test_finding_the_checkpoint_to_resume(tmp_path: Path) -> None:
    assert find_resume_point(None, True, 10) == (None, [])
    assert find_resume_point(str(tmp_path / "missing"), False, 10) == (None, [])
    state = _state()
    for step in (2, 7):
        save_run(str(tmp_path), step, state, np.zeros(step, np.float32), [], {}, keep=3)
    point, _ = find_resume_point(str(tmp_path), True, 7)
    assert point is not None
    assert point.step == 7  # the latest
    with pytest.raises(ValueError, match=r"already holds checkpoints \(latest step 7\)"):
        find_resume_point(str(tmp_path), False, 10)
    with pytest.raises(ValueError, match="is at step 7, past num_steps=6"):
        find_resume_point(str(tmp_path), True, 6)
    shutil.rmtree(checkpoint_path(tmp_path, 7) / "state")  # incomplete: set aside
    point, notes = find_resume_point(str(tmp_path), True, 6)
    assert point is not None
    assert point.step == 2
    assert len(notes) == 1
    assert "step_000000007 is not a complete checkpoint" in notes[0]
    assert "moved it aside to step_000000007.damaged" in notes[0]
    assert (tmp_path / "step_000000007.damaged").is_dir()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda c: _truncate(c / "state" / "manifest.ocdbt"), "state/manifest.ocdbt has"),
        (lambda c: (c / "metadata" / "metadata").unlink(), "metadata/metadata is missing"),
        (lambda c: _truncate(c / "state" / "_METADATA"), "state/_METADATA has"),
    ],
)
def test_a_damaged_checkpoint_is_named_set_aside_and_the_last_good_one_found(
    tmp_path: Path, damage: object, said: str
) -> None:
    state = _state()
    for step in (2, 4, 6):
        save_run(str(tmp_path), step, state, np.zeros(step, np.float32), [], {}, keep=3)
    damage(checkpoint_path(tmp_path, 6))  # type: ignore[operator]
    _truncate(next((checkpoint_path(tmp_path, 4) / "state").glob("ocdbt.process_0/d/*")))
    point, notes = find_resume_point(str(tmp_path), True, 10)
    assert point is not None
    assert point.step == 2
    assert said in notes[0]
    assert "differs from what was written" in notes[1] or " bytes, " in notes[1]
    assert "step_000000004" in notes[1]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2]
    state_back, _, _ = restore(point, _state(9.0))
    for got, want in zip(_leaves(state_back), _leaves(state), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_checkpoint_with_other_settings_is_refused_with_every_difference() -> None:
    point = ResumePoint(Path("run/step_000000005"), {"seed": 0, "batch_size": 8, "step": 5})
    with pytest.raises(ValueError, match="written by a different run") as error:
        check_resumable(point, {"seed": 1, "batch_size": 8, "model": "m"})
    assert "seed: 0 in the checkpoint, 1 now; model: None in the checkpoint, 'm' now" in str(
        error.value
    )
