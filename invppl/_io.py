"""Writing result files whole or not at all: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "check_writable_folder", "write_json", "write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    The folder is created if missing; the temporary file is removed if the block
    raises, and the result gets the permissions ``open()`` would give it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=target.suffix, prefix=".tmp-")
    os.close(handle)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0o600
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Writes ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(data: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes ``data`` as indented JSON through :func:`atomic_path` (never a partial file)."""
    write_text(json.dumps(data, indent=2) + "\n", path)


def check_writable_folder(path: str | os.PathLike[str], what: str) -> Path:
    """Raises unless ``path`` is, or can be made, a folder this process may write into.

    Nothing is created: the nearest existing folder on the way up must be a
    folder (not a file) that is writable. Returns ``path`` as a ``Path``.

    Raises:
        NotADirectoryError: ``path``, or a folder on the way to it, is a file.
        PermissionError: the nearest existing folder is not writable.

    >>> check_writable_folder("/dev/null/run", "--out")
    Traceback (most recent call last):
    ...
    NotADirectoryError: --out /dev/null/run cannot be a folder: /dev/null exists and is not a folder
    """
    target = Path(path)
    existing = target.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"{what} {path} cannot be a folder: {existing} exists and is not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == target.absolute() else f"{existing}"
        raise PermissionError(f"{what} {path} is not writable: no permission to write in {where}")
    return target
