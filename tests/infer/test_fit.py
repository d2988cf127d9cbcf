"""fit() against closed forms: the linear-Gaussian optimum, call counts, a NaN recursion."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import RenyiELBO

from invppl.infer import FitResult, fit, iwae_bound, minibatch_indices
from tests.infer import linear_gaussian as lg

TRAIN = lg.sample_data(512, seed=0)
TEST = lg.sample_data(256, seed=1)


def _schedule(steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(0.05, steps, alpha=0.02))


@pytest.fixture(scope="module")
def fitted() -> FitResult:
    return fit(
        lg.model,
        lg.param_guide,
        {"x": TRAIN},
        seed=0,
        num_steps=1500,
        batch_size=64,
        optimizer=_schedule(1500),
        eval_data={"x": TEST},
        eval_every=750,
        iwae_samples=1000,
        progress=False,
    )


def test_fit_recovers_the_optimal_factorised_guide(fitted: FitResult) -> None:
    assert not fitted.stopped_early
    assert fitted.steps_done == 1500
    assert fitted.losses.shape == (1500,)
    for name, optimum in lg.optimal_mean_field_params().items():
        np.testing.assert_allclose(np.asarray(fitted.params[name]), optimum, atol=0.04)


def test_fit_bounds_bracket_the_exact_log_marginal(fitted: FitResult) -> None:
    exact = lg.log_marginal(TEST).mean()
    gap = lg.mean_field_gap()
    final = fitted.eval[-1]
    assert final["elbo"] < exact
    assert final["elbo"] == pytest.approx(exact - gap, abs=0.03)  # the factorised optimum
    assert final["elbo"] < final["iwae"] < exact + 0.01
    assert final["iwae"] > exact - 0.2 * gap  # slow: q* is narrower than p(z|x)
    # The training loss is −ELBO per example: near −(log p(x) − gap) on the training data.
    train_optimum = -(lg.log_marginal(TRAIN).mean() - gap)
    assert float(np.mean(fitted.losses[-300:])) == pytest.approx(train_optimum, abs=0.05)


def test_eval_records_every_eval_every_steps(fitted: FitResult) -> None:
    assert [record["step"] for record in fitted.eval] == [750, 1500]
    assert set(fitted.eval[0]) == {"step", "loss", "elbo", "iwae"}
    assert fitted.eval[1]["loss"] == pytest.approx(float(np.mean(fitted.losses[750:])))


def test_nnx_guide_with_mutable_state() -> None:
    # The Encoder counts its calls in a non-Param variable: NumPyro mutable state.
    guide = lg.make_nnx_guide()
    results = [
        fit(
            lg.model,
            guide,
            {"x": TRAIN},
            seed=1,
            num_steps=steps,
            batch_size=64,
            optimizer=_schedule(steps),
            progress=False,
        )
        for steps in (40, 400)
    ]
    # One guide call per step, plus the one SVI.init makes to build the state.
    assert [lg.calls(result.state) for result in results] == [41, 401]
    result = results[1]
    assert set(result.params) == {"encoder$params"}
    train_optimum = -(lg.log_marginal(TRAIN).mean() - lg.mean_field_gap())
    assert float(np.mean(result.losses[-100:])) == pytest.approx(train_optimum, abs=0.1)
    params = {**result.params, **result.state.mutable_state}
    bound = iwae_bound(lg.model, guide, params, {"x": TEST}, seed=0, num_samples=1000)
    assert lg.log_marginal(TEST).mean() - 0.2 * lg.mean_field_gap() < bound


def test_mutable_state_with_a_loss_that_cannot_carry_it_raises() -> None:
    with pytest.raises(ValueError, match=r"mutable state .* RenyiELBO does not support"):
        fit(
            lg.model,
            lg.make_nnx_guide(),
            {"x": TRAIN},
            seed=0,
            num_steps=5,
            batch_size=64,
            loss=RenyiELBO(),
            progress=False,
        )


def _short_fit(seed: int, **kwargs: Any) -> FitResult:
    options: dict[str, Any] = {
        "num_steps": 60,
        "batch_size": 32,
        "optimizer": optax.adam(0.02),
        "progress": False,
        **kwargs,
    }
    return fit(lg.model, lg.param_guide, {"x": TRAIN[:100]}, seed=seed, **options)


def test_same_seed_same_result_different_seed_different_result() -> None:
    first, again, other = _short_fit(3), _short_fit(3), _short_fit(4)
    np.testing.assert_array_equal(first.losses, again.losses)
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], again.params[name])
    assert not np.array_equal(first.losses, other.losses)
    assert not np.array_equal(first.params["A"], other.params["A"])


def test_step_compiles_once() -> None:
    # The model body runs in Python only when traced (and in SVI.init): the count must not
    # grow with the number of steps, calls of the compiled loop, eval or checkpoint boundaries.
    traces = 0

    def counting_model(x: jax.Array) -> None:
        nonlocal traces
        traces += 1
        lg.model(x)

    def count(num_steps: int, eval_every: int | None) -> int:
        nonlocal traces
        traces = 0
        fit(
            counting_model,
            lg.param_guide,
            {"x": TRAIN[:100]},
            seed=0,
            num_steps=num_steps,
            batch_size=30,  # 100 % 30 != 0: partial batches are dropped, shapes stay fixed
            eval_every=eval_every,
            progress=False,
        )
        return traces

    assert count(3, None) == count(700, 7)


def test_minibatches_are_epoch_permutations() -> None:
    n, batch = 10, 3
    epoch = np.concatenate([minibatch_indices(5, n, batch, step) for step in range(3)])
    assert len(set(epoch.tolist())) == 9  # one example dropped per epoch
    next_epoch = np.concatenate([minibatch_indices(5, n, batch, step) for step in range(3, 6)])
    assert not np.array_equal(epoch, next_epoch)


def _nan_model(x: jax.Array) -> None:
    # scale is unconstrained: gradient descent drives it through zero, where
    # Normal(0, scale).log_prob = −log(scale) − … is NaN.
    scale = numpyro.param("scale", 1.0)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.Normal(0.0, scale), obs=x)


def _no_latents(x: jax.Array) -> None:
    pass


def _nan_oracle(x: float, learning_rate: float) -> tuple[int, list[float]]:
    """Plain gradient descent on log s + x²/(2 s²): the first step whose input s ≤ 0.

    SVI's loss is the batch's sum, so optax.sgd(learning_rate / batch_size) takes
    these per-example steps.
    """
    scales = [1.0]
    while scales[-1] > 0:
        s = scales[-1]
        scales.append(s - learning_rate * (1 / s - x**2 / s**3))
    return len(scales), scales  # step len(scales) (1-based) starts from s ≤ 0


@pytest.mark.parametrize("steps_per_call", [1, 256])
def test_non_finite_loss_stops_and_keeps_the_last_good_state(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, steps_per_call: int
) -> None:
    # One step per call makes the failure land on a call's first step, so the last good
    # state is rewound from the call before; with 256 it is rewound within the call.
    # (importlib: the attribute invppl.infer.fit is the function, the module is in sys.modules)
    fit_module = importlib.import_module("invppl.infer.fit")
    monkeypatch.setattr(fit_module, "MAX_STEPS_PER_CALL", steps_per_call)
    bad_step, scales = _nan_oracle(0.1, 0.3)
    assert bad_step == 4  # the recursion 1 → 0.703 → 0.286 → −0.635
    data = {"x": np.full(8, 0.1, np.float32)}
    with caplog.at_level(logging.WARNING, logger="invppl.infer"):
        result = fit(
            _nan_model,
            _no_latents,
            data,
            seed=0,
            num_steps=50,
            batch_size=8,
            optimizer=optax.sgd(0.3 / 8),
            progress=False,
        )
    assert result.stopped_early
    assert f"at step {bad_step} of 50" in result.message
    # The state kept is the last whose loss was finite: after bad_step − 2 steps.
    assert result.steps_done == bad_step - 2
    assert result.losses.shape == (bad_step - 2,)
    assert np.all(np.isfinite(result.losses))
    assert float(result.params["scale"]) == pytest.approx(scales[bad_step - 2], rel=1e-4)
    assert any("non-finite" in record.getMessage() for record in caplog.records)


def test_non_finite_parameters_after_a_finite_loss_stop() -> None:
    # d/dp sqrt(p) is infinite at p = 0: the loss is finite, the updated p is not.
    def infinite_gradient(x: jax.Array) -> None:
        p = numpyro.param("p", 0.0)
        numpyro.factor("f", jnp.sqrt(p))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    result = fit(
        infinite_gradient,
        _no_latents,
        {"x": np.zeros(4, np.float32)},
        seed=0,
        num_steps=1,
        batch_size=4,
        optimizer=optax.sgd(0.1),
        progress=False,
    )
    assert result.stopped_early
    assert "the parameters became non-finite at step 1 of 1" in result.message
    assert result.steps_done == 0
    assert result.losses.shape == (0,)
    assert float(result.params["p"]) == 0.0


def test_non_finite_loss_raises_on_request() -> None:
    with pytest.raises(FloatingPointError, match=r"non-finite .* at step 4 of 50"):
        fit(
            _nan_model,
            _no_latents,
            {"x": np.full(8, 0.1, np.float32)},
            seed=0,
            num_steps=50,
            batch_size=8,
            optimizer=optax.sgd(0.3 / 8),
            progress=False,
            on_nan="raise",
        )


def test_progress_false_prints_nothing(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _short_fit(0, num_steps=5, checkpoint_dir=tmp_path, checkpoint_every=2, eval_data={"x": TEST})
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_progress_bar_ends_on_the_final_loss_and_says_what_it_is(
    capfd: pytest.CaptureFixture[str],
) -> None:
    result = _short_fit(0, num_steps=70, progress=True)
    _, err = capfd.readouterr()
    last = err.strip().split("\r")[-1]
    assert "70/70" in last
    expected = float(np.mean(result.losses[-50:]))  # the last 50 of the 70 losses
    assert result.final_loss() == pytest.approx(expected)
    assert f"loss (mean of last 50 steps)={expected:.4g}" in last


def _must_not_run(**kwargs: Any) -> None:
    raise AssertionError("the model ran before the arguments were checked")


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        ({}, {}, ValueError, "data is empty"),
        ([1.0, 2.0], {}, TypeError, "data must be a mapping"),
        (
            {"x": np.zeros((10, 2)), "y": np.zeros(9)},
            {},
            ValueError,
            r"leading \(example\) axis, got sizes \{'x': 10, 'y': 9\}",
        ),
        ({"x": np.zeros((0, 2))}, {}, ValueError, "no examples"),
        ({"x": np.array(1.0)}, {}, ValueError, r"data\['x'\] is a scalar"),
        ({"x": np.zeros((10, 2))}, {"batch_size": 11}, ValueError, "batch_size 11 exceeds the 10"),
        (
            {"x": np.zeros((10, 2)), "y": np.array([0, 1, 2, np.inf, 4, 5, 6, 7, 8, np.nan])},
            {},
            ValueError,
            r"data\['y'\] contains 2 NaN or infinite",
        ),
        ({"x": np.zeros((10, 2))}, {"num_steps": 0}, ValueError, "num_steps must be a positive"),
        ({"x": np.zeros((10, 2))}, {"num_steps": -3}, ValueError, "num_steps must be a positive"),
        ({"x": np.zeros((10, 2))}, {"num_steps": 2.0}, TypeError, "num_steps must be a positive"),
        ({"x": np.zeros((10, 2))}, {"batch_size": 0}, ValueError, "batch_size must be a positive"),
        ({"x": np.zeros((10, 2))}, {"seed": -1}, ValueError, "seed must be an integer in"),
        ({"x": np.zeros((10, 2))}, {"on_nan": "skip"}, ValueError, "on_nan must be"),
        (
            {"x": np.zeros((10, 2))},
            {"checkpoint_every": 5},
            ValueError,
            "checkpoint_every needs a checkpoint_dir",
        ),
        (
            {"x": np.zeros((10, 2))},
            {"eval_data": {"x": np.zeros((4, 3))}},
            ValueError,
            "eval_data must have the keys and per-example shapes of data",
        ),
        (
            {"x": np.zeros((10, 2))},
            {"eval_data": {"x": np.full((4, 2), np.nan)}},
            ValueError,
            r"eval_data\['x'\] contains 8 NaN",
        ),
        (
            {"x": np.zeros((10, 2))},
            {"optimizer": "adam"},
            TypeError,
            "optax.GradientTransformation",
        ),
    ],
)
def test_bad_input_raises_before_any_work(
    data: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"seed": 0, "num_steps": 10, "batch_size": 5, **kwargs}
    with pytest.raises(error, match=match):
        fit(_must_not_run, _must_not_run, data, progress=False, **arguments)


def test_init_params_set_the_starting_point() -> None:
    optimum = lg.optimal_mean_field_params()
    result = fit(
        lg.model,
        lg.param_guide,
        {"x": TRAIN},
        seed=0,
        num_steps=1,
        batch_size=64,
        optimizer=optax.sgd(0.0),
        init_params={name: jnp.asarray(value) for name, value in optimum.items()},
        progress=False,
    )
    for name, value in optimum.items():
        np.testing.assert_allclose(np.asarray(result.params[name]), value, rtol=1e-6)


def _location_model(x: jax.Array) -> None:
    mu = numpyro.param("mu", jnp.array(-3.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def test_keep_best_returns_the_parameters_of_the_best_evaluation() -> None:
    # Gradient descent walks mu from -3 to the training mean 2, mu_t = 2 - 5 (0.98)^t, and
    # passes the held-out mean 0 near t = 45: the held-out ELBO -mu^2 / 2 + c peaks there,
    # as an overfitting fit's does.
    train = {"x": jnp.full((32,), 2.0)}
    held_out = {"x": jnp.zeros(16)}
    common: dict[str, Any] = dict(
        seed=0, batch_size=32, optimizer=optax.sgd(0.02 / 32), progress=False
    )
    result = fit(
        _location_model,
        _no_latents,
        train,
        num_steps=200,
        eval_data=held_out,
        eval_every=10,
        keep_best=True,
        **common,
    )
    elbos = [record["elbo"] for record in result.eval]
    assert result.best_step == result.eval[int(np.argmax(elbos))]["step"] == 50
    assert "kept the parameters of step 50" in result.message
    mu = float(result.params["mu"])
    assert mu == pytest.approx(2 - 5 * 0.98**50, rel=1e-4)
    # the oracle: a fit stopped at that step has exactly these parameters
    stopped = fit(_location_model, _no_latents, train, num_steps=50, **common)
    np.testing.assert_array_equal(np.asarray(result.params["mu"]), stopped.params["mu"])
    # the state, losses and steps are still those of the last step
    assert result.steps_done == 200
    assert result.losses.shape == (200,)
    last = fit(_location_model, _no_latents, train, num_steps=200, **common)
    assert last.best_step is None
    assert float(last.params["mu"]) == pytest.approx(2 - 5 * 0.98**200, rel=1e-4)


def test_keep_best_without_eval_data_raises_before_any_work() -> None:
    with pytest.raises(ValueError, match="keep_best needs eval_data"):
        fit(
            _must_not_run,
            _must_not_run,
            {"x": TRAIN},
            seed=0,
            num_steps=5,
            batch_size=8,
            keep_best=True,
            progress=False,
        )
