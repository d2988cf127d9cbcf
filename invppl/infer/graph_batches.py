"""Minibatches of a graph's nodes, edges and non-edges for one SVI step.

A graph model's objective (the Correlated VAE's, Tang et al. 2019) is a sum of
node terms, edge terms and, for CVAE_corr, a term over non-edges:

    L = Σ_i ℓ_i + Σ_(i,j)∈E w_ij e_ij + γ (``|E|`` / ``|N|``) Σ_(i,j)∈N m_ij,

with N the node pairs that are not edges and γ the non-edge weight (the
non-edge sum is rescaled to the size of the edge sum, so γ = 1 weighs them
alike). :func:`~invppl.infer.fit` draws B nodes per step (an epoch's
permutation); :class:`GraphBatches`, passed as its ``extend_batch``, adds per
step

- ``B_E`` edges drawn uniformly with replacement from E, and
- ``B_N`` node pairs drawn uniformly from the n(n − 1)/2 pairs; the few that
  are edges are masked out (``non_edge_mask``),

with their endpoints' rows of every data array and the weights that make the
step's objective an unbiased estimate of (B / n) L:

    edge_weight     = w_ij · (``|E|`` / B_E) · (B / n)
    non_edge_weight = γ · (``|E|`` / ``|N|``) · (P / B_N) · (B / n),   P = n(n − 1)/2,

the masked pairs contributing nothing (a pair is a non-edge with probability
``|N|`` / P). A model scales its node sites by 1, its edge sites by
``edge_weight`` and its non-edge sites by ``non_edge_weight`` (masked by
``non_edge_mask``); :func:`fit` divides the loss by B, so it reports L / n.

Cost per step: O(B + B_E + B_N) gathers plus a binary search per non-edge
candidate over its endpoint's sorted neighbours (O(log max degree)); nothing
scales with ``|E|`` except the tables (edges, CSR adjacency, weights: O(n + ``|E|``)
memory), which the compiled step holds as constants. The edge weights default to
:func:`~invppl.distributions.spanning_tree.spanning_tree_edge_weights` (all 1 on a
forest, computed in O(n); dense per cyclic component, see there).

>>> import numpy as np, jax
>>> batches = GraphBatches([[0, 1], [1, 2], [2, 3]], 4, edges_per_step=2, non_edges_per_step=3)
>>> x = np.eye(4, dtype=np.float32)
>>> extras = batches(jax.random.key(0), {"x": x[:2]}, {"x": x})
>>> sorted(extras), extras["edge_x"].shape
(['edge_weight', 'edge_x', 'non_edge_mask', 'non_edge_weight', 'non_edge_x'], (2, 2, 4))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from invppl._checks import check_int
from invppl.distributions.forest_prior import _checked_edges
from invppl.distributions.spanning_tree import spanning_tree_edge_weights

__all__ = ["GraphBatches"]


class GraphBatches:
    """Draws a step's edges and non-edges of a graph: ``fit(..., extend_batch=batches)``.

    Args:
        edges: ``(|E|, 2)`` integer node ids (undirected; cycles allowed),
            at least one edge.
        num_nodes: n, the rows of the data given to :func:`~invppl.infer.fit`
            (node i is row i).
        edges_per_step: B_E ≥ 1, edges drawn per step (with replacement).
        non_edges_per_step: B_N ≥ 0, node pairs drawn per step for the
            non-edge term (0 leaves it out: no ``non_edge_*`` arrays).
        non_edge_weight: γ > 0, the weight of the non-edge term.
        edge_weights: ``(|E|,)`` positive weights w_ij; by default each edge's
            probability of lying in a uniform spanning tree of its component.

    Calling it as ``batches(key, batch, data)`` returns, for every array
    ``data[name]`` ``(n, ...)``: ``edge_<name>`` ``(B_E, 2, ...)`` and
    ``non_edge_<name>`` ``(B_N, 2, ...)`` (the two endpoints' rows), and
    ``edge_weight`` ``(B_E,)``, ``non_edge_weight`` ``(B_N,)``,
    ``non_edge_mask`` ``(B_N,)`` bool (False where the drawn pair is an edge).
    The node minibatch size B is read from ``batch``'s arrays.

    Raises:
        ValueError: bad edges (see
            :func:`~invppl.distributions.forest_prior.forest_structure`), no
            edges, non-positive weights or weights of the wrong shape, a graph
            with no non-edges when ``non_edges_per_step > 0``.
    """

    def __init__(
        self,
        edges: ArrayLike | Sequence[Sequence[int]],
        num_nodes: int,
        *,
        edges_per_step: int,
        non_edges_per_step: int = 0,
        non_edge_weight: float = 1.0,
        edge_weights: ArrayLike | None = None,
    ) -> None:
        self.num_nodes = check_int(num_nodes, "num_nodes", minimum=2)
        self.edges = _checked_edges(edges, self.num_nodes)
        if self.edges.shape[0] == 0:
            raise ValueError("GraphBatches needs a graph with at least one edge, got none")
        self.edges_per_step = check_int(edges_per_step, "edges_per_step", minimum=1)
        self.non_edges_per_step = check_int(non_edges_per_step, "non_edges_per_step", minimum=0)
        gamma = float(non_edge_weight)
        if not (math.isfinite(gamma) and gamma > 0.0):
            raise ValueError(
                f"non_edge_weight must be a finite number > 0, got {gamma!r}; leave the "
                "non-edge term out with non_edges_per_step=0"
            )
        self.non_edge_weight = gamma
        num_edges = self.edges.shape[0]
        if edge_weights is None:
            weights = spanning_tree_edge_weights(self.edges, self.num_nodes)
        else:
            weights = np.asarray(edge_weights, dtype=np.float64)
            if weights.shape != (num_edges,):
                raise ValueError(
                    f"edge_weights must have shape ({num_edges},), one per edge, got "
                    f"{weights.shape}"
                )
            if not np.all(np.isfinite(weights) & (weights > 0)):
                bad = int(np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))[0])
                raise ValueError(
                    f"edge_weights must be finite and positive; entry {bad} is {weights[bad]!r}"
                )
        self.edge_weights = weights
        self.num_pairs = self.num_nodes * (self.num_nodes - 1) // 2
        self.num_non_edges = self.num_pairs - num_edges
        if self.non_edges_per_step and self.num_non_edges == 0:
            raise ValueError(
                "the graph is complete (every pair is an edge), so there are no non-edges to "
                "draw; use non_edges_per_step=0"
            )
        # CSR adjacency, both orientations, neighbours sorted within each row.
        both = np.concatenate([self.edges, self.edges[:, ::-1]])
        order = np.lexsort((both[:, 1], both[:, 0]))
        self._neighbours = both[order, 1].astype(np.int32)
        counts = np.bincount(both[:, 0], minlength=self.num_nodes)
        self._indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        self._search_steps = max(1, int(counts.max()).bit_length())

    def __repr__(self) -> str:
        return (
            f"GraphBatches(num_nodes={self.num_nodes}, num_edges={self.edges.shape[0]}, "
            f"edges_per_step={self.edges_per_step}, "
            f"non_edges_per_step={self.non_edges_per_step}, "
            f"non_edge_weight={self.non_edge_weight})"
        )

    @property
    def __name__(self) -> str:  # names the extension in fit's checkpoint metadata
        return repr(self)

    def is_edge(self, a: Array, b: Array) -> Array:
        """Whether each pair ``(a[k], b[k])`` is an edge, by binary search: shape of ``a``."""
        indptr, neighbours = jnp.asarray(self._indptr), jnp.asarray(self._neighbours)
        lo, end = indptr[a], indptr[a + 1]
        hi = end
        for _ in range(self._search_steps):
            mid = (lo + hi) // 2
            right = neighbours[jnp.minimum(mid, neighbours.shape[0] - 1)] < b
            searching = lo < hi
            lo = jnp.where(searching & right, mid + 1, lo)
            hi = jnp.where(searching & ~right, mid, hi)
        found = neighbours[jnp.minimum(lo, neighbours.shape[0] - 1)] == b
        return (lo < end) & found

    def __call__(
        self, key: Array, batch: Mapping[str, Array], data: Mapping[str, Array]
    ) -> dict[str, Array]:
        """The step's extras (see the class docstring)."""
        clash = sorted(name for name in data if name in ("weight", "mask"))
        if clash:
            raise ValueError(
                f"data arrays named {clash} would collide with GraphBatches' edge_weight / "
                "non_edge_mask outputs; rename them"
            )
        rows = {int(jnp.shape(array)[0]) for array in data.values()}
        if rows != {self.num_nodes}:
            raise ValueError(
                f"GraphBatches was built for {self.num_nodes} nodes, but the data arrays have "
                f"{sorted(rows)} rows; node i must be row i of every array"
            )
        batch_size = int(jnp.shape(next(iter(batch.values())))[0])
        per_node = batch_size / self.num_nodes
        edge_key, first_key, second_key = jax.random.split(key, 3)
        num_edges = self.edges.shape[0]
        chosen = jax.random.randint(edge_key, (self.edges_per_step,), 0, num_edges)
        pairs = jnp.asarray(self.edges, jnp.int32)[chosen]
        weight_scale = num_edges / self.edges_per_step * per_node
        extras = {f"edge_{name}": jnp.take(array, pairs, axis=0) for name, array in data.items()}
        extras["edge_weight"] = jnp.asarray(self.edge_weights, jnp.float32)[chosen] * weight_scale
        if self.non_edges_per_step:
            size = (self.non_edges_per_step,)
            a = jax.random.randint(first_key, size, 0, self.num_nodes)
            b = jax.random.randint(second_key, size, 0, self.num_nodes - 1)
            b = b + (b >= a)  # uniform over the pairs with b != a
            non_pairs = jnp.stack([a, b], axis=1)
            for name, array in data.items():
                extras[f"non_edge_{name}"] = jnp.take(array, non_pairs, axis=0)
            scale = (
                self.non_edge_weight
                * num_edges
                / self.num_non_edges
                * self.num_pairs
                / self.non_edges_per_step
                * per_node
            )
            extras["non_edge_weight"] = jnp.full(size, scale, jnp.float32)
            extras["non_edge_mask"] = ~self.is_edge(a, b)
        return extras
