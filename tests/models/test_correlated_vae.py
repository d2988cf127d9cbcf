"""Correlated VAEs: the ELBO's graph terms against a joint Gaussian KL built independently.

On a small tree, with every node in the batch and every edge once (weight 1),
the loss with the edge sites minus the loss without them (same key, so the
same reconstruction) must equal KL(q(Z) ‖ p(Z)) − Σ_i KL(q_i ‖ p_0), where
q(Z) and p(Z) are written out as (n·d)-dimensional normals: per dimension,
Cov_q(z_i, z_j) = σ_i σ_j Π_path ρ_e and Cov_p(z_i, z_j) = τ^(path length).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

from invppl.datasets import make_tree_data
from invppl.infer import GraphBatches, fit
from invppl.models import correlation_rows, encode_codes, make_correlated_vae
from tests.gaussian_oracle import gaussian_kl

EDGES = np.array([[0, 1], [1, 2], [1, 3], [3, 4]])
N, D, LATENT, TAU = 5, 6, 2, 0.6


def _path(edges: np.ndarray, start: int, end: int) -> list[int]:
    """Indices of the edges on the tree path from ``start`` to ``end``."""
    stack = [(start, -1, [])]
    while stack:
        node, parent, used = stack.pop()
        if node == end:
            return used
        for index, (a, b) in enumerate(edges.tolist()):
            if node in (a, b):
                other = b if node == a else a
                if other != parent:
                    stack.append((other, node, [*used, index]))
    raise AssertionError("not connected")


def _oracle(loc, scale, rho, tau) -> float:
    """KL(q(Z) ‖ p(Z)) − Σ_i KL(q_i ‖ p_0), dimension by dimension."""
    total = 0.0
    for d in range(loc.shape[1]):
        cov_q, cov_p = np.eye(N), np.eye(N)
        for i, j in itertools.product(range(N), repeat=2):
            path = _path(EDGES, i, j)
            cov_q[i, j] = scale[i, d] * scale[j, d] * np.prod([rho[e, d] for e in path])
            cov_p[i, j] = tau ** len(path)
        singles = 0.5 * (scale[:, d] ** 2 + loc[:, d] ** 2 - 1 - 2 * np.log(scale[:, d])).sum()
        total += gaussian_kl(loc[:, d], cov_q, np.zeros(N), cov_p) - singles
    return float(total)


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    x = (np.random.default_rng(0).random((N, D)) < 0.5).astype(np.float32)
    return {"x": x, "edge_x": x[EDGES], "edge_weight": np.ones(len(EDGES), np.float32)}


def _params(cvae, batch):
    svi = SVI(cvae.model, cvae.guide, optax.adam(1e-3), TraceMeanField_ELBO())
    return svi.get_params(svi.init(jax.random.key(0), **batch))


@pytest.mark.parametrize("variant", ["corr", "ind"])
def test_edge_terms_equal_the_joint_gaussian_kl(batch, variant) -> None:
    cvae = make_correlated_vae(D, LATENT, variant=variant, seed=1, tau=TAU, hidden=(16,))
    params = _params(cvae, batch)
    elbo, key = TraceMeanField_ELBO(), jax.random.key(3)
    with_edges = elbo.loss(key, params, cvae.model, cvae.guide, **batch)
    without = elbo.loss(key, params, cvae.model, cvae.guide, x=batch["x"])
    guide = handlers.substitute(handlers.seed(cvae.guide, 0), data=params)
    rho = np.asarray(handlers.trace(guide).get_trace(**batch)["z_edge"]["fn"].rho, np.float64)
    if variant == "ind":
        assert np.all(rho == 0.0)
    else:
        assert np.any(np.abs(rho) > 0.01)
    loc, scale = (np.asarray(a, np.float64) for a in encode_codes(cvae, params, batch["x"]))
    expected = _oracle(loc, scale, rho, TAU)
    assert float(with_edges - without) == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_non_edge_term_is_the_guides_mutual_information(batch) -> None:
    cvae = make_correlated_vae(D, LATENT, variant="corr", seed=2, tau=TAU, hidden=(16,))
    params = _params(cvae, batch)
    pairs = np.array([[0, 2], [2, 4], [0, 4]])
    mask = np.array([True, False, True])
    non_edge = {
        "non_edge_x": batch["x"][pairs],
        "non_edge_weight": np.full(3, 2.5, np.float32),
        "non_edge_mask": mask,
    }
    elbo, key = TraceMeanField_ELBO(), jax.random.key(4)
    full = {**batch, **non_edge}
    difference = elbo.loss(key, params, cvae.model, cvae.guide, **full) - elbo.loss(
        key, params, cvae.model, cvae.guide, **batch
    )
    guide = handlers.substitute(handlers.seed(cvae.guide, 0), data=params)
    rho = np.asarray(
        handlers.trace(guide).get_trace(**full)["z_non_edge"]["fn"].base_dist.rho, np.float64
    )
    expected = 2.5 * (-0.5 * np.log1p(-(rho**2)).sum(-1))[mask].sum()
    assert float(difference) == pytest.approx(expected, rel=1e-4)


def test_sampled_elbo_agrees_with_the_closed_form(batch) -> None:
    """Trace_ELBO (EdgeFactor.log_prob on draws) averages to TraceMeanField_ELBO."""
    cvae = make_correlated_vae(D, LATENT, variant="corr", seed=3, tau=TAU, hidden=(16,))
    params = _params(cvae, batch)
    keys = jax.random.split(jax.random.key(5), 4000)

    def graph_part(elbo, key):
        with_edges = elbo.loss(key, params, cvae.model, cvae.guide, **batch)
        return with_edges - elbo.loss(key, params, cvae.model, cvae.guide, x=batch["x"])

    sampled = np.asarray(jax.jit(jax.vmap(lambda k: graph_part(Trace_ELBO(), k)))(keys))
    closed = float(graph_part(TraceMeanField_ELBO(), keys[0]))
    error = sampled.std() / np.sqrt(sampled.size)
    assert abs(sampled.mean() - closed) < 5 * error + 1e-4, (sampled.mean(), closed, error)


def test_fit_on_tree_data_and_symmetric_correlations() -> None:
    data = make_tree_data(40, seed=0, tau=0.8, latent_dim=2, observed_dim=8)
    cvae = make_correlated_vae(8, 2, variant="corr", seed=0, tau=0.8, learn_tau=True, hidden=(16,))
    batches = GraphBatches(data.edges, 40, edges_per_step=8, non_edges_per_step=8)
    result = fit(
        cvae.model,
        cvae.guide,
        {"x": data.x},
        seed=0,
        num_steps=40,
        batch_size=8,
        loss=TraceMeanField_ELBO(),
        extend_batch=batches,
        progress=False,
    )
    assert np.all(np.isfinite(result.losses))
    assert result.params["tau"].shape == (2,)
    assert np.all(np.abs(result.params["tau"]) < 0.99)
    rows = correlation_rows(cvae, result.params, data.x)
    assert rows is not None
    matrix = np.asarray(rows(np.arange(40)))
    assert matrix.shape == (40, 40, 2)
    np.testing.assert_array_equal(matrix, matrix.transpose(1, 0, 2))
    plain = make_correlated_vae(8, 2, variant="ind", seed=0)
    assert correlation_rows(plain, result.params, data.x) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "cvae"}, "variant"),
        ({"variant": "corr", "tau": 1.0}, "tau"),
        ({"variant": "corr", "tau": [0.1, 0.2, 0.3]}, "one entry per latent"),
        ({"variant": "corr", "hidden": ()}, "hidden"),
    ],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_correlated_vae(D, LATENT, seed=0, **kwargs)


def test_codes_have_one_row_per_node(batch) -> None:
    cvae = make_correlated_vae(D, LATENT, variant="vae", seed=0, hidden=(16,))
    loc, scale = encode_codes(cvae, _params(cvae, {"x": batch["x"]}), batch["x"])
    assert loc.shape == scale.shape == (N, LATENT)
    assert bool(jnp.all(scale > 0))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # a (B_E, 1) weight used to broadcast against the (B_E,) log densities into (B_E, B_E)
        (
            {"edge_weight": np.ones((len(EDGES), 1), np.float32)},
            r"edge_weight must be a scalar or have one entry per pair \(4,\), got shape \(4, 1\)",
        ),
        ({"edge_weight": np.ones(3, np.float32)}, r"edge_weight .* got shape \(3,\)"),
        (
            {"edge_x": np.zeros((len(EDGES), D), np.float32)},
            r"edge_x must have shape \(num_pairs, 2, \.\.\.\).*got \(4, 6\)",
        ),
        (
            {
                "non_edge_x": np.zeros((2, 2, D), np.float32),
                "non_edge_weight": np.ones(2),
                "non_edge_mask": np.ones((2, 1), bool),
            },
            r"non_edge_mask must be a scalar or have one entry per pair \(2,\), got shape \(2, 1\)",
        ),
    ],
)
def test_pair_arrays_of_a_wrong_shape_are_refused(batch, extra, message) -> None:
    cvae = make_correlated_vae(D, LATENT, variant="corr", seed=0, hidden=(16,))
    arrays = {**batch, **extra}
    for function in (cvae.model, cvae.guide):
        with pytest.raises(ValueError, match=message), handlers.seed(rng_seed=0):
            function(**arrays)


def test_pair_sites_keep_their_plates_and_scales(batch) -> None:
    cvae = make_correlated_vae(D, LATENT, variant="corr", seed=0, hidden=(16,), learn_tau=True)
    arrays = {
        **batch,
        "non_edge_x": batch["x"][np.array([[0, 2], [2, 4]])],
        "non_edge_weight": np.array([2.0, 3.0], np.float32),
        "non_edge_mask": np.array([True, False]),
    }
    for function in (cvae.model, cvae.guide):
        sites = handlers.trace(handlers.seed(function, 0)).get_trace(**arrays)
        assert sites["z_edge"]["cond_indep_stack"][0].name == "edges"
        assert sites["z_non_edge"]["cond_indep_stack"][0].name == "non_edges"
        np.testing.assert_array_equal(sites["z_edge"]["scale"], arrays["edge_weight"])
        np.testing.assert_array_equal(sites["z_non_edge"]["scale"], arrays["non_edge_weight"])
        assert type(sites["z_edge"]["fn"]).__name__ != "MaskedDistribution"
        assert type(sites["z_non_edge"]["fn"]).__name__ == "MaskedDistribution"
    assert "tau" in handlers.trace(handlers.seed(cvae.model, 0)).get_trace(**arrays)
    assert "tau" not in handlers.trace(handlers.seed(cvae.model, 0)).get_trace(x=batch["x"])


def test_codes_and_rows_refuse_data_of_another_width(batch) -> None:
    cvae = make_correlated_vae(D, LATENT, variant="corr", seed=0, hidden=(16,))
    params = _params(cvae, batch)
    with pytest.raises(
        ValueError,
        match=r"encode_codes: x of shape \(6,\), expected one row of "
        r"observed_dim = 6 values per node",
    ):
        encode_codes(cvae, params, batch["x"][0])
    with pytest.raises(ValueError, match=r"correlation_rows: x of shape \(5, 7\)"):
        correlation_rows(cvae, params, np.zeros((N, D + 1)))
    rows = correlation_rows(cvae, params, batch["x"])
    assert rows is not None
    assert rows(np.array([0, 4])).shape == (2, N, LATENT)
    assert encode_codes(cvae, params, batch["x"].reshape(N, 2, 3))[0].shape == (N, LATENT)
    # a gather would clamp out-of-range node ids to the last node
    with pytest.raises(
        ValueError,
        match=r"sources must lie in 0\.\.4 \(the nodes of x\), got "
        r"values in \[0, 5\]",
    ):
        rows(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"sources must be integer node ids of shape \(m,\)"):
        rows(np.array([[0, 1]]))
