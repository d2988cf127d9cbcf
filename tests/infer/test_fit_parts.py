"""The parts of fit() one by one: the schedule, chunking, the compiled step, the NaN stop.

Each part is checked against an oracle written here without the part's code: NumPy's
generator for the minibatch order, a brute-force search for chunk boundaries, a Python
loop for the first non-finite loss, plain ``svi.update`` for the compiled step, and a
straight run for a rewound one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import Array
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.svi import SVIState

from invppl.infer import minibatch_indices
from invppl.infer._fit_checkpoints import ResumePoint
from invppl.infer._fit_step import Chunk, all_finite, compile_step, run_steps
from invppl.infer.fit import (
    MAX_STEPS_PER_CALL,
    _check_arrays,
    _check_counts,
    _Evaluation,
    _failure,
    _final_message,
    _next_count,
    _next_per_call,
    _postfix,
    _recent,
    _rewind,
    _Schedule,
    _stop_message,
)

N, BATCH = 12, 5  # 2 steps an epoch, 2 examples dropped
DATA = np.linspace(-1.0, 1.0, N * 2, dtype=np.float32).reshape(N, 2)
LOSS_DTYPE = np.dtype(np.float32)


def _oracle_rows(seed: int, n: int, batch_size: int, step: int) -> np.ndarray:
    """Step ``step``'s indices straight from NumPy's generator (the documented order)."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[position * batch_size : (position + 1) * batch_size]


# ----------------------------------------------------------------------------- schedule


@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.data())
def test_every_epoch_is_a_permutation_with_the_remainder_dropped(
    seed: int, n: int, data: st.DataObject
) -> None:
    batch_size = data.draw(st.integers(1, n))
    per_epoch = n // batch_size
    schedule = _Schedule(seed, n, batch_size)
    for epoch in range(3):
        rows = schedule.block(epoch * per_epoch, per_epoch)
        assert rows.shape == (per_epoch, batch_size)
        assert rows.dtype == np.int32
        seen = rows.ravel()
        assert len(set(seen.tolist())) == seen.size == n - n % batch_size  # no repeats
        expected = np.random.default_rng([seed, epoch]).permutation(n)[: seen.size]
        np.testing.assert_array_equal(seen, expected)


@given(st.integers(0, 2**32 - 1), st.integers(0, 40), st.integers(1, 20))
def test_a_schedule_resumed_at_step_k_gives_the_straight_run(seed: int, k: int, m: int) -> None:
    straight = _Schedule(seed, N, BATCH).block(0, k + m)
    resumed = _Schedule(seed, N, BATCH).block(k, m)  # a new process starting at step k
    np.testing.assert_array_equal(resumed, straight[k:])
    oracle = np.stack([_oracle_rows(seed, N, BATCH, step) for step in range(k, k + m)])
    np.testing.assert_array_equal(resumed, oracle)


def test_going_back_an_epoch_reuses_no_stale_permutation() -> None:
    # A rewind asks for earlier steps after later ones: the cached epoch must not leak.
    schedule = _Schedule(3, N, BATCH)
    late, early = schedule.block(7, 3), schedule.block(0, 3)
    np.testing.assert_array_equal(late, np.stack([_oracle_rows(3, N, BATCH, s) for s in (7, 8, 9)]))
    np.testing.assert_array_equal(
        early, np.stack([_oracle_rows(3, N, BATCH, s) for s in (0, 1, 2)])
    )
    np.testing.assert_array_equal(minibatch_indices(3, N, BATCH, 9), _oracle_rows(3, N, BATCH, 9))


# ----------------------------------------------------------------------------- chunking


@given(
    st.integers(0, 200),
    st.integers(1, 100),
    st.integers(1, 300),
    st.none() | st.integers(1, 50),
    st.none() | st.integers(1, 50),
)
def test_a_chunk_ends_at_the_first_due_evaluation_or_checkpoint(
    step: int, left: int, per_call: int, checkpoint_every: int | None, eval_every: int | None
) -> None:
    num_steps = step + left

    def boundary(at: int) -> bool:
        every = [e for e in (checkpoint_every, eval_every) if e is not None]
        return at == num_steps or any(at % e == 0 for e in every)

    expected = next(c for c in range(1, per_call + 1) if boundary(step + c) or c == per_call)
    assert _next_count(step, num_steps, per_call, checkpoint_every, eval_every) == expected


@pytest.mark.parametrize(
    ("done", "seconds", "per_call", "expected"),
    [
        (1, 1.0, 1, 1),  # slow: at least one step
        (100, 1.0, 1, 4),  # fast: grows at most 4x a chunk
        (100, 1.0, 50, 25),  # 0.25 s at 100 steps/s
        (10**6, 1e-3, 10**4, MAX_STEPS_PER_CALL),  # never above the cap
        (5, 0.0, 2, 8),  # a zero duration is not a division by zero
    ],
)
def test_steps_per_chunk_aim_at_a_quarter_second(
    done: int, seconds: float, per_call: int, expected: int
) -> None:
    assert _next_per_call(done, seconds, per_call) == expected


# ----------------------------------------------------------------------------- NaN stop

_losses = st.lists(
    st.sampled_from([0.5, -2.0, 3.25, math.nan, math.inf, -math.inf]), min_size=1, max_size=12
)


@given(_losses, st.booleans(), st.integers(0, 1000))
def test_the_nan_stop_names_the_first_non_finite_loss(
    values: list[float], state_finite: bool, start: int
) -> None:
    chunk = Chunk(np.asarray(values, np.float32), state_finite)
    first_bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    done = len(values) if first_bad is None else first_bad
    assert chunk.done == done
    np.testing.assert_array_equal(chunk.good_losses, np.asarray(values[:done], np.float32))
    message = _failure(chunk, start + done, 5000)
    if first_bad is not None:
        bad = np.float32(values[first_bad])
        assert message == f"the loss became non-finite ({bad}) at step {start + done + 1} of 5000"
    elif not state_finite:
        assert message == f"the parameters became non-finite at step {start + done} of 5000"
    else:
        assert message is None


def test_the_stop_message_says_which_state_is_returned() -> None:
    assert _stop_message("it broke", 3, 4) == (
        "stopped: it broke; returning the state after step 3, the last whose loss was finite"
    )
    assert _stop_message("it broke", 4, 4) == (
        "stopped: it broke; returning the state after step 4; no earlier state is held"
    )


def test_all_finite_looks_at_floating_leaves_only() -> None:
    tree = {"a": jnp.ones(3), "n": jnp.array([2**31 - 1], jnp.int32), "k": jax.random.PRNGKey(0)}
    assert bool(all_finite(tree))
    assert not bool(all_finite({**tree, "b": jnp.array([0.0, jnp.nan])}))
    assert bool(all_finite({}))


# ----------------------------------------------------------------------------- the step


def _model(x: Array) -> None:
    loc = numpyro.param("loc", jnp.zeros(2))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


def _guide(x: Array) -> None:
    pass


def _svi_and_state(model: Any = _model) -> tuple[SVI, SVIState]:
    svi = SVI(model, _guide, optax.adam(0.1), Trace_ELBO())
    return svi, svi.init(jax.random.PRNGKey(0), x=jnp.asarray(DATA[:BATCH]))


def _leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def test_run_steps_is_svi_update_on_the_scheduled_minibatches() -> None:
    svi, state = _svi_and_state()
    schedule = _Schedule(1, N, BATCH)
    data = {"x": jnp.asarray(DATA)}
    after, chunk = run_steps(
        compile_step(svi, BATCH, LOSS_DTYPE, 1), state, data, schedule.block(0, 7), 0
    )
    update = jax.jit(svi.update)
    expected_state, expected_losses = state, []
    for step in range(7):
        expected_state, loss = update(expected_state, x=DATA[_oracle_rows(1, N, BATCH, step)])
        expected_losses.append(float(loss) / BATCH)
    np.testing.assert_allclose(chunk.losses, expected_losses, rtol=1e-6)
    assert chunk.losses.dtype == LOSS_DTYPE
    assert chunk.done == 7
    assert chunk.state_finite
    for got, want in zip(_leaves(after), _leaves(expected_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_the_compiled_step_is_traced_once_across_chunks_and_epochs() -> None:
    chex.clear_trace_counter()
    traces = {"model": 0, "augment": 0}

    @chex.assert_max_traces(n=1)  # counts the calls with tracers, i.e. traces
    def model(x: Array) -> None:
        traces["model"] += 1
        _model(x)

    @chex.assert_max_traces(n=1)
    def augment(key: Array, batch: dict[str, Array]) -> dict[str, Array]:
        traces["augment"] += 1
        return {"x": batch["x"] + 0.01 * jax.random.normal(key, batch["x"].shape)}

    svi, state = _svi_and_state(model)  # SVI.init runs the model on arrays, not tracers
    traces["model"] = 0
    step = compile_step(svi, BATCH, LOSS_DTYPE, 0, augment=augment)
    schedule = _Schedule(0, N, BATCH)
    data = {"x": jnp.asarray(DATA)}
    start = 0
    for count in (1, 3, 7, 2, 1):  # chunks of every size, over several epochs
        state, chunk = run_steps(step, state, data, schedule.block(start, count), start)
        assert chunk.done == count
        start += count
    assert traces == {"model": 1, "augment": 1}


def test_a_rewound_state_equals_the_straight_run_bit_for_bit() -> None:
    svi, state = _svi_and_state()
    step = compile_step(svi, BATCH, LOSS_DTYPE, 2)
    schedule = _Schedule(2, N, BATCH)
    data = {"x": jnp.asarray(DATA)}
    states = [state]  # the straight run, one step at a time: states[k] after k steps
    for k in range(9):
        states.append(run_steps(step, states[-1], data, schedule.block(k, 1), k)[0])
    anchors = [(2, states[2]), (5, states[5])]  # the start states of the last two chunks
    for target in (2, 3, 4, 5, 6, 8):
        kept, rewound = _rewind(anchors, target, step, data, schedule)
        assert kept == target
        for got, want in zip(_leaves(rewound), _leaves(states[target]), strict=True):
            np.testing.assert_array_equal(got, want)
    assert _rewind(anchors, 1, step, data, schedule)[0] == 2  # nothing earlier is held


# ----------------------------------------------------------------------------- evaluation


@given(st.integers(1, 40), st.none() | st.integers(1, 50))
def test_the_evaluated_loss_is_the_mean_of_the_last_window(step: int, every: int | None) -> None:
    losses = np.random.default_rng(step).normal(size=step).astype(np.float32)
    svi, state = _svi_and_state()
    record = _Evaluation(_model, _guide, None, every, 0, 4).record(svi, state, step, losses)
    window = losses if every is None else losses[-every:]
    expected = float(np.mean(window, dtype=np.float64))
    assert record == {"step": step, "loss": pytest.approx(expected, abs=1e-6)}


@pytest.mark.parametrize(
    ("arrays", "every", "due"),
    [
        (None, None, []),  # nothing to evaluate
        (None, 4, [4, 8, 10]),  # the training loss only
        ({"x": DATA}, None, [10]),  # at the end
        ({"x": DATA}, 3, [3, 6, 9, 10]),
    ],
)
def test_evaluations_are_due_every_eval_every_steps_and_at_the_end(
    arrays: dict[str, np.ndarray] | None, every: int | None, due: list[int]
) -> None:
    evaluation = _Evaluation(_model, _guide, arrays, every, 0, 4)
    assert [step for step in range(1, 11) if evaluation.due(step, 10)] == due


def test_the_progress_postfix_names_the_window_of_the_loss_and_the_bound() -> None:
    label = "loss (mean of last 50 steps)"
    assert _postfix(np.array([2.0, 4.0], np.float32)) == {label: "3"}
    assert _postfix(np.array([1.0]), {"iwae": -12.345678, "step": 3}) == {
        label: "1",
        "eval iwae": "-12.35",
    }


def test_the_recent_losses_are_the_last_window_across_chunks() -> None:
    history = [np.arange(30.0), np.arange(30.0, 45.0), np.arange(45.0, 70.0)]
    np.testing.assert_array_equal(_recent(history), np.arange(20.0, 70.0))
    np.testing.assert_array_equal(_recent(history[:1]), np.arange(30.0))
    assert _recent([]).size == 0


# ----------------------------------------------------------------------------- arguments, result


def test_the_first_bad_count_in_signature_order_is_reported() -> None:
    with pytest.raises(ValueError, match="seed"):
        _check_counts(-1, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="num_steps"):
        _check_counts(0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _check_counts(0, 1, 1, 1, None, 0)
    assert _check_counts(np.int64(3), 4, 5, 6, None, 7) == (3, 4, 5, 6, None, 7)


def test_eval_data_must_match_the_per_example_shapes() -> None:
    arrays, eval_arrays = _check_arrays({"x": DATA}, {"x": DATA[:3]}, BATCH)
    assert list(arrays) == ["x"]
    assert eval_arrays is not None
    assert eval_arrays["x"].shape == (3, 2)
    with pytest.raises(ValueError, match=r"data has \{'x': \(2,\)\}, eval_data has \{'y'"):
        _check_arrays({"x": DATA}, {"y": DATA}, BATCH)
    with pytest.raises(ValueError, match=f"batch_size {N + 1} exceeds the {N} examples"):
        _check_arrays({"x": DATA}, None, N + 1)


def test_the_final_message_says_whether_the_run_was_resumed(tmp_path: Path) -> None:
    point = ResumePoint(tmp_path / "step_000000010", {"step": 10})
    assert _final_message(None, 20, 20) == "completed 20 steps"
    assert _final_message(point, 20, 20) == f"completed 20 steps (resumed from {point.path})"
    assert _final_message(point, 10, 10) == (
        f"resumed from {point.path} at step 10; nothing left to do"
    )
