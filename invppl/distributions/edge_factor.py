"""The edge factor of a Gaussian tree density, as a NumPyro site over one pair of codes.

A density that factorises along a forest (the Correlated-VAE prior
p(Z) = Π_i p(z_i) Π_(i,j)∈E p(z_i, z_j) / (p(z_i) p(z_j)), and the CVAE_corr
guide, built the same way from q) is, per edge, the singleton densities times

    f(z_i, z_j) = N₂((z_i, z_j); m, Σ) / (N(z_i; m_i, s_i²) N(z_j; m_j, s_j²)),

with Σ = [[s_i², ρ s_i s_j], [ρ s_i s_j, s_j²]] per latent dimension. Writing
u = (z − m) / s,

    log f = −½ log(1 − ρ²) − [ρ² (u_i² + u_j²) − 2ρ u_i u_j] / (2 (1 − ρ²)),

summed over the latent dimension. :class:`EdgeFactor` is a NumPyro
``Distribution`` over the pair ``(2, d)`` (row 0: z_i, row 1: z_j) whose
``log_prob`` is this log f (an unnormalised factor: it integrates to 1 only
against the singleton densities) and whose samples are drawn from the pair's
bivariate normal N₂(m, Σ), reparameterised. With a guide factor (means μ, sds
σ, correlation ρ_q) at a site and a prior factor (0, 1, τ) at the model's site
of the same name, the site's ELBO term is

    E_{q_ij}[log f_p − log f_q] = −[KL(q_ij ‖ p_ij) − KL(q_i ‖ p_i) − KL(q_j ‖ p_j)],

the edge term of the Correlated-VAE ELBO: ``Trace_ELBO`` estimates it from one
draw, and ``TraceMeanField_ELBO`` takes it in closed form from the registered
``kl_divergence(EdgeFactor, EdgeFactor)``, which is
:func:`~invppl.distributions.pairwise_kl.edge_kl_term` on the standardised
guide moments (cancellation-free). With ρ = 0 the factor is 1 (log f = 0): an
independent prior (a VAE's) or the CVAE_ind guide.

>>> import jax, jax.numpy as jnp
>>> prior = EdgeFactor(jnp.zeros((2, 3)), jnp.ones((2, 3)), 0.5)
>>> prior.event_shape, prior.sample(jax.random.key(0), (4,)).shape
((2, 3), (4, 2, 3))
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import Array
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.kl import kl_divergence

from invppl.distributions._shapes import check_value_shape
from invppl.distributions.pairwise_kl import _check_correlation, _check_positive, edge_kl_term

__all__ = ["EdgeFactor"]

_EVENT_NAMES = ("2", "latent_dim")


class EdgeFactor(dist.Distribution):
    """The pair factor N₂(z_i, z_j) / (N(z_i) N(z_j)) over a value ``(..., 2, d)``.

    Args:
        loc: means ``(..., 2, d)``: row 0 for z_i, row 1 for z_j.
        scale: standard deviations ``(..., 2, d)`` (broadcast), positive.
        rho: correlation of z_i and z_j per dimension ``(..., d)`` (broadcast),
            in (−1, 1).

    ``batch_shape`` is the broadcast leading shape, ``event_shape`` ``(2, d)``.
    Concrete (untraced) arguments are checked: wrong shapes, scale ≤ 0 and
    ``|ρ|`` ≥ 1 (or NaN) raise a ``ValueError``; traced ones cannot be.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.independent(constraints.real, 2),
        "scale": constraints.independent(constraints.positive, 2),
        "rho": constraints.independent(constraints.interval(-1.0, 1.0), 1),
    }
    support = constraints.independent(constraints.real, 2)
    reparametrized_params: ClassVar[list[str]] = ["loc", "scale", "rho"]
    pytree_data_fields = ("loc", "scale", "rho")

    def __init__(
        self,
        loc: ArrayLike,
        scale: ArrayLike,
        rho: ArrayLike,
        *,
        validate_args: bool | None = None,
    ) -> None:
        loc, scale, rho = jnp.asarray(loc), jnp.asarray(scale), jnp.asarray(rho)
        if loc.ndim < 2 or loc.shape[-2] != 2:
            raise ValueError(
                f"EdgeFactor's loc must have shape (..., 2, d) (rows z_i, z_j), got {loc.shape}"
            )
        latent_dim = loc.shape[-1]
        scale_shape = scale.shape if scale.ndim >= 2 else (1, 1)
        rho_shape = rho.shape if rho.ndim >= 1 else (1,)
        try:
            batch_shape = jnp.broadcast_shapes(loc.shape[:-2], scale_shape[:-2], rho_shape[:-1])
            jnp.broadcast_shapes(loc.shape[-2:], scale_shape[-2:])
            jnp.broadcast_shapes((latent_dim,), rho_shape[-1:])
        except ValueError:
            raise ValueError(
                f"EdgeFactor's arguments do not broadcast: loc {loc.shape} (..., 2, d), "
                f"scale {scale.shape} (..., 2, d) and rho {rho.shape} (..., d) with d = "
                f"{latent_dim}"
            ) from None
        _check_positive(scale, "EdgeFactor's scale")
        _check_correlation(rho, "EdgeFactor's rho")
        self.loc = jnp.broadcast_to(loc, (*batch_shape, 2, latent_dim))
        self.scale = jnp.broadcast_to(scale, (*batch_shape, 2, latent_dim))
        self.rho = jnp.broadcast_to(rho, (*batch_shape, latent_dim))
        super().__init__(
            batch_shape=tuple(batch_shape),
            event_shape=(2, latent_dim),
            validate_args=validate_args,
        )

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Array:
        """Draws from the pair's bivariate normal: ``(*sample_shape, *batch_shape, 2, d)``."""
        shape = (*sample_shape, *self.batch_shape, *self.event_shape)
        eps = jax.random.normal(key, shape)
        first = eps[..., 0, :]
        second = self.rho * first + jnp.sqrt(1.0 - jnp.square(self.rho)) * eps[..., 1, :]
        standard = jnp.stack([first, second], axis=-2)
        return self.loc + self.scale * standard

    def log_prob(self, value: ArrayLike) -> Array:
        """log f(z_i, z_j), summed over the latent dimension: ``sample_shape + batch_shape``.

        Raises:
            ValueError: ``value`` does not end in ``(2, d)`` or its leading axes
                do not broadcast against ``batch_shape`` (a ``(1, d)``, ``(2, 1)``
                or ``(d,)`` value would otherwise broadcast into a number).
        """
        value = jnp.asarray(value)
        check_value_shape(
            "EdgeFactor.log_prob", value.shape, self.batch_shape, self.event_shape, _EVENT_NAMES
        )
        u = (value - self.loc) / self.scale
        u_i, u_j = u[..., 0, :], u[..., 1, :]
        rho2 = jnp.square(self.rho)
        per_dim = -0.5 * jnp.log1p(-rho2) - (
            rho2 * (jnp.square(u_i) + jnp.square(u_j)) - 2.0 * self.rho * u_i * u_j
        ) / (2.0 * (1.0 - rho2))
        return per_dim.sum(axis=-1)

    @property
    def mean(self) -> Array:
        return self.loc

    @property
    def variance(self) -> Array:
        return jnp.square(self.scale)


@kl_divergence.register(EdgeFactor, EdgeFactor)
def _kl_edge_factor(q: EdgeFactor, p: EdgeFactor) -> Array:
    """E_{q's pair}[log f_q − log f_p] in closed form: ``batch_shape``.

    The prior's moments enter through the standardised guide moments
    μ' = (μ − m) / s and σ' = σ / s, after which the term is
    :func:`~invppl.distributions.pairwise_kl.edge_kl_term`.

    Raises:
        ValueError: the two event shapes ``(2, d)`` differ (a ``d = 1`` factor
            would otherwise broadcast against the other's d), or the batch
            shapes do not broadcast.
    """
    if q.event_shape != p.event_shape:
        raise ValueError(
            f"KL(EdgeFactor || EdgeFactor) needs one event shape (2, latent_dim), got q's "
            f"{q.event_shape} and p's {p.event_shape}"
        )
    try:
        jnp.broadcast_shapes(q.batch_shape, p.batch_shape)
    except ValueError:
        raise ValueError(
            f"KL(EdgeFactor || EdgeFactor): the batch shapes do not broadcast, q's "
            f"{q.batch_shape} and p's {p.batch_shape}"
        ) from None
    mu = (q.loc - p.loc) / p.scale
    sigma = q.scale / p.scale
    return edge_kl_term(
        mu[..., 0, :], sigma[..., 0, :], mu[..., 1, :], sigma[..., 1, :], q.rho, p.rho
    )
