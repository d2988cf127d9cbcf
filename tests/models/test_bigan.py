"""BiGAN: the losses by hand, the discriminator's optimum, and the adversarial loop.

The loop (:func:`invppl.infer.fit_adversarial`) is checked on a tiny MLP BiGAN:
reproducible from its seed, resumed from a checkpoint to the same bits, one
compilation of its step, a NaN stop with a message, and bad input refused
before any work.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from invppl.infer import adversarial, fit_adversarial
from invppl.models.bigan import (
    Discriminator,
    bigan_value,
    discriminator_loss,
    from_modules,
    generator_encoder_loss,
    make_bigan,
    real_gradient_penalty,
    reconstruct,
)

# ---------------------------------------------------------------- the losses by hand


def _tiny_bigan(non_saturating: bool = True, gradient_penalty: float = 0.0):
    """Latent 1, data 2: linear G (then sigmoid) and E; D = linear over [leaky_relu(Ax + a), z]."""
    rngs = nnx.Rngs(0)
    discriminator = Discriminator(nnx.Linear(2, 2, rngs=rngs), 2, 1, (), rngs=rngs)
    bigan = from_modules(
        nnx.Linear(1, 2, rngs=rngs),
        nnx.Linear(2, 1, rngs=rngs),
        discriminator,
        (2,),
        1,
        non_saturating=non_saturating,
        gradient_penalty=gradient_penalty,
    )
    d = jax.tree.map(lambda leaf: leaf, bigan.initial["discriminator"])  # a copy, set by hand
    d["features"] = {"kernel": jnp.array([[1.0, -0.5], [0.25, 2.0]]), "bias": jnp.array([0.1, -1])}
    d["joint"]["out"] = {"kernel": jnp.array([[0.7], [-1.2], [0.4]]), "bias": jnp.array([0.3])}
    players = {
        "generator": {"kernel": jnp.array([[1.5, -2.0]]), "bias": jnp.array([0.2, 0.1])},
        "encoder": {"kernel": jnp.array([[0.5], [-1.0]]), "bias": jnp.array([0.05])},
    }
    return bigan, d, players


def _by_hand(d, players, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logits d(x, E(x)) and d(G(z), z) in NumPy, float64."""
    d, players = jax.tree.map(lambda a: np.asarray(a, np.float64), (d, players))

    def logit(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        h = x @ d["features"]["kernel"] + d["features"]["bias"]
        h = np.where(h > 0, h, 0.01 * h)  # leaky ReLU, slope 0.01
        joint = np.concatenate([h, z], axis=1)
        return (joint @ d["joint"]["out"]["kernel"] + d["joint"]["out"]["bias"])[:, 0]

    encoded = x @ players["encoder"]["kernel"] + players["encoder"]["bias"]
    generated = 1 / (
        1 + np.exp(-(z @ players["generator"]["kernel"] + players["generator"]["bias"]))
    )
    return logit(x, encoded), logit(generated, z)


def test_the_losses_are_the_equations_by_hand() -> None:
    bigan, d, players = _tiny_bigan()
    x = np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.2]])
    key = jax.random.key(3)
    z_key, _ = jax.random.split(key)  # the loss's own draw of z (the other key: D's dropout)
    z = np.asarray(jax.random.normal(z_key, (3, 1)), np.float64)
    real, fake = _by_hand(d, players, x, z)
    sigmoid = lambda t: 1 / (1 + np.exp(-t))
    value = np.mean(np.log(sigmoid(real))) + np.mean(np.log(1 - sigmoid(fake)))
    non_saturating = -np.mean(np.log(1 - sigmoid(real))) - np.mean(np.log(sigmoid(fake)))
    xs = jnp.asarray(x, jnp.float32)
    assert float(discriminator_loss(bigan, d, players, xs, key)) == pytest.approx(-value, rel=1e-5)
    ns = generator_encoder_loss(bigan, d, players, xs, key)
    assert float(ns) == pytest.approx(non_saturating, rel=1e-5)
    minimax = generator_encoder_loss(bigan, d, players, xs, key, non_saturating=False)
    assert float(minimax) == pytest.approx(value, rel=1e-5)
    # the methods fit_adversarial calls are the same functions
    assert float(bigan.generator_loss(d, players, {"x": xs}, key)) == pytest.approx(float(ns))
    saturating, _, _ = _tiny_bigan(non_saturating=False)
    assert float(saturating.generator_loss(d, players, {"x": xs}, key)) == pytest.approx(
        float(minimax)
    )


def test_the_gradient_penalty_is_r1_on_the_real_pairs_by_hand() -> None:
    """d(x, z) = w_h · leaky_relu(xA + a) + w_z z + b: ∇_x d = A (w_h ⊙ slope), ∇_z d = w_z."""
    bigan, d, players = _tiny_bigan(gradient_penalty=2.0)
    x = np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.2]])
    kernel, bias = (np.asarray(d["features"][k], np.float64) for k in ("kernel", "bias"))
    w = np.asarray(d["joint"]["out"]["kernel"], np.float64)[:, 0]
    slope = np.where(x @ kernel + bias > 0, 1.0, 0.01)  # (3, 2): where each unit is
    grad_x = (slope * w[:2]) @ kernel.T  # (3, 2)
    by_hand = np.mean(np.sum(grad_x**2, axis=1) + w[2] ** 2)
    xs, key = jnp.asarray(x, jnp.float32), jax.random.key(3)
    assert float(real_gradient_penalty(bigan, d, players, xs, key)) == pytest.approx(by_hand)
    plain, _, _ = _tiny_bigan()  # γ = 0: the loss is −V alone
    minus_v = float(discriminator_loss(plain, d, players, xs, key))
    loss = float(discriminator_loss(bigan, d, players, xs, key))
    assert loss == pytest.approx(minus_v + 0.5 * 2.0 * by_hand, rel=1e-5)
    # the penalty trains D only: no gradient reaches the generator or the encoder
    grads = jax.grad(lambda p: real_gradient_penalty(bigan, d, p, xs, key))(players)
    assert all(float(jnp.abs(leaf).max()) == 0.0 for leaf in jax.tree.leaves(grads))


def test_the_value_at_an_undecided_discriminator_is_minus_log_4() -> None:
    assert float(bigan_value(jnp.zeros(4), jnp.zeros(4))) == pytest.approx(-math.log(4.0))


# ---------------------------------------------------------------- D* = p / (p + q)


def test_the_trained_discriminator_is_the_density_ratio() -> None:
    """Only D is trained: real x ~ N(0, 1), generated x ~ N(1, 0.7²), both paired with z = 0."""
    rngs = nnx.Rngs(0)
    module = Discriminator(nnx.Linear(1, 32, rngs=rngs), 32, 1, (32,), rngs=rngs)
    graph, state = nnx.split(module, nnx.Param)

    def logits(d, x):
        return nnx.merge(graph, d)(x, jnp.zeros_like(x))

    def d_loss(d, g, batch, key):
        fake = 1.0 + 0.7 * jax.random.normal(key, batch["x"].shape)
        return -bigan_value(logits(d, batch["x"]), logits(d, fake))

    def g_loss(d, g, batch, key):
        return jnp.zeros(())

    real = np.random.default_rng(0).normal(size=(8192, 1)).astype(np.float32)
    result = fit_adversarial(
        d_loss,
        g_loss,
        (nnx.to_pure_dict(state), {}),
        {"x": real},
        seed=0,
        num_steps=1500,
        batch_size=512,
        discriminator_optimizer=optax.adam(3e-3),
        progress=False,
    )
    grid = np.linspace(-1.5, 2.0, 29)[:, None]
    log_p = -0.5 * grid**2
    log_q = -0.5 * ((grid - 1.0) / 0.7) ** 2 - math.log(0.7)
    closed_form = 1 / (1 + np.exp(log_q - log_p))[:, 0]
    learned = np.asarray(jax.nn.sigmoid(logits(result.discriminator_params, jnp.asarray(grid))))
    assert np.max(np.abs(learned - closed_form)) < 0.05


# ---------------------------------------------------------------- the loop


@pytest.fixture(scope="module")
def toy():
    """A tiny MLP BiGAN on 48 random 4 × 4 images in [0, 1]."""
    bigan = make_bigan((4, 4, 1), 2, seed=0, architecture="mlp", hidden=8)
    images = np.random.default_rng(1).uniform(size=(48, 4, 4, 1)).astype(np.float32)
    return bigan, images


def _fit(toy, **options):
    bigan, images = toy
    settings = {"seed": 7, "num_steps": 6, "batch_size": 16, "progress": False, **options}
    return fit_adversarial(
        bigan.discriminator_loss,
        bigan.generator_loss,
        bigan.init_params(),
        {"x": images},
        check=bigan.check_data,
        **settings,
    )


def _same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda u, v: bool(np.array_equal(u, v)), a, b)))


def test_the_loop_is_reproducible_resumable_and_compiles_once(toy, tmp_path, monkeypatch) -> None:
    counted = chex.assert_max_traces(adversarial.adversarial_step, n=1)
    monkeypatch.setattr(adversarial, "adversarial_step", counted)
    whole = _fit(toy, checkpoint_dir=tmp_path / "a", checkpoint_every=2)  # one trace, 6 steps
    assert whole.steps_done == 6
    assert not whole.stopped_early
    assert whole.losses.shape == (6, 2)
    assert np.all(np.isfinite(whole.losses))
    assert sorted(p.name for p in (tmp_path / "a").iterdir())[-1] == "step_000000006"
    monkeypatch.undo()
    again = _fit(toy)
    assert _same(again.state, whole.state)
    np.testing.assert_array_equal(again.losses, whole.losses)
    first = _fit(toy, num_steps=3, checkpoint_dir=tmp_path / "b")
    assert first.steps_done == 3
    resumed = _fit(toy, checkpoint_dir=tmp_path / "b")
    assert "resumed from" in resumed.message
    assert "step 3" in resumed.message
    assert _same(resumed.state, whole.state)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    bigan, images = toy
    assert reconstruct(bigan, whole.generator_params, images[:3]).shape == (3, 4, 4, 1)


def test_a_checkpoint_of_another_run_is_refused(toy, tmp_path) -> None:
    _fit(toy, num_steps=2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different run"):
        _fit(toy, seed=8, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="resume=True"):
        _fit(toy, checkpoint_dir=tmp_path, resume=False)


def _log_losses():
    """The generator descends log(g) by SGD (0.3) from g = 1: g = 0.7, 0.271, −0.834, then NaN."""

    def d_loss(d, g, batch, key):
        return jnp.mean((d - batch["x"]) ** 2)

    def g_loss(d, g, batch, key):
        return jnp.log(g)

    return d_loss, g_loss


def test_the_loop_stops_at_a_nan_with_a_message(caplog) -> None:
    d_loss, g_loss = _log_losses()
    options = {"seed": 0, "num_steps": 10, "batch_size": 2, "progress": False}
    options["generator_optimizer"] = optax.sgd(0.3)
    data = {"x": np.ones(4, np.float32)}
    init = (jnp.zeros(()), jnp.ones(()))
    result = fit_adversarial(d_loss, g_loss, init, data, **options)
    assert result.stopped_early
    assert result.steps_done == 3
    assert result.losses.shape == (3, 2)
    assert "generator loss became non-finite (nan) at step 4 of 10" in result.message
    assert "state after step 3" in result.message
    assert float(result.generator_params) == pytest.approx(-0.8338, abs=1e-3)
    assert "non-finite" in caplog.text
    with pytest.raises(FloatingPointError, match="at step 4 of 10"):
        fit_adversarial(d_loss, g_loss, init, data, on_nan="raise", **options)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"images": "nan"}, "NaN"),
        ({"images": "shape"}, r"takes x of shape \(batch, 4, 4, 1\), got \(48, 5, 5, 1\)"),
        ({"images": "range"}, r"scale the images to \[0, 1\]"),
        ({"num_steps": 0}, "num_steps"),
        ({"batch_size": 100}, "exceeds the 48 examples"),
        ({"checkpoint_every": 2}, "needs a checkpoint_dir"),
        ({"on_nan": "ignore"}, "on_nan"),
    ],
)
def test_bad_input_is_refused_before_any_work(toy, tmp_path, change, match) -> None:
    bigan, images = toy
    images = {
        "nan": np.where(np.arange(images.size).reshape(images.shape) == 5, np.nan, images),
        "shape": np.full((48, 5, 5, 1), 0.5, np.float32),
        "range": images * 255,
        None: images,
    }[change.pop("images", None)]
    settings = {"seed": 0, "num_steps": 6, "batch_size": 16, "progress": False, **change}
    with pytest.raises(ValueError, match=match):
        fit_adversarial(
            bigan.discriminator_loss,
            bigan.generator_loss,
            bigan.init_params(),
            {"x": images},
            check=bigan.check_data,
            **settings,
        )


def test_a_wrong_shape_is_caught_by_tracing_without_a_check(toy, tmp_path) -> None:
    bigan, _ = toy
    wrong = np.full((48, 5, 5, 1), 0.5, np.float32)
    with pytest.raises(ValueError, match="takes x of shape"):
        fit_adversarial(
            bigan.discriminator_loss,
            bigan.generator_loss,
            bigan.init_params(),
            {"x": wrong},
            seed=0,
            num_steps=3,
            batch_size=16,
            checkpoint_dir=tmp_path,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []  # nothing written: no step ran


def test_make_bigan_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="architecture"):
        make_bigan((4, 4, 1), 2, seed=0, architecture="resnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim"):
        make_bigan((4, 4, 1), 0, seed=0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="gradient_penalty must be finite and ≥ 0"):
            make_bigan((4, 4, 1), 2, seed=0, gradient_penalty=bad)
    with pytest.raises(ValueError, match=r"images \(H, W, C\)"):
        make_bigan((16,), 2, seed=0, architecture="conv")
