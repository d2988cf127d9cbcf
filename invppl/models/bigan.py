"""BiGAN: a GAN that also learns an encoder (Donahue et al. 2017; ALI, Dumoulin et al. 2017).

    z ~ p(z) = N(0, I)                  latent code                     (batch, latent_dim)
    x̃ = G(z) = sigmoid(g(z))            generator, images in (0, 1)     (batch, H, W, C)
    ẑ = E(x)                            encoder, deterministic          (batch, latent_dim)
    D(x, z) = sigmoid(d(x, z))          discriminator over pairs        (batch,)

The discriminator tells real pairs (x, E(x)), x from the data, from generated
pairs (G(z), z), z from the prior; the generator and the encoder try to make
the two joint distributions equal:

    V(D, E, G) = E_x[log D(x, E(x))] + E_z[log(1 − D(G(z), z))]
    min_{G, E} max_D V(D, E, G)

For fixed G and E the best discriminator is D*(x, z) = p_real(x, z) /
(p_real(x, z) + p_fake(x, z)), and at the global optimum E inverts G. In
logits d, log D = −softplus(−d) and log(1 − D) = −softplus(d). The
discriminator minimises −V. The generator and encoder either minimise V
(``non_saturating=False``, the minimax game) or, as usually trained, the
*non-saturating* loss with the labels swapped,

    L_GE = −E_x[log(1 − D(x, E(x)))] − E_z[log D(G(z), z)],

which has the same fixed point but strong gradients while D wins easily.

The discriminator's loss may add the R1 gradient penalty of Mescheder et al.
(ICML 2018) on the real pairs, with weight γ (``gradient_penalty``):

    L_D = −V + (γ / 2) · E_x ‖∇_(x, z) d(x, E(x))‖²

It keeps D from growing steep around the data, which on MNIST digits is what
stops the generator from collapsing to one blot (docs/bigan.md).

The networks are Flax NNX modules held as a graph definition and a pure
parameter dict each (``nnx.split``), so the losses are pure functions of the
parameters, the batch and a PRNG key; :func:`invppl.infer.fit_adversarial`
trains them with two optimisers (not SVI: there is no likelihood)::

    bigan = make_bigan((14, 14, 1), latent_dim=16, seed=0)
    result = fit_adversarial(bigan.discriminator_loss, bigan.generator_loss,
                             bigan.init_params(), {"x": images}, seed=0,
                             num_steps=2000, batch_size=64, check=bigan.check_data)
    codes = encode(bigan, result.generator_params, images)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from invppl.nn import MLP, ConvDecoder, ConvEncoder

__all__ = [
    "BiGAN",
    "Discriminator",
    "FlatDecoder",
    "FlatEncoder",
    "LeakyMLP",
    "bigan_value",
    "discriminator_logits",
    "discriminator_loss",
    "encode",
    "from_modules",
    "generate",
    "generator_encoder_loss",
    "make_bigan",
    "real_gradient_penalty",
    "reconstruct",
]

Params = dict[str, Any]
"""``{"generator": ..., "encoder": ...}`` or the discriminator's pure dict of arrays."""


# ---------------------------------------------------------------- the networks


class FlatEncoder(nnx.Module):
    """Arrays ``(batch, *shape)`` → ``(batch, out_features)``: flatten, then an :class:`MLP`."""

    def __init__(
        self, shape: Sequence[int], hidden: Sequence[int], out_features: int, *, rngs: nnx.Rngs
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.net = MLP(math.prod(self.shape), hidden, out_features, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        return self.net(x.reshape(x.shape[0], -1))


class _Flat(nnx.Module):
    """``(batch, *shape) → net(flattened)``."""

    def __init__(self, net: nnx.Module) -> None:
        self.net = net

    def __call__(self, x: Array) -> Array:
        return self.net(x.reshape(x.shape[0], -1))


class FlatDecoder(nnx.Module):
    """Codes ``(batch, in_features)`` → ``(batch, *shape)``: an :class:`MLP`, then reshape."""

    def __init__(
        self, in_features: int, hidden: Sequence[int], shape: Sequence[int], *, rngs: nnx.Rngs
    ) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.net = MLP(in_features, hidden, math.prod(self.shape), rngs=rngs)

    def __call__(self, z: Array) -> Array:
        return self.net(z).reshape((z.shape[0], *self.shape))


class LeakyMLP(nnx.Module):
    """``(batch, in_features) → (batch, out_features)``: Linear → leaky ReLU → dropout, no norm.

    Dropout (rate ``dropout``) acts only when a PRNG ``key`` is given (training).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        rngs: nnx.Rngs,
        dropout: float = 0.0,
    ) -> None:
        sizes = [in_features, *hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])
        self.out = nnx.Linear(sizes[-1], out_features, rngs=rngs)
        self.dropout = dropout

    def __call__(self, x: Array, key: Array | None = None) -> Array:
        for index, layer in enumerate(self.layers):
            x = _dropout(nnx.leaky_relu(layer(x)), self.dropout, key, index)
        return self.out(x)


def _dropout(x: Array, rate: float, key: Array | None, index: int) -> Array:
    """Inverted dropout of ``x`` with its own key ``fold_in(key, index)``; identity without key."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class Discriminator(nnx.Module):
    """Pairs (x ``(batch, *shape)``, z ``(batch, latent_dim)``) → logits d(x, z) ``(batch,)``.

    ``features`` maps x to ``(batch, num_features)``; the joint network is a
    :class:`LeakyMLP` over [leaky_relu(features(x)), z] (a single linear map when
    ``hidden`` is empty), with dropout of rate ``dropout`` when called with a key.
    """

    def __init__(
        self,
        features: nnx.Module,
        num_features: int,
        latent_dim: int,
        hidden: Sequence[int],
        *,
        rngs: nnx.Rngs,
        dropout: float = 0.0,
    ) -> None:
        self.features = features
        self.joint = LeakyMLP(num_features + latent_dim, hidden, 1, rngs=rngs, dropout=dropout)
        self.dropout = dropout

    def __call__(self, x: Array, z: Array, key: Array | None = None) -> Array:
        h = nnx.leaky_relu(self.features(x))
        h = _dropout(jnp.concatenate([h, z], axis=-1), self.dropout, key, 1000)
        return self.joint(h, key)[:, 0]


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class BiGAN:
    """A BiGAN's networks (graph definitions and initial parameters) and its losses.

    Attributes:
        data_shape: one example's shape, e.g. ``(H, W, C)``.
        latent_dim: the code's dimension.
        graphs: ``{"generator", "encoder", "discriminator"}`` → ``nnx.GraphDef``.
        initial: the same keys → the initial parameters (pure dicts of arrays).
        non_saturating: the generator/encoder loss of :attr:`generator_loss`.
        gradient_penalty: γ ≥ 0, the weight of the R1 penalty in
            :attr:`discriminator_loss` (0: none).
    """

    data_shape: tuple[int, ...]
    latent_dim: int
    graphs: dict[str, Any]
    initial: dict[str, Params]
    non_saturating: bool = True
    gradient_penalty: float = 0.0

    def init_params(self) -> tuple[Params, Params]:
        """``(discriminator params, {"generator": ..., "encoder": ...})``, as first trained."""
        players = {"generator": self.initial["generator"], "encoder": self.initial["encoder"]}
        return self.initial["discriminator"], players

    def discriminator_loss(
        self, discriminator: Params, players: Params, batch: Mapping[str, Array], key: Array
    ) -> Array:
        """:func:`discriminator_loss` of this BiGAN, the signature ``fit_adversarial`` takes."""
        return discriminator_loss(self, discriminator, players, batch["x"], key)

    def generator_loss(
        self, discriminator: Params, players: Params, batch: Mapping[str, Array], key: Array
    ) -> Array:
        """:func:`generator_encoder_loss` of this BiGAN (non-saturating unless set otherwise)."""
        return generator_encoder_loss(
            self, discriminator, players, batch["x"], key, non_saturating=self.non_saturating
        )

    def check_data(self, data: Mapping[str, np.ndarray]) -> None:
        """Raises ``ValueError`` unless ``data["x"]`` is ``(n, *data_shape)`` in [0, 1]."""
        if "x" not in data:
            raise ValueError(f"a BiGAN is fitted to {{'x': images}}, got the keys {sorted(data)}")
        x = np.asarray(data["x"])
        _check_x(self, x)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"a BiGAN's generator outputs values in (0, 1) (a sigmoid); x holds values in "
                f"[{x.min():.3g}, {x.max():.3g}]: scale the images to [0, 1]"
            )


def _check_x(bigan: BiGAN, x: Array | np.ndarray) -> None:
    """Raises ``ValueError`` unless ``x`` is one batch axis followed by ``bigan.data_shape``."""
    if tuple(x.shape[1:]) != bigan.data_shape or x.ndim != len(bigan.data_shape) + 1:
        raise ValueError(
            f"this BiGAN takes x of shape (batch, {', '.join(map(str, bigan.data_shape))}), "
            f"got {tuple(x.shape)}"
        )


def _network(bigan: BiGAN, name: str, params: Params) -> Any:
    """The NNX module ``name`` holding ``params`` (traceable: a pure function of them)."""
    return nnx.merge(bigan.graphs[name], params)


def generate(bigan: BiGAN, players: Params, z: Array) -> Array:
    """G(z) = sigmoid(g(z)) ``(batch, *data_shape)`` in (0, 1) of codes ``(batch, latent_dim)``."""
    return jax.nn.sigmoid(_network(bigan, "generator", players["generator"])(z))


def encode(bigan: BiGAN, players: Params, x: Array) -> Array:
    """E(x): codes ``(batch, latent_dim)`` of ``x`` ``(batch, *data_shape)``."""
    _check_x(bigan, x)
    return _network(bigan, "encoder", players["encoder"])(jnp.asarray(x))


def reconstruct(bigan: BiGAN, players: Params, x: Array) -> Array:
    """G(E(x)) ``(batch, *data_shape)``: what the generator makes of the encoder's codes."""
    return generate(bigan, players, encode(bigan, players, x))


def discriminator_logits(
    bigan: BiGAN, discriminator: Params, players: Params, x: Array, key: Array
) -> tuple[Array, Array]:
    """Logits d(x, E(x)) of the real pairs and d(G(z), z) of generated pairs, each ``(batch,)``.

    ``x`` is ``(batch, *data_shape)``; ``key`` splits into the key that draws ``z``
    ``(batch, latent_dim)`` from N(0, I) and the discriminator's dropout key.
    """
    _check_x(bigan, x)
    d = _network(bigan, "discriminator", discriminator)
    z_key, dropout_key = jax.random.split(key)
    z = jax.random.normal(z_key, (x.shape[0], bigan.latent_dim))
    real = d(x, encode(bigan, players, x), dropout_key)
    fake = d(generate(bigan, players, z), z, dropout_key)
    return real, fake


def bigan_value(real_logits: Array, fake_logits: Array) -> Array:
    """V = mean log D(real pairs) + mean log(1 − D(generated pairs)), from logits ``(batch,)``.

    >>> round(float(bigan_value(jnp.zeros(3), jnp.zeros(3))), 4), round(-math.log(4), 4)
    (-1.3863, -1.3863)
    """
    return -jnp.mean(jax.nn.softplus(-real_logits)) - jnp.mean(jax.nn.softplus(fake_logits))


def real_gradient_penalty(
    bigan: BiGAN, discriminator: Params, players: Params, x: Array, key: Array
) -> Array:
    """R1: the mean over the real pairs of ‖∇_(x, z) d(x, E(x))‖², a scalar.

    ``x`` is ``(batch, *data_shape)``; the codes E(x) are held fixed (the
    penalty trains D only) and D's dropout mask is that of
    :func:`discriminator_logits` with the same ``key``. The gradient of the
    summed logits is each example's own, so D must treat the examples of a
    batch independently (no batch statistics).
    """
    d = _network(bigan, "discriminator", discriminator)
    _, dropout_key = jax.random.split(key)
    z = jax.lax.stop_gradient(encode(bigan, players, x))
    grad_x, grad_z = jax.grad(lambda u, v: jnp.sum(d(u, v, dropout_key)), argnums=(0, 1))(x, z)
    squares = jnp.sum(grad_x.reshape(x.shape[0], -1) ** 2, axis=-1) + jnp.sum(grad_z**2, axis=-1)
    return jnp.mean(squares)


def discriminator_loss(
    bigan: BiGAN, discriminator: Params, players: Params, x: Array, key: Array
) -> Array:
    """The discriminator's loss −V(D, E, G) + (γ/2)·R1, a scalar, on ``x`` ``(batch, *data_shape)``.

    γ is ``bigan.gradient_penalty``; with γ = 0 the loss is −V alone (see
    :func:`real_gradient_penalty`).
    """
    loss = -bigan_value(*discriminator_logits(bigan, discriminator, players, x, key))
    if bigan.gradient_penalty == 0.0:
        return loss
    penalty = real_gradient_penalty(bigan, discriminator, players, x, key)
    return loss + 0.5 * bigan.gradient_penalty * penalty


def generator_encoder_loss(
    bigan: BiGAN,
    discriminator: Params,
    players: Params,
    x: Array,
    key: Array,
    *,
    non_saturating: bool = True,
) -> Array:
    """The generator's and encoder's loss (a scalar) on ``x`` ``(batch, *data_shape)``.

    V itself (the minimax game), or with ``non_saturating`` the swapped-label
    loss −mean log(1 − D(x, E(x))) − mean log D(G(z), z).
    """
    real, fake = discriminator_logits(bigan, discriminator, players, x, key)
    if not non_saturating:
        return bigan_value(real, fake)
    return jnp.mean(jax.nn.softplus(real)) + jnp.mean(jax.nn.softplus(-fake))


# ---------------------------------------------------------------- construction


def _pure(module: nnx.Module) -> tuple[Any, Params]:
    """``(graph definition, parameters as a pure dict)`` of a module with parameters only."""
    graph, state = nnx.split(module, nnx.Param)
    return graph, nnx.to_pure_dict(state)


def _networks(
    data_shape: tuple[int, ...],
    latent_dim: int,
    architecture: str,
    hidden: int,
    channels: tuple[int, ...],
    dropout: float,
    rngs: nnx.Rngs,
) -> dict[str, nnx.Module]:
    """The generator, encoder and discriminator of :func:`make_bigan`."""
    if architecture == "conv":
        if len(data_shape) != 3:
            raise ValueError(
                f"architecture='conv' needs images (H, W, C), got data_shape {data_shape}"
            )
        image = (data_shape[0], data_shape[1], data_shape[2])
        options = {"channels": channels, "hidden": hidden}
        generator: nnx.Module = ConvDecoder(latent_dim, image, rngs=rngs, **options)  # type: ignore[arg-type]
        encoder: nnx.Module = ConvEncoder(image, latent_dim, rngs=rngs, **options)  # type: ignore[arg-type]
        features: nnx.Module = ConvEncoder(image, hidden, rngs=rngs, **options)  # type: ignore[arg-type]
    else:
        generator = FlatDecoder(latent_dim, (hidden, hidden), data_shape, rngs=rngs)
        encoder = FlatEncoder(data_shape, (hidden, hidden), latent_dim, rngs=rngs)
        features = _Flat(LeakyMLP(math.prod(data_shape), (), hidden, rngs=rngs))
    discriminator = Discriminator(
        features, hidden, latent_dim, (hidden,), rngs=rngs, dropout=dropout
    )
    return {"generator": generator, "encoder": encoder, "discriminator": discriminator}


def make_bigan(
    data_shape: Sequence[int],
    latent_dim: int,
    *,
    seed: int,
    architecture: Literal["conv", "mlp"] = "conv",
    hidden: int = 256,
    channels: Sequence[int] = (32, 64),
    dropout: float = 0.2,
    non_saturating: bool = True,
    gradient_penalty: float = 1.0,
) -> BiGAN:
    """A BiGAN for examples of shape ``data_shape``, its networks initialised from ``seed``.

    ``"conv"``: generator :class:`~invppl.nn.ConvDecoder`, encoder
    :class:`~invppl.nn.ConvEncoder`, and a ConvEncoder's features of x in the
    discriminator (images ``(H, W, C)`` only). ``"mlp"``: flattened inputs and
    two hidden layers of ``hidden`` units (its discriminator's features: one
    linear layer, no normalisation). The discriminator's joint network has one
    hidden layer of ``hidden`` units over [features(x), z], leaky ReLUs and
    dropout of rate ``dropout`` in training (as in BiGAN and ALI). The
    discriminator's loss adds the R1 penalty with weight ``gradient_penalty``
    (γ; 0 for none): without it, on MNIST digits, the discriminator wins and
    the generator collapses to one image (docs/bigan.md).

    >>> bigan = make_bigan((8, 8, 1), 4, seed=0, architecture="mlp", hidden=16)
    >>> d, players = bigan.init_params()
    >>> x = jnp.full((5, 8, 8, 1), 0.5)
    >>> [a.shape for a in discriminator_logits(bigan, d, players, x, jax.random.key(0))]
    [(5,), (5,)]
    """
    shape = tuple(int(s) for s in data_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"data_shape must be positive sizes, got {tuple(data_shape)}")
    if int(latent_dim) < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    penalty = _check_penalty(gradient_penalty)
    if architecture not in ("conv", "mlp"):
        raise ValueError(f'architecture must be "conv" or "mlp", got {architecture!r}')
    modules = _networks(
        shape, int(latent_dim), architecture, int(hidden), tuple(channels), dropout, nnx.Rngs(seed)
    )
    graphs, initial = {}, {}
    for name, module in modules.items():
        graphs[name], initial[name] = _pure(module)
    return BiGAN(shape, int(latent_dim), graphs, initial, non_saturating, penalty)


def _check_penalty(gradient_penalty: float) -> float:
    """``gradient_penalty`` as a float, or ``ValueError`` unless finite and ≥ 0."""
    value = float(gradient_penalty)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"gradient_penalty must be finite and ≥ 0, got {gradient_penalty}")
    return value


def from_modules(
    generator: nnx.Module,
    encoder: nnx.Module,
    discriminator: nnx.Module,
    data_shape: Sequence[int],
    latent_dim: int,
    *,
    non_saturating: bool = True,
    gradient_penalty: float = 0.0,
) -> BiGAN:
    """A BiGAN of any three NNX modules (parameters only, no other state).

    ``generator``: ``(batch, latent_dim) → (batch, *data_shape)`` logits of G;
    ``encoder``: ``(batch, *data_shape) → (batch, latent_dim)``;
    ``discriminator``: ``(x, z) → (batch,)`` logits, e.g. a :class:`Discriminator`.
    ``gradient_penalty``: the R1 weight γ of the discriminator's loss (0: none).
    """
    penalty = _check_penalty(gradient_penalty)
    modules = {"generator": generator, "encoder": encoder, "discriminator": discriminator}
    graphs, initial = {}, {}
    for name, module in modules.items():
        graphs[name], initial[name] = _pure(module)
    return BiGAN(
        tuple(int(s) for s in data_shape),
        int(latent_dim),
        graphs,
        initial,
        non_saturating,
        penalty,
    )
