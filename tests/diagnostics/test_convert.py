"""Guide draws and MCMC runs as DataTrees with (chain, draw, example, parameter) dims."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer import MCMC, NUTS
from numpyro.infer.reparam import CircularReparam
from xarray import DataTree

from invppl.diagnostics import (
    eta_parameters,
    from_guide,
    from_mcmc,
    guide_draws,
    latent_sites,
    to_datatree,
)
from invppl.transforms.support import Parameter, Periodic, Real
from tests.diagnostics import pointcloud as pc

ETA_DIMS = ("chain", "draw", "example", "parameter")


def guide_with_z(x: jax.Array) -> None:
    """The exact η posterior plus an unrelated per-example latent z of dimension 3."""
    pc.make_guide()(x)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))


@pytest.fixture(scope="module")
def guide_tree(x: np.ndarray) -> DataTree:
    return from_guide(
        guide_with_z,
        {},
        x,
        parameters=pc.PARAMETERS,
        num_samples=400,
        seed=0,
        examples=[10, 11, 12, 13],
        loss=np.linspace(5.0, 1.0, 7),
    )


def test_from_guide_layout(guide_tree: DataTree, x: np.ndarray) -> None:
    eta = guide_tree.posterior["eta"]
    assert eta.dims == ETA_DIMS
    assert eta.shape == (1, 400, 4, 1)
    assert list(eta.coords["parameter"].values) == ["rotation"]
    assert list(eta.coords["example"].values) == [10, 11, 12, 13]
    z = guide_tree.posterior["z"]
    assert z.dims == ("chain", "draw", "example", "z_dim")
    assert z.shape == (1, 400, 4, 3)
    np.testing.assert_array_equal(guide_tree.observed_data["x"].values, x)
    assert list(guide_tree.observed_data["x"].coords["example"].values) == [10, 11, 12, 13]
    np.testing.assert_allclose(guide_tree.fit["loss"].values, np.linspace(5.0, 1.0, 7))
    assert guide_tree.fit["loss"].dims == ("step",)


def test_from_guide_draws_follow_the_guide(guide_tree: DataTree, x: np.ndarray) -> None:
    # the exact guide's draws, example by example, are the closed-form posterior
    m, kappa = pc.posterior(x)
    eta = guide_tree.posterior["eta"].values[0, :, :, 0]
    assert np.all((eta >= -np.pi) & (eta <= np.pi))
    assert np.all(pc.arc(pc.circular_mean(eta, axis=0), m) < 4 / np.sqrt(400 * kappa))
    z = guide_tree.posterior["z"].values
    assert abs(z.mean()) < 0.1
    assert z.std() == pytest.approx(1.0, abs=0.05)


def test_guide_draws_shapes_and_seed(x: np.ndarray, guide_tree: DataTree) -> None:
    draws = guide_draws(guide_with_z, {}, x, num_samples=400, seed=0)
    assert set(draws) == {"eta", "z"}
    assert draws["eta"].shape == (400, 4, 1)
    assert draws["z"].shape == (400, 4, 3)
    assert all(isinstance(v, np.ndarray) for v in draws.values())
    # from_guide's draws are these, given the same seed, with a leading chain axis
    np.testing.assert_array_equal(guide_tree.posterior["eta"].values[0], draws["eta"])
    np.testing.assert_array_equal(guide_tree.posterior["z"].values[0], draws["z"])
    only = guide_draws(guide_with_z, {}, x, num_samples=400, seed=1, sites=["z"])
    assert set(only) == {"z"}
    assert not np.array_equal(only["z"], draws["z"])


def test_latent_sites_skip_observed_and_factors(x: np.ndarray) -> None:
    def model(x: jax.Array) -> None:
        pc.model(x)
        with numpyro.plate("data", x.shape[0]):
            numpyro.factor("penalty", -jnp.ones(x.shape[0]))

    assert list(latent_sites(model, {}, x)) == ["eta"]
    assert list(latent_sites(guide_with_z, {}, x)) == ["eta", "z"]


def test_eta_parameters_given_or_refused(x: np.ndarray) -> None:
    sites = latent_sites(pc.model, {}, x)
    assert eta_parameters(sites, "eta", pc.PARAMETERS) == pc.PARAMETERS
    # a von Mises support does not name the parameters
    with pytest.raises(TypeError, match="parameters="):
        eta_parameters(sites, "eta", None)


def test_to_datatree_from_several_chains_and_a_second_group() -> None:
    rng = np.random.default_rng(0)
    parameters = (Parameter("rotation", Periodic()), Parameter("tx", Real()))
    draws = {"eta": rng.normal(size=(3, 20, 5, 2)), "z": rng.normal(size=(3, 20, 5, 2, 2))}
    stats = {"diverging": np.zeros((3, 20, 5), dtype=bool)}
    tree = to_datatree(draws, parameters, sample_stats=stats, group="reference")
    assert tree["reference"]["eta"].dims == ETA_DIMS
    assert list(tree["reference"]["eta"].coords["parameter"].values) == ["rotation", "tx"]
    assert tree["reference"]["z"].dims == ("chain", "draw", "example", "z_dim_0", "z_dim_1")
    assert tree["reference_sample_stats"]["diverging"].dims == ("chain", "draw", "example")
    np.testing.assert_array_equal(tree["reference"]["eta"].values, draws["eta"])


def test_to_datatree_rejects_inconsistent_input() -> None:
    eta = np.zeros((1, 4, 3, 1))
    with pytest.raises(KeyError, match="'eta'"):
        to_datatree({"z": eta}, pc.PARAMETERS)
    with pytest.raises(ValueError, match=r"\(chain, draw, example, 2\)"):
        to_datatree({"eta": eta}, (*pc.PARAMETERS, Parameter("tx", Real())))
    with pytest.raises(ValueError, match="must be"):
        to_datatree({"eta": eta[0]}, pc.PARAMETERS)
    with pytest.raises(ValueError, match="2 example labels for 3 examples"):
        to_datatree({"eta": eta}, pc.PARAMETERS, examples=[0, 1])
    with pytest.raises(ValueError, match="observed has 2 examples"):
        to_datatree({"eta": eta}, pc.PARAMETERS, observed=np.zeros((2, 3, 2)))


# ---------------------------------------------------------------- from_mcmc


@pytest.fixture(scope="module")
def mcmc(x: np.ndarray) -> MCMC:
    """A real NumPyro NUTS run of the point-cloud model on two examples (few draws).

    The first example straddles the seam at ±π: η is sampled unwrapped
    (``CircularReparam``, as NumPyro advises for von Mises sites).
    """
    model = handlers.reparam(pc.model, config={"eta": CircularReparam()})
    run = MCMC(
        NUTS(model),
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        chain_method="sequential",
        progress_bar=False,
    )
    run.run(jax.random.PRNGKey(0), jnp.asarray(x[:2]), extra_fields=("diverging",))
    return run


def test_from_mcmc_layout(mcmc: MCMC, x: np.ndarray) -> None:
    tree = from_mcmc(mcmc, pc.PARAMETERS, examples=[0, 1], observed=x[:2])
    eta = tree.posterior["eta"]
    assert eta.dims == ETA_DIMS
    assert eta.shape == (2, 100, 2, 1)
    assert list(eta.coords["parameter"].values) == ["rotation"]
    assert list(eta.coords["example"].values) == [0, 1]
    np.testing.assert_array_equal(tree.observed_data["x"].values, x[:2])
    diverging = tree.sample_stats["diverging"]
    assert diverging.dims == ("chain", "draw", "example")
    # one flag per draw of the whole batch, repeated for each example
    raw = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    np.testing.assert_array_equal(diverging.values, np.stack([raw, raw], axis=-1))
    np.testing.assert_array_equal(
        eta.values, np.asarray(mcmc.get_samples(group_by_chain=True)["eta"])
    )


def test_from_mcmc_draws_near_the_posterior(mcmc: MCMC, x: np.ndarray) -> None:
    m, kappa = pc.posterior(x[:2])
    eta = from_mcmc(mcmc, pc.PARAMETERS).posterior["eta"].values[..., 0]
    means = pc.circular_mean(eta.reshape(-1, 2), axis=0)
    assert np.all(pc.arc(means, m) < 3 / np.sqrt(kappa))
    assert np.all(pc.arc(means, m) < 0.15)
    # the unwrapped auxiliary site comes along, one row per example
    unwrapped = from_mcmc(mcmc, pc.PARAMETERS).posterior["eta_unwrapped"]
    assert unwrapped.dims == ("chain", "draw", "example", "eta_unwrapped_dim")


def test_from_mcmc_without_extra_fields(x: np.ndarray, mcmc: MCMC) -> None:
    class NoExtras:
        def get_samples(self, group_by_chain: bool = False) -> dict:
            return mcmc.get_samples(group_by_chain=group_by_chain)

        def get_extra_fields(self, group_by_chain: bool = False) -> dict:
            return {}

    tree = from_mcmc(NoExtras(), pc.PARAMETERS)
    assert "sample_stats" not in tree.children
    assert tree.posterior["eta"].dims == ETA_DIMS
