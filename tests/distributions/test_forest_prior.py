"""ForestPrior against a Gaussian oracle built independently from the pairwise factors."""

from __future__ import annotations

import re
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from invppl.distributions import Forest, ForestPrior, forest_structure

LAYOUTS = ("scalar", "edge", "dim", "edge_dim")


# ---------------------------------------------------------------------------
# test-side generators and oracles


def random_forest(rng: np.random.Generator, n: int, attach: float = 0.8) -> np.ndarray:
    """A random forest on n nodes: relabelled, edges shuffled and randomly oriented."""
    edges = [(int(rng.integers(i)), i) for i in range(1, n) if rng.random() < attach]
    labels = rng.permutation(n)
    array = np.asarray([(labels[a], labels[b]) for a, b in edges], dtype=np.int64).reshape(-1, 2)
    array = array[rng.permutation(len(array))]
    flip = rng.random(len(array)) < 0.5
    array[flip] = array[flip, ::-1]
    return array


def random_tau(rng: np.random.Generator, layout: str, num_edges: int, d: int) -> np.ndarray:
    shape = {"scalar": (), "edge": (num_edges,), "dim": (d,), "edge_dim": (num_edges, d)}[layout]
    return rng.uniform(-0.9, 0.9, size=shape).astype(np.float32)


def full_tau(tau: np.ndarray, layout: str, num_edges: int, d: int) -> np.ndarray:
    """τ as (|E|, d), float64."""
    tau = np.asarray(tau, dtype=np.float64)
    if layout == "edge":
        tau = tau[:, None]
    elif layout == "dim":
        tau = tau[None, :]
    return np.broadcast_to(tau, (num_edges, d))


def oracle_precision(n: int, edges: np.ndarray, tau_k: np.ndarray) -> np.ndarray:
    """Precision of one dimension: singletons' I plus each edge's bivariate precision minus I."""
    precision = np.eye(n)
    for (i, j), t in zip(edges.tolist(), tau_k.tolist(), strict=True):
        block = np.linalg.inv(np.array([[1.0, t], [t, 1.0]])) - np.eye(2)
        precision[np.ix_([i, j], [i, j])] += block
    return precision


def oracle_path_covariance(n: int, edges: np.ndarray, tau_k: np.ndarray) -> np.ndarray:
    """Σ_ij = product of τ along the path, by breadth-first search from every node."""
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for (i, j), t in zip(edges.tolist(), tau_k.tolist(), strict=True):
        neighbours[i].append((j, t))
        neighbours[j].append((i, t))
    covariance = np.zeros((n, n))
    for source in range(n):
        product = {source: 1.0}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for other, t in neighbours[node]:
                if other not in product:
                    product[other] = product[node] * t
                    queue.append(other)
        for node, value in product.items():
            covariance[source, node] = value
    return covariance


def oracle_log_prob(n: int, edges: np.ndarray, tau_full: np.ndarray, z: np.ndarray) -> float:
    total = 0.0
    for k in range(tau_full.shape[1]):
        covariance = np.linalg.inv(oracle_precision(n, edges, tau_full[:, k]))
        total += stats.multivariate_normal(np.zeros(n), covariance).logpdf(z[:, k])
    return float(total)


def tree_cycle(n: int, edges: np.ndarray, start: int, goal: int) -> list[int]:
    """Nodes on the tree path start ~ goal (depth-first search)."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in edges.tolist():
        neighbours[i].append(j)
        neighbours[j].append(i)
    stack = [(start, [start])]
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        stack.extend((o, [*path, o]) for o in neighbours[node] if o not in path)
    raise AssertionError("not connected")


# ---------------------------------------------------------------------------
# structure


@settings(max_examples=15)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_structure_is_a_rooted_forest(n, seed):
    rng = np.random.default_rng(seed)
    edges = random_forest(rng, n)
    forest = forest_structure(edges, n)
    assert isinstance(forest, Forest)
    # each edge joins a node and its parent, through that node's parent edge
    child_of_edge = sorted(int(i) for i in np.flatnonzero(forest.parents >= 0))
    assert len(child_of_edge) == len(edges)
    for child in child_of_edge:
        i, j = edges[forest.parent_edges[child]]
        assert {int(i), int(j)} == {child, int(forest.parents[child])}
    # components: nodes are connected iff the path covariance with τ = 1 is 1
    connected = oracle_path_covariance(n, edges, np.ones(len(edges))) == 1.0
    np.testing.assert_array_equal(forest.components[:, None] == forest.components, connected)
    for label, root in enumerate(forest.roots):
        assert forest.parents[root] == -1
        assert root == np.flatnonzero(forest.components == label).min()
    position = np.argsort(forest.order)
    assert sorted(forest.order.tolist()) == list(range(n))
    for child in child_of_edge:
        assert position[forest.parents[child]] < position[child]
        assert forest.depths[child] == forest.depths[forest.parents[child]] + 1
    assert hash(forest) == hash(forest_structure(edges.copy(), n))
    assert forest == forest_structure(edges.copy(), n)


# ---------------------------------------------------------------------------
# log_prob and covariance against the oracle


@settings(max_examples=20)
@given(
    n=st.integers(1, 12),
    d=st.integers(1, 3),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**16),
)
def test_log_prob_matches_multivariate_normal(n, d, layout, seed):
    rng = np.random.default_rng(seed)
    edges = random_forest(rng, n)
    if layout == "edge" and len(edges) == d:
        d += 1  # keep the 1-D τ unambiguous so the default layout inference is tested
    tau = random_tau(rng, layout, len(edges), d)
    prior = ForestPrior(edges, n, tau=tau, latent_dim=d)
    assert prior.tau_layout == layout
    assert prior.event_shape == (n, d)
    assert prior.batch_shape == ()
    z = rng.normal(size=(n, d)).astype(np.float32)
    expected = oracle_log_prob(n, edges, full_tau(tau, layout, len(edges), d), z)
    np.testing.assert_allclose(float(prior.log_prob(z)), expected, rtol=1e-5, atol=2e-4)


@settings(max_examples=15)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_covariance_matches_precision_and_path_oracles(n, seed):
    rng = np.random.default_rng(seed)
    edges = random_forest(rng, n)
    d = 2
    tau = random_tau(rng, "edge_dim", len(edges), d)
    prior = ForestPrior(edges, n, tau=tau)
    by_path = np.stack([oracle_path_covariance(n, edges, tau[:, k]) for k in range(d)])
    by_precision = np.stack(
        [np.linalg.inv(oracle_precision(n, edges, tau[:, k].astype(np.float64))) for k in range(d)]
    )
    np.testing.assert_allclose(by_path, by_precision, atol=1e-5)  # the oracles agree
    np.testing.assert_allclose(np.asarray(prior.covariance()), by_path, atol=1e-5)
    np.testing.assert_allclose(np.asarray(prior.covariance(dim=1)), by_path[1], atol=1e-5)


def test_no_edges_is_standard_normal():
    prior = ForestPrior(np.zeros((0, 2), dtype=int), 4, tau=0.5, latent_dim=3)
    z = np.random.default_rng(0).normal(size=(4, 3))
    expected = stats.norm.logpdf(z).sum()
    np.testing.assert_allclose(float(prior.log_prob(z)), expected, rtol=1e-5)
    assert prior.sample(jax.random.PRNGKey(0), (2,)).shape == (2, 4, 3)


def test_batch_dims_with_explicit_layout():
    rng = np.random.default_rng(1)
    edges = random_forest(rng, 7, attach=1.0)
    tau = rng.uniform(-0.9, 0.9, size=(3, len(edges))).astype(np.float32)
    prior = ForestPrior(edges, 7, tau=tau, latent_dim=2, tau_layout="edge")
    assert prior.batch_shape == (3,)
    z = rng.normal(size=(5, 1, 7, 2)).astype(np.float32)
    log_prob = prior.log_prob(z)
    assert log_prob.shape == (5, 3)
    for b in range(3):
        single = ForestPrior(edges, 7, tau=tau[b], latent_dim=2, tau_layout="edge")
        np.testing.assert_allclose(log_prob[:, b], single.log_prob(z[:, 0]), rtol=1e-6)
    assert prior.sample(jax.random.PRNGKey(0), (4,)).shape == (4, 3, 7, 2)
    assert prior.covariance().shape == (3, 2, 7, 7)


# ---------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("layout", LAYOUTS)
def test_samples_reproduce_the_covariance(layout):
    rng = np.random.default_rng(2)
    n, d, num_samples = 9, 2, 40_000
    edges = np.array([[0, 3], [3, 1], [1, 4], [4, 2], [5, 6], [6, 8], [3, 7]])
    edges = edges[rng.permutation(len(edges))]
    tau = random_tau(rng, layout, len(edges), d)
    tau = np.sign(tau) * np.maximum(np.abs(tau), 0.5)  # strong enough to be visible
    prior = ForestPrior(edges, n, tau=tau, latent_dim=d, tau_layout=layout)
    z = np.asarray(jax.jit(prior.sample, static_argnums=1)(jax.random.PRNGKey(3), (num_samples,)))
    assert z.shape == (num_samples, n, d)
    tau_full = full_tau(tau, layout, len(edges), d)
    # each entry of a sample covariance of unit-variance normals has sd <= sqrt(2 / N)
    tolerance = 5 * np.sqrt(2 / num_samples)
    for k in range(d):
        expected = np.linalg.inv(oracle_precision(n, edges, tau_full[:, k]))
        empirical = z[:, :, k].T @ z[:, :, k] / num_samples
        np.testing.assert_allclose(empirical, expected, atol=tolerance)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=5 / np.sqrt(num_samples))


def test_deep_chain_sample_is_exact_in_the_limit_of_the_recursion():
    """A 12-node path: pointer doubling must reach the root (Σ_0,11 = τ^11, not 0)."""
    n, tau = 12, 0.95
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)[::-1]
    prior = ForestPrior(edges, n, tau=tau, latent_dim=1)
    z = np.asarray(prior.sample(jax.random.PRNGKey(4), (40_000,)))[..., 0]
    empirical = z.T @ z / len(z)
    expected = tau ** np.abs(np.arange(n)[:, None] - np.arange(n))
    np.testing.assert_allclose(empirical, expected, atol=5 * np.sqrt(2 / len(z)))


# ---------------------------------------------------------------------------
# transformations: grad, jit, vmap


@pytest.mark.parametrize("layout", LAYOUTS)
def test_grad_matches_finite_differences_of_the_oracle(layout):
    rng = np.random.default_rng(5)
    n, d = 8, 2
    edges = random_forest(rng, n, attach=1.0)
    tau = random_tau(rng, layout, len(edges), d)
    z = rng.normal(size=(n, d)).astype(np.float32)

    def log_prob(t, value):
        return ForestPrior(edges, n, tau=t, latent_dim=d, tau_layout=layout).log_prob(value)

    grad_tau, grad_z = jax.jit(jax.grad(log_prob, argnums=(0, 1)))(jnp.asarray(tau), z)
    step = 1e-6
    flat = tau.astype(np.float64).reshape(-1)
    numeric = np.zeros_like(flat)
    for index in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[index] += step
        down[index] -= step
        f_up = oracle_log_prob(n, edges, full_tau(up.reshape(tau.shape), layout, n - 1, d), z)
        f_down = oracle_log_prob(n, edges, full_tau(down.reshape(tau.shape), layout, n - 1, d), z)
        numeric[index] = (f_up - f_down) / (2 * step)
    np.testing.assert_allclose(np.asarray(grad_tau).reshape(-1), numeric, rtol=1e-3, atol=1e-3)
    # ∂ log N(z; 0, Q⁻¹) / ∂z = −Q z, per dimension
    tau_full = full_tau(tau, layout, len(edges), d)
    expected_z = np.stack(
        [-oracle_precision(n, edges, tau_full[:, k]) @ z[:, k] for k in range(d)], axis=1
    )
    np.testing.assert_allclose(np.asarray(grad_z), expected_z, rtol=1e-4, atol=1e-4)


def test_jit_and_vmap_over_z():
    rng = np.random.default_rng(6)
    n, d = 10, 3
    edges = random_forest(rng, n)
    prior = ForestPrior(edges, n, tau=random_tau(rng, "edge_dim", len(edges), d))
    zs = rng.normal(size=(6, n, d)).astype(np.float32)
    eager = np.asarray(prior.log_prob(zs))
    assert eager.shape == (6,)
    np.testing.assert_allclose(jax.jit(prior.log_prob)(zs), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(prior.log_prob)(zs), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(prior.log_prob))(zs), eager, rtol=1e-6)
    # the distribution itself crosses a jit boundary as a pytree (the graph is static)
    np.testing.assert_allclose(jax.jit(lambda p, z: p.log_prob(z))(prior, zs), eager, rtol=1e-6)


def test_vmap_over_tau_and_reparameterised_sample_gradient():
    rng = np.random.default_rng(7)
    n, d = 6, 2
    edges = random_forest(rng, n, attach=1.0)
    z = rng.normal(size=(n, d)).astype(np.float32)
    taus = rng.uniform(-0.9, 0.9, size=(4,)).astype(np.float32)

    def log_prob(t):
        return ForestPrior(edges, n, tau=t, latent_dim=d).log_prob(z)

    batched = jax.jit(jax.vmap(log_prob))(taus)
    for t, value in zip(taus, batched, strict=True):
        expected = oracle_log_prob(n, edges, full_tau(t, "scalar", n - 1, d), z)
        np.testing.assert_allclose(float(value), expected, rtol=1e-5, atol=2e-4)

    # d/dτ E[z_0 z_child] = 1 for a parent-child pair: the reparameterised pathwise estimate
    forest = forest_structure(edges, n)
    child = int(np.flatnonzero(forest.parents == forest.roots[0])[0])

    def cross_moment(t):
        draws = ForestPrior(forest, tau=t, latent_dim=d).sample(jax.random.PRNGKey(8), (20_000,))
        return jnp.mean(draws[:, forest.roots[0]] * draws[:, child])

    gradient = float(jax.jit(jax.grad(cross_moment))(0.3))
    assert abs(gradient - 1.0) < 0.05


# ---------------------------------------------------------------------------
# errors


def _cycle_nodes(message: str) -> list[int]:
    match = re.search(r"cycle through nodes ([\d >-]+) \(closed by edge (\d+)", message)
    assert match, message
    nodes = [int(v) for v in match.group(1).split(" -> ")]
    assert nodes[0] == nodes[-1], message
    return nodes[:-1]


@settings(max_examples=15)
@given(n=st.integers(3, 12), seed=st.integers(0, 2**16))
def test_cycle_error_names_the_cycle(n, seed):
    rng = np.random.default_rng(seed)
    edges = random_forest(rng, n, attach=1.0)  # a spanning tree
    adjacent = {tuple(sorted(e)) for e in edges.tolist()}
    candidates = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) not in adjacent]
    i, j = candidates[rng.integers(len(candidates))]
    expected = tree_cycle(n, edges, i, j)
    cyclic = np.insert(edges, rng.integers(len(edges) + 1), [j, i], axis=0)
    with pytest.raises(ValueError, match="cycle") as error:
        forest_structure(cyclic, n)
    nodes = _cycle_nodes(str(error.value))
    assert sorted(nodes) == sorted(expected)
    # consecutive nodes of the reported cycle are joined by edges of the graph
    graph = {tuple(sorted(e)) for e in cyclic.tolist()}
    for a, b in zip(nodes, [*nodes[1:], nodes[0]], strict=True):
        assert tuple(sorted((a, b))) in graph


def test_triangle_names_its_nodes():
    with pytest.raises(ValueError, match="cycle") as error:
        ForestPrior([[4, 0], [0, 2], [5, 1], [2, 4]], 6, tau=0.3, latent_dim=1)
    assert sorted(_cycle_nodes(str(error.value))) == [0, 2, 4]
    assert "edge 3 = (2, 4)" in str(error.value)


@pytest.mark.parametrize(
    ("edges", "pattern"),
    [
        ([[0, 1], [2, 2]], r"edge 1 = \(2, 2\) is a self-loop on node 2"),
        ([[0, 1], [1, 2], [2, 1]], r"edge 2 = \(2, 1\) duplicates edge 1 = \(1, 2\)"),
        ([[0, 1], [0, 1]], r"edge 1 = \(0, 1\) duplicates edge 0 = \(0, 1\)"),
        ([[0, 1], [1, 4]], r"edge 1 = \(1, 4\) has a node id outside 0\.\.3 \(num_nodes=4\)"),
        ([[0, -1]], r"edge 0 = \(0, -1\) has a node id outside"),
        ([[0, 1, 2]], r"shape \(num_edges, 2\), got shape \(1, 3\)"),
        ([0, 1], r"shape \(num_edges, 2\), got shape \(2,\)"),
        (np.zeros((2, 2, 2), dtype=int), r"got shape \(2, 2, 2\)"),
    ],
)
def test_bad_graphs_raise(edges, pattern):
    with pytest.raises(ValueError, match=pattern):
        forest_structure(edges, 4)
    with pytest.raises(ValueError, match=pattern):
        ForestPrior(edges, 4, tau=0.5, latent_dim=2)


def test_bad_graph_types_raise():
    with pytest.raises(TypeError, match="integer node ids"):
        forest_structure(np.array([[0.0, 1.0]]), 2)
    with pytest.raises(ValueError, match="num_nodes must be at least 1"):
        forest_structure([], 0)


@pytest.mark.parametrize(
    ("tau", "layout", "pattern"),
    [
        (1.0, None, r"strictly inside \(-1, 1\).*got tau = 1\.0"),
        (-1.5, None, r"got tau = -1\.5"),
        ([0.2, -1.0, 0.1], "edge", r"got tau\[1\] = -1\.0"),
        ([[0.2, 0.3]] * 2 + [[0.1, np.nan]], "edge_dim", r"got tau\[2, 1\] = nan"),
    ],
)
def test_tau_outside_unit_interval_raises(tau, layout, pattern):
    with pytest.raises(ValueError, match=pattern):
        ForestPrior([[0, 1], [1, 2], [2, 3]], 4, tau=tau, latent_dim=2, tau_layout=layout)


def test_tau_shape_errors():
    edges = [[0, 1], [1, 2]]
    with pytest.raises(ValueError, match="pass tau_layout='edge' or 'dim'"):
        ForestPrior(edges, 3, tau=[0.1, 0.2], latent_dim=2)
    with pytest.raises(ValueError, match=r"tau of shape \(5,\) is none of"):
        ForestPrior(edges, 3, tau=[0.1] * 5, latent_dim=2)
    with pytest.raises(ValueError, match="latent_dim=3"):
        ForestPrior(edges, 3, tau=[0.1, 0.2], latent_dim=3, tau_layout="dim")
    with pytest.raises(TypeError, match="latent_dim is required"):
        ForestPrior(edges, 3, tau=0.5)
    with pytest.raises(ValueError, match=r"\|E\| = 2 entries"):
        ForestPrior(edges, 3, tau=[0.1, 0.2, 0.3], latent_dim=1, tau_layout="edge")
    with pytest.raises(ValueError, match="tau_layout must be one of"):
        ForestPrior(edges, 3, tau=0.5, latent_dim=1, tau_layout="node")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# the value's shape (checked before any gather: JAX clamps out-of-range node ids)

VALUE_SHAPE = re.escape("expected shape (..., num_nodes, latent_dim) = (..., 5, 2)")


@pytest.mark.parametrize("validate_args", [None, True])
@pytest.mark.parametrize(
    "shape",
    [
        (3, 2),  # too few nodes: edges to nodes 3 and 4 would read row 2 (clamped)
        (7, 2),  # too many nodes
        (5, 1),  # d = 1 would broadcast against τ's d = 2
        (5, 3),
        (2,),  # fewer axes than the event
        (4, 2, 5),  # the axes swapped
    ],
)
def test_log_prob_of_a_wrong_shape_names_both_shapes(shape, validate_args):
    prior = ForestPrior(
        [[0, 1], [1, 2], [3, 4]], 5, tau=0.5, latent_dim=2, validate_args=validate_args
    )
    message = re.escape(f"value of shape {shape}") + ".*" + VALUE_SHAPE
    with pytest.raises(ValueError, match=message):
        prior.log_prob(jnp.zeros(shape))
    with pytest.raises(ValueError, match=message):  # shapes are static: also under jit
        jax.jit(prior.log_prob)(jnp.zeros(shape))


def test_log_prob_of_latent_dim_one_refuses_more_dimensions():
    prior = ForestPrior([[0, 1], [1, 2], [3, 4]], 5, tau=0.5, latent_dim=1)
    with pytest.raises(ValueError, match=re.escape("(5, 3), expected shape (..., num_nodes")):
        prior.log_prob(jnp.zeros((5, 3)))


def test_log_prob_batch_axes_must_broadcast_against_the_batch_shape():
    prior = ForestPrior(
        [[0, 1], [1, 2], [3, 4]], 5, tau=jnp.full((3,), 0.5), latent_dim=2, tau_layout="scalar"
    )
    with pytest.raises(
        ValueError,
        match=r"leading axes \(2,\) that do not broadcast against "
        r"the batch shape \(3,\)",
    ):
        prior.log_prob(jnp.zeros((2, 5, 2)))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((5, 2), (3,)),
        ((1, 5, 2), (3,)),
        ((3, 5, 2), (3,)),
        ((4, 1, 5, 2), (4, 3)),
        ((2, 4, 3, 5, 2), (2, 4, 3)),
    ],
)
def test_log_prob_keeps_numpyros_batch_broadcasting(shape, expected):
    tau = jnp.asarray([0.1, -0.5, 0.7])
    prior = ForestPrior(
        [[0, 1], [1, 2], [3, 4]], 5, tau=tau, latent_dim=2, tau_layout="scalar", validate_args=True
    )
    z = jax.random.normal(jax.random.key(0), shape)
    log_prob = prior.log_prob(z)
    assert log_prob.shape == expected
    np.testing.assert_allclose(jax.jit(prior.log_prob)(z), log_prob, rtol=1e-6)
    single = ForestPrior([[0, 1], [1, 2], [3, 4]], 5, tau=tau[2], latent_dim=2)
    np.testing.assert_allclose(
        np.asarray(log_prob)[..., 2],
        np.asarray(single.log_prob(jnp.broadcast_to(z, (*expected, 5, 2))[..., 2, :, :])),
        rtol=1e-6,
    )


@pytest.mark.parametrize("edges", [np.zeros((3, 0), int), [[]], np.zeros((0, 3), int)])
def test_empty_edges_of_a_wrong_shape_are_refused(edges):
    # an empty array used to be reshaped to (0, 2), whatever its shape
    with pytest.raises(ValueError, match=r"shape \(num_edges, 2\), got shape \((3, 0|1, 0|0, 3)\)"):
        forest_structure(edges, 3)
