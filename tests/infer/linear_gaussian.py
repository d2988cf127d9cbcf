"""A linear-Gaussian latent model whose marginal and posterior are known exactly.

    z ~ N(0, I_d),    x | z ~ N(W z + b, σ² I_D)

with fixed W, b, σ (nothing learned in the model). Then

    p(x)     = N(x; b, W Wᵀ + σ² I)
    p(z | x) = N(Σ Wᵀ (x − b) / σ², Σ),   Σ = (I + Wᵀ W / σ²)⁻¹,

and the best fully factorised Gaussian q(z | x) (minimising KL(q ‖ p(z | x)))
has the posterior mean and precisions diag(Σ⁻¹), so its ELBO gap
KL(q* ‖ p(z | x)) is known in closed form too. The oracles here use NumPy and
SciPy in float64, independently of NumPyro.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from flax import nnx
from numpyro.contrib.module import nnx_module
from scipy import stats

LATENT = 2
OBSERVED = 3
W = np.array([[1.0, 0.7], [0.7, 1.0], [0.3, 0.3]])  # correlated columns: a factorised q has a gap
B = np.array([0.5, -1.0, 0.2])
SIGMA = 0.5

POSTERIOR_PRECISION = np.eye(LATENT) + W.T @ W / SIGMA**2
POSTERIOR_COVARIANCE = np.linalg.inv(POSTERIOR_PRECISION)
POSTERIOR_GAIN = POSTERIOR_COVARIANCE @ W.T / SIGMA**2  # mean = GAIN (x − b)
MEAN_FIELD_SCALE = 1.0 / np.sqrt(np.diag(POSTERIOR_PRECISION))


def sample_data(n: int, seed: int) -> np.ndarray:
    """``(n, OBSERVED)`` float32 draws from the model."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, LATENT))
    return (z @ W.T + B + SIGMA * rng.normal(size=(n, OBSERVED))).astype(np.float32)


def log_marginal(x: np.ndarray) -> np.ndarray:
    """``(n,)`` exact log p(x_i), float64."""
    covariance = W @ W.T + SIGMA**2 * np.eye(OBSERVED)
    return stats.multivariate_normal(B, covariance).logpdf(np.asarray(x, np.float64))


def mean_field_gap() -> float:
    """KL(q* ‖ p(z | x)) for the optimal factorised Gaussian (the same for every x)."""
    q_cov = np.diag(MEAN_FIELD_SCALE**2)
    _, logdet_post = np.linalg.slogdet(POSTERIOR_COVARIANCE)
    _, logdet_q = np.linalg.slogdet(q_cov)
    return 0.5 * (np.trace(POSTERIOR_PRECISION @ q_cov) - LATENT + logdet_post - logdet_q)


def optimal_mean_field_params() -> dict[str, np.ndarray]:
    """The closed-form optimum of :func:`param_guide`'s parameters."""
    return {
        "A": POSTERIOR_GAIN.astype(np.float32),
        "c": (-POSTERIOR_GAIN @ B).astype(np.float32),
        "scale": MEAN_FIELD_SCALE.astype(np.float32),
    }


def model(x: jax.Array) -> None:
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
        loc = z @ jnp.asarray(W.T, dtype=x.dtype) + jnp.asarray(B, dtype=x.dtype)
        numpyro.sample("x", dist.Normal(loc, SIGMA).to_event(1), obs=x)


def param_guide(x: jax.Array) -> None:
    """Amortised factorised Gaussian q(z | x) = N(A x + c, diag(scale²))."""
    a = numpyro.param("A", jnp.zeros((LATENT, OBSERVED)))
    c = numpyro.param("c", jnp.zeros(LATENT))
    scale = numpyro.param("scale", jnp.ones(LATENT), constraint=dist.constraints.positive)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(x @ a.T + c, scale).to_event(1))


def exact_guide(x: jax.Array) -> None:
    """The exact posterior p(z | x) as the guide."""
    gain = jnp.asarray(POSTERIOR_GAIN, dtype=x.dtype)
    loc = (x - jnp.asarray(B, dtype=x.dtype)) @ gain.T
    covariance = jnp.asarray(POSTERIOR_COVARIANCE, dtype=x.dtype)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.MultivariateNormal(loc, covariance_matrix=covariance))


class Calls(nnx.Variable):
    """A non-Param NNX variable: NumPyro keeps it as mutable state."""


class Encoder(nnx.Module):
    """q(z | x) parameters from a linear layer, counting its calls."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.loc = nnx.Linear(OBSERVED, LATENT, rngs=rngs)
        self.log_scale = nnx.Param(jnp.zeros(LATENT))
        self.calls = Calls(jnp.zeros((), jnp.int32))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        self.calls[...] = self.calls[...] + 1
        return self.loc(x), jnp.exp(self.log_scale[...])


def make_nnx_guide(seed: int = 0) -> Callable[[jax.Array], None]:
    """A guide through ``nnx_module`` whose module has a mutable call counter."""
    encoder = Encoder(nnx.Rngs(seed))

    def nnx_guide(x: jax.Array) -> None:
        net = nnx_module("encoder", encoder)
        loc, scale = net(x)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return nnx_guide


def calls(state: object) -> int:
    """The counter's value in an ``SVIState``'s mutable state."""
    leaves = jax.tree.leaves(state.mutable_state)  # type: ignore[attr-defined]
    assert len(leaves) == 1, leaves
    return int(leaves[0])
