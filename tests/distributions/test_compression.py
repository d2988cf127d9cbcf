"""The compression term (Moyer et al., 2018) against a full-covariance Gaussian KL oracle."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpyro import handlers
from numpyro.infer.util import log_density

from invppl.distributions import (
    compression_bound,
    compression_bound_per_example,
    compression_factor,
    pairwise_gaussian_kl,
)
from tests.gaussian_oracle import pairwise_kl_matrix as oracle_matrix

# ---------------------------------------------------------------------------
# test-side oracle (float64 NumPy, one pair at a time)


def float32_error_scale(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The size of the terms K[i, j] is computed from (its float32 round-off is ~1e-7 of this).

    Σ_d [r + 1 + |log r| + ((μ_i − μ_0)² + (μ_j − μ_0)²)/σ_j²] with r = σ_i²/σ_j², in the first
    posterior's coordinates as the implementation computes them (see its module docstring).
    """
    loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
    ratio = (scale[:, None, :] / scale[None, :, :]) ** 2
    centred = (loc - loc[:1]) ** 2
    means = (centred[:, None, :] + centred[None, :, :]) / scale[None, :, :] ** 2
    return (ratio + 1 + np.abs(np.log(ratio)) + means).sum(-1)


def codes(seed: int, batch: int, dim: int, *, log10_scale=(-0.5, 0.5), loc_scale=1.0):
    rng = np.random.default_rng(seed)
    loc = loc_scale * rng.standard_normal((batch, dim))
    scale = 10.0 ** rng.uniform(*log10_scale, size=(batch, dim))
    return loc.astype(np.float32), scale.astype(np.float32)


# ---------------------------------------------------------------------------
# the matrix


def test_matrix_matches_the_pairwise_oracle():
    loc, scale = codes(0, 9, 5)
    out = np.asarray(pairwise_gaussian_kl(loc, scale))
    assert out.shape == (9, 9)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, oracle_matrix(loc, scale), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, out.T)  # KL is not symmetric


@pytest.mark.parametrize("loc_scale", [1e-2, 1.0, 1e2])
def test_matrix_matches_the_oracle_when_badly_scaled(loc_scale):
    # σ spans 1e-2..1e2, so σ_i²/σ_j² spans 1e-8..1e8, and the means spread by loc_scale
    loc, scale = codes(1, 12, 6, log10_scale=(-2, 2), loc_scale=loc_scale)
    loc = loc + np.float32(30.0)  # an offset shared by the batch leaves every KL unchanged
    out = np.asarray(pairwise_gaussian_kl(loc, scale), np.float64)
    expected = oracle_matrix(loc, scale)
    assert expected.max() > 1e5  # badly scaled indeed
    error = np.abs(out - expected)
    # float32 round-off of the terms that cancel (eps ≈ 1.2e-7), with headroom
    assert np.all(error <= 1e-5 * float32_error_scale(loc, scale)), error.max()
    # relative to each entry, off the diagonal
    off = ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(out[off], expected[off], rtol=1e-4)


@pytest.mark.parametrize(("log10_scale", "loc_scale"), [((-0.5, 0.5), 1.0), ((-2, 2), 1e2)])
def test_bound_and_row_means_match_the_oracle_without_a_matrix(log10_scale, loc_scale):
    loc, scale = codes(10, 12, 6, log10_scale=log10_scale, loc_scale=loc_scale)
    loc = loc - np.float32(30.0)
    expected = oracle_matrix(loc, scale)
    rows = np.asarray(compression_bound_per_example(loc, scale))
    assert rows.shape == (12,)
    # no cancellation in the separable form: relative accuracy whatever the scaling
    np.testing.assert_allclose(rows, expected.mean(axis=1), rtol=1e-5)
    assert float(compression_bound(loc, scale)) == pytest.approx(expected.mean(), rel=1e-5)
    assert float(compression_bound(loc, scale)) == pytest.approx(
        float(np.asarray(pairwise_gaussian_kl(loc, scale)).mean()), rel=1e-4
    )


def test_diagonal_is_zero_and_identical_posteriors_give_exactly_zero():
    loc, scale = codes(2, 7, 4, log10_scale=(-2, 2), loc_scale=50.0)
    out = np.asarray(pairwise_gaussian_kl(loc, scale))
    np.testing.assert_array_equal(np.diag(out), 0.0)
    assert np.all(out[~np.eye(7, dtype=bool)] > 0)
    same_loc = np.broadcast_to(loc[3], loc.shape)
    same_scale = np.broadcast_to(scale[3], scale.shape)
    np.testing.assert_array_equal(np.asarray(pairwise_gaussian_kl(same_loc, same_scale)), 0.0)
    np.testing.assert_array_equal(
        np.asarray(compression_bound_per_example(same_loc, same_scale)), 0.0
    )
    assert float(compression_bound(same_loc, same_scale)) == 0.0
    # a single posterior
    assert float(compression_bound(loc[:1], scale[:1])) == 0.0


def test_bound_is_the_mean_and_leading_axes_are_batches():
    loc, scale = codes(3, 6, 3)
    matrix = np.asarray(pairwise_gaussian_kl(loc, scale))
    assert float(compression_bound(loc, scale)) == pytest.approx(matrix.mean(), rel=1e-6)
    stacked_loc = np.stack([loc, 2 * loc, loc[::-1]])[None]  # (1, 3, 6, 3)
    stacked_scale = np.stack([scale, scale, scale[::-1]])[None]
    batched = np.asarray(pairwise_gaussian_kl(stacked_loc, stacked_scale))
    assert batched.shape == (1, 3, 6, 6)
    for k in range(3):
        np.testing.assert_allclose(
            batched[0, k],
            np.asarray(pairwise_gaussian_kl(stacked_loc[0, k], stacked_scale[0, k])),
            rtol=1e-6,
            atol=1e-6,
        )
    bounds = np.asarray(compression_bound(stacked_loc, stacked_scale))
    assert bounds.shape == (1, 3)
    np.testing.assert_allclose(bounds, batched.mean(axis=(-2, -1)), rtol=1e-5)
    assert compression_bound_per_example(stacked_loc, stacked_scale).shape == (1, 3, 6)


def _has_shape(jaxpr, shape) -> bool:
    for equation in jaxpr.eqns:
        if any(getattr(v.aval, "shape", None) == shape for v in equation.outvars):
            return True
        for param in equation.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None and _has_shape(getattr(inner, "jaxpr", inner), shape):
                return True
    return False


def test_no_batch_by_batch_by_dim_tensor_is_built():
    loc, scale = jnp.asarray(codes(4, 7, 5)[0]), jnp.asarray(codes(4, 7, 5)[1])
    matrix_sum = jax.value_and_grad(lambda a, b: pairwise_gaussian_kl(a, b).sum(), argnums=(0, 1))
    jaxpr = jax.make_jaxpr(matrix_sum)(loc, scale)
    assert not _has_shape(jaxpr.jaxpr, (7, 7, 5))
    assert _has_shape(jaxpr.jaxpr, (7, 7))  # the matrix itself is there
    # the bound builds no B x B matrix at all
    bound = jax.make_jaxpr(jax.value_and_grad(compression_bound, argnums=(0, 1)))(loc, scale)
    assert not _has_shape(bound.jaxpr, (7, 7, 5))
    assert not _has_shape(bound.jaxpr, (7, 7))
    # the naive broadcast form would be caught
    naive = jax.make_jaxpr(lambda a, b: (a[:, None] - b[None]).sum())(loc, loc)
    assert _has_shape(naive.jaxpr, (7, 7, 5))


@jax.jit
def _matrix_and_bounds(loc, scale):
    return (
        pairwise_gaussian_kl(loc, scale),
        compression_bound_per_example(loc, scale),
        compression_bound(loc, scale),
    )


@given(  # few shapes (each compiles once), many values
    data=hnp.arrays(
        np.float64,
        st.tuples(st.sampled_from([1, 5]), st.sampled_from([1, 3]), st.just(2)),
        elements=st.floats(-3, 3),
    ),
    duplicate=st.booleans(),
    spread=st.sampled_from([1e-3, 1.0, 1e2]),
)
def test_entries_and_bound_are_nonnegative(data, duplicate, spread):
    loc = (spread * data[..., 0]).astype(np.float32)
    scale = (10.0 ** data[..., 1]).astype(np.float32)
    if duplicate:  # near-copies, where round-off of either sign is most likely
        loc = np.concatenate([loc, loc * np.float32(1 + 1e-7)])
        scale = np.concatenate([scale, scale])
    matrix, rows, bound = _matrix_and_bounds(loc, scale)
    matrix = np.asarray(matrix)
    assert np.all(matrix >= 0)
    np.testing.assert_array_equal(np.diag(matrix), 0.0)
    assert np.all(np.asarray(rows) >= 0)
    assert float(bound) >= 0


# ---------------------------------------------------------------------------
# jit and grad


def test_jit_matches_eager():
    loc, scale = codes(5, 8, 4)
    np.testing.assert_allclose(  # fusion may round differently
        np.asarray(jax.jit(pairwise_gaussian_kl)(loc, scale)),
        np.asarray(pairwise_gaussian_kl(loc, scale)),
        rtol=1e-6,
    )


def _central_differences(function, loc, scale, step=1e-6):
    """∂function/∂loc and ∂function/∂scale by central differences in float64."""
    arrays = [loc.astype(np.float64), scale.astype(np.float64)]
    grads = [np.zeros_like(a) for a in arrays]
    for which, array in enumerate(arrays):
        for index in np.ndindex(array.shape):
            up, down = [a.copy() for a in arrays], [a.copy() for a in arrays]
            up[which][index] += step
            down[which][index] -= step
            grads[which][index] = (function(*up) - function(*down)) / (2 * step)
    return grads


@pytest.mark.parametrize("target", ["bound", "matrix"])
def test_grad_matches_finite_differences_of_the_oracle(target):
    loc, scale = codes(6, 4, 3)
    # random weights on the entries, so that every entry's gradient counts
    weights = np.random.default_rng(11).uniform(0.5, 1.5, (4, 4))
    if target == "bound":
        ours = compression_bound

        def theirs(loc, scale):
            return oracle_matrix(loc, scale).mean()
    else:

        def ours(loc, scale):
            return jnp.sum(weights * pairwise_gaussian_kl(loc, scale))

        def theirs(loc, scale):
            return np.sum(weights * oracle_matrix(loc, scale))

    grad_loc, grad_scale = jax.jit(jax.grad(ours, argnums=(0, 1)))(loc, scale)
    expected_loc, expected_scale = _central_differences(theirs, loc, scale)
    # the first row is the implementation's reference point; its gradient is still exact
    np.testing.assert_allclose(np.asarray(grad_loc), expected_loc, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_scale), expected_scale, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# the NumPyro factor


def test_factor_adds_minus_weight_times_batch_times_bound():
    loc, scale = codes(7, 10, 3)
    weight = 2.5

    def model():
        numpyro.sample("z", numpyro.distributions.Normal(0.0, 1.0))
        return compression_factor("compression", loc, scale, weight)

    def baseline():
        numpyro.sample("z", numpyro.distributions.Normal(0.0, 1.0))

    with_factor, trace = log_density(model, (), {}, {"z": 0.3})
    without, _ = log_density(baseline, (), {}, {"z": 0.3})
    bound = float(compression_bound(loc, scale))
    assert bound > 0
    assert float(with_factor - without) == pytest.approx(-weight * 10 * bound, rel=1e-5)
    site = trace["compression"]
    assert site["fn"].batch_shape == (10,)  # one term per example
    assert float(handlers.seed(model, 0)()) == pytest.approx(bound, rel=1e-6)


def test_factor_inside_a_subsampled_plate_is_scaled_to_the_data_set():
    loc, scale = codes(8, 8, 3)

    def model():
        with numpyro.plate("data", 100, subsample_size=8):
            compression_factor("compression", loc, scale, 0.5)

    value, _ = log_density(handlers.seed(model, 0), (), {}, {})
    bound = float(compression_bound(loc, scale))
    # (N / B) Σ_i −λ KL_i = −λ N · bound
    assert float(value) == pytest.approx(-0.5 * 100 * bound, rel=1e-5)


def test_factor_with_zero_weight_or_traced_weight():
    loc, scale = codes(9, 5, 2)

    def model(weight):
        compression_factor("compression", loc, scale, weight)

    assert float(log_density(model, (0.0,), {}, {})[0]) == 0.0
    traced = jax.jit(lambda w: log_density(model, (w,), {}, {})[0])(1.5)
    expected = -1.5 * 5 * float(compression_bound(loc, scale))
    assert float(traced) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("loc_shape", "scale_shape", "message"),
    [
        ((5,), (5,), "loc (5,) and scale (5,)"),
        ((4, 3), (4, 2), "loc (4, 3) and scale (4, 2)"),
        ((4, 3), (3,), "loc (4, 3) and scale (3,)"),
        ((0, 3), (0, 3), "B = 0, d = 3"),
        ((4, 0), (4, 0), "B = 4, d = 0"),
    ],
)
def test_bad_shapes_raise(loc_shape, scale_shape, message):
    for function in (pairwise_gaussian_kl, compression_bound, compression_bound_per_example):
        with pytest.raises(ValueError, match=re.escape(message)):
            function(np.zeros(loc_shape), np.ones(scale_shape))
    with pytest.raises(ValueError, match=re.escape(message)):
        compression_factor("c", np.zeros(loc_shape), np.ones(scale_shape), 1.0)


@pytest.mark.parametrize(
    ("which", "bad", "message"),
    [
        ("scale", 0.0, r"scale\[1, 2\] = 0.0"),
        ("scale", -1.0, r"scale\[1, 2\] = -1.0"),
        ("scale", float("nan"), r"scale\[1, 2\] = nan"),
        ("scale", float("inf"), r"scale\[1, 2\] = inf"),
        ("loc", float("nan"), r"loc must be finite, got loc\[1, 2\] = nan"),
        ("loc", float("-inf"), r"loc\[1, 2\] = -inf"),
    ],
)
def test_bad_values_raise(which, bad, message):
    arrays = {"loc": np.zeros((3, 4)), "scale": np.ones((3, 4))}
    arrays[which][1, 2] = bad
    with pytest.raises(ValueError, match=message):
        pairwise_gaussian_kl(arrays["loc"], arrays["scale"])
    with pytest.raises(ValueError, match=message):
        compression_bound(arrays["loc"], arrays["scale"])
    with pytest.raises(ValueError, match=message):
        compression_factor("c", arrays["loc"], arrays["scale"], 1.0)


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (-1.0, "got -1.0"),
        (float("nan"), "got nan"),
        (float("inf"), "got inf"),
        (np.ones(2), r"shape \(2,\)"),
    ],
)
def test_bad_weight_raises(weight, message):
    with pytest.raises(ValueError, match=f"weight must .*{message}"):
        compression_factor("c", np.zeros((2, 3)), np.ones((2, 3)), weight)


def test_traced_bad_values_are_not_checked():
    loc = jnp.zeros((2, 3))
    scale = jnp.ones((2, 3)).at[1, 0].set(0.0)
    assert not np.all(np.isfinite(np.asarray(jax.jit(pairwise_gaussian_kl)(loc, scale))))
    assert not np.isfinite(float(jax.jit(compression_bound)(loc, scale)))
