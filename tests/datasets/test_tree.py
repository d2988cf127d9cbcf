"""Tree-correlated data: a tree, parent–child correlation τ, balanced PCA labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from invppl.datasets import make_tree_data


def reachable_from_root(edges: np.ndarray, n: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for parent, child in edges:
        children.setdefault(int(parent), []).append(int(child))
    seen, stack = {0}, [0]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def test_shapes_and_dtypes() -> None:
    data = make_tree_data(50, seed=0, tau=0.5, latent_dim=3, observed_dim=7)
    assert data.edges.shape == (49, 2)
    assert data.edges.dtype == np.int64
    assert data.parents.shape == (50,)
    assert data.z.shape == (50, 3)
    assert data.z.dtype == np.float32
    assert data.x.shape == data.probabilities.shape == (50, 7)
    assert data.x.dtype == data.probabilities.dtype == np.float32
    assert set(np.unique(data.x)) <= {0.0, 1.0}
    assert data.labels.dtype == np.int32
    assert data.tau == 0.5


def test_edges_form_a_tree_rooted_at_zero() -> None:
    n = 300
    data = make_tree_data(n, seed=1)
    assert len(data.edges) == n - 1
    assert data.parents[0] == -1
    np.testing.assert_array_equal(data.edges[:, 1], np.arange(1, n))
    np.testing.assert_array_equal(data.edges[:, 0], data.parents[1:])
    assert np.all(data.parents[1:] < np.arange(1, n))
    assert reachable_from_root(data.edges, n) == set(range(n))


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x through the origin (both have mean 0 by construction)."""
    return float((x * y).sum() / (x * x).sum())


@pytest.mark.parametrize("tau", [0.8, 0.3, -0.6])
def test_parent_child_correlation_is_tau(tau: float) -> None:
    # Nodes of one tree are dependent (all descend from the root), so sample means and
    # variances are noisy; the regression of child on parent is not: its residual is the
    # fresh noise, independent of the parent.
    data = make_tree_data(4000, seed=2, tau=tau, latent_dim=2)
    parent, child = data.z[data.parents[1:]], data.z[1:]
    for dim in range(2):
        assert slope(parent[:, dim], child[:, dim]) == pytest.approx(tau, abs=0.03)
        assert np.corrcoef(parent[:, dim], child[:, dim])[0, 1] == pytest.approx(tau, abs=0.1)
    noise = (child - tau * parent) / np.sqrt(1 - tau**2)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(noise.var(axis=0), 1.0, atol=0.06)
    assert abs(np.corrcoef(noise[:, 0], parent[:, 0])[0, 1]) < 0.05


def test_every_node_is_standard_normal_across_seeds() -> None:
    z = np.stack([make_tree_data(10, seed=s, tau=0.9, latent_dim=1).z[:, 0] for s in range(400)])
    for node in (0, 9):
        assert stats.kstest(z[:, node].astype(np.float64), "norm").pvalue > 1e-3


def test_grandparents_correlate_as_tau_squared() -> None:
    data = make_tree_data(4000, seed=3, tau=0.8, latent_dim=1)
    has_grandparent = np.flatnonzero(data.parents > 0)
    grandparent = data.parents[data.parents[has_grandparent]]
    assert slope(data.z[grandparent, 0], data.z[has_grandparent, 0]) == pytest.approx(
        0.64, abs=0.04
    )


def test_observations_follow_their_probabilities() -> None:
    data = make_tree_data(2000, seed=4)
    assert data.x.mean() == pytest.approx(data.probabilities.mean(), abs=0.01)
    assert data.probabilities.std() > 0.1  # the MLP makes x depend on z
    logits = np.tanh(data.z @ data.decoder["w1"] + data.decoder["b1"]) @ data.decoder["w2"]
    expected = 1 / (1 + np.exp(-(logits + data.decoder["b2"])))
    np.testing.assert_allclose(data.probabilities, expected, atol=1e-5)


def test_labels_split_the_first_principal_component_at_the_median() -> None:
    data = make_tree_data(1000, seed=5)
    assert data.labels.sum() == 500
    centred = data.z - data.z.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    component = centred @ vectors[:, -1]
    split = (component > np.median(component)).astype(np.int32)
    assert np.array_equal(split, data.labels) or np.array_equal(1 - split, data.labels)


def test_seeded_and_decoder_independent_of_n() -> None:
    a, b = make_tree_data(30, seed=6), make_tree_data(30, seed=6)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(a.x, b.x)
    bigger = make_tree_data(60, seed=6)
    np.testing.assert_array_equal(a.decoder["w1"], bigger.decoder["w1"])


def test_single_node() -> None:
    data = make_tree_data(1, seed=0)
    assert data.edges.shape == (0, 2)
    np.testing.assert_array_equal(data.labels, [0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tau": 1.0}, ValueError, r"\|tau\| < 1"),
        ({"tau": -1.5}, ValueError, r"\|tau\| < 1"),
        ({"tau": float("nan")}, ValueError, "tau must be finite"),
        ({"n": 0}, ValueError, "n must be at least 1"),
        ({"latent_dim": 0}, ValueError, "latent_dim must be at least 1"),
        ({"n": 2.5}, TypeError, "n must be an integer"),
    ],
)
def test_bad_inputs(kwargs: dict, error: type[Exception], match: str) -> None:
    arguments = {"n": 5, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        make_tree_data(**arguments)
