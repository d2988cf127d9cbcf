"""GraphBatches: membership by brute force, unbiased weights by exact enumeration, fit hook."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.infer import GraphBatches, fit


def _random_graph(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    pairs = [(i, j) for i, j in itertools.combinations(range(n), 2) if rng.random() < p]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 12), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_is_edge_matches_a_set_of_pairs(n: int, p: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = _random_graph(rng, n, p)
    if edges.shape[0] == 0:
        edges = np.array([[0, 1]])
    batches = GraphBatches(edges, n, edges_per_step=1)
    known = {frozenset(e) for e in edges.tolist()}
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    got = np.asarray(batches.is_edge(jnp.asarray(a.ravel()), jnp.asarray(b.ravel())))
    expected = [frozenset((i, j)) in known for i, j in zip(a.ravel(), b.ravel(), strict=True)]
    np.testing.assert_array_equal(got, expected)


def test_weighted_sums_are_unbiased_for_the_whole_graph_objective() -> None:
    """Averaged over many steps, Σ weight · f equals (B / n) × the exact sums over E and N."""
    rng = np.random.default_rng(0)
    n, batch = 7, 3
    edges = _random_graph(rng, n, 0.4)
    weights = rng.uniform(0.5, 1.0, edges.shape[0])
    gamma = 0.7
    batches = GraphBatches(
        edges,
        n,
        edges_per_step=4,
        non_edges_per_step=5,
        non_edge_weight=gamma,
        edge_weights=weights,
    )
    values = rng.normal(size=n).astype(np.float32)  # f(i, j) = v_i * v_j + v_i + v_j
    data = {"v": values}
    node_batch = {"v": values[:batch]}

    def step(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        extras = batches(key, node_batch, data)
        f_edge = extras["edge_v"].prod(-1) + extras["edge_v"].sum(-1)
        f_non = extras["non_edge_v"].prod(-1) + extras["non_edge_v"].sum(-1)
        non_edge = jnp.where(extras["non_edge_mask"], extras["non_edge_weight"] * f_non, 0.0)
        return (extras["edge_weight"] * f_edge).sum(), non_edge.sum()

    keys = jax.random.split(jax.random.key(1), 200_000)
    edge_sums, non_sums = jax.jit(jax.vmap(step))(keys)
    known = {frozenset(e) for e in edges.tolist()}
    f = {(i, j): values[i] * values[j] + values[i] + values[j] for i in range(n) for j in range(n)}
    exact_edge = sum(w * f[tuple(e)] for w, e in zip(weights, edges.tolist(), strict=True))
    non_edges = [
        pair for pair in itertools.combinations(range(n), 2) if frozenset(pair) not in known
    ]
    exact_non = gamma * edges.shape[0] / len(non_edges) * sum(f[pair] for pair in non_edges)
    for sums, exact in ((edge_sums, exact_edge), (non_sums, exact_non)):
        sums = np.asarray(sums, np.float64)
        error = sums.std() / np.sqrt(sums.size)
        assert abs(sums.mean() - batch / n * exact) < 5 * error, (sums.mean(), batch / n * exact)


def test_pairs_are_uniform_and_rows_are_gathered() -> None:
    n = 6
    batches = GraphBatches([[0, 1], [1, 2]], n, edges_per_step=2, non_edges_per_step=4000)
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    extras = batches(jax.random.key(0), {"x": x[:2]}, {"x": x})
    pairs = np.asarray(extras["non_edge_x"][:, :, 0] // 3).astype(int)
    np.testing.assert_array_equal(extras["non_edge_x"], x[pairs])
    assert np.all(pairs[:, 0] != pairs[:, 1])
    counts = np.zeros((n, n))
    np.add.at(counts, (pairs.min(1), pairs.max(1)), 1)
    observed = counts[np.triu_indices(n, 1)]
    expected = 4000 / observed.size
    assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected))
    edge_rows = np.asarray(extras["edge_x"][:, :, 0] // 3).astype(int)
    assert {tuple(row) for row in edge_rows.tolist()} <= {(0, 1), (1, 2)}
    masked = ~np.asarray(extras["non_edge_mask"])
    is_edge = [{a, b} in ({0, 1}, {1, 2}) for a, b in pairs.tolist()]
    np.testing.assert_array_equal(masked, is_edge)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"edges": np.zeros((0, 2), int), "num_nodes": 3}, "at least one edge"),
        ({"edges": [[0, 1], [1, 2], [0, 2]], "num_nodes": 3, "non_edges_per_step": 2}, "complete"),
        ({"edges": [[0, 1]], "num_nodes": 3, "edge_weights": [1.0, 1.0]}, "one per edge"),
        ({"edges": [[0, 1]], "num_nodes": 3, "edge_weights": [0.0]}, "positive"),
        ({"edges": [[0, 1]], "num_nodes": 3, "non_edge_weight": 0.0}, "> 0"),
        ({"edges": [[0, 3]], "num_nodes": 3}, "outside"),
    ],
)
def test_bad_graphs_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        GraphBatches(**{"edges_per_step": 2, **kwargs})


def _edge_model(x, edge_x, edge_weight):
    loc = numpyro.param("loc", 0.0)
    with numpyro.plate("nodes", x.shape[0]):
        numpyro.sample("x", dist.Normal(loc, 1.0), obs=x)
    with numpyro.plate("edges", edge_x.shape[0]), numpyro.handlers.scale(scale=edge_weight):
        numpyro.sample("gap", dist.Normal(loc, 1.0), obs=edge_x[:, 0] - edge_x[:, 1])


def _no_guide(*args, **kwargs):
    pass


def test_fit_passes_the_same_draws_to_model_and_guide_reproducibly() -> None:
    x = np.linspace(-1.0, 1.0, 8).astype(np.float32)
    batches = GraphBatches([[i, i + 1] for i in range(7)], 8, edges_per_step=3)
    run = {
        "seed": 0,
        "num_steps": 30,
        "batch_size": 4,
        "optimizer": optax.adam(0.05),
        "progress": False,
        "extend_batch": batches,
    }
    first = fit(_edge_model, _no_guide, {"x": x}, **run)
    second = fit(_edge_model, _no_guide, {"x": x}, **run)
    np.testing.assert_array_equal(first.losses, second.losses)
    assert np.all(np.isfinite(first.losses))
    with pytest.raises(ValueError, match="eval_data"):
        fit(_edge_model, _no_guide, {"x": x}, eval_data={"x": x}, **run)
    with pytest.raises(ValueError, match="already has"):
        fit(
            _edge_model,
            _no_guide,
            {"x": x},
            **{**run, "extend_batch": lambda key, batch, data: {"x": batch["x"]}},
        )
