"""Correlated VAEs (Tang, Liang, Jebara, Ruozzi, ICML 2019): codes correlated along a graph.

For data points x_1..x_n joined by an undirected graph G = (V, E):

    Z ~ p(Z) = Π_i p(z_i) Π_(i,j)∈E [p(z_i, z_j) / (p(z_i) p(z_j))]^w_ij    (n, latent_dim)
    x_i ~ p(x_i | z_i) = Bernoulli(sigmoid(f(z_i)))                         (n, ...)

with p(z_i) = N(0, I) and p(z_i, z_j) per dimension bivariate normal of
correlation τ. On a forest w_ij = 1 and p(Z) is the exact
:class:`~invppl.distributions.ForestPrior`; on a graph with cycles w_ij is the
edge's probability of lying in a uniform spanning tree, which makes the ELBO
the average of the spanning trees' ELBOs (Jensen). The guides:

    CVAE_ind:   q(Z) = Π_i q(z_i | x_i),   q(z_i | x_i) = N(μ(x_i), σ(x_i)²)
    CVAE_corr:  q(Z) = Π_i q(z_i | x_i) Π_(i,j)∈E [q(z_i, z_j) / (q(z_i) q(z_j))]^w_ij

where q(z_i, z_j) keeps the singleton marginals and has the correlation
ρ = g(x_i, x_j) = g(x_j, x_i) of a symmetric network
(:class:`~invppl.distributions.PairCorrelation`). The baseline VAE has no edge
factors. The ELBO splits into node terms and edge terms,

    ELBO = Σ_i [E_q log p(x_i | z_i) − KL(q_i ‖ p_0)]
           − Σ_(i,j)∈E w_ij [KL(q_ij ‖ p_ij) − KL(q_i ‖ p_0) − KL(q_j ‖ p_0)],

and CVAE_corr adds, as a regulariser, − γ (``|E|`` / ``|N|``) Σ_(i,j)∉E KL(q_ij ‖ q_i q_j)
over the non-edges N: without it nothing stops g from predicting a correlation
for every pair, which makes the learned ρ useless for ranking unseen links.

Each edge factor is a NumPyro site over the pair (z_i, z_j), an
:class:`~invppl.distributions.EdgeFactor` (site ``z_edge``; ``z_non_edge`` for
the non-edges, whose prior factor is 1), so the model and guide below are
minibatch estimators of that objective: B nodes, B_E edges and B_N non-edge
pairs per step, drawn by :class:`~invppl.infer.GraphBatches` and weighted so
that the step's objective is unbiased for (B / n) ELBO. With
``TraceMeanField_ELBO`` every KL is taken in closed form (only the
reconstruction term is sampled); ``Trace_ELBO`` samples them. Fit with
:func:`invppl.infer.fit`::

    cvae = make_correlated_vae(observed_dim, latent_dim, variant="corr", seed=0)
    batches = GraphBatches(edges, n, edges_per_step=128, non_edges_per_step=128)
    fit(cvae.model, cvae.guide, {"x": x}, seed=0, num_steps=3000, batch_size=128,
        loss=TraceMeanField_ELBO(), extend_batch=batches)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from jax import Array
from jax.typing import ArrayLike
from numpyro.contrib.module import nnx_module
from numpyro.distributions import constraints

from invppl._checks import check_int
from invppl.distributions.edge_factor import EdgeFactor
from invppl.distributions.pairwise_kl import PairCorrelation
from invppl.nn import MLP, MLPGaussianEncoder, with_fitted_params

__all__ = [
    "CorrelatedVAE",
    "Variant",
    "correlated_vae_guide",
    "correlated_vae_model",
    "correlation_rows",
    "encode_codes",
    "make_correlated_vae",
]

Variant = Literal["corr", "ind", "vae"]
"""CVAE_corr, CVAE_ind or the VAE with an independent prior."""

MAX_TAU = 0.99
"""A learned τ is kept in (−MAX_TAU, MAX_TAU)."""


def _prior_correlation(tau: ArrayLike, learn_tau: bool, latent_dim: int) -> Array:
    """τ per latent dimension ``(latent_dim,)``: fixed, or the param site ``tau``."""
    if learn_tau:
        start = jnp.broadcast_to(jnp.asarray(tau, jnp.float32), (latent_dim,))
        return numpyro.param("tau", start, constraint=constraints.interval(-MAX_TAU, MAX_TAU))
    return jnp.broadcast_to(jnp.asarray(tau, jnp.float32), (latent_dim,))


PairSite = tuple[Array | None, Array | None, Callable[[Array], EdgeFactor]]
"""One kind of pair site: the pairs ``(k, 2, ...)`` (None: no site), their weights and factor."""


def _check_pairs(name: str, pairs: Array, weight: Array | None, mask: Array | bool | None) -> None:
    """Raises unless ``pairs`` is ``(k, 2, ...)`` and its weight and mask are ``()`` or ``(k,)``.

    A ``(k, 1)`` weight or mask would broadcast against the site's ``(k,)`` log
    densities into ``(k, k)`` and be summed into a wrong objective.
    """
    if pairs.ndim < 2 or pairs.shape[1] != 2:
        raise ValueError(
            f"{name}_x must have shape (num_pairs, 2, ...) (the two endpoints' data), got "
            f"{tuple(pairs.shape)}"
        )
    for what, array in ((f"{name}_weight", weight), (f"{name}_mask", mask)):
        if array is not None and jnp.shape(array) not in ((), (pairs.shape[0],)):
            raise ValueError(
                f"{what} must be a scalar or have one entry per pair ({pairs.shape[0]},), got "
                f"shape {jnp.shape(array)}"
            )


def _pair_sites(edges: PairSite, non_edges: PairSite, non_edge_mask: Array | None) -> None:
    """The sites ``z_edge`` (plate ``edges``) and ``z_non_edge`` (plate ``non_edges``, masked).

    Each is over the pairs given (skipped when they are None), scaled by its
    weights, with the factor built from the pairs inside the plate; the model
    and the guide differ only in their factors.
    """
    sites: tuple[tuple[str, PairSite, Array | bool | None], ...] = (
        ("edge", edges, True),  # mask=True leaves a site unmasked
        ("non_edge", non_edges, non_edge_mask),
    )
    for name, (pairs, weight, factor), mask in sites:
        if pairs is None:
            continue
        _check_pairs(name, pairs, weight, mask)
        with (
            numpyro.plate(f"{name}s", pairs.shape[0]),
            numpyro.handlers.scale(scale=weight),
            numpyro.handlers.mask(mask=mask),
        ):
            numpyro.sample(f"z_{name}", factor(pairs))


def correlated_vae_model(
    x: Array,
    edge_x: Array | None = None,
    edge_weight: Array | None = None,
    non_edge_x: Array | None = None,
    non_edge_weight: Array | None = None,
    non_edge_mask: Array | None = None,
    *,
    decoder: nnx.Module,
    latent_dim: int,
    tau: ArrayLike = 0.5,
    learn_tau: bool = False,
) -> None:
    """p(Z) p(X | Z) on a minibatch: nodes ``x`` ``(B, ...)``, edges ``edge_x`` ``(B_E, 2, ...)``.

    The edge and non-edge arrays come from :class:`~invppl.infer.GraphBatches`;
    without them (the VAE) the prior is independent.
    """
    decode = nnx_module("decoder", decoder)
    zeros, ones = jnp.zeros((2, latent_dim)), jnp.ones((2, latent_dim))
    with numpyro.plate("nodes", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        logits = decode(z).reshape(x.shape)
        numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(x.ndim - 1), obs=x)
    # p(z_i, z_j) / (p(z_i) p(z_j)) of correlation τ on edges (τ is a param site only when
    # there are edges: without them the 0.0 is never used); factor 1 on non-edges
    tau_d: ArrayLike = 0.0 if edge_x is None else _prior_correlation(tau, learn_tau, latent_dim)
    _pair_sites(
        (edge_x, edge_weight, lambda _: EdgeFactor(zeros, ones, tau_d)),
        (non_edge_x, non_edge_weight, lambda _: EdgeFactor(zeros, ones, 0.0)),
        non_edge_mask,
    )


def _pair_factor(encode: Any, correlate: Any | None, pairs: Array, latent_dim: int) -> EdgeFactor:
    """q's factor over pairs ``(k, 2, ...)``: singleton marginals and ρ = g(x_i, x_j)."""
    flat = pairs.reshape(*pairs.shape[:2], -1)
    loc, scale = encode(flat)  # (k, 2, d)
    if correlate is None:
        rho = jnp.zeros((pairs.shape[0], latent_dim))
    else:
        rho = correlate(flat[:, 0], flat[:, 1])
    return EdgeFactor(loc, scale, rho)


def correlated_vae_guide(
    x: Array,
    edge_x: Array | None = None,
    edge_weight: Array | None = None,
    non_edge_x: Array | None = None,
    non_edge_weight: Array | None = None,
    non_edge_mask: Array | None = None,
    *,
    encoder: nnx.Module,
    latent_dim: int,
    correlation: nnx.Module | None = None,
    **_: Any,
) -> None:
    """q(Z | X) on a minibatch (CVAE_corr with ``correlation``, else CVAE_ind / VAE)."""
    encode = nnx_module("encoder", encoder)
    correlate = None if correlation is None else nnx_module("correlation", correlation)
    with numpyro.plate("nodes", x.shape[0]):
        loc, scale = encode(x.reshape(x.shape[0], -1))
        numpyro.sample("z", dist.Normal(loc, scale).to_event(1))
    factor = partial(_pair_factor, encode, correlate, latent_dim=latent_dim)
    _pair_sites((edge_x, edge_weight, factor), (non_edge_x, non_edge_weight, factor), non_edge_mask)


@dataclass(frozen=True)
class CorrelatedVAE:
    """A Correlated VAE's model and guide with their networks bound.

    ``fit(cvae.model, cvae.guide, {"x": x}, ..., extend_batch=GraphBatches(...))``
    (no ``extend_batch`` for ``variant="vae"``). ``encoder``, ``decoder`` and
    ``correlation`` (CVAE_corr only) are the initial networks; see
    :func:`encode_codes` and :func:`correlation_rows`.
    """

    model: Any
    guide: Any
    variant: Variant
    latent_dim: int
    observed_dim: int
    encoder: nnx.Module
    decoder: nnx.Module
    correlation: nnx.Module | None


def make_correlated_vae(
    observed_dim: int,
    latent_dim: int,
    *,
    variant: Variant,
    seed: int,
    tau: float | Sequence[float] = 0.5,
    learn_tau: bool = False,
    hidden: Sequence[int] = (128,),
    correlation_hidden: Sequence[int] = (64,),
) -> CorrelatedVAE:
    """Builds MLP networks for vectors of ``observed_dim`` binary values and binds them.

    Args:
        observed_dim: D, the length of each (flattened) x_i.
        latent_dim: d.
        variant: ``"corr"`` (CVAE_corr), ``"ind"`` (CVAE_ind) or ``"vae"``.
        seed: initialises the networks.
        tau: the prior's correlation τ, a scalar or one per latent dimension,
            in (−1, 1); with ``learn_tau`` the starting value of the param
            site ``tau`` (kept in (−0.99, 0.99)).
        learn_tau: fit τ by maximising the ELBO.
        hidden: hidden widths of the encoder and (reversed) decoder MLPs.
        correlation_hidden: hidden widths of CVAE_corr's pair network g.

    >>> cvae = make_correlated_vae(8, 2, variant="corr", seed=0)
    >>> cvae.variant, cvae.correlation is not None
    ('corr', True)
    """
    if variant not in ("corr", "ind", "vae"):
        raise ValueError(f'variant must be "corr", "ind" or "vae", got {variant!r}')
    observed_dim = check_int(observed_dim, "observed_dim", minimum=1)
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    tau_array = jnp.asarray(tau, jnp.float32)
    if tau_array.ndim > 1 or (tau_array.ndim == 1 and tau_array.shape[0] != latent_dim):
        raise ValueError(
            f"tau must be a scalar or have one entry per latent dimension ({latent_dim}), "
            f"got shape {tau_array.shape}"
        )
    if not bool(jnp.all(jnp.abs(tau_array) < 1.0)):
        raise ValueError(f"tau must lie in (-1, 1) (a correlation), got {tau!r}")
    hidden = tuple(check_int(h, "hidden width", minimum=1) for h in hidden)
    if not hidden:
        raise ValueError("hidden needs at least one width")
    rngs = nnx.Rngs(seed)
    encoder = MLPGaussianEncoder(observed_dim, hidden, latent_dim, rngs=rngs)
    decoder = MLP(latent_dim, hidden[::-1], observed_dim, rngs=rngs)
    correlation = (
        PairCorrelation(observed_dim, tuple(correlation_hidden), latent_dim, rngs=rngs)
        if variant == "corr"
        else None
    )
    model = partial(
        correlated_vae_model,
        decoder=decoder,
        latent_dim=latent_dim,
        tau=tau_array,
        learn_tau=learn_tau,
    )
    guide = partial(
        correlated_vae_guide, encoder=encoder, latent_dim=latent_dim, correlation=correlation
    )
    return CorrelatedVAE(
        model, guide, variant, latent_dim, observed_dim, encoder, decoder, correlation
    )


def encode_codes(
    cvae: CorrelatedVAE, params: Mapping[str, Any], x: ArrayLike
) -> tuple[Array, Array]:
    """q(z_i | x_i)'s means and sds, each ``(n, latent_dim)``, for ``x`` ``(n, ...)``.

    Raises:
        ValueError: a row of ``x`` does not hold ``observed_dim`` values.
    """
    x = _check_node_rows(x, cvae.observed_dim, "encode_codes")
    encoder = with_fitted_params(cvae.encoder, "encoder", params)
    return jax.jit(lambda x: encoder(x.reshape(x.shape[0], -1)))(x)


def correlation_rows(
    cvae: CorrelatedVAE, params: Mapping[str, Any], x: ArrayLike
) -> Callable[[np.ndarray], Array] | None:
    """The guide's correlations from some nodes to every node, or None without a pair network.

    Returns ``rows(sources)``: ``sources`` ``(m,)`` node ids → ρ ``(m, n, latent_dim)``
    between each source and every node of ``x`` ``(n, ...)``, from one compiled
    function. None for CVAE_ind and the VAE, whose guides make every pair
    independent (ρ = 0).

    Raises:
        ValueError: a row of ``x`` does not hold ``observed_dim`` values; later,
            from ``rows``, ``sources`` that are not ``(m,)`` integers in ``0..n-1``.
    """
    if cvae.correlation is None:
        return None
    x = _check_node_rows(x, cvae.observed_dim, "correlation_rows")
    flat = x.reshape(x.shape[0], -1)
    network = with_fitted_params(cvae.correlation, "correlation", params)

    @jax.jit
    def rows(sources: Array, flat: Array) -> Array:  # flat as an argument, not a constant
        left = jnp.broadcast_to(flat[sources][:, None, :], (sources.shape[0], *flat.shape))
        right = jnp.broadcast_to(flat[None], left.shape)
        return network(left, right)

    return lambda sources: rows(_check_sources(sources, flat.shape[0]), flat)


def _check_node_rows(x: ArrayLike, observed_dim: int, what: str) -> Array:
    """``x`` as an array ``(n, ...)`` after checking that each row holds ``observed_dim`` values."""
    x = jnp.asarray(x)
    if x.ndim < 1 or math.prod(x.shape[1:]) != observed_dim:
        raise ValueError(
            f"{what}: x of shape {tuple(x.shape)}, expected one row of observed_dim = "
            f"{observed_dim} values per node, (n, {observed_dim}) or (n, ...) of that size"
        )
    return x


def _check_sources(sources: ArrayLike, num_nodes: int) -> Array:
    """Node ids ``(m,)`` checked to be integers in ``0..num_nodes-1`` (a gather would clamp)."""
    ids = jnp.asarray(sources)
    if ids.ndim != 1 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(
            f"sources must be integer node ids of shape (m,), got {ids.dtype} {ids.shape}"
        )
    if (
        not isinstance(ids, jax.core.Tracer)
        and ids.size
        and (ids.min() < 0 or ids.max() >= num_nodes)
    ):
        raise ValueError(
            f"sources must lie in 0..{num_nodes - 1} (the nodes of x), got values in "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    return ids
