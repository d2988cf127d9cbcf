"""Graph evaluation metrics (Correlated VAEs), against independent oracles.

Oracles: a Monte Carlo estimate from explicitly constructed correlated normal
pairs and the closed forms at ρ = ±1; a pure-Python NCRR over sorted candidate
lists with explicit mid-ranks of tie groups; the random-ranking baseline as the
exact average over every ordering of a small graph's nodes and as a Monte Carlo
average over random distance matrices; closed forms for perfect, reversed and
constant rankings; the best cluster-to-label matching by trying every
permutation; well-separated Gaussian blobs.
"""

import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.metrics import (
    NCRRResult,
    clustering_accuracy,
    expected_squared_distance,
    link_prediction_ncrr,
    spectral_clustering_accuracy,
)

Edges = list[tuple[int, int]]


def harmonic(count: int) -> float:
    return sum(1.0 / k for k in range(1, count + 1))


def random_split(rng: np.random.Generator, n: int, p_train: float, p_test: float):
    """Each unordered pair is a training edge, a test edge or no edge, at random."""
    train: Edges = []
    test: Edges = []
    for i, j in itertools.combinations(range(n), 2):
        u = rng.random()
        if u < p_train:
            train.append((i, j))
        elif u < p_train + p_test:
            test.append((j, i) if rng.random() < 0.5 else (i, j))
    assert test
    return np.array(train, dtype=np.int64).reshape(-1, 2), np.array(test, dtype=np.int64)


def neighbours(edges: np.ndarray | Edges, n: int) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges:
        sets[int(a)].add(int(b))
        sets[int(b)].add(int(a))
    return sets


# ---------------------------------------------------------------- expected distance


@pytest.mark.parametrize("rho", [0.0, 0.8, -0.6, np.array([0.95, -0.9, 0.3])])
def test_expected_squared_distance_matches_monte_carlo(rho: float | np.ndarray) -> None:
    rng = np.random.default_rng(1)
    mu_i, mu_j = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.0, -0.5])
    sigma_i, sigma_j = np.array([1.0, 2.0, 0.5]), np.array([1.5, 0.7, 1.2])
    samples = 400_000
    first = rng.standard_normal((samples, 3))
    second = rng.standard_normal((samples, 3))
    z_i = mu_i + sigma_i * first
    z_j = mu_j + sigma_j * (rho * first + np.sqrt(1 - np.square(rho)) * second)
    squared = np.sum((z_i - z_j) ** 2, axis=1)
    estimate, standard_error = squared.mean(), squared.std() / np.sqrt(samples)
    got = float(expected_squared_distance(mu_i, sigma_i, mu_j, sigma_j, rho))
    assert abs(got - estimate) < 4 * standard_error


def test_expected_squared_distance_closed_forms_at_full_correlation() -> None:
    rng = np.random.default_rng(2)
    mu_i = rng.normal(size=(5, 4))
    mu_j = rng.normal(size=4)
    sigma = rng.uniform(0.5, 2.0, size=(5, 4))
    gap = np.sum((mu_i - mu_j) ** 2, axis=-1)
    # ρ = 1, σ_i = σ_j: z_i − z_j = μ_i − μ_j exactly.
    same = expected_squared_distance(mu_i, sigma, mu_j, sigma, rho=1.0)
    assert same.shape == (5,)
    np.testing.assert_allclose(np.asarray(same), gap, rtol=1e-5, atol=1e-5)
    # ρ = −1, σ_i = σ_j: z_i − z_j = μ_i − μ_j + 2σε.
    opposite = expected_squared_distance(mu_i, sigma, mu_j, sigma, rho=-1.0)
    expected = gap + 4 * np.sum(sigma**2, axis=-1)
    np.testing.assert_allclose(np.asarray(opposite), expected, rtol=1e-5)
    jitted = jax.jit(expected_squared_distance)(mu_i, sigma, mu_j, sigma, jnp.asarray(1.0))
    np.testing.assert_allclose(np.asarray(jitted), gap, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ((1.0, 1.0, [0.0], 1.0), "mu_i must have a latent axis"),
        (([0.0, 1.0], 1.0, [0.0, 1.0, 2.0], 1.0), "do not broadcast"),
        (([0.0], -1.0, [1.0], 1.0), "sigma_i .*1 value"),
        (([0.0], 1.0, [1.0], 1.0, 1.5), r"rho must be a correlation in \[-1, 1\]"),
    ],
)
def test_expected_squared_distance_rejects_bad_input(arguments: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expected_squared_distance(*arguments)


# ---------------------------------------------------------------- NCRR oracle


def ncrr_by_brute_force(
    distances: list[list[float]], train: Edges, test: Edges, n: int
) -> tuple[list[int], list[float], float]:
    """Query nodes, their NCRR and the random baseline, by sorting candidates in Python."""
    known, held = neighbours(train, n), neighbours(test, n)
    nodes, scores, baselines = [], [], []
    for i in range(n):
        if not held[i]:
            continue
        candidates = [j for j in range(n) if j != i and j not in known[i]]
        ordered = sorted(candidates, key=lambda j: distances[i][j])
        rank: dict[int, float] = {}
        start = 0
        while start < len(ordered):  # a tie group takes the mean of its positions
            end = start
            while end + 1 < len(ordered) and (
                distances[i][ordered[end + 1]] == distances[i][ordered[start]]
            ):
                end += 1
            for position in range(start, end + 1):
                rank[ordered[position]] = ((start + 1) + (end + 1)) / 2
            start = end + 1
        ideal = harmonic(len(held[i]))
        nodes.append(i)
        scores.append(sum(1 / rank[j] for j in held[i]) / ideal)
        c = len(candidates)
        expected_reciprocal = Fraction(sum(Fraction(1, r) for r in range(1, c + 1)), c)
        baselines.append(float(len(held[i]) * expected_reciprocal) / ideal)
    return nodes, scores, sum(baselines) / len(baselines)


@st.composite
def small_graphs(draw: st.DrawFn) -> tuple[np.ndarray, Edges, Edges, int]:
    n = draw(st.integers(2, 7))
    pairs = list(itertools.combinations(range(n), 2))
    kinds = draw(st.lists(st.sampled_from("ntT"), min_size=len(pairs), max_size=len(pairs)))
    kinds[draw(st.integers(0, len(pairs) - 1))] = "T"
    flips = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    train: Edges = []
    test: Edges = []
    for (i, j), kind, flip in zip(pairs, kinds, flips, strict=True):
        edge = (j, i) if flip else (i, j)
        if kind == "t":
            train.append(edge)
        elif kind == "T":
            test.append(edge)
    if draw(st.booleans()):  # a repeated edge, reversed, counts once
        test.append(test[0][::-1])
    values = draw(st.lists(st.integers(0, 3), min_size=n * n, max_size=n * n))  # many ties
    return np.array(values, dtype=np.float64).reshape(n, n), train, test, n


@settings(max_examples=40)
@given(small_graphs())
def test_ncrr_matches_brute_force(graph: tuple[np.ndarray, Edges, Edges, int]) -> None:
    distances, train, test, n = graph
    nodes, scores, baseline = ncrr_by_brute_force(distances.tolist(), train, test, n)
    train_array = np.array(train, dtype=np.int64).reshape(-1, 2)
    result = link_prediction_ncrr(distances, train_array, np.array(test), n, chunk_size=3)
    assert isinstance(result, NCRRResult)
    assert result.nodes.tolist() == nodes
    np.testing.assert_allclose(result.per_node, scores, rtol=1e-12)
    assert result.score == pytest.approx(np.mean(scores), rel=1e-12)
    assert result.random_baseline == pytest.approx(baseline, rel=1e-12)


def test_ncrr_of_a_perfect_ranking_is_one_even_with_closer_training_neighbours() -> None:
    rng = np.random.default_rng(3)
    n = 40
    train, test = random_split(rng, n, 0.15, 0.1)
    distances = rng.uniform(1.0, 2.0, size=(n, n))
    for a, b in test:  # held-out neighbours first, at distinct distances
        distances[a, b], distances[b, a] = rng.uniform(0.0, 0.5, size=2)
    for a, b in train:  # known neighbours are even closer, but are not candidates
        distances[a, b] = distances[b, a] = -5.0
    result = link_prediction_ncrr(distances, train, test, n)
    assert result.score == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(result.per_node, 1.0, rtol=1e-12)


def test_ncrr_of_reversed_and_constant_rankings_match_closed_forms() -> None:
    rng = np.random.default_rng(4)
    n = 30
    train, test = random_split(rng, n, 0.1, 0.1)
    known, held = neighbours(train, n), neighbours(test, n)
    distances = rng.uniform(0.0, 1.0, size=(n, n))
    for a, b in test:  # held-out neighbours last, at distinct distances
        distances[a, b], distances[b, a] = rng.uniform(10.0, 11.0, size=2)
    for a, b in train:  # known neighbours even farther, but are not candidates
        distances[a, b] = distances[b, a] = 100.0
    reversed_ = link_prediction_ncrr(distances, train, test, n)
    constant = link_prediction_ncrr(np.ones((n, n)), train, test, n)
    nodes = [i for i in range(n) if held[i]]
    assert reversed_.nodes.tolist() == nodes
    for position, i in enumerate(nodes):
        c, m = n - 1 - len(known[i]), len(held[i])
        last = sum(1 / r for r in range(c - m + 1, c + 1)) / harmonic(m)
        assert reversed_.per_node[position] == pytest.approx(last, rel=1e-12)
        # every candidate ties, at mid-rank (c + 1) / 2
        assert constant.per_node[position] == pytest.approx(2 * m / (c + 1) / harmonic(m))
    assert reversed_.score < reversed_.random_baseline
    assert constant.score <= constant.random_baseline
    assert reversed_.random_baseline == constant.random_baseline


def test_ncrr_random_baseline_is_the_average_over_every_ordering() -> None:
    n = 5
    train = np.array([[0, 1], [2, 3]])
    test = np.array([[0, 2], [0, 3], [4, 0], [1, 4]])
    # Row i ranks its candidates in the order a permutation induces on them; over all
    # permutations every row sees each order of its candidates equally often.
    scores = [
        link_prediction_ncrr(np.tile(np.array(order, float), (n, 1)), train, test, n).score
        for order in itertools.permutations(range(n))
    ]
    baseline = link_prediction_ncrr(np.zeros((n, n)), train, test, n).random_baseline
    assert np.mean(scores) == pytest.approx(baseline, rel=1e-12)


def test_ncrr_random_baseline_matches_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    n = 30
    train, test = random_split(rng, n, 0.2, 0.08)
    scores = np.array(
        [link_prediction_ncrr(rng.random((n, n)), train, test, n).score for _ in range(300)]
    )
    baseline = link_prediction_ncrr(np.zeros((n, n)), train, test, n).random_baseline
    assert abs(scores.mean() - baseline) < 4 * scores.std() / np.sqrt(scores.size)


def test_ncrr_callable_and_chunking_agree_with_the_matrix() -> None:
    rng = np.random.default_rng(6)
    n = 25
    train, test = random_split(rng, n, 0.15, 0.1)
    distances = rng.integers(0, 5, size=(n, n)).astype(np.float64)  # with ties
    reference = link_prediction_ncrr(distances, train, test, n)
    for chunk_size in (1, 3, 7, 256):
        calls: list[np.ndarray] = []

        def rows(sources: np.ndarray, calls: list[np.ndarray] = calls) -> np.ndarray:
            calls.append(sources)
            return distances[sources]

        result = link_prediction_ncrr(rows, train, test, n, chunk_size=chunk_size)
        assert all(np.issubdtype(c.dtype, np.integer) and c.size <= chunk_size for c in calls)
        np.testing.assert_array_equal(np.concatenate(calls), reference.nodes)
        np.testing.assert_array_equal(result.per_node, reference.per_node)
        assert result.score == reference.score
        assert result.random_baseline == reference.random_baseline
        matrix_chunked = link_prediction_ncrr(distances, train, test, n, chunk_size=chunk_size)
        np.testing.assert_array_equal(matrix_chunked.per_node, reference.per_node)


def test_ncrr_with_expected_distances_of_codes_as_a_callable() -> None:
    rng = np.random.default_rng(7)
    n = 20
    train, test = random_split(rng, n, 0.15, 0.1)
    mu = rng.normal(size=(n, 3))
    sigma = rng.uniform(0.1, 1.0, size=(n, 3))

    def rows(sources: np.ndarray) -> jax.Array:
        return expected_squared_distance(mu[sources, None], sigma[sources, None], mu, sigma)

    full = np.asarray(rows(np.arange(n)))
    assert full.shape == (n, n)
    by_rows = link_prediction_ncrr(rows, train, test, n, chunk_size=4)
    assert by_rows.score == pytest.approx(link_prediction_ncrr(full, train, test, n).score)


NODES = 5
GOOD_TRAIN = [[0, 1], [1, 2]]
GOOD_TEST = [[0, 3], [2, 4]]


@pytest.mark.parametrize(
    ("distances", "train", "test", "match"),
    [
        (np.zeros((5, 5)), [0, 1, 2], GOOD_TEST, r"train_edges must have shape \(num_edges, 2\)"),
        (np.zeros((5, 5)), [[0.0, 1.0]], GOOD_TEST, "train_edges must hold integer node ids"),
        (np.zeros((5, 5)), GOOD_TRAIN, [[0, 5]], r"1 node id\(s\) outside \[0, 5\)"),
        (np.zeros((5, 5)), GOOD_TRAIN, [[3, 3]], "self loop"),
        (np.zeros((5, 5)), GOOD_TRAIN, [[0, 3], [2, 1]], r"1 test edge\(s\) are also training"),
        (np.zeros((5, 5)), GOOD_TRAIN, np.empty((0, 2), int), "at least one held-out edge"),
        (np.zeros((5, 4)), GOOD_TRAIN, GOOD_TEST, r"row_distances must have shape \(5, 5\)"),
        (
            np.where(np.eye(5, k=1) > 0, np.nan, 0.0),
            GOOD_TRAIN,
            GOOD_TEST,
            r"row_distances has 4 NaN distance\(s\)",
        ),
        (lambda s: np.zeros((s.size, 4)), GOOD_TRAIN, GOOD_TEST, r"row_distances\(sources\)"),
    ],
)
def test_ncrr_rejects_bad_input(distances: object, train: object, test: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        link_prediction_ncrr(distances, train, test, NODES)  # type: ignore[arg-type]


def test_ncrr_checks_edges_before_calling_the_distances() -> None:
    calls: list[np.ndarray] = []

    def rows(sources: np.ndarray) -> np.ndarray:
        calls.append(sources)
        return np.zeros((sources.size, NODES))

    with pytest.raises(ValueError, match="also training"):
        link_prediction_ncrr(rows, GOOD_TRAIN, [[1, 0]], NODES)
    with pytest.raises(ValueError, match="num_nodes must be at least 2"):
        link_prediction_ncrr(rows, GOOD_TRAIN, GOOD_TEST, 1)
    assert calls == []


# ---------------------------------------------------------------- clustering


@settings(max_examples=40)
@given(
    st.integers(1, 4).flatmap(
        lambda k: st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1)
    )
)
def test_clustering_accuracy_matches_every_permutation(pairs: list[tuple[int, int]]) -> None:
    clusters, labels = (np.array(column) for column in zip(*pairs, strict=True))
    k = int(max(clusters.max(), labels.max())) + 1
    best = max(
        float(np.mean(np.array(permutation)[clusters] == labels))
        for permutation in itertools.permutations(range(k))
    )
    assert clustering_accuracy(clusters, labels) == pytest.approx(best, abs=1e-12)


def blobs(rng: np.random.Generator, sizes: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    centres = 20.0 * np.eye(len(sizes), dim)
    codes = np.concatenate(
        [c + rng.normal(size=(s, dim)) for c, s in zip(centres, sizes, strict=True)]
    )
    return codes, np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("seed", [0, 1])
def test_spectral_accuracy_of_separated_blobs_is_one_for_any_label_names(seed: int) -> None:
    codes, truth = blobs(np.random.default_rng(seed), [30, 25, 35], dim=5)
    for names in ([0, 1, 2], [2, 0, 1], ["c", "a", "b"]):
        labels = np.array(names)[truth]
        assert spectral_clustering_accuracy(codes, labels, seed=seed) == 1.0


def test_spectral_accuracy_with_as_many_nodes_as_latent_dimensions() -> None:
    codes, truth = blobs(np.random.default_rng(8), [3, 3], dim=6)  # square codes, 6 x 6
    assert spectral_clustering_accuracy(codes, truth, n_neighbors=3) == 1.0


def test_spectral_accuracy_of_random_labels_is_near_one_half() -> None:
    rng = np.random.default_rng(9)
    codes = rng.normal(size=(400, 2))
    labels = rng.integers(0, 2, size=400)
    accuracy = spectral_clustering_accuracy(codes, labels)
    assert 0.5 <= accuracy < 0.6


@pytest.mark.parametrize(
    ("codes", "labels", "options", "match"),
    [
        (np.zeros(6), [0, 1] * 3, {}, r"codes must have shape \(num_nodes, latent_dim\)"),
        (np.where(np.eye(6, 2) > 0, np.nan, 1.0), [0, 1] * 3, {}, r"2 NaN or infinite"),
        (np.zeros((2, 3)), [0, 1], {}, "at least 3 nodes"),
        (np.zeros((6, 2)), [0, 1] * 2, {}, "labels must have 6 entries"),
        (np.zeros((6, 2)), [0.0, 1.0, np.nan, 0, 1, 0], {}, "labels has 1 NaN"),
        (np.zeros((6, 2)), [1] * 6, {}, "labels has 1 distinct value"),
        (np.zeros((6, 2)), [0, 1] * 3, {"num_clusters": 6}, "num_clusters must be an integer"),
    ],
)
def test_spectral_accuracy_rejects_bad_input(
    codes: np.ndarray, labels: list, options: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        spectral_clustering_accuracy(codes, labels, **options)
