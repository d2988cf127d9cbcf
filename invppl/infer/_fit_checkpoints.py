"""The checkpoints of a :func:`invppl.infer.fit` run: finding, checking, restoring, saving.

A run's checkpoint after ``step`` steps lies at ``checkpoint_path(directory, step)``
and holds the pytree ``{"svi_state": SVIState, "losses": (step,) array, "step":
int64 scalar}`` and the JSON metadata of :func:`run_metadata` (the settings a
resuming run must share) followed by ``"step"``, ``"loss_dtype"`` (the losses'
dtype name), ``"eval"`` (the evaluations so far) and ``"invppl_version"``.

A damaged checkpoint (a file truncated, altered or deleted; see
:func:`invppl.infer.checkpoint.verify_checkpoint`) is never resumed: it is moved
aside to ``<name>.damaged`` and the run falls back to the latest intact one,
saying so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from numpyro.infer.svi import SVIState

import invppl
from invppl.infer._checks import model_name, num_examples
from invppl.infer.checkpoint import (
    checkpoint_dirs,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_metadata,
    save_checkpoint,
)

__all__ = [
    "ResumePoint",
    "check_resumable",
    "find_resume_point",
    "fingerprint",
    "restore",
    "restore_latest_intact",
    "run_metadata",
    "save_run",
    "set_aside",
]


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """A SHA-256 of the data's keys, shapes, dtypes and bytes (64 hex digits)."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        digest.update(f"{name}:{array.shape}:{array.dtype};".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def run_metadata(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    arrays: Mapping[str, np.ndarray],
    state: SVIState,
    seed: int,
    batch_size: int,
    augment: Callable[..., Any] | None,
    extend_batch: Callable[..., Any] | None,
) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it.

    ``arrays`` ``{name: (n, ...)}`` is the training data; ``state`` gives the SVI
    state's tree structure (its values are not read).
    """
    return {
        "augment": None if augment is None else model_name(augment),
        "extend_batch": None if extend_batch is None else model_name(extend_batch),
        "seed": seed,
        "batch_size": batch_size,
        "model": model_name(model),
        "guide": model_name(guide),
        "num_examples": num_examples(arrays),
        "data": {name: [list(a.shape[1:]), str(a.dtype)] for name, a in arrays.items()},
        "data_sha256": fingerprint(arrays),
        "state_structure": str(jax.tree.structure(state)),
    }


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The latest complete checkpoint of a directory, to resume from.

    Attributes:
        path: the checkpoint directory.
        metadata: its JSON metadata.
    """

    path: Path
    metadata: dict[str, Any]

    @property
    def step(self) -> int:
        """The number of steps done at the checkpoint."""
        return int(self.metadata["step"])


def set_aside(path: Path, problem: str) -> str:
    """Renames the damaged checkpoint ``path`` to ``<name>.damaged``; says so, in words.

    ``problem`` says what is wrong with it; the returned sentence adds where it went.
    """
    target = path.with_name(f"{path.name}.damaged")
    number = 1
    while target.exists():
        target = path.with_name(f"{path.name}.damaged-{number}")
        number += 1
    os.replace(path, target)
    return f"{problem}; moved it aside to {target.name}"


def find_resume_point(
    directory: str | None, resume: bool, num_steps: int
) -> tuple[ResumePoint | None, list[str]]:
    """The checkpoint a fit of ``num_steps`` steps resumes from, or None; and what was set aside.

    The latest intact checkpoint wins; every later one that is damaged or
    incomplete is moved aside (:func:`set_aside`), and the second element lists
    what was wrong with each, in words.

    Raises:
        ValueError: if ``directory`` holds checkpoints and ``resume`` is False, or
            the latest intact one is past ``num_steps``.
    """
    existing = checkpoint_dirs(directory) if directory is not None else []
    if existing and not resume:
        raise ValueError(
            f"checkpoint_dir {directory} already holds checkpoints (latest step "
            f"{existing[-1][0]}); pass resume=True to continue that run or choose an empty "
            "directory"
        )
    notes: list[str] = []
    for _, path in reversed(existing):
        try:
            metadata = load_metadata(path)  # checks the manifest first
        except ValueError as error:
            notes.append(set_aside(path, str(error)))
            continue
        if int(metadata.get("step", -1)) > num_steps:
            raise ValueError(
                f"checkpoint {path} is at step {metadata.get('step')}, past "
                f"num_steps={num_steps}; raise num_steps or use another checkpoint_dir"
            )
        return ResumePoint(path, metadata), notes
    return None, notes


_FUNCTIONS = ("model", "guide", "augment", "extend_batch")
"""The metadata keys that name a function (:func:`model_name`)."""


def check_resumable(point: ResumePoint, now: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` unless the checkpoint's settings equal ``now``'s.

    A function recorded as ``"partial"`` (how checkpoints before invppl named a
    ``functools.partial``) matches any name.
    """
    different = [
        f"{key}: {point.metadata.get(key)!r} in the checkpoint, {value!r} now"
        for key, value in now.items()
        if point.metadata.get(key) != value
        and not (key in _FUNCTIONS and point.metadata.get(key) == "partial")
    ]
    if different:
        raise ValueError(
            f"checkpoint {point.path} was written by a different run and cannot be resumed ("
            + "; ".join(different)
            + "); use another checkpoint_dir"
        )


def restore(
    point: ResumePoint, state: SVIState
) -> tuple[SVIState, np.ndarray, list[dict[str, float]]]:
    """The checkpoint's SVI state (in ``state``'s structure), losses ``(step,)``, evaluations."""
    target = {
        "svi_state": state,
        "losses": np.zeros((point.step,), np.dtype(point.metadata["loss_dtype"])),
        "step": np.asarray(0, np.int64),
    }
    restored, _ = load_checkpoint(point.path, target)
    evaluations = [dict(record) for record in point.metadata.get("eval", [])]
    return restored["svi_state"], np.asarray(restored["losses"]), evaluations


def restore_latest_intact[R](
    found: tuple[ResumePoint | None, list[str]],
    metadata: Mapping[str, Any],
    directory: str | None,
    num_steps: int,
    load: Callable[[ResumePoint], R],
) -> tuple[ResumePoint, R] | None:
    """``(point, load(point))`` for the latest checkpoint ``load`` can read, or None.

    ``found`` is :func:`find_resume_point`'s answer. Each point's settings are
    checked against ``metadata`` (:func:`check_resumable`); one whose arrays
    cannot be read (``load`` raises ``ValueError``) is set aside, its note
    appended to ``found[1]``, and the next intact one tried.
    """
    point, notes = found
    while point is not None:
        check_resumable(point, metadata)
        try:
            return point, load(point)
        except ValueError as error:
            notes.append(set_aside(point.path, str(error)))
            point, more = find_resume_point(directory, True, num_steps)
            notes.extend(more)
    return None


def save_run(
    directory: str,
    step: int,
    state: SVIState,
    losses: np.ndarray,
    evaluations: list[dict[str, float]],
    metadata: Mapping[str, Any],
    keep: int,
) -> None:
    """Saves the run after ``step`` steps; keeps the latest ``keep`` checkpoints.

    ``losses`` ``(step,)`` are all the losses so far; ``metadata`` is the run's
    :func:`run_metadata`.
    """
    content = {"svi_state": state, "losses": losses, "step": np.asarray(step, np.int64)}
    info = {
        **metadata,
        "step": step,
        "loss_dtype": losses.dtype.name,
        "eval": evaluations,
        "invppl_version": invppl.__version__,
    }
    path = checkpoint_path(directory, step)
    if path.exists():  # only a stale directory can be here (e.g. of a fallen-back run)
        shutil.rmtree(path)
    save_checkpoint(path, content, info)
    for _, old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old)
