"""Evaluation on graph data: expected latent distances, link prediction, clustering.

These follow the evaluation of Correlated VAEs (Tang et al., "Correlated
Variational Auto-Encoders", ICML 2019), where each node of a graph has a latent
code and nearby codes should mean linked (or same-class) nodes.

**Expected squared distance.** If, in every latent dimension d, the pair
(z_id, z_jd) is bivariate normal with means (μ_id, μ_jd), standard deviations
(σ_id, σ_jd) and correlation ρ_d, then z_id − z_jd has mean μ_id − μ_jd and
variance σ_id² + σ_jd² − 2 ρ_d σ_id σ_jd, so::

    E‖z_i − z_j‖² = Σ_d [(μ_id − μ_jd)² + σ_id² + σ_jd² − 2 ρ_d σ_id σ_jd].

With ρ = 0 (independent posteriors) this is the squared distance of the means
plus both total variances; with ρ = 1 and σ_i = σ_j it is ‖μ_i − μ_j‖².

**Normalised cumulative reciprocal rank (NCRR).** Some edges are held out
(test edges); the others (training edges) are known. For every node i with at
least one held-out neighbour, its candidates are all nodes j ≠ i that are not
training neighbours of i, ranked by ascending distance from i. With H_i its
held-out neighbours, m_i = ``|H_i|`` and H(m) = Σ_{k=1}^{m} 1/k::

    NCRR_i = Σ_{j ∈ H_i} 1 / rank_i(j)  /  H(m_i),

which is 1 for a perfect ranking (the held-out neighbours first). The score is
the mean of NCRR_i over those nodes. Ties get mid-ranks::

    rank_i(j) = 1 + #{candidates k: d_ik < d_ij} + ½ #{candidates k ≠ j: d_ik = d_ij},

so a constant distance puts every candidate at the expected rank (c + 1) / 2
of a random order of the c candidates. Under a uniformly random order each
held-out neighbour's rank is uniform on {1, …, c}, so the expected NCRR_i is
exactly ``m_i H(c_i) / (c_i H(m_i))``; the mean of these is reported as the
random baseline. (A constant distance scores ``2 m_i / ((c_i + 1) H(m_i))``,
at most the baseline, as 1/x is convex.)

**Spectral clustering accuracy.** The codes are clustered by spectral
clustering on their k-nearest-neighbour graph, and the clusters matched
one-to-one to the labels so as to agree on the most nodes (the Hungarian
algorithm on the contingency table); accuracy is the fraction that agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from invppl._checks import check_int
from invppl.metrics._checks import code_matrix, finite_codes, is_real

__all__ = [
    "NCRRResult",
    "RowDistances",
    "clustering_accuracy",
    "expected_distance_rows",
    "expected_squared_distance",
    "link_prediction_ncrr",
    "spectral_clustering_accuracy",
]

RowDistances = Callable[[np.ndarray], ArrayLike]
"""``sources (m,) int array -> (m, num_nodes)`` distances from each source to every node."""


# ---------------------------------------------------------------- expected distance


def _concrete(value: ArrayLike) -> np.ndarray | None:
    """``value`` as a NumPy array, or ``None`` if it is traced (under ``jax.jit``)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def expected_squared_distance(
    mu_i: ArrayLike,
    sigma_i: ArrayLike,
    mu_j: ArrayLike,
    sigma_j: ArrayLike,
    rho: ArrayLike = 0.0,
) -> Array:
    """E‖z_i − z_j‖² for latent codes that are normal and correlated per dimension.

    In each latent dimension d, (z_id, z_jd) is bivariate normal with means
    ``mu_i[..., d]``, ``mu_j[..., d]``, standard deviations ``sigma_i[..., d]``,
    ``sigma_j[..., d]`` and correlation ``rho`` (see the module docstring)::

        Σ_d [(μ_id − μ_jd)² + σ_id² + σ_jd² − 2 ρ_d σ_id σ_jd].

    All arguments broadcast against each other; the last axis is the latent
    dimension and is summed over. Works under ``jax.jit`` (the value checks on
    ``sigma`` and ``rho`` are then skipped; the shape checks are not).

    Args:
        mu_i: ``(..., latent_dim)`` means of z_i.
        sigma_i: standard deviations of z_i, broadcastable to ``mu_i`` (e.g. a
            scalar or ``(..., latent_dim)``), non-negative.
        mu_j: ``(..., latent_dim)`` means of z_j.
        sigma_j: standard deviations of z_j, non-negative.
        rho: correlation of z_id and z_jd, in [−1, 1]: a scalar, ``(latent_dim,)``
            per dimension, or ``(..., latent_dim)`` per pair (use ``(batch, 1)``
            for one correlation per pair).

    Returns:
        The expected squared distances, shape: the broadcast leading axes
        ``(...)`` (a scalar for single codes).

    Raises:
        ValueError: a mean is a scalar (no latent axis), the shapes do not
            broadcast, a standard deviation is negative or not finite, or ``rho``
            is outside [−1, 1].

    >>> float(expected_squared_distance([0.0, 0.0], 1.0, [3.0, 4.0], 1.0, rho=0.5))
    27.0
    """
    arrays = {
        "mu_i": jnp.asarray(mu_i),
        "sigma_i": jnp.asarray(sigma_i),
        "mu_j": jnp.asarray(mu_j),
        "sigma_j": jnp.asarray(sigma_j),
        "rho": jnp.asarray(rho),
    }
    for name in ("mu_i", "mu_j"):
        if arrays[name].ndim == 0:
            raise ValueError(
                f"{name} must have a latent axis, shape (..., latent_dim), got a scalar "
                "(wrap one-dimensional codes as [value])"
            )
    try:
        jnp.broadcast_shapes(*(array.shape for array in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {array.shape}" for name, array in arrays.items())
        raise ValueError(
            f"the shapes do not broadcast: {shapes}; expected (..., latent_dim) means with "
            "standard deviations and rho broadcastable to them"
        ) from None
    for name in ("sigma_i", "sigma_j"):
        value = _concrete(arrays[name])
        if value is not None and not bool(np.all(np.isfinite(value) & (value >= 0))):
            bad = int(value.size - np.count_nonzero(np.isfinite(value) & (value >= 0)))
            raise ValueError(
                f"{name} must be finite, non-negative standard deviations; {bad} value(s) are "
                "negative, NaN or infinite"
            )
    value = _concrete(arrays["rho"])
    if value is not None and not bool(np.all(np.abs(value) <= 1)):
        bad = int(value.size - np.count_nonzero(np.abs(value) <= 1))
        raise ValueError(f"rho must be a correlation in [-1, 1]; {bad} value(s) are not")
    mean_gap = arrays["mu_i"] - arrays["mu_j"]
    sigma_i_, sigma_j_ = arrays["sigma_i"], arrays["sigma_j"]
    per_dimension = (
        mean_gap**2 + sigma_i_**2 + sigma_j_**2 - 2.0 * arrays["rho"] * sigma_i_ * sigma_j_
    )
    return jnp.sum(per_dimension, axis=-1)


def expected_distance_rows(
    loc: ArrayLike,
    scale: ArrayLike,
    correlation_rows: Callable[[np.ndarray], ArrayLike] | None = None,
) -> RowDistances:
    """Row distances E‖z_i − z_j‖² of a Gaussian guide, for :func:`link_prediction_ncrr`.

    Args:
        loc: ``(num_nodes, latent_dim)`` means of q(z_i | x_i).
        scale: ``(num_nodes, latent_dim)`` standard deviations.
        correlation_rows: ``sources (m,) -> (m, num_nodes, latent_dim)`` the
            guide's correlations of each source with every node (e.g.
            :func:`invppl.models.correlated_vae.correlation_rows`); None for a
            guide whose codes are independent (ρ = 0).

    Returns:
        ``rows(sources (m,)) -> (m, num_nodes)`` expected squared distances.

    >>> rows = expected_distance_rows(np.zeros((3, 2)), np.ones((3, 2)))
    >>> np.asarray(rows(np.array([0]))).tolist()
    [[4.0, 4.0, 4.0]]
    """
    loc, scale = jnp.asarray(loc), jnp.asarray(scale)
    if loc.ndim != 2 or scale.shape != loc.shape:
        raise ValueError(
            f"loc and scale must both be (num_nodes, latent_dim), got {loc.shape} and {scale.shape}"
        )

    def rows(sources: np.ndarray) -> Array:
        rho = 0.0 if correlation_rows is None else jnp.asarray(correlation_rows(sources))
        return expected_squared_distance(
            loc[sources][:, None], scale[sources][:, None], loc[None], scale[None], rho
        )

    return rows


# ---------------------------------------------------------------- link prediction


@dataclass(frozen=True, eq=False)
class NCRRResult:
    """The result of :func:`link_prediction_ncrr`.

    Attributes:
        score: the NCRR, the mean of ``per_node``; in (0, 1], 1 for a perfect
            ranking.
        per_node: ``(num_query_nodes,)`` NCRR of each query node (a node with at
            least one held-out edge), in the order of ``nodes``.
        nodes: ``(num_query_nodes,)`` the query nodes' ids, ascending.
        random_baseline: the exact expected ``score`` of a uniformly random
            ranking of each node's candidates, the scale to read ``score``
            against.
    """

    score: float
    per_node: np.ndarray
    nodes: np.ndarray
    random_baseline: float

    def to_dict(self) -> dict[str, float | list[float] | list[int]]:
        """The result as plain Python numbers (arrays as lists), e.g. for JSON.

        >>> result = NCRRResult(0.5, np.array([0.5]), np.array([3]), 0.25)
        >>> result.to_dict()["nodes"]
        [3]
        """
        return {
            "score": self.score,
            "per_node": [float(v) for v in self.per_node],
            "nodes": [int(v) for v in self.nodes],
            "random_baseline": self.random_baseline,
        }


def _check_edges(edges: ArrayLike, name: str, num_nodes: int) -> np.ndarray:
    """Checks ``(k, 2)`` integer edges with ids in range and no self loops.

    Returns the distinct undirected edges as ``(k', 2)`` int64 rows ``(low, high)``.
    """
    array = np.asarray(edges)
    if array.size == 0:
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (num_edges, 2), got shape {array.shape}")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer node ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    outside = (array < 0) | (array >= num_nodes)
    if np.any(outside):
        row = int(np.argmax(np.any(outside, axis=1)))
        raise ValueError(
            f"{name} has {int(np.count_nonzero(outside))} node id(s) outside [0, {num_nodes}) "
            f"(num_nodes={num_nodes}), e.g. edge {tuple(int(v) for v in array[row])} at row {row}"
        )
    loops = array[:, 0] == array[:, 1]
    if np.any(loops):
        row = int(np.argmax(loops))
        raise ValueError(
            f"{name} has {int(np.count_nonzero(loops))} self loop(s), e.g. "
            f"({array[row, 0]}, {array[row, 1]}) at row {row}; edges must join distinct nodes"
        )
    return np.unique(np.sort(array, axis=1), axis=0)


class _Adjacency(NamedTuple):
    """Compressed adjacency: the neighbours of node u are ``neighbours[indptr[u]:indptr[u + 1]]``.

    ``indptr`` is ``(num_nodes + 1,)``, ``neighbours`` ``(2 · num_edges,)``.
    """

    indptr: np.ndarray
    neighbours: np.ndarray

    def of(self, node: int) -> np.ndarray:
        """The neighbours of ``node``, ``(degree,)``."""
        return self.neighbours[self.indptr[node] : self.indptr[node + 1]]

    def degrees(self) -> np.ndarray:
        """``(num_nodes,)`` the number of neighbours of each node."""
        return np.diff(self.indptr)


def _adjacency(edges: np.ndarray, num_nodes: int) -> _Adjacency:
    """Compressed adjacency of undirected ``(k, 2)`` ``(low, high)`` edges."""
    sources = np.concatenate([edges[:, 0], edges[:, 1]])
    targets = np.concatenate([edges[:, 1], edges[:, 0]])
    order = np.argsort(sources, kind="stable")
    counts = np.bincount(sources, minlength=num_nodes)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return _Adjacency(indptr, targets[order])


def _harmonic(count: np.ndarray) -> np.ndarray:
    """H(c) = Σ_{k=1}^{c} 1/k, elementwise for non-negative integer counts."""
    table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(np.max(count)) + 1))])
    return table[count]


def _check_distance_block(block: np.ndarray, expected: tuple[int, int], what: str) -> None:
    if block.shape != expected:
        raise ValueError(f"{what} must have shape {expected}, got shape {block.shape}")
    if not is_real(block):
        raise ValueError(f"{what} must hold real numbers, got dtype {block.dtype}")
    nan = int(np.count_nonzero(np.isnan(block)))
    if nan:
        raise ValueError(f"{what} has {nan} NaN distance(s); expected numbers (inf is allowed)")


def _check_edge_split(
    train_edges: ArrayLike, test_edges: ArrayLike, num_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``(k, 2)`` training and held-out edges: at least one held out, none shared."""
    train = _check_edges(train_edges, "train_edges", num_nodes)
    test = _check_edges(test_edges, "test_edges", num_nodes)
    if test.shape[0] == 0:
        raise ValueError("test_edges is empty: need at least one held-out edge to score")
    train_codes = train[:, 0] * num_nodes + train[:, 1]
    test_codes = test[:, 0] * num_nodes + test[:, 1]
    shared = np.isin(test_codes, train_codes)
    if np.any(shared):
        first = test[int(np.argmax(shared))]
        raise ValueError(
            f"{int(np.count_nonzero(shared))} test edge(s) are also training edges (in either "
            f"orientation), e.g. ({first[0]}, {first[1]}); held-out edges must be unknown"
        )
    return train, test


def _row_function(row_distances: ArrayLike | RowDistances, num_nodes: int) -> RowDistances:
    """``row_distances`` as a function ``sources (m,) -> (m, num_nodes)``; a matrix is checked."""
    if callable(row_distances):
        return row_distances
    matrix = np.asarray(row_distances)
    _check_distance_block(matrix, (num_nodes, num_nodes), "row_distances")
    return matrix.__getitem__


def _reciprocal_rank_sum(
    row: np.ndarray, node: int, known: np.ndarray, held_out: np.ndarray
) -> float:
    """Σ 1 / rank of ``node``'s held-out neighbours among its candidates, ties at mid-rank.

    ``row`` ``(num_nodes,)`` holds the distances from ``node``; the candidates
    are every node but ``node`` and its ``known`` (training) neighbours.
    """
    candidates = np.sort(np.delete(row, np.append(known, node)))
    targets = row[held_out]
    below = np.searchsorted(candidates, targets, side="left")
    equal_others = np.searchsorted(candidates, targets, side="right") - below - 1
    return np.sum(1.0 / (1.0 + below + 0.5 * equal_others))


def _reciprocal_rank_sums(
    distances: RowDistances,
    nodes: np.ndarray,
    num_nodes: int,
    chunk_size: int,
    train: _Adjacency,
    test: _Adjacency,
) -> np.ndarray:
    """``(len(nodes),)`` :func:`_reciprocal_rank_sum` of each query node.

    The distances are asked for in chunks of at most ``chunk_size`` source
    nodes, each block checked to be ``(chunk, num_nodes)`` real numbers.
    """
    sums = np.empty(nodes.size)
    for start in range(0, nodes.size, chunk_size):
        sources = nodes[start : start + chunk_size]
        block = np.asarray(distances(sources))
        what = f"row_distances(sources) for {sources.size} source node(s) from node {sources[0]}"
        _check_distance_block(block, (sources.size, num_nodes), what)
        block = block.astype(np.float64, copy=False)
        for offset, node in enumerate(sources):
            sums[start + offset] = _reciprocal_rank_sum(
                block[offset], node, train.of(node), test.of(node)
            )
    return sums


def link_prediction_ncrr(
    row_distances: ArrayLike | RowDistances,
    train_edges: ArrayLike,
    test_edges: ArrayLike,
    num_nodes: int,
    *,
    chunk_size: int = 256,
) -> NCRRResult:
    """Link prediction scored by normalised cumulative reciprocal rank (NCRR).

    For every node i with a held-out (test) edge, the candidates are the nodes
    j ≠ i that are not training neighbours of i (those are known links, so not
    ranked; the held-out neighbours stay candidates), ranked by ascending
    distance from i, ties at mid-rank; NCRR_i sums 1/rank over i's held-out
    neighbours and divides by H(m_i) = Σ_{k=1}^{m_i} 1/k, its value for a
    perfect ranking. See the module docstring for the formulas.

    Edges are undirected: an edge (i, j) ranks j among i's candidates and i
    among j's, with row i of the distances for the first and row j for the
    second (the distances need not be symmetric). Repeated edges, in either
    orientation, count once.

    Args:
        row_distances: either an ``(num_nodes, num_nodes)`` array, row i holding
            the distances from node i to every node, or a callable taking
            ``sources``, an ``(m,)`` int64 array of node ids, and returning the
            ``(m, num_nodes)`` distances from them; it is called on the query
            nodes only, in chunks of at most ``chunk_size``, so the full matrix is
            never needed. Distances may be infinite but not NaN; the diagonal
            and the training neighbours' entries are ignored.
        train_edges: ``(num_train_edges, 2)`` integer node ids of the known
            edges (may be empty).
        test_edges: ``(num_test_edges, 2)`` integer node ids of the held-out
            edges, at least one, none of them also a training edge.
        num_nodes: the number of nodes; ids are in ``[0, num_nodes)``.
        chunk_size: the most source nodes per call of ``row_distances``.

    Returns:
        An :class:`NCRRResult` with the score, the per-node values, the query
        nodes and the random-ranking baseline.

    Raises:
        ValueError: edges are not ``(k, 2)`` integers, have ids out of range or
            self loops; a test edge is also a training edge (in either
            orientation); there is no test edge; ``num_nodes`` is below 2 or
            ``chunk_size`` below 1; the distances have the wrong shape, are not
            real numbers, or hold NaN.
        TypeError: ``num_nodes`` or ``chunk_size`` is not an integer.

    >>> distances = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
    >>> result = link_prediction_ncrr(distances, np.empty((0, 2), int), [[0, 1]], 3)
    >>> result.score, result.nodes.tolist()
    (1.0, [0, 1])
    >>> result.random_baseline
    0.75
    """
    num_nodes = check_int(num_nodes, "num_nodes", minimum=2)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    train_edges, test_edges = _check_edge_split(train_edges, test_edges, num_nodes)
    distances = _row_function(row_distances, num_nodes)
    train = _adjacency(train_edges, num_nodes)
    test = _adjacency(test_edges, num_nodes)
    nodes = np.flatnonzero(test.degrees() > 0)
    per_node = _reciprocal_rank_sums(distances, nodes, num_nodes, chunk_size, train, test)
    held = test.degrees()[nodes]
    candidates_count = num_nodes - 1 - train.degrees()[nodes]
    normaliser = _harmonic(held)
    per_node /= normaliser
    baseline = held * _harmonic(candidates_count) / (candidates_count * normaliser)
    return NCRRResult(
        score=float(np.mean(per_node)),
        per_node=per_node,
        nodes=nodes,
        random_baseline=float(np.mean(baseline)),
    )


# ---------------------------------------------------------------- clustering


def _check_labels(labels: ArrayLike, name: str, size: int | None = None) -> np.ndarray:
    """Checks 1-D labels (any sortable values, no NaN); returns them as ``(n,)`` int codes."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, one label per node, got shape {array.shape}")
    if size is not None and array.size != size:
        raise ValueError(f"{name} must have {size} entries (one per node), got {array.size}")
    if np.issubdtype(array.dtype, np.floating) or np.iscomplexobj(array):
        nan = int(np.count_nonzero(np.isnan(array)))
        if nan:
            raise ValueError(f"{name} has {nan} NaN value(s); expected a label for every node")
    try:
        _, codes = np.unique(array, return_inverse=True)
    except TypeError:
        raise ValueError(
            f"{name} must hold comparable labels (e.g. integers or strings), got dtype "
            f"{array.dtype}"
        ) from None
    return codes.reshape(-1)


def clustering_accuracy(cluster_ids: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of nodes whose cluster maps to their label, under the best one-to-one map.

    Each cluster is matched to at most one label and each label to at most
    one cluster, to maximise the number of agreeing nodes (the Hungarian
    algorithm, :func:`scipy.optimize.linear_sum_assignment`, on the
    contingency table); nodes of an unmatched cluster count as wrong. The
    names of the clusters and labels do not matter, and their numbers may
    differ.

    Args:
        cluster_ids: ``(num_nodes,)`` cluster of each node (any comparable values).
        labels: ``(num_nodes,)`` true label of each node (any comparable values).

    Returns:
        The accuracy, in (0, 1].

    Raises:
        ValueError: the arrays are not 1-D, are empty, differ in length, or hold NaN.

    >>> clustering_accuracy([1, 1, 0, 0, 2], ["a", "a", "b", "b", "b"])
    0.8
    """
    clusters = _check_labels(cluster_ids, "cluster_ids")
    if clusters.size == 0:
        raise ValueError("cluster_ids is empty: need at least one node")
    truth = _check_labels(labels, "labels", size=clusters.size)
    table = np.zeros((int(clusters.max()) + 1, int(truth.max()) + 1), dtype=np.int64)
    np.add.at(table, (clusters, truth), 1)
    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / clusters.size)


def _check_node_codes(codes: ArrayLike) -> np.ndarray:
    """``(num_nodes, latent_dim)`` finite real codes, num_nodes ≥ 3, as float64."""
    array = code_matrix(codes, "codes", rows="num_nodes")
    num_nodes = array.shape[0]
    if num_nodes < 3:
        raise ValueError(
            f"codes has {num_nodes} node(s); spectral clustering into at least 2 clusters "
            "needs at least 3 nodes"
        )
    return finite_codes(array, "codes")


def _check_num_clusters(num_clusters: int | None, truth: np.ndarray, num_nodes: int) -> int:
    """The number of clusters, from 2 to ``num_nodes − 1``; by default the distinct labels'.

    ``truth`` is ``(num_nodes,)`` label codes ``0..c−1``, as :func:`_check_labels` gives.
    """
    distinct = int(truth.max()) + 1
    if num_clusters is None:
        if not 2 <= distinct <= num_nodes - 1:
            raise ValueError(
                f"labels has {distinct} distinct value(s) over {num_nodes} nodes; clustering "
                f"needs between 2 and {num_nodes - 1} (or pass num_clusters)"
            )
        num_clusters = distinct
    return check_int(
        num_clusters,
        "num_clusters",
        minimum=2,
        maximum=num_nodes - 1,
        description=f"an integer from 2 to num_nodes - 1 = {num_nodes - 1}",
    )


def _spectral_clusters(
    codes: np.ndarray, num_clusters: int, n_neighbors: int, seed: int
) -> np.ndarray:
    """``(num_nodes,)`` cluster ids of spectral clustering of ``(num_nodes, d)`` codes.

    On the symmetrised ``n_neighbors``-nearest-neighbour connectivity graph,
    with ``assign_labels="cluster_qr"``; the warning about a disconnected graph
    is silenced (see :func:`spectral_clustering_accuracy`).
    """
    from sklearn.cluster import SpectralClustering
    from sklearn.neighbors import kneighbors_graph

    connectivity = kneighbors_graph(codes, n_neighbors=n_neighbors, include_self=True)
    affinity = 0.5 * (connectivity + connectivity.T)
    model = SpectralClustering(
        n_clusters=num_clusters,
        affinity="precomputed",
        assign_labels="cluster_qr",
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Graph is not fully connected", category=UserWarning
        )
        return model.fit_predict(affinity)


def spectral_clustering_accuracy(
    codes: ArrayLike,
    labels: ArrayLike,
    *,
    num_clusters: int | None = None,
    seed: int = 0,
    n_neighbors: int = 10,
) -> float:
    """Accuracy of spectral clustering of latent codes against node labels.

    The codes are clustered by :class:`sklearn.cluster.SpectralClustering` on
    their symmetrised k-nearest-neighbour connectivity graph (the same graph as
    its ``affinity="nearest_neighbors"``: each node's ``n_neighbors`` nearest
    codes, itself included, averaged with the transpose), with
    ``assign_labels="cluster_qr"``, which needs no random restarts; ``seed``
    fixes the eigensolver's starting vector, so the result is deterministic.
    The clusters are then matched one-to-one to the labels by
    :func:`clustering_accuracy`.

    A disconnected neighbour graph is expected when the classes are well
    separated (spectral clustering then reads off the connected components),
    so scikit-learn's warning about it is silenced.

    Args:
        codes: ``(num_nodes, latent_dim)`` finite latent codes (e.g. posterior means).
        labels: ``(num_nodes,)`` class of each node (any comparable values).
        num_clusters: the number of clusters, from 2 to ``num_nodes − 1``;
            default: the number of distinct labels.
        seed: seeds the eigensolver.
        n_neighbors: the neighbours per node in the graph, itself included;
            clipped to ``num_nodes − 1``.

    Returns:
        The accuracy, in (0, 1].

    Raises:
        ValueError: ``codes`` is not 2-D, is not real, has NaN or infinite
            values, or fewer than 3 nodes; ``labels`` does not have one finite
            label per node; ``num_clusters`` (or the number of distinct
            labels) is not between 2 and ``num_nodes − 1``; ``n_neighbors`` is
            below 1.
        TypeError: ``num_clusters``, ``seed`` or ``n_neighbors`` is not an integer.

    >>> codes = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    >>> spectral_clustering_accuracy(codes, [1, 1, 1, 0, 0, 0], n_neighbors=3)
    1.0
    """
    array = _check_node_codes(codes)
    num_nodes = array.shape[0]
    truth = _check_labels(labels, "labels", size=num_nodes)
    num_clusters = _check_num_clusters(num_clusters, truth, num_nodes)
    seed = check_int(seed, "seed", minimum=0)
    n_neighbors = min(check_int(n_neighbors, "n_neighbors", minimum=1), num_nodes - 1)
    predicted = _spectral_clusters(array, num_clusters, n_neighbors, seed)
    return clustering_accuracy(predicted, truth)
