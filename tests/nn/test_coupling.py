"""The generic coupling layer: invertible, triangular, its log-det the Jacobian's; an NNX network.

Oracles: ``jax.jacfwd`` of the layer (its log-determinant and its triangular
structure), the inverse pass, a Python loop over ``CouplingStack[i]`` against
the scanned stack, and NumPyro's trace of ``nnx_module``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from flax import nnx
from numpyro.contrib.module import nnx_module
from numpyro.handlers import seed, trace

from invppl.nn.coupling import (
    Coupling,
    CouplingStack,
    MLPConditioner,
    affine_transformer,
    alternating_masks,
)

CHECKERBOARD = (np.indices((4, 4)).sum(0) % 2 == 0)[..., None]  # (4, 4, 1), an image event


def _affine_layer(mask, context_dim=0, seed_=0):
    event = np.asarray(mask).shape
    conditioner = MLPConditioner(
        event, (*event, 2), context_dim, width=16, depth=1, rngs=nnx.Rngs(seed_)
    )
    return Coupling(mask, conditioner, affine_transformer)


@pytest.mark.parametrize(
    ("mask", "context_dim"), [((True, False, True, False, False), 3), (CHECKERBOARD, 0)]
)
def test_affine_coupling_inverts_and_its_log_det_is_the_jacobians(mask, context_dim):
    layer = _affine_layer(mask, context_dim)
    event = np.asarray(mask).shape
    x = jax.random.normal(jax.random.key(1), event)
    context = jax.random.normal(jax.random.key(2), (context_dim,)) if context_dim else None
    y, log_det = jax.jit(lambda x: layer(x, context))(x)
    back, inverse_log_det = jax.jit(lambda y: layer(y, context, inverse=True))(y)
    np.testing.assert_allclose(back, x, atol=1e-5)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-5)
    kept = ~np.asarray(mask)
    np.testing.assert_array_equal(np.asarray(y)[kept], np.asarray(x)[kept])
    assert not np.allclose(np.asarray(y)[~kept], np.asarray(x)[~kept])
    size = x.size
    jacobian = jax.jacfwd(lambda v: layer(v.reshape(event), context)[0].ravel())(x.ravel())
    jacobian = np.asarray(jacobian).reshape(size, size)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(jacobian)[1], atol=1e-4)
    # triangular: a moved output depends on the moved inputs only through its own coordinate
    moved = np.flatnonzero(np.asarray(mask).ravel())
    block = jacobian[np.ix_(moved, moved)]
    np.testing.assert_allclose(block - np.diag(np.diag(block)), 0.0, atol=1e-7)


def test_coupling_broadcasts_over_leading_axes():
    layer = _affine_layer((True, False, True), context_dim=2)
    x = jax.random.normal(jax.random.key(3), (4, 5, 3))
    context = jax.random.normal(jax.random.key(4), (4, 5, 2))
    y, log_det = layer(x, context)
    assert y.shape == (4, 5, 3)
    assert log_det.shape == (4, 5)
    one_y, one_log_det = layer(x[2, 1], context[2, 1])
    np.testing.assert_allclose(y[2, 1], one_y, rtol=1e-6)
    np.testing.assert_allclose(log_det[2, 1], one_log_det, rtol=1e-6)


def test_stack_scans_the_same_layers_a_loop_runs():
    rngs = nnx.Rngs(5)
    masks = alternating_masks(5, 3)
    nets = [MLPConditioner((5,), (5, 2), 2, width=8, depth=2, rngs=rngs) for _ in masks]
    stack = CouplingStack(masks, nets, affine_transformer)
    assert len(stack) == 3
    assert stack.event_shape == (5,)
    x = jax.random.normal(jax.random.key(6), (7, 5))
    context = jax.random.normal(jax.random.key(7), (7, 2))
    y, log_det = jax.jit(lambda x: stack(x, context))(x)
    looped, total = x, jnp.zeros(7)
    for index in range(len(stack)):
        assert stack[index].mask == masks[index]
        looped, step = stack[index](looped, context)
        total = total + step
    np.testing.assert_allclose(y, looped, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_det, total, rtol=1e-5, atol=1e-6)
    back, inverse_log_det = jax.jit(lambda y: stack(y, context, inverse=True))(y)
    np.testing.assert_allclose(back, x, atol=1e-5)
    np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-5)
    # every coordinate moved by some layer
    assert not np.any(np.isclose(np.asarray(y), np.asarray(x)))


def test_stack_rejects_conditioners_of_other_shapes_and_bad_masks():
    rngs = nnx.Rngs(0)
    nets = [MLPConditioner((3,), (3, 2), 0, width=width, depth=1, rngs=rngs) for width in (4, 5)]
    with pytest.raises(ValueError, match="share one structure"):
        CouplingStack(alternating_masks(3, 2), nets, affine_transformer)
    with pytest.raises(ValueError, match="one conditioner per layer"):
        CouplingStack(alternating_masks(3, 3), nets[:1], affine_transformer)
    with pytest.raises(ValueError, match="got a scalar"):
        Coupling(True, nets[0], affine_transformer)


def test_coupling_registers_params_only_with_numpyro():
    """``nnx_module`` makes the conditioner's weights one param site; the mask is no state."""
    layer = _affine_layer(CHECKERBOARD)

    def model(x):
        y, _ = nnx_module("coupling", layer)(x)
        numpyro.deterministic("y", y)

    traced = trace(seed(model, 0)).get_trace(jnp.ones((2, 4, 4, 1)))
    assert [name for name, site in traced.items() if site["type"] in ("param", "mutable")] == [
        "coupling$params"
    ]
    assert set(traced["coupling$params"]["value"]) == {"conditioner"}
    np.testing.assert_allclose(traced["y"]["value"], layer(jnp.ones((2, 4, 4, 1)))[0])


def test_conditioner_starts_like_equinox_linear_layers():
    """Weights and biases uniform on ±1/√fan_in: the flows' initial law is unchanged."""
    net = MLPConditioner((50,), (400,), 14, width=300, depth=1, rngs=nnx.Rngs(0))
    for layer, fan_in in zip(net.layers, (64, 300), strict=True):
        for values in (np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])):
            limit = 1 / np.sqrt(fan_in)
            assert np.abs(values).max() <= limit
            assert np.abs(values).max() > 0.95 * limit
            assert np.std(values) == pytest.approx(limit / np.sqrt(3), rel=0.05)
    with pytest.raises(ValueError, match="needs a context of size 14"):
        net(jnp.ones(50))
