"""The SGM with a joint prior over its codes: a ForestPrior along a graph joining the examples."""

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.handlers import seed, substitute, trace
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.util import log_density
from scipy import stats

from invppl.distributions import ForestPrior
from invppl.infer import fit
from invppl.models.sgm import make_sgm

SMALL: dict[str, Any] = {"hidden": 16, "context_dim": 8, "knots": 4, "flow_layers": 1}
N, D, TAU = 8, 2, 0.9
CHAIN = np.stack([np.arange(N - 1), np.arange(1, N)], axis=1)


def _with_prior(sgm: Any, prior: ForestPrior) -> tuple[Any, Any]:
    """The same networks (so the same parameters) with ``prior`` as p(Z)."""
    return partial(sgm.model, z_prior=prior), partial(sgm.guide, z_prior=prior)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    """Binary 8×8 images, an SGM with the default prior, and initial parameters of it with a
    chain prior (the networks are shared, so every variant below uses them)."""
    x = jnp.asarray(np.random.default_rng(0).random((N, 8, 8, 1)) > 0.5, jnp.float32)
    sgm = make_sgm((8, 8, 1), D, seed=0, **SMALL)
    model, guide = _with_prior(sgm, ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    svi = SVI(model, guide, optax.adam(3e-3), Trace_ELBO())
    state = jax.jit(svi.init)(jax.random.key(0), x, node=np.arange(N))
    return {"x": x, "sgm": sgm, "params": svi.get_params(state)}


@pytest.fixture(scope="module")
def losses(setup: dict[str, Any]) -> dict[str, Any]:
    """Trace_ELBO losses at one key under three priors, and the chain guide's z (one compile)."""
    x, sgm, params = setup["x"], setup["sgm"], setup["params"]
    unlinked = _with_prior(sgm, ForestPrior(np.zeros((0, 2), int), N, tau=TAU, latent_dim=D))
    chain = _with_prior(sgm, ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    pairs = {"default": (sgm.model, sgm.guide), "unlinked": unlinked, "chain": chain}

    def compute(params: dict[str, Any], key: jax.Array) -> dict[str, jax.Array]:
        out = {name: Trace_ELBO().loss(key, params, *pair, x) for name, pair in pairs.items()}
        # Trace_ELBO seeds the guide with the second half of its key (numpyro 0.22)
        guide_key = jax.random.split(key)[1]
        guide_trace = trace(seed(substitute(chain[1], params), guide_key)).get_trace(x)
        out["z"] = guide_trace["z"]["value"]
        return out

    return {
        name: np.asarray(value)
        for name, value in jax.jit(compute)(params, jax.random.key(7)).items()
    }


def test_a_prior_without_edges_gives_the_default_loss(losses: dict[str, Any]) -> None:
    assert np.isfinite(losses["default"])
    np.testing.assert_allclose(losses["unlinked"], losses["default"], rtol=1e-6)


def test_a_chain_changes_the_loss_by_the_log_density_ratio(losses: dict[str, Any]) -> None:
    z = losses["z"].astype(np.float64)
    assert z.shape == (N, D)
    distance = np.abs(np.arange(N)[:, None] - np.arange(N)[None, :])
    covariance = TAU**distance  # a chain's Σ_ij = τ^|i-j|
    log_forest = sum(
        stats.multivariate_normal(np.zeros(N), covariance).logpdf(z[:, k]) for k in range(D)
    )
    log_independent = stats.norm.logpdf(z).sum()
    expected = -(log_forest - log_independent)
    assert abs(expected) > 1.0  # the check has teeth
    np.testing.assert_allclose(losses["chain"] - losses["default"], expected, atol=2e-3)


def test_the_joint_site_is_outside_the_plate_in_model_and_guide(setup: dict[str, Any]) -> None:
    x, sgm = setup["x"], setup["sgm"]
    model, guide = _with_prior(sgm, ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    sites: dict[str, Any] = {}

    def record() -> None:
        guide_trace = trace(seed(guide, 0)).get_trace(x)
        data = {"z": guide_trace["z"]["value"], "eta": guide_trace["eta"]["value"]}
        model_trace = trace(seed(substitute(model, data), 1)).get_trace(x)
        for name, site_trace in (("guide", guide_trace), ("model", model_trace)):
            site = site_trace["z"]
            plates = [frame.name for frame in site["cond_indep_stack"]]
            sites[name] = (plates, site["fn"].batch_shape, site["fn"].event_shape)
            sites[name + "_eta_plates"] = [f.name for f in site_trace["eta"]["cond_indep_stack"]]

    jax.eval_shape(record)
    assert sites["guide"] == sites["model"] == ([], (), (N, D))
    assert sites["guide_eta_plates"] == sites["model_eta_plates"] == ["data"]


def test_node_lets_the_rows_come_in_any_order(setup: dict[str, Any]) -> None:
    x, sgm, params = setup["x"], setup["sgm"], setup["params"]
    model, guide = _with_prior(sgm, ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    rng = np.random.default_rng(1)
    codes = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)  # node order
    eta = jnp.asarray(rng.uniform(-3, 3, size=(N, 1)), jnp.float32)  # row order
    perm = jnp.asarray(rng.permutation(N), jnp.int32)  # row r of x[perm] is node perm[r]

    def densities(rows: jax.Array, row_eta: jax.Array, node: jax.Array) -> tuple[jax.Array, ...]:
        values = {**params, "z": codes, "eta": row_eta}
        log_p = log_density(model, (rows,), {"node": node}, values)[0]
        log_q = log_density(guide, (rows,), {"node": node}, values)[0]
        z_rows = substitute(seed(guide, 0), {"z": codes})(rows, node=node)[0]
        return log_p, log_q, z_rows

    # in order (node = 0..n-1) and permuted, in one compiled call
    stacked = jnp.stack([x, x[perm]]), jnp.stack([eta, eta[perm]]), jnp.stack([jnp.arange(N), perm])
    log_p, log_q, z_rows = jax.jit(jax.vmap(densities))(*stacked)
    np.testing.assert_allclose(log_p[1], log_p[0], rtol=1e-6)
    np.testing.assert_allclose(log_q[1], log_q[0], rtol=1e-6)
    np.testing.assert_array_equal(z_rows[0], codes)  # the guide returns z in row order
    np.testing.assert_array_equal(z_rows[1], codes[perm])


@pytest.mark.slow
def test_a_short_full_batch_fit_runs(setup: dict[str, Any]) -> None:
    model, guide = _with_prior(setup["sgm"], ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    result = fit(
        model,
        guide,
        {"x": setup["x"], "node": np.arange(N)},  # fit permutes rows; node keeps the graph
        seed=0,
        num_steps=30,
        batch_size=N,
        optimizer=optax.adam(3e-3),
        progress=False,
    )
    assert result.losses.shape == (30,)
    assert np.all(np.isfinite(result.losses))
    assert not result.stopped_early


def test_wrong_priors_are_named(setup: dict[str, Any]) -> None:
    x, sgm = setup["x"], setup["sgm"]
    with pytest.raises(ValueError, match=r"event_shape \(batch, latent_dim\) = \(n, 2\); got "):
        make_sgm(
            (8, 8, 1),
            D,
            seed=0,
            z_prior=ForestPrior(CHAIN, N, tau=TAU, latent_dim=3),
            **SMALL,
        )
    too_many = ForestPrior(CHAIN, 2 * N, tau=TAU, latent_dim=D)
    model, guide = _with_prior(sgm, too_many)
    with pytest.raises(
        ValueError, match=r"= \(8, 2\); got batch_shape \(\) and event_shape \(16, 2\)"
    ):
        model(x)
    with pytest.raises(ValueError, match=r"event_shape \(16, 2\)"):
        fit(model, guide, {"x": x}, seed=0, num_steps=1, batch_size=N, progress=False)
    batched = ForestPrior(CHAIN, N, tau=np.full((3, 1, 1), TAU), latent_dim=D, tau_layout="scalar")
    with pytest.raises(ValueError, match=r"got batch_shape \(3, 1, 1\)"):
        _with_prior(sgm, batched)[0](x)
    with pytest.raises(TypeError, match="numpyro Distribution"):
        make_sgm((8, 8, 1), D, seed=0, z_prior=np.zeros((N, D)), **SMALL)
    model, _ = _with_prior(sgm, ForestPrior(CHAIN, N, tau=TAU, latent_dim=D))
    with pytest.raises(ValueError, match=r"node must be a permutation of 0\.\.7"):
        model(x, node=np.zeros(N, np.int32))
    with pytest.raises(ValueError, match=r"integers of shape \(8,\)"):
        model(x, node=np.arange(N - 1))
