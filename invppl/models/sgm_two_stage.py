"""The SGM fitted in two stages (Allingham et al., NeurIPS 2024), the alternative to joint SVI.

Stage 1, a self-supervised pose function f: x ↦ η (a :class:`~invppl.nn.PoseNetwork`).
For each x and random transformations ε_s drawn uniformly from the augmentation
bounds, x_s = T_ε_s(x); the prototype of x_s, moved to the pose of x, should be x:

    L(f) = (1/S) Σ_s ‖ B_σ(T_f(x) ∘ T_f(x_s)⁻¹ (x_s)) − B_σ(x) ‖²
              + λ_t (1/S) Σ_s Σ_ij h(M_s − I)_ij,   M_s = T_f(x) ∘ T_f(x_s)⁻¹ ∘ T_ε_s

where B_σ is a Gaussian blur whose width σ falls linearly from ``blur`` to 0
over the first ``blur_steps`` steps (the loss surface of a sharp image is
rough in η), and the two maps are composed before one resampling. The second
term (the reference code's "η reconstruction" loss) asks the same of the
transformations themselves: the composed map M_s should be the identity,
measured entry by entry with a Huber function h of small radius (nearly
``|·|``, so that for a nearly symmetric shape f settles on one of the modes
instead of between them). It gives a smooth, non-vanishing signal where the
pixel loss is flat (thin or nearly symmetric shapes, small errors), which is
what makes narrow and absent symmetries come out narrow; its weight λ_t
falls linearly from ``consistency`` to 0 over ``consistency_steps`` steps so
that the pixel loss, which is blind to a shape's own symmetries, has the last
word. The random transformations can start small and widen to their bounds
over ``augment_warmup`` steps. The prototype is x̂ = T_f(x)⁻¹(x). Written as a NumPyro model with a
``numpyro.factor`` site and no latent variables, so :func:`invppl.infer.fit`
fits it like any other model.

Stage 2, maximum likelihood for the conditional flow p(η | x̂): with f fixed,
each example gives an observation (x̂_n, f(x_n)):

    max Σ_n log p(f(x_n) | x̂_n)

With both fitted, :class:`LearnedSymmetry` gives poses, prototypes, samples of
η for a prototype, and resampled data x' = T_η'(x̂), η' ~ p(η | x̂): the data
augmentation of AugVAE. A VAE fitted to the prototypes is InvVAE
(:mod:`invppl.models.symmetry_vaes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import optax
from flax import nnx
from jax import Array
from numpyro.contrib.module import nnx_module
from numpyro.primitives import mutable

from invppl._checks import check_int
from invppl.distributions.eta_flow import (
    ConditionalEtaFlow,
    EtaFlow,
    eta_flow,
    sample_eta,
    with_fitted_flow,
)
from invppl.nn import ConvEncoder, PoseNetwork, with_fitted_params
from invppl.transforms.affine import Affine
from invppl.transforms.align import FrameTemplates
from invppl.transforms.blur import gaussian_blur
from invppl.transforms.colour import Colour
from invppl.transforms.family import AffineColour, TransformFamily, move, transform_family
from invppl.transforms.interpolation import check_images
from invppl.transforms.invariant import periodic_period
from invppl.transforms.support import Interval, Periodic

__all__ = [
    "FRAME_METHODS",
    "LearnedSymmetry",
    "TwoStageSGM",
    "aligned_pose",
    "augmentation_bounds",
    "eta_prior_model",
    "make_two_stage_sgm",
    "no_guide",
    "pose_model",
    "pose_residual",
    "template_agreement",
]


FRAME_METHODS = ("search", "graph")
"""How frame templates are learned (``make_two_stage_sgm(frame_method=...)``)."""


def augmentation_bounds(
    family: TransformFamily, bounds: Mapping[str, tuple[float, float]] | None = None
) -> tuple[Array, Array]:
    """Per-parameter ``(low, high)``, each ``(k,)``, for stage 1's random transformations.

    A periodic parameter defaults to its whole circle and an interval to itself;
    a real parameter needs an entry in ``bounds``. Raises ``ValueError`` for
    unknown names and empty or non-finite bounds.

    >>> from invppl.transforms import Affine
    >>> low, high = augmentation_bounds(Affine(("rotation", "tx")), {"tx": (-0.2, 0.2)})
    >>> [round(float(v), 3) for v in low], [round(float(v), 3) for v in high]
    ([-3.142, -0.2], [3.142, 0.2])
    """
    bounds = dict(bounds or {})
    unknown = set(bounds) - set(family.names)
    if unknown:
        raise ValueError(
            f"augmentation bounds given for {sorted(unknown)}, which are not parameters of "
            f"the family {family.names}"
        )
    lows, highs = [], []
    for parameter in family.parameters:
        support = parameter.support
        if parameter.name in bounds:
            low, high = (float(v) for v in bounds[parameter.name])
        elif isinstance(support, Periodic | Interval):
            low, high = support.low, support.high
        else:
            raise ValueError(
                f"parameter {parameter.name!r} has support {support}; give its augmentation "
                f"bounds, e.g. bounds={{{parameter.name!r}: (-0.5, 0.5)}}"
            )
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(
                f"augmentation bounds for {parameter.name!r} must be finite with high > low, "
                f"got ({low}, {high})"
            )
        lows.append(low)
        highs.append(high)
    return jnp.asarray(lows), jnp.asarray(highs)


def _linear_decay(step: Array, steps: int) -> Array:
    """1 at step 0, falling linearly to 0 at ``steps`` (0 steps: always 1)."""
    return jnp.clip(1.0 - step / steps, 0.0, 1.0) if steps > 0 else jnp.ones(())


def _identity_residual(matrices: Array, rows: int) -> Array:
    """``(batch, n, n)`` maps minus the identity, their first ``rows`` rows: ``(batch, rows·n)``."""
    size = matrices.shape[-1]
    difference = matrices - jnp.eye(size, dtype=matrices.dtype)
    return difference[:, :rows, :].reshape(matrices.shape[0], -1)


def pose_residual(family: TransformFamily, own: Array, of_moved: Array, eps: Array) -> Array:
    """M − I for M = T_own ∘ T_of_moved⁻¹ ∘ T_eps, flattened: ``(batch, r)``.

    ``own``, ``of_moved``, ``eps`` are ``(batch, k)``. M is the map that stage 1
    applies to x (through x_s = T_eps(x)); it is the identity when the pose is
    exactly equivariant, f(T_ε x) = ε ∘ f(x). Affine maps give the 6 free
    entries of the homogeneous matrix, colour maps the 9 of the RGB map;
    :class:`~invppl.transforms.AffineColour` both. Raises ``TypeError`` for a
    family without matrices.
    """
    if isinstance(family, Affine | Colour):
        composed = family.matrix(own) @ family.matrix(-of_moved) @ family.matrix(eps)
        return _identity_residual(composed, 2 if isinstance(family, Affine) else 3)
    if isinstance(family, AffineColour):
        split = family.affine.dim
        return jnp.concatenate(
            [
                pose_residual(family.affine, own[:, :split], of_moved[:, :split], eps[:, :split]),
                pose_residual(family.colour, own[:, split:], of_moved[:, split:], eps[:, split:]),
            ],
            axis=-1,
        )
    raise TypeError(
        f"the pose consistency term needs a family with matrices (Affine, Colour or "
        f"AffineColour), got {type(family).__name__}; use consistency=0"
    )


def template_agreement(prototypes: Array, count: int, blur: float = 1.0) -> Array:
    """Each blurred prototype's squared distance to the nearest of ``count`` templates.

    The pose loss alone only asks f to be equivariant, f(T_ε x) = ε ∘ f(x), which
    leaves each example's frame free: similar digits can be put in frames a
    quarter turn apart, which widens every narrow law by that spread. This term
    makes the frames agree across examples, as congealing does (Learned-Miller
    2006; :func:`invppl.metrics.congeal`), without labels: the templates
    t_1..t_K ``(K, H, W, C)`` are parameters (NumPyro site ``"pose_templates"``,
    initialised from the first batch's blurred prototypes, so the batch must
    hold at least K examples) and each prototype x̂ pays min_k ‖B(x̂) − t_k‖², a
    k-means in the prototypes' frame. Take K near the number of distinct
    shapes: many more templates let one class settle in several frames.
    ``prototypes`` ``(batch, H, W, C)``; returns ``(batch,)``.
    """
    if prototypes.shape[0] < count:
        raise ValueError(
            f"the batch ({prototypes.shape[0]} examples) must hold at least as many examples "
            f"as templates ({count}): use a larger batch_size or fewer templates"
        )
    blurred = gaussian_blur(prototypes, blur, radius=max(math.ceil(3 * blur), 1))
    bank = numpyro.param("pose_templates", jax.lax.stop_gradient(blurred[:count]))
    distances = jnp.square(blurred[:, None] - bank[None]).reshape(blurred.shape[0], count, -1)
    return distances.sum(-1).min(-1)


def pose_model(
    x: Array,
    *,
    pose_net: nnx.Module,
    family: TransformFamily,
    low: Array,
    high: Array,
    num_samples: int = 4,
    blur: float = 2.0,
    blur_steps: int = 500,
    consistency: float = 0.0,
    consistency_steps: int = 0,
    huber_radius: float = 0.01,
    augment_warmup: int = 0,
    templates: int = 0,
    template_weight: float = 0.5,
    template_blur: float = 1.0,
) -> Array:
    """Stage 1's objective for a batch ``x`` ``(batch, H, W, C)``, as a NumPyro factor.

    ``low``, ``high`` ``(k,)`` bound the random transformations (see
    :func:`augmentation_bounds`); with ``augment_warmup`` > 0 they are shrunk
    about their centre at first and widen linearly to the bounds over that
    many steps. ``consistency`` weighs the Huber distance of the composed map
    from the identity (see :func:`pose_residual`), falling linearly to 0 over
    ``consistency_steps`` steps (0: constant). Returns the per-example loss
    ``(batch,)``. With ``templates`` = K > 0, each blurred prototype is also
    pulled towards the nearest of K learned templates (see :func:`template_agreement`).
    The annealing step count is NumPyro mutable state
    (``"pose_model$step"``), advanced once per call (``SVI.init`` calls the
    model once, so the first optimiser step sees step 1).
    """
    pose = nnx_module("pose_net", pose_net)
    counter = mutable("pose_model$step", {"step": jnp.zeros((), jnp.int32)})
    assert counter is not None
    step = counter["step"]
    counter["step"] = step + 1
    sigma = blur * _linear_decay(step, max(blur_steps, 1))
    batch = x.shape[0]
    key = numpyro.prng_key()
    if augment_warmup > 0:
        centre, half = (low + high) / 2, (high - low) / 2
        width = half * jnp.clip(step / augment_warmup, 0.0, 1.0)
        low, high = centre - width, centre + width
    eps = jax.random.uniform(key, (num_samples * batch, family.dim), minval=low, maxval=high)
    repeated = jnp.tile(x, (num_samples, 1, 1, 1))
    moved = family.apply(repeated, eps)
    poses = pose(jnp.concatenate([x, moved]))
    own, of_moved = jnp.tile(poses[:batch], (num_samples, 1)), poses[batch:]
    back = move(family, moved, of_moved, own)
    radius = math.ceil(3 * blur)
    error = gaussian_blur(back, sigma, radius=radius) - gaussian_blur(
        repeated, sigma, radius=radius
    )
    loss = jnp.square(error).reshape(num_samples, batch, -1).sum(-1).mean(0)
    if templates > 0:
        prototypes = family.apply(x, -poses[:batch])
        loss = loss + template_weight * template_agreement(prototypes, templates, template_blur)
    if consistency > 0:
        residual = pose_residual(family, own, of_moved, eps)
        huber = optax.losses.huber_loss(residual, delta=huber_radius) / huber_radius
        weight = consistency * _linear_decay(step, consistency_steps)
        loss = loss + weight * huber.sum(-1).reshape(num_samples, batch).mean(0)
    with numpyro.plate("data", batch):
        numpyro.factor("pose_loss", -loss)
    return loss


def eta_prior_model(
    x: Array,
    eta: Array | None = None,
    neighbour_eta: Array | None = None,
    *,
    pose: nnx.Module | None = None,
    prior_embedding: nnx.Module,
    prior_flow: EtaFlow,
    family: TransformFamily,
) -> Array:
    """Stage 2: log p(η | x̂) for a batch ``x`` ``(batch, H, W, C)``, x̂ = T_η⁻¹(x).

    η is f(x), f = ``pose`` held fixed (the fitted pose network, see
    :func:`~invppl.nn.with_fitted_params`; called as a plain function, so its
    weights are not trained here), or the known poses ``eta`` ``(batch, k)``
    when given instead: with the true transformations, stage 2 is measured
    alone, apart from stage 1's errors (``benchmarks/sgm_recovery.py
    --method stage2-oracle``). Give exactly one of ``pose`` and ``eta``.

    ``neighbour_eta`` ``(batch, m, k)``, with known poses only: the poses of
    each example's m nearest prototypes (see
    :func:`~invppl.infer.fit_two_stage`'s ``prior_neighbours``). The
    likelihood is then the mean of log p(η_j | x̂) over them: the empirical
    law of η smoothed over similar prototypes, which a flexible p(η | x̂)
    cannot fit by learning each training prototype's own pose.
    """
    if (pose is None) == (eta is None):
        raise ValueError(
            "eta_prior_model needs exactly one of pose (a fitted pose function) and eta "
            f"(known poses); got pose={'None' if pose is None else 'given'}, "
            f"eta={'None' if eta is None else 'given'}"
        )
    if neighbour_eta is not None and eta is None:
        raise ValueError("neighbour_eta needs the known poses eta, not a pose function")
    eta = jax.lax.stop_gradient(pose(x) if pose is not None else jnp.asarray(eta))
    prototype = family.apply(x, -eta)
    embed = nnx_module("prior_embedding", prior_embedding)
    with numpyro.plate("data", x.shape[0]):
        context = embed(prototype)
        if neighbour_eta is None:
            return sample_eta("eta", prior_flow, context, param_name="prior_flow", obs=eta)
        law = nnx_module("prior_flow", prior_flow)(context)
        others = jnp.moveaxis(jnp.asarray(neighbour_eta), 1, 0)  # (m, batch, k)
        numpyro.factor("eta", law.log_prob(others).mean(0))
        return eta


def aligned_pose(
    pose_net: nnx.Module, family: TransformFamily, frames: FrameTemplates | None, x: Array
) -> Array:
    """The pose network's f(x) ``(batch, k)``, searched against ``frames`` when given.

    See :mod:`invppl.transforms.align`: the search makes the frames of similar
    examples agree, which equivariance alone does not.
    """
    poses = pose_net(check_images(x))
    return poses if frames is None else frames.align(family, x, poses)


def no_guide(*args: Any, **kwargs: Any) -> None:
    """The guide of a model without latent variables."""


@dataclass(frozen=True)
class LearnedSymmetry:
    """What the two-stage SGM learned: f, the prototypes x̂ = T_f(x)⁻¹(x) and p(η | x̂).

    Every method takes images ``(batch, H, W, C)`` and works under ``jax.jit``.
    """

    family: TransformFamily
    pose_net: nnx.Module
    prior_embedding: nnx.Module
    prior_flow: EtaFlow
    frames: FrameTemplates | None = None
    """Templates that the pose network's output is aligned to (None: the network alone)."""

    def pose(self, x: Array) -> Array:
        """f(x): ``(batch, k)``, the network's pose, aligned to the frame templates if any."""
        return aligned_pose(self.pose_net, self.family, self.frames, x)

    def prototype(self, x: Array) -> Array:
        """x̂ = T_f(x)⁻¹(x): ``(batch, H, W, C)``."""
        return self.family.apply(x, -self.pose(x))

    def eta_distribution(self, prototypes: Array) -> ConditionalEtaFlow:
        """p(η | x̂) for ``(batch, H, W, C)`` prototypes: batch shape ``(batch,)``."""
        return ConditionalEtaFlow(self.prior_flow, self.prior_embedding(check_images(prototypes)))

    def sample_eta(
        self, key: Array, prototypes: Array, sample_shape: tuple[int, ...] = ()
    ) -> Array:
        """η ~ p(η | x̂): ``(*sample_shape, batch, k)``."""
        return self.eta_distribution(prototypes).sample(key, sample_shape)

    def resample(self, key: Array, x: Array) -> Array:
        """x' = T_η'(x̂) with η' ~ p(η | x̂(x)), warped once from x: ``(batch, H, W, C)``."""
        pose = self.pose(x)
        new = self.sample_eta(key, self.family.apply(x, -pose))
        return move(self.family, x, pose, new)

    def augment(self, key: Array, batch: Mapping[str, Array]) -> dict[str, Array]:
        """``batch`` with ``"x"`` resampled: the ``augment`` hook of :func:`invppl.infer.fit`."""
        return {**batch, "x": self.resample(key, batch["x"])}


@dataclass(frozen=True)
class TwoStageSGM:
    """The networks and the two stages' models, bound; fit with :func:`invppl.infer.fit_two_stage`.

    Attributes:
        pose_model: stage 1, ``pose_model(x)``; its guide is :func:`no_guide`.
        family, image_shape: the transformation family and ``(H, W, C)``.
        pose_net, prior_embedding, prior_flow: the initial networks.
        frame_templates, frame_blur: templates learned between the stages
            (0: none; see :func:`invppl.transforms.fit_templates`) and their blur.
        frame_method: how they are learned: ``"search"``
            (:func:`~invppl.transforms.fit_templates`, seeded by the pose
            network) or ``"graph"``
            (:func:`~invppl.transforms.graph_frames.fit_graph_templates`).
    """

    pose_model: Any
    family: TransformFamily
    image_shape: tuple[int, int, int]
    pose_net: PoseNetwork
    prior_embedding: nnx.Module
    prior_flow: EtaFlow
    frame_templates: int = 0
    frame_blur: float = 1.0
    frame_method: str = "search"

    def fitted_pose(
        self, pose_params: Mapping[str, Any], frames: FrameTemplates | None = None
    ) -> Any:
        """f(x) ``(batch, k)`` of stage 1's fitted weights, aligned to ``frames`` if given."""
        network = with_fitted_params(self.pose_net, "pose_net", pose_params)
        return partial(aligned_pose, network, self.family, frames)

    def eta_prior_model(
        self, pose_params: Mapping[str, Any] | None, frames: FrameTemplates | None = None
    ) -> Any:
        """Stage 2's model with the pose of stage 1's fit (and frame templates, if any).

        ``pose_params=None`` gives the model of known poses, ``model(x, eta)``.
        """
        pose = None if pose_params is None else self.fitted_pose(pose_params, frames)
        return partial(
            eta_prior_model,
            pose=pose,
            prior_embedding=self.prior_embedding,
            prior_flow=self.prior_flow,
            family=self.family,
        )

    def learned(
        self,
        pose_params: Mapping[str, Any],
        prior_params: Mapping[str, Any],
        frames: FrameTemplates | None = None,
    ) -> LearnedSymmetry:
        """The :class:`LearnedSymmetry` of the two stages' fitted params."""
        return LearnedSymmetry(
            family=self.family,
            pose_net=with_fitted_params(self.pose_net, "pose_net", pose_params),
            prior_embedding=with_fitted_params(
                self.prior_embedding, "prior_embedding", prior_params
            ),
            prior_flow=with_fitted_flow(self.prior_flow, "prior_flow", prior_params),
            frames=frames,
        )


def _stage_one_options(family: TransformFamily, **settings: Any) -> dict[str, Any]:
    """Checks stage 1's settings (see :func:`make_two_stage_sgm`): :func:`pose_model`'s keywords."""
    blur, consistency = settings["blur"], settings["consistency"]
    if blur < 0 or not math.isfinite(blur):
        raise ValueError(f"blur must be a finite width >= 0 in pixels, got {blur}")
    counts = {"num_samples": 1, "blur_steps": 1, "consistency_steps": 0}
    counts |= {"augment_warmup": 0, "templates": 0}
    for name, minimum in counts.items():
        settings[name] = check_int(settings[name], name, minimum=minimum)
    for name in ("template_weight", "template_blur"):
        if not (math.isfinite(settings[name]) and settings[name] > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {settings[name]}")
    if consistency < 0 or not math.isfinite(consistency):
        raise ValueError(f"consistency must be a finite weight >= 0, got {consistency}")
    if consistency > 0 and not isinstance(family, Affine | Colour | AffineColour):
        raise ValueError(
            f"consistency > 0 needs a family with matrices (Affine, Colour or AffineColour), "
            f"got {type(family).__name__}; use consistency=0"
        )
    floats = ("blur", "consistency", "template_weight", "template_blur")
    return {k: float(v) if k in floats else int(v) for k, v in settings.items()}


def make_two_stage_sgm(
    image_shape: tuple[int, int, int],
    transformations: Sequence[str] | TransformFamily = ("rotation",),
    *,
    seed: int,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    num_samples: int = 4,
    blur: float = 2.0,
    blur_steps: int = 500,
    consistency: float = 1.0,
    consistency_steps: int = 600,
    augment_warmup: int = 0,
    templates: int = 0,
    template_weight: float = 0.5,
    template_blur: float = 1.0,
    frame_templates: int = 0,
    frame_blur: float = 1.0,
    frame_method: str = "search",
    context_dim: int = 32,
    hidden: int = 256,
    knots: int = 8,
    flow_layers: int = 4,
) -> TwoStageSGM:
    """Builds the pose network, the prior's embedding and flow, and binds the stages' models.

    Args:
        image_shape: ``(height, width, channels)`` of the data.
        transformations: parameter names (e.g. ``("rotation", "tx", "ty")``) or a family.
        seed: initialises every network and the flow.
        bounds: augmentation bounds by name (see :func:`augmentation_bounds`).
        num_samples: random transformations per example in stage 1.
        blur, blur_steps: stage 1's initial blur width (pixels) and annealing length.
        consistency, consistency_steps: stage 1's weight of the composed map's
            distance from the identity (see :func:`pose_model`) and the steps
            over which it falls to 0 (0: constant).
        augment_warmup: steps over which stage 1's random transformations
            widen from the identity to ``bounds`` (0: full width from the start).
        templates, template_weight, template_blur: stage 1's prototype agreement
            (see :func:`template_agreement`): the number of learned templates
            (0: off), the term's weight and the compared images' blur (pixels).
        frame_templates, frame_blur: the number of templates that
            :func:`~invppl.infer.fit_two_stage` learns between the stages and
            aligns every pose to (transformation-invariant clustering,
            :mod:`invppl.transforms.align`; 0: off), and their blur (pixels).
            It mends classes on which the pose network failed (docs/sgm.md).
        frame_method: ``"search"``: the templates are seeded on the pose
            network's prototypes and each image takes the nearest
            (:func:`~invppl.transforms.fit_templates`); ``"graph"``: clusters
            and frames come from each image's nearest neighbours by a
            rotation-invariant distance, and each image is searched against
            its cluster's template under the cluster's pose prior
            (:mod:`invppl.transforms.graph_frames`; one periodic parameter
            only). On rotated digits "graph" puts fewer examples in a wrong
            frame (docs/sgm.md).
        context_dim, hidden, knots, flow_layers: network and flow sizes (four
            coupling layers by default: with two, a point mass on the circle
            was sometimes left smeared after stage 2's steps, see docs/sgm.md).

    >>> sgm = make_two_stage_sgm((8, 8, 1), ("rotation",), seed=0, hidden=16, context_dim=4)
    >>> sgm.family.names
    ('rotation',)
    """
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    family = (
        transformations
        if isinstance(transformations, TransformFamily)
        else transform_family(list(transformations))
    )
    low, high = augmentation_bounds(family, bounds)
    options = _stage_one_options(
        family,
        num_samples=num_samples,
        blur=blur,
        blur_steps=blur_steps,
        consistency=consistency,
        consistency_steps=consistency_steps,
        augment_warmup=augment_warmup,
        templates=templates,
        template_weight=template_weight,
        template_blur=template_blur,
    )
    rngs = nnx.Rngs(seed)
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    pose_net = PoseNetwork(shape, family.parameters, rngs=rngs, hidden=hidden)
    prior_embedding = ConvEncoder(shape, context_dim, rngs=rngs, hidden=hidden)
    prior_flow = eta_flow(
        jax.random.key(seed), family.parameters, context_dim, knots=knots, layers=flow_layers
    )
    model = partial(pose_model, pose_net=pose_net, family=family, low=low, high=high, **options)
    frame_templates = check_int(frame_templates, "frame_templates", minimum=0)
    if not (math.isfinite(frame_blur) and frame_blur > 0):
        raise ValueError(f"frame_blur must be a positive width in pixels, got {frame_blur}")
    if frame_method not in FRAME_METHODS:
        raise ValueError(f"frame_method must be one of {FRAME_METHODS}, got {frame_method!r}")
    if frame_method == "graph" and frame_templates > 0:
        periodic_period(family)  # one periodic parameter, else a clear error now
    return TwoStageSGM(
        model,
        family,
        shape,
        pose_net,
        prior_embedding,
        prior_flow,
        frame_templates,
        frame_blur,
        frame_method,
    )
