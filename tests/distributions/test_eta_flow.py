"""The conditional spline flow over η, each check against an independent oracle.

Oracles: dense quadrature of exp(log_prob) (normalisation, CDFs for KS tests),
the inverse pass against the forward pass's own log-density, central finite
differences in float64 (gradients), SciPy's / NumPyro's von Mises (fits).
Flows share shapes and go through shared jitted helpers, so compiled code is reused.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from flax import nnx
from numpyro.distributions.transforms import biject_to
from numpyro.infer import SVI, Trace_ELBO
from scipy import stats

from invppl.distributions import (
    ConditionalEtaFlow,
    EtaFlow,
    EtaSupport,
    eta_flow,
    sample_eta,
    with_fitted_flow,
)
from invppl.transforms.support import Discrete, Interval, Parameter, Periodic, Real

SMALL = {"knots": 6, "layers": 2, "width": 16, "depth": 1}
SUPPORTS = {
    "interval": Interval(-0.5, 1.5),
    "periodic": Periodic(),
    "real": Real(),
    "hue": Periodic(low=0.0, period=1.0),
}
MIXED = (Periodic(), Interval(0.0, 2.0), Real())


def _flow(supports, context_dim=3, seed=0, **options):
    parameters = [Parameter(f"p{i}", support) for i, support in enumerate(supports)]
    return eta_flow(jax.random.key(seed), parameters, context_dim, **{**SMALL, **options})


# the flow is an NNX module and a pytree: its weights are traced, its settings static
@jax.jit
def _log_prob(flow, eta, context):
    return ConditionalEtaFlow(flow, context).log_prob(eta)


@partial(jax.jit, static_argnames="sample_shape")
def _sample(flow, key, context, sample_shape):
    return ConditionalEtaFlow(flow, context).sample_with_log_prob(key, sample_shape)


def _grid(support, points, half_width=80.0):
    """Quadrature nodes and weights: trapezoid on intervals, periodic rectangle rule."""
    if isinstance(support, Interval):
        nodes = np.linspace(support.low, support.high, points)
        weights = np.full(points, (support.high - support.low) / (points - 1))
        weights[[0, -1]] /= 2
    elif isinstance(support, Periodic):
        nodes = support.low + support.period * np.arange(points) / points
        weights = np.full(points, support.period / points)
    else:
        nodes = np.linspace(-half_width, half_width, points)
        weights = np.full(points, 2 * half_width / (points - 1))
    return nodes, weights


def _densities_1d(flow, contexts, nodes):
    """``(contexts, nodes)`` densities of a k = 1 flow, in float64."""
    eta = jnp.broadcast_to(jnp.asarray(nodes, jnp.float32)[:, None, None], (len(nodes), 1, 1))
    eta = jnp.broadcast_to(eta, (len(nodes), contexts.shape[0], 1))
    return np.exp(np.asarray(_log_prob(flow, eta, contexts), np.float64)).T


CONTEXTS = jax.random.normal(jax.random.key(2), (3, 3))


# -- normalisation -----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SUPPORTS))
def test_density_integrates_to_one_in_1d(kind):
    support = SUPPORTS[kind]
    nodes, weights = _grid(support, 40_001)
    densities = _densities_1d(_flow([support], seed=1), CONTEXTS, nodes)
    np.testing.assert_allclose(densities @ weights, 1.0, rtol=1e-3)
    if not isinstance(support, Real):  # random weights give a non-uniform density
        assert np.ptp(np.log(densities)) > 0.1


@pytest.mark.parametrize(
    "supports", [("periodic", "interval"), ("interval", "real"), ("real", "hue")]
)
def test_density_integrates_to_one_in_2d(supports):
    supports = [SUPPORTS[s] for s in supports]
    flow = _flow(supports, seed=3)
    (x, wx), (y, wy) = (
        _grid(s, 2001, half_width=40.0) if isinstance(s, Real) else _grid(s, 301) for s in supports
    )
    points = np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1).reshape(-1, 1, 2)
    log_prob = _log_prob(flow, jnp.asarray(points, jnp.float32), CONTEXTS[:2])
    density = np.exp(np.asarray(log_prob, np.float64)).reshape(len(x), len(y), 2)
    integrals = np.einsum("i,ijc,j->c", wx, density, wy)
    np.testing.assert_allclose(integrals, 1.0, rtol=1e-3)


# -- samples -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["interval", "periodic", "real"])
def test_samples_follow_the_density(kind):
    support = SUPPORTS[kind]
    flow = _flow([support], seed=1)
    eta, _ = _sample(flow, jax.random.PRNGKey(6), CONTEXTS[:1], (2000,))
    samples = np.asarray(eta[:, 0, 0], np.float64)
    if isinstance(support, Interval):
        assert np.all((samples > support.low) & (samples < support.high))
    elif isinstance(support, Periodic):
        assert np.all((samples >= support.low) & (samples < support.high))
    nodes, _ = _grid(support, 40_001)
    density = _densities_1d(flow, CONTEXTS, nodes)[0]
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(nodes))])
    cdf /= cdf[-1]
    result = stats.kstest(samples, lambda v: np.interp(v, nodes, cdf))
    assert result.pvalue > 0.01


def test_forward_log_density_matches_inverse_support_and_vmap():
    flow = _flow(MIXED, seed=7)
    contexts = jax.random.normal(jax.random.key(8), (64, 3))
    eta, forward_log_prob = _sample(flow, jax.random.PRNGKey(9), contexts, ())
    assert eta.shape == (64, 3)
    assert bool(jnp.all(EtaSupport(flow.parameters)(eta)))
    inverse_log_prob = _log_prob(flow, eta, contexts)
    np.testing.assert_allclose(inverse_log_prob, forward_log_prob, atol=2e-3, rtol=1e-4)
    # the flow's own face (EtaFlow.log_prob, flow(context)) agrees with the NumPyro face
    own_log_prob = jax.jit(lambda f, e, c: f.log_prob(e, c))(flow, eta, contexts)
    np.testing.assert_allclose(own_log_prob, inverse_log_prob, rtol=1e-6)
    called = jax.jit(lambda f, e, c: f(c).log_prob(e))(flow, eta, contexts)
    np.testing.assert_allclose(called, inverse_log_prob, rtol=1e-6)

    # jax.vmap over (η, context) pairs of one-example distributions agrees with batching
    @jax.jit
    def one_at_a_time(flow, eta, contexts):
        return jax.vmap(lambda e, c: ConditionalEtaFlow(flow, c).log_prob(e))(eta, contexts)

    np.testing.assert_allclose(one_at_a_time(flow, eta, contexts), inverse_log_prob, rtol=1e-5)


# -- periodic coordinates ----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_periodic_density_is_continuous_across_the_seam(seed):
    flow = _flow([Periodic(), Interval(-0.5, 1.5)], seed=seed)
    epsilon = 1e-4
    others = np.array([-0.4, 0.1, 0.6, 1.4])
    # points (2, others, 1, 2): just below +π and just above -π, against all 3 contexts
    points = np.stack(
        [
            np.stack([np.full_like(others, math.pi - epsilon), others], -1),
            np.stack([np.full_like(others, -math.pi + epsilon), others], -1),
        ]
    )[:, :, None, :]
    below, above = _log_prob(flow, jnp.asarray(points, jnp.float32), CONTEXTS)
    # the joint density, so the interval coordinate's conditional too, is seam-continuous
    np.testing.assert_allclose(below, above, atol=5e-3)


def test_fit_concentrated_at_pi():
    """Maximum likelihood on von Mises(π, 4) draws puts the mass around the seam."""
    flow = eta_flow(jax.random.key(13), [Parameter("angle", Periodic())], 0, **SMALL)
    data = stats.vonmises(kappa=4.0, loc=math.pi).rvs(size=4096, random_state=0)
    data = jnp.asarray(Periodic().wrap(jnp.asarray(data))[:, None], jnp.float32)
    no_context = jnp.zeros((0,))
    steps = 150
    optimiser = optax.adam(optax.cosine_decay_schedule(2e-2, steps))

    graph, weights = nnx.split(flow, nnx.Param)

    @jax.jit
    def step(weights, state, batch):
        def loss(weights):
            return -nnx.merge(graph, weights).log_prob(batch, no_context).mean()

        value, grads = jax.value_and_grad(loss)(weights)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(weights, updates), state, value

    state = optimiser.init(weights)
    for i in range(steps):
        start = (i * 256) % 4096
        weights, state, _ = step(weights, state, data[start : start + 256])
    flow = nnx.merge(graph, weights)
    nodes, weights = _grid(Periodic(), 20_000)
    density = np.exp(
        np.asarray(
            _log_prob(flow, jnp.asarray(nodes, jnp.float32)[:, None], no_context), np.float64
        )
    )
    near_seam = np.abs(nodes) > math.pi - 1.0
    target = stats.vonmises(kappa=4.0, loc=math.pi)
    target_mass = float(weights[near_seam] @ target.pdf(nodes[near_seam]))  # within 1 of π
    assert target_mass > 0.8
    assert float(weights[near_seam] @ density[near_seam]) == pytest.approx(target_mass, abs=0.03)
    fitted = np.log(density[near_seam])
    assert np.mean(np.abs(fitted - target.logpdf(nodes[near_seam]))) < 0.2
    assert density[np.argmin(np.abs(nodes))] < 0.05  # little mass at 0


# -- gradients ---------------------------------------------------------------------


def _to_float64(flow: EtaFlow) -> EtaFlow:
    graph, weights = nnx.split(flow)
    return nnx.merge(graph, jax.tree.map(lambda x: x.astype(jnp.float64), weights))


def test_gradients_match_finite_differences():
    """d log_prob / d weights and d rsample / d context, jitted, against float64 differences."""
    with jax.enable_x64(True):
        flow = _to_float64(_flow(MIXED, seed=14))
        contexts = jax.random.normal(jax.random.key(15), (32, 3), dtype=jnp.float64)
        key = jax.random.PRNGKey(16)
        eta = ConditionalEtaFlow(flow, contexts).sample(key)

        def mean_log_prob(f, context):
            return ConditionalEtaFlow(f, context).log_prob(eta).mean()

        def summary(f, context):
            sample = ConditionalEtaFlow(f, context).rsample(key)
            # angles enter through (cos, sin): smooth across the seam
            angle = sample[..., 0]
            return jnp.mean(jnp.cos(angle) + 2 * jnp.sin(angle) + sample[..., 1:].sum(-1))

        graph, weights = nnx.split(flow, nnx.Param)

        @jax.jit
        def values_and_grads(weights, context):
            """One compiled function: both values (for differences) and both gradients."""
            log_prob, weight_grads = jax.value_and_grad(
                lambda w: mean_log_prob(nnx.merge(graph, w), context)
            )(weights)
            value, context_grads = jax.value_and_grad(
                lambda c: summary(nnx.merge(graph, weights), c)
            )(context)
            return log_prob, nnx.to_pure_dict(weight_grads), value, context_grads

        _, weight_grads, _, context_grads = values_and_grads(weights, contexts)
        for leaf in jax.tree.leaves(weight_grads):
            assert bool(jnp.all(jnp.isfinite(leaf)))
        assert bool(jnp.all(jnp.isfinite(context_grads)))

        def first_layer(tree):
            return tree["couplings"]["conditioners"]["layers"][0]  # kernel (layers, in, out)

        def moved(index, amount):
            """The weights with one entry of the first layers' kernels moved by ``amount``."""
            pure = nnx.to_pure_dict(weights)
            first_layer(pure)["kernel"] = first_layer(pure)["kernel"].at[index].add(amount)
            copy = jax.tree.map(lambda leaf: leaf, weights)
            nnx.replace_by_pure_dict(copy, pure)
            return copy

        step = 1e-6
        for weight_index in ((0, 1, 0), (1, 2, 3)):
            plus = values_and_grads(moved(weight_index, step), contexts)[0]
            minus = values_and_grads(moved(weight_index, -step), contexts)[0]
            analytic = float(first_layer(weight_grads)["kernel"][weight_index])
            assert analytic == pytest.approx(float(plus - minus) / (2 * step), rel=1e-5, abs=1e-8)
        for index in ((0, 0), (5, 2)):
            delta = jnp.zeros_like(contexts).at[index].set(step)
            difference = (
                values_and_grads(weights, contexts + delta)[2]
                - values_and_grads(weights, contexts - delta)[2]
            )
            numeric = float(difference) / (2 * step)
            assert float(context_grads[index]) == pytest.approx(numeric, rel=1e-5, abs=1e-8)
        assert float(jnp.abs(context_grads).max()) > 1e-4


# -- inside NumPyro ----------------------------------------------------------------


def test_amortised_guide_fits_conditional_von_mises_under_svi():
    """q(η | c) learns η | c ~ VonMises(π c, 4) by minimising KL(q || p) with SVI."""
    flow = eta_flow(
        jax.random.key(19),
        [Parameter("angle", Periodic())],
        1,
        knots=8,
        layers=2,
        width=32,
        depth=1,
    )

    def model(context):
        with numpyro.plate("data", context.shape[0]):
            numpyro.sample("eta", dist.VonMises(math.pi * context, 4.0).to_event(1))

    def guide(context):
        with numpyro.plate("data", context.shape[0]):
            sample_eta("eta", flow, context)

    steps = 300
    svi = SVI(model, guide, optax.adam(optax.cosine_decay_schedule(1e-2, steps)), Trace_ELBO())
    contexts = jax.random.uniform(jax.random.key(20), (steps, 128, 1), minval=-1.0, maxval=1.0)
    state = svi.init(jax.random.PRNGKey(21), contexts[0])
    state, losses = jax.jit(lambda s, cs: jax.lax.scan(svi.update, s, cs))(state, contexts)
    assert float(losses[-50:].mean()) < 0.2 * float(losses[:50].mean())
    fitted = with_fitted_flow(flow, "eta_flow", svi.get_params(state))
    test_contexts = jnp.array([[-0.9], [-0.3], [0.4], [1.0]])
    angles = jnp.linspace(-math.pi, math.pi, 201)[:-1]
    fitted_log_prob = _log_prob(fitted, angles[:, None, None], test_contexts).T
    target = dist.VonMises(math.pi * test_contexts, 4.0).log_prob(angles)
    where = target > -2.0  # where the target has its mass (|angle - mode| < ~1 radian)
    assert float(jnp.mean(jnp.abs(fitted_log_prob - target)[where])) < 0.15
    # and a Monte Carlo estimate of KL(q || p) per test context is small
    eta, log_q = _sample(fitted, jax.random.PRNGKey(22), test_contexts, (2000,))
    log_p = dist.VonMises(math.pi * test_contexts[:, 0], 4.0).log_prob(eta[..., 0])
    assert float(jnp.max(jnp.mean(log_q - log_p, axis=0))) < 0.06


def test_flow_as_prior_in_a_model_gives_the_site_its_shapes_and_log_density():
    flow = _flow(MIXED, seed=7)
    context = jax.random.normal(jax.random.key(23), (64, 3))

    def model(context, eta=None):
        with numpyro.plate("data", context.shape[0]):
            return sample_eta("eta", flow, context, obs=eta)

    trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(context)
    site = trace["eta"]
    assert site["fn"].batch_shape == (64,)
    assert site["fn"].event_shape == (3,)
    assert site["fn"].has_rsample
    assert trace["eta_flow$params"]["type"] == "param"  # as nnx_module("eta_flow", flow)
    eta = site["value"]
    log_density = jax.jit(lambda c, e: numpyro.infer.util.log_density(model, (c, e), {}, {})[0])
    expected = _log_prob(flow, eta, context).sum()
    assert float(log_density(context, eta)) == pytest.approx(float(expected), rel=1e-5)


def test_biject_to_support_round_trips():
    support = EtaSupport(
        [Parameter("a", Periodic()), Parameter("b", Interval(2.0, 3.0)), Parameter("c", Real())]
    )
    transform = biject_to(support)
    unconstrained = jax.random.normal(jax.random.key(24), (50, 3)) * 2
    constrained = transform(unconstrained)
    assert bool(jnp.all(support(constrained)))
    assert not bool(support(jnp.array([0.0, 3.5, 0.0])))
    np.testing.assert_allclose(transform.inv(constrained), unconstrained, atol=1e-3)
    log_det = transform.log_abs_det_jacobian(unconstrained[0], constrained[0])
    numeric = jnp.linalg.slogdet(jax.jacfwd(transform)(unconstrained[0]))[1]
    assert float(log_det) == pytest.approx(float(numeric), abs=1e-4)
    assert bool(support(support.feasible_like(jnp.zeros((4, 3)))).all())


# -- bad input ---------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="at least one transformation parameter"):
        eta_flow(key, [], 2)
    with pytest.raises(TypeError, match=r"'weird' has an unknown support kind object"):
        eta_flow(key, [Parameter("weird", object())], 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'turns' has a Discrete\(4\) support.*categorical_eta"):
        eta_flow(key, [Parameter("turns", Discrete(4))], 2)
    with pytest.raises(ValueError, match="knots must be an integer >= 2, got 1"):
        eta_flow(key, [Parameter("a", Real())], 2, knots=1)
    with pytest.raises(TypeError, match=r"parameters\[0\] must be an invppl Parameter"):
        eta_flow(key, [Real()], 2)  # type: ignore[list-item]
    flow = _flow([Real()], context_dim=3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\) to match.*got shape \(4, 5\)"):
        ConditionalEtaFlow(flow, jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        ConditionalEtaFlow(flow, jnp.zeros(()))
    with pytest.raises(TypeError, match="flow must be an EtaFlow"):
        ConditionalEtaFlow("not a flow", jnp.zeros((4, 3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"eta must have shape \(\.\.\., k\) = \(\.\.\., 1\)"):
        ConditionalEtaFlow(flow, jnp.zeros((4, 3))).log_prob(jnp.zeros((4, 2)))


def test_the_flows_own_sampler_and_an_unconditional_flow():
    flow = _flow([Periodic(), Real()], context_dim=0)
    eta = flow.sample(jax.random.PRNGKey(3), (4,))
    assert eta.shape == (4, 2)
    assert flow.log_prob(eta, jnp.zeros((0,))).shape == (4,)
    with pytest.raises(ValueError, match=r"EtaFlow is conditional.*\(\.\.\., 3\)"):
        _flow([Real()], context_dim=3).sample(jax.random.PRNGKey(0), (2,))
