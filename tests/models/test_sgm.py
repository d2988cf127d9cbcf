"""The SGM: sites, shapes and supports as the equations say, and SVI lowers its loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.handlers import seed, substitute, trace
from numpyro.infer import SVI, Predictive, Trace_ELBO

from invppl.datasets import load_digits8, rotated_mnist
from invppl.models.sgm import make_sgm
from invppl.transforms import Affine

SMALL = {"hidden": 32, "context_dim": 8, "knots": 4, "flow_layers": 1}


def _data(n: int = 64) -> jnp.ndarray:
    digits = load_digits8()
    rotated = rotated_mnist(digits.images[:n], digits.labels[:n], seed=0, max_angle=math.pi)
    return jnp.asarray(rotated.images > 0.5, dtype=jnp.float32)


def test_sites_and_the_observation_is_the_moved_prototype() -> None:
    sgm = make_sgm((8, 8, 1), 3, ("rotation", "tx"), seed=0, **SMALL)
    x = _data(6)
    guide_trace = trace(seed(sgm.guide, 1)).get_trace(x)
    eta = guide_trace["eta"]["value"]
    assert eta.shape == (6, 2)
    assert bool(jnp.all((eta[:, 0] >= -math.pi) & (eta[:, 0] < math.pi)))
    assert bool(jnp.all(jnp.abs(eta[:, 1]) < 1.0))
    model_trace = trace(
        substitute(seed(sgm.model, 2), data={"z": guide_trace["z"]["value"], "eta": eta})
    ).get_trace(x)
    prototype = model_trace["prototype"]["value"]
    moved = Affine(("rotation", "tx")).apply(prototype, eta)
    probs = jnp.clip(moved, 1e-5, 1 - 1e-5)
    expected = (x * jnp.log(probs) + (1 - x) * jnp.log1p(-probs)).sum((1, 2, 3))
    np.testing.assert_allclose(model_trace["x"]["fn"].log_prob(x), expected, rtol=1e-4)
    assert model_trace["eta"]["fn"].event_shape == (2,)


@pytest.mark.slow  # ~25 s; the joint SGM is trained in make test by tutorial 03 and `invppl fit`
def test_svi_lowers_the_loss() -> None:
    sgm = make_sgm((8, 8, 1), 3, ("rotation",), seed=0, **SMALL)
    x = _data(64)
    svi = SVI(sgm.model, sgm.guide, optax.adam(3e-3), Trace_ELBO())
    state = svi.init(jax.random.key(0), x)
    step = jax.jit(svi.update)
    losses = []
    for _ in range(150):
        state, loss = step(state, x)
        losses.append(float(loss) / 64)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 3.0


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ValueError, match="unknown transformation name"):
        make_sgm((8, 8, 1), 2, ("spin",), seed=0)
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width, channels\)"):
        make_sgm((8, 8), 2, seed=0)  # type: ignore[arg-type]


def test_learned_holds_the_fitted_networks_and_summarises_q_eta() -> None:
    sgm = make_sgm((8, 8, 1), 3, ("rotation", "tx"), seed=0, **SMALL)
    x = _data(6)
    svi = SVI(sgm.model, sgm.guide, optax.adam(1e-2), Trace_ELBO())
    initial = svi.get_params(svi.init(jax.random.key(0), x))
    leaves, tree = jax.tree.flatten(initial)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    # params away from the modules' own initial weights, which learned() must not use
    params = jax.tree.unflatten(
        tree,
        [
            leaf + 0.05 * jax.random.normal(k, leaf.shape)
            for leaf, k in zip(leaves, keys, strict=True)
        ],
    )
    learned = sgm.learned(params)
    pose = np.asarray(jax.jit(learned.pose)(x))
    assert pose.shape == (6, 2)
    # the summary against many guide draws under the fitted params: the circular mean
    # of the rotation and the mean of the shift, within Monte Carlo error of 32 draws
    predictive = Predictive(sgm.guide, params=params, num_samples=400, return_sites=["eta"])
    draws = np.asarray(predictive(jax.random.key(7), x)["eta"])
    circular = np.angle(np.exp(1j * draws[..., 0]).mean(0))
    spread = np.abs(np.exp(1j * draws[..., 0]).mean(0))
    assert np.all(np.abs(np.angle(np.exp(1j * (pose[:, 0] - circular)))) < 3 / np.sqrt(32) / spread)
    shift_sd = draws[..., 1].std(0)
    assert np.all(np.abs(pose[:, 1] - draws[..., 1].mean(0)) < 4 * shift_sd / np.sqrt(32) + 1e-3)
    # the prototype: the decoded mean code of x moved back by the pose
    loc, _ = learned.encoder(sgm.family.apply(x, -jnp.asarray(pose)))
    prototype = jax.jit(learned.prototype)(x)
    np.testing.assert_allclose(
        prototype, jax.nn.sigmoid(learned.decoder(loc)), rtol=1e-5, atol=1e-6
    )
    assert learned.sample_eta(jax.random.key(1), prototype, (5,)).shape == (5, 6, 2)
