"""The compression term of the invariant conditional VAE (Moyer et al., NeurIPS 2018).

Moyer et al. learn codes z invariant to a nuisance c by adding to the
conditional VAE's loss λ times the mutual information I(z; x), which bounds
I(z; c) once the decoder p(x | z, c) sees c. Per example its estimate is the
compression term KL[q(z | x) ‖ q(z)], with q(z) the aggregate posterior. Over
a minibatch of B examples with diagonal Gaussian posteriors
q_i = N(μ_i, diag σ_i²), q(z) ≈ (1/B) Σ_j q_j, and because −log is convex
(Jensen), −log((1/B) Σ_j q_j(z)) ≤ (1/B) Σ_j −log q_j(z), so

    KL[q_i ‖ q(z)] ≤ E_{q_i}[log q_i − (1/B) Σ_j log q_j] = (1/B) Σ_j KL(q_i ‖ q_j) =: KL_i,

and averaged over the batch,

    E_x KL[q(z | x) ‖ q(z)] ≤ (1/B²) Σ_i Σ_j KL(q_i ‖ q_j),

the mean of all B² pairwise KLs (the diagonal terms i = j are zero). This is
the corrected bound: the first arXiv version of the paper carried an extra
term, which the NeurIPS version drops; the bound above is what Jensen gives.

**The matrix** (:func:`pairwise_gaussian_kl`), for i, j in the batch,

    K[i, j] = KL(q_i ‖ q_j)
            = ½ Σ_d [σ_id²/σ_jd² + (μ_id − μ_jd)²/σ_jd² − 1 + 2 log σ_jd − 2 log σ_id],

computed with one matrix product and never a (B, B, d) tensor: with
w_j = 1/σ_j² (elementwise),

    Σ_d (σ_id² + μ_id²) w_jd − 2 μ_id μ_jd w_jd  =  [σ_i² + μ_i², −2 μ_i] · [w_j, μ_j w_j],

so K = ½ (P + c_jᵀ − d) + ℓ_jᵀ − ℓ_i with P = [σ² + μ², −2μ] @ [w, μ w]ᵀ
(shape (B, 2d) @ (2d, B)), c_j = Σ_d μ_jd² w_jd and ℓ_i = Σ_d log σ_id.
Time O(B² d), memory O(B² + B d).

**The bound needs no matrix** (:func:`compression_bound_per_example`,
:func:`compression_bound`). Every term of K[i, j] is a product of a function of
i and a function of j, so its row means separate: with, per dimension, the
mean precision h = (1/B) Σ_j w_j, the mean log precision g = (1/B) Σ_j log w_j,
the precision-weighted mean m = Σ_j w_j μ_j / Σ_j w_j, the weighted spread
v = (1/B) Σ_j w_j (μ_j − m)² and r_i = σ_i² h,

    KL_i = (1/B) Σ_j K[i, j] = ½ Σ_d [(r_id − 1 − log r_id) + (log h_d − g_d)
                                      + h_d (μ_id − m_d)² + v_d],

that is KL(q_i ‖ N(m, diag 1/h)) plus a batch constant. Each of the four
brackets is ≥ 0 (x − 1 − log x ≥ 0; log of a mean ≥ mean of logs; squares),
none is a difference of large numbers, and the whole costs O(B d): the bound is
(1/B) Σ_i KL_i. This is what the bound and the factor compute; the matrix is
for looking at individual pairs.

**Numerics.** The KL is unchanged when both distributions are pushed through
the same bijection, so both forms are evaluated in the coordinates
z' = (z − μ_0) / σ_0 of the batch's first posterior (held constant for
differentiation: the value does not depend on the reference, so neither does
the gradient). When every q_i is the same, μ' = 0 and σ' = 1 exactly and every
result is exactly 0. The matrix's expansion cancels terms of size
(μ_i² + μ_j²)/σ_j² to leave (μ_i − μ_j)²/σ_j², so its absolute error in float32
is about 1e-7 · Σ_d [σ_id²/σ_jd² + 1 + ``|log(σ_id²/σ_jd²)|`` +
((μ_id − μ_0d)² + (μ_jd − μ_0d)²)/σ_jd²]: accurate relative to each entry
unless two posteriors nearly coincide inside a widely spread batch. The exact
values are ≥ 0, but round-off can leave either sign, so the matrix is clipped
to ≥ 0 with an exactly zero diagonal, and so is each of the four brackets of
KL_i (``jnp.maximum``, whose gradient is 0 where it clips: only at values that
are 0 up to round-off, minima where the true gradient is 0 too). The matrix
product runs at ``jax.lax.Precision.HIGHEST`` by default: a TF32 or bfloat16
pass (the default float32 matmul on some GPUs and TPUs) would swamp the
cancellation.

**Scaling in a model** (:func:`compression_factor`). A NumPyro model over a
minibatch sums per-example terms, and example i's penalty is λ KL_i. The factor
registers these B terms, −λ KL_i each (shape (B,)), so over the batch it adds
−λ Σ_i KL_i = −λ B · :func:`compression_bound` to the log density. Inside a
``numpyro.plate`` over the batch (at dim −1) the plate's subsample scale N/B
applies to it like to the likelihood; outside any plate it is summed as is.

Checks: ``loc`` and ``scale`` must both be ``(..., B, d)`` with B, d ≥ 1; a
concrete ``scale`` that is ≤ 0 or not finite, or a ``loc`` that is not finite,
raises a ``ValueError`` naming the first offending entry. Traced values
(inside ``jit``, ``grad``, ``vmap``) cannot be checked: invalid ones give NaN
or ±inf silently.

>>> import jax.numpy as jnp
>>> loc = jnp.array([[0.0], [1.0]])
>>> scale = jnp.ones((2, 1))
>>> pairwise_gaussian_kl(loc, scale).tolist()
[[0.0, 0.5], [0.5, 0.0]]
>>> compression_bound_per_example(loc, scale).tolist()
[0.25, 0.25]
>>> float(compression_bound(loc, scale))
0.25
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "compression_bound",
    "compression_bound_per_example",
    "compression_factor",
    "pairwise_gaussian_kl",
]

_HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# checks (shapes always; values only when concrete)


def _as_float(value: ArrayLike) -> Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        array = array.astype(jnp.result_type(float))
    return array


def _first_bad(values: np.ndarray, bad: np.ndarray, name: str) -> str:
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
    return f"{name}{list(index)} = {float(values[index])!r}"


def _check_codes(what: str, loc: ArrayLike, scale: ArrayLike) -> tuple[Array, Array]:
    """``loc`` and ``scale`` as float arrays of one shape ``(..., B, d)``, checked."""
    loc, scale = _as_float(loc), _as_float(scale)
    if loc.ndim < 2 or loc.shape != scale.shape:
        raise ValueError(
            f"{what} expects loc and scale of one shape (..., B, d), got loc "
            f"{tuple(loc.shape)} and scale {tuple(scale.shape)}"
        )
    batch, dim = loc.shape[-2:]
    if batch < 1 or dim < 1:
        raise ValueError(
            f"{what} needs at least one posterior (B >= 1) of at least one dimension "
            f"(d >= 1), got B = {batch}, d = {dim} (loc {tuple(loc.shape)})"
        )
    if not isinstance(loc, jax.core.Tracer):
        values = np.asarray(loc)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"loc must be finite, got {_first_bad(values, bad, 'loc')}")
    if not isinstance(scale, jax.core.Tracer):
        values = np.asarray(scale)
        bad = ~((values > 0) & np.isfinite(values))  # also catches nan
        if bad.any():
            raise ValueError(
                "scale must be a finite positive standard deviation, got "
                f"{_first_bad(values, bad, 'scale')}"
            )
    return loc, scale


def _check_weight(weight: ArrayLike) -> Array:
    weight = _as_float(weight)
    if weight.ndim != 0:
        raise ValueError(f"weight must be a scalar, got shape {tuple(weight.shape)}")
    if not isinstance(weight, jax.core.Tracer):
        value = float(weight)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"weight must be finite and >= 0, got {value!r}")
    return weight


# ---------------------------------------------------------------------------
# the closed forms


def _reference_coordinates(loc: Array, scale: Array) -> tuple[Array, Array]:
    """μ' = (μ − μ_0)/σ_0 and σ' = σ/σ_0 in the first posterior's coordinates (KL-preserving)."""
    reference_loc = jax.lax.stop_gradient(loc[..., :1, :])
    reference_scale = jax.lax.stop_gradient(scale[..., :1, :])
    return (loc - reference_loc) / reference_scale, scale / reference_scale


@partial(jax.jit, static_argnames="precision")  # one compile per shape, not one per operation
def _pairwise(loc: Array, scale: Array, precision: jax.lax.PrecisionLike) -> Array:
    """K without checks; see the module docstring for the expansion."""
    mean, std = _reference_coordinates(loc, scale)
    variance = jnp.square(std)
    weights = 1.0 / variance  # w = 1/σ²
    left = jnp.concatenate([variance + jnp.square(mean), -2.0 * mean], axis=-1)  # (..., B, 2d)
    right = jnp.concatenate([weights, mean * weights], axis=-1)  # (..., B, 2d)
    products = jnp.matmul(left, jnp.swapaxes(right, -1, -2), precision=precision)  # (..., B, B)
    columns = jnp.sum(jnp.square(mean) * weights, axis=-1)  # c_j, (..., B)
    log_scale = jnp.sum(jnp.log(std), axis=-1)  # ℓ_i, (..., B)
    dim = loc.shape[-1]
    kl = (
        0.5 * (products + columns[..., None, :] - dim)
        + log_scale[..., None, :]
        - log_scale[..., :, None]
    )
    diagonal = jnp.eye(loc.shape[-2], dtype=bool)
    return jnp.where(diagonal, jnp.zeros((), kl.dtype), jnp.maximum(kl, 0.0))


@jax.jit
def _per_example(loc: Array, scale: Array) -> Array:
    """KL_i = (1/B) Σ_j K[i, j] in O(B d), without checks; see the module docstring."""
    mean, std = _reference_coordinates(loc, scale)
    variance = jnp.square(std)
    weights = 1.0 / variance  # w_j
    precision = jnp.mean(weights, axis=-2, keepdims=True)  # h, (..., 1, d)
    mean_log_precision = jnp.mean(-2.0 * jnp.log(std), axis=-2, keepdims=True)  # g
    centre = jnp.sum(weights * mean, axis=-2, keepdims=True) / jnp.sum(
        weights, axis=-2, keepdims=True
    )  # m, the precision-weighted mean
    spread = jnp.mean(weights * jnp.square(mean - centre), axis=-2, keepdims=True)  # v
    ratio = variance * precision  # r_i = σ_i² h
    zero = jnp.zeros((), ratio.dtype)
    per_dim = (
        jnp.maximum(ratio - 1.0 - jnp.log(ratio), zero)
        + jnp.maximum(jnp.log(precision) - mean_log_precision, zero)
        + precision * jnp.square(mean - centre)
        + spread
    )
    return 0.5 * jnp.sum(per_dim, axis=-1)


def pairwise_gaussian_kl(
    loc: ArrayLike, scale: ArrayLike, *, precision: jax.lax.PrecisionLike = _HIGHEST
) -> Array:
    """The matrix K[i, j] = KL(q_i ‖ q_j) of a batch of diagonal Gaussians.

    q_i = N(loc[..., i, :], diag scale[..., i, :]²). Computed with one matrix
    product (see the module docstring), clipped to ≥ 0, with an exactly zero
    diagonal. Not symmetric: KL(q_i ‖ q_j) ≠ KL(q_j ‖ q_i) in general. For the
    bound alone, :func:`compression_bound` needs no B × B matrix.

    Args:
        loc: means μ, shape ``(..., B, d)``.
        scale: standard deviations σ (> 0), the same shape.
        precision: of the matrix product; ``HIGHEST`` (the default) keeps
            float32 on accelerators whose default matmul is TF32/bfloat16.

    Returns:
        K, shape ``(..., B, B)``.

    Raises:
        ValueError: the shapes differ or are not ``(..., B, d)`` with B, d ≥ 1;
            a concrete σ ≤ 0 or not finite, or μ not finite.
    """
    loc, scale = _check_codes("pairwise_gaussian_kl", loc, scale)
    return _pairwise(loc, scale, precision=precision)


def compression_bound_per_example(loc: ArrayLike, scale: ArrayLike) -> Array:
    """KL_i = (1/B) Σ_j KL(q_i ‖ q_j): example i's bound on KL[q(z|x_i) ‖ q(z)].

    The row means of :func:`pairwise_gaussian_kl`, in closed form in O(B d)
    time and memory (see the module docstring); each is ≥ 0.

    Args:
        loc: means μ, shape ``(..., B, d)``.
        scale: standard deviations σ (> 0), the same shape.

    Returns:
        KL_i, shape ``(..., B)``.

    Raises:
        ValueError: as :func:`pairwise_gaussian_kl`.
    """
    loc, scale = _check_codes("compression_bound_per_example", loc, scale)
    return _per_example(loc, scale)


def compression_bound(loc: ArrayLike, scale: ArrayLike) -> Array:
    """(1/B²) Σ_i Σ_j KL(q_i ‖ q_j): the minibatch bound on E_x KL[q(z|x) ‖ q(z)].

    The mean of :func:`pairwise_gaussian_kl`, computed as the mean of
    :func:`compression_bound_per_example` in O(B d) without the matrix.

    Args:
        loc: means μ, shape ``(..., B, d)``.
        scale: standard deviations σ (> 0), the same shape.

    Returns:
        The bound (≥ 0), shape ``(...)`` (a scalar for 2-D codes).

    Raises:
        ValueError: as :func:`pairwise_gaussian_kl`.
    """
    loc, scale = _check_codes("compression_bound", loc, scale)
    return jnp.mean(_per_example(loc, scale), axis=-1)


def compression_factor(name: str, loc: ArrayLike, scale: ArrayLike, weight: ArrayLike) -> Array:
    """Registers the penalty −λ · KL_i of each example as ``numpyro.factor(name, ...)``.

    KL_i is :func:`compression_bound_per_example`; the factor's log value has
    shape ``(..., B)`` and adds −λ Σ_i KL_i = −λ B · :func:`compression_bound`
    to the log density (see the module docstring). Call it in the model, where
    the ELBO rewards the log density, with ``loc`` and ``scale`` the encoder's
    outputs for the batch (evaluate the encoder in the model, e.g. under the
    same ``nnx_module`` name as in the guide, which shares its parameters). A
    factor in the guide would enter the ELBO with the opposite sign. Inside a
    ``numpyro.plate`` over the batch (at dim −1) the plate's subsample scale
    N/B applies.

    Args:
        name: the factor site's name.
        loc, scale: the batch's posterior means and standard deviations,
            ``(..., B, d)``.
        weight: λ ≥ 0, a scalar.

    Returns:
        The :func:`compression_bound` (for logging), shape ``(...)``.

    Raises:
        ValueError: as :func:`pairwise_gaussian_kl`; a concrete λ that is
            negative, not finite or not a scalar.

    >>> import jax.numpy as jnp
    >>> from numpyro.infer.util import log_density
    >>> def model():
    ...     compression_factor("compression", jnp.array([[0.0], [1.0]]), jnp.ones((2, 1)), 2.0)
    >>> float(log_density(model, (), {}, {})[0])  # −λ B · bound = −2 · 2 · 0.25
    -1.0
    """
    loc, scale = _check_codes("compression_factor", loc, scale)
    weight = _check_weight(weight)
    per_example = _per_example(loc, scale)
    numpyro.factor(name, -weight * per_example)
    return jnp.mean(per_example, axis=-1)
