"""The symmetry-aware generative model (SGM) of Allingham et al. (NeurIPS 2024).

    z ~ p(z) = N(0, I)                        latent code         (batch, latent_dim)
    x̂ = sigmoid(f(z))                         prototype           (batch, H, W, C)
    η ~ p(η | x̂) = Flow(g(x̂))                 transformation      (batch, k)
    x ~ p(x | x̂, η) = Likelihood(T_η(x̂))      observation         (batch, H, W, C)

and the guide

    η ~ q(η | x) = Flow(h(x))                 amortised pose
    z ~ q(z | T_η⁻¹(x)) = N(μ, σ)             encodes the prototype, not the pose

f, g, h, the encoder and the two flows over η are Flax NNX modules registered
with ``numpyro.contrib.module.nnx_module`` (the flows' param sites are
``prior_flow$params`` and ``pose_flow$params``); the flows are
:class:`~invppl.distributions.EtaFlow` s whose support is each transformation
parameter's declared support (periodic rotation handled as periodic). The
z-encoder sees x moved back by the sampled η, so it is invariant to the pose
only as far as q(η | x) is equivariant: partially invariant, as the
identifiability notes in DESIGN.md ask (a fully invariant q would give 6 and 9
one code). The prior's location is fixed at 0.

A correlated prior. ``z_prior`` replaces N(0, I) per example by one joint
distribution over the batch's codes, event shape ``(batch, latent_dim)``, e.g.
a :class:`~invppl.distributions.ForestPrior` over a graph joining the examples
(Tang et al. 2019), so that prototypes are correlated along the graph:

    Z = (z_1, ..., z_n) ~ p(Z)                one site "z" outside the plate  (n, latent_dim)
    q(Z | X) = Π_i q(z_i | T_ηᵢ⁻¹ x_i)       the same encoder, as one site    (n, latent_dim)

(the guide stays factorised, Tang et al.'s CVAE_ind).

The graph's nodes are the examples, so a fit is full-batch. Node k is row k
of ``x`` unless ``node`` gives each row's node: :func:`~invppl.infer.fit`
permutes the rows at every step even when ``batch_size`` is n, so fit with
``data={"x": x, "node": np.arange(n)}`` and the codes follow their nodes.
The ELBO is then one joint bound over the n examples, not a sum of
per-example bounds: per-example IWAE bounds (``iwae_bound``, fit's
``eval_data``) count a site outside the plate once per example and do not apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from numpyro.contrib.module import nnx_module

from invppl.distributions.eta_flow import (
    ConditionalEtaFlow,
    EtaFlow,
    eta_flow,
    sample_eta,
    with_fitted_flow,
)
from invppl.distributions.likelihood import Kind, check_kind, image_likelihood
from invppl.nn import ConvDecoder, ConvEncoder, GaussianEncoder, with_fitted_params
from invppl.transforms.family import TransformFamily, transform_family
from invppl.transforms.support import Periodic

__all__ = ["SGM", "JointSymmetry", "make_sgm", "sgm_guide", "sgm_model"]


def _check_z_prior(z_prior: object, batch: int | None, latent_dim: int | None) -> None:
    """Raises unless ``z_prior`` is one distribution over ``(batch, latent_dim)`` (None: any)."""
    if not isinstance(z_prior, dist.Distribution):
        raise TypeError(
            f"z_prior must be a numpyro Distribution over the batch's codes, got "
            f"{type(z_prior).__name__}"
        )
    expected = (
        f"({'n' if batch is None else batch}, {'latent_dim' if latent_dim is None else latent_dim})"
    )
    shape = tuple(z_prior.event_shape)
    if (
        tuple(z_prior.batch_shape) != ()
        or len(shape) != 2
        or batch not in (None, shape[0])
        or latent_dim not in (None, shape[1])
    ):
        raise ValueError(
            f"z_prior must be one joint distribution over the batch's codes, with batch_shape "
            f"() and event_shape (batch, latent_dim) = {expected}; got batch_shape "
            f"{tuple(z_prior.batch_shape)} and event_shape {shape} (the graph's nodes are "
            "the batch's examples, so fit full-batch)"
        )


def _check_node(node: Array, batch: int) -> None:
    """Raises unless ``node`` is ``(batch,)`` integers (a permutation, when concrete)."""
    shape = tuple(jnp.shape(node))
    if shape != (batch,) or not jnp.issubdtype(jnp.result_type(node), jnp.integer):
        raise ValueError(
            f"node must hold the graph node of each of the {batch} rows of x, integers of "
            f"shape ({batch},); got shape {shape} and dtype {jnp.result_type(node)}"
        )
    if not isinstance(node, jax.core.Tracer):
        values = np.asarray(node)
        if not np.array_equal(np.sort(values), np.arange(batch)):
            raise ValueError(
                f"node must be a permutation of 0..{batch - 1} (each node one row of x), "
                f"got {values.tolist()}"
            )


def sgm_model(
    x: Array,
    node: Array | None = None,
    *,
    decoder: nnx.Module,
    prior_embedding: nnx.Module,
    prior_flow: EtaFlow,
    family: TransformFamily,
    latent_dim: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
    z_prior: dist.Distribution | None = None,
) -> Array:
    """p(z) p(x̂ | z) p(η | x̂) p(x | x̂, η) over a batch ``x`` ``(batch, H, W, C)``.

    With ``z_prior`` (event shape ``(batch, latent_dim)``, node order) the codes
    are one site ``z`` outside the plate; ``node`` ``(batch,)`` is row i's node
    (default: row i is node i). Without it ``node`` is unused.
    """
    if z_prior is not None:
        _check_z_prior(z_prior, x.shape[0], latent_dim)
        if node is not None:
            _check_node(node, x.shape[0])
    decode = nnx_module("decoder", decoder)
    embed = nnx_module("prior_embedding", prior_embedding)
    if z_prior is not None:
        codes = numpyro.sample("z", z_prior)  # Z ~ p(Z) over the nodes
    with numpyro.plate("data", x.shape[0]):
        if z_prior is None:
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        else:
            z = codes if node is None else codes[node]
        prototype = jax.nn.sigmoid(decode(z))
        numpyro.deterministic("prototype", prototype)
        eta = sample_eta("eta", prior_flow, embed(prototype), param_name="prior_flow")
        return image_likelihood("x", prototype, eta, family, obs=x, kind=kind, scale=scale)


def sgm_guide(
    x: Array,
    node: Array | None = None,
    *,
    pose_embedding: nnx.Module,
    pose_flow: EtaFlow,
    encoder: nnx.Module,
    family: TransformFamily,
    z_prior: dist.Distribution | None = None,
    **_: Any,
) -> tuple[Array, Array]:
    """q(η | x) q(z | T_η⁻¹ x) over a batch ``x`` ``(batch, H, W, C)``; returns (z, η).

    Given the model's ``z_prior``, z is one site of event shape ``(batch,
    latent_dim)`` in node order (``node`` as in :func:`sgm_model`), as the model's
    is; the returned z is in row order either way. Only the prior's shape is read.
    """
    if z_prior is not None:
        _check_z_prior(z_prior, x.shape[0], None)
        if node is not None:
            _check_node(node, x.shape[0])
    embed = nnx_module("pose_embedding", pose_embedding)
    encode = nnx_module("encoder", encoder)
    with numpyro.plate("data", x.shape[0]):
        eta = sample_eta("eta", pose_flow, embed(x), param_name="pose_flow")
        aligned = family.apply(x, -eta)
        loc, z_scale = encode(aligned)
        if z_prior is None:
            z = numpyro.sample("z", dist.Normal(loc, z_scale).to_event(1))
    if z_prior is not None:  # Π_i q(z_i | ·) as one site over (batch, latent_dim)
        _check_z_prior(z_prior, x.shape[0], loc.shape[-1])
        rows = None if node is None else jnp.argsort(node)  # rows[k]: the row of node k
        if rows is not None:
            loc, z_scale = loc[rows], z_scale[rows]
        codes = numpyro.sample("z", dist.Normal(loc, z_scale).to_event(2))
        z = codes if node is None else codes[node]
    return z, eta


@dataclass(frozen=True)
class JointSymmetry:
    """What a jointly fitted SGM learned, with the methods of the two-stage ``LearnedSymmetry``.

    ``pose`` is a point summary of q(η | x): per coordinate the circular mean
    (periodic parameters) or the mean of ``pose_draws`` draws, taken with a
    fixed key so that it is a function of x. The prototype is the decoded mean
    code of x moved back by that pose. Every method takes ``(batch, H, W, C)``.
    """

    family: TransformFamily
    decoder: nnx.Module
    encoder: nnx.Module
    prior_embedding: nnx.Module
    prior_flow: EtaFlow
    pose_embedding: nnx.Module
    pose_flow: EtaFlow
    pose_draws: int = 32

    def pose(self, x: Array) -> Array:
        """A point summary of q(η | x): ``(batch, k)``."""
        context = self.pose_embedding(x)
        draws = ConditionalEtaFlow(self.pose_flow, context).sample(
            jax.random.key(0), (self.pose_draws,)
        )
        columns = []
        for index, parameter in enumerate(self.family.parameters):
            values = draws[..., index]
            support = parameter.support
            if isinstance(support, Periodic):
                turn = 2 * jnp.pi / support.period
                mean = jnp.angle(jnp.mean(jnp.exp(1j * turn * values), axis=0)) / turn
                columns.append(support.wrap(mean))
            else:
                columns.append(values.mean(0))
        return jnp.stack(columns, axis=-1)

    def prototype(self, x: Array) -> Array:
        """x̂ = sigmoid(decoder(E[z | T_pose⁻¹ x])): ``(batch, H, W, C)``."""
        loc, _ = self.encoder(self.family.apply(x, -self.pose(x)))
        return jax.nn.sigmoid(self.decoder(loc))

    def sample_eta(
        self, key: Array, prototypes: Array, sample_shape: tuple[int, ...] = ()
    ) -> Array:
        """η ~ p(η | x̂): ``(*sample_shape, batch, k)``."""
        context = self.prior_embedding(prototypes)
        return ConditionalEtaFlow(self.prior_flow, context).sample(key, sample_shape)


@dataclass(frozen=True)
class SGM:
    """An SGM's model and guide with their networks bound; ``fit(sgm.model, sgm.guide, ...)``."""

    model: Any
    guide: Any
    family: TransformFamily
    latent_dim: int
    image_shape: tuple[int, int, int]
    z_prior: dist.Distribution | None = None

    def learned(self, params: Mapping[str, Any]) -> JointSymmetry:
        """The networks and flows holding a fit's ``params`` (e.g. ``FitResult.params``)."""
        model, guide = self.model.keywords, self.guide.keywords

        def module(name: str, table: Mapping[str, Any]) -> Any:
            return with_fitted_params(table[name], name, params)

        return JointSymmetry(
            family=self.family,
            decoder=module("decoder", model),
            encoder=module("encoder", guide),
            prior_embedding=module("prior_embedding", model),
            prior_flow=with_fitted_flow(model["prior_flow"], "prior_flow", params),
            pose_embedding=module("pose_embedding", guide),
            pose_flow=with_fitted_flow(guide["pose_flow"], "pose_flow", params),
        )


def make_sgm(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    transformations: Sequence[str] | TransformFamily = ("rotation",),
    *,
    seed: int,
    kind: Kind = "bernoulli",
    scale: float = 0.1,
    context_dim: int = 32,
    hidden: int = 256,
    knots: int = 8,
    flow_layers: int = 2,
    z_prior: dist.Distribution | None = None,
) -> SGM:
    """Builds the networks and flows of an SGM for images of ``image_shape`` and binds them.

    Args:
        image_shape: ``(height, width, channels)`` of the data.
        latent_dim: size of z.
        transformations: names of the transformation parameters (e.g.
            ``("rotation", "tx", "ty")``) or a transformation family.
        seed: initialises every network and flow.
        kind, scale: the observation likelihood (see :func:`image_likelihood`).
        context_dim: size of the embeddings that condition the flows.
        z_prior: a joint prior over a batch's codes, event shape ``(n,
            latent_dim)``, e.g. ``ForestPrior(edges, n, tau=0.9,
            latent_dim=latent_dim)``; default N(0, I) per example. The model
            and guide then take the whole data set as one batch (see the
            module's notes on ``node``).

    Raises:
        TypeError, ValueError: a bad ``image_shape`` or ``latent_dim``; an unknown
            ``kind`` (the message lists the valid ones); a ``z_prior`` that
            is not a Distribution, or whose
            batch shape is not ``()`` or event shape not ``(n, latent_dim)``.

    >>> sgm = make_sgm((8, 8, 1), 2, ("rotation",), seed=0, hidden=16, context_dim=4)
    >>> sgm.family.names
    ('rotation',)
    """
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be positive, got {latent_dim}")
    check_kind(kind)
    if z_prior is not None:
        _check_z_prior(z_prior, None, latent_dim)
    family = (
        transformations
        if isinstance(transformations, TransformFamily)
        else transform_family(list(transformations))
    )
    rngs = nnx.Rngs(seed)
    keys = jax.random.split(jax.random.key(seed), 2)
    flow_options = {"knots": knots, "layers": flow_layers}
    decoder = ConvDecoder(latent_dim, image_shape, rngs=rngs, hidden=hidden)
    prior_embedding = ConvEncoder(image_shape, context_dim, rngs=rngs, hidden=hidden)
    prior_flow = eta_flow(keys[0], family.parameters, context_dim, **flow_options)
    pose_embedding = ConvEncoder(image_shape, context_dim, rngs=rngs, hidden=hidden)
    pose_flow = eta_flow(keys[1], family.parameters, context_dim, **flow_options)
    encoder = GaussianEncoder(image_shape, latent_dim, rngs=rngs, hidden=hidden)
    model = partial(
        sgm_model,
        decoder=decoder,
        prior_embedding=prior_embedding,
        prior_flow=prior_flow,
        family=family,
        latent_dim=latent_dim,
        kind=kind,
        scale=scale,
        **({} if z_prior is None else {"z_prior": z_prior}),
    )
    guide = partial(
        sgm_guide,
        pose_embedding=pose_embedding,
        pose_flow=pose_flow,
        encoder=encoder,
        family=family,
        **({} if z_prior is None else {"z_prior": z_prior}),
    )
    return SGM(model, guide, family, latent_dim, tuple(image_shape), z_prior)  # type: ignore[arg-type]
