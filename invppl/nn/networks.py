"""Encoders and decoders as Flax NNX modules.

They are plain ``nnx.Module`` s; a model or guide hands them to NumPyro with
``numpyro.contrib.module.nnx_module(name, module)`` so that SVI owns every
parameter. No BatchNorm and no dropout state: normalisation is LayerNorm, so
the modules carry parameters only and guides stay stateless.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array

from invppl.transforms.support import Discrete, Interval, Parameter, Periodic

__all__ = [
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianEncoder",
    "GaussianHead",
    "MLPGaussianEncoder",
    "PoseNetwork",
    "with_fitted_params",
]

Activation = Callable[[Array], Array]


def _check_trailing(x: Array, expected: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[-len(expected) :]) != expected or x.ndim < len(expected):
        raise ValueError(
            f"{what} expects inputs ending in shape {expected}, got shape {tuple(x.shape)}"
        )


def _check_batch(x: Array, expected: tuple[int, ...], what: str, layout: str) -> None:
    """Raises unless ``x`` is a batch axis followed by ``expected``; ``layout`` names the axes."""
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{what} expects inputs ending in shape {expected} after one batch axis, "
            f"{layout}, got shape {tuple(x.shape)}"
        )


class MLP(nnx.Module):
    """A multilayer perceptron, ``(..., in_features) -> (..., out_features)``.

    Hidden layers are Linear → LayerNorm → activation.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MLP(3, (16,), 2, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((5, 3))).shape
    (5, 2)
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        rngs: nnx.Rngs,
        activation: Activation = nnx.gelu,
    ) -> None:
        sizes = [in_features, *hidden]
        self.in_features = in_features
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])
        self.norms = nnx.List([nnx.LayerNorm(b, rngs=rngs) for b in hidden])
        self.out = nnx.Linear(sizes[-1], out_features, rngs=rngs)
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        _check_trailing(x, (self.in_features,), "MLP")
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = self.activation(norm(layer(x)))
        return self.out(x)


class ConvEncoder(nnx.Module):
    """Images ``(batch, height, width, channels)`` → features ``(batch, out_features)``.

    Strided 3×3 convolutions (each halves the resolution), then an MLP. The
    input must be exactly rank 4 with the image shape given at construction
    (an unbatched image would otherwise be flattened into the wrong rows).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        out_features: int,
        *,
        rngs: nnx.Rngs,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        height, width, depth = image_shape
        self.image_shape = (height, width, depth)
        sizes = [depth, *channels]
        self.convs = nnx.List(
            [nnx.Conv(a, b, (3, 3), strides=2, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        for _ in channels:
            height, width = -(-height // 2), -(-width // 2)
        self.head = MLP(height * width * sizes[-1], (hidden,), out_features, rngs=rngs)

    def __call__(self, images: Array) -> Array:
        _check_batch(images, self.image_shape, "ConvEncoder", "(batch, height, width, channels)")
        x = images
        for conv in self.convs:
            x = nnx.gelu(conv(x))
        return self.head(x.reshape(x.shape[0], -1))


class ConvDecoder(nnx.Module):
    """Codes ``(batch, in_features)`` → images ``(batch, height, width, channels)`` (unbounded).

    An MLP to a coarse grid, then transposed 3×3 convolutions that double the
    resolution; the result is cropped to the image size. Apply a sigmoid (or use
    the output as Bernoulli logits) downstream. The codes must be exactly
    ``(batch, in_features)``.
    """

    def __init__(
        self,
        in_features: int,
        image_shape: tuple[int, int, int],
        *,
        rngs: nnx.Rngs,
        channels: Sequence[int] = (64, 32),
        hidden: int = 256,
    ) -> None:
        height, width, depth = image_shape
        self.in_features = in_features
        self.image_shape = (height, width, depth)
        coarse_h, coarse_w = height, width
        for _ in channels:
            coarse_h, coarse_w = -(-coarse_h // 2), -(-coarse_w // 2)
        self.coarse = (coarse_h, coarse_w, channels[0])
        self.head = MLP(in_features, (hidden,), coarse_h * coarse_w * channels[0], rngs=rngs)
        sizes = [*channels, depth]
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(a, b, (3, 3), strides=2, rngs=rngs)
                for a, b in itertools.pairwise(sizes)
            ]
        )

    def __call__(self, z: Array) -> Array:
        _check_batch(z, (self.in_features,), "ConvDecoder", "(batch, in_features)")
        x = nnx.gelu(self.head(z)).reshape((z.shape[0], *self.coarse))
        for index, deconv in enumerate(self.deconvs):
            x = deconv(x)
            if index < len(self.deconvs) - 1:
                x = nnx.gelu(x)
        height, width, _ = self.image_shape
        return x[:, :height, :width, :]


class GaussianHead(nnx.Module):
    """Features ``(..., in_features)`` → (loc, scale), each ``(..., out_features)``.

    ``scale = softplus(raw) + min_scale`` keeps the scale positive and bounded away from 0.
    """

    def __init__(
        self, in_features: int, out_features: int, *, rngs: nnx.Rngs, min_scale: float = 1e-3
    ) -> None:
        self.in_features = in_features
        self.loc = nnx.Linear(in_features, out_features, rngs=rngs)
        self.raw_scale = nnx.Linear(in_features, out_features, rngs=rngs)
        self.min_scale = min_scale

    def __call__(self, features: Array) -> tuple[Array, Array]:
        _check_trailing(features, (self.in_features,), "GaussianHead")
        return self.loc(features), jax.nn.softplus(self.raw_scale(features)) + self.min_scale


class GaussianEncoder(nnx.Module):
    """Images ``(batch, height, width, channels)`` → (loc, scale), each ``(batch, latent_dim)``.

    A :class:`ConvEncoder` body followed by a :class:`GaussianHead`: the
    amortised Gaussian guide q(z | x) of a VAE.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        features: int = 128,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        self.body = ConvEncoder(image_shape, features, rngs=rngs, channels=channels, hidden=hidden)
        self.head = GaussianHead(features, latent_dim, rngs=rngs)

    def __call__(self, images: Array) -> tuple[Array, Array]:
        return self.head(nnx.gelu(self.body(images)))


class MLPGaussianEncoder(nnx.Module):
    """Vectors ``(..., in_features)`` → (loc, scale), each ``(..., latent_dim)``.

    An :class:`MLP` body followed by a :class:`GaussianHead`: the amortised
    Gaussian guide q(z | x) for vector data.

    >>> import jax.numpy as jnp
    >>> loc, scale = MLPGaussianEncoder(5, (16,), 2, rngs=nnx.Rngs(0))(jnp.ones((3, 5)))
    >>> loc.shape, bool((scale > 0).all())
    ((3, 2), True)
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        activation: Activation = nnx.gelu,
    ) -> None:
        if not hidden:
            raise ValueError("MLPGaussianEncoder needs at least one hidden layer, got none")
        self.body = MLP(in_features, hidden[:-1], hidden[-1], rngs=rngs, activation=activation)
        self.head = GaussianHead(hidden[-1], latent_dim, rngs=rngs)
        self.activation = activation

    def __call__(self, x: Array) -> tuple[Array, Array]:
        return self.head(self.activation(self.body(x)))


class PoseNetwork(nnx.Module):
    """Images ``(batch, height, width, channels)`` → η ``(batch, k)`` inside each support.

    The deterministic pose function f(x) of the SGM's two-stage fit: a
    :class:`ConvEncoder` body whose outputs are mapped into each
    transformation parameter's declared support: ``atan2`` of two outputs for a
    periodic parameter (no seam in the network's output), ``low + (high - low)
    · sigmoid`` for an interval, the identity for the real line. Discrete
    parameters have no pose function; use a categorical over the group instead.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from invppl.transforms import Affine
    >>> net = PoseNetwork((8, 8, 1), Affine(("rotation", "tx")).parameters, rngs=nnx.Rngs(0),
    ...                   hidden=16)
    >>> eta = net(jnp.zeros((3, 8, 8, 1)))
    >>> eta.shape, bool(jnp.all(jnp.abs(eta[:, 1]) < 1))
    ((3, 2), True)
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        parameters: Sequence[Parameter],
        *,
        rngs: nnx.Rngs,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
    ) -> None:
        kinds = []
        for parameter in parameters:
            if isinstance(parameter.support, Discrete):
                raise ValueError(
                    f"parameter {parameter.name!r} is discrete ({parameter.support}); a pose "
                    "network outputs continuous η only"
                )
            kinds.append(parameter.support)
        if not kinds:
            raise ValueError("a pose network needs at least one transformation parameter")
        self.supports = tuple(kinds)
        outputs = sum(2 if isinstance(s, Periodic) else 1 for s in self.supports)
        self.body = ConvEncoder(image_shape, outputs, rngs=rngs, channels=channels, hidden=hidden)

    def __call__(self, images: Array) -> Array:
        raw = self.body(images)
        columns, position = [], 0
        for support in self.supports:
            if isinstance(support, Periodic):
                cos, sin = raw[:, position], raw[:, position + 1]
                angle = jnp.arctan2(sin, cos) * (support.period / (2 * jnp.pi))
                columns.append(support.wrap(angle))
                position += 2
            elif isinstance(support, Interval):
                unit = jax.nn.sigmoid(raw[:, position])
                columns.append(support.low + (support.high - support.low) * unit)
                position += 1
            else:
                columns.append(raw[:, position])
                position += 1
        return jnp.stack(columns, axis=-1)


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """``{"layers/0/kernel": shape, ...}`` of a pure dict of arrays."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(jnp.shape(leaf))
        for path, leaf in leaves
    }


def _check_fitted_shapes(module: nnx.Module, name: str, fitted: Any) -> None:
    """Raises unless ``fitted`` has exactly the module's weights, each of the module's shape.

    Without it, weights of another architecture (another width, image size or
    latent dimension) would replace the module's and silently change what it
    computes, and weights missing from ``fitted`` would silently stay at their
    initial values.
    """
    expected = _leaf_shapes(nnx.to_pure_dict(nnx.state(module, nnx.Param)))
    given = _leaf_shapes(fitted)
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(
            f"the fitted weights {name + '$params'!r} do not match the module: missing "
            f"{missing}, unexpected {extra}"
        )
    wrong = [path for path in expected if given[path] != expected[path]]
    if wrong:
        listed = ", ".join(f"{path} {given[path]} (expected {expected[path]})" for path in wrong)
        raise ValueError(
            f"the fitted weights {name + '$params'!r} have other shapes than the module's "
            f"(another architecture?): {listed}"
        )


def with_fitted_params[M: nnx.Module](module: M, name: str, params: Mapping[str, Any]) -> M:
    """A copy of ``module`` holding the weights a fit stored under ``name``.

    ``numpyro.contrib.module.nnx_module(name, module)`` registers the module's
    ``nnx.Param`` s as the param site ``f"{name}$params"``; this puts the fitted
    values (e.g. ``FitResult.params``) back into a plain module that can be
    called outside NumPyro. ``module`` itself is not changed.

    Raises:
        KeyError: ``params`` has no ``f"{name}$params"``.
        ValueError: the fitted weights are not exactly the module's (a weight
            missing or unexpected, or of another shape); the message names each.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MLP(2, (4,), 1, rngs=nnx.Rngs(0))
    >>> zeros = jax.tree.map(jnp.zeros_like, nnx.to_pure_dict(nnx.state(net, nnx.Param)))
    >>> fitted = with_fitted_params(net, "net", {"net$params": zeros})
    >>> float(fitted(jnp.ones((1, 2)))[0, 0]), float(net(jnp.ones((1, 2)))[0, 0]) != 0.0
    (0.0, True)
    """
    key = f"{name}$params"
    if key not in params:
        raise KeyError(
            f"no fitted weights for module {name!r}: expected the param site {key!r}, "
            f"found {sorted(params)}"
        )
    _check_fitted_shapes(module, name, params[key])
    graph_def, weights, others = nnx.split(module, nnx.Param, nnx.Not(nnx.Param))  # type: ignore[misc]
    weights = jax.tree.map(lambda leaf: leaf, weights)  # a copy: the module keeps its own
    nnx.replace_by_pure_dict(weights, params[key])
    return nnx.merge(graph_def, weights, others, copy=True)
