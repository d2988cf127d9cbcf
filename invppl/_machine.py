"""What a benchmark ran on: one dictionary, printed and stored beside every figure."""

from __future__ import annotations

import os
import platform
from argparse import Namespace
from pathlib import Path
from typing import Any

import jax

from invppl._io import write_json

__all__ = ["machine_info", "record_results"]


def machine_info() -> dict[str, Any]:
    """The platform, CPU count, Python and JAX versions, and JAX's backend and devices.

    >>> sorted(machine_info())
    ['backend', 'cpu_count', 'devices', 'jax', 'platform', 'python']
    """
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
    }


def record_results(
    machine: dict[str, Any], settings: Namespace, rows: Any, summary: Any, out: Path | None
) -> dict[str, Any]:
    """A benchmark's record: the machine, its settings (as text), its rows and summary.

    Written atomically to ``out`` as JSON when ``out`` is given; returned either way.
    """
    results = {
        "machine": machine,
        "settings": {key: str(value) for key, value in vars(settings).items()},
        "rows": rows,
        "summary": summary,
    }
    if out is not None:
        write_json(results, out)
    return results
