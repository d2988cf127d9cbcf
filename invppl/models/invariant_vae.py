"""The invariant conditional VAE of Moyer et al. (NeurIPS 2018): codes that forget c.

For data x with a nuisance c (sex, age group, the digit's class...) whose
information the code z should not carry:

    z ~ p(z) = N(0, I)                            code             (batch, latent_dim)
    x ~ p(x | z, c) = Likelihood(f([z; c]))       conditional decoder (batch, ...)
    y ~ p(y | z) = Categorical(h(z))              optional supervised head
    q(z | x) = N(μ(x), diag σ(x)²)                encoder: sees x only, never c

fitted by maximising

    E_q[log p(x | z, c)] − β KL(q(z | x) ‖ p(z)) − λ E_x KL(q(z | x) ‖ q(z))  [+ α log p(y | z)].

The decoder gets c for free, so z need not encode it; the compression term
(the mutual information I(x; z) under q, bounded over a minibatch by the mean
pairwise KL of the encoder's Gaussians,
:func:`~invppl.distributions.compression.compression_bound`) pushes z to keep
only what the decoder cannot get from c. With λ = 0 this is a conditional VAE;
without c (``num_categories=None``, ``condition_dim=None``) and λ = 0 a VAE.

As NumPyro sites: ``z`` (scaled by β in model and guide, so the ELBO's KL is
β-weighted under both ``Trace_ELBO`` and ``TraceMeanField_ELBO``), ``x``
(observed), ``y`` (observed, scaled by α, when a head is built and ``y`` is
given) and the factor ``compression`` (−λ · B · bound, in the model, which
calls the encoder on x for it: the same ``encoder`` param site as the guide's).
Fit with :func:`invppl.infer.fit` on ``{"x": x, "c": c}`` (plus ``"y"``);
:meth:`InvariantVAE.data` checks the arrays first.
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
from jax.typing import ArrayLike
from numpyro.contrib.module import nnx_module

from invppl._checks import check_int
from invppl.distributions.compression import compression_factor
from invppl.distributions.likelihood import Kind, check_kind, likelihood_distribution
from invppl.nn import MLP, MLPGaussianEncoder, with_fitted_params

__all__ = [
    "InvariantVAE",
    "invariant_vae_guide",
    "invariant_vae_model",
    "make_invariant_vae",
]


def _condition(c: Array, num_categories: int | None) -> Array:
    """c as decoder input: one-hot ``(batch, K)``, or ``(batch, condition_dim)`` if continuous."""
    if num_categories is not None:
        return jax.nn.one_hot(c, num_categories)
    return c.reshape(c.shape[0], -1)


def invariant_vae_model(
    x: Array,
    c: Array | None = None,
    y: Array | None = None,
    *,
    decoder: nnx.Module,
    encoder: nnx.Module,
    head: nnx.Module | None,
    latent_dim: int,
    num_categories: int | None,
    kind: Kind,
    scale: float,
    beta: float,
    compression: float,
    supervision: float,
) -> None:
    """p(z) p(x | z, c) [p(y | z)] and the compression factor, over a batch ``x`` ``(B, ...)``.

    ``c`` is ``(B,)`` categories or ``(B, ...)`` continuous values, ``y`` ``(B,)``.

    Raises:
        ValueError: ``c`` or ``y`` has another number of rows than ``x``, a
            categorical ``c`` is not ``(B,)``, or ``y`` is not ``(B,)`` (a
            ``(B, 1)`` y would broadcast against the head's ``(B,)`` batch into a
            ``(B, B)`` log density).
    """
    decode = nnx_module("decoder", decoder)
    batch = x.shape[0]
    _check_rows(batch, c, y, num_categories)
    with numpyro.plate("data", batch):
        with numpyro.handlers.scale(scale=beta):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        inputs = z if c is None else jnp.concatenate([z, _condition(c, num_categories)], -1)
        out = decode(inputs).reshape(x.shape)
        mean = out if kind == "normal" else jax.nn.sigmoid(out)
        numpyro.sample("x", likelihood_distribution(mean, kind, scale, x.ndim - 1), obs=x)
        if head is not None and y is not None:
            predict = nnx_module("head", head)
            with numpyro.handlers.scale(scale=supervision):
                numpyro.sample("y", dist.Categorical(logits=predict(z)), obs=y)
    if compression > 0:  # −λ Σ_i KL(q(z | x_i) ‖ q(z)), bounded by pairwise KLs
        encode = nnx_module("encoder", encoder)
        loc, sd = encode(x.reshape(batch, -1))
        compression_factor("compression", loc, sd, compression)


def _check_rows(batch: int, c: Array | None, y: Array | None, num_categories: int | None) -> None:
    """Raises unless ``c`` and ``y`` have one row per example of a batch of ``batch``."""
    if c is not None:
        wanted = "(B,) categories" if num_categories is not None else "(B, ...) values"
        rows_ok = jnp.shape(c)[:1] == (batch,)
        if not rows_ok or (num_categories is not None and jnp.ndim(c) != 1):
            raise ValueError(
                f"c must be {wanted} for a batch of B = {batch}, got shape {jnp.shape(c)}"
            )
    if y is not None and jnp.shape(y) != (batch,):
        raise ValueError(f"y must have shape (B,) = ({batch},), got {jnp.shape(y)}")


def invariant_vae_guide(
    x: Array,
    c: Array | None = None,
    y: Array | None = None,
    *,
    encoder: nnx.Module,
    beta: float,
    **_: Any,
) -> Array:
    """q(z | x) = N(μ(x), σ(x)²) over a batch ``x`` ``(B, ...)``: c is not an input."""
    encode = nnx_module("encoder", encoder)
    loc, sd = encode(x.reshape(x.shape[0], -1))
    with numpyro.plate("data", x.shape[0]), numpyro.handlers.scale(scale=beta):
        return numpyro.sample("z", dist.Normal(loc, sd).to_event(1))


@dataclass(frozen=True)
class InvariantVAE:
    """An invariant conditional VAE's model and guide with their networks bound.

    ``fit(ivae.model, ivae.guide, ivae.data(x, c, y), ...)``; see
    :func:`make_invariant_vae` for the fields.
    """

    model: Any
    guide: Any
    observed_shape: tuple[int, ...]
    latent_dim: int
    num_categories: int | None
    condition_dim: int | None
    num_classes: int | None
    encoder: nnx.Module
    decoder: nnx.Module
    head: nnx.Module | None

    def check_condition(self, c: ArrayLike, rows: int) -> np.ndarray:
        """``c`` checked against the model: ``(rows,)`` categories or ``(rows, condition_dim)``."""
        array = np.asarray(c)
        if array.shape[:1] != (rows,):
            raise ValueError(f"c must have one row per example ({rows}), got shape {array.shape}")
        if self.num_categories is not None:
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
                raise ValueError(
                    f"c must be integer categories of shape ({rows},), got {array.dtype} "
                    f"{array.shape}"
                )
            unseen = np.setdiff1d(np.unique(array), np.arange(self.num_categories))
            if unseen.size:
                raise ValueError(
                    f"c holds categories {unseen.tolist()} unseen in training: the model was "
                    f"built for the {self.num_categories} categories 0..{self.num_categories - 1}"
                )
            return array.astype(np.int32)
        if self.condition_dim is None:
            raise ValueError("this model takes no c (built with num_categories=condition_dim=None)")
        array = array.reshape(rows, -1).astype(np.float32)
        if array.shape[1] != self.condition_dim:
            raise ValueError(
                f"c must have {self.condition_dim} values per example, got {array.shape[1]}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"c holds {int(np.sum(~np.isfinite(array)))} NaN or infinite values")
        return array

    def data(
        self, x: ArrayLike, c: ArrayLike | None = None, y: ArrayLike | None = None
    ) -> dict[str, np.ndarray]:
        """The arrays for :func:`~invppl.infer.fit`, checked: ``{"x", "c"[, "y"]}``."""
        x_array = np.asarray(x, np.float32)
        if x_array.shape[1:] != self.observed_shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.observed_shape))}), "
                f"got {x_array.shape}"
            )
        if not np.all(np.isfinite(x_array)):
            raise ValueError(f"x holds {int(np.sum(~np.isfinite(x_array)))} NaN or infinite values")
        rows = x_array.shape[0]
        arrays: dict[str, np.ndarray] = {"x": x_array}
        if c is not None:
            arrays["c"] = self.check_condition(c, rows)
        elif self.num_categories is not None or self.condition_dim is not None:
            raise ValueError("this model is conditional: give c")
        if y is not None:
            if self.num_classes is None:
                raise ValueError("y given, but the model has no supervised head (num_classes)")
            labels = np.asarray(y)
            if labels.shape != (rows,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"y must be integer classes of shape ({rows},), got {labels.shape}"
                )
            if labels.min() < 0 or labels.max() >= self.num_classes:
                raise ValueError(f"y must lie in 0..{self.num_classes - 1}")
            arrays["y"] = labels.astype(np.int32)
        return arrays

    def encode(self, params: Mapping[str, Any], x: ArrayLike) -> tuple[Array, Array]:
        """q(z | x)'s means and sds, each ``(n, latent_dim)``, for ``x`` ``(n, *observed_shape)``.

        Raises:
            ValueError: ``x`` is not ``(n, *observed_shape)`` (one of another
                layout but the same size would otherwise be flattened silently).
        """
        encoder = with_fitted_params(self.encoder, "encoder", params)
        x = jnp.asarray(x, jnp.float32)
        if x.ndim < 1 or x.shape[1:] != self.observed_shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.observed_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return jax.jit(lambda x: encoder(x.reshape(x.shape[0], -1)))(x)

    def decode(self, params: Mapping[str, Any], z: ArrayLike, c: ArrayLike | None) -> Array:
        """The mean of p(x | z, c) ``(n, ...)`` for codes ``z`` ``(n, latent_dim)``.

        Raises:
            ValueError: ``z`` is not ``(n, latent_dim)``; ``c`` does not fit
                (see :meth:`check_condition`).
        """
        z = jnp.asarray(z, jnp.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {tuple(z.shape)}")
        decoder = with_fitted_params(self.decoder, "decoder", params)
        inputs = z
        if c is not None:
            condition = jnp.asarray(self.check_condition(c, z.shape[0]))
            inputs = jnp.concatenate([z, _condition(condition, self.num_categories)], -1)
        out = decoder(inputs).reshape(z.shape[0], *self.observed_shape)
        return out if self.kind == "normal" else jax.nn.sigmoid(out)

    @property
    def kind(self) -> Kind:
        kind: Kind = self.model.keywords["kind"]
        return kind


def _check_conditioning(
    num_categories: int | None, condition_dim: int | None, num_classes: int | None
) -> tuple[int | None, int | None, int | None]:
    """``(num_categories, condition_dim, num_classes)``, checked for :func:`make_invariant_vae`."""
    if num_categories is not None and condition_dim is not None:
        raise ValueError("give num_categories (categorical c) or condition_dim (continuous c)")
    if num_categories is not None:
        num_categories = check_int(num_categories, "num_categories", minimum=2)
    if condition_dim is not None:
        condition_dim = check_int(condition_dim, "condition_dim", minimum=1)
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes", minimum=2)
    return num_categories, condition_dim, num_classes


def _check_weights_and_kind(beta: float, compression: float, supervision: float, kind: str) -> None:
    """Raises unless β, α > 0 and λ ≥ 0 are finite and ``kind`` is a likelihood."""
    for name, value in (("beta", beta), ("compression", compression), ("supervision", supervision)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if beta <= 0 or supervision <= 0:
        raise ValueError("beta and supervision must be positive (NumPyro scales)")
    check_kind(kind)


def _networks(
    features: int,
    condition: int,
    latent_dim: int,
    num_classes: int | None,
    hidden: tuple[int, ...],
    seed: int,
) -> tuple[MLPGaussianEncoder, MLP, MLP | None]:
    """The encoder ``features → latent_dim``, decoder ``latent_dim + condition → features``, head.

    Drawn in this order from ``nnx.Rngs(seed)``; no head without ``num_classes``.
    """
    rngs = nnx.Rngs(seed)
    encoder = MLPGaussianEncoder(features, hidden, latent_dim, rngs=rngs)
    decoder = MLP(latent_dim + condition, hidden[::-1], features, rngs=rngs)
    head = None if num_classes is None else MLP(latent_dim, hidden, num_classes, rngs=rngs)
    return encoder, decoder, head


def make_invariant_vae(
    observed_shape: Sequence[int],
    latent_dim: int,
    *,
    seed: int,
    num_categories: int | None = None,
    condition_dim: int | None = None,
    num_classes: int | None = None,
    beta: float = 1.0,
    compression: float = 0.0,
    supervision: float = 1.0,
    kind: Kind = "normal",
    scale: float = 1.0,
    hidden: Sequence[int] = (128,),
) -> InvariantVAE:
    """Builds MLP networks and binds them into an invariant conditional VAE.

    Args:
        observed_shape: the shape of one x (flattened for the MLPs).
        latent_dim: d.
        seed: initialises the networks.
        num_categories: K for a categorical c in 0..K−1 (one-hot into the decoder).
        condition_dim: the length of a continuous c (instead of ``num_categories``).
        num_classes: build the supervised head p(y | z) over that many classes.
        beta: β, the weight of KL(q(z | x) ‖ p(z)).
        compression: λ ≥ 0, the weight of the compression term (0: a conditional VAE).
        supervision: α, the weight of log p(y | z).
        kind: the likelihood, ``"normal"`` (standardised tabular data),
            ``"bernoulli"`` or ``"continuous_bernoulli"`` (intensities in [0, 1]).
        scale: the Normal likelihood's σ.
        hidden: hidden widths of the encoder, decoder (reversed) and head.

    >>> ivae = make_invariant_vae((6,), 2, seed=0, num_categories=2, compression=1.0)
    >>> sorted(ivae.data(np.zeros((4, 6)), np.array([0, 1, 1, 0])))
    ['c', 'x']
    """
    shape = tuple(check_int(s, "observed_shape entry", minimum=1) for s in observed_shape)
    if not shape:
        raise ValueError("observed_shape must have at least one axis")
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    num_categories, condition_dim, num_classes = _check_conditioning(
        num_categories, condition_dim, num_classes
    )
    _check_weights_and_kind(beta, compression, supervision, kind)
    hidden = tuple(check_int(h, "hidden width", minimum=1) for h in hidden)
    if not hidden:
        raise ValueError("hidden needs at least one width")
    features, condition = int(np.prod(shape)), num_categories or condition_dim or 0
    encoder, decoder, head = _networks(features, condition, latent_dim, num_classes, hidden, seed)
    model = partial(
        invariant_vae_model,
        decoder=decoder,
        encoder=encoder,
        head=head,
        latent_dim=latent_dim,
        num_categories=num_categories,
        kind=kind,
        scale=float(scale),
        beta=float(beta),
        compression=float(compression),
        supervision=float(supervision),
    )
    guide = partial(invariant_vae_guide, encoder=encoder, beta=float(beta))
    return InvariantVAE(
        model,
        guide,
        shape,
        latent_dim,
        num_categories,
        condition_dim,
        num_classes,
        encoder,
        decoder,
        head,
    )
