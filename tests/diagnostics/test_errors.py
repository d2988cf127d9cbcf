"""Bad input is refused before any sampling, with a message naming what was wrong."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from invppl.diagnostics import (
    EtaCheck,
    check_eta,
    from_guide,
    guide_draws,
    log_weights,
    pareto_khat,
    reference_posterior,
    sbc,
)
from invppl.transforms.support import Parameter, Periodic
from tests.diagnostics import pointcloud as pc

X = jnp.zeros((3, pc.POINTS, 2))
TWO = (Parameter("rotation", Periodic()), Parameter("tilt", Periodic()))


def theta_guide(x: jax.Array) -> None:
    """A guide whose only latent site is not called η."""
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("theta", dist.VonMises(0.0, 1.0).expand([1]).to_event(1))


def theta_model(x: jax.Array) -> None:
    with numpyro.plate("data", x.shape[0]):
        theta = numpyro.sample("theta", dist.VonMises(0.0, 1.0).expand([1]).to_event(1))
        numpyro.sample("x", dist.Normal(theta[:, :, None], 1.0).to_event(2), obs=x)


def flat_model(x: jax.Array) -> None:
    """η of shape (batch,): no parameter axis."""
    with numpyro.plate("data", x.shape[0]):
        eta = numpyro.sample("eta", dist.VonMises(0.0, 1.0))
        numpyro.sample("x", dist.Normal(eta[:, None, None], 1.0).to_event(2), obs=x)


def pair_model(x: jax.Array) -> None:
    """η of shape (batch, 2)."""
    with numpyro.plate("data", x.shape[0]):
        eta = numpyro.sample("eta", dist.VonMises(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(eta[:, :1, None], 1.0).to_event(2), obs=x)


def global_model(x: jax.Array) -> None:
    """A latent noise scale shared by all examples, outside the data plate."""
    scale = numpyro.sample("noise", dist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0]):
        eta = numpyro.sample("eta", dist.VonMises(0.0, 1.0).expand([1]).to_event(1))
        numpyro.sample("x", dist.Normal(eta[:, :, None], scale).to_event(2), obs=x)


def global_guide(x: jax.Array) -> None:
    numpyro.sample("noise", dist.HalfNormal(1.0))
    pc.make_guide()(x)


# ---------------------------------------------------------------- no η site


def test_missing_eta_site_names_the_sites() -> None:
    with pytest.raises(KeyError, match=r"no latent sample site 'eta'.*\['theta'\]"):
        reference_posterior(theta_model, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(KeyError, match=r"no latent sample site 'eta'.*\['theta'\]"):
        from_guide(theta_guide, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(KeyError, match=r"no latent sample site 'eta'.*\['theta'\]"):
        check_eta(theta_model, pc.make_guide(), {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(KeyError, match="the guide has no latent site 'eta'"):
        check_eta(pc.model, theta_guide, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(KeyError, match="the guide has no latent site 'eta'"):
        sbc(pc.model, theta_guide, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(KeyError, match=r"no latent sites \['eta'\]; it has \['theta'\]"):
        guide_draws(theta_guide, {}, X, num_samples=2, seed=0, sites=["eta"])
    # another name for η's site is accepted
    tree = from_guide(theta_guide, {}, X, parameters=pc.PARAMETERS, eta_site="theta", num_samples=2)
    assert tree.posterior["theta"].dims == ("chain", "draw", "example", "parameter")


# ---------------------------------------------------------------- η's shape


def test_eta_without_a_parameter_axis() -> None:
    with pytest.raises(ValueError, match=r"must be \(batch, k\).*got shape \(3,\)"):
        reference_posterior(flat_model, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(ValueError, match=r"must be \(batch, k\)"):
        check_eta(flat_model, pc.make_guide(), {}, X, parameters=pc.PARAMETERS)


def test_eta_and_parameters_disagree() -> None:
    with pytest.raises(ValueError, match=r"2 coordinates but 1 parameters.*\['rotation'\]"):
        reference_posterior(pair_model, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(ValueError, match="1 coordinates but 2 parameters"):
        from_guide(pc.make_guide(), {}, X, parameters=TWO)
    with pytest.raises(ValueError, match="1 coordinates but 2 parameters"):
        sbc(pc.model, pc.make_guide(), {}, X, parameters=TWO)


# ---------------------------------------------------------------- outside the data plate


def test_latent_site_outside_the_data_plate() -> None:
    with pytest.raises(ValueError, match=r"latent site 'noise' has shape \(\).*data plate"):
        reference_posterior(global_model, {}, X, parameters=pc.PARAMETERS)
    with pytest.raises(ValueError, match=r"latent site 'noise' has shape \(\)"):
        guide_draws(global_guide, {}, X, num_samples=2, seed=0)
    with pytest.raises(ValueError, match=r"latent site 'noise' has shape \(\)"):
        check_eta(global_model, pc.make_guide(), {}, X, parameters=pc.PARAMETERS)


def test_per_example_weights_need_the_data_plate() -> None:
    with pytest.raises(ValueError, match="site 'noise' has a log-density of shape"):
        log_weights(global_model, global_guide, {}, X, num_samples=32)


# ---------------------------------------------------------------- counts and settings


def check(**kwargs: Any) -> EtaCheck:
    return check_eta(pc.model, pc.make_guide(), {}, X, parameters=pc.PARAMETERS, **kwargs)


def test_no_examples() -> None:
    with pytest.raises(ValueError, match="at least one example"):
        check_eta(pc.model, pc.make_guide(), {}, X[:0], parameters=pc.PARAMETERS)
    with pytest.raises(ValueError, match="at least one example"):
        check_eta(pc.model, pc.make_guide(), {}, np.float32(1.0), parameters=pc.PARAMETERS)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: guide_draws(pc.make_guide(), {}, X, num_samples=0, seed=0), "num_samples"),
        (
            lambda: from_guide(pc.make_guide(), {}, X, parameters=pc.PARAMETERS, num_samples=0),
            "num_samples",
        ),
        (lambda: reference_posterior(pc.model, {}, X, num_samples=1), "num_samples"),
        (lambda: reference_posterior(pc.model, {}, X, num_chains=0), "num_chains"),
        (lambda: reference_posterior(pc.model, {}, X, num_warmup=0), "num_warmup"),
        (lambda: reference_posterior(pc.model, {}, X, max_tree_depth=0), "max_tree_depth"),
        (lambda: log_weights(pc.model, pc.make_guide(), {}, X, num_samples=1), "num_samples"),
        (lambda: log_weights(pc.model, pc.make_guide(), {}, X, chunk_size=0), "chunk_size"),
        (lambda: pareto_khat(pc.model, pc.make_guide(), {}, X, num_samples=1), "num_samples"),
        (lambda: sbc(pc.model, pc.make_guide(), {}, X, num_simulations=1), "num_simulations"),
        (lambda: sbc(pc.model, pc.make_guide(), {}, X, num_samples=0), "num_samples"),
        (lambda: check(num_chains=1), "num_chains"),
        (lambda: check(guide_samples=10), "guide_samples"),
        (lambda: check(sbc_simulations=1), "sbc_simulations"),
    ],
)
def test_counts_out_of_range(call, message: str) -> None:
    with pytest.raises(ValueError, match=rf"{message} must be at least"):
        call()


def test_counts_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"num_samples must be an integer, got float 2\.5"):
        guide_draws(pc.make_guide(), {}, X, num_samples=2.5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_chains must be an integer, got the bool True"):
        reference_posterior(pc.model, {}, X, num_chains=True)


@pytest.mark.parametrize("prob", [1.5, 1.0, 0.0, -0.2])
def test_target_accept_prob_out_of_range(prob: float) -> None:
    with pytest.raises(ValueError, match="target_accept_prob must be in"):
        reference_posterior(pc.model, {}, X, parameters=pc.PARAMETERS, target_accept_prob=prob)


def test_min_coverage_out_of_range() -> None:
    with pytest.raises(ValueError, match="min_coverage must be in"):
        check(min_coverage=1.5)
