"""Executes every tutorial and writes the executed notebooks.

Each tutorial is one jupytext "percent" text notebook, ``tutorials/NN_name.py``
(``# %%`` code cells, ``# %% [markdown]`` cells), checked and formatted by ruff
like the rest of the code; edit it as text or open it in Jupyter through
jupytext. This script reads each one with jupytext, executes it with nbclient
and writes the executed copy, ``NN_name.ipynb``, into ``--out``
(``build/tutorials`` by default), which the documentation renders.

Run with ``INVPPL_SMALL=1`` (as ``make tutorials`` does) for the small-size
mode the test command uses. Notebooks run in parallel, one kernel per core
(``--jobs``), the longest first; the run fails with the notebook's name on the
first error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
# where the executed copy records the text it was executed from (docs/conf.py checks it)
SOURCE_KEY = "invppl_source_sha256"


def source_digest(path: Path) -> str:
    """The SHA-256 of a tutorial's text."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path) -> nbformat.NotebookNode:
    """The notebook (without outputs) of the text notebook ``path``, with stable cell ids."""
    notebook = jupytext.read(path, fmt="py:percent")
    for index, cell in enumerate(notebook.cells):
        # an id from the cell's position and text: the same tutorial gives the same notebook
        cell.id = hashlib.sha256(f"{index}:{cell.source}".encode()).hexdigest()[:8]
        # blank lines before the next cell, kept by jupytext for its round trip only
        cell.metadata.pop("lines_to_next_cell", None)
    notebook.metadata[SOURCE_KEY] = source_digest(path)
    return notebook


def execute(path: Path, out: Path, timeout: int) -> str:
    """Executes one tutorial and writes the executed ``.ipynb`` into ``out`` (temporary, rename)."""
    start = time.perf_counter()
    notebook = read(path)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except Exception as error:
        raise RuntimeError(f"{path.name} failed: {error}") from None
    target = out / path.with_suffix(".ipynb").name
    temporary = target.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(target)
    return f"executed {path.name} in {time.perf_counter() - start:.1f}s -> {target}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "tutorials")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="kernels at once")
    parser.add_argument("notebooks", nargs="*", type=Path, help="tutorials/*.py (default: all)")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted(TUTORIALS.glob("*.py"))
    if not notebooks:
        print("no notebooks found in tutorials/", file=sys.stderr)
        return 1
    if wrong := [str(p) for p in notebooks if p.suffix != ".py"]:
        print(f"tutorials are percent-format .py notebooks, got {wrong}", file=sys.stderr)
        return 1
    if args.jobs < 1:
        print(f"--jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    # the longest notebooks first, so the last one to start is a short one
    notebooks.sort(key=lambda p: p.stat().st_size, reverse=True)
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(notebooks))) as pool:
        futures = [pool.submit(execute, path, args.out, args.timeout) for path in notebooks]
        for future in futures:
            print(future.result(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
