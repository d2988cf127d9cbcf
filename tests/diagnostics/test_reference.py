"""Convergence flags on hand-made chains; the sampling coordinates; NUTS on line parameters.

The NUTS reference of the point-cloud examples against the closed-form
posterior is tested in ``test_check.py``, which shares that one run with
``check_eta``.
"""

from __future__ import annotations

import math

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from arviz_stats.base import array_stats
from scipy import stats
from xarray import DataTree

from invppl.diagnostics import convergence, latent_sites, reference_posterior, to_datatree
from invppl.diagnostics.reference import _Coordinates, _potential
from invppl.metrics import wasserstein_to_law
from invppl.transforms.support import Interval, Parameter, Periodic, Real
from tests.diagnostics import pointcloud as pc

TWO_PI = 2 * math.pi


# ---------------------------------------------------------------- hand-made references


def _tree(eta: np.ndarray, diverging: np.ndarray | None = None) -> DataTree:
    stats = None if diverging is None else {"diverging": diverging}
    return to_datatree({"eta": eta[..., None]}, pc.PARAMETERS, sample_stats=stats)


@pytest.fixture(scope="module")
def broken() -> DataTree:
    """Four examples of 4 chains × 300 draws: fine, split chains, divergent, sticky."""
    rng = np.random.default_rng(0)
    chains, draws = 4, 300
    fine = pc.wrap(math.pi + rng.normal(0, 0.3, size=(chains, draws)))  # across the seam
    split = pc.wrap(1.5 * np.arange(chains)[:, None] + rng.normal(0, 0.3, size=(chains, draws)))
    divergent = pc.wrap(rng.normal(0, 0.3, size=(chains, draws)))
    sticky = np.zeros((chains, draws))
    for t in range(1, draws):  # AR(1) with correlation 0.99: few effective draws
        sticky[:, t] = 0.99 * sticky[:, t - 1] + 0.14 * rng.normal(size=chains)
    eta = np.stack([fine, split, divergent, sticky], axis=-1)
    diverging = np.zeros(eta.shape, dtype=bool)
    diverging[1, [3, 50, 90], 2] = True
    return _tree(eta, diverging)


def test_convergence_flags_a_broken_reference(broken: DataTree) -> None:
    table = convergence(broken, pc.PARAMETERS)
    assert list(table.converged) == [True, False, False, False]
    assert table.rhat[0] < 1.01
    assert table.rhat[1] > 1.5
    assert list(table.divergences) == [0, 0, 3, 0]
    assert table.rhat[2] < 1.01
    assert table.ess_bulk[2] > 400
    assert table.ess_bulk[3] < 400 or table.ess_tail[3] < 400


def test_convergence_diagnoses_cos_and_sin(broken: DataTree) -> None:
    # rank R-hat and ESS of a periodic η are the worst of those of cos η and sin η
    eta = broken.posterior["eta"].values[..., 0]
    table = convergence(broken, pc.PARAMETERS)

    def worst(statistic: str, n: int, **kwargs: str) -> float:
        pair = xr.Dataset(
            {
                "cos": (("chain", "draw"), np.cos(eta[..., n])),
                "sin": (("chain", "draw"), np.sin(eta[..., n])),
            }
        )
        values = getattr(arviz_stats, statistic)(pair, **kwargs)
        both = [float(values["cos"]), float(values["sin"])]
        return max(both) if statistic == "rhat" else min(both)

    for n in range(4):
        assert table.rhat[n] == pytest.approx(worst("rhat", n), rel=1e-6)
        assert table.ess_bulk[n] == pytest.approx(worst("ess", n, method="bulk"), rel=1e-6)
        assert table.ess_tail[n] == pytest.approx(worst("ess", n, method="tail"), rel=1e-6)


def test_convergence_thresholds_and_a_line_parameter(broken: DataTree) -> None:
    # as a line parameter, the seam example's raw draws jump between ±π: not cos/sin
    line = (Parameter("rotation", Real()),)
    eta = broken.posterior["eta"].values[..., 0]
    table = convergence(broken, line)
    assert table.rhat[0] == pytest.approx(array_stats.rhat(eta[..., 0]), rel=1e-6)
    lenient = convergence(broken, pc.PARAMETERS, rhat_max=10.0, ess_min=1.0)
    assert list(lenient.converged) == [True, True, False, True]
    strict = convergence(broken, pc.PARAMETERS, ess_min=1e6)
    assert not strict.converged.any()


def test_convergence_without_sample_stats_counts_no_divergences() -> None:
    eta = np.random.default_rng(1).normal(0, 0.3, size=(2, 100, 3))
    table = convergence(_tree(eta), pc.PARAMETERS, rhat_max=1.1, ess_min=10)
    assert list(table.divergences) == [0, 0, 0]
    assert table.converged.all()


def test_convergence_needs_two_chains() -> None:
    eta = np.zeros((1, 50, 2))
    with pytest.raises(ValueError, match="at least 2 chains"):
        convergence(_tree(eta), pc.PARAMETERS)


# ---------------------------------------------------------------- sampling coordinates


class _ShiftAndScale(dist.Distribution):
    """η = (shift, log-scale) per example: Uniform(−1, 2) × Normal(0, 1)."""

    support = dist.constraints.real_vector

    def __init__(self, batch: int) -> None:
        super().__init__(batch_shape=(batch,), event_shape=(2,))

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        k1, k2 = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        shift = jax.random.uniform(k1, shape, minval=-1.0, maxval=2.0)
        return jnp.stack([shift, jax.random.normal(k2, shape)], axis=-1)

    def log_prob(self, value: jax.Array) -> jax.Array:
        return dist.Uniform(-1.0, 2.0).log_prob(value[..., 0]) + dist.Normal(0.0, 1.0).log_prob(
            value[..., 1]
        )


LINE_NOISE = 0.5
LINE_PARAMETERS = (Parameter("shift", Interval(-1.0, 2.0)), Parameter("scale", Real()))


def line_model(x: jax.Array) -> None:
    """x_n ~ N(η_n, 0.5² I); z_n ~ HalfNormal(1) with no data (its posterior is its prior)."""
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.HalfNormal(1.0))
        eta = numpyro.sample("eta", _ShiftAndScale(x.shape[0]))
        numpyro.sample("x", dist.Normal(eta, LINE_NOISE).to_event(1), obs=x)


def test_coordinates_map_and_log_jacobian() -> None:
    x = jnp.zeros((1, 2))
    parameters = (
        Parameter("angle", Periodic(low=0.0, period=3.0)),
        Parameter("shift", Interval(-1.0, 2.0)),
    )
    sites = latent_sites(line_model, {}, x)
    coordinates = _Coordinates(sites, "eta", parameters)
    u = {"z": jnp.array([0.3]), "eta": jnp.array([[4.2, -0.7]])}
    values, log_det = jax.jit(coordinates.constrain)(u)
    # periodic: wrapped, no volume change; interval: scaled sigmoid; z > 0 by exp
    assert float(values["eta"][0, 0]) == pytest.approx(4.2 - 3.0, abs=1e-5)
    shift = -1.0 + 3.0 * jax.nn.sigmoid(-0.7)
    assert float(values["eta"][0, 1]) == pytest.approx(float(shift), abs=1e-6)
    assert float(values["z"][0]) == pytest.approx(math.exp(0.3), rel=1e-6)

    def flat(v: jax.Array) -> jax.Array:
        out, _ = coordinates.constrain({"z": v[:1], "eta": v[1:][None]})
        return jnp.concatenate([out["z"], out["eta"][0]])

    jacobian = jax.jit(jax.jacfwd(flat))(jnp.array([0.3, 4.2, -0.7]))
    expected = float(jnp.sum(jnp.log(jnp.abs(jnp.diag(jacobian)))))
    assert float(log_det) == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(jacobian - jnp.diag(jnp.diag(jacobian)), 0.0)


def test_potential_is_the_negative_log_density_in_sampling_coordinates() -> None:
    # U(u) = −[log p(x, z, η) + log |d(z, η)/du|], by SciPy at the mapped point
    x1 = jnp.array([[0.4, -1.2]])
    sites = latent_sites(line_model, {}, x1)
    coordinates = _Coordinates(sites, "eta", LINE_PARAMETERS)
    u = {"z": jnp.array([-0.3]), "eta": jnp.array([[0.8, 0.5]])}
    potential = jax.jit(_potential(line_model, {}, coordinates)(x1))
    z = math.exp(-0.3)
    shift = -1.0 + 3.0 / (1.0 + math.exp(-0.8))
    log_density = (
        stats.halfnorm.logpdf(z)
        + stats.uniform(-1.0, 3.0).logpdf(shift)
        + stats.norm.logpdf(0.5)
        + stats.norm(shift, LINE_NOISE).logpdf(0.4)
        + stats.norm(0.5, LINE_NOISE).logpdf(-1.2)
    )
    sigmoid = 1.0 / (1.0 + math.exp(-0.8))
    log_jacobian = -0.3 + math.log(3.0 * sigmoid * (1.0 - sigmoid))
    assert float(potential(u)) == pytest.approx(-(log_density + log_jacobian), abs=1e-4)


def test_coordinates_start_inside_the_supports() -> None:
    parameters = (Parameter("angle", Periodic()), Parameter("shift", Interval(-1.0, 2.0)))
    coordinates = _Coordinates(latent_sites(line_model, {}, jnp.zeros((1, 2))), "eta", parameters)
    starts = jax.jit(jax.vmap(coordinates.initial))(jax.random.split(jax.random.PRNGKey(0), 200))
    eta = np.asarray(starts["eta"])[:, 0]
    # periodic coordinates start anywhere on the circle, the others in (−2, 2)
    assert eta[:, 0].min() < -2.5
    assert eta[:, 0].max() > 2.5
    assert np.all((eta[:, 0] >= -math.pi) & (eta[:, 0] <= math.pi))
    assert np.all(np.abs(eta[:, 1]) <= 2)
    assert starts["z"].shape == (200, 1)


@pytest.mark.slow
def test_reference_on_interval_and_real_parameters() -> None:
    """Truncated-normal and normal posteriors, and a latent z left at its half-normal prior."""
    x = np.array([[1.9, 0.3], [-0.8, -1.0], [0.5, 2.0]], dtype=np.float32)
    tree = reference_posterior(
        line_model, {}, x, parameters=LINE_PARAMETERS, num_warmup=400, num_samples=500, seed=0
    )
    assert convergence(tree, LINE_PARAMETERS).converged.all()
    eta = tree.posterior["eta"].values
    z = tree.posterior["z"].values
    precision = 1 + 1 / LINE_NOISE**2
    for n in range(x.shape[0]):
        a, b = (-1 - x[n, 0]) / LINE_NOISE, (2 - x[n, 0]) / LINE_NOISE
        laws = [
            stats.truncnorm(a, b, loc=x[n, 0], scale=LINE_NOISE),
            stats.norm(x[n, 1] / LINE_NOISE**2 / precision, 1 / math.sqrt(precision)),
            stats.halfnorm(),
        ]
        samples = [eta[:, :, n, 0].ravel(), eta[:, :, n, 1].ravel(), z[:, :, n].ravel()]
        for law, sample in zip(laws, samples, strict=True):
            assert wasserstein_to_law(sample, law.cdf) < 0.1 * law.std(), (n, law.mean())
