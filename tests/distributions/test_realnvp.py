"""RealNVP's transforms and flows, each checked against an independent oracle.

Oracles: ``jax.jacfwd`` of the forward map (its log |det| by ``numpy.linalg.slogdet``),
the forward pass against the inverse, the squeeze against an index formula, a
grid quadrature of ``exp(log_prob)`` and of moments beside the flow's samples,
central finite differences (gradients), the true density and a Gaussian fit
(maximum likelihood), and the batch-norm update's closed form.
"""

import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from numpyro.distributions.transforms import ComposeTransform
from numpyro.infer.util import log_density
from scipy import stats

from invppl.distributions import (
    ActNorm,
    AffineCoupling,
    BatchNorm,
    FactorOut,
    RealNVP,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    initialize_actnorm,
    realnvp_sample,
)
from invppl.infer import fit
from invppl.nn import MLPConditioner, ResNetConditioner, with_fitted_params


def _perturbed(module, scale=0.05, seed=1):
    """``module`` with noise added to every ``nnx.Param`` (so zero-initialised layers act)."""
    graph, params, rest = nnx.split(module, nnx.Param, ...)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)  # NumPy: no compilation per shape
    noisy = [leaf + scale * rng.standard_normal(leaf.shape).astype("f4") for leaf in leaves]
    return nnx.merge(graph, jax.tree.unflatten(tree, noisy), rest)


def _image_net(channels, seed=0):
    return ResNetConditioner(channels, width=4, blocks=1, zero_output=False, rngs=nnx.Rngs(seed))


def _vector_net(size, seed=0):
    return MLPConditioner((size,), (size, 2), 0, width=8, depth=1, rngs=nnx.Rngs(seed))


@jax.jit
def _forward_inverse_log_det(transform, x):
    """``(y, inverse(y), log_abs_det_jacobian(x, y), jacfwd (size, size))``, compiled; a pytree
    ``transform`` is an argument (its tree structure is part of what is checked)."""
    y = transform(x)
    jacobian = jax.jacfwd(lambda v: transform(v.reshape(x.shape)).reshape(-1))(x.reshape(-1))
    return y, transform.inv(y), transform.log_abs_det_jacobian(x, y), jacobian


def _check_bijection(transform, x, atol=1e-4):
    """inverse(forward(x)) = x, and log_abs_det_jacobian = log |det jacfwd| (one event ``x``)."""
    y, back, log_det, jacobian = _forward_inverse_log_det(transform, x)
    np.testing.assert_allclose(back, x, atol=atol)
    assert y.size == x.size
    sign, expected = np.linalg.slogdet(np.asarray(jacobian, np.float64))
    assert sign != 0
    np.testing.assert_allclose(log_det, expected, atol=atol * 10)
    return y, expected


def _coupling_cases():
    image = (4, 4, 2)
    square = lambda kept: (jnp.sin(kept[..., ::-1]), kept[..., ::-1] ** 2)
    return {
        "vector": AffineCoupling(alternating_mask(5, 1), _vector_net(5)),
        "vector-function": AffineCoupling(alternating_mask(4), square, log_scale_bound=0.5),
        "checkerboard": AffineCoupling(checkerboard_mask(image), _image_net(2)),
        "channel": AffineCoupling(channel_mask(image, 1), _image_net(2), log_scale_bound=2.0),
    }


@pytest.mark.parametrize("name", ["vector", "vector-function", "checkerboard", "channel"])
def test_affine_coupling_inverts_and_its_log_det_is_the_jacobians(name):
    layer = _coupling_cases()[name]
    x = jax.random.normal(jax.random.key(3), layer.event_shape)
    _check_bijection(layer, x)
    y = layer(x)
    kept = layer.mask
    np.testing.assert_array_equal(np.asarray(y)[kept], np.asarray(x)[kept])  # b⊙y = b⊙x
    assert not np.allclose(np.asarray(y)[~kept], np.asarray(x)[~kept])
    assert layer.domain.event_dim == layer.codomain.event_dim == len(layer.event_shape)


def test_coupling_bound_soft_clamps_the_log_scale():
    big = AffineCoupling(alternating_mask(2), lambda k: (100.0 + 0 * k, 0 * k), log_scale_bound=2.0)
    x = jnp.array([1.0, 1.0])
    np.testing.assert_allclose(big.log_abs_det_jacobian(x, big(x)), 2.0 * np.tanh(50.0), rtol=1e-6)


@given(
    height=st.sampled_from([2, 4, 6]),
    width=st.sampled_from([2, 4]),
    channels=st.integers(1, 3),
    batch=st.integers(0, 2),
)
@settings(max_examples=6)
def test_squeeze_is_the_2x2_block_permutation(height, width, channels, batch):
    shape = (*(3,) * batch, height, width, channels)
    x = jnp.arange(math.prod(shape), dtype=jnp.float32).reshape(shape)
    y = Squeeze()(x)
    assert y.shape == (*shape[:-3], height // 2, width // 2, 4 * channels)
    assert Squeeze().forward_shape(shape) == y.shape
    assert Squeeze().inverse_shape(y.shape) == shape
    np.testing.assert_array_equal(np.sort(np.asarray(y).ravel()), np.asarray(x).ravel())
    np.testing.assert_array_equal(Squeeze().inv(y), x)
    h, w, c = height // 2 - 1, width // 2 - 1, channels - 1  # out channel (2i + j)·C + c
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        np.testing.assert_array_equal(
            y[..., h, w, (2 * i + j) * channels + c], x[..., 2 * h + i, 2 * w + j, c]
        )


def test_squeeze_factor_out_and_normalisations_invert_with_the_jacobians_log_det():
    image = (2, 2, 2)
    x = jax.random.normal(jax.random.key(4), image)
    _check_bijection(Squeeze(), x)
    _check_bijection(Squeeze().inv, jax.random.normal(jax.random.key(5), (1, 1, 8)))
    inner = AffineCoupling(checkerboard_mask((2, 2, 1)), _image_net(1))
    _check_bijection(FactorOut(inner, 1), x)
    channels = jax.random.normal(jax.random.key(6), (2, 2))
    _check_bijection(ActNorm(channels[0], channels[1], event_dim=3), x)
    _check_bijection(ActNorm(channels[0], channels[1], event_dim=1), x[0, 0])
    state = {"mean": channels[1], "var": jnp.exp(channels[0])}
    _check_bijection(BatchNorm(channels[1], channels[0], state, event_dim=3), x)


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((3,), {"couplings": 3, "normalization": "actnorm"}),
        ((4, 4, 2), {"num_scales": 2, "couplings": 1, "normalization": "batchnorm"}),
    ],
)
def test_the_whole_flow_inverts_and_its_log_prob_is_the_change_of_variables(shape, options):
    flow = _perturbed(RealNVP(shape, width=4, blocks=1, rngs=nnx.Rngs(0), **options))
    transform = ComposeTransform(flow.transforms())
    z = jax.random.normal(jax.random.key(7), shape)
    x, log_det = _check_bijection(transform, z, atol=2e-4)
    distribution = flow()
    assert distribution.event_shape == shape
    expected = stats.norm.logpdf(np.asarray(z)).sum() - log_det
    np.testing.assert_allclose(distribution.log_prob(x), expected, rtol=1e-4, atol=1e-3)
    if len(shape) == 1:  # sampling's log-densities (from the forward pass) match log_prob's
        samples, intermediates = distribution.sample_with_intermediates(jax.random.key(8), (4,))
        np.testing.assert_allclose(
            distribution.log_prob(samples, intermediates), distribution.log_prob(samples), atol=1e-3
        )


@pytest.fixture(scope="module")
def flow_2d():
    """A 2-D flow far from Gaussian (correlation ≈ 0.9, heavy tails)."""
    return _perturbed(RealNVP((2,), couplings=4, width=16, rngs=nnx.Rngs(2)), scale=0.2)


def test_a_2d_flows_density_integrates_to_one_and_matches_its_samples(flow_2d):
    distribution = flow_2d()
    samples = np.asarray(distribution.sample(jax.random.key(9), (20000,)))
    # a box holding ≈ 99 % of the samples, cut into 400 × 400 cells (midpoint rule)
    low, high = np.quantile(samples, 0.005, 0), np.quantile(samples, 0.995, 0)
    inside = np.all((samples >= low) & (samples <= high), 1)
    step = (high - low) / 400
    axes = [low[i] + (np.arange(400) + 0.5) * step[i] for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    density = np.exp(np.asarray(jax.jit(distribution.log_prob)(grid), np.float64))
    mass = density.sum() * step.prod()
    np.testing.assert_allclose(mass + (1 - inside.mean()), 1.0, atol=5e-3)  # the box + outside
    # the samples' moments in the box are the density's (4 standard errors)
    for values, moment in ((samples, grid), (samples**2, grid**2)):
        in_box = values * inside[:, None]
        by_density = (moment * density[:, None]).sum(0) * step.prod()
        error = 4 * in_box.std(0) / math.sqrt(len(values))
        assert np.all(np.abs(in_box.mean(0) - by_density) < error)


def test_the_flow_works_under_jit_and_grad(flow_2d):
    x = jax.random.normal(jax.random.key(10), (6, 2))
    graph, params = nnx.split(flow_2d)

    def mean_log_prob(params, x):
        return nnx.merge(graph, params)().log_prob(x).mean()

    np.testing.assert_allclose(
        jax.jit(mean_log_prob)(params, x), flow_2d().log_prob(x).mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        jax.jit(lambda d, x: d.log_prob(x))(flow_2d(), x), flow_2d().log_prob(x), rtol=1e-5
    )
    grads = jax.jit(jax.grad(mean_log_prob))(params, x)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)
    # the gradient along a random direction against central differences
    rng = np.random.default_rng(11)
    direction = jax.tree.map(lambda g: rng.standard_normal(g.shape).astype("f4"), params)
    along = sum(jnp.vdot(g, d) for g, d in zip(leaves, jax.tree.leaves(direction), strict=True))
    step = 1e-3
    moved = [
        jax.jit(mean_log_prob)(
            jax.tree.map(lambda p, d, s=s: p + s * step * d, params, direction), x
        )
        for s in (1, -1)
    ]
    np.testing.assert_allclose((moved[0] - moved[1]) / (2 * step), along, rtol=2e-2)
    gradient_x = jax.jit(jax.grad(lambda x: flow_2d().log_prob(x).sum()))(x)
    assert gradient_x.shape == x.shape
    assert bool(jnp.all(jnp.isfinite(gradient_x)))


def _mixture(n, seed):
    rng = np.random.default_rng(seed)
    sign = np.where(rng.integers(0, 2, n) == 1, 2.0, -2.0)
    return (np.stack([sign, np.zeros(n)], 1) + 0.5 * rng.standard_normal((n, 2))).astype("f4")


def _mixture_log_density(x):
    x = np.asarray(x, np.float64)
    parts = [
        stats.norm.logpdf(x[:, 0], m, 0.5) + stats.norm.logpdf(x[:, 1], 0, 0.5) for m in (-2, 2)
    ]
    return np.logaddexp(*parts) + np.log(0.5)


def _flow_model(flow, training=True):
    def model(x):
        with numpyro.plate("data", x.shape[0]):
            realnvp_sample("x", flow, obs=x, training=training)

    return model


def _no_guide(x):
    return None


def test_fitting_a_flow_to_a_mixture_lowers_its_nll_near_the_entropy():
    train, test = _mixture(4000, 0), _mixture(4000, 1)
    flow = RealNVP((2,), couplings=6, width=32, rngs=nnx.Rngs(0))
    before = -float(flow().log_prob(test).mean())
    result = fit(
        _flow_model(flow),
        _no_guide,
        {"x": train},
        seed=0,
        num_steps=600,
        batch_size=256,
        optimizer=optax.adam(3e-3),
        progress=False,
    )
    fitted = with_fitted_params(flow, "x_flow", result.params)
    nll = -float(fitted().log_prob(test).mean())
    entropy = -float(_mixture_log_density(test).mean())  # the best any model can do, ≈ 2.13
    gaussian = stats.multivariate_normal(train.mean(0), np.cov(train.T))
    gaussian_nll = -float(gaussian.logpdf(test).mean())  # ≈ 2.85
    assert nll < before - 1.0
    assert nll < gaussian_nll - 0.5
    assert nll < entropy + 0.15


def test_batch_norm_uses_batch_statistics_in_training_and_the_running_ones_at_eval():
    state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([4.0, 1.0])}
    zeros = jnp.zeros(2)
    y = 3.0 + 2.0 * jax.random.normal(jax.random.key(12), (64, 2))
    training = BatchNorm(zeros, zeros, state, event_dim=1, training=True, momentum=0.8)
    x = training.inv(y)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-3)
    np.testing.assert_allclose(state["mean"], 0.8 * np.array([1, -1]) + 0.2 * y.mean(0), 1e-5)
    np.testing.assert_allclose(state["var"], 0.8 * np.array([4, 1]) + 0.2 * y.var(0), 1e-5)
    training.inv(y)  # the same batch again: the same update (from the values at construction)
    np.testing.assert_allclose(state["mean"], 0.8 * np.array([1, -1]) + 0.2 * y.mean(0), 1e-5)
    fixed = dict(state)
    evaluating = BatchNorm(zeros, zeros, fixed, event_dim=1)
    np.testing.assert_allclose(evaluating.inv(y[:3]), evaluating.inv(y)[:3], rtol=1e-6)
    assert all(fixed[k] is state[k] for k in state)  # untouched


def test_batch_norm_state_is_numpyro_mutable_state_updated_in_training_only():
    flow = RealNVP((2,), couplings=2, width=8, normalization="batchnorm", rngs=nnx.Rngs(3))
    data = {"x": (np.array([3.0, -1.0]) + _mixture(512, 2)).astype("f4")}
    result = fit(
        _flow_model(flow), _no_guide, data, seed=0, num_steps=40, batch_size=128, progress=False
    )
    state = result.state.mutable_state["x_flow$batch_norm"]
    # step 0 normalises the data first: its running mean tends to the data's mean
    np.testing.assert_allclose(state["0"]["mean"], data["x"].mean(0), atol=0.1)
    assert float(jnp.abs(state["1"]["mean"]).max()) > 0  # deeper layers updated too
    batch = data["x"][:64]
    for training, changes in ((True, True), (False, False)):
        # a fresh copy: outside jit the site's dict is the one substituted, updated in place
        params = jax.tree.map(jnp.array, result.params_and_state)
        _, trace = log_density(_flow_model(flow, training), (batch,), {}, params)
        after = trace["x_flow$batch_norm"]["value"]
        changed = not np.allclose(after["0"]["mean"], state["0"]["mean"])
        assert changed is changes
    # at evaluation an example's density does not depend on the rest of its batch
    fitted = with_fitted_params(flow, "x_flow", result.params)
    evaluating = fitted(state=state)
    np.testing.assert_allclose(
        evaluating.log_prob(batch[:5]), evaluating.log_prob(batch)[:5], rtol=1e-5
    )


def test_actnorm_data_dependent_initialisation_normalises_the_data():
    flow = _perturbed(
        RealNVP(
            (4, 4, 2),
            num_scales=2,
            couplings=1,
            width=4,
            blocks=1,
            normalization="actnorm",
            rngs=nnx.Rngs(4),
        )
    )
    x = 2.0 + 3.0 * jax.random.normal(jax.random.key(13), (32, 4, 4, 2))
    initialised = initialize_actnorm(flow, x)
    first = initialised.transforms()[-1]  # the data-side layer: step 0's ActNorm
    assert isinstance(first, ActNorm)
    normalised = first.inv(x)
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert bool(jnp.all(jnp.isfinite(initialised().log_prob(x))))
    assert float(flow.steps[0].norm.shift[...][0]) != pytest.approx(2.0, abs=0.5)  # a copy


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="H and W even"):
        Squeeze()(jnp.ones((3, 4, 1)))
    with pytest.raises(ValueError, match="multiple of 4"):
        Squeeze().inv(jnp.ones((2, 2, 3)))
    with pytest.raises(ValueError, match="no dimension to condition on"):
        AffineCoupling(np.zeros(3, bool), _vector_net(3))
    with pytest.raises(ValueError, match="transforms nothing"):
        AffineCoupling(np.ones(3, bool), _vector_net(3))
    with pytest.raises(ValueError, match="no dimension to condition on"):
        channel_mask((4, 4, 1))
    with pytest.raises(ValueError, match="no dimension to condition on"):
        alternating_mask(1)
    with pytest.raises(ValueError, match="no dimension to condition on"):
        RealNVP((1, 1, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="divisible by 4"):
        RealNVP((6, 8, 1), num_scales=3, rngs=nnx.Rngs(0))
    layer = AffineCoupling(alternating_mask(3), _vector_net(3))
    with pytest.raises(ValueError, match="NaN"):
        layer(jnp.array([0.0, jnp.nan, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        RealNVP((2,), rngs=nnx.Rngs(0))().log_prob(jnp.array([[jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"expected an input of shape \(\.\.\., 3\)"):
        layer(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="must return"):
        AffineCoupling(alternating_mask(2), lambda kept: kept)(jnp.ones(2))
    with pytest.raises(ValueError, match="two values per channel"):
        BatchNorm(
            jnp.zeros(2),
            jnp.zeros(2),
            {"mean": jnp.zeros(2), "var": jnp.ones(2)},
            event_dim=1,
            training=True,
        ).inv(jnp.ones(2))
    with pytest.raises(ValueError, match="needs an actnorm flow"):
        initialize_actnorm(RealNVP((2,), rngs=nnx.Rngs(0)), jnp.ones((4, 2)))


def test_a_concrete_array_captured_inside_jit_reaches_the_checks_without_a_tracer_error():
    # regression: the NaN check on a concrete array closed over by a jitted function was
    # traced (jnp.isnan under jit) and its bool() raised TracerBoolConversionError
    layer = AffineCoupling(alternating_mask(3), _vector_net(3))
    for captured in (jnp.array([[0.0, 0.5, 1.0]]), np.array([[0.0, 0.5, 1.0]], np.float32)):

        @jax.jit
        def forward_and_back(scale, captured=captured):
            y = layer(captured) * scale
            return y, layer.inv(layer(captured)), layer.log_abs_det_jacobian(captured, y)

        y, x_back, _ = forward_and_back(2.0)
        np.testing.assert_allclose(y, 2.0 * layer(captured), rtol=1e-6)
        np.testing.assert_allclose(x_back, captured, rtol=1e-5, atol=1e-6)
    flow = RealNVP((2,), rngs=nnx.Rngs(0))()
    x = jnp.array([[0.3, -0.2]])
    np.testing.assert_allclose(jax.jit(lambda: flow.log_prob(x))(), flow.log_prob(x), rtol=1e-5)
    # traced inputs: shape checks stay, the NaN check is skipped (NaN in, NaN out)
    assert bool(jnp.isnan(jax.jit(lambda v: layer(v))(jnp.array([0.0, jnp.nan, 1.0]))).any())
    with pytest.raises(ValueError, match=r"at least 1 axes"):
        jax.jit(lambda v: layer(v))(jnp.float32(1.0))
    # a concrete NaN is still an error: eagerly, and at trace time when captured
    nan = jnp.array([0.0, jnp.nan, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        layer(nan)
    with pytest.raises(ValueError, match="NaN"):
        jax.jit(lambda: layer(nan))()
