"""Pareto-smoothed importance sampling per example: does the guide cover the posterior?

For an example x_n and S guide draws (z_s, η_s) ~ q(z, η | x_n), the importance
log-weights against the model's joint density are

    log w_s = log p(x_n, z_s, η_s) − log q(z_s, η_s | x_n)

Fitting a generalised Pareto distribution to the largest weights gives the
shape k̂ (Yao, Vehtari, Simpson, Gelman 2018, "Yes, but did it work?"):
k̂ ≤ 0.5 the guide is close to the posterior, 0.5–0.7 usable, above 0.7 the
importance weights have (near) infinite variance and the guide is unreliable
for this example. The smoothing and k̂ come from ArviZ (``psislw``); the
per-example joint densities from NumPyro traces (every site's log-density
summed over its event dimensions, keeping the data plate's example axis).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from arviz_stats.base import array_stats
from jax import Array
from numpyro import handlers

from invppl._checks import check_int

__all__ = ["CONSTANT_SPREAD", "KHAT_UNRELIABLE", "MIN_SAMPLES", "log_weights", "pareto_khat"]

KHAT_UNRELIABLE = 0.7
"""k̂ above this marks the guide unreliable for an example (Yao et al. 2018)."""

MIN_SAMPLES = 25
"""k̂ fits the largest min(S / 5, 3 √S) weights and needs at least 5 of them: S ≥ 25."""

CONSTANT_SPREAD = 1e-3
"""Log-weights spanning less than this (nats) are equal up to float error: k̂ is set to −∞."""


def _per_example(trace: Mapping[str, dict], batch: int) -> Array:
    """Σ over sample sites of ``log_prob`` summed over all axes but the first: ``(batch,)``."""
    total = jnp.zeros((batch,))
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        log_prob = site["fn"].log_prob(site["value"])
        if site.get("scale") is not None:
            log_prob = site["scale"] * log_prob
        if jnp.ndim(log_prob) == 0 or jnp.shape(log_prob)[0] != batch:
            raise ValueError(
                f"site {name!r} has a log-density of shape {jnp.shape(log_prob)}, not one "
                f"value per example (batch {batch}); per-example weights need every site "
                "inside the data plate"
            )
        total = total + jnp.sum(log_prob.reshape((batch, -1)), axis=1)
    return total


def log_weights(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    num_samples: int = 1000,
    seed: int = 0,
    chunk_size: int = 100,
) -> np.ndarray:
    """``(batch, num_samples)`` importance log-weights log p(x_n, ·) − log q(· | x_n)."""
    check_int(num_samples, "num_samples", minimum=MIN_SAMPLES)
    check_int(chunk_size, "chunk_size", minimum=1)
    x = jnp.asarray(x)
    batch = x.shape[0]
    model = handlers.substitute(model, data=dict(params))
    guide = handlers.substitute(guide, data=dict(params))

    def one(key: Array) -> Array:
        guide_key, model_key = jax.random.split(key)
        guide_trace = handlers.trace(handlers.seed(guide, guide_key)).get_trace(x)
        replayed = handlers.replay(handlers.seed(model, model_key), trace=guide_trace)
        model_trace = handlers.trace(replayed).get_trace(x)
        return _per_example(model_trace, batch) - _per_example(guide_trace, batch)

    keys = jax.random.split(jax.random.PRNGKey(seed), num_samples)
    weights = jax.jit(lambda k: jax.lax.map(one, k, batch_size=min(chunk_size, num_samples)))(keys)
    return np.asarray(weights).T


def pareto_khat(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    num_samples: int = 1000,
    seed: int = 0,
    examples: Any = None,
) -> pd.DataFrame:
    """Per example: PSIS k̂ of the guide, the importance ESS and whether k̂ ≤ 0.7.

    Args:
        model, guide: a NumPyro model/guide pair called as ``model(x)``, ``guide(x)``.
        params: the fitted parameters (and mutable state).
        x: ``(batch, ...)`` the examples.
        num_samples: guide draws per example: at least 25 (the Pareto fit needs a
            tail of 5); a few hundred or more for a k̂ worth reading.
        seed: the PRNG seed.
        examples: labels for the index (default ``0, 1, ...``).

    Returns:
        A DataFrame indexed by example: ``khat``, ``ess`` (Σw)²/Σw² of the
        smoothed weights, and ``reliable`` (k̂ ≤ 0.7). k̂ is −∞ when the log-weights
        span less than :data:`CONSTANT_SPREAD` (the guide equals the posterior).

    Raises:
        ValueError: a non-finite log-weight (the guide puts mass where the model
        has none, or the model is NaN at a guide draw).
    """
    weights = log_weights(model, guide, params, x, num_samples=num_samples, seed=seed)
    bad = ~np.isfinite(weights)
    if bad.any():
        rows = sorted({int(i) for i in np.nonzero(bad)[0]})
        raise ValueError(
            f"non-finite importance log-weights for examples {rows[:10]}: the model's "
            "density is -inf or NaN at guide draws (does the guide's support match the model's?)"
        )
    # arviz-stats 1.x's psislw takes log-likelihoods (PSIS-LOO's ratios are 1 / p), so the
    # log-weights go in negated; the smoothed log-weights come out as log-weights.
    # Weights equal up to float error (the guide is the posterior) have no tail to fit: k̂ = −∞.
    smoothed = weights - np.max(weights, axis=-1, keepdims=True)
    khat = np.full(weights.shape[0], -np.inf)
    for row in np.flatnonzero(np.ptp(weights, axis=-1) >= CONSTANT_SPREAD):
        row_weights, row_khat = array_stats.psislw(-weights[row], axis=-1)
        smoothed[row], khat[row] = row_weights, float(row_khat)
    normalised = np.exp(smoothed - np.max(smoothed, axis=-1, keepdims=True))
    normalised /= normalised.sum(axis=-1, keepdims=True)
    ess = 1.0 / np.sum(normalised**2, axis=-1)
    index = pd.Index(
        list(range(weights.shape[0])) if examples is None else list(examples), name="example"
    )
    return pd.DataFrame(
        {"khat": khat, "ess": ess, "reliable": khat <= KHAT_UNRELIABLE}, index=index
    )
