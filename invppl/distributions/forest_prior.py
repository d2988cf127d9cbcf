"""The correlated prior of Tang et al. (2019), "Correlated Variational Auto-Encoders", on a forest.

For data points joined by an acyclic graph G = (V, E) (a forest: every
component is a tree), the latent codes Z = (z_1, ..., z_n), z_i ∈ R^d, have

    p(Z) = Π_i p(z_i) · Π_{(i,j)∈E} p(z_i, z_j) / (p(z_i) p(z_j))

with p(z_i) = N(0, I_d) and p(z_i, z_j) a bivariate normal per dimension k with
unit variances and correlation τ_{(i,j),k}. Because G is acyclic, this is a
proper, normalised Gaussian: its marginals are exactly p(z_i) and p(z_i, z_j)
(a tree-structured Markov random field whose edge terms are the bivariate
normals' ratios). Per dimension, with ρ = τ,

    log p(z_i, z_j) / (p(z_i) p(z_j))
        = −½ log(1 − ρ²) − (ρ² z_i² − 2ρ z_i z_j + ρ² z_j²) / (2 (1 − ρ²)),

so :meth:`ForestPrior.log_prob` costs O((n + ``|E|``) · d). Dimensions are
independent; within one dimension the covariance is

    Σ_ij = Π_{e on the tree path i ~ j} τ_e,   and 0 across components,

(:meth:`ForestPrior.covariance`). Sampling is ancestral: each component is
rooted at its smallest node id, roots are drawn from N(0, 1), and every other
node from z_i = τ z_parent(i) + √(1 − τ²) ε_i, exactly as in
:func:`invppl.datasets.make_tree_data`. The recursion is linear,
z_i = a_i z_parent(i) + b_i, and is solved by pointer doubling over the
ancestor tables (p, p², p⁴, ...) precomputed in NumPy at construction: ⌈log₂(D + 1)⌉
vectorised gather steps for depth D, so sampling is reparameterised and works
under ``jit``, ``vmap`` and ``grad``.

The graph is static: :func:`forest_structure` checks it in NumPy (shape, range,
self-loops, duplicate edges in either orientation, cycles) and returns a
hashable :class:`Forest` (parents, roots, components, depths, BFS order). τ may
be traced (learned).

>>> import jax, jax.numpy as jnp
>>> prior = ForestPrior([[0, 1], [1, 2], [3, 4]], num_nodes=5, tau=0.5, latent_dim=2)
>>> prior.batch_shape, prior.event_shape
((), (5, 2))
>>> prior.forest.parents.tolist(), prior.forest.components.tolist()
([-1, 0, 1, -1, 3], [0, 0, 0, 1, 1])
>>> prior.covariance(dim=0)[0].round(3).tolist()
[1.0, 0.5, 0.25, 0.0, 0.0]
>>> z = jax.jit(prior.sample)(jax.random.PRNGKey(0))
>>> z.shape, prior.log_prob(z).shape
((5, 2), ())
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.util import validate_sample

from invppl._checks import check_int
from invppl.distributions._shapes import check_value_shape

__all__ = ["Forest", "ForestPrior", "TauLayout", "forest_structure"]

TauLayout = Literal["scalar", "edge", "dim", "edge_dim"]
"""How τ's trailing axes are read: ``()``, ``(|E|,)``, ``(d,)`` or ``(|E|, d)``."""

_LAYOUT_NDIM: dict[str, int] = {"scalar": 0, "edge": 1, "dim": 1, "edge_dim": 2}
_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# the graph (NumPy, static)


@dataclass(frozen=True, eq=False)
class Forest:
    """A checked forest on nodes ``0..num_nodes-1``, rooted at each component's smallest id.

    Hashable and compared by ``(num_nodes, edges)``, so it can be static
    (auxiliary) data of a JAX pytree. Build it with :func:`forest_structure`.

    Attributes:
        num_nodes: n.
        edges: ``(|E|, 2)`` int64, the edges as given.
        parents: ``(n,)`` int64 parent of each node, ``-1`` for roots.
        parent_edges: ``(n,)`` int64 index into ``edges`` of the edge to the
            parent, ``-1`` for roots.
        roots: ``(num_components,)`` int64 root of each component, increasing.
        components: ``(n,)`` int64 component label, ``components[roots[c]] == c``.
        depths: ``(n,)`` int64 number of edges from the node to its root.
        order: ``(n,)`` int64 breadth-first order (every parent before its children).
    """

    num_nodes: int
    edges: np.ndarray
    parents: np.ndarray
    parent_edges: np.ndarray
    roots: np.ndarray
    components: np.ndarray
    depths: np.ndarray
    order: np.ndarray
    _key: tuple[int, bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", (self.num_nodes, self.edges.tobytes()))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forest) and self._key == other._key

    @property
    def num_edges(self) -> int:
        """The number of edges, ``|E|``."""
        return int(self.edges.shape[0])

    @property
    def num_components(self) -> int:
        """The number of trees (isolated nodes count as one-node trees)."""
        return int(self.roots.shape[0])

    @property
    def max_depth(self) -> int:
        """The largest node depth (0 for a forest without edges)."""
        return int(self.depths.max()) if self.num_nodes else 0

    def ancestor_tables(self) -> np.ndarray:
        """``(K, n)`` int64: row k is the 2^k-th ancestor of each node (roots map to themselves).

        ``K = ⌈log₂(max_depth + 1)⌉``, enough for pointer doubling to reach every root.
        """
        steps = math.ceil(math.log2(self.max_depth + 1))
        jump = np.where(self.parents < 0, np.arange(self.num_nodes), self.parents)
        tables = []
        for _ in range(steps):
            tables.append(jump)
            jump = jump[jump]
        return np.asarray(tables, dtype=np.int64).reshape(steps, self.num_nodes)


def _as_edge_array(edges: ArrayLike | Sequence[Sequence[int]]) -> np.ndarray:
    if isinstance(edges, jax.core.Tracer):
        raise TypeError(
            "edges must be a concrete integer array (the graph is static), got a traced "
            "JAX value; build the prior outside jit/vmap or pass the edges as NumPy"
        )
    array = np.asarray(edges)
    if array.shape == (0,):  # an empty list: no edges
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"edges must be an integer array of shape (num_edges, 2), got shape {array.shape}"
        )
    if array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"edges must hold integer node ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _tree_path(adjacency: list[list[int]], start: int, goal: int) -> list[int]:
    """The node path start → goal in the forest so far (breadth-first search)."""
    previous = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for neighbour in adjacency[node]:
            if neighbour not in previous:
                previous[neighbour] = node
                queue.append(neighbour)
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def _checked_edges(edges: ArrayLike | Sequence[Sequence[int]], num_nodes: int) -> np.ndarray:
    """``edges`` as ``(|E|, 2)`` int64 after the shape, range, self-loop and duplicate checks.

    Shared by :func:`forest_structure` and
    :func:`~invppl.distributions.spanning_tree.spanning_tree_edge_weights`.
    """
    array = _as_edge_array(edges)
    bad = np.flatnonzero(((array < 0) | (array >= num_nodes)).any(axis=1))
    if bad.size:
        index = int(bad[0])
        raise ValueError(
            f"edge {index} = {tuple(array[index].tolist())} has a node id outside "
            f"0..{num_nodes - 1} (num_nodes={num_nodes})"
        )
    loops = np.flatnonzero(array[:, 0] == array[:, 1])
    if loops.size:
        index = int(loops[0])
        raise ValueError(
            f"edge {index} = {tuple(array[index].tolist())} is a self-loop on node "
            f"{int(array[index, 0])}; edges must join two distinct nodes"
        )
    seen: dict[tuple[int, int], int] = {}
    for index, pair in enumerate(map(tuple, np.sort(array, axis=1).tolist())):
        if pair in seen:
            first = seen[pair]
            raise ValueError(
                f"edge {index} = {tuple(array[index].tolist())} duplicates edge {first} = "
                f"{tuple(array[first].tolist())} (edges are undirected); give each edge once"
            )
        seen[pair] = index
    return array


def forest_structure(edges: ArrayLike | Sequence[Sequence[int]], num_nodes: int) -> Forest:
    """Checks that ``edges`` form a forest on ``num_nodes`` nodes and roots every tree.

    Args:
        edges: ``(|E|, 2)`` integer node-id pairs; orientation does not matter
            (``(i, j)`` and ``(j, i)`` are the same undirected edge). May be empty.
        num_nodes: n ≥ 1; node ids are ``0..n-1``, nodes without edges are
            one-node trees.

    Returns:
        The :class:`Forest`, each component rooted at its smallest node id.

    Raises:
        TypeError: ``num_nodes`` is not an integer; ``edges`` is traced or not integer.
        ValueError: ``edges`` is not ``(|E|, 2)``; a node id is outside
            ``0..n-1``; a self-loop; a duplicate edge (either orientation); a
            cycle (the message lists one cycle's nodes and the edge closing it).

    >>> forest_structure([[2, 1], [1, 0]], num_nodes=4).parents.tolist()
    [-1, 0, 1, -1]
    """
    num_nodes = check_int(num_nodes, "num_nodes", minimum=1)
    array = _checked_edges(edges, num_nodes)
    incident = _incident_edges_if_acyclic(array, num_nodes)
    parents, parent_edges, components, depths, order, roots = _root_components(array, incident)
    return Forest(
        num_nodes=num_nodes,
        edges=array,
        parents=parents,
        parent_edges=parent_edges,
        roots=roots,
        components=components,
        depths=depths,
        order=order,
    )


def _incident_edges_if_acyclic(array: np.ndarray, num_nodes: int) -> list[list[int]]:
    """Each node's incident edge indices, after checking by union-find that no edge closes a cycle.

    Raises:
        ValueError: an edge joins two nodes already connected; the message
            lists the cycle's nodes and the edge closing it.
    """
    component = list(range(num_nodes))

    def find(node: int) -> int:
        while component[node] != node:
            component[node] = component[component[node]]
            node = component[node]
        return node

    adjacency: list[list[int]] = [[] for _ in range(num_nodes)]
    incident: list[list[int]] = [[] for _ in range(num_nodes)]
    for index, (i, j) in enumerate(array.tolist()):
        root_i, root_j = find(i), find(j)
        if root_i == root_j:
            cycle = _tree_path(adjacency, j, i)
            described = " -> ".join(str(node) for node in [*cycle, j])
            raise ValueError(
                f"the edges contain a cycle through nodes {described} (closed by edge "
                f"{index} = ({i}, {j})); a forest prior needs an acyclic graph"
            )
        component[root_i] = root_j
        adjacency[i].append(j)
        adjacency[j].append(i)
        incident[i].append(index)
        incident[j].append(index)
    return incident


def _root_components(
    array: np.ndarray, incident: list[list[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Roots each tree at its smallest node and walks it breadth first.

    Returns:
        ``(parents, parent_edges, components, depths, order, roots)`` as in
        :class:`Forest`, each int64.
    """
    num_nodes = len(incident)
    parents = np.full(num_nodes, -1, dtype=np.int64)
    parent_edges = np.full(num_nodes, -1, dtype=np.int64)
    components = np.full(num_nodes, -1, dtype=np.int64)
    depths = np.zeros(num_nodes, dtype=np.int64)
    order: list[int] = []
    roots: list[int] = []
    for root in range(num_nodes):
        if components[root] >= 0:
            continue
        label = len(roots)
        roots.append(root)
        components[root] = label
        queue = deque([root])
        while queue:
            node = queue.popleft()
            order.append(node)
            for index in incident[node]:
                other = int(array[index, 0] + array[index, 1] - node)
                if components[other] < 0:
                    components[other] = label
                    parents[other] = node
                    parent_edges[other] = index
                    depths[other] = depths[node] + 1
                    queue.append(other)
    return (
        parents,
        parent_edges,
        components,
        depths,
        np.asarray(order, dtype=np.int64),
        np.asarray(roots, dtype=np.int64),
    )


# ---------------------------------------------------------------------------
# τ


def _is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _infer_layout(shape: tuple[int, ...], num_edges: int, latent_dim: int | None) -> TauLayout:
    if len(shape) == 0:
        return "scalar"
    if len(shape) == 1:
        per_edge = shape[0] == num_edges
        per_dim = latent_dim is None or shape[0] == latent_dim
        if per_edge and per_dim:
            raise ValueError(
                f"tau of shape {shape} could be per edge (|E| = {num_edges}) or per "
                f"dimension (latent_dim = {latent_dim}); pass tau_layout='edge' or 'dim'"
            )
        if per_edge:
            return "edge"
        if per_dim:
            return "dim"
    if len(shape) == 2 and shape[0] == num_edges and latent_dim in (None, shape[1]):
        return "edge_dim"
    raise ValueError(
        f"tau of shape {shape} is none of (), (|E|,) = ({num_edges},), (d,)"
        + (f" = ({latent_dim},)" if latent_dim is not None else "")
        + f" or (|E|, d) = ({num_edges}, {latent_dim if latent_dim is not None else 'd'}); "
        "for leading batch dimensions pass tau_layout explicitly"
    )


def _check_tau_values(tau: Array) -> None:
    if not _is_concrete(tau):
        return
    values = np.asarray(tau)
    bad = ~(np.abs(values) < 1)  # also catches nan
    if bad.any():
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
        where = f"tau{list(index)}" if index else "tau"
        raise ValueError(
            "tau must lie strictly inside (-1, 1) (a correlation, 1 - tau^2 > 0), got "
            f"{where} = {float(values[index])!r}"
        )


# ---------------------------------------------------------------------------
# the distribution


class ForestPrior(dist.Distribution):
    """p(Z) of a Gaussian forest-structured Markov random field, Z of shape ``(n, d)``.

    Args:
        edges: ``(|E|, 2)`` integer node pairs forming a forest (see
            :func:`forest_structure`), or an already checked :class:`Forest`.
        num_nodes: n; may be omitted when ``edges`` is a :class:`Forest`.
        tau: the per-edge, per-dimension correlations, strictly inside (-1, 1).
            Its trailing axes follow ``tau_layout``: ``()`` one τ for all,
            ``(|E|,)`` per edge, ``(d,)`` per dimension, ``(|E|, d)`` per edge and
            dimension. May be traced (learned).
        latent_dim: d; required unless τ's layout carries it (``"dim"`` and
            ``"edge_dim"``), and checked against it when both are given.
        tau_layout: how to read τ's trailing axes. By default inferred from
            τ's shape without batch dimensions (an error asks for it when a
            1-D τ could be either per edge or per dimension). When given, any
            axes of τ before the layout's are batch dimensions.
        validate_args: NumPyro's argument and sample validation.

    ``event_shape`` is ``(n, d)``; ``batch_shape`` is τ's leading batch axes
    (``()`` unless ``tau_layout`` is given and τ has extra leading axes).

    Raises:
        TypeError, ValueError: the graph is not a forest (see
            :func:`forest_structure`); τ's shape fits no layout; a concrete τ
            has ``|τ| ≥ 1`` (the message names the entry); ``latent_dim``
            is missing or disagrees with τ. A traced τ is not checked: values
            with ``|τ| ≥ 1`` give ``nan``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "tau": constraints.open_interval(-1.0, 1.0),
    }
    support = constraints.independent(constraints.real, 2)
    reparametrized_params: ClassVar[list[str]] = ["tau"]
    pytree_data_fields = ("tau",)
    pytree_aux_fields = ("forest", "tau_layout", "latent_dim")

    def __init__(
        self,
        edges: Forest | ArrayLike | Sequence[Sequence[int]],
        num_nodes: int | None = None,
        *,
        tau: ArrayLike | Sequence[float] | Sequence[Sequence[float]],
        latent_dim: int | None = None,
        tau_layout: TauLayout | None = None,
        validate_args: bool | None = None,
    ):
        if isinstance(edges, Forest):
            if num_nodes is not None and num_nodes != edges.num_nodes:
                raise ValueError(
                    f"num_nodes={num_nodes} disagrees with the Forest's {edges.num_nodes} nodes"
                )
            forest = edges
        else:
            if num_nodes is None:
                raise TypeError("num_nodes is required when edges is an edge array")
            forest = forest_structure(edges, num_nodes)
        if latent_dim is not None:
            latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        tau = jnp.asarray(tau, dtype=jnp.result_type(float))
        if tau_layout is None:
            layout = _infer_layout(tau.shape, forest.num_edges, latent_dim)
        elif tau_layout in _LAYOUT_NDIM:
            layout = tau_layout
        else:
            raise ValueError(
                f"tau_layout must be one of {sorted(_LAYOUT_NDIM)}, got {tau_layout!r}"
            )
        ndim = _LAYOUT_NDIM[layout]
        if tau.ndim < ndim:
            raise ValueError(
                f"tau_layout={layout!r} needs tau with at least {ndim} axes, got shape {tau.shape}"
            )
        trailing = tau.shape[tau.ndim - ndim :]
        if layout in ("edge", "edge_dim") and trailing[0] != forest.num_edges:
            raise ValueError(
                f"tau_layout={layout!r} needs tau's axis {-ndim} to have |E| = "
                f"{forest.num_edges} entries, got shape {tau.shape}"
            )
        if layout in ("dim", "edge_dim"):
            if latent_dim is not None and trailing[-1] != latent_dim:
                raise ValueError(
                    f"tau's last axis has {trailing[-1]} entries but latent_dim={latent_dim} "
                    f"(tau_layout={layout!r}, tau shape {tau.shape})"
                )
            latent_dim = check_int(trailing[-1], "tau's dimension axis", minimum=1)
        if latent_dim is None:
            raise TypeError(
                f"latent_dim is required when tau does not have a dimension axis "
                f"(tau_layout={layout!r}, tau shape {tau.shape})"
            )
        _check_tau_values(tau)
        self.forest = forest
        self.tau = tau
        self.tau_layout = layout
        self.latent_dim = latent_dim
        super().__init__(
            batch_shape=tau.shape[: tau.ndim - ndim],
            event_shape=(forest.num_nodes, latent_dim),
            validate_args=validate_args,
        )

    @property
    def mean(self) -> Array:
        """Zeros, ``batch_shape + (n, d)``."""
        return jnp.zeros(self.batch_shape + self.event_shape, dtype=self.tau.dtype)

    @property
    def variance(self) -> Array:
        """Ones, ``batch_shape + (n, d)``: every z_i is N(0, I_d)."""
        return jnp.ones(self.batch_shape + self.event_shape, dtype=self.tau.dtype)

    def edge_tau(self) -> Array:
        """τ broadcast to ``batch_shape + (|E|, d)``."""
        return _edge_tau(self.tau, self.tau_layout, self.forest.num_edges, self.latent_dim)

    @validate_sample
    def log_prob(self, value: ArrayLike) -> Array:
        """log p(Z), shape ``sample_shape + batch_shape`` for ``value`` of ``... + (n, d)``.

        Raises:
            ValueError: ``value`` does not end in ``(n, d)``, or its leading
                axes do not broadcast against ``batch_shape`` (without the
                check, node ids past the value's rows would be clamped and a
                number returned).
        """
        value = jnp.asarray(value)
        check_value_shape(
            "ForestPrior.log_prob",
            value.shape,
            self.batch_shape,
            self.event_shape,
            ("num_nodes", "latent_dim"),
        )
        return _log_prob(self.forest, self.tau_layout, self.latent_dim, self.tau, value)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Exact ancestral draws, ``sample_shape + batch_shape + (n, d)``, reparameterised in τ."""
        return _sample(
            self.forest, self.tau_layout, self.latent_dim, tuple(sample_shape), self.tau, key
        )

    def covariance(self, dim: int | None = None) -> Array:
        """The covariance of one dimension across nodes, Σ_ij = Π τ along the path i ~ j.

        Zero across components; unit diagonal. Computed as W Wᵀ, where
        W_{i,a} = s_a Π τ along the path from the ancestor a down to i (s_a =
        √(1 − τ²) of a's edge to its parent, 1 for a root) is the sampler's
        recursion applied to unit noise: O(n² log D) per dimension, meant for
        inspection and moderate graphs.

        Args:
            dim: which latent dimension; ``None`` gives all of them.

        Returns:
            ``batch_shape + (n, n)`` for one dimension, ``batch_shape + (d, n, n)``
            for all.
        """
        if dim is not None:
            dim = check_int(dim, "dim", minimum=0, maximum=self.latent_dim - 1)
        return _covariance(self.forest, self.tau_layout, self.latent_dim, dim, self.tau)


# ---------------------------------------------------------------------------
# kernels (jitted with the graph static, so eager calls compile once per forest)


def _edge_tau(tau: Array, layout: str, num_edges: int, latent_dim: int) -> Array:
    """τ broadcast to ``batch + (|E|, d)``."""
    batch_shape = tau.shape[: tau.ndim - _LAYOUT_NDIM[layout]]
    if layout == "scalar":
        tau = tau[..., None, None]
    elif layout == "edge":
        tau = tau[..., None]
    elif layout == "dim":
        tau = tau[..., None, :]
    return jnp.broadcast_to(tau, (*batch_shape, num_edges, latent_dim))


def _node_coefficients(
    forest: Forest, layout: str, latent_dim: int, tau: Array
) -> tuple[Array, Array]:
    """``(a, s)``, each ``batch + (n, d)``: z_i = a_i z_parent(i) + s_i ε_i; roots a = 0, s = 1."""
    batch_shape = tau.shape[: tau.ndim - _LAYOUT_NDIM[layout]]
    if forest.num_edges == 0:
        a = jnp.zeros((*batch_shape, forest.num_nodes, latent_dim), dtype=tau.dtype)
    else:
        edge_tau = _edge_tau(tau, layout, forest.num_edges, latent_dim)
        gathered = edge_tau[..., np.maximum(forest.parent_edges, 0), :]
        a = jnp.where(jnp.asarray(forest.parents < 0)[:, None], 0.0, gathered)
    return a, jnp.sqrt(1.0 - a**2)


def _unroll(forest: Forest, a: Array, b: Array) -> Array:
    """Solves z_i = a_i z_{p(i)} + b_i along axis -2 (the nodes) by pointer doubling.

    Roots have p(i) = i and a_i = 0. After step k, ``a_i`` is the product of the
    coefficients on the 2^k edges above i and ``b_i`` holds those ancestors'
    contributions; ⌈log₂(D + 1)⌉ steps reach every root (whose a = 0 ends the sum).
    """
    for jump in forest.ancestor_tables():
        b = b + a * b[..., jump, :]
        a = a * a[..., jump, :]
    return b


@partial(jax.jit, static_argnums=(0, 1, 2))
def _log_prob(forest: Forest, layout: str, latent_dim: int, tau: Array, value: Array) -> Array:
    value = jnp.asarray(value)
    singles = -0.5 * jnp.sum(value**2 + _LOG_2PI, axis=(-2, -1))
    batch_shape = tau.shape[: tau.ndim - _LAYOUT_NDIM[layout]]
    if forest.num_edges == 0:
        return jnp.broadcast_to(singles, jnp.broadcast_shapes(singles.shape, batch_shape))
    rho = _edge_tau(tau, layout, forest.num_edges, latent_dim)
    z_i = value[..., forest.edges[:, 0], :]
    z_j = value[..., forest.edges[:, 1], :]
    pairs = -0.5 * jnp.log1p(-(rho**2)) - (rho**2 * (z_i**2 + z_j**2) - 2.0 * rho * z_i * z_j) / (
        2.0 * (1.0 - rho**2)
    )
    return singles + jnp.sum(pairs, axis=(-2, -1))


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _sample(
    forest: Forest,
    layout: str,
    latent_dim: int,
    sample_shape: tuple[int, ...],
    tau: Array,
    key: Array,
) -> Array:
    batch_shape = tau.shape[: tau.ndim - _LAYOUT_NDIM[layout]]
    shape = (*sample_shape, *batch_shape, forest.num_nodes, latent_dim)
    noise = jax.random.normal(key, shape, dtype=tau.dtype)
    a, s = _node_coefficients(forest, layout, latent_dim, tau)
    return _unroll(forest, a, s * noise)


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _covariance(forest: Forest, layout: str, latent_dim: int, dim: int | None, tau: Array) -> Array:
    a, s = _node_coefficients(forest, layout, latent_dim, tau)
    a = jnp.moveaxis(a, -1, -2)[..., None]  # batch + (d, n, 1)
    s = jnp.moveaxis(s, -1, -2)[..., None]
    if dim is not None:
        a, s = a[..., dim, :, :], s[..., dim, :, :]
    weights = _unroll(forest, a, s * jnp.eye(forest.num_nodes, dtype=s.dtype))
    return weights @ jnp.swapaxes(weights, -1, -2)
