"""Writes an :class:`~invppl.diagnostics.EtaCheck` to a folder: tables, JSON digest, figures.

    summary.csv        one row per (example, parameter), as ``EtaCheck.summary``
    diagnostics.json   ``EtaCheck.to_dict()`` plus whatever the caller adds
    posteriors.png     guide vs NUTS reference per example and η parameter
    forest.png         central intervals per example and η parameter, guide beside reference
    ranks.png          SBC rank histograms (when SBC ran)

Every file is written whole or not at all (temporary file, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invppl._io import write_json, write_text
from invppl.diagnostics.check import EtaCheck
from invppl.diagnostics.plots import plot_eta_posteriors, plot_forest, plot_ranks
from invppl.plots import save_figure

__all__ = ["write_report"]


def write_report(
    check: EtaCheck, folder: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Writes the report files (module docs) into ``folder``; returns the JSON digest."""
    target = Path(folder)
    digest = {**check.to_dict(), **dict(extra or {})}
    write_text(check.summary.to_csv(), target / "summary.csv")
    write_json(digest, target / "diagnostics.json")
    figures = {
        "posteriors.png": plot_eta_posteriors(check),
        "forest.png": plot_forest(check),
    }
    if check.sbc is not None:
        figures["ranks.png"] = plot_ranks(check)
    for name, figure in figures.items():
        save_figure(figure, target / name)
    return digest
