"""The invariant conditional VAE: its β and λ terms against closed forms, invariance, bad input."""

import jax
import numpy as np
import optax
import pytest
from numpyro import handlers
from numpyro.infer import SVI, TraceMeanField_ELBO

from invppl.infer import fit
from invppl.metrics.adversary import adversary_accuracy
from invppl.models import make_invariant_vae
from tests.gaussian_oracle import pairwise_kl_matrix

D, LATENT, B = 6, 3, 10


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(B, D)).astype(np.float32),
        "c": rng.integers(0, 3, B).astype(np.int32),
        "y": rng.integers(0, 2, B).astype(np.int32),
    }


def _loss(ivae, params, batch, key=0):
    return float(
        TraceMeanField_ELBO().loss(jax.random.key(key), params, ivae.model, ivae.guide, **batch)
    )


def _params(ivae, batch):
    svi = SVI(ivae.model, ivae.guide, optax.adam(1e-3), TraceMeanField_ELBO())
    return svi.get_params(svi.init(jax.random.key(1), **batch))


def _build(**kwargs):
    settings = {"seed": 0, "num_categories": 3, "num_classes": 2, "hidden": (16,)}
    return make_invariant_vae((D,), LATENT, **{**settings, **kwargs})


def test_beta_weights_the_kl_to_the_prior(batch) -> None:
    plain, heavy = _build(beta=1.0), _build(beta=3.0)
    params = _params(plain, batch)
    loc, sd = (np.asarray(a, np.float64) for a in plain.encode(params, batch["x"]))
    kl = 0.5 * (sd**2 + loc**2 - 1 - 2 * np.log(sd)).sum()
    difference = _loss(heavy, params, batch) - _loss(plain, params, batch)
    assert difference == pytest.approx(2.0 * kl, rel=1e-4)


def test_compression_adds_lambda_times_the_summed_pairwise_kl(batch) -> None:
    free, compressed = _build(compression=0.0), _build(compression=2.5)
    params = _params(free, batch)
    loc, sd = (np.asarray(a, np.float64) for a in free.encode(params, batch["x"]))
    bound = pairwise_kl_matrix(loc, sd).mean()
    difference = _loss(compressed, params, batch) - _loss(free, params, batch)
    assert difference == pytest.approx(2.5 * B * bound, rel=1e-4)


def test_decoder_sees_c_and_the_encoder_does_not(batch) -> None:
    ivae = _build()
    params = _params(ivae, batch)
    loc, _ = ivae.encode(params, batch["x"])
    shifted = ivae.decode(params, loc, (batch["c"] + 1) % 3)
    same = ivae.decode(params, loc, batch["c"])
    assert not np.allclose(shifted, same)
    assert shifted.shape == (B, D)
    other = {**batch, "c": (batch["c"] + 1) % 3}
    np.testing.assert_array_equal(
        _params(ivae, other)["encoder$params"]["head"]["loc"]["bias"],
        params["encoder$params"]["head"]["loc"]["bias"],
    )


def test_large_compression_hides_c_from_an_adversary() -> None:
    """c is written into x: a VAE's codes give it away, the invariant VAE's (large λ) do not."""
    rng = np.random.default_rng(0)
    n = 600
    c = (rng.random(n) < 0.7).astype(np.int32)  # majority rate 0.7
    signal = rng.normal(size=(n, 2))
    x = np.concatenate(
        [signal, 3.0 * c[:, None] + 0.3 * rng.normal(size=(n, 3)), rng.normal(size=(n, 1))], 1
    ).astype(np.float32)
    accuracy = {}
    for compression in (0.0, 20.0):
        categories = None if compression == 0.0 else 2  # the baseline: a plain VAE
        ivae = make_invariant_vae(
            (6,), 2, seed=0, num_categories=categories, compression=compression, hidden=(32,)
        )
        result = fit(
            ivae.model,
            ivae.guide,
            ivae.data(x, None if categories is None else c),
            seed=0,
            num_steps=600,
            batch_size=100,
            optimizer=optax.adam(5e-3),
            loss=TraceMeanField_ELBO(),
            progress=False,
        )
        loc, _ = ivae.encode(result.params, x)
        report = adversary_accuracy(
            np.asarray(loc), c, seed=0, models=("logistic", "mlp1"), hidden=16
        )
        accuracy[compression] = (report.best_accuracy, report.majority_rate)
    assert accuracy[0.0][0] > 0.9
    best, majority = accuracy[20.0]
    assert best < majority + 0.08, accuracy


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"c": np.zeros(B - 1, np.int32)}, "one row per example"),
        ({"c": np.full(B, 5, np.int32)}, "unseen in training"),
        ({"x": np.full((B, D), np.nan, np.float32)}, "NaN"),
        ({"c": np.zeros(B)}, "integer categories"),
        ({"y": np.full(B, 2)}, "0..1"),
    ],
)
def test_bad_input_is_refused_before_fitting(batch, arguments, message) -> None:
    ivae = _build()
    with pytest.raises(ValueError, match=message):
        ivae.data(**{**batch, **arguments})


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="num_categories"):
        make_invariant_vae((D,), 2, seed=0, num_categories=2, condition_dim=3)
    with pytest.raises(ValueError, match="compression"):
        make_invariant_vae((D,), 2, seed=0, compression=-1.0)
    with pytest.raises(ValueError, match="kind"):
        make_invariant_vae((D,), 2, seed=0, kind="poisson")  # type: ignore[arg-type]


def test_a_continuous_condition_enters_the_decoder() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, D)).astype(np.float32)
    c = rng.normal(size=(B, 2)).astype(np.float32)
    ivae = make_invariant_vae((D,), LATENT, seed=0, condition_dim=2, hidden=(16,))
    arrays = ivae.data(x, c)
    params = _params(ivae, arrays)
    loc, _ = ivae.encode(params, x)
    assert not np.allclose(ivae.decode(params, loc, c), ivae.decode(params, loc, c + 1.0))
    assert np.isfinite(_loss(ivae, params, arrays))
    with pytest.raises(ValueError, match="NaN"):
        ivae.data(x, np.where(np.eye(B, 2, dtype=bool), np.nan, c))
    with pytest.raises(ValueError, match="2 values per example"):
        ivae.data(x, rng.normal(size=(B, 3)))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        # a (B, 1) y used to broadcast against the head's (B,) batch into a (B, B) density
        ({"y": np.zeros((B, 1), np.int32)}, r"y must have shape \(B,\) = \(10,\), got \(10, 1\)"),
        ({"y": np.zeros(B - 1, np.int32)}, r"y must have shape \(B,\) = \(10,\), got \(9,\)"),
        ({"c": np.zeros((B, 1), np.int32)}, r"c must be \(B,\) categories for a batch of B = 10"),
        ({"c": np.zeros(B - 1, np.int32)}, r"c must be \(B,\) categories .* got shape \(9,\)"),
    ],
)
def test_the_model_refuses_rows_that_do_not_match_x(batch, arguments, message) -> None:
    ivae = _build()
    with pytest.raises(ValueError, match=message), handlers.seed(rng_seed=0):
        ivae.model(**{**batch, **arguments})


def test_encode_and_decode_refuse_another_layout(batch) -> None:
    ivae = make_invariant_vae((2, 3), LATENT, seed=0, num_categories=3, hidden=(16,))
    arrays = {**batch, "x": batch["x"].reshape(B, 2, 3)}
    params = _params(ivae, arrays)
    # (B, 3, 2) holds as many values per row as (B, 2, 3) and used to be flattened silently
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2, 3\), got \(10, 3, 2\)"):
        ivae.encode(params, batch["x"].reshape(B, 3, 2))
    loc, _ = ivae.encode(params, arrays["x"])
    assert loc.shape == (B, LATENT)
    with pytest.raises(ValueError, match=r"z must have shape \(n, 3\), got \(3,\)"):
        ivae.decode(params, loc[0], None)
    assert ivae.decode(params, loc, batch["c"]).shape == (B, 2, 3)
