"""Saving and restoring fitting state with orbax (never pickle).

A checkpoint is one directory holding a pytree of arrays (``state/``, written
by orbax's standard handler), a small JSON document (``metadata/``) and
invppl's manifest (``invppl_manifest.json``: the size and SHA-256 of every other
file). Everything is written into a hidden temporary directory
(``.<name>.partial-<pid>``) that is renamed to ``<name>`` when complete, so a
crash mid-write never leaves a directory that :func:`latest_checkpoint` would
pick up, and :func:`verify_checkpoint` finds a file that was truncated, altered
or deleted afterwards before orbax reads anything.

Checkpoints of one run live side by side in a directory as
``step_000000100/``, ``step_000000200/``, ... (:func:`checkpoint_path`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    "MANIFEST",
    "checkpoint_dirs",
    "checkpoint_path",
    "is_complete_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_metadata",
    "save_checkpoint",
    "verify_checkpoint",
]

_logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)$")
_STATE = "state"
_METADATA = "metadata"
_FINAL_MARKER = "_CHECKPOINT_METADATA"  # orbax writes it before the final rename
MANIFEST = "invppl_manifest.json"
"""The file of a checkpoint that lists every other file's size and SHA-256."""


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    """The path of the checkpoint for ``step`` inside ``directory``.

    >>> checkpoint_path("runs/a", 120).as_posix()
    'runs/a/step_000000120'
    """
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    return Path(directory) / f"step_{step:09d}"


def _as_array(leaf: Any) -> Any:
    if isinstance(leaf, jax.Array | np.ndarray):
        return leaf
    return np.asarray(leaf)


def save_checkpoint(path: str | os.PathLike[str], state: Any, metadata: dict[str, Any]) -> Path:
    """Writes ``state`` and ``metadata`` atomically into the new directory ``path``.

    Args:
        path: the checkpoint directory to create; it must not exist yet.
        state: a pytree of arrays (NumPy or JAX; Python and NumPy scalars are
            stored as 0-d arrays), e.g. an ``SVIState`` inside a dict.
        metadata: a JSON-serialisable dict.

    Returns:
        The absolute checkpoint path.

    Raises:
        FileExistsError: if ``path`` exists.
        TypeError: if ``metadata`` is not JSON-serialisable.
    """
    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"checkpoint {path} already exists; choose a new path")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = jax.tree.map(_as_array, state)
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    if partial.exists():  # left by an earlier crash of this very process id
        shutil.rmtree(partial)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            checkpointer.save(
                partial,
                ocp.args.Composite(
                    **{
                        _STATE: ocp.args.StandardSave(tree),
                        _METADATA: ocp.args.JsonSave(metadata),
                    }
                ),
            )
        manifest = json.dumps({"files": _file_digests(partial)}, indent=1)
        (partial / MANIFEST).write_text(manifest + "\n")
        os.replace(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return path


def _file_digests(path: Path) -> dict[str, list[Any]]:
    """``{relative path: [bytes, SHA-256]}`` of every file under ``path`` but the manifest."""
    digests: dict[str, list[Any]] = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        name = file.relative_to(path).as_posix()
        if name != MANIFEST:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            digests[name] = [file.stat().st_size, digest]
    return digests


def verify_checkpoint(path: str | os.PathLike[str]) -> None:
    """Raises ``ValueError`` naming what is damaged unless the checkpoint at ``path`` is intact.

    Intact: complete (:func:`is_complete_checkpoint`) and, when it has a manifest
    (written by :func:`save_checkpoint` since invppl 0.1), every listed file
    present with its recorded size and SHA-256. A checkpoint without a manifest
    passes when complete (whether its arrays can be read is then only known
    when they are).
    """
    path = Path(path)
    _require_complete(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return
    try:
        listed = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {path} has an unreadable {MANIFEST}: {error}") from None
    present = _file_digests(path)
    problems = []
    for name, (size, digest) in listed.items():
        if name not in present:
            problems.append(f"{name} is missing")
        elif present[name][0] != size:
            problems.append(f"{name} has {present[name][0]} bytes, {size} were written")
        elif present[name][1] != digest:
            problems.append(f"{name} differs from what was written (SHA-256)")
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if problems[3:] else ""
        )
        raise ValueError(f"checkpoint {path} is damaged: {shown}")


def is_complete_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a finished checkpoint written by :func:`save_checkpoint`.

    False for temporary directories (an interrupted write), for directories
    without orbax's final marker, and for anything else. Whether its files are
    intact is :func:`verify_checkpoint`'s question.
    """
    path = Path(path)
    return (
        path.is_dir()
        and ocp.path.step.TMP_DIR_SUFFIX not in path.name
        and ".partial-" not in path.name
        and (path / _FINAL_MARKER).is_file()
        and (path / _STATE).is_dir()
        and (path / _METADATA).is_dir()
    )


def checkpoint_dirs(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Every directory named ``step_<n>`` in ``directory``, complete or not, as ``(step, path)``."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match is not None and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoints ``step_<n>`` in ``directory`` as ``(step, path)``, by step.

    Directories named like checkpoints but incomplete (foreign content, a file
    deleted) are skipped and logged.
    """
    found: list[tuple[int, Path]] = []
    for step, entry in checkpoint_dirs(directory):
        if not is_complete_checkpoint(entry):
            _logger.warning("skipping incomplete checkpoint directory %s", entry)
            continue
        found.append((step, entry))
    return found


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def _require_complete(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not is_complete_checkpoint(path):
        raise ValueError(
            f"{path} is not a complete checkpoint (expected the directories {_STATE}/ and "
            f"{_METADATA}/ and orbax's {_FINAL_MARKER} file); was its write interrupted?"
        )


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path`` (cheap: no arrays are read).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a complete, intact (:func:`verify_checkpoint`),
            readable checkpoint.
    """
    path = Path(path).absolute()
    verify_checkpoint(path)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            restored = checkpointer.restore(
                path, ocp.args.Composite(**{_METADATA: ocp.args.JsonRestore()})
            )
        metadata = restored[_METADATA]
    except Exception as error:
        raise ValueError(f"could not read the metadata of checkpoint {path}: {error}") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"checkpoint {path} has metadata {metadata!r}; expected a JSON object")
    return metadata


def load_checkpoint(path: str | os.PathLike[str], target: Any = None) -> tuple[Any, dict[str, Any]]:
    """Reads the state and metadata of the checkpoint at ``path``.

    Args:
        path: a checkpoint directory written by :func:`save_checkpoint`.
        target: optional pytree with the saved state's structure, shapes and
            dtypes (values are ignored); the state is restored into that
            structure (named tuples included). Without it the state comes back
            as nested dicts and lists of arrays.

    Returns:
        ``(state, metadata)``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a complete checkpoint, or the arrays cannot
            be read into ``target``.
    """
    path = Path(path).absolute()
    metadata = load_metadata(path)
    if target is None:
        restore = ocp.args.StandardRestore()
    else:
        abstract = jax.tree.map(
            lambda leaf: ocp.utils.to_shape_dtype_struct(_as_array(leaf)), target
        )
        restore = ocp.args.StandardRestore(abstract)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            restored = checkpointer.restore(path, ocp.args.Composite(**{_STATE: restore}))
    except Exception as error:
        raise ValueError(f"could not restore the arrays of checkpoint {path}: {error}") from error
    return restored[_STATE], metadata
