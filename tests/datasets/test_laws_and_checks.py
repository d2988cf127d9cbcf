"""Laws: sampling agrees with the stated cdf, densities integrate to one; input checks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats

from invppl.datasets import DeltaLaw, Law, MixtureLaw, NormalLaw, UniformLaw, draw, laws_by_class
from invppl.datasets._checks import check_images, check_int, check_labels, check_seed

CONTINUOUS = [
    UniformLaw(-1.0, 2.0),
    NormalLaw(0.5, 0.3),
    MixtureLaw((UniformLaw(-3.0, -2.0), NormalLaw(1.0, 0.5)), (0.3, 0.7)),
]


@pytest.mark.parametrize("law", CONTINUOUS, ids=repr)
def test_samples_match_cdf(law: Law) -> None:
    values = law.sample(np.random.default_rng(0), 2000)
    assert values.shape == (2000,)
    assert values.dtype == np.float64
    assert stats.kstest(values, law.cdf).pvalue > 0.01


@pytest.mark.parametrize("law", CONTINUOUS, ids=repr)
def test_pdf_integrates_to_one_on_line_and_circle(law: Law) -> None:
    line = integrate.quad(lambda x: float(law.pdf(x)), -10, 10, limit=200, points=[-3, -2, -1, 2])
    assert line[0] == pytest.approx(1.0, abs=1e-6)
    grid = np.linspace(-math.pi, math.pi, 20001)
    circle = np.trapezoid(law.pdf(grid, period=2 * math.pi), grid)
    assert circle == pytest.approx(1.0, abs=1e-3)


def test_wrapped_uniform_over_a_full_turn_is_flat() -> None:
    law = UniformLaw(0.3, 0.3 + 2 * math.pi)
    x = np.linspace(-math.pi, math.pi, 7)
    np.testing.assert_allclose(law.pdf(x, period=2 * math.pi), 1 / (2 * math.pi))


def test_cdf_is_the_integral_of_pdf() -> None:
    law = MixtureLaw((UniformLaw(0.0, 1.0), NormalLaw(2.0, 0.5)), (1.0, 3.0))
    assert law.weights == (0.25, 0.75)
    for x in (-0.5, 0.4, 1.7, 3.0):
        area = integrate.quad(lambda t: float(law.pdf(t)), -10, x, points=[0.0, 1.0])[0]
        assert float(law.cdf(x)) == pytest.approx(area, abs=1e-6)


def test_delta_law() -> None:
    law = DeltaLaw(0.25)
    np.testing.assert_array_equal(law.sample(np.random.default_rng(1), 5), 0.25)
    assert law.pdf(0.25) == np.inf
    assert law.pdf(0.3) == 0.0
    assert law.pdf(0.25 + 2 * math.pi, period=2 * math.pi) == np.inf
    np.testing.assert_array_equal(law.cdf([0.2, 0.25, 0.3]), [0.0, 1.0, 1.0])
    assert law.support == (0.25, 0.25)


def test_mixture_of_deltas_draws_only_atoms_with_the_weights() -> None:
    law = MixtureLaw((DeltaLaw(-1.0), DeltaLaw(1.0)), (0.2, 0.8))
    values = law.sample(np.random.default_rng(2), 5000)
    assert set(np.unique(values)) == {-1.0, 1.0}
    assert np.mean(values == 1.0) == pytest.approx(0.8, abs=0.02)


def test_reprs_name_the_parameters() -> None:
    assert repr(UniformLaw(-1, 1)) == "UniformLaw(low=-1.0, high=1.0)"
    assert repr(DeltaLaw(0)) == "DeltaLaw(value=0.0)"
    assert "MixtureLaw(components=(DeltaLaw" in repr(MixtureLaw((DeltaLaw(0.0),), (1.0,)))


def test_same_seed_same_draws() -> None:
    law = CONTINUOUS[2]
    a = law.sample(np.random.default_rng(5), 50)
    b = law.sample(np.random.default_rng(5), 50)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: UniformLaw(1.0, 1.0), ValueError, "low < high"),
        (lambda: UniformLaw(0.0, math.inf), ValueError, "must be finite"),
        (lambda: NormalLaw(0.0, 0.0), ValueError, "scale must be positive"),
        (lambda: DeltaLaw(math.nan), ValueError, "must be finite"),
        (lambda: MixtureLaw((), ()), ValueError, "at least one component"),
        (lambda: MixtureLaw((DeltaLaw(0.0),), (1.0, 2.0)), ValueError, "one weight per component"),
        (lambda: MixtureLaw((DeltaLaw(0.0),), (-1.0,)), ValueError, "non-negative"),
        (lambda: MixtureLaw((lambda rng, n: rng.random(n),), (1.0,)), TypeError, "law object"),
    ],
)
def test_bad_law_parameters(make: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_draw_checks_plain_samplers() -> None:
    rng = np.random.default_rng(0)
    assert draw(lambda r, n: r.normal(size=n), rng, 3).shape == (3,)
    with pytest.raises(ValueError, match=r"returned values of shape \(3, 1\), expected \(3,\)"):
        draw(lambda r, n: np.zeros((n, 1)), rng, 3, name="angle law")
    with pytest.raises(ValueError, match="NaN or infinite"):
        draw(lambda r, n: np.full(n, np.nan), rng, 3)
    with pytest.raises(TypeError, match="must be a law object"):
        draw(3.0, rng, 3)  # type: ignore[arg-type]


def test_laws_by_class_needs_every_class() -> None:
    law = UniformLaw(0.0, 1.0)
    assert laws_by_class(law, [2, 0, 2]) == {0: law, 2: law}
    with pytest.raises(ValueError, match=r"no law for class\(es\) \[2\]"):
        laws_by_class({0: law}, [0, 2])


def test_check_images_names_each_problem() -> None:
    good = np.zeros((2, 4, 4, 1), dtype=np.float32)
    assert check_images(good) is not None
    with pytest.raises(ValueError, match=r"rank 4 .*\(n, height, width, channels\).*rank 3"):
        check_images(good[..., 0])
    with pytest.raises(ValueError, match=r"floating point.*uint8"):
        check_images(good.astype(np.uint8))
    with pytest.raises(ValueError, match="empty"):
        check_images(good[:0])
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        check_images(np.where(np.arange(32).reshape(2, 4, 4, 1) == 3, np.inf, good))
    with pytest.raises(ValueError, match="3 channel"):
        check_images(good, channels=3)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\].*divide 8-bit images by 255"):
        check_images(good + 255.0, unit_interval=True)


def test_check_labels_and_integers() -> None:
    with pytest.raises(ValueError, match="3 entries but there are 2 images"):
        check_labels(np.arange(3), 2)
    with pytest.raises(ValueError, match="integer dtype"):
        check_labels(np.zeros(2), 2)
    with pytest.raises(TypeError, match="must be an integer, got the bool"):
        check_int(True, "n")
    with pytest.raises(TypeError, match="must be an integer, got float"):
        check_int(2.5, "n")
    with pytest.raises(ValueError, match="seed must be at least 0"):
        check_seed(-1)
