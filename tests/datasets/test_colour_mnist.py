"""Coloured MNIST: the hue and saturation read off the images are the ones returned."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from invppl.datasets import MNIST, DeltaLaw, UniformLaw, chroma_angle, colour_mnist


@pytest.fixture(scope="module")
def digits(mnist: MNIST) -> tuple[np.ndarray, np.ndarray]:
    data = mnist
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:6] for c in range(10)])
    return data.images[keep], data.labels[keep]


def hue_of(rgb: np.ndarray) -> np.ndarray:
    """The textbook hue angle atan2(√3 (G − B), 2R − G − B), independent of the module."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.arctan2(math.sqrt(3.0) * (g - b), 2 * r - g - b)


def chroma_over_grey(rgb: np.ndarray) -> np.ndarray:
    grey = rgb.mean(axis=-1, keepdims=True)
    return np.linalg.norm(rgb - grey, axis=-1) / grey[..., 0]


def wrapped(angle: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * angle))


def test_shapes_dtypes_ranges(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    data = colour_mnist(images, labels, seed=0)
    assert data.images.shape == (60, 28, 28, 3)
    assert data.images.dtype == np.float32
    assert data.labels.dtype == np.int32
    assert data.hue.shape == data.saturation.shape == (60,)
    assert data.hue.dtype == data.saturation.dtype == np.float32
    assert data.images.min() >= 0.0
    assert data.images.max() <= 1.0
    assert set(data.laws) == {"hue", "saturation"}
    assert data.base_colour == (1.0, 0.25, 0.25)


def test_hue_and_saturation_recovered_from_the_images(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = digits
    data = colour_mnist(images, labels, seed=1)
    mean_colour = data.images.reshape(60, -1, 3).mean(axis=1)
    base = np.array(data.base_colour)
    np.testing.assert_allclose(wrapped(hue_of(mean_colour) - hue_of(base) - data.hue), 0, atol=1e-4)
    np.testing.assert_allclose(chroma_angle(mean_colour), hue_of(mean_colour), atol=1e-6)
    log_ratio = np.log(chroma_over_grey(mean_colour) / chroma_over_grey(base))
    np.testing.assert_allclose(log_ratio, data.saturation, atol=1e-4)
    # brightness is untouched: each pixel's grey level is the digit's ink times the base grey
    np.testing.assert_allclose(data.images.mean(axis=-1), images[..., 0] * base.mean(), atol=1e-5)


def test_green_is_two_thirds_of_a_turn_from_red() -> None:
    grey = np.ones((1, 2, 2, 1), dtype=np.float32)
    data = colour_mnist(
        grey, np.array([0]), seed=0, hue=DeltaLaw(2 * math.pi / 3), saturation=DeltaLaw(0.0)
    )
    np.testing.assert_allclose(data.images[0, 0, 0], [0.25, 1.0, 0.25], atol=1e-5)


def test_per_class_laws_and_their_distributions() -> None:
    n = 600
    grey = np.full((n, 2, 2, 1), 0.8, dtype=np.float32)
    labels = np.arange(n) % 2
    hue_law = {0: UniformLaw(-math.pi, math.pi), 1: DeltaLaw(1.0)}
    saturation_law = UniformLaw(-1.0, -0.2)
    data = colour_mnist(grey, labels, seed=2, hue=hue_law, saturation=saturation_law)
    assert np.all(data.hue[data.labels == 1] == np.float32(1.0))
    zeros = data.hue[data.labels == 0].astype(np.float64)
    assert stats.kstest(zeros, hue_law[0].cdf).pvalue > 1e-3
    assert stats.kstest(data.saturation.astype(np.float64), saturation_law.cdf).pvalue > 1e-3
    assert data.laws["hue"][1] is hue_law[1]


def test_class_selection_and_seed(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    a = colour_mnist(images, labels, seed=3, classes=[6, 9])
    b = colour_mnist(images, labels, seed=3, classes=[6, 9])
    assert set(a.labels.tolist()) == {6, 9}
    np.testing.assert_array_equal(a.labels, labels[a.indices])
    np.testing.assert_array_equal(a.images, b.images)


GREY = np.zeros((2, 4, 4, 1), dtype=np.float32)
LABELS = np.array([0, 1])


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros((2, 4, 4, 3), dtype=np.float32), {}, r"must have 1 channel"),
        (GREY[0], {}, "rank 4"),
        (GREY.astype(np.uint8), {}, "floating point"),
        (GREY + np.nan, {}, "NaN"),
        (GREY, {"base_colour": (0.5, 0.5, 0.5)}, "is grey"),
        (GREY, {"base_colour": (1.5, 0.0, 0.0)}, r"lie in \[0, 1\]\^3"),
        (GREY, {"classes": [3]}, "select no images"),
        (GREY, {"hue": {0: DeltaLaw(0.0)}}, r"hue gives no law for class\(es\) \[1\]"),
    ],
)
def test_bad_inputs(images: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        colour_mnist(images, LABELS, seed=0, **kwargs)
