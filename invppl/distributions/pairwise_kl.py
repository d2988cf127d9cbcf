"""Closed-form KL terms of the Correlated VAE ELBO (Tang et al., 2019) on a tree.

With the :class:`~invppl.distributions.ForestPrior` over latent codes
(p_0 = N(0, 1) per node and dimension; per edge and dimension a bivariate
normal p_ij with zero means, unit variances and correlation τ) and a guide
whose singleton marginals are q_i = N(μ_i, σ_i²) and whose edge marginals q_ij
have correlation ρ_q, the ELBO decomposes per latent dimension as

    Σ_i [E_q log p(x_i | z_i) − KL(q_i ‖ p_0)]
        − Σ_{(i,j)∈E} [KL(q_ij ‖ p_ij) − KL(q_i ‖ p_0) − KL(q_j ‖ p_0)].

The pieces, elementwise over broadcast shapes:

- :func:`gaussian_kl_standard`:
  KL(N(μ, σ²) ‖ N(0, 1)) = ½ (σ² + μ² − 1 − 2 log σ).

- :func:`bivariate_kl`: with Σ_p = [[1, τ], [τ, 1]], Σ_p⁻¹ = [[1, −τ], [−τ, 1]] / (1 − τ²)
  and Σ_q = [[σ_i², ρ σ_i σ_j], [ρ σ_i σ_j, σ_j²]] (ρ = ρ_q),

      KL(q_ij ‖ p_ij) = ½ [tr(Σ_p⁻¹ Σ_q) + μᵀ Σ_p⁻¹ μ − 2 + log det Σ_p − log det Σ_q]
                      = ½ [(S − 2τ C) / (1 − τ²) − 2 + log(1 − τ²)
                           − 2 log σ_i − 2 log σ_j − log(1 − ρ²)],

  where S = σ_i² + σ_j² + μ_i² + μ_j² and C = ρ σ_i σ_j + μ_i μ_j.

- :func:`edge_kl_term`: subtracting the two singleton KLs (whose sum is
  ½ [S − 2 − 2 log σ_i − 2 log σ_j]) cancels the log σ terms:

      KL(q_ij ‖ p_ij) − KL(q_i ‖ p_0) − KL(q_j ‖ p_0)
          = ½ [(τ² S − 2τ C) / (1 − τ²) + log(1 − τ²) − log(1 − ρ²)],

  summed over the latent dimension (the last axis). This form is what is
  computed (no cancellation between large KLs). For CVAE_ind (ρ_q = 0,
  :func:`independent_edge_kl_term`) C = μ_i μ_j and the last log vanishes.
  With τ = 0 and ρ_q = 0 the term is exactly 0.

- :class:`PairCorrelation`: the symmetric pair network of CVAE_corr,
  ρ_q = ρ_max · tanh(g(h_i + h_j, h_i ⊙ h_j)) ∈ (−ρ_max, ρ_max), ρ_max = 0.99 by default.

Logs use ``log1p(−τ²)`` and ``log1p(−ρ²)`` for accuracy near 0.

Checks: shapes that do not broadcast raise a ``ValueError`` naming every shape,
and so does, in the edge terms, a ρ_q or τ that widens the codes' last (latent)
axis, which would otherwise be summed over silently; concrete σ ≤ 0, ρ_q or τ
outside (−1, 1) (and NaN) raise a ``ValueError`` naming the first offending
entry. Traced values (inside ``jit``, ``grad``, ``vmap``)
cannot be checked: invalid values there give NaN or ±inf silently.

>>> import jax.numpy as jnp
>>> float(gaussian_kl_standard(0.0, 1.0))
0.0
>>> float(bivariate_kl(0.0, 1.0, 0.0, 1.0, 0.5, 0.5))
0.0
>>> float(independent_edge_kl_term(jnp.zeros(3), jnp.ones(3), jnp.ones(3), jnp.ones(3), 0.0))
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from invppl._checks import check_int
from invppl.nn.networks import MLP, Activation

__all__ = [
    "PairCorrelation",
    "bivariate_kl",
    "edge_kl_term",
    "gaussian_kl_standard",
    "independent_edge_kl_term",
]


# ---------------------------------------------------------------------------
# checks (concrete values only)


def _broadcast_shape(what: str, **arrays: Array) -> tuple[int, ...]:
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{what}: the argument shapes do not broadcast: {listed}") from None


def _first_bad(values: np.ndarray, bad: np.ndarray, name: str) -> str:
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
    where = f"{name}{list(index)}" if index else name
    return f"{where} = {float(values[index])!r}"


def _check_positive(value: Array, name: str) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    values = np.asarray(value)
    bad = ~(values > 0)  # also catches nan
    if bad.any():
        raise ValueError(
            f"{name} must be a positive standard deviation, got {_first_bad(values, bad, name)}"
        )


def _check_correlation(value: Array, name: str) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    values = np.asarray(value)
    bad = ~(np.abs(values) < 1)  # also catches nan
    if bad.any():
        raise ValueError(
            f"{name} must lie strictly inside (-1, 1) (a correlation), got "
            f"{_first_bad(values, bad, name)}"
        )


def _as_float(value: ArrayLike) -> Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    return array


# ---------------------------------------------------------------------------
# closed forms


def gaussian_kl_standard(mu: ArrayLike, sigma: ArrayLike) -> Array:
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½ (σ² + μ² − 1 − 2 log σ), elementwise.

    Args:
        mu: means, any shape.
        sigma: standard deviations (> 0), broadcastable with ``mu``.

    Returns:
        The KL per element, shape ``broadcast(mu.shape, sigma.shape)``.

    Raises:
        ValueError: the shapes do not broadcast; a concrete σ is ≤ 0 or NaN.
    """
    mu, sigma = _as_float(mu), _as_float(sigma)
    _broadcast_shape("gaussian_kl_standard", mu=mu, sigma=sigma)
    _check_positive(sigma, "sigma")
    return 0.5 * (jnp.square(sigma) + jnp.square(mu) - 1.0) - jnp.log(sigma)


class _Pair(NamedTuple):
    """The six arguments of a pair term as float arrays, checked, with their broadcast shape."""

    what: str
    mu_i: Array
    sigma_i: Array
    mu_j: Array
    sigma_j: Array
    rho_q: Array
    tau: Array
    shape: tuple[int, ...]

    def sum_and_cross(self) -> tuple[Array, Array]:
        """S = σ_i² + σ_j² + μ_i² + μ_j² and C = ρ σ_i σ_j + μ_i μ_j."""
        total = (
            jnp.square(self.sigma_i)
            + jnp.square(self.sigma_j)
            + jnp.square(self.mu_i)
            + jnp.square(self.mu_j)
        )
        cross = self.rho_q * self.sigma_i * self.sigma_j + self.mu_i * self.mu_j
        return total, cross


def _pair(
    what: str,
    mu_i: ArrayLike,
    sigma_i: ArrayLike,
    mu_j: ArrayLike,
    sigma_j: ArrayLike,
    rho_q: ArrayLike,
    tau: ArrayLike,
) -> _Pair:
    arrays = {
        "mu_i": _as_float(mu_i),
        "sigma_i": _as_float(sigma_i),
        "mu_j": _as_float(mu_j),
        "sigma_j": _as_float(sigma_j),
        "rho_q": _as_float(rho_q),
        "tau": _as_float(tau),
    }
    shape = _broadcast_shape(what, **arrays)
    _check_positive(arrays["sigma_i"], "sigma_i")
    _check_positive(arrays["sigma_j"], "sigma_j")
    _check_correlation(arrays["rho_q"], "rho_q")
    _check_correlation(arrays["tau"], "tau")
    return _Pair(what=what, shape=shape, **arrays)


def bivariate_kl(
    mu_i: ArrayLike,
    sigma_i: ArrayLike,
    mu_j: ArrayLike,
    sigma_j: ArrayLike,
    rho_q: ArrayLike,
    tau: ArrayLike,
) -> Array:
    """KL(q_ij ‖ p_ij) between two bivariate normals, elementwise (per latent dimension).

    q_ij has means (μ_i, μ_j), standard deviations (σ_i, σ_j) and correlation
    ρ_q; p_ij has zero means, unit variances and correlation τ. See the module
    docstring for the closed form.

    Args:
        mu_i, sigma_i, mu_j, sigma_j: q's means and standard deviations (σ > 0).
        rho_q: q's correlation, in (−1, 1).
        tau: p's correlation, in (−1, 1).

    All six broadcast together, e.g. ``(|E|, d)`` codes with a scalar, ``(d,)``
    or ``(|E|, d)`` τ.

    Returns:
        The KL per element, shape the broadcast of the six shapes.

    Raises:
        ValueError: the shapes do not broadcast; a concrete σ ≤ 0, ρ_q or τ
            outside (−1, 1) (NaN included). Traced values are not checked.
    """
    pair = _pair("bivariate_kl", mu_i, sigma_i, mu_j, sigma_j, rho_q, tau)
    total, cross = pair.sum_and_cross()
    one_minus_tau2 = 1.0 - jnp.square(pair.tau)
    return 0.5 * (
        (total - 2.0 * pair.tau * cross) / one_minus_tau2
        - 2.0
        + jnp.log1p(-jnp.square(pair.tau))
        - jnp.log1p(-jnp.square(pair.rho_q))
    ) - (jnp.log(pair.sigma_i) + jnp.log(pair.sigma_j))


def edge_kl_term(
    mu_i: ArrayLike,
    sigma_i: ArrayLike,
    mu_j: ArrayLike,
    sigma_j: ArrayLike,
    rho_q: ArrayLike,
    tau: ArrayLike,
) -> Array:
    """KL(q_ij ‖ p_ij) − KL(q_i ‖ p_0) − KL(q_j ‖ p_0), summed over the last axis (CVAE_corr).

    The per-edge correction of the CVAE ELBO, which is subtracted from the sum
    of the singleton terms. Arguments are as in :func:`bivariate_kl`; the last
    axis of their broadcast shape is the latent dimension d.

    Args:
        mu_i, sigma_i, mu_j, sigma_j: codes' means and standard deviations,
            typically ``(..., |E|, d)`` gathered at the edges' endpoints.
        rho_q: the guide's pair correlations, e.g. from :class:`PairCorrelation`.
        tau: the prior's correlations (scalar, ``(d,)``, ``(|E|, d)``,
            ``(|E|, 1)``, ...). Neither may widen the codes' last axis: a
            per-edge ``(|E|,)`` τ against ``(|E|, 1)`` codes would broadcast to
            ``(|E|, |E|)`` and sum every edge's τ into each edge's term.

    Returns:
        Shape the broadcast shape without its last axis, e.g. ``(..., |E|)``.

    Raises:
        ValueError: as :func:`bivariate_kl`; also when every argument is a
            scalar (no latent axis to sum), or when ``rho_q`` or ``tau``
            widens the codes' last axis.
    """
    return _edge_term(_pair("edge_kl_term", mu_i, sigma_i, mu_j, sigma_j, rho_q, tau))


def independent_edge_kl_term(
    mu_i: ArrayLike,
    sigma_i: ArrayLike,
    mu_j: ArrayLike,
    sigma_j: ArrayLike,
    tau: ArrayLike,
) -> Array:
    """:func:`edge_kl_term` for CVAE_ind, whose guide has ρ_q = 0 (independent pairs).

    Per dimension ½ [(τ² S − 2τ μ_i μ_j) / (1 − τ²) + log(1 − τ²)] with
    S = σ_i² + σ_j² + μ_i² + μ_j², summed over the last axis.

    Returns:
        Shape the broadcast shape without its last axis.

    Raises:
        ValueError: as :func:`edge_kl_term`.
    """
    return _edge_term(_pair("independent_edge_kl_term", mu_i, sigma_i, mu_j, sigma_j, 0.0, tau))


def _edge_term(pair: _Pair) -> Array:
    """The edge term of a checked pair, summed over the latent axis (the codes' last axis)."""
    if len(pair.shape) == 0:
        raise ValueError(
            f"{pair.what} sums over the latent dimension (the last axis), but every argument is "
            "a scalar; give the codes a trailing axis of size d"
        )
    codes = np.broadcast_shapes(
        pair.mu_i.shape, pair.sigma_i.shape, pair.mu_j.shape, pair.sigma_j.shape
    )
    if codes and codes[-1] != pair.shape[-1]:
        raise ValueError(
            f"{pair.what}: rho_q {tuple(pair.rho_q.shape)} and tau {tuple(pair.tau.shape)} widen "
            f"the latent axis: the codes (mu_i, sigma_i, mu_j, sigma_j) broadcast to {codes} "
            f"(d = {codes[-1]}), all six to {pair.shape}; give rho_q and tau a last axis of "
            f"size d or 1 (e.g. a per-edge tau of shape (|E|, 1))"
        )
    total, cross = pair.sum_and_cross()
    tau2 = jnp.square(pair.tau)
    per_dim = 0.5 * (
        (tau2 * total - 2.0 * pair.tau * cross) / (1.0 - tau2)
        + jnp.log1p(-tau2)
        - jnp.log1p(-jnp.square(pair.rho_q))
    )
    return jnp.broadcast_to(per_dim, pair.shape).sum(axis=-1)


# ---------------------------------------------------------------------------
# the pair network


class PairCorrelation(nnx.Module):
    """Symmetric pair network ``(h_i, h_j) -> ρ_q``, each h ``(..., in_features)``, ρ ``(..., d)``.

    ρ_q = ``max_correlation`` · tanh(MLP([h_i + h_j; h_i ⊙ h_j])). Sum and
    elementwise product commute exactly in floating point, so swapping h_i and
    h_j gives bit-identical outputs. ``|rho_q| < max_correlation`` (0.99 by
    default, which keeps log(1 − ρ²) ≥ log(0.0199) ≈ −3.9 and its gradients
    bounded); equality only where tanh saturates to ±1 in floating point.

    Args:
        in_features: width of each node's features h.
        hidden: hidden layer widths of the MLP (an int for one layer).
        latent_dim: d, the number of correlations returned.
        rngs: parameter initialisation.
        max_correlation: ρ_max, in (0, 1).
        activation: the MLP's hidden activation.

    >>> import jax.numpy as jnp
    >>> net = PairCorrelation(4, 16, 3, rngs=nnx.Rngs(0))
    >>> net(jnp.ones((5, 4)), jnp.zeros((5, 4))).shape
    (5, 3)
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        max_correlation: float = 0.99,
        activation: Activation = nnx.gelu,
    ) -> None:
        in_features = check_int(in_features, "in_features", minimum=1)
        latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        widths = tuple(check_int(w, "hidden width", minimum=1) for w in widths)
        max_correlation = float(max_correlation)
        if not 0.0 < max_correlation < 1.0:
            raise ValueError(f"max_correlation must lie in (0, 1), got {max_correlation!r}")
        self.in_features = in_features
        self.latent_dim = latent_dim
        self.max_correlation = max_correlation
        self.mlp = MLP(2 * in_features, widths, latent_dim, rngs=rngs, activation=activation)

    def __call__(self, h_i: Array, h_j: Array) -> Array:
        h_i, h_j = jnp.asarray(h_i), jnp.asarray(h_j)
        if h_i.shape != h_j.shape or h_i.ndim < 1 or h_i.shape[-1] != self.in_features:
            raise ValueError(
                f"PairCorrelation expects h_i and h_j of one shape ending in {self.in_features}, "
                f"got h_i {tuple(h_i.shape)} and h_j {tuple(h_j.shape)}"
            )
        features = jnp.concatenate([h_i + h_j, h_i * h_j], axis=-1)
        return self.max_correlation * jnp.tanh(self.mlp(features))
