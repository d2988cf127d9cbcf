"""Paired shapes: which factors differ (by brute-force count), how much, the correlated law
(by Monte Carlo against the requested ρ), the fixed-factor groups, seeds, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from invppl.datasets import (
    DEFAULT_RANGES,
    SHAPES,
    make_paired_shapes,
    render_sprites,
    shape_factor_space,
    shapes_with_fixed_factor,
)

SMALL = {"size": 12, "supersample": 1}


def count_differences(first: np.ndarray, second: np.ndarray) -> list[int]:
    return [
        sum(int(a != b) for a, b in zip(r1, r2, strict=True))
        for r1, r2 in zip(first, second, strict=True)
    ]


@pytest.mark.parametrize("mode", ["exact", "approximate", "correlated"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_exactly_k_factor_classes_differ(mode: str, k: int) -> None:
    pairs = make_paired_shapes(200, seed=k, k=k, mode=mode, **SMALL)
    assert count_differences(pairs.classes1, pairs.classes2) == [k] * 200
    np.testing.assert_array_equal(pairs.changed, pairs.classes1 != pairs.classes2)
    assert pairs.k.tolist() == [k] * 200
    # every factor gets changed at some point: the k are chosen among all of them
    assert pairs.changed.any(axis=0).all()


def test_uniform_k_covers_one_to_f_minus_one() -> None:
    pairs = make_paired_shapes(600, seed=0, k="uniform", **SMALL)
    assert count_differences(pairs.classes1, pairs.classes2) == pairs.k.tolist()
    counts = np.bincount(pairs.k, minlength=6)
    assert counts[0] == 0
    assert counts[5] == 0
    # 600 pairs over 4 values: 150 each, binomial sd ≈ 10.6
    assert np.all(np.abs(counts[1:5] - 150) < 45)


def test_exact_pairs_share_values_and_render_their_factors() -> None:
    pairs = make_paired_shapes(40, seed=1, k=2, **SMALL)
    shared = ~pairs.changed
    np.testing.assert_array_equal(pairs.factors1[shared], pairs.factors2[shared])
    assert np.all(pairs.factors1[pairs.changed] != pairs.factors2[pairs.changed])
    labels, scale, rotation, x, y = pairs.factors2.T
    again = render_sprites(labels.astype(np.int64), scale, rotation, x, y, **SMALL)
    np.testing.assert_array_equal(pairs.images2, again)
    assert pairs.factor_names == ("shape", "scale", "rotation", "pos_x", "pos_y")
    # the values are the grid of each class
    np.testing.assert_allclose(pairs.factors1, pairs.space.values(pairs.classes1), atol=1e-6)


def test_approximate_pairs_move_by_a_step_and_jitter_within_tolerance() -> None:
    tolerance = 0.3
    pairs = make_paired_shapes(
        300, seed=2, k=2, mode="approximate", tolerance=tolerance, step=2, **SMALL
    )
    spacing = np.array([np.nan] + [grid[1] - grid[0] for grid in pairs.space.grids[1:]])
    move = np.abs(pairs.classes2.astype(int) - pairs.classes1)
    # changed continuous factors move by exactly two classes; the shape to another shape
    continuous = pairs.changed[:, 1:]
    assert np.all(move[:, 1:][continuous] == 2)
    assert np.all(move[:, 0][pairs.changed[:, 0]] >= 1)
    # shared factors: the same class, a value within tolerance · spacing, and some jitter
    gap = np.abs(pairs.factors2 - pairs.factors1)[:, 1:]
    shared = ~continuous
    assert np.all(gap[shared] <= (tolerance * spacing[1:] + 1e-6)[None, :].repeat(300, 0)[shared])
    assert np.mean(gap[shared] > 1e-6) > 0.8
    np.testing.assert_array_equal(
        pairs.factors1[:, 0][~pairs.changed[:, 0]], pairs.factors2[:, 0][~pairs.changed[:, 0]]
    )
    # and the values stay in range
    for j, name in enumerate(pairs.factor_names[1:], start=1):
        low, high = DEFAULT_RANGES[name]
        assert pairs.factors2[:, j].min() >= low - 1e-6
        assert pairs.factors2[:, j].max() <= high + 1e-6


@pytest.mark.parametrize("rho", [0.8, -0.5])
def test_correlated_law_reaches_the_requested_correlation(rho: float) -> None:
    space = shape_factor_space(correlation=rho)
    n = 20_000
    groups = shapes_with_fixed_factor(n, 1, 0, seed=3, space=space, size=4, supersample=1)
    classes = groups.classes[:, 0].astype(float)
    names = space.names
    standard_error = (1 - rho**2) / math.sqrt(n)
    for a, b in (("pos_x", "pos_y"), ("shape", "scale")):
        measured = np.corrcoef(classes[:, names.index(a)], classes[:, names.index(b)])[0, 1]
        assert abs(measured - rho) < 5 * standard_error, (a, b, measured)
    # the others stay independent and the marginals uniform
    assert abs(
        np.corrcoef(classes[:, names.index("rotation")], classes[:, names.index("pos_x")])[0, 1]
    ) < 5 / math.sqrt(n)
    counts = np.bincount(classes[:, names.index("pos_y")].astype(int), minlength=8)
    assert np.all(np.abs(counts - n / 8) < 5 * math.sqrt(n / 8))


def test_correlated_pairs_keep_the_correlated_law_in_the_first_image() -> None:
    pairs = make_paired_shapes(4000, seed=4, mode="correlated", size=4, supersample=1)
    assert pairs.space.correlation == 0.8
    measured = np.corrcoef(pairs.classes1[:, 3], pairs.classes1[:, 4])[0, 1]
    assert abs(measured - 0.8) < 5 * (1 - 0.64) / math.sqrt(4000)
    assert count_differences(pairs.classes1, pairs.classes2) == [1] * 4000


def test_fixed_factor_groups_share_exactly_that_factor() -> None:
    groups = shapes_with_fixed_factor(30, 6, "rotation", seed=5, **SMALL)
    j = groups.factor_names.index("rotation")
    assert groups.factor == j
    assert np.all(groups.classes[:, :, j] == groups.classes[:, :1, j])
    # other factors vary within groups, and the shared one across groups
    for other in range(5):
        if other != j:
            assert np.mean(np.ptp(groups.classes[:, :, other], axis=1) > 0) > 0.5
    assert np.unique(groups.classes[:, 0, j]).size > 3
    flat = groups.factors.reshape(-1, 5)
    again = render_sprites(flat[:, 0].astype(np.int64), *flat[:, 1:].T, **SMALL)
    np.testing.assert_array_equal(groups.images.reshape(-1, 12, 12, 1), again)


def test_one_shape_drops_the_shape_factor_and_keeps_its_label() -> None:
    space = shape_factor_space(
        shapes=("heart",), levels={"rotation": 4}, ranges={"rotation": (-math.pi, math.pi)}
    )
    assert space.names == ("scale", "rotation", "pos_x", "pos_y")
    np.testing.assert_allclose(space.grids[1], [-math.pi, -math.pi / 2, 0.0, math.pi / 2])
    pairs = make_paired_shapes(5, seed=0, space=space, k=4, **SMALL)
    heart = render_sprites(np.full(5, SHAPES.index("heart")), *pairs.factors1.T, **SMALL)
    np.testing.assert_array_equal(pairs.images1, heart)


def test_same_seed_same_pairs_other_seed_other_pairs() -> None:
    first = make_paired_shapes(20, seed=7, k="uniform", mode="approximate", **SMALL)
    second = make_paired_shapes(20, seed=7, k="uniform", mode="approximate", **SMALL)
    other = make_paired_shapes(20, seed=8, k="uniform", mode="approximate", **SMALL)
    for field in (
        "images1",
        "images2",
        "factors1",
        "factors2",
        "classes1",
        "classes2",
        "changed",
        "k",
    ):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert not np.array_equal(first.classes1, other.classes1)
    a = shapes_with_fixed_factor(3, 4, 2, seed=1, **SMALL)
    b = shapes_with_fixed_factor(3, 4, 2, seed=1, **SMALL)
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 6}, ValueError, r"k must be an integer in 1\.\.5"),
        ({"k": 0}, ValueError, r"k must be an integer in 1\.\.5"),
        ({"k": 1.5}, TypeError, "k must be"),
        ({"k": "all"}, TypeError, "k must be"),
        ({"mode": "fuzzy"}, ValueError, "mode must be one of"),
        (
            {"mode": "approximate", "tolerance": 0.5},
            ValueError,
            r"tolerance must be in \[0, 0\.5\)",
        ),
        ({"mode": "approximate", "tolerance": math.nan}, ValueError, "tolerance must be finite"),
        ({"mode": "approximate", "step": 6}, ValueError, "step must be at most 5"),
        ({"n": 0}, ValueError, "n must be at least 1"),
        ({"seed": -1}, ValueError, "seed must be at least 0"),
        ({"size": 2}, ValueError, "size must be at least 4"),
        (
            {"mode": "correlated", "space": shape_factor_space()},
            ValueError,
            "use mode='correlated'",
        ),
        ({"space": shape_factor_space(correlation=0.5)}, ValueError, "use mode='correlated'"),
    ],
)
def test_pairs_reject_bad_arguments(kwargs, error, message) -> None:
    arguments = {"n": 4, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        make_paired_shapes(**arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": {"rotation": 1}}, r"levels\['rotation'\] must be at least 2"),
        ({"levels": {"colour": 3}}, "unknown factor"),
        ({"ranges": {"pos_x": (-0.9, 0.9)}}, "stays in frame only"),
        ({"ranges": {"scale": (0.0, 1.0)}}, "scales must be > 0"),
        ({"ranges": {"scale": (1.0, 0.5)}}, "low < high"),
        ({"ranges": {"rotation": (0.0, math.nan)}}, "must be finite"),
        ({"correlation": 1.0}, r"\|ρ\| ≤ 0\.9"),
        ({"correlation": 0.5, "correlated": [("pos_x", "pos_x")]}, "distinct factors"),
        ({"correlation": 0.5, "correlated": [("pos_x", "colour")]}, "distinct factors"),
        ({"shapes": ("circle",)}, "unknown shape"),
        ({"shapes": ()}, "selects no shape"),
    ],
)
def test_spaces_reject_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        shape_factor_space(**kwargs)


def test_fixed_factor_groups_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown factor 'colour'"):
        shapes_with_fixed_factor(2, 2, "colour", seed=0)
    with pytest.raises(ValueError, match="factor must be at most 4"):
        shapes_with_fixed_factor(2, 2, 5, seed=0)
    with pytest.raises(ValueError, match="group_size must be at least 1"):
        shapes_with_fixed_factor(2, 0, 1, seed=0)


def test_a_hue_factor_colours_the_shape() -> None:
    space = shape_factor_space(levels={"hue": 6})
    assert space.names[-1] == "hue"
    np.testing.assert_allclose(space.grids[-1], np.arange(6) / 6)
    pairs = make_paired_shapes(60, seed=6, k=6, space=space, **SMALL)
    assert pairs.images1.shape == (60, 12, 12, 3)
    assert count_differences(pairs.classes1, pairs.classes2) == [6] * 60
    labels, scale, rotation, x, y, hue = pairs.factors1.T
    coverage = render_sprites(labels.astype(np.int64), scale, rotation, x, y, **SMALL)
    # the six hues of the grid are red, yellow, green, cyan, blue, magenta
    colours = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]])
    expected = coverage * colours[np.rint(hue * 6).astype(int)][:, None, None, :]
    np.testing.assert_allclose(pairs.images1, expected, atol=1e-6)


def test_the_true_factors_score_one_through_the_metrics_sampler() -> None:
    from invppl.metrics import factor_vae_score, mutual_information_gap

    def sampler(seed: int, factor: int, num_groups: int, group_size: int) -> np.ndarray:
        groups = shapes_with_fixed_factor(
            num_groups, group_size, factor, seed=seed, size=4, supersample=1
        )
        return groups.classes.astype(float) * np.array([1.0, 2.0, 0.5, 3.0, 1.5])

    result = factor_vae_score(
        sampler, 5, seed=0, num_train=100, num_eval=100, num_variance_estimate=500
    )
    assert result.eval_accuracy == 1.0
    groups = shapes_with_fixed_factor(2000, 1, 0, seed=1, size=4, supersample=1)
    classes = groups.classes[:, 0]
    assert mutual_information_gap(groups.factors[:, 0], classes).score > 0.99
