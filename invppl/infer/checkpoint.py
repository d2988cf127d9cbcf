"""Saving and restoring fitting state with orbax (never pickle).

A checkpoint is one directory holding a pytree of arrays (``state/``, written
by orbax's standard handler) and a small JSON document (``metadata/``). Orbax
writes both into a temporary ``<name>.orbax-checkpoint-tmp-*`` directory and
renames it when complete, so a crash mid-write never leaves a directory that
:func:`latest_checkpoint` would pick up.

Checkpoints of one run live side by side in a directory as
``step_000000100/``, ``step_000000200/``, ... (:func:`checkpoint_path`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    "checkpoint_path",
    "is_complete_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_metadata",
    "save_checkpoint",
]

_logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d+)$")
_STATE = "state"
_METADATA = "metadata"
_FINAL_MARKER = "_CHECKPOINT_METADATA"  # orbax writes it before the final rename


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
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(
            path,
            ocp.args.Composite(
                **{
                    _STATE: ocp.args.StandardSave(tree),
                    _METADATA: ocp.args.JsonSave(metadata),
                }
            ),
        )
    return path


def is_complete_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a finished checkpoint written by :func:`save_checkpoint`.

    False for orbax's temporary directories (an interrupted write), for
    directories without orbax's final marker, and for anything else.
    """
    path = Path(path)
    return (
        path.is_dir()
        and ocp.path.step.TMP_DIR_SUFFIX not in path.name
        and (path / _FINAL_MARKER).is_file()
        and (path / _STATE).is_dir()
        and (path / _METADATA).is_dir()
    )


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete checkpoints ``step_<n>`` in ``directory`` as ``(step, path)``, by step.

    Directories named like checkpoints but incomplete (an interrupted write,
    foreign content) are skipped and logged.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        if not is_complete_checkpoint(entry):
            _logger.warning("skipping incomplete checkpoint directory %s", entry)
            continue
        found.append((int(match.group(1)), entry))
    return sorted(found)


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
        ValueError: if it is not a complete, readable checkpoint.
    """
    path = Path(path).absolute()
    _require_complete(path)
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
