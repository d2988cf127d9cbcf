"""Shared fixtures: the point-cloud examples (see :mod:`tests.diagnostics.pointcloud`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.diagnostics import pointcloud as pc


@pytest.fixture(scope="session")
def x() -> np.ndarray:
    """``(4, P, 2)`` the examples: one at the seam ±π, the last wide (small K)."""
    return pc.examples()
