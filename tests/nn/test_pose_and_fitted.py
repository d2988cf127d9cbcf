"""PoseNetwork's outputs lie in their supports; fitted weights round-trip out of NumPyro."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import Array
from numpyro.contrib.module import nnx_module
from numpyro.handlers import seed, substitute, trace

from invppl.distributions.eta_flow import (
    ConditionalEtaFlow,
    eta_flow,
    register_eta_flow,
    with_fitted_flow,
)
from invppl.nn import MLP, PoseNetwork, with_fitted_params
from invppl.transforms import Discrete, Interval, Parameter, Periodic, Real

SHAPE = (16, 16, 1)  # the size tests/models uses: a whole run compiles these ops once
PARAMETERS = (
    Parameter("angle", Periodic()),
    Parameter("phase", Periodic(low=0.5, period=1.5)),
    Parameter("shift", Interval(-0.3, 0.7)),
    Parameter("free", Real()),
)


def _pose_net(seed_: int = 0) -> PoseNetwork:
    return PoseNetwork(SHAPE, PARAMETERS, rngs=nnx.Rngs(seed_), hidden=16)


NET = _pose_net(0)
GRAPH, STATE = nnx.split(NET)


@jax.jit
def _pose(weight_scale: Array, images: Array) -> Array:
    # larger weights push the raw outputs further out, as training may
    state = jax.tree.map(lambda leaf: leaf * weight_scale, STATE)
    return nnx.merge(GRAPH, state)(images)


def _params(module: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def _assert_trees_equal(left: object, right: object) -> None:
    assert jax.tree.structure(left) == jax.tree.structure(right)
    for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------
# PoseNetwork


@settings(max_examples=8)
@given(seed_=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_pose_network_outputs_lie_in_each_support(seed_: int, scale: float) -> None:
    images = scale * np.random.default_rng(seed_).normal(size=(16, *SHAPE)).astype(np.float32)
    for weight_scale in (1.0, 5.0):
        eta = np.asarray(_pose(jnp.float32(weight_scale), jnp.asarray(images)))
        assert eta.shape == (16, 4)
        assert eta.dtype == np.float32
        assert np.all(np.isfinite(eta))
        for column, parameter in enumerate(PARAMETERS):
            values, support = eta[:, column], parameter.support
            if isinstance(support, Periodic):
                assert np.all(values >= np.float32(support.low))
                assert np.all(values < np.float32(support.low + support.period))
            elif isinstance(support, Interval) and weight_scale == 1.0:
                assert np.all(values > np.float32(support.low))
                assert np.all(values < np.float32(support.high))
            elif isinstance(support, Interval):
                # A saturated sigmoid is exactly 0 or 1 in float32: large weights can put
                # η on the interval's ends (still in the closed support EtaSupport checks).
                assert np.all(values >= np.float32(support.low))
                assert np.all(values <= np.float32(support.high))


def test_periodic_output_is_the_angle_of_two_raw_outputs() -> None:
    # The body's raw (cos, sin) pair gives atan2 scaled to the period, then wrapped.
    net = _pose_net(1)
    images = jax.random.normal(jax.random.key(3), (5, *SHAPE))
    raw = np.asarray(net.body(images), np.float64)
    eta = np.asarray(net(images), np.float64)
    turns = np.arctan2(raw[:, 1], raw[:, 0]) / (2 * math.pi)
    np.testing.assert_allclose(eta[:, 0], turns * 2 * math.pi, atol=1e-5)
    expected_phase = 0.5 + np.mod(np.arctan2(raw[:, 3], raw[:, 2]) / (2 * math.pi) * 1.5 - 0.5, 1.5)
    np.testing.assert_allclose(eta[:, 1], expected_phase, atol=1e-5)
    np.testing.assert_allclose(eta[:, 2], -0.3 + 1.0 / (1.0 + np.exp(-raw[:, 4])), atol=1e-5)
    np.testing.assert_allclose(eta[:, 3], raw[:, 5], atol=1e-5)


def test_pose_network_rejects_discrete_and_empty_parameters() -> None:
    with pytest.raises(ValueError, match=r"parameter 'quarter' is discrete"):
        PoseNetwork(
            SHAPE,
            (Parameter("angle", Periodic()), Parameter("quarter", Discrete(4))),
            rngs=nnx.Rngs(0),
            hidden=16,
        )
    with pytest.raises(ValueError, match="at least one transformation parameter"):
        PoseNetwork(SHAPE, (), rngs=nnx.Rngs(0), hidden=16)
    with pytest.raises(
        ValueError, match=r"ConvEncoder expects inputs ending in shape \(16, 16, 1\)"
    ):
        NET(jnp.zeros((2, 9, 9, 1)))


# ---------------------------------------------------------------------------
# with_fitted_params


def _net_model(x: Array, module: nnx.Module) -> None:
    net = nnx_module("net", module)
    numpyro.deterministic("out", net(x))


def _perturbed(tree: object, seed_: int) -> object:
    rng = np.random.default_rng(seed_)  # NumPy: eager jax.random compiles once per leaf shape
    return jax.tree.map(
        lambda leaf: jnp.asarray(leaf + 0.3 * rng.normal(size=leaf.shape), leaf.dtype), tree
    )


def test_with_fitted_params_computes_what_numpyro_computes_with_those_params() -> None:
    module = _pose_net(2)
    before = jax.tree.map(np.array, _params(module))
    x = jax.random.normal(jax.random.key(4), (6, *SHAPE))
    traced = trace(seed(_net_model, 0)).get_trace(x, module)
    initial = traced["net$params"]["value"]
    assert traced["net$params"]["type"] == "param"
    _assert_trees_equal(initial, before)  # the param site starts at the module's weights
    fitted_params = _perturbed(initial, 5)

    # the oracle: the model itself, run by NumPyro with the params substituted
    expected = trace(substitute(seed(_net_model, 0), data={"net$params": fitted_params})).get_trace(
        x, module
    )["out"]["value"]
    fitted = with_fitted_params(module, "net", {"net$params": fitted_params, "other": 1.0})
    np.testing.assert_allclose(fitted(x), expected, atol=1e-6)
    assert not np.allclose(np.asarray(module(x)), np.asarray(expected), atol=1e-3)
    # the original module is untouched, and the copy shares no variables with it
    _assert_trees_equal(_params(module), before)
    fitted.body.head.out.kernel[...] = jnp.zeros_like(fitted.body.head.out.kernel[...])
    _assert_trees_equal(_params(module), before)
    assert isinstance(fitted, PoseNetwork)
    assert fitted.supports == module.supports


def test_with_fitted_params_names_the_missing_site() -> None:
    module = _pose_net()
    with pytest.raises(KeyError, match=r"'pose_net\$params'.*found \['net\$params'\]"):
        with_fitted_params(module, "pose_net", {"net$params": _params(module)})


def test_with_fitted_params_refuses_weights_of_another_architecture() -> None:
    # weights of a wider head used to replace the module's silently: another network came back
    module = MLP(2, (4,), 1, rngs=nnx.Rngs(0))
    wider = _params(MLP(2, (4,), 3, rngs=nnx.Rngs(0)))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the fitted weights 'net$params' have other shapes than the module's (another "
            "architecture?): out/bias (3,) (expected (1,)), out/kernel (4, 3) (expected (4, 1))"
        ),
    ):
        with_fitted_params(module, "net", {"net$params": wider})


def test_with_fitted_params_refuses_missing_or_unexpected_weights() -> None:
    # missing weights used to stay at their initial values without a word
    module = MLP(2, (4,), 1, rngs=nnx.Rngs(0))
    partial_params = _params(module)
    del partial_params["out"]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "do not match the module: missing ['out/bias', 'out/kernel'], unexpected []"
        ),
    ):
        with_fitted_params(module, "net", {"net$params": partial_params})
    extra = {**_params(module), "head": {"kernel": jnp.zeros((4, 1))}}
    with pytest.raises(ValueError, match=re.escape("missing [], unexpected ['head/kernel']")):
        with_fitted_params(module, "net", {"net$params": extra})


# ---------------------------------------------------------------------------
# with_fitted_flow


FLOW_PARAMETERS = (Parameter("angle", Periodic()), Parameter("shift", Interval(-0.5, 0.5)))
FLOW = eta_flow(jax.random.key(0), FLOW_PARAMETERS, context_dim=3, knots=4, layers=2, width=8)
CONTEXT = jnp.asarray(np.random.default_rng(1).normal(size=(7, 3)), jnp.float32)
ETA = jnp.asarray(
    np.stack([np.linspace(-3.0, 3.0, 7), np.linspace(-0.45, 0.45, 7)[::-1]], axis=-1),
    jnp.float32,
)


def _flow_model(context: Array, eta: Array, flow: object) -> None:
    registered = register_eta_flow("prior_flow", flow)  # type: ignore[arg-type]
    numpyro.deterministic("log_prob", ConditionalEtaFlow(registered, context).log_prob(eta))


@jax.jit
def _flow_model_trace() -> tuple[object, Array]:
    """The param site's value and the log-density, from the model as NumPyro runs it."""
    traced = trace(seed(_flow_model, 0)).get_trace(CONTEXT, ETA, FLOW)
    return traced["prior_flow$params"]["value"], traced["log_prob"]["value"]


@jax.jit
def _flow_model_log_prob(weights: object) -> Array:
    """The model's log-density with ``weights`` substituted for the param site."""
    model = substitute(seed(_flow_model, 0), data={"prior_flow$params": weights})
    return trace(model).get_trace(CONTEXT, ETA, FLOW)["log_prob"]["value"]


@jax.jit
def _log_prob(flow: object, context: Array, eta: Array) -> Array:
    return ConditionalEtaFlow(flow, context).log_prob(eta)  # type: ignore[arg-type]


def test_with_fitted_flow_round_trips_the_registered_weights() -> None:
    before = jax.tree.map(np.array, _params(FLOW))
    initial, initial_log_prob = _flow_model_trace()
    _assert_trees_equal(initial, before)  # the param site starts at the flow's weights
    fitted_weights = _perturbed(initial, 6)
    expected = _flow_model_log_prob(fitted_weights)
    fitted = with_fitted_flow(FLOW, "prior_flow", {"prior_flow$params": fitted_weights, "x": 0})
    result = _log_prob(fitted, CONTEXT, ETA)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(result)))
    original = _log_prob(FLOW, CONTEXT, ETA)
    np.testing.assert_allclose(original, initial_log_prob, rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.asarray(original), np.asarray(expected), atol=1e-3)
    _assert_trees_equal(_params(FLOW), before)  # flow unchanged
    assert fitted.parameters == FLOW.parameters
    assert fitted.context_dim == FLOW.context_dim


def test_with_fitted_flow_names_the_missing_site() -> None:
    with pytest.raises(KeyError, match=r"'prior_flow\$params'.*found \['eta_flow\$params'\]"):
        with_fitted_flow(FLOW, "prior_flow", {"eta_flow$params": {}})
