"""Builds a tutorial notebook (without outputs) from a list of ``(kind, source)`` cells.

Shared by the ``make_tutorial_*.py`` generators: cell ids come from each cell's
position and text, so regenerating an unchanged tutorial rewrites the same file.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def cell_id(index: int, source: str) -> str:
    """A stable id from the cell's position and text."""
    return hashlib.sha256(f"{index}:{source}".encode()).hexdigest()[:8]


def build(cells: Sequence[tuple[str, str]]) -> nbformat.NotebookNode:
    """The notebook of ``cells``: ``("markdown" | "code", source)`` pairs, in order."""
    built = []
    for index, (kind, source) in enumerate(cells):
        make = new_markdown_cell if kind == "markdown" else new_code_cell
        cell = make(source, id=cell_id(index, source))
        if kind == "code" and source.startswith("import "):
            # importing the libraries may warn on stderr (e.g. tqdm without ipywidgets)
            cell.metadata["tags"] = ["remove-stderr"]
        built.append(cell)
    notebook = new_notebook(cells=built)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return notebook


def main(cells: Sequence[tuple[str, str]], target: Path, description: str | None) -> int:
    """The generators' command line: writes the notebook to ``target`` (or ``--out``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=target)
    args = parser.parse_args()
    notebook = build(cells)
    nbformat.validate(notebook)
    nbformat.write(notebook, args.out)
    print(f"wrote {args.out}")
    return 0
