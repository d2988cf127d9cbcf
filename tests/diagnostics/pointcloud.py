"""A rotated 2-D point cloud whose η posterior is von Mises in closed form.

Fixed prototype points y_1..y_P in the plane; each example is the cloud
rotated by an angle η and blurred:

    η ~ VonMises(μ0, κ0),    x_p | η ~ N(R(η) y_p, σ² I_2),   p = 1..P.

Then log p(x | η) = const + (A cos η + B sin η) / σ² with
A = Σ_p x_p · y_p and B = Σ_p (x_p,2 y_p,1 − x_p,1 y_p,2), so the posterior is

    p(η | x) = VonMises(m, K),    K e^{i m} = κ0 e^{i μ0} + (A + i B) / σ².

The oracles here (posterior, its CDF on [−π, π), exact samples, log-densities)
use NumPy and SciPy in float64, independently of NumPyro and of
:mod:`invppl.diagnostics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy import special, stats

from invppl.transforms.support import Parameter, Periodic

Y = np.array([[1.0, 0.0], [0.0, 0.5], [-0.7, 0.3]])
POINTS = Y.shape[0]
SIGMA = 0.3
MU0 = 0.5
KAPPA0 = 1.0
PARAMETERS = (Parameter("rotation", Periodic()),)

# the examples most tests condition on: one near the seam at ±π, one at small
# K (the cloud shrunk towards 0, so the posterior stays close to the wide prior)
TRUE_ETA = np.array([3.1, -0.8, 1.9, 0.0])
SHRINK = np.array([1.0, 1.0, 1.0, 0.05])
WIDE = 3  # the index of the shrunk example


def rotation(eta: np.ndarray) -> np.ndarray:
    """``(..., 2, 2)`` rotation matrices by the angles ``eta`` (NumPy)."""
    c, s = np.cos(eta), np.sin(eta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _rotation(eta: jax.Array) -> jax.Array:
    c, s = jnp.cos(eta), jnp.sin(eta)
    return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)


def features(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(A, B)`` per example, in JAX: log p(x | η) = const + (A cos η + B sin η) / σ²."""
    y = jnp.asarray(Y, dtype=x.dtype)
    a = jnp.einsum("bpi,pi->b", x, y)
    b = jnp.sum(x[..., 1] * y[:, 0] - x[..., 0] * y[:, 1], axis=-1)
    return a, b


def model(x: jax.Array) -> None:
    """The NumPyro model of ``x`` ``(batch, P, 2)``."""
    y = jnp.asarray(Y, dtype=x.dtype)
    with numpyro.plate("data", x.shape[0]):
        eta = numpyro.sample("eta", dist.VonMises(MU0, KAPPA0).expand([1]).to_event(1))
        mean = jnp.einsum("bij,pj->bpi", _rotation(eta[:, 0]), y)
        numpyro.sample("x", dist.Normal(mean, SIGMA).to_event(2), obs=x)


def natural(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The posterior's ``(K cos m, K sin m)`` per example, in JAX."""
    a, b = features(x)
    return KAPPA0 * math.cos(MU0) + a / SIGMA**2, KAPPA0 * math.sin(MU0) + b / SIGMA**2


def make_guide(
    factor: float | jax.Array = 1.0, offset: float | jax.Array = 0.0
) -> Callable[[jax.Array], None]:
    """q(η | x) = VonMises(m(x) + offset, factor · K(x)); factor 1, offset 0 is the posterior.

    ``factor`` and ``offset`` may be ``(batch,)`` arrays: one guide per example.
    """

    def guide(x: jax.Array) -> None:
        a, b = natural(x)
        loc = jnp.arctan2(b, a) + offset
        concentration = factor * jnp.hypot(a, b)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("eta", dist.VonMises(loc[:, None], concentration[:, None]).to_event(1))

    return guide


# ---------------------------------------------------------------- data


def cloud(eta: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``(n, P, 2)`` the prototype rotated by each ``eta`` plus ``σ · noise``."""
    return np.einsum("bij,pj->bpi", rotation(np.asarray(eta)), Y) + SIGMA * noise


def examples(seed: int = 0) -> np.ndarray:
    """``(4, P, 2)`` float32: the clouds at :data:`TRUE_ETA`, the last shrunk."""
    noise = np.random.default_rng(seed).normal(size=(TRUE_ETA.size, POINTS, 2))
    return (cloud(TRUE_ETA, noise) * SHRINK[:, None, None]).astype(np.float32)


def sample_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, eta)``: n float32 clouds drawn from the model and their angles."""
    rng = np.random.default_rng(seed)
    eta = stats.vonmises.rvs(KAPPA0, loc=MU0, size=n, random_state=rng)
    x = cloud(eta, rng.normal(size=(n, POINTS, 2)))
    return x.astype(np.float32), wrap(eta)


# ---------------------------------------------------------------- oracles


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles onto [−π, π)."""
    return np.mod(np.asarray(angle, dtype=float) + math.pi, 2 * math.pi) - math.pi


def posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m, K)`` per example, float64: the exact posterior is VonMises(m, K)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.einsum("bpi,pi->b", x, Y)
    b = np.sum(x[..., 1] * Y[:, 0] - x[..., 0] * Y[:, 1], axis=-1)
    z = KAPPA0 * np.exp(1j * MU0) + (a + 1j * b) / SIGMA**2
    return np.angle(z), np.abs(z)


def posterior_cdf(
    m: float, kappa: float, points: int = 20001
) -> Callable[[np.ndarray], np.ndarray]:
    """The CDF of VonMises(m, K) on [−π, π), extended by 0 below −π and 1 above π.

    SciPy's ``vonmises.cdf`` is not a CDF on the whole line, so this integrates
    the density by the trapezoid rule on a fine grid.
    """
    grid = np.linspace(-math.pi, math.pi, points)
    density = np.exp(kappa * (np.cos(grid - m) - 1.0))
    steps = 0.5 * (density[1:] + density[:-1]) * np.diff(grid)
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    cumulative /= cumulative[-1]

    def cdf(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        return np.clip(np.interp(t, grid, cumulative, left=0.0, right=1.0), 0.0, 1.0)

    return cdf


def exact_sample(m: float, kappa: float, size: int, seed: int) -> np.ndarray:
    """``size`` draws of VonMises(m, K) on [−π, π) (SciPy)."""
    draws = stats.vonmises.rvs(kappa, loc=m, size=size, random_state=np.random.default_rng(seed))
    return wrap(draws)


def circular_mean(angles: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.angle(np.mean(np.exp(1j * np.asarray(angles)), axis=axis))


def resultant_length(angles: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.abs(np.mean(np.exp(1j * np.asarray(angles)), axis=axis))


def arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The shorter arc between angles, elementwise."""
    gap = np.mod(np.abs(np.asarray(a) - np.asarray(b)), 2 * math.pi)
    return np.minimum(gap, 2 * math.pi - gap)


def log_evidence(x: np.ndarray) -> np.ndarray:
    """``(n,)`` log p(x_n), float64: ∫ p(x | η) p(η) dη = c(x) I0(K) / I0(κ0)."""
    x = np.asarray(x, dtype=np.float64)
    _, kappa = posterior(x)
    squares = np.sum(x**2, axis=(1, 2)) + np.sum(Y**2)
    gaussian = -POINTS * math.log(2 * math.pi * SIGMA**2) - squares / (2 * SIGMA**2)
    # log I0(K) = log i0e(K) + K
    bessel = np.log(special.i0e(kappa)) + kappa - (math.log(special.i0e(KAPPA0)) + KAPPA0)
    return gaussian + bessel


def log_joint(x: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """log p(x_n, η) for one cloud ``x`` ``(P, 2)`` and angles ``eta`` ``(S,)``, float64."""
    x = np.asarray(x, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    mean = np.einsum("sij,pj->spi", rotation(eta), Y)
    likelihood = stats.norm.logpdf(x[None], mean, SIGMA).sum(axis=(1, 2))
    return stats.vonmises.logpdf(eta, KAPPA0, loc=MU0) + likelihood
