"""Procedural dSprites: areas, centres, orientations and factor laws checked independently."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from invppl.datasets import (
    BASE_RADIUS,
    DEFAULT_LAWS,
    SHAPE_AREAS,
    SHAPES,
    SYMMETRY_ORDER,
    DeltaLaw,
    MixtureLaw,
    UniformLaw,
    make_dsprites,
    render_sprites,
)


def render_one(shape: str, scale: float, rotation: float, x: float, y: float, size: int = 64):
    return render_sprites(
        np.array([SHAPES.index(shape)]),
        np.array([scale]),
        np.array([rotation]),
        np.array([x]),
        np.array([y]),
        size=size,
    )[0, ..., 0]


def pixel_coordinates(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (x right, y up) coordinates of pixel centres."""
    centre = (size - 1) / 2
    rows, cols = np.mgrid[:size, :size]
    return (cols - centre) / (size / 2), -(rows - centre) / (size / 2)


def moments(image: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    x, y = pixel_coordinates(image.shape[0])
    mass = image.sum()
    cx, cy = (image * x).sum() / mass, (image * y).sum() / mass
    dx, dy = x - cx, y - cy
    cov = np.array(
        [[(image * dx * dx).sum(), (image * dx * dy).sum()], [0.0, (image * dy * dy).sum()]]
    )
    cov[1, 0] = cov[0, 1]
    return mass, cx, cy, cov / mass


def test_heart_constants_by_an_independent_grid() -> None:
    """SHAPE_AREAS['heart'] and the centring, from the raw heart equation on a fine grid."""
    step = 1.25e-3
    xs = np.arange(-1.2, 1.2, step) + step / 2
    ys = np.arange(-1.05, 1.3, step) + step / 2
    x, y = np.meshgrid(xs, ys)
    inside = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    area = inside.sum() * step**2
    centroid = y[inside].mean()
    # the farthest point from the centroid is the tip (0, -1), a cusp the grid barely samples
    tip = 1.0 + centroid
    farthest = np.hypot(x[inside], y[inside] - centroid).max()
    assert tip - 0.01 < farthest <= tip + step
    assert SHAPE_AREAS["heart"] == pytest.approx(area / tip**2, rel=1e-3)
    assert SHAPE_AREAS["square"] == 2.0
    assert SHAPE_AREAS["ellipse"] == pytest.approx(math.pi / 2)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_area_and_centre_of_mass(shape: str, scale: float) -> None:
    image = render_one(shape, scale, 0.4, 0.2, -0.3)
    mass, cx, cy, _ = moments(image)
    pixel_area = (2 / 64) ** 2
    expected = SHAPE_AREAS[shape] * (BASE_RADIUS * scale) ** 2
    assert mass * pixel_area == pytest.approx(expected, rel=0.03)
    assert cx == pytest.approx(0.2, abs=0.5 * 2 / 64)
    assert cy == pytest.approx(-0.3, abs=0.5 * 2 / 64)


def test_generated_images_agree_with_their_factors() -> None:
    data = make_dsprites(60, seed=0, size=64)
    pixel_area = (2 / 64) ** 2
    for image, label, scale, x, y in zip(
        data.images[..., 0],
        data.labels,
        data.factors["scale"],
        data.factors["pos_x"],
        data.factors["pos_y"],
        strict=True,
    ):
        mass, cx, cy, _ = moments(image)
        expected = SHAPE_AREAS[SHAPES[label]] * (BASE_RADIUS * scale) ** 2
        assert mass * pixel_area == pytest.approx(expected, rel=0.04)
        assert cx == pytest.approx(x, abs=2 / 64)
        assert cy == pytest.approx(y, abs=2 / 64)


def test_rotation_is_counter_clockwise() -> None:
    _, _, _, cov = moments(render_one("ellipse", 1.0, math.pi / 4, 0.0, 0.0))
    assert cov[0, 1] > 0.5 * cov[0, 0]  # long axis along y = x
    _, _, _, cov = moments(render_one("ellipse", 1.0, -math.pi / 4, 0.0, 0.0))
    assert cov[0, 1] < -0.5 * cov[0, 0]
    _, _, _, cov = moments(render_one("ellipse", 1.0, 0.0, 0.0, 0.0))
    assert cov[0, 0] > 3 * cov[1, 1]  # unrotated: long axis horizontal


def test_heart_is_upright() -> None:
    image = render_one("heart", 1.0, 0.0, 0.0, 0.0)
    _, _, cy, _ = moments(image)
    _, y = pixel_coordinates(64)
    ink = image > 0.5
    below, above = cy - y[ink].min(), y[ink].max() - cy
    assert below > 1.2 * above  # the tip is at the bottom


@pytest.mark.parametrize("shape", SHAPES)
def test_documented_rotation_symmetries(shape: str) -> None:
    base = render_one(shape, 0.9, 0.3, 0.1, 0.1)
    turn = 2 * math.pi / SYMMETRY_ORDER[shape]
    np.testing.assert_allclose(render_one(shape, 0.9, 0.3 + turn, 0.1, 0.1), base, atol=0.07)
    if SYMMETRY_ORDER[shape] == 1:
        assert np.abs(render_one(shape, 0.9, 0.3 + math.pi, 0.1, 0.1) - base).sum() > 20
    else:
        half = turn / 2
        assert np.abs(render_one(shape, 0.9, 0.3 + half, 0.1, 0.1) - base).sum() > 5


def test_shapes_dtypes_and_defaults() -> None:
    data = make_dsprites(30, seed=1, size=16)
    assert data.images.shape == (30, 16, 16, 1)
    assert data.images.dtype == np.float32
    assert data.images.min() >= 0.0
    assert data.images.max() <= 1.0
    assert data.labels.dtype == np.int32
    assert set(data.labels.tolist()) <= {0, 1, 2}
    assert set(data.factors) == {"scale", "rotation", "pos_x", "pos_y"}
    for values in data.factors.values():
        assert values.shape == (30,)
        assert values.dtype == np.float32
    assert data.laws == DEFAULT_LAWS
    assert data.shape_names[2] == "heart"
    # anti-aliased: some pixels are partly covered
    assert np.any((data.images > 0.05) & (data.images < 0.95))


def test_heart_without_rotation_has_exactly_zero_rotation() -> None:
    data = make_dsprites(40, seed=2, size=8, laws={"heart": {"rotation": DeltaLaw(0.0)}})
    hearts = data.labels == SHAPES.index("heart")
    assert hearts.any()
    assert np.all(data.factors["rotation"][hearts] == 0.0)


def test_factor_distributions_match_their_laws() -> None:
    laws = {
        "square": {"rotation": UniformLaw(-math.pi / 4, math.pi / 4)},
        "ellipse": {
            "rotation": MixtureLaw((UniformLaw(-1.5, -1.0), UniformLaw(0.5, 1.5)), (0.3, 0.7)),
            "pos_x": UniformLaw(-0.2, 0.4),
        },
    }
    data = make_dsprites(900, seed=3, size=8, laws=laws)
    for shape in SHAPES:
        members = data.labels == SHAPES.index(shape)
        assert members.sum() > 200  # shapes are drawn uniformly
        for factor, values in data.factors.items():
            law = data.laws[shape][factor]
            if isinstance(law, DeltaLaw):
                assert np.all(values[members] == np.float32(law.value))
            else:
                test = stats.kstest(values[members].astype(np.float64), law.cdf)
                assert test.pvalue > 1e-3, (shape, factor)
    assert data.laws["ellipse"]["pos_x"] == UniformLaw(-0.2, 0.4)
    assert data.laws["ellipse"]["scale"] == DEFAULT_LAWS["ellipse"]["scale"]


def test_seeded() -> None:
    a = make_dsprites(10, seed=4, size=8)
    b = make_dsprites(10, seed=4, size=8)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.factors["rotation"], b.factors["rotation"])


def test_shape_selection_and_plain_samplers() -> None:
    data = make_dsprites(
        12,
        seed=5,
        size=8,
        shapes=("heart",),
        laws={"heart": {"scale": lambda r, n: np.full(n, 0.7)}},
    )
    assert np.all(data.labels == 2)
    np.testing.assert_allclose(data.factors["scale"], 0.7)
    assert set(data.laws) == {"heart"}


def test_thousands_of_images_take_seconds() -> None:
    start = time.perf_counter()
    data = make_dsprites(1000, seed=6, size=64)
    assert data.images.shape == (1000, 64, 64, 1)
    assert time.perf_counter() - start < 20.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be at least 1"),
        ({"size": 2}, "size must be at least 4"),
        ({"shapes": ("triangle",)}, r"unknown shape\(s\) \['triangle'\]"),
        ({"shapes": ()}, "selects no shape"),
        ({"laws": {"star": {}}}, r"laws given for unknown shape\(s\) \['star'\]"),
        ({"laws": {"heart": {"colour": DeltaLaw(0.0)}}}, r"unknown factor\(s\) \['colour'\]"),
        ({"laws": {"heart": {"pos_x": UniformLaw(-1.0, 1.0)}}}, r"stays in frame only for"),
        ({"laws": {"heart": {"scale": UniformLaw(-1.0, 1.0)}}}, "scales must be > 0"),
        ({"laws": {"heart": {"pos_y": lambda r, n: np.full(n, 0.95)}}}, "leaves the frame"),
        (
            {"shapes": ("square",), "laws": {"heart": {"scale": DeltaLaw(1.0)}}},
            r"shape\(s\) \['heart'\] that are not drawn",
        ),
    ],
)
def test_bad_inputs(kwargs: dict, match: str) -> None:
    arguments = {"n": 4, "seed": 0, "size": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_dsprites(**arguments)
