"""The latent-transformation model and circular codes of paired_vae.py: the map, the moved
units and the objective against hand computations, the report on a hand-made case, a short
fit, and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numpyro.handlers import seed, substitute, trace
from numpyro.infer.util import log_density

from invppl.datasets import make_paired_shapes
from invppl.infer import fit
from invppl.metrics.disentanglement import mutual_information_gap
from invppl.models.paired_vae import (
    circular_code,
    decode_pairs,
    latent_map,
    make_latent_map_vae,
    make_paired_vae,
    moved_units,
    moved_units_report,
    readout_codes,
)


def test_the_shift_map_moves_exactly_the_masked_units() -> None:
    z1 = jnp.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])
    z2 = jnp.array([[9.0, 9.0, 9.0, 9.0], [-1.0, -1.0, -1.0, -1.0]])
    mask = jnp.array([[False, True, False, True], [True, False, False, False]])
    mapped = np.asarray(latent_map(z1, z2, mask))
    np.testing.assert_array_equal(mapped, [[0.0, 9.0, 2.0, 9.0], [-1.0, 5.0, 6.0, 7.0]])
    shift = jnp.full((2, 4), 0.5)
    moved_by = np.asarray(latent_map(z1, z2, mask, shift)) - np.asarray(z1)
    np.testing.assert_array_equal(moved_by != 0, np.asarray(mask))
    np.testing.assert_allclose(moved_by[np.asarray(mask)], 0.5)


def test_moved_units_are_the_largest_kls_or_those_above_the_midpoint() -> None:
    kl = jnp.array([[0.1, 5.0, 0.2, 3.0], [2.0, 2.0, 2.0, 2.0], [1.0, 0.0, 4.0, 3.9]])
    # top 2: {1, 3}; ties break by position: {0, 1}; {2, 3}
    assert moved_units(kl, 2).tolist() == [
        [False, True, False, True],
        [True, True, False, False],
        [False, False, True, True],
    ]
    # midpoints 2.55, (all equal: none moved), 2.0
    assert moved_units(kl, "adaptive").tolist() == [
        [False, True, False, True],
        [False] * 4,
        [False, False, True, True],
    ]


def _normal_log_density(x, mean, sd) -> float:
    x, mean = np.asarray(x, np.float64), np.asarray(mean, np.float64)
    return float(np.sum(-0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)))


@pytest.mark.parametrize("latent_map_kind", ["shift", "mlp"])
def test_the_objective_is_the_hand_computed_sum_at_fixed_parameters(latent_map_kind) -> None:
    beta, gamma, sd = 2.0, 3.0, 0.5
    lm = make_latent_map_vae(
        (8, 8, 1), 4, seed=0, capacity=1, latent_map=latent_map_kind, gamma=gamma, beta=beta,
        kind="normal", scale=sd, hidden=8, channels=(4,),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x1, x2 = (jnp.asarray(rng.random((3, 8, 8, 1)), jnp.float32) for _ in range(2))
    guide_trace = trace(seed(lm.guide, 1)).get_trace(x1, x2)
    values = {name: site["value"] for name, site in guide_trace.items()}
    model_log_joint, _ = log_density(substitute(lm.model, values), (x1, x2), {}, {})
    # the oracle: every term by hand, from the networks' outputs
    z1, z2, moved = (np.asarray(values[n], np.float64) for n in ("z1", "z2", "moved"))
    assert moved.sum(axis=1).tolist() == [1.0, 1.0, 1.0]
    shift = z2 - z1
    if lm.map_network is not None:
        shift = np.asarray(lm.map_network(jnp.concatenate([values["z1"], values["z2"]], -1)))
    mapped = z1 + moved * shift
    decode = lambda z: jax.nn.sigmoid(lm.decoder(jnp.asarray(z, jnp.float32)))
    by_hand = (
        beta * (_normal_log_density(z1, 0.0, 1.0) + _normal_log_density(z2, 0.0, 1.0))
        + _normal_log_density(x1, decode(z1), sd)
        + _normal_log_density(x2, decode(z2), sd)
        + gamma * _normal_log_density(x2, decode(mapped), sd)
    )
    np.testing.assert_allclose(float(model_log_joint), by_hand, rtol=1e-5)
    # the guide: β log q(z1) + β log q(z2); the Delta mask adds nothing
    guide_log, _ = log_density(substitute(lm.guide, values), (x1, x2), {}, {})
    loc1, sd1 = lm.encoder(x1)
    loc2, sd2 = lm.encoder(x2)
    q = sum(
        float(np.sum(-0.5 * ((z - np.asarray(m)) / np.asarray(s)) ** 2 - np.log(np.asarray(s))))
        - 0.5 * math.log(2 * math.pi) * z.size
        for z, m, s in ((z1, loc1, sd1), (z2, loc2, sd2))
    )
    np.testing.assert_allclose(float(guide_log), beta * q, rtol=1e-5)
    # and the mask is the largest per-dimension KL between the two posteriors
    m1, s1, m2, s2 = (np.asarray(a, np.float64) for a in (loc1, sd1, loc2, sd2))
    kl = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    np.testing.assert_array_equal(np.argmax(moved, axis=1), np.argmax(kl, axis=1))


def test_the_report_counts_moved_units_and_checks_their_factors() -> None:
    # unit 0 encodes factor 1, unit 1 factor 0, unit 2 factor 1, unit 3 nothing
    importance = np.array([[0.1, 0.9], [0.7, 0.0], [0.0, 0.3], [0.001, 0.0]])
    moved = np.array(
        [[True, False, False, False], [True, True, False, False], [False, False, True, True],
         [False, False, False, False], [True, False, True, False]]
    )  # fmt: skip
    changed = np.array([[False, True], [False, True], [False, True], [True, False], [False, True]])
    report = moved_units_report(moved, changed, importance)
    assert report.unit_factor.tolist() == [1, 0, 1, -1]
    # pair 0 right; 1 moves factor 0 too; 2 moves a silent unit; 3 moves nothing; 4 right
    # (two units of the same changed factor)
    assert report.encodes_changed.tolist() == [True, False, False, False, True]
    assert report.num_moved.tolist() == [1, 2, 2, 0, 2]
    assert report.fraction_exact == pytest.approx(0.4)
    assert report.fraction_count == pytest.approx(0.2)


def test_circular_codes_put_pairs_on_the_circle_and_read_out_their_angle() -> None:
    theta = jnp.linspace(-3.0, 3.0, 7)
    radius = jnp.linspace(0.5, 4.0, 7)
    z = jnp.stack([radius * jnp.cos(theta), radius * jnp.sin(theta), theta], axis=1)
    coded = np.asarray(circular_code(z, 1))
    np.testing.assert_allclose(coded[:, 0], np.cos(theta), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(coded[:, 1], np.sin(theta), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(coded[:, 2], np.asarray(theta))
    read = readout_codes(np.asarray(z), 1)
    np.testing.assert_allclose(read, np.stack([theta, theta], 1), rtol=1e-5, atol=1e-6)
    # the decoder sees the direction only: a pair scaled by 3 decodes to the same image
    pvae = make_paired_vae((8, 8, 1), 4, seed=0, num_circular=1, hidden=8, channels=(4,))
    params = {"decoder$params": nnx.to_pure_dict(nnx.state(pvae.decoder, nnx.Param))}
    codes = jnp.array([[0.3, -0.4, 1.0, 2.0]])
    scaled = codes.at[:, :2].multiply(3.0)
    np.testing.assert_allclose(
        decode_pairs(pvae, params, codes), decode_pairs(pvae, params, scaled), rtol=1e-5
    )


def test_an_angle_code_holds_a_periodic_factor_that_a_euclidean_coordinate_folds() -> None:
    # a periodic factor with 8 classes, coded as (cos θ, sin θ): the angle alone holds it
    # (15 bins: no bin edge at 0, where sin(−π) ≈ −1e-16 and sin(0) would be split)
    # all, while either coordinate alone folds θ with −θ (cos) or with π − θ (sin)
    classes = np.tile(np.arange(8), 50)
    theta = 2 * np.pi * classes / 8 - np.pi
    codes = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    factors = np.stack([classes, classes % 2], axis=1)
    euclidean = mutual_information_gap(codes, factors, num_bins=15)
    angle = np.concatenate([readout_codes(codes, 1), np.cos(theta)[:, None]], axis=1)
    circular = mutual_information_gap(angle, factors, num_bins=15)
    entropy = math.log(8)
    np.testing.assert_allclose(circular.mutual_information[0, 0], entropy, rtol=1e-6)
    assert euclidean.mutual_information[:, 0].max() <= math.log(5) + 1e-9  # ≤ 5 distinct values


@pytest.fixture(scope="module")
def pairs():
    return make_paired_shapes(16, seed=0, k=1, size=16, supersample=2)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param({"capacity": 1}, marks=pytest.mark.slow),
        {"capacity": "adaptive", "latent_map": "mlp", "num_circular": 1},
    ],
)
def test_a_short_latent_map_fit_runs_and_improves(pairs, variant) -> None:
    lm = make_latent_map_vae((16, 16, 1), 6, seed=0, hidden=16, channels=(8,), **variant)
    data = {"x1": pairs.images1, "x2": pairs.images2}
    result = fit(lm.model, lm.guide, data, seed=0, num_steps=30, batch_size=8, progress=False)
    losses = np.asarray(result.losses)
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < losses[:5].mean()
    assert ("latent_map$params" in result.params) == (variant.get("latent_map") == "mlp")


def test_bad_latent_map_input_is_named() -> None:
    shape = (16, 16, 1)
    with pytest.raises(ValueError, match=r"capacity must be an integer in 1\.\.4"):
        make_latent_map_vae(shape, 4, seed=0, capacity=0)
    with pytest.raises(ValueError, match=r"capacity must be an integer in 1\.\.4"):
        make_latent_map_vae(shape, 4, seed=0, capacity=5)
    with pytest.raises(TypeError, match="capacity must be"):
        make_latent_map_vae(shape, 4, seed=0, capacity="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_map must be one of"):
        make_latent_map_vae(shape, 4, seed=0, latent_map="affine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma must be a non-negative number"):
        make_latent_map_vae(shape, 4, seed=0, gamma=-1.0)
    with pytest.raises(ValueError, match="circular pairs need latent_dim ≥ 6"):
        make_paired_vae(shape, 4, seed=0, num_circular=3)
    with pytest.raises(ValueError, match="channels must be positive integers"):
        make_latent_map_vae(shape, 4, seed=0, channels=(0,))
    with pytest.raises(ValueError, match="must share their pairs"):
        moved_units_report(np.ones((3, 2), bool), np.ones((4, 2), bool), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"importance must be \(d, f\) = \(2, 2\)"):
        moved_units_report(np.ones((3, 2), bool), np.ones((3, 2), bool), np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        moved_units_report(np.ones((3, 2), bool), np.ones((3, 2), bool), -np.ones((2, 2)))
    with pytest.raises(ValueError, match="codes must be"):
        readout_codes(np.ones((3, 1)), 1)
