"""Sphinx configuration: MyST-NB pages, API reference from docstrings, warnings are errors."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

project = "invppl"
author = "invppl developers"
copyright = "2026, invppl developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
# Tutorials are executed by `make tutorials` (small mode) into build/tutorials;
# the docs render those executed copies and never execute anything themselves.
nb_execution_mode = "off"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "invppl"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = True
suppress_warnings = ["myst.header"]


def _collect_tutorials() -> None:
    executed = ROOT / "build" / "tutorials"
    target = Path(__file__).parent / "_generated" / "tutorials"
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        source = executed / notebook.name
        shutil.copyfile(source if source.exists() else notebook, target / notebook.name)


_collect_tutorials()
