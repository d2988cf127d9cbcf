"""Wasserstein distances and prototype invariance, against independent oracles.

Oracles: scipy.stats.wasserstein_distance on the line; on the circle, the
optimal transport linear programme with arc-length costs (scipy linprog) and
the closed form for point masses; the analytic distance to a point mass.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import Array
from scipy.optimize import linprog
from scipy.stats import wasserstein_distance

from invppl.datasets import DeltaLaw, MixtureLaw, NormalLaw, UniformLaw
from invppl.metrics import (
    InvarianceReport,
    prototype_invariance,
    wasserstein_circle,
    wasserstein_line,
    wasserstein_to_law,
)
from invppl.transforms import Affine, CyclicRotation, transform_family

TWO_PI = 2 * math.pi
values = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False)
angles = st.floats(-20.0, 20.0, allow_nan=False, allow_infinity=False)


def arc(x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    """Shorter arc length between angles, elementwise (broadcasting)."""
    gap = np.mod(np.abs(x - y), period)
    return np.minimum(gap, period - gap)


def circle_by_linear_programme(a: np.ndarray, b: np.ndarray, period: float) -> float:
    """Exact optimal transport on the circle: min Σ π_ij d(a_i, b_j), marginals 1/n and 1/m."""
    n, m = a.size, b.size
    cost = arc(a[:, None], b[None, :], period).ravel()
    rows = np.kron(np.eye(n), np.ones((1, m)))
    columns = np.kron(np.ones((1, n)), np.eye(m))
    constraints = np.vstack([rows, columns])
    marginals = np.concatenate([np.full(n, 1 / n), np.full(m, 1 / m)])
    result = linprog(cost, A_eq=constraints, b_eq=marginals, bounds=(0, None), method="highs")
    assert result.success
    return float(result.fun)


# ---------------------------------------------------------------- line


@settings(max_examples=20)
@given(st.lists(values, min_size=1, max_size=30), st.lists(values, min_size=1, max_size=30))
def test_line_matches_scipy(a: list[float], b: list[float]) -> None:
    expected = wasserstein_distance(a, b)
    assert wasserstein_line(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert wasserstein_line(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_line_of_a_shift_is_the_shift() -> None:
    sample = np.random.default_rng(0).normal(size=50)
    assert wasserstein_line(sample, sample + 0.75) == pytest.approx(0.75)
    assert wasserstein_line(sample, sample) == 0.0


# ---------------------------------------------------------------- circle


@settings(max_examples=20)
@given(
    st.lists(angles, min_size=1, max_size=6),
    st.lists(angles, min_size=1, max_size=6),
    st.sampled_from([TWO_PI, 1.0, 360.0]),
)
def test_circle_matches_the_transport_linear_programme(
    a: list[float], b: list[float], period: float
) -> None:
    first, second = np.array(a), np.array(b)
    expected = circle_by_linear_programme(first, second, period)
    got = wasserstein_circle(first, second, period=period)
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert 0.0 <= got <= period / 2 + 1e-12


@given(angles, angles)
def test_circle_between_point_masses_is_the_arc(theta1: float, theta2: float) -> None:
    expected = float(arc(np.array(theta1), np.array(theta2), TWO_PI))
    assert wasserstein_circle([theta1], [theta2]) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=15)
@given(st.lists(angles, min_size=1, max_size=20), st.lists(angles, min_size=1, max_size=20), angles)
def test_circle_is_rotation_invariant_and_below_the_line(
    a: list[float], b: list[float], rotation: float
) -> None:
    first, second = np.array(a), np.array(b)
    distance = wasserstein_circle(first, second)
    assert wasserstein_circle(first + rotation, second + rotation) == pytest.approx(
        distance, abs=1e-9
    )
    assert wasserstein_circle(second, first) == pytest.approx(distance, abs=1e-12)
    wrapped_line = wasserstein_line(np.mod(first, TWO_PI), np.mod(second, TWO_PI))
    assert distance <= wrapped_line + 1e-9


def test_circle_of_half_turn_shifted_uniform_grid_matches_closed_form() -> None:
    # n evenly spaced atoms against the same atoms turned by half a spacing:
    # every atom moves half a spacing, W1 = P / (2n).
    n = 12
    grid = np.arange(n) * TWO_PI / n
    assert wasserstein_circle(grid, grid + math.pi / n) == pytest.approx(math.pi / n)


# ---------------------------------------------------------------- to a law


def test_to_law_small_for_a_sample_of_the_law() -> None:
    rng = np.random.default_rng(1)
    law = UniformLaw(-math.pi, math.pi)
    sample = law.sample(rng, 20_000)
    assert wasserstein_to_law(sample, law.cdf) < 0.05
    assert wasserstein_to_law(sample, law, period=TWO_PI) < 0.05
    # a shifted sample is about the shift away on the line
    assert wasserstein_to_law(sample + 1.0, law) == pytest.approx(1.0, abs=0.05)


def test_to_law_of_a_point_mass_is_the_mean_distance() -> None:
    sample = np.random.default_rng(2).uniform(-math.pi, math.pi, 20_000)
    on_line = wasserstein_to_law(sample, DeltaLaw(5.0))
    assert on_line == pytest.approx(np.mean(np.abs(sample - 5.0)), abs=1e-3)
    assert on_line > 4.0
    on_circle = wasserstein_to_law(sample, DeltaLaw(3.0), period=TWO_PI)
    assert on_circle == pytest.approx(np.mean(arc(sample, np.array(3.0), TWO_PI)), abs=1e-3)
    assert on_circle == pytest.approx(math.pi / 2, abs=0.05)


def test_to_law_wraps_a_law_given_off_the_origin() -> None:
    # a quarter arc just below the cut at -π, against a sample of it turned by a whole turn
    rng = np.random.default_rng(3)
    law = UniformLaw(-math.pi - 0.5, -math.pi + 1.0)
    sample = law.sample(rng, 2_000) + 3 * TWO_PI
    assert wasserstein_to_law(sample, law, period=TWO_PI) < 0.05
    exact = wasserstein_circle(sample, law.sample(rng, 200_000))
    assert wasserstein_to_law(sample, law, period=TWO_PI) == pytest.approx(exact, abs=5e-3)


def test_to_law_agrees_with_exact_distance_to_a_large_sample() -> None:
    rng = np.random.default_rng(4)
    law = MixtureLaw((NormalLaw(0.0, 1.0), UniformLaw(3.0, 5.0)), (0.5, 0.5))
    sample = NormalLaw(0.5, 1.5).sample(rng, 500)
    reference = law.sample(rng, 400_000)
    assert wasserstein_to_law(sample, law) == pytest.approx(
        wasserstein_line(sample, reference), abs=0.01
    )
    assert wasserstein_to_law(sample, law, period=TWO_PI) == pytest.approx(
        wasserstein_circle(sample, reference), abs=0.01
    )


def test_to_law_accepts_a_cdf_already_on_the_circle() -> None:
    sample = np.array([0.25, 0.75])

    def uniform_on_unit_circle(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0)

    # F_emp − F on [0, 1] is −t, 1/2 − t, 1 − t; the median shift makes W1 = 1/8.
    assert wasserstein_to_law(sample, uniform_on_unit_circle, period=1.0) == pytest.approx(0.125)
    assert wasserstein_to_law(sample, uniform_on_unit_circle) == pytest.approx(0.125)


def test_to_law_is_zero_for_a_point_mass_on_the_sample() -> None:
    assert wasserstein_to_law([2.0, 2.0], DeltaLaw(2.0)) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("a", "match"),
    [
        ([], "empty"),
        ([1.0, math.nan], "NaN or infinite"),
        ([1.0, math.inf], "NaN or infinite"),
        ([[1.0, 2.0]], "1-D"),
        (3.0, "1-D"),
    ],
)
def test_bad_samples_are_named(a: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        wasserstein_line(a, [0.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        wasserstein_circle([0.0], a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        wasserstein_to_law(a, UniformLaw(0.0, 1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize("period", [0.0, -1.0, math.inf, math.nan, True, "one"])
def test_bad_period_is_named(period: object) -> None:
    with pytest.raises(ValueError, match="period"):
        wasserstein_circle([0.0], [1.0], period=period)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period"):
        wasserstein_to_law([0.0], UniformLaw(0.0, 1.0), period=period)  # type: ignore[arg-type]


def test_bad_cdf_and_grid_are_named() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        wasserstein_to_law([0.5], lambda x: x)
    with pytest.raises(ValueError, match="vectorised"):
        wasserstein_to_law([0.5], lambda x: 0.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        wasserstein_to_law([0.5], lambda x: np.where((x > 0) & (x < 1), 1.0 - x, 1.0 * (x >= 1)))
    with pytest.raises(ValueError, match="tend to"):
        wasserstein_to_law([0.5], lambda x: np.full_like(x, 0.5))
    with pytest.raises(TypeError, match="cdf"):
        wasserstein_to_law([0.5], 3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grid"):
        wasserstein_to_law([0.5], UniformLaw(0.0, 1.0), grid=1)


# ---------------------------------------------------------------- invariance


def quarter_turn_average(images: Array) -> Array:
    """The mean of an image over the group C4: exactly invariant to quarter turns."""
    turns = [jnp.rot90(images, k, axes=(1, 2)) for k in range(4)]
    return sum(turns[1:], turns[0]) / 4


def some_images(seed: int = 0, batch: int = 6, size: int = 8) -> Array:
    return jax.random.uniform(jax.random.key(seed), (batch, size, size, 2))


def test_group_average_is_invariant_to_quarter_turns() -> None:
    images = some_images()
    family = Affine(("rotation",), method="nearest")
    eta = jnp.array([[0.0], [1.0], [2.0], [3.0], [-1.0], [5.0]]) * (math.pi / 2)
    report = prototype_invariance(quarter_turn_average, images, family, eta)
    assert report.relative == pytest.approx(0.0, abs=1e-10)
    assert report.identity_baseline > 0.5
    np.testing.assert_allclose(report.per_example, 0.0, atol=1e-10)
    # the same with the discrete group, η = group indices
    indices = jnp.array([[0], [1], [2], [3], [3], [1]])
    discrete = prototype_invariance(quarter_turn_average, images, CyclicRotation(4), indices)
    assert discrete.relative == pytest.approx(0.0, abs=1e-10)
    assert discrete.identity_baseline == pytest.approx(report.identity_baseline, rel=1e-6)


def test_identity_prototype_scores_the_baseline() -> None:
    images = some_images(1)
    family = transform_family(["rotation", "tx"])
    eta = jax.random.uniform(jax.random.key(2), (6, 2), minval=-0.5, maxval=0.5)
    report = prototype_invariance(lambda x: x, images, family, eta)
    assert report.relative == pytest.approx(report.identity_baseline, rel=1e-6)
    moved = family.apply(images, eta)
    expected = float(jnp.mean((images - moved) ** 2) / jnp.var(images))
    assert report.relative == pytest.approx(expected, rel=1e-5)
    assert float(np.mean(report.per_example)) == pytest.approx(report.relative, rel=1e-5)
    assert report.per_example.shape == (6,)
    assert report.mean_squared_difference == pytest.approx(
        report.relative * report.data_variance, rel=1e-6
    )


def test_constant_prototype_is_invariant_and_report_is_plain() -> None:
    images = some_images(3)
    family = transform_family(["tx"])
    eta = jnp.full((6, 1), 0.3)
    report = prototype_invariance(lambda x: jnp.full_like(x, 0.5), images, family, eta)
    assert isinstance(report, InvarianceReport)
    assert report.relative == 0.0
    as_dict = report.to_dict()
    assert set(as_dict) == {
        "mean_squared_difference",
        "data_variance",
        "relative",
        "identity_baseline",
        "per_example",
    }
    assert all(type(v) is float for v in as_dict["per_example"])  # type: ignore[union-attr]
    assert type(as_dict["relative"]) is float


def test_invariance_bad_input_is_named() -> None:
    images = some_images()
    family = transform_family(["rotation"])
    eta = jnp.zeros((6, 1))
    with pytest.raises(ValueError, match="row"):
        prototype_invariance(lambda x: x, images, family, jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match="column"):
        prototype_invariance(lambda x: x, images, family, jnp.zeros((6, 2)))
    with pytest.raises(ValueError, match="shape"):
        prototype_invariance(lambda x: x, images, family, jnp.zeros(6))
    with pytest.raises(ValueError, match="rank 4"):
        prototype_invariance(lambda x: x, images[0], family, eta)
    with pytest.raises(ValueError, match="prototype must return"):
        prototype_invariance(lambda x: x[..., :1], images, family, eta)
    with pytest.raises(ValueError, match="NaN"):
        prototype_invariance(lambda x: x * jnp.nan, images, family, eta)
    with pytest.raises(ValueError, match="zero variance"):
        prototype_invariance(lambda x: x, jnp.ones((6, 8, 8, 2)), family, eta)
    with pytest.raises(ValueError, match="NaN"):
        prototype_invariance(lambda x: x, images, family, eta.at[0, 0].set(jnp.nan))
