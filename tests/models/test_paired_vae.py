"""Paired VAEs: the adaptive threshold and the averaging against hand computations, the
guide's posteriors against the encoder's, the true-k masks, a short fit, and bad input."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import Normal, kl_divergence
from numpyro.handlers import seed, trace

from invppl.datasets import make_paired_shapes
from invppl.distributions.likelihood import KINDS
from invppl.infer import fit
from invppl.models.paired_vae import (
    adaptive_shared,
    aggregate_posteriors,
    known_shared,
    make_latent_map_vae,
    make_paired_vae,
    per_dimension_kl,
)


def test_per_dimension_kl_is_the_gaussian_kl() -> None:
    loc1, scale1 = jnp.array([[0.0, 1.0, -2.0]]), jnp.array([[1.0, 0.5, 2.0]])
    loc2, scale2 = jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[1.0, 1.0, 0.5]])
    kl = per_dimension_kl(loc1, scale1, loc2, scale2)
    # by hand: log(σ2/σ1) + (σ1² + (μ1 − μ2)²) / (2 σ2²) − 1/2
    by_hand = [0.5, math.log(2) + 0.25 / 2 - 0.5, math.log(0.25) + (4 + 4) / 0.5 - 0.5]
    np.testing.assert_allclose(kl[0], by_hand, rtol=1e-6)
    np.testing.assert_allclose(
        kl, kl_divergence(Normal(loc1, scale1), Normal(loc2, scale2)), rtol=1e-6
    )


def test_the_adaptive_threshold_is_the_midpoint_of_the_kls() -> None:
    kl = jnp.array([[0.1, 5.0, 0.2, 3.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 4.0]])
    # row 0: τ = 2.55, shares 0.1 and 0.2; row 1: all equal, all shared; row 2: τ = 2
    expected = [[True, False, True, False], [True] * 4, [True, True, True, False]]
    assert adaptive_shared(kl).tolist() == expected


def test_gvae_and_mlvae_average_only_the_shared_dimensions() -> None:
    loc1, scale1 = jnp.array([[0.0, 2.0]]), jnp.array([[1.0, 1.0]])
    loc2, scale2 = jnp.array([[2.0, 0.0]]), jnp.array([[math.sqrt(3.0), 1.0]])
    shared = jnp.array([[True, False]])
    (l1, s1), (l2, s2) = aggregate_posteriors(loc1, scale1, loc2, scale2, shared, "gvae")
    # GVAE on dimension 0: mean (0 + 2) / 2 = 1, variance (1 + 3) / 2 = 2
    np.testing.assert_allclose(l1, [[1.0, 2.0]])
    np.testing.assert_allclose(l2, [[1.0, 0.0]])
    np.testing.assert_allclose(s1, [[math.sqrt(2.0), 1.0]], rtol=1e-6)
    np.testing.assert_allclose(s2, [[math.sqrt(2.0), 1.0]], rtol=1e-6)
    (l1, s1), (l2, s2) = aggregate_posteriors(loc1, scale1, loc2, scale2, shared, "mlvae")
    # product of N(0, 1) and N(2, 3): variance 1·3 / (1 + 3) = 3/4, mean 3/4 · (0 + 2/3) = 1/2
    np.testing.assert_allclose(l1, [[0.5, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(s2, [[math.sqrt(0.75), 1.0]], rtol=1e-6)
    (l1, s1), (l2, s2) = aggregate_posteriors(loc1, scale1, loc2, scale2, shared, "none")
    np.testing.assert_array_equal(l2, loc2)


def test_known_shared_follows_the_changed_factors() -> None:
    changed = jnp.array([[False, True, False], [True, True, False]])
    assert known_shared(changed, 5).tolist() == [
        [True, False, True, True, True],
        [False, False, True, True, True],
    ]


@pytest.fixture(scope="module")
def pairs():
    return make_paired_shapes(16, seed=0, k=1, size=16, supersample=2)


@pytest.mark.parametrize("aggregation", ["gvae", "mlvae"])
def test_the_guide_aggregates_the_encoders_posteriors(pairs, aggregation) -> None:
    pvae = make_paired_vae((16, 16, 1), 6, seed=0, aggregation=aggregation, hidden=16)
    x1, x2 = jnp.asarray(pairs.images1[:4]), jnp.asarray(pairs.images2[:4])
    guide_trace = trace(seed(pvae.guide, 0)).get_trace(x1, x2)
    loc1, scale1 = pvae.encoder(x1)
    loc2, scale2 = pvae.encoder(x2)
    # the oracle, in NumPy: threshold and aggregate by hand from the encoder's outputs
    m1, s1, m2, s2 = (np.asarray(a, dtype=np.float64) for a in (loc1, scale1, loc2, scale2))
    kl = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    shared = kl < 0.5 * (kl.min(1, keepdims=True) + kl.max(1, keepdims=True))
    if aggregation == "gvae":
        mean, var = (m1 + m2) / 2, (s1**2 + s2**2) / 2
    else:
        var = s1**2 * s2**2 / (s1**2 + s2**2)
        mean = var * (m1 / s1**2 + m2 / s2**2)
    q1, q2 = guide_trace["z1"]["fn"].base_dist, guide_trace["z2"]["fn"].base_dist
    np.testing.assert_allclose(q1.loc, np.where(shared, mean, m1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(q2.scale, np.where(shared, np.sqrt(var), s2), rtol=1e-4, atol=1e-6)
    assert shared.any(axis=1).all()
    assert (~shared).any(axis=1).all()


def test_identical_images_share_every_dimension(pairs) -> None:
    pvae = make_paired_vae((16, 16, 1), 4, seed=1, hidden=16)
    x = jnp.asarray(pairs.images1[:3])
    guide_trace = trace(seed(pvae.guide, 0)).get_trace(x, x)
    loc, _ = pvae.encoder(x)
    np.testing.assert_allclose(guide_trace["z1"]["fn"].base_dist.loc, loc, rtol=1e-6)
    np.testing.assert_allclose(guide_trace["z2"]["fn"].base_dist.loc, loc, rtol=1e-6)


def test_the_true_k_variant_keeps_the_changed_dimensions_apart(pairs) -> None:
    pvae = make_paired_vae((16, 16, 1), 7, seed=0, num_factors=5, hidden=16)
    x1, x2 = jnp.asarray(pairs.images1[:4]), jnp.asarray(pairs.images2[:4])
    changed = jnp.asarray(pairs.changed[:4])
    guide_trace = trace(seed(pvae.guide, 0)).get_trace(x1, x2, changed)
    loc1, _ = pvae.encoder(x1)
    loc2, _ = pvae.encoder(x2)
    q1, q2 = guide_trace["z1"]["fn"].base_dist, guide_trace["z2"]["fn"].base_dist
    kept = np.concatenate([np.asarray(pairs.changed[:4]), np.zeros((4, 2), bool)], axis=1)
    np.testing.assert_allclose(np.asarray(q1.loc)[kept], np.asarray(loc1)[kept], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(q2.loc)[kept], np.asarray(loc2)[kept], rtol=1e-6)
    np.testing.assert_allclose(q1.loc[~kept], q2.loc[~kept], rtol=1e-6)


@pytest.mark.parametrize(
    "variant", [{"aggregation": "none"}, {"aggregation": "gvae"}, {"num_factors": 5}]
)
def test_a_short_fit_runs_and_improves(pairs, variant) -> None:
    pvae = make_paired_vae((16, 16, 1), 6, seed=0, hidden=16, **variant)
    data = {"x1": pairs.images1, "x2": pairs.images2}
    if "num_factors" in variant:
        data["changed"] = pairs.changed
    result = fit(pvae.model, pvae.guide, data, seed=0, num_steps=30, batch_size=8, progress=False)
    losses = np.asarray(result.losses)
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean()


def test_bad_input_is_named_before_any_step(pairs) -> None:
    with pytest.raises(ValueError, match="latent_dim 3 is smaller than num_factors 5"):
        make_paired_vae((16, 16, 1), 3, seed=0, num_factors=5)
    with pytest.raises(ValueError, match="aggregation must be one of"):
        make_paired_vae((16, 16, 1), 3, seed=0, aggregation="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs aggregation 'gvae' or 'mlvae'"):
        make_paired_vae((16, 16, 1), 6, seed=0, aggregation="none", num_factors=5)
    with pytest.raises(ValueError, match="beta must be a positive number"):
        make_paired_vae((16, 16, 1), 6, seed=0, beta=0.0)
    pvae = make_paired_vae((16, 16, 1), 6, seed=0, hidden=16)
    small = pairs.images2[:, :8, :8]
    with pytest.raises(ValueError, match="x1 and x2 must be image batches of one shape"):
        fit(
            pvae.model,
            pvae.guide,
            {"x1": pairs.images1, "x2": small},
            seed=0,
            num_steps=1,
            batch_size=4,
            progress=False,
        )
    true_k = make_paired_vae((16, 16, 1), 6, seed=0, num_factors=5, hidden=16)
    with pytest.raises(ValueError, match="needs changed of shape"):
        fit(
            true_k.model,
            true_k.guide,
            {"x1": pairs.images1, "x2": pairs.images2},
            seed=0,
            num_steps=1,
            batch_size=4,
            progress=False,
        )
    bad = np.array(pairs.images1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(
            pvae.model,
            pvae.guide,
            {"x1": bad, "x2": pairs.images2},
            seed=0,
            num_steps=1,
            batch_size=4,
            progress=False,
        )


@pytest.mark.parametrize("make", [make_paired_vae, make_latent_map_vae])
def test_an_unknown_likelihood_is_refused_listing_the_valid_ones(make) -> None:
    with pytest.raises(ValueError, match="unknown likelihood kind 'gaussian'") as error:
        make((16, 16, 1), 6, seed=0, hidden=16, kind="gaussian")
    for kind in KINDS:
        assert repr(kind) in str(error.value)
