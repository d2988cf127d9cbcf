"""What a benchmark ran on: one dictionary, printed and stored beside every figure."""

from __future__ import annotations

import os
import platform
from typing import Any

import jax

__all__ = ["machine_info"]


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
