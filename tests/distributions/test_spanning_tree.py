"""spanning_tree_edge_weights against brute-force spanning-tree counts and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.distributions import spanning_tree_edge_weights

# ---------------------------------------------------------------------------
# test-side generator and oracle


def random_graph(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """An Erdős–Rényi graph on n nodes: relabelled, edges shuffled and randomly oriented."""
    pairs = [(a, b) for a, b in itertools.combinations(range(n), 2) if rng.random() < p]
    array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    array = rng.permutation(n)[array]
    array = array[rng.permutation(len(array))]
    flip = rng.random(len(array)) < 0.5
    array[flip] = array[flip, ::-1]
    return array


def _components(edges: np.ndarray, n: int) -> list[int]:
    label = list(range(n))

    def find(x: int) -> int:
        while label[x] != x:
            x = label[x]
        return x

    for i, j in edges.tolist():
        label[find(i)] = find(j)
    return [find(x) for x in range(n)]


def _acyclic(edges: list[tuple[int, int]], n: int) -> bool:
    label = list(range(n))

    def find(x: int) -> int:
        while label[x] != x:
            x = label[x]
        return x

    for i, j in edges:
        a, b = find(i), find(j)
        if a == b:
            return False
        label[a] = b
    return True


def brute_force_weights(edges: np.ndarray, n: int) -> np.ndarray:
    """Per component: the fraction of its spanning trees containing each edge, by enumeration."""
    comp = _components(edges, n)
    weights = np.zeros(len(edges))
    for root in set(comp):
        size = comp.count(root)
        members = [k for k, (i, _) in enumerate(edges.tolist()) if comp[i] == root]
        if not members:
            continue
        counts = np.zeros(len(edges))
        trees = 0
        # n_c - 1 acyclic edges within a component of n_c nodes span it
        for subset in itertools.combinations(members, size - 1):
            if _acyclic([tuple(edges[k]) for k in subset], n):
                trees += 1
                counts[list(subset)] += 1
        weights[members] = counts[members] / trees
    return weights


def cycle(k: int) -> np.ndarray:
    return np.asarray([(i, (i + 1) % k) for i in range(k)], dtype=np.int64)


# ---------------------------------------------------------------------------
# values


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 7),
    p=st.floats(0.2, 0.9),
)
def test_matches_brute_force_spanning_tree_frequencies(seed: int, n: int, p: float) -> None:
    edges = random_graph(np.random.default_rng(seed), n, p)
    weights = spanning_tree_edge_weights(edges, n)
    assert weights.shape == (len(edges),)
    assert weights.dtype == np.float64
    np.testing.assert_allclose(weights, brute_force_weights(edges, n), rtol=0, atol=1e-10)
    # Foster: the weights sum to the size of a spanning forest
    num_components = len(set(_components(edges, n)))
    np.testing.assert_allclose(weights.sum(), n - num_components, atol=1e-10)


def test_brute_force_on_fixed_multi_component_cyclic_graph() -> None:
    # a triangle with a pendant, a 4-cycle with a chord, an isolated node, a bridge pair
    edges = np.asarray(
        [[0, 1], [1, 2], [2, 0], [2, 3], [4, 5], [5, 6], [6, 7], [7, 4], [4, 6], [9, 10]]
    )
    n = 11
    weights = spanning_tree_edge_weights(edges, n)
    expected = brute_force_weights(edges, n)
    np.testing.assert_allclose(weights, expected, atol=1e-12)
    # 4-cycle with chord (8 spanning trees): chord in 4, each rim edge in 5
    np.testing.assert_allclose(weights[4:9], [5 / 8, 5 / 8, 5 / 8, 5 / 8, 1 / 2], atol=1e-12)
    # bridges are exactly 1, also inside a cyclic component
    assert weights[3] == 1.0
    assert weights[9] == 1.0
    np.testing.assert_allclose(weights.sum(), n - 4, atol=1e-12)


def test_brute_force_oracle_is_not_trivial() -> None:
    # guards against an oracle that agrees with anything: a triangle is not all ones
    np.testing.assert_allclose(brute_force_weights(cycle(3), 3), [2 / 3] * 3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40))
def test_forest_gives_all_ones(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    edges = np.asarray(
        [(int(rng.integers(i)), i) for i in range(1, n) if rng.random() < 0.8], dtype=np.int64
    ).reshape(-1, 2)
    edges = rng.permutation(n)[edges]
    weights = spanning_tree_edge_weights(edges, n)
    np.testing.assert_array_equal(weights, np.ones(len(edges)))


@pytest.mark.parametrize("k", [3, 4, 5, 10, 50])
def test_cycle(k: int) -> None:
    # extra isolated nodes and a shifted labelling must not matter
    edges = cycle(k) + 2
    weights = spanning_tree_edge_weights(edges, k + 5)
    np.testing.assert_allclose(weights, np.full(k, (k - 1) / k), rtol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 6, 12])
def test_complete_graph(n: int) -> None:
    edges = np.asarray(list(itertools.combinations(range(n), 2)))[:, ::-1]
    weights = spanning_tree_edge_weights(edges, n)
    np.testing.assert_allclose(weights, np.full(len(edges), 2 / n), rtol=1e-12)


def test_bridge_between_cycles_is_one() -> None:
    edges = np.concatenate([cycle(4), cycle(3) + 4, [[0, 4]]])
    weights = spanning_tree_edge_weights(edges, 7)
    np.testing.assert_allclose(weights, [3 / 4] * 4 + [2 / 3] * 3 + [1.0], atol=1e-12)
    assert weights[-1] == 1.0


def test_large_connected_graph_sums_to_n_minus_one() -> None:
    rng = np.random.default_rng(0)
    n = 300
    pairs = {(int(rng.integers(i)), i) for i in range(1, n)}
    while len(pairs) < 3 * n:
        a, b = sorted(rng.choice(n, size=2, replace=False).tolist())
        pairs.add((a, b))
    weights = spanning_tree_edge_weights(np.asarray(sorted(pairs)), n)
    assert np.all((weights > 0) & (weights <= 1))
    np.testing.assert_allclose(weights.sum(), n - 1, rtol=1e-10)


# ---------------------------------------------------------------------------
# edge cases and errors


@pytest.mark.parametrize("edges", [[], np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=int)])
def test_empty_edges(edges: object) -> None:
    weights = spanning_tree_edge_weights(edges, 4)  # type: ignore[arg-type]
    assert weights.shape == (0,)
    assert weights.dtype == np.float64


def test_single_node() -> None:
    assert spanning_tree_edge_weights([], 1).shape == (0,)


@pytest.mark.parametrize(
    ("edges", "num_nodes", "error", "match"),
    [
        ([[0, 1, 2]], 3, ValueError, r"shape \(num_edges, 2\)"),
        ([0, 1], 3, ValueError, r"shape \(num_edges, 2\)"),
        (np.zeros((3, 0), int), 3, ValueError, r"shape \(num_edges, 2\), got shape \(3, 0\)"),
        (np.zeros((0, 3), int), 3, ValueError, r"shape \(num_edges, 2\), got shape \(0, 3\)"),
        ([[0.0, 1.0]], 3, TypeError, "integer node ids"),
        ([[True, False]], 3, TypeError, "integer node ids"),
        ([[0, 3]], 3, ValueError, r"outside 0\.\.2"),
        ([[-1, 0]], 3, ValueError, "outside"),
        ([[0, 1], [1, 1]], 3, ValueError, "self-loop on node 1"),
        ([[0, 1], [1, 2], [1, 0]], 3, ValueError, r"edge 2 = \(1, 0\) duplicates edge 0"),
        ([[0, 1], [0, 1]], 3, ValueError, "duplicates"),
        ([[0, 1]], 0, ValueError, "num_nodes"),
        ([[0, 1]], 2.0, TypeError, "num_nodes"),
        ([[0, 1]], True, TypeError, "num_nodes"),
    ],
)
def test_bad_input(edges: object, num_nodes: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        spanning_tree_edge_weights(edges, num_nodes)  # type: ignore[arg-type]
