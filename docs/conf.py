"""Sphinx configuration: MyST-NB pages, API reference from docstrings, warnings are errors."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import nbformat
from sphinx.application import Sphinx
from sphinx.util import logging

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)

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
# Tutorials (text notebooks, tutorials/*.py) are executed by `make tutorials` (small
# mode) into build/tutorials; the docs render those executed copies (_collect_tutorials)
# and never execute anything themselves.
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


def _load_runner() -> ModuleType:
    """tools/run_tutorials.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "run_tutorials", ROOT / "tools" / "run_tutorials.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError("cannot load tools/run_tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _collect_tutorials(app: Sphinx) -> None:
    """Puts each tutorial's executed notebook into _generated/tutorials for MyST-NB.

    The tutorials are text notebooks, tutorials/*.py; ``make tutorials`` executes them into
    build/tutorials/*.ipynb, recording the text each one was executed from. A tutorial not
    executed yet is rendered without outputs; one whose executed copy comes from another text
    is too, with a warning (an error under ``-W``), so no page shows outputs of other code.
    """
    runner = _load_runner()
    executed = ROOT / "build" / "tutorials"
    target = Path(__file__).parent / "_generated" / "tutorials"
    target.mkdir(parents=True, exist_ok=True)
    for tutorial in sorted(runner.TUTORIALS.glob("*.py")):
        name = tutorial.with_suffix(".ipynb").name
        source = executed / name
        if source.exists():
            notebook = nbformat.read(source, as_version=4)
            if notebook.metadata.get(runner.SOURCE_KEY) == runner.source_digest(tutorial):
                shutil.copyfile(source, target / name)
                continue
            logger.warning(
                "%s was executed from another version of %s; rendering it without outputs "
                "(run `make tutorials`)",
                source,
                tutorial.relative_to(ROOT),
            )
        nbformat.write(runner.read(tutorial), target / name)


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _collect_tutorials)
