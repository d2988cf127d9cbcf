"""Executes every notebook in tutorials/ and writes the executed copies.

Run with ``INVPPL_SMALL=1`` (as ``make tutorials`` does) for the small-size
mode the test command uses. Fails with the notebook's name on the first error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "tutorials")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "tutorials").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found in tutorials/", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=args.timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
        target = args.out / path.name
        temporary = target.with_suffix(".ipynb.tmp")
        nbformat.write(notebook, temporary)
        temporary.replace(target)
        print(f"executed {path.name} in {time.perf_counter() - start:.1f}s -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
