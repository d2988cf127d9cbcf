"""Executes every notebook in tutorials/ and writes the executed copies.

Run with ``INVPPL_SMALL=1`` (as ``make tutorials`` does) for the small-size
mode the test command uses. Notebooks run in parallel, one kernel per core
(``--jobs``); the run fails with the notebook's name on the first error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, out: Path, timeout: int) -> str:
    """Executes one notebook and writes the executed copy into ``out`` (temporary file, rename)."""
    start = time.perf_counter()
    notebook = nbformat.read(path, as_version=4)
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
    target = out / path.name
    temporary = target.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(target)
    return f"executed {path.name} in {time.perf_counter() - start:.1f}s -> {target}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "tutorials")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="kernels at once")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "tutorials").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found in tutorials/", file=sys.stderr)
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
