"""Per-example importance-weighted bounds on log p(x) (Burda et al., 2016).

For a model p(x, z) and a guide q(z | x), each example x_i gets K importance
samples z_ik ~ q(z | x_i) and log weights

    log w_ik = log p(x_i, z_ik) − log q(z_ik | x_i),

and the bounds, averaged over the n examples, are

    IWAE_K = (1/n) Σ_i log (1/K) Σ_k w_ik        ≤ (1/n) Σ_i log p(x_i)
    ELBO   = (1/n) Σ_i (1/K) Σ_k log w_ik        ≤ IWAE_K.

IWAE_1 has the ELBO's expectation, IWAE_K grows with K and tends to log p(x_i)
as K → ∞; with the exact posterior as the guide every weight equals p(x_i),
so both bounds are exact for every K.

Convention for splitting a trace into examples: the model and guide put the
examples in a plate named ``"data"`` (``numpyro.plate("data", x.shape[0])``).
A sample site inside that plate contributes its log density at example i to
log w_ik (summed over event dimensions and over any other plates). A site
outside it (a global latent or factor) contributes its whole log density to
*every* example, so each term is an importance-weighted bound on the marginal
likelihood of that example alone, log ∫ p(θ) p(x_i | θ) dθ. Site scales (e.g.
from ``numpyro.handlers.scale``) are ignored: the bounds use the unscaled
densities. ``numpyro.param`` sites are not random and contribute nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike
from numpyro import handlers

from invppl.infer._checks import check_data, check_positive_int, check_seed, num_examples

__all__ = ["DATA_PLATE", "elbo_per_example", "iwae_bound", "per_example_log_weight"]

DATA_PLATE = "data"
"""The name of the plate over examples that the bounds split by."""

_SAMPLES_PER_VMAP = 64
"""Importance samples evaluated together; more are looped over (bounds memory)."""


def _site_per_example(site: dict[str, Any], size: int, plate_name: str) -> Array:
    """A sample site's log density split over the examples: ``(size,)``."""
    if site["intermediates"]:
        log_prob = site["fn"].log_prob(site["value"], site["intermediates"])
    else:
        log_prob = site["fn"].log_prob(site["value"])
    log_prob = jnp.asarray(log_prob)
    frames = [f for f in site["cond_indep_stack"] if f.name == plate_name]
    if not frames:
        return jnp.broadcast_to(jnp.sum(log_prob), (size,))
    frame = frames[0]
    if frame.size != size:
        raise ValueError(
            f"site {site['name']!r} lies in plate {plate_name!r} of size {frame.size}, "
            f"but the batch has {size} examples; the plate must span the whole batch "
            f'(numpyro.plate("{plate_name}", x.shape[0]), no subsample_size)'
        )
    dim = frame.dim
    if log_prob.ndim < -dim:
        log_prob = jnp.reshape(log_prob, (1,) * (-dim - log_prob.ndim) + log_prob.shape)
    log_prob = jnp.moveaxis(log_prob, dim, 0)
    log_prob = jnp.broadcast_to(log_prob, (size, *log_prob.shape[1:]))
    return jnp.sum(jnp.reshape(log_prob, (size, -1)), axis=1)


def per_example_log_weight(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: Mapping[str, ArrayLike],
    batch: Mapping[str, ArrayLike],
    *,
    key: Array,
    plate_name: str = DATA_PLATE,
) -> Array:
    """One importance sample's log weight per example, log p(x_i, z_i) − log q(z_i | x_i).

    Runs the guide (seeded with ``key``) and the model replayed against the
    guide's samples, both called as ``model(**batch)`` / ``guide(**batch)``
    with ``params`` substituted, and splits every sample site's log density
    over the examples as described in this module's docstring.

    Args:
        model: a NumPyro model with its examples in a plate named ``plate_name``.
        guide: a NumPyro guide for it, with the same plate.
        params: values for the ``numpyro.param`` sites (constrained, as returned
            by ``SVI.get_params``) and, where the model has them, the mutable
            states (``numpyro.mutable``, e.g. from ``nnx_module``).
        batch: keyword arrays ``{name: (batch, ...)}`` for the model and guide.
        key: a PRNG key.
        plate_name: the plate over examples.

    Returns:
        ``(batch,)`` log weights.

    Raises:
        ValueError: if no sample site of the model is in the plate, a latent
            site of the model is missing from the guide, or the plate does not
            span the batch.
    """
    arrays = {name: jnp.asarray(value) for name, value in batch.items()}
    size = next(iter(arrays.values())).shape[0]
    guide_key, model_key = jax.random.split(key)
    substituted = dict(params)
    guide_trace = handlers.trace(
        handlers.seed(handlers.substitute(guide, data=substituted), guide_key)
    ).get_trace(**arrays)
    model_trace = handlers.trace(
        handlers.seed(
            handlers.substitute(handlers.replay(model, trace=guide_trace), data=substituted),
            model_key,
        )
    ).get_trace(**arrays)
    if not any(
        frame.name == plate_name
        for site in model_trace.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
    ):
        raise ValueError(
            f"no sample site of the model lies in a plate named {plate_name!r}; put the "
            f'examples in numpyro.plate("{plate_name}", x.shape[0]) or pass plate_name'
        )
    total = jnp.zeros((size,))
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        if not site["is_observed"] and name not in guide_trace:
            raise ValueError(
                f"latent site {name!r} of the model is not sampled by the guide; "
                "importance weights need the guide to propose every latent site"
            )
        total = total + _site_per_example(site, size, plate_name)
    for site in guide_trace.values():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if site.get("infer", {}).get("is_auxiliary", False):
            continue
        total = total - _site_per_example(site, size, plate_name)
    return total


@functools.lru_cache(maxsize=16)
def _bounds_function(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    num_samples: int,
    plate_name: str,
) -> Callable[[Mapping[str, ArrayLike], Mapping[str, Array], Array], tuple[Array, Array]]:
    """A jitted ``(params, batch, key) -> (iwae, elbo)``, each ``(batch,)``."""

    def bounds(
        params: Mapping[str, ArrayLike], batch: Mapping[str, Array], key: Array
    ) -> tuple[Array, Array]:
        # Samples in chunks of at most _SAMPLES_PER_VMAP, vectorised within a chunk and
        # looped over chunks; K is padded up to whole chunks and the extra samples dropped.
        chunk = min(num_samples, _SAMPLES_PER_VMAP)
        num_chunks = -(-num_samples // chunk)
        keys = jax.random.split(key, num_chunks * chunk).reshape(num_chunks, chunk, -1)

        def one(sample_key: Array) -> Array:
            return per_example_log_weight(
                model, guide, params, batch, key=sample_key, plate_name=plate_name
            )

        if num_chunks == 1:
            log_weights = jax.vmap(one)(keys[0])
        else:
            log_weights = jax.lax.map(jax.vmap(one), keys)
            log_weights = log_weights.reshape(num_chunks * chunk, -1)[:num_samples]
        iwae = jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)
        return iwae, jnp.mean(log_weights, axis=0)

    return jax.jit(bounds)


def _bounds(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: Mapping[str, ArrayLike],
    data: Mapping[str, ArrayLike],
    seed: int,
    num_samples: int,
    batch_size: int,
    plate_name: str,
) -> tuple[float, float]:
    """(IWAE_K, ELBO) averaged over the examples, computed batch by batch.

    The arguments are those of :func:`iwae_bound`.
    """
    arrays = check_data(data)
    seed = check_seed(seed)
    num_samples = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    n = num_examples(arrays)
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    padded = num_batches * batch_size
    if padded > n:  # repeat the first rows so every batch has one shape (one compilation)
        arrays = {
            name: np.concatenate([array, array[: padded - n]], axis=0)
            for name, array in arrays.items()
        }
    try:
        function = _bounds_function(model, guide, num_samples, plate_name)
    except TypeError:  # unhashable model or guide: no cache
        function = _bounds_function.__wrapped__(model, guide, num_samples, plate_name)
    root = jax.random.PRNGKey(seed)
    iwae_sum = 0.0
    elbo_sum = 0.0
    for index in range(num_batches):
        start = index * batch_size
        batch = {name: jnp.asarray(a[start : start + batch_size]) for name, a in arrays.items()}
        iwae, elbo = function(params, batch, jax.random.fold_in(root, index))
        count = min(batch_size, n - start)
        iwae_sum += float(np.sum(np.asarray(iwae, dtype=np.float64)[:count]))
        elbo_sum += float(np.sum(np.asarray(elbo, dtype=np.float64)[:count]))
    return iwae_sum / n, elbo_sum / n


def iwae_bound(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: Mapping[str, ArrayLike],
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    num_samples: int,
    batch_size: int = 128,
    plate_name: str = DATA_PLATE,
) -> float:
    """The importance-weighted bound IWAE_K, averaged over the examples.

    Args:
        model: a NumPyro model called as ``model(**batch)`` with its examples in
            ``numpyro.plate(plate_name, n)``.
        guide: its guide, called the same way.
        params: ``numpyro.param`` values (constrained, e.g. ``FitResult.params``)
            and any mutable states merged in (``FitResult.params_and_state``).
        data: ``{keyword: (n, ...)}`` arrays sharing the leading axis.
        seed: seeds the importance samples; batch j uses ``fold_in(key, j)``.
        num_samples: K, importance samples per example.
        batch_size: examples evaluated together (bounds memory; a last partial
            batch is padded, so the function compiles once).
        plate_name: the plate over examples.

    Returns:
        (1/n) Σ_i log (1/K) Σ_k p(x_i, z_ik) / q(z_ik | x_i), in nats per example.

    >>> import numpyro, numpyro.distributions as dist
    >>> def model(x):
    ...     with numpyro.plate("data", x.shape[0]):
    ...         z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    ...         numpyro.sample("x", dist.Normal(z, 1.0), obs=x)
    >>> def guide(x):  # the exact posterior N(x/2, 1/2)
    ...     with numpyro.plate("data", x.shape[0]):
    ...         numpyro.sample("z", dist.Normal(x / 2, 0.5**0.5))
    >>> x = np.array([0.0, 2.0])
    >>> exact = float(np.mean(-0.5 * np.log(2 * np.pi * 2) - x**2 / 4))  # log N(x; 0, 2)
    >>> bound = iwae_bound(model, guide, {}, {"x": x}, seed=0, num_samples=3)
    >>> abs(bound - exact) < 1e-5
    True
    """
    return _bounds(model, guide, params, data, seed, num_samples, batch_size, plate_name)[0]


def elbo_per_example(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    params: Mapping[str, ArrayLike],
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    num_samples: int = 1,
    batch_size: int = 128,
    plate_name: str = DATA_PLATE,
) -> float:
    """The evidence lower bound per example, (1/n) Σ_i (1/K) Σ_k log w_ik.

    The K = 1 importance-weighted bound's expectation; ``num_samples`` > 1
    only averages more samples (less Monte Carlo noise), it does not tighten
    the bound. Arguments as for :func:`iwae_bound`.
    """
    return _bounds(model, guide, params, data, seed, num_samples, batch_size, plate_name)[1]
