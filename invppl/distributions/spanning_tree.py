"""Uniform-spanning-tree edge weights for the Correlated VAE on a cyclic graph.

Tang et al. (2019), "Correlated Variational Auto-Encoders", extend the forest
prior (:mod:`invppl.distributions.forest_prior`) to a general undirected graph
G = (V, E) by averaging the tree ELBO over the uniform distribution on the
spanning trees of G (of each connected component; a spanning forest when G is
disconnected). The average is linear in the pairwise terms, so each edge's term
is weighted by the probability w_ij that the edge lies in a uniform spanning
tree of its component. By Kirchhoff's theorem this is the edge's effective
resistance (unit edge weights):

    w_ij = R_ij = (e_i − e_j)ᵀ L⁺ (e_i − e_j),

with L the graph Laplacian and L⁺ its Moore–Penrose pseudo-inverse. The
weights lie in (0, 1], equal 1 exactly on bridges (so every edge of a forest
gets 1), and sum to n − (number of components) (Foster's theorem: a spanning
forest has that many edges).

:func:`spanning_tree_edge_weights` works per connected component c with n_c
nodes. Instead of the pseudo-inverse (an SVD) it grounds the component: it
deletes the row and column of the component's smallest node g, leaving a
symmetric positive-definite (n_c − 1) × (n_c − 1) matrix L_g, and inverts that
by Cholesky. Then R_ij = M_ii + M_jj − 2 M_ij with M = L_g⁻¹ padded by a zero
row and column at g; this equals the pseudo-inverse formula because
e_i − e_j ⊥ ker L = span(1) within the component. Components that are trees
(n_c − 1 edges) are skipped: all their weights are exactly 1. Bridges in cyclic
components are snapped to exactly 1 (every other edge has R ≤ 1 − 1/n_c).

>>> spanning_tree_edge_weights([[0, 1], [1, 2], [2, 0], [3, 4]], num_nodes=6).round(4).tolist()
[0.6667, 0.6667, 0.6667, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse
from jax.typing import ArrayLike
from scipy.sparse.csgraph import connected_components

from invppl._checks import check_int
from invppl.distributions.forest_prior import _checked_edges

__all__ = ["spanning_tree_edge_weights"]


def spanning_tree_edge_weights(
    edges: ArrayLike | Sequence[Sequence[int]], num_nodes: int
) -> np.ndarray:
    """The probability that each edge lies in a uniform spanning tree of its component.

    Equals the edge's effective resistance (e_i − e_j)ᵀ L⁺ (e_i − e_j) with unit
    edge weights, computed per connected component by a Cholesky inverse of the
    grounded Laplacian (see the module docstring). These are the weights of the
    pairwise terms in the Correlated VAE objective on a cyclic graph.

    Cost: O(Σ_c n_c³) time and O(max_c n_c²) memory for components of n_c nodes
    (dense; tree components and isolated nodes cost O(n_c)). Measured on a 2-core
    x86_64 CPU for one connected random graph with 3 edges per node: 1000 nodes
    in 0.06 s, 3000 nodes in 0.95 s (72 MB for the dense inverse); the
    ``np.linalg.pinv(L, hermitian=True)`` route took 0.23 s and 4.0 s (same
    values to 3e-15). By the cubic law, ~10⁴ nodes per component take ~35 s and
    0.8 GB, the practical limit; beyond that a sparse or sampled estimator is needed.

    Args:
        edges: ``(|E|, 2)`` integer node-id pairs; orientation does not matter.
            May be empty. Cycles are allowed.
        num_nodes: n ≥ 1; node ids are ``0..n-1``; isolated nodes are allowed.

    Returns:
        ``(|E|,)`` float64 weights in (0, 1], in the order of ``edges``; 1 on
        every bridge; they sum to n − (number of connected components).

    Raises:
        TypeError: ``num_nodes`` is not an integer; ``edges`` is traced or not integer.
        ValueError: ``edges`` is not ``(|E|, 2)``; a node id is outside
            ``0..n-1``; a self-loop; a duplicate edge (either orientation).

    >>> spanning_tree_edge_weights([[0, 1], [1, 2], [2, 3], [3, 0]], num_nodes=4).round(12).tolist()
    [0.75, 0.75, 0.75, 0.75]
    """
    num_nodes = check_int(num_nodes, "num_nodes", minimum=1)
    array = _checked_edges(edges, num_nodes)
    num_edges = array.shape[0]
    weights = np.ones(num_edges, dtype=np.float64)
    if num_edges == 0:
        return weights

    rows, cols = array[:, 0], array[:, 1]
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(num_edges), (rows, cols)), shape=(num_nodes, num_nodes)
    ).tocsr()
    num_components, labels = connected_components(adjacency, directed=False)
    node_counts = np.bincount(labels, minlength=num_components)
    edge_labels = labels[rows]
    edge_counts = np.bincount(edge_labels, minlength=num_components)

    # local index of every node within its component (components list nodes in increasing order)
    order = np.argsort(labels, kind="stable")
    local = np.empty(num_nodes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(node_counts)[:-1]])
    local[order] = np.arange(num_nodes) - np.repeat(starts, node_counts)

    for label in np.flatnonzero(edge_counts > node_counts - 1):  # components with a cycle
        size = int(node_counts[label])
        members = np.flatnonzero(edge_labels == label)
        i, j = local[rows[members]], local[cols[members]]
        laplacian = np.zeros((size, size))
        np.add.at(laplacian, (i, j), -1.0)
        np.add.at(laplacian, (j, i), -1.0)
        laplacian[np.arange(size), np.arange(size)] = -laplacian.sum(axis=1)
        # ground local node 0 (the component's smallest id): L_g is SPD of size n_c - 1
        factor = scipy.linalg.cho_factor(laplacian[1:, 1:], lower=True, check_finite=False)
        inverse = np.zeros((size, size))
        inverse[1:, 1:] = scipy.linalg.cho_solve(
            factor, np.eye(size - 1), overwrite_b=True, check_finite=False
        )
        resistance = inverse[i, i] + inverse[j, j] - 2.0 * inverse[i, j]
        # a non-bridge edge lies on a cycle of length k ≤ n_c, so R ≤ (k − 1)/k ≤ 1 − 1/n_c:
        # values above 1 − 1/(2 n_c) are bridges, whose weight is exactly 1
        resistance[resistance > 1.0 - 0.5 / size] = 1.0
        weights[members] = np.clip(resistance, 0.0, 1.0)
    return weights
