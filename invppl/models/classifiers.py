"""Classifiers with learned invariance: Augerino, and training on SGM-augmented data.

A plain classifier is a NumPyro model of the labels given the images, with no
latent variables (its guide is :func:`~invppl.models.no_guide`), so that
:func:`invppl.infer.fit` maximises the log-likelihood (minimises the
cross-entropy)::

    logits = f(x)                                   (batch, classes)
    y ~ Categorical(softmax(f(x)))                  one per example, in plate "data"

Augerino (Benton et al., "Learning Invariances in Neural Networks from
Training Data", NeurIPS 2020) learns a uniform augmentation law over the
parameters η of a transformation family T_η (rotation, translations, ...):
one width per parameter, w = softplus(ρ) with ρ a ``numpyro.param``, and
C warped copies per image with η drawn by reparameterisation, so the
gradient reaches ρ through the warp::

    u_c ~ U(-1, 1)^k,  η_c = w ⊙ u_c              c = 1..C, k = family.dim
    log p(y | x) = log (1/C) Σ_c softmax(f(T_η_c x))_y
    objective per example = log p(y | x) + λ ‖w‖₂

The last term (``numpyro.factor("width_reward")`` inside the data plate, so
that −ELBO per example is Augerino's loss, cross-entropy − λ ‖w‖₂) rewards
wide laws; the likelihood shrinks any width that breaks the labels. The norm
is the Euclidean norm, not squared, as in the reference code
(``augerino/losses.py``: ``reg * softplus(width).norm()``, reg = 0.01); its
"safe" variant turns the reward off once a width reaches 10, our
``max_width``. The uniform draws come from ``numpyro.prng_key()``: explicit
randomness, no latent sample sites. The reference trains on one copy and
predicts with the mean of C log-softmaxes; here training and prediction both
use the log of the mean softmax (``copies=1`` trains as the reference does).

A classifier trained on data resampled from the SGM's learned law p(η | x̂)
(AugVAE's augmentation, turned to classification) needs no model of its
own: fit a plain classifier with the hook of :func:`sgm_augmented`::

    fit(clf.model, clf.guide, {"x": x, "y": y}, augment=sgm_augmented(symmetry), ...)

Networks are any ``nnx.Module`` mapping images ``(batch, H, W, C)`` to logits
``(batch, classes)`` (e.g. :class:`~invppl.nn.GroupCNN`,
:class:`~invppl.nn.GroupPooled`, :class:`~invppl.nn.ConvEncoder`); an
:class:`~invppl.nn.MLP` over flattened pixels with ``flatten=True``. They
enter the models through ``numpyro.contrib.module.nnx_module``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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

from invppl._checks import check_int
from invppl.models.sgm_two_stage import LearnedSymmetry, no_guide
from invppl.nn import with_fitted_params
from invppl.transforms.family import TransformFamily
from invppl.transforms.interpolation import check_images
from invppl.transforms.support import Discrete

__all__ = [
    "Augerino",
    "Classifier",
    "augerino_model",
    "averaged_log_probs",
    "classifier_model",
    "learned_widths",
    "make_augerino",
    "make_classifier",
    "predict_logits",
    "sgm_augmented",
    "uniform_warps",
    "width_reward",
]

Network = Callable[[Array], Array]


# ---------------------------------------------------------------------------
# checks


def _check_labels(y: Array | None, batch: int) -> Array | None:
    """``y`` as ``(batch,)`` integers (or None); raises naming the shape or dtype."""
    if y is None:
        return None
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(
            f"labels y must have shape (batch,) = ({batch},), one class index per image, "
            f"got shape {tuple(y.shape)}"
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"labels y must be integer class indices, got dtype {y.dtype}")
    return y


def _check_label_range(y: Array | None, classes: int) -> None:
    """Raises unless concrete labels lie in 0..classes-1 (traced labels are left to ``fit``)."""
    if y is None or isinstance(y, jax.core.Tracer):
        return
    values = np.asarray(y)
    if values.size and (values.min() < 0 or values.max() >= classes):
        raise ValueError(
            f"labels y must lie in 0..{classes - 1} (the network gives {classes} logits), "
            f"got values from {values.min()} to {values.max()}"
        )


def _check_network(network: object) -> nnx.Module:
    """``network`` if it is an ``nnx.Module``."""
    if not isinstance(network, nnx.Module):
        raise TypeError(
            "network must be a flax.nnx.Module mapping images (batch, H, W, C) to logits "
            f"(batch, classes), got {type(network).__name__}"
        )
    return network


def _check_family(family: object) -> TransformFamily:
    """``family`` if it is a :class:`TransformFamily` with continuous parameters only."""
    if not isinstance(family, TransformFamily):
        raise TypeError(
            "family must be an invppl TransformFamily (e.g. invppl.transforms.Affine"
            f'(("rotation",))), got {type(family).__name__}'
        )
    discrete = [p.name for p in family.parameters if isinstance(p.support, Discrete)]
    if discrete:
        raise ValueError(
            f"Augerino learns a uniform width per continuous parameter; {discrete} are "
            "discrete (a finite group): average over the group with invppl.nn.GroupPooled"
        )
    return family


def _check_settings(
    copies: object, width_weight: float, init_width: float, max_width: float
) -> int:
    """``copies`` as an int ≥ 1, after checking the three numbers; see :func:`make_augerino`."""
    count = check_int(copies, "copies", minimum=1)
    if not (math.isfinite(width_weight) and width_weight >= 0):
        raise ValueError(f"width_weight must be a finite number >= 0, got {width_weight}")
    if not (math.isfinite(init_width) and init_width > 0):
        raise ValueError(f"init_width must be a finite width > 0, got {init_width}")
    if not max_width > init_width:
        raise ValueError(f"max_width must exceed init_width ({init_width}), got {max_width}")
    return count


# ---------------------------------------------------------------------------
# the equations


def _logits(network: Network, x: Array, flatten: bool) -> Array:
    """``network(x)`` ``(batch, classes)`` for images ``x`` ``(batch, H, W, C)``."""
    logits = network(x.reshape(x.shape[0], -1) if flatten else x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(
            f"the network must map {x.shape[0]} images to logits (batch, classes) = "
            f"({x.shape[0]}, classes), got shape {tuple(logits.shape)}"
            + ("" if flatten else "; for an MLP over pixels pass flatten=True")
        )
    return logits


def uniform_warps(key: Array, widths: Array, copies: int, batch: int) -> Array:
    """η_c = w ⊙ u_c, u_c ~ U(-1, 1)^k: ``(copies, batch, k)`` for widths ``(k,)``.

    Differentiable in ``widths`` (the reparameterisation of Augerino's law).
    """
    u = jax.random.uniform(key, (copies, batch, widths.shape[0]), minval=-1.0, maxval=1.0)
    return u * widths


def averaged_log_probs(
    network: Network, family: TransformFamily, x: Array, eta: Array, *, flatten: bool = False
) -> Array:
    """log (1/C) Σ_c softmax(f(T_η_c x)): ``(batch, classes)``.

    ``x`` ``(batch, H, W, C)``, ``eta`` ``(copies, batch, k)``; the copies go
    through the network as one batch of ``copies · batch`` images.
    """
    copies, batch = eta.shape[0], eta.shape[1]
    tiled = jnp.broadcast_to(x, (copies, *x.shape)).reshape(copies * batch, *x.shape[1:])
    warped = family.apply(tiled, eta.reshape(copies * batch, eta.shape[-1]))
    logits = _logits(network, warped, flatten).reshape(copies, batch, -1)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1), axis=0) - math.log(copies)


def width_reward(widths: Array, weight: float, max_width: float = math.inf) -> Array:
    """Augerino's reward λ ‖w‖₂ for widths ``(k,)``; 0 once any width reaches ``max_width``.

    >>> round(float(width_reward(jnp.array([3.0, 4.0]), 0.01)), 6)
    0.05
    """
    return weight * jnp.linalg.norm(widths) * jnp.all(widths < max_width)


def _observe(logits: Array, y: Array | None) -> Array:
    """y ~ Categorical(logits) in the plate ``"data"``: the sampled or observed ``(batch,)``."""
    with numpyro.plate("data", logits.shape[0]):
        return numpyro.sample("y", dist.Categorical(logits=logits), obs=y)


def classifier_model(
    x: Array,
    y: Array | None = None,
    *,
    network: nnx.Module,
    name: str = "classifier",
    flatten: bool = False,
) -> Array:
    """p(y | x) = Categorical(softmax(f(x))) for images ``x`` ``(batch, H, W, C)``.

    ``y`` ``(batch,)`` integer labels (None: sampled). Returns the logits
    ``(batch, classes)``. The network's weights are the param site
    ``f"{name}$params"``.
    """
    x = check_images(x)
    y = _check_labels(y, x.shape[0])
    logits = _logits(nnx_module(name, _check_network(network)), x, flatten)
    _check_label_range(y, logits.shape[-1])
    _observe(logits, y)
    return logits


def _inverse_softplus(width: float) -> float:
    """ρ with softplus(ρ) = ``width`` > 0."""
    return float(width + math.log(-math.expm1(-width)))


def augerino_model(
    x: Array,
    y: Array | None = None,
    *,
    network: nnx.Module,
    family: TransformFamily,
    copies: int = 4,
    width_weight: float = 0.01,
    init_width: float = 0.1,
    max_width: float = math.inf,
    name: str = "classifier",
    flatten: bool = False,
) -> Array:
    """Augerino's p(y | x) = (1/C) Σ_c softmax(f(T_η_c x))_y with the width reward λ ‖w‖₂.

    ``x`` ``(batch, H, W, C)``, ``y`` ``(batch,)`` (None: sampled). The raw
    widths ρ ``(k,)`` are the param site ``f"{name}$raw_width"`` (initialised
    to softplus⁻¹(``init_width``)), w = softplus(ρ); the reward λ ‖w‖₂ is paid
    per example (factor ``"width_reward"`` in the plate ``"data"``) and is 0
    once any width reaches ``max_width``. The C = ``copies`` draws use
    ``numpyro.prng_key()``, so run the model under a seed (``fit``, ``SVI``
    and ``numpyro.handlers.seed`` do). Returns the averaged log-probabilities
    ``(batch, classes)``.
    """
    x = check_images(x)
    y = _check_labels(y, x.shape[0])
    family = _check_family(family)
    copies = _check_settings(copies, width_weight, init_width, max_width)
    net = nnx_module(name, _check_network(network))
    raw = numpyro.param(f"{name}$raw_width", jnp.full((family.dim,), _inverse_softplus(init_width)))
    widths = jax.nn.softplus(raw)
    key = numpyro.prng_key()
    if key is None:
        raise ValueError(
            "augerino_model draws its warps with numpyro.prng_key(): run it under "
            "numpyro.handlers.seed (invppl.infer.fit and numpyro's SVI do)"
        )
    eta = uniform_warps(key, widths, copies, x.shape[0])
    log_probs = averaged_log_probs(net, family, x, eta, flatten=flatten)
    _check_label_range(y, log_probs.shape[-1])
    reward = width_reward(widths, width_weight, max_width)
    with numpyro.plate("data", x.shape[0]):
        numpyro.factor("width_reward", jnp.broadcast_to(reward, (x.shape[0],)))
    _observe(log_probs, y)
    return log_probs


# ---------------------------------------------------------------------------
# bound models and what a fit gives


@dataclass(frozen=True)
class Classifier:
    """A classifier's model and guide with its network bound; ``fit(clf.model, clf.guide, ...)``.

    ``network`` is the initial network (param site ``f"{name}$params"``); the
    data are ``{"x": (n, H, W, C), "y": (n,)}``. See :func:`predict_logits`.
    """

    model: Any
    guide: Any
    network: nnx.Module
    name: str = "classifier"
    flatten: bool = False


@dataclass(frozen=True)
class Augerino:
    """Augerino's model and guide with its network and family bound (see :func:`make_augerino`).

    Param sites ``f"{name}$params"`` (the network) and ``f"{name}$raw_width"``
    (ρ ``(family.dim,)``, w = softplus(ρ)); see :func:`learned_widths`.
    """

    model: Any
    guide: Any
    network: nnx.Module
    family: TransformFamily
    copies: int = 4
    width_weight: float = 0.01
    init_width: float = 0.1
    max_width: float = math.inf
    name: str = "classifier"
    flatten: bool = False


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string (the param site prefix), got {name!r}")
    return name


def make_classifier(
    network: nnx.Module, *, name: str = "classifier", flatten: bool = False
) -> Classifier:
    """Binds ``network`` (images → logits) into :func:`classifier_model` and :func:`no_guide`.

    ``flatten=True`` hands the network ``(batch, H·W·C)`` pixels (an MLP).

    >>> from invppl.nn import MLP
    >>> clf = make_classifier(MLP(64, (8,), 2, rngs=nnx.Rngs(0)), flatten=True)
    >>> clf.name, clf.guide is no_guide
    ('classifier', True)
    """
    network = _check_network(network)
    name = _check_name(name)
    model = partial(classifier_model, network=network, name=name, flatten=bool(flatten))
    return Classifier(model, no_guide, network, name, bool(flatten))


def make_augerino(
    network: nnx.Module,
    family: TransformFamily,
    *,
    copies: int = 4,
    width_weight: float = 0.01,
    init_width: float = 0.1,
    max_width: float = math.inf,
    name: str = "classifier",
    flatten: bool = False,
) -> Augerino:
    """Binds ``network`` and ``family`` into :func:`augerino_model` and :func:`no_guide`.

    Args:
        network: images ``(batch, H, W, C)`` → logits ``(batch, classes)``.
        family: the transformation family whose parameters get learned widths,
            e.g. ``Affine(("rotation",))`` or ``Affine(("tx", "ty"))``; continuous only.
        copies: warped copies per image, C ≥ 1.
        width_weight: λ ≥ 0 of the width reward λ ‖w‖₂ per example.
        init_width: every width's initial value, > 0.
        max_width: the reward is off once any width reaches it (the reference
            code's "safe" loss uses 10; default: never off).
        name: the param sites' prefix.
        flatten: hand the network flattened pixels (an MLP).

    >>> from invppl.nn import MLP
    >>> from invppl.transforms import Affine
    >>> aug = make_augerino(MLP(64, (8,), 2, rngs=nnx.Rngs(0)), Affine(("rotation",)), flatten=True)
    >>> aug.family.names, aug.copies
    (('rotation',), 4)
    """
    network = _check_network(network)
    family = _check_family(family)
    copies = _check_settings(copies, width_weight, init_width, max_width)
    name = _check_name(name)
    settings: dict[str, Any] = {
        "copies": copies,
        "width_weight": float(width_weight),
        "init_width": float(init_width),
        "max_width": float(max_width),
        "name": name,
        "flatten": bool(flatten),
    }
    model = partial(augerino_model, network=network, family=family, **settings)
    return Augerino(model, no_guide, network, family, **settings)


def _widths(augerino: Augerino, params: Mapping[str, Any]) -> Array:
    """w = softplus(ρ) ``(k,)`` from fitted ``params``."""
    key = f"{augerino.name}$raw_width"
    if key not in params:
        raise KeyError(
            f"no learned widths: expected the param site {key!r}, found {sorted(params)}"
        )
    return jax.nn.softplus(jnp.asarray(params[key]))


def learned_widths(augerino: Augerino, params: Mapping[str, Any]) -> dict[str, float]:
    """Each parameter's learned width softplus(ρ): ``{family parameter name: width}``.

    η of that parameter is drawn from U(−width, width).
    """
    if not isinstance(augerino, Augerino):
        raise TypeError(f"learned_widths needs an Augerino, got {type(augerino).__name__}")
    widths = np.asarray(_widths(augerino, params))
    return {n: float(w) for n, w in zip(augerino.family.names, widths, strict=True)}


@dataclass(frozen=True, eq=False)
class _Static:
    """A value (a family, or None) as a static argument of ``jax.jit``: equal families share a
    compilation though a family's ``supports`` dict makes it unhashable."""

    value: Any

    def __hash__(self) -> int:
        return hash((type(self.value), repr(self.value)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Static):
            return NotImplemented
        same_type = type(self.value) is type(other.value)
        return self.value is other.value or (same_type and bool(self.value == other.value))


@partial(jax.jit, static_argnames=("graph", "family", "flatten"))
def _chunk(
    graph: Any, weights: Any, x: Array, warps: Array, *, family: _Static, flatten: bool
) -> Array:
    """One compiled chunk of :func:`predict_logits`; ``warps`` ``(batch, copies, k)`` or empty."""
    network = nnx.merge(graph, weights)
    if family.value is None:
        return _logits(network, x, flatten)
    return averaged_log_probs(network, family.value, x, warps.swapaxes(0, 1), flatten=flatten)


def predict_logits(
    classifier: Classifier | Augerino,
    params: Mapping[str, Any],
    x: Array,
    *,
    key: Array | None = None,
    copies: int | None = None,
    batch_size: int = 1024,
) -> Array:
    """The fitted classifier's logits ``(batch, classes)`` for images ``x`` ``(batch, H, W, C)``.

    A :class:`Classifier` gives f(x) (``key`` and ``copies`` are ignored). An
    :class:`Augerino` gives log (1/C) Σ_c softmax(f(T_η_c x)) with η drawn
    from the learned widths with ``key`` (required), C = ``copies`` (default:
    the training copies); the draws do not depend on ``batch_size``, the
    number of images per compiled call (a network and family are compiled
    once per chunk shape). ``params`` are fitted params (e.g. ``FitResult.params``).
    """
    if not isinstance(classifier, Classifier | Augerino):
        raise TypeError(
            f"predict_logits needs a Classifier or an Augerino, got {type(classifier).__name__}"
        )
    x = check_images(x)
    size = check_int(batch_size, "batch_size", minimum=1)
    network = with_fitted_params(classifier.network, classifier.name, params)
    graph, weights = nnx.split(network)
    if isinstance(classifier, Classifier):
        family, warps = _Static(None), jnp.zeros((x.shape[0], 0, 0))
    else:
        if key is None:
            raise ValueError("an Augerino's predictions average warped copies: pass key=")
        count = classifier.copies if copies is None else check_int(copies, "copies", minimum=1)
        eta = uniform_warps(key, _widths(classifier, params), count, x.shape[0])
        family, warps = _Static(classifier.family), eta.swapaxes(0, 1)
    return jnp.concatenate(
        [
            _chunk(
                graph,
                weights,
                x[i : i + size],
                warps[i : i + size],
                family=family,
                flatten=classifier.flatten,
            )
            for i in range(0, x.shape[0], size)
        ]
    )


def sgm_augmented(symmetry: LearnedSymmetry) -> Callable[[Array, Mapping[str, Array]], dict]:
    """The ``augment(key, batch) -> batch`` hook of :func:`invppl.infer.fit` that redraws
    ``batch["x"]`` as x' = T_η'(x̂), η' ~ p(η | x̂), from the SGM's learned symmetry.

    It is :meth:`LearnedSymmetry.augment`; labels pass through unchanged::

        fit(clf.model, clf.guide, {"x": x, "y": y}, augment=sgm_augmented(symmetry), ...)
    """
    if not isinstance(symmetry, LearnedSymmetry):
        raise TypeError(
            "sgm_augmented needs the LearnedSymmetry of a fitted two-stage SGM "
            f"(TwoStageSGM.learned(...)), got {type(symmetry).__name__}"
        )
    return symmetry.augment
