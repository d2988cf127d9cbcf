"""Disentanglement metrics against oracles whose answer is known.

Ground truth: five discrete factors with 3, 6, 8, 8 and 8 levels drawn
independently and uniformly. Three codes of them:

- ``perm``: the standardised factors, permuted and rescaled — disentangled,
  every metric near its maximum;
- ``rotation``: the standardised factors mixed by a random rotation — every
  factor spread over every dimension, every metric well below ``perm``;
- ``noise``: independent standard normals — nothing about the factors, every
  metric at its floor (0, or chance 1 / f for the two classification scores).

Besides these, the mutual information and the MIG are checked against a
brute-force count over small discrete tables (and against scikit-learn's
``mutual_info_score``, which disentanglement_lib calls), the DCI and modularity
formulas against hand-computed cases, and the invariances that the
definitions imply (permutation of code dimensions, positive rescaling) by
Hypothesis.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import entropy as scipy_entropy
from scipy.stats import special_ortho_group

from invppl.metrics import (
    beta_vae_score,
    dci,
    discrete_entropy,
    discrete_mutual_information,
    factor_vae_score,
    histogram_discretize,
    modularity,
    mutual_information_gap,
    sap_score,
)
from invppl.metrics.disentanglement.predictors import _weighted_score

LEVELS = np.array([3, 6, 8, 8, 8])
NUM_FACTORS = LEVELS.size
PERMUTATION = np.array([2, 0, 4, 1, 3])
SCALES = np.array([0.5, 3.0, 1.7, 0.9, 2.2])
ROTATION = special_ortho_group.rvs(NUM_FACTORS, random_state=1)

Representation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def draw_factors(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([rng.integers(levels, size=n) for levels in LEVELS], axis=1)


def standardise(factors: np.ndarray) -> np.ndarray:
    return (factors - (LEVELS - 1) / 2) / np.sqrt((LEVELS**2 - 1) / 12)


REPRESENTATIONS: dict[str, Representation] = {
    "perm": lambda f, rng: standardise(f)[:, PERMUTATION] * SCALES,
    "rotation": lambda f, rng: standardise(f) @ ROTATION.T,
    "noise": lambda f, rng: rng.normal(size=(f.shape[0], NUM_FACTORS)),
}


def group_sampler(representation: Representation):
    """A GroupSampler over the oracle factors: each group shares factor k's value."""

    def sampler(seed: int, factor: int, num_groups: int, group_size: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        factors = draw_factors(rng, num_groups * group_size).reshape(num_groups, group_size, -1)
        factors[:, :, factor] = factors[:, :1, factor]
        codes = representation(factors.reshape(-1, NUM_FACTORS), rng)
        return codes.reshape(num_groups, group_size, -1)

    return sampler


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    """Every metric on every oracle code (2,000 examples; 400 training, 300 evaluation points)."""
    factors = draw_factors(np.random.default_rng(0), 2000)
    table = {}
    for name, representation in REPRESENTATIONS.items():
        codes = representation(factors, np.random.default_rng(1))
        boosted = dci(codes[:1200], factors[:1200], seed=0, num_trees=20)
        lasso = dci(codes, factors, seed=0, predictor="lasso")
        sampler = group_sampler(representation)
        counts = {"num_train": 400, "num_eval": 300, "batch_size": 32}
        table[name] = {
            "mig": mutual_information_gap(codes, factors).score,
            "modularity": modularity(codes, factors).score,
            "sap": sap_score(codes, factors, seed=0, continuous_factors=True).score,
            "dci_d": boosted.disentanglement,
            "dci_c": boosted.completeness,
            "dci_i": boosted.informativeness_test,
            "lasso_d": lasso.disentanglement,
            "lasso_c": lasso.completeness,
            "beta_vae": beta_vae_score(sampler, NUM_FACTORS, seed=0, **counts).eval_accuracy,
            "factor_vae": factor_vae_score(
                sampler, NUM_FACTORS, seed=0, num_variance_estimate=2000, **counts
            ).eval_accuracy,
        }
    return table


def test_a_permuted_rescaled_copy_of_the_factors_scores_near_one(scores) -> None:
    perm = scores["perm"]
    for metric in ("mig", "dci_d", "dci_c", "dci_i", "lasso_d", "lasso_c", "sap"):
        assert perm[metric] > 0.95, metric
    assert perm["modularity"] > 0.98
    assert perm["beta_vae"] > 0.97
    assert perm["factor_vae"] > 0.97


def test_a_random_rotation_of_the_factors_scores_low(scores) -> None:
    rotation, perm = scores["rotation"], scores["perm"]
    assert rotation["mig"] < 0.2
    assert rotation["sap"] < 0.3
    for metric in ("dci_d", "dci_c", "lasso_d", "lasso_c"):
        assert rotation[metric] < 0.4, metric
    # the lasso reads every factor off the rotated code linearly: informative, not disentangled
    # modularity, BetaVAE and FactorVAE are known to be lenient with dense mixtures
    for metric in ("modularity", "beta_vae", "factor_vae"):
        assert rotation[metric] < perm[metric] - 0.15, metric


def test_an_independent_noise_code_scores_at_the_floor(scores) -> None:
    noise = scores["noise"]
    assert noise["mig"] < 0.02
    assert noise["sap"] < 0.02
    assert noise["dci_d"] < 0.1
    assert noise["dci_c"] < 0.1
    # 300 evaluation points: a classifier that learns nothing scores 1/5 ± 0.023
    for metric in ("beta_vae", "factor_vae"):
        assert abs(noise[metric] - 1 / NUM_FACTORS) < 4 * math.sqrt(0.2 * 0.8 / 300), metric
    # modularity ignores informativeness: noise scores about one half here, below the rotation
    assert noise["modularity"] < scores["rotation"]["modularity"]


# ------------------------------------------------ mutual information by brute-force counting


def brute_force_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    n = len(a)
    pa, pb, pab = (
        Counter(a.tolist()),
        Counter(b.tolist()),
        Counter(zip(a.tolist(), b.tolist(), strict=True)),
    )
    return sum(
        (count / n) * math.log((count / n) / ((pa[x] / n) * (pb[y] / n)))
        for (x, y), count in pab.items()
    )


small_tables = st.integers(4, 14).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.int64, (n, 3), elements=st.integers(0, 3)),
        hnp.arrays(np.int64, (n, 2), elements=st.integers(0, 2)),
    )
)


@given(small_tables)
def test_mutual_information_matches_a_brute_force_count(table) -> None:
    from sklearn.metrics import mutual_info_score

    codes, factors = table
    info = discrete_mutual_information(codes, factors)
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            expected = brute_force_mutual_information(codes[:, i], factors[:, j])
            assert info[i, j] == pytest.approx(expected, abs=1e-12)
            assert info[i, j] == pytest.approx(
                mutual_info_score(factors[:, j], codes[:, i]), abs=1e-10
            )
    entropy = discrete_entropy(factors)
    for j in range(factors.shape[1]):
        counts = np.unique(factors[:, j], return_counts=True)[1] / factors.shape[0]
        assert entropy[j] == pytest.approx(-np.sum(counts * np.log(counts)), abs=1e-12)


@given(small_tables)
def test_mig_of_small_integer_codes_matches_a_hand_computation(table) -> None:
    codes, factors = table
    varying = [j for j in range(factors.shape[1]) if np.unique(factors[:, j]).size > 1]
    if not varying:
        return
    factors = factors[:, varying]
    # integer codes with at most 4 values keep their partition under 20 histogram bins
    result = mutual_information_gap(codes.astype(np.float64), factors)
    gaps = []
    for j in range(factors.shape[1]):
        info = sorted(
            (brute_force_mutual_information(codes[:, i], factors[:, j]) for i in range(3)),
            reverse=True,
        )
        gaps.append(
            (info[0] - info[1]) / brute_force_mutual_information(factors[:, j], factors[:, j])
        )
    assert result.per_factor == pytest.approx(gaps, abs=1e-12)
    assert result.score == pytest.approx(np.mean(gaps), abs=1e-12)


def test_mig_of_a_known_table() -> None:
    # f0 uniform on 4 values, f1 a fair bit, every combination twice: independent
    factors = np.tile(np.indices((4, 2)).reshape(2, -1).T, (2, 1))
    # c0 holds f0's parity (log 2 nats of f0's log 4), c1 is f1 exactly, c2 is f0
    codes = np.stack([factors[:, 0] % 2, factors[:, 1], factors[:, 0]], axis=1).astype(float)
    result = mutual_information_gap(codes, factors)
    log2 = math.log(2)
    assert result.entropy == pytest.approx([2 * log2, log2])
    assert result.mutual_information == pytest.approx(
        np.array([[log2, 0.0], [0.0, log2], [2 * log2, 0.0]]), abs=1e-12
    )
    # f0: (log 4 − log 2) / log 4 = 1/2; f1: (log 2 − 0) / log 2 = 1
    assert result.per_factor == pytest.approx([0.5, 1.0])
    assert result.score == pytest.approx(0.75)


def test_histogram_discretize_follows_numpy_histogram_edges() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(size=(50, 2)), np.full((50, 1), 7.0)], axis=1)
    bins = histogram_discretize(values, num_bins=5)
    for column in range(2):
        edges = np.linspace(values[:, column].min(), values[:, column].max(), 6)
        for value, index in zip(values[:, column], bins[:, column], strict=True):
            expected = 4 if value == edges[-1] else int(np.searchsorted(edges, value, "right") - 1)
            assert index == expected
    assert set(bins[:, 2].tolist()) == {int(bins[0, 2])}  # a constant column is one bin
    assert bins.min() >= 0
    assert bins.max() <= 4


def test_modularity_of_a_known_table() -> None:
    # two fair independent bits; c0 = f0 (one factor), c1 = 2 f0 + f1 (both equally)
    factors = np.tile(np.indices((2, 2)).reshape(2, -1).T, (3, 1))
    codes = np.stack([factors[:, 0], 2 * factors[:, 0] + factors[:, 1]], axis=1).astype(float)
    result = modularity(codes, factors)
    # c0: squared MIs (a, 0), δ = 0; c1: (a, a), δ = (2a − a) / (a · 1) = 1
    assert result.per_code == pytest.approx([1.0, 0.0])
    assert result.score == pytest.approx(0.5)


def test_dci_scores_follow_disentanglement_lib_entropies() -> None:
    importance = np.array([[0.5, 0.1, 0.0], [0.0, 0.3, 0.3], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # disentanglement_lib: 1 − scipy entropy (base f) of each row + 1e-11, weighted by row share
    per_code = 1 - scipy_entropy(importance.T + 1e-11, base=importance.shape[1])
    expected_d = np.sum(per_code * importance.sum(axis=1) / importance.sum())
    per_factor = 1 - scipy_entropy(importance + 1e-11, base=importance.shape[0])
    expected_c = np.sum(per_factor * importance.sum(axis=0) / importance.sum())
    assert _weighted_score(importance) == pytest.approx(expected_d, abs=1e-12)
    assert _weighted_score(importance.T) == pytest.approx(expected_c, abs=1e-12)


def test_sap_on_binary_factors_is_one_minus_chance_for_a_perfect_code() -> None:
    rng = np.random.default_rng(4)
    factors = rng.integers(2, size=(900, 2))
    codes = factors[:, ::-1] * np.array([5.0, 0.2]) + 0.01 * rng.normal(size=(900, 2))
    result = sap_score(codes, factors, seed=0)
    assert result.converged
    # own dimension: accuracy 1; the other: a balanced classifier at chance, about 1/2
    assert result.score_matrix[[1, 0], [0, 1]] == pytest.approx([1.0, 1.0])
    assert result.score == pytest.approx(0.5, abs=0.1)


# ------------------------------------------------ invariances the definitions imply


codes_and_factors = st.integers(0, 2**16).map(
    lambda seed: (
        np.random.default_rng(seed).normal(size=(120, 4)),
        draw_factors(np.random.default_rng(seed + 1), 120)[:, :3],
    )
)


@given(
    codes_and_factors,
    st.permutations(range(4)),
    st.lists(st.integers(-3, 3), min_size=4, max_size=4),
)
def test_information_metrics_ignore_permutation_and_rescaling_of_codes(data, order, powers) -> None:
    codes, factors = data
    codes[:, 0] += factors[:, 0]  # some information to move around
    # powers of two rescale exactly in floating point, so the histogram bins are unchanged
    moved = codes[:, list(order)] * 2.0 ** np.array(powers)
    assert (
        mutual_information_gap(moved, factors).score == mutual_information_gap(codes, factors).score
    )
    assert modularity(moved, factors).score == pytest.approx(
        modularity(codes, factors).score, abs=1e-12
    )


@given(
    codes_and_factors,
    st.permutations(range(4)),
    st.lists(st.floats(0.01, 100.0) | st.floats(-100.0, -0.01), min_size=4, max_size=4),
)
def test_continuous_sap_ignores_permutation_and_any_rescaling(data, order, scales) -> None:
    codes, factors = data
    codes[:, 1] += factors[:, 2]
    moved = codes[:, list(order)] * np.array(scales)
    before = sap_score(codes, factors, seed=0, continuous_factors=True)
    after = sap_score(moved, factors, seed=0, continuous_factors=True)
    assert after.score == pytest.approx(before.score, abs=1e-9)
    assert after.score_matrix == pytest.approx(before.score_matrix[list(order)], abs=1e-9)


def test_factor_vae_ignores_permutation_and_rescaling_of_codes() -> None:
    base = REPRESENTATIONS["rotation"]
    order, scales = np.array([3, 1, 4, 0, 2]), np.array([1.0, 7.0, 0.5, 2.0, 30.0])
    moved = lambda f, rng: base(f, rng)[:, order] * scales
    kwargs = {"seed": 5, "num_train": 200, "num_eval": 100, "num_variance_estimate": 500}
    before = factor_vae_score(group_sampler(base), NUM_FACTORS, **kwargs)
    after = factor_vae_score(group_sampler(moved), NUM_FACTORS, **kwargs)
    assert after.eval_accuracy == before.eval_accuracy
    assert after.train_accuracy == before.train_accuracy
    np.testing.assert_array_equal(after.votes, before.votes[order])


def test_factor_vae_prunes_collapsed_dimensions() -> None:
    collapsed = lambda f, rng: np.concatenate(
        [standardise(f), np.full((f.shape[0], 2), 3.0) + 1e-4 * rng.normal(size=(f.shape[0], 2))],
        axis=1,
    )
    kwargs = {"seed": 0, "num_train": 100, "num_eval": 50, "num_variance_estimate": 300}
    result = factor_vae_score(group_sampler(collapsed), NUM_FACTORS, **kwargs)
    assert result.num_active_dims == NUM_FACTORS
    assert result.votes[NUM_FACTORS:].sum() == 0
    assert result.eval_accuracy > 0.95
    dead = factor_vae_score(group_sampler(lambda f, rng: 0 * standardise(f)), NUM_FACTORS, **kwargs)
    assert (dead.eval_accuracy, dead.num_active_dims) == (0.0, 0)


def test_seeded_scores_are_deterministic() -> None:
    sampler = group_sampler(REPRESENTATIONS["noise"])
    kwargs = {"seed": 9, "num_train": 60, "num_eval": 30, "batch_size": 8}
    assert beta_vae_score(sampler, NUM_FACTORS, **kwargs) == beta_vae_score(
        sampler, NUM_FACTORS, **kwargs
    )
    codes = np.random.default_rng(0).normal(size=(90, 3))
    factors = draw_factors(np.random.default_rng(1), 90)[:, :2]
    first, second = (
        dci(codes, factors, seed=3, num_trees=5),
        dci(codes, factors, seed=3, num_trees=5),
    )
    np.testing.assert_array_equal(first.importance, second.importance)


# ------------------------------------------------ bad input


GOOD_CODES = np.random.default_rng(0).normal(size=(30, 3))
GOOD_FACTORS = draw_factors(np.random.default_rng(1), 30)[:, :2]
TABLE_METRICS = {
    "mig": lambda c, f: mutual_information_gap(c, f),
    "modularity": lambda c, f: modularity(c, f),
    "dci": lambda c, f: dci(c, f, seed=0, num_trees=2),
    "sap": lambda c, f: sap_score(c, f, seed=0),
}


@pytest.mark.parametrize("metric", TABLE_METRICS)
@pytest.mark.parametrize(
    ("codes", "factors", "message"),
    [
        (GOOD_CODES[:20], GOOD_FACTORS, "factors has 30 rows but codes has 20"),
        (GOOD_CODES[:, 0], GOOD_FACTORS, r"codes must have shape \(n, latent_dim\)"),
        (GOOD_CODES, GOOD_FACTORS[:, 0], r"factors must have shape \(n, num_factors\)"),
        (np.where(np.eye(30, 3) > 0, np.nan, GOOD_CODES), GOOD_FACTORS, "3 NaN"),
        (GOOD_CODES, GOOD_FACTORS + 0.5, "integer dtype.*histogram_discretize"),
        (GOOD_CODES[:1], GOOD_FACTORS[:1], "need at least 2 examples"),
        (GOOD_CODES.astype(complex), GOOD_FACTORS, "real numbers"),
    ],
)
def test_table_metrics_reject_bad_input(metric, codes, factors, message) -> None:
    with pytest.raises(ValueError, match=message):
        TABLE_METRICS[metric](codes, factors)


def test_metric_specific_bad_input() -> None:
    one_dim = GOOD_CODES[:, :1]
    with pytest.raises(ValueError, match="at least 2"):
        mutual_information_gap(one_dim, GOOD_FACTORS)
    with pytest.raises(ValueError, match="at least 2"):
        sap_score(one_dim, GOOD_FACTORS, seed=0)
    constant = GOOD_FACTORS.copy()
    constant[:, 1] = 4
    with pytest.raises(ValueError, match="factor 1 takes a single value"):
        mutual_information_gap(GOOD_CODES, constant)
    with pytest.raises(ValueError, match="factor 1 takes a single value in the training part"):
        dci(GOOD_CODES, constant, seed=0)
    with pytest.raises(ValueError, match="at least 2 factor"):
        modularity(GOOD_CODES, GOOD_FACTORS[:, :1])
    with pytest.raises(ValueError, match="num_bins must be at least 2"):
        mutual_information_gap(GOOD_CODES, GOOD_FACTORS, num_bins=1)
    with pytest.raises(ValueError, match="predictor must be"):
        dci(GOOD_CODES, GOOD_FACTORS, seed=0, predictor="forest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        sap_score(GOOD_CODES, GOOD_FACTORS, seed=0, test_fraction=1.5)
    with pytest.raises(ValueError, match="too few examples to split"):
        dci(GOOD_CODES[:2], GOOD_FACTORS[:2], seed=0)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        dci(GOOD_CODES, GOOD_FACTORS, seed=0, predictor="lasso", alpha=0.0)


def test_samplers_are_checked() -> None:
    good = group_sampler(REPRESENTATIONS["perm"])
    small = {"seed": 0, "num_train": 10, "num_eval": 5, "batch_size": 4}
    with pytest.raises(ValueError, match="num_factors must be at least 2"):
        beta_vae_score(good, 1, **small)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        factor_vae_score(good, NUM_FACTORS, **{**small, "batch_size": 1})
    flat = lambda seed, k, g, s: np.zeros((g * s, 5))
    with pytest.raises(ValueError, match=r"returned shape \(\d+, 5\); expected codes of shape"):
        beta_vae_score(flat, NUM_FACTORS, **small)
    nan = lambda seed, k, g, s: np.full((g, s, 5), np.nan)
    with pytest.raises(ValueError, match="NaN or infinite codes"):
        factor_vae_score(nan, NUM_FACTORS, **small, num_variance_estimate=10)
    growing = lambda seed, k, g, s: np.zeros((g, s, 5 + k))
    with pytest.raises(ValueError, match="expected codes of shape"):
        beta_vae_score(growing, NUM_FACTORS, **small)


def test_building_blocks_name_their_argument() -> None:
    with pytest.raises(ValueError, match="codes must have an integer dtype"):
        discrete_mutual_information(GOOD_CODES, GOOD_FACTORS)
    with pytest.raises(ValueError, match=r"codes must have shape \(n, num_factors\)"):
        discrete_mutual_information(np.float64(1.0), GOOD_FACTORS)
    with pytest.raises(ValueError, match="factors is empty"):
        discrete_entropy(np.zeros((0, 2), dtype=int))
    with pytest.raises(ValueError, match="values contains 1 NaN"):
        histogram_discretize(np.array([[0.0], [np.nan]]))
