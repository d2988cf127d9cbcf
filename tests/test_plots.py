"""Image grids and atomic saving."""

import numpy as np
import pytest

from invppl.plots import image_grid, save_figure


def test_grid_and_atomic_save(tmp_path) -> None:
    figure = image_grid(np.random.default_rng(0).uniform(size=(5, 6, 6, 1)), ncols=3)
    assert len(figure.axes) == 6
    path = save_figure(figure, tmp_path / "sub" / "grid.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_failed_save_leaves_nothing(tmp_path) -> None:
    figure = image_grid(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="Format 'nope' is not supported"):
        save_figure(figure, tmp_path / "grid.nope")
    assert list(tmp_path.iterdir()) == []


def test_bad_images_are_named() -> None:
    with pytest.raises(ValueError, match=r"shape \(n, height, width, 1 or 3\)"):
        image_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="at least one image"):
        image_grid(np.zeros((0, 4, 4, 1)))
