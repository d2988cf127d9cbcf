"""The guide against a reference: W1, spread and coverage on exact samples of known laws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from xarray import DataTree

from invppl.diagnostics import central_interval, compare_to_reference, to_datatree, worst_examples
from invppl.transforms.support import Interval, Parameter, Periodic, Real
from tests.diagnostics import pointcloud as pc

PARAMETERS = (
    Parameter("rotation", Periodic()),
    Parameter("shift", Interval(-1.0, 2.0)),
    Parameter("scale", Real()),
)
# per example (rotation centre, its concentration, shift centre, scale centre);
# example 0 straddles the seam at ±π
LAWS = [(math.pi - 0.05, 20.0, 0.5, -1.0), (0.7, 5.0, 1.0, 3.0), (-2.0, 50.0, 0.0, 0.0)]
SHIFT_SD, SCALE_SD = 0.2, 1.5


def draws(chains: int, size: int, seed: int, sharpen: float = 1.0) -> np.ndarray:
    """``(chains, size, example, 3)`` exact draws of :data:`LAWS`; ``sharpen`` shrinks spreads."""
    rng = np.random.default_rng(seed)
    out = np.empty((chains, size, len(LAWS), 3))
    for n, (angle, kappa, shift, scale) in enumerate(LAWS):
        shape = (chains, size)
        out[..., n, 0] = pc.wrap(
            stats.vonmises.rvs(kappa * sharpen**2, loc=angle, size=shape, random_state=rng)
        )
        out[..., n, 1] = rng.normal(shift, SHIFT_SD / sharpen, size=shape)
        out[..., n, 2] = rng.normal(scale, SCALE_SD / sharpen, size=shape)
    return out


def tree(eta: np.ndarray) -> DataTree:
    return to_datatree({"eta": eta}, PARAMETERS)


@pytest.fixture(scope="module")
def reference() -> DataTree:
    return tree(draws(4, 2500, seed=0))


@pytest.fixture(scope="module")
def same_law(reference: DataTree) -> pd.DataFrame:
    return compare_to_reference(tree(draws(1, 10000, seed=1)), reference, PARAMETERS)


def test_table_layout(same_law: pd.DataFrame) -> None:
    assert same_law.index.names == ["example", "parameter"]
    assert list(same_law.index) == [(n, p.name) for n in range(len(LAWS)) for p in PARAMETERS]
    assert list(same_law.columns) == ["w1", "ref_sd", "w1_relative", "coverage_50", "coverage_90"]


def test_same_law_gives_small_w1_and_nominal_coverage(same_law: pd.DataFrame) -> None:
    assert (same_law.w1_relative < 0.05).all(), same_law
    np.testing.assert_allclose(same_law.coverage_50, 0.5, atol=0.02)
    np.testing.assert_allclose(same_law.coverage_90, 0.9, atol=0.015)


def test_reference_spread(same_law: pd.DataFrame) -> None:
    table = same_law.xs("scale", level="parameter")
    np.testing.assert_allclose(table.ref_sd, SCALE_SD, rtol=0.03)
    table = same_law.xs("shift", level="parameter")
    np.testing.assert_allclose(table.ref_sd, SHIFT_SD, rtol=0.03)
    # on the circle: √(−2 log ρ) with ρ = I1(κ)/I0(κ), the mean resultant length
    from scipy import special

    kappa = np.array([law[1] for law in LAWS])
    expected = np.sqrt(-2 * np.log(special.i1e(kappa) / special.i0e(kappa)))
    np.testing.assert_allclose(
        same_law.xs("rotation", level="parameter").ref_sd, expected, rtol=0.03
    )


def test_w1_sees_a_shift(reference: DataTree) -> None:
    shifted = draws(1, 10000, seed=2)
    shifted[..., 2] += 0.6
    shifted[..., 0] = pc.wrap(shifted[..., 0] + 0.3)  # across the seam for example 0
    table = compare_to_reference(tree(shifted), reference, PARAMETERS)
    np.testing.assert_allclose(table.xs("scale", level="parameter").w1, 0.6, atol=0.05)
    # the circular W1 of a rotated copy is the rotation (not ~2π − 0.3 across the seam)
    np.testing.assert_allclose(table.xs("rotation", level="parameter").w1, 0.3, atol=0.03)
    np.testing.assert_allclose(table.xs("shift", level="parameter").w1, 0.0, atol=0.02)


def test_over_confident_guide_under_covers(reference: DataTree) -> None:
    # spreads three times too small: the 90% interval holds ~ P(|Z| < 1.645 / 3) ≈ 0.42
    table = compare_to_reference(tree(draws(1, 10000, seed=3, sharpen=3.0)), reference, PARAMETERS)
    assert (table.coverage_90 < 0.5).all(), table
    assert (table.coverage_50 < 0.25).all()
    assert (table.w1_relative > 0.3).all()
    # a wider guide over-covers
    table = compare_to_reference(tree(draws(1, 10000, seed=4, sharpen=0.5)), reference, PARAMETERS)
    assert (table.coverage_90 > 0.97).all()


def test_mismatched_examples_or_parameters(reference: DataTree) -> None:
    guide = to_datatree({"eta": draws(1, 10, seed=5)}, PARAMETERS, examples=[0, 1, 5])
    with pytest.raises(ValueError, match="differ in example"):
        compare_to_reference(guide, reference, PARAMETERS)
    renamed = (Parameter("angle", Periodic()), *PARAMETERS[1:])
    guide = to_datatree({"eta": draws(1, 10, seed=5)}, renamed)
    with pytest.raises(ValueError, match="differ in parameter"):
        compare_to_reference(guide, reference, PARAMETERS)


# ---------------------------------------------------------------- central_interval


def test_central_interval_on_the_line() -> None:
    sample = np.random.default_rng(0).normal(2.0, 3.0, size=200001)
    low, high = central_interval(sample, 0.9)
    assert low == pytest.approx(2.0 - 1.6449 * 3.0, abs=0.05)
    assert high == pytest.approx(2.0 + 1.6449 * 3.0, abs=0.05)


@pytest.mark.parametrize("centre", [math.pi, -math.pi + 0.02, 3.0])
def test_central_interval_around_the_seam(centre: float) -> None:
    kappa = 20.0
    sample = pc.exact_sample(centre, kappa, 100000, seed=1)
    low, high = central_interval(sample, 0.9, period=2 * math.pi)
    # the exact 90% interval of VonMises(centre, κ) is centre ± its 95% quantile offset
    half = stats.vonmises.ppf(0.95, kappa)
    assert high - low == pytest.approx(2 * half, rel=0.02)
    assert pc.arc((low + high) / 2, centre) < 0.01
    # the interval holds 90% of the draws, counted on the circle
    inside = pc.arc(sample, (low + high) / 2) <= (high - low) / 2
    assert inside.mean() == pytest.approx(0.9, abs=0.005)


def test_central_interval_other_period() -> None:
    # degrees: the same law on a 360-periodic circle
    sample = np.degrees(pc.exact_sample(math.pi, 20.0, 50000, seed=2)) % 360
    low, high = central_interval(sample, 0.5, period=360.0)
    assert (high - low) == pytest.approx(2 * np.degrees(stats.vonmises.ppf(0.75, 20.0)), rel=0.03)
    assert abs((low + high) / 2 % 360 - 180) < 1


def test_central_interval_rejects_bad_prob() -> None:
    for prob in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="prob must be in"):
            central_interval(np.zeros(3), prob)


@settings(max_examples=15)
@given(
    st.floats(-10.0, 10.0),
    st.integers(-3, 3),
    st.sampled_from([0.5, 0.8, 0.9]),
)
def test_central_interval_turns_with_the_sample(shift: float, turns: int, prob: float) -> None:
    # rotating the draws rotates the interval; adding whole turns changes nothing
    sample = pc.exact_sample(0.3, 4.0, 500, seed=0)
    low, high = central_interval(sample, prob, period=2 * math.pi)
    moved_low, moved_high = central_interval(
        sample + shift + 2 * math.pi * turns, prob, period=2 * math.pi
    )
    assert moved_high - moved_low == pytest.approx(high - low, abs=1e-9)
    assert pc.arc(moved_low, low + shift) < 1e-9


# ---------------------------------------------------------------- worst_examples


def test_worst_examples_order() -> None:
    table = pd.DataFrame(
        {"w1": [0.1, 0.5, 0.3, 0.2], "w1_relative": [2.0, 0.5, 3.0, 1.0]},
        index=pd.MultiIndex.from_tuples(
            [(n, "rotation") for n in range(4)], names=["example", "parameter"]
        ),
    )
    worst = worst_examples(table, n=2)
    assert list(worst.index.get_level_values("example")) == [2, 0]
    assert list(worst_examples(table, n=10, by="w1").index.get_level_values(0)) == [1, 2, 3, 0]
    with pytest.raises(KeyError, match="no column 'khat'"):
        worst_examples(table, by="khat")
