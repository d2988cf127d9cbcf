"""invppl's affine coupling held against TensorFlow Probability's RealNVP bijector.

tfp's ``RealNVP(num_masked=m)`` keeps the first m coordinates and moves the rest
by ``y = x·exp(log_scale) + shift``, with ``(shift, log_scale)`` a function of the
kept ones; invppl's :class:`~invppl.distributions.AffineCoupling` with the mask
"first m kept" and a conditioner of ``b⊙x`` is the same map. Given the same
weights, both must give the same forward, inverse and log-determinant, under
``jax.jit`` and ``jax.grad`` (tfp-nightly 0.26.0.dev20261027 with jax 0.12;
tensorflow-probability 0.25 does not import with that jax, docs/install.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invppl.distributions import AffineCoupling

tfp = pytest.importorskip("tensorflow_probability.substrates.jax")

DIM = 6


def _weights(key: jax.Array) -> dict[str, jax.Array]:
    first, second = jax.random.split(key)
    return {
        "hidden": 0.5 * jax.random.normal(first, (DIM, 16)),
        "out": 0.3 * jax.random.normal(second, (16, 2 * DIM)),
    }


def _conditioner(weights: dict[str, jax.Array]):
    """``b⊙x (..., DIM) → (s, t)``, each ``(..., DIM)``: a one-hidden-layer tanh MLP."""

    def conditioner(kept: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = jnp.tanh(kept @ weights["hidden"]) @ weights["out"]
        return out[..., :DIM], out[..., DIM:]

    return conditioner


def _both(weights: dict[str, jax.Array], kept: int):
    """The same coupling as invppl's transform and as tfp's bijector."""
    mask = np.arange(DIM) < kept
    ours = AffineCoupling(mask, _conditioner(weights))

    def shift_and_log_scale(first: jax.Array, output_units: int, **_: object):
        padded = jnp.concatenate([first, jnp.zeros((*first.shape[:-1], output_units))], -1)
        log_scale, shift = _conditioner(weights)(padded)
        return shift[..., kept:], log_scale[..., kept:]

    theirs = tfp.bijectors.RealNVP(num_masked=kept, shift_and_log_scale_fn=shift_and_log_scale)
    return ours, theirs


@pytest.mark.parametrize("kept", [1, 3, 5])
def test_forward_inverse_and_log_det_equal_tfps_realnvp(kept: int) -> None:
    weights = _weights(jax.random.key(kept))
    ours, theirs = _both(weights, kept)
    x = jax.random.normal(jax.random.key(10 + kept), (7, DIM))

    @jax.jit
    def both(x: jax.Array):
        y_ours, y_theirs = ours(x), theirs.forward(x)
        return (
            (y_ours, y_theirs),
            (ours.inv(y_ours), theirs.inverse(y_theirs)),
            (ours.log_abs_det_jacobian(x, y_ours), theirs.forward_log_det_jacobian(x, 1)),
        )

    for mine, reference in both(x):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)
    # the map is not the identity: the comparison has something to compare
    assert float(jnp.abs(ours(x) - x)[:, kept:].min()) > 1e-4


def test_gradients_of_the_log_density_equal_tfps() -> None:
    """d/dweights of a flow's log-density: one coupling over a standard normal."""
    kept = 3
    x = jax.random.normal(jax.random.key(0), (5, DIM))
    base = tfp.distributions.MultivariateNormalDiag(jnp.zeros(DIM))

    def ours(weights):
        coupling, _ = _both(weights, kept)
        z = coupling.inv(x)
        return (base.log_prob(z) - coupling.log_abs_det_jacobian(z, x)).sum()

    def theirs(weights):
        _, bijector = _both(weights, kept)
        return tfp.distributions.TransformedDistribution(base, bijector).log_prob(x).sum()

    weights = _weights(jax.random.key(1))
    value_ours, grad_ours = jax.jit(jax.value_and_grad(ours))(weights)
    value_theirs, grad_theirs = jax.jit(jax.value_and_grad(theirs))(weights)
    np.testing.assert_allclose(value_ours, value_theirs, rtol=1e-5)
    for name in weights:
        np.testing.assert_allclose(grad_ours[name], grad_theirs[name], rtol=1e-4, atol=1e-5)
