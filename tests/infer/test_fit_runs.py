"""fit() as a run that survives: interruption, damaged checkpoints, unwritable folders, bad data.

The oracle for every resumed run is the same run done in one go: same seed, same
data, so the same bits (the module docs of :mod:`invppl.infer.fit`).
"""

from __future__ import annotations

import functools
import importlib
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.infer import SVI, Predictive, Trace_ELBO

from invppl.distributions.likelihood import ContinuousBernoulli
from invppl.infer import FitInterrupted, FitResult, fit, list_checkpoints
from tests.infer import linear_gaussian as lg

TRAIN = lg.sample_data(200, seed=0)
fit_module = importlib.import_module("invppl.infer.fit")  # the package attribute is fit()


def _fit(directory: Path | None, num_steps: int, **kwargs: Any) -> FitResult:
    options: dict[str, Any] = {
        "seed": 0,
        "num_steps": num_steps,
        "batch_size": 32,
        "optimizer": optax.adam(0.02),
        "checkpoint_dir": directory,
        "progress": False,
        **kwargs,
    }
    return fit(lg.model, lg.make_nnx_guide(), {"x": TRAIN}, **options)


def _same_run(left: FitResult, right: FitResult) -> None:
    np.testing.assert_array_equal(left.losses, right.losses)
    leaves = jax.tree.leaves(left.params_and_state), jax.tree.leaves(right.params_and_state)
    for got, want in zip(*leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> FitResult:
    return _fit(tmp_path_factory.mktemp("whole"), 60, checkpoint_every=10)


def _signal_at_call(monkeypatch: pytest.MonkeyPatch, number: int, call: int) -> None:
    """Makes the ``call``-th chunk of steps end with signal ``number`` sent to this process."""
    calls = []
    original = fit_module.run_steps

    def run_steps(*args: Any) -> Any:
        out = original(*args)
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(number)
        return out

    monkeypatch.setattr(fit_module, "run_steps", run_steps)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_the_run_resumes_to_the_same_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: FitResult, number: int
) -> None:
    _signal_at_call(monkeypatch, number, call=3)
    with pytest.raises(FitInterrupted) as caught:
        _fit(tmp_path, 60, checkpoint_every=10)
    interrupted = caught.value
    assert isinstance(interrupted, KeyboardInterrupt)
    assert interrupted.signal_name == signal.Signals(number).name
    assert 0 < interrupted.step < 60
    assert interrupted.checkpoint == tmp_path / f"step_{interrupted.step:09d}"
    assert f"after step {interrupted.step} of 60" in str(interrupted)
    assert list_checkpoints(tmp_path)[-1][0] == interrupted.step
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers given back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    resumed = _fit(tmp_path, 60, checkpoint_every=10)
    assert f"resumed from {interrupted.checkpoint}" in resumed.message
    _same_run(resumed, uninterrupted)


def test_a_signal_without_a_checkpoint_dir_says_nothing_was_saved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _signal_at_call(monkeypatch, signal.SIGINT, call=2)
    with pytest.raises(FitInterrupted, match="nothing saved"):
        _fit(None, 60)


def test_checkpoints_are_saved_every_500_steps_by_default(tmp_path: Path) -> None:
    result = _fit(tmp_path, 1001, batch_size=200)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [500, 1000, 1001]
    assert result.steps_done == 1001


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_damaged_checkpoints_are_named_set_aside_and_the_run_resumes_from_the_last_good(
    tmp_path: Path, uninterrupted: FitResult, caplog: pytest.LogCaptureFixture
) -> None:
    _fit(tmp_path, 40, checkpoint_every=10)  # keeps 20, 30, 40
    latest, middle = tmp_path / "step_000000040", tmp_path / "step_000000030"
    for file in (latest / "state").rglob("*"):
        if file.is_file() and file.stat().st_size > 100:
            _truncate(file)  # every sizeable array file, as a full disk would leave them
    (middle / "metadata" / "metadata").unlink()
    resumed = _fit(tmp_path, 60, checkpoint_every=10)
    assert "step_000000040 is damaged: state/" in resumed.message
    assert "step_000000030 is damaged: metadata/metadata is missing" in resumed.message
    assert "resuming from step_000000020, the latest intact checkpoint" in resumed.message
    assert "moved it aside to step_000000040.damaged" in resumed.message
    assert any("damaged" in record.getMessage() for record in caplog.records)
    assert (tmp_path / "step_000000040.damaged").is_dir()
    _same_run(resumed, uninterrupted)
    # the run can be resumed (and extended) again: nothing damaged is left in its way
    again = _fit(tmp_path, 60, checkpoint_every=10)
    assert "nothing left to do" in again.message
    assert "is damaged" not in again.message


# A read that fails inside orbax leaves tensorstore callbacks that later call
# `call_soon_threadsafe` on orbax's closed event loop ("Event loop is closed", an
# unraisable exception in a background thread). Seen once in a clean-clone CI run under
# load (2026-12-07), never alone; what this test checks, fit's fall-back, is unaffected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_arrays_unreadable_despite_the_manifest_fall_back_too(
    tmp_path: Path, uninterrupted: FitResult
) -> None:
    _fit(tmp_path, 30, checkpoint_every=10)
    latest = tmp_path / "step_000000030"
    (latest / "invppl_manifest.json").unlink()  # as a checkpoint of an older invppl
    shutil.rmtree(latest / "state" / "ocdbt.process_0")
    for file in (latest / "state").glob("manifest.ocdbt"):
        file.unlink()
    resumed = _fit(tmp_path, 60, checkpoint_every=10)
    assert "could not restore the arrays of checkpoint" in resumed.message
    assert "resuming from step_000000020" in resumed.message
    _same_run(resumed, uninterrupted)


def _must_not_run(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the model ran before the arguments were checked")


def test_an_unwritable_checkpoint_dir_is_refused_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match=r"checkpoint_dir .*a_file/run cannot be a folder"):
        fit(
            _must_not_run,
            _must_not_run,
            {"x": TRAIN},
            seed=0,
            num_steps=5,
            batch_size=8,
            checkpoint_dir=blocker / "run",
            progress=False,
        )
    assert not (blocker.parent / "run").exists()


def _bernoulli_model(x: jnp.ndarray, *, kind: str) -> None:
    probs = numpyro.param(
        "probs", jnp.full(x.shape[1:], 0.5), constraint=dist.constraints.unit_interval
    )
    with numpyro.plate("data", x.shape[0]):
        if kind == "cb":
            numpyro.sample("x", ContinuousBernoulli(probs).to_event(1), obs=x)
        else:
            numpyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)


def _no_guide(x: jnp.ndarray) -> None:
    pass


@pytest.mark.parametrize(
    ("kind", "value", "said"),
    [
        ("cb", 255.0, r"\(ContinuousBernoulli, support \[0, 1\]\): 10 of 20 examples"),
        ("bernoulli", 0.5, r"\(Bernoulli\w*, support \{0, 1\}\): 10 of 20 examples"),
    ],
)
def test_data_outside_the_likelihoods_support_is_refused(
    kind: str, value: float, said: str
) -> None:
    data = np.full((20, 4), value, np.float32)
    data[:10] = 1.0  # half the examples lie in both supports
    model = functools.partial(_bernoulli_model, kind=kind)
    with pytest.raises(
        ValueError, match="outside the support of the model's observed site 'x'"
    ) as error:
        fit(model, _no_guide, {"x": data}, seed=0, num_steps=2, batch_size=4, progress=False)
    assert re.search(said, str(error.value))
    assert "x / 255" in str(error.value)
    assert f"range from {min(value, 1.0):.4g} to {max(value, 1.0):.4g}" in str(error.value)


def test_data_under_another_key_names_the_keys_the_model_takes() -> None:
    with pytest.raises(
        ValueError,
        match=r"data has the keys \['images'\], but the model model\(\.\.\.\) takes the data "
        r"keys \['x'\]",
    ):
        fit(
            lg.model,
            lg.param_guide,
            {"images": TRAIN},
            seed=0,
            num_steps=2,
            batch_size=8,
            progress=False,
        )


def test_params_and_state_run_predictive_and_plain_numpyro_svi() -> None:
    guide = lg.make_nnx_guide()
    result = fit(lg.model, guide, {"x": TRAIN}, seed=0, num_steps=30, batch_size=32, progress=False)
    merged = result.params_and_state
    assert set(merged) == set(result.params) | set(result.state.mutable_state or {})
    assert result.state.mutable_state  # the NNX guide's counter
    draws = Predictive(lg.model, guide=guide, params=merged, num_samples=5)(
        jax.random.key(1), x=TRAIN[:7]
    )
    assert draws["x"].shape[:2] == (5, 7)
    svi = SVI(lg.model, guide, optax.adam(0.02), Trace_ELBO())
    svi.init(jax.random.key(0), x=TRAIN[:32])  # sets up the transforms; the state is fit's
    _, loss = svi.update(result.state, x=TRAIN[:32])  # carries on with plain NumPyro
    assert np.isfinite(float(loss))
