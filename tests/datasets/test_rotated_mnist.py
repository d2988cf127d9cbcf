"""Rotated MNIST: the returned angles are the ones applied, in the documented direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from invppl.datasets import (
    MNIST,
    DeltaLaw,
    MixtureLaw,
    UniformLaw,
    rotate_images,
    rotated_mnist,
)


@pytest.fixture(scope="module")
def digits(mnist: MNIST) -> tuple[np.ndarray, np.ndarray]:
    data = mnist
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:8] for c in range(10)])
    return data.images[keep], data.labels[keep]


def central_disc(size: int, radius: float) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(rows, cols) <= radius


def test_shapes_dtypes_and_ranges(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    data = rotated_mnist(images, labels, seed=0, max_angle=math.pi / 3)
    assert data.images.shape == images.shape
    assert data.images.dtype == np.float32
    assert data.labels.dtype == np.int32
    assert data.angles.shape == (80,)
    assert data.angles.dtype == np.float32
    assert data.images.min() >= 0.0
    assert data.images.max() <= 1.0
    assert np.all(np.abs(data.angles) <= math.pi / 3)
    np.testing.assert_array_equal(data.indices, np.arange(80))
    assert set(data.laws) == set(range(10))
    assert data.laws[3] == UniformLaw(-math.pi / 3, math.pi / 3)


def test_rotating_back_recovers_the_digit(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    data = rotated_mnist(images, labels, seed=1, max_angle=math.pi)
    back = rotate_images(data.images, -data.angles)
    disc = central_disc(28, 10)
    for original, recovered in zip(images, back, strict=True):
        corr = np.corrcoef(original[disc, 0], recovered[disc, 0])[0, 1]
        assert corr > 0.9
    # a wrong sign would not undo the rotation
    wrong = rotate_images(data.images, data.angles)
    big = np.abs(data.angles) > 1.0
    worse = [
        np.corrcoef(o[disc, 0], w[disc, 0])[0, 1]
        for o, w in zip(images[big], wrong[big], strict=True)
    ]
    assert np.median(worse) < 0.6


def test_positive_angle_turns_counter_clockwise() -> None:
    bar = np.zeros((1, 15, 15, 1), dtype=np.float32)
    bar[0, 7, 8:14, 0] = 1.0  # from the centre to the right
    data = rotated_mnist(bar, np.array([0]), seed=0, law=DeltaLaw(math.pi / 2))
    rows, cols = np.nonzero(data.images[0, ..., 0] > 0.5)
    assert np.all(rows < 7)  # now points up (row 0 is the top)
    assert np.all(np.abs(cols - 7) <= 1)


def test_per_class_laws(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    ones = MixtureLaw((DeltaLaw(-0.5), DeltaLaw(0.5)), (0.5, 0.5))
    data = rotated_mnist(
        images, labels, seed=2, law={0: UniformLaw(-math.pi, math.pi), 1: ones}, classes=[0, 1]
    )
    assert set(data.labels.tolist()) == {0, 1}
    np.testing.assert_array_equal(data.labels, labels[data.indices])
    assert set(np.unique(data.angles[data.labels == 1])) <= {np.float32(-0.5), np.float32(0.5)}
    assert data.laws[1] is ones


def test_angles_follow_the_law() -> None:
    images = np.zeros((400, 4, 4, 1), dtype=np.float32)
    law = UniformLaw(-1.0, 2.0)
    data = rotated_mnist(images, np.zeros(400, dtype=np.int64), seed=3, law=law)
    assert stats.kstest(data.angles.astype(np.float64), law.cdf).pvalue > 0.01


def test_seeded_and_accepts_plain_samplers(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    a = rotated_mnist(images, labels, seed=4, law=lambda rng, n: rng.normal(0.0, 0.3, n))
    b = rotated_mnist(images, labels, seed=4, law=lambda rng, n: rng.normal(0.0, 0.3, n))
    c = rotated_mnist(images, labels, seed=5, law=lambda rng, n: rng.normal(0.0, 0.3, n))
    np.testing.assert_array_equal(a.angles, b.angles)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.angles, c.angles)


GOOD = np.zeros((3, 6, 6, 1), dtype=np.float32)
LABELS = np.array([0, 1, 1])


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "match"),
    [
        (GOOD[..., 0], LABELS, {"max_angle": 1.0}, r"rank 4 with layout \(n, height, width"),
        (GOOD.astype(np.int32), LABELS, {"max_angle": 1.0}, "floating point"),
        (np.where(GOOD == 0, np.nan, GOOD), LABELS, {"max_angle": 1.0}, "NaN"),
        (GOOD * 0 + 2.0, LABELS, {"max_angle": 1.0}, r"lie in \[0, 1\]"),
        (GOOD[:0], LABELS[:0], {"max_angle": 1.0}, "empty"),
        (GOOD, LABELS[:2], {"max_angle": 1.0}, "2 entries but there are 3 images"),
        (GOOD, LABELS, {}, "exactly one of max_angle"),
        (GOOD, LABELS, {"max_angle": 1.0, "law": DeltaLaw(0.0)}, "exactly one of max_angle"),
        (GOOD, LABELS, {"max_angle": 4.0}, r"max_angle must lie in \[0, pi\]"),
        (GOOD, LABELS, {"max_angle": 1.0, "classes": [7]}, r"classes \[7\] select no images"),
        (GOOD, LABELS, {"law": {0: DeltaLaw(0.0)}}, r"no law for class\(es\) \[1\]"),
        (GOOD, LABELS, {"law": lambda rng, n: np.zeros(n + 1)}, "returned values of shape"),
    ],
)
def test_bad_inputs(images: np.ndarray, labels: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rotated_mnist(images, labels, seed=0, **kwargs)
