"""Fitting any NumPyro model/guide pair to array data with SVI.

:func:`fit` runs stochastic variational inference on minibatches: each step
draws ``batch_size`` examples (a fresh permutation of the data per epoch,
drawn from the seed; the last partial batch of an epoch is dropped), calls
``model(**batch)`` / ``guide(**batch)`` and takes one optimiser step on the
ELBO. Each step is one call of a ``jax.jit``-compiled function (gather the
minibatch on the device, augment it if asked, ``svi.update``), so it compiles
once; calls are dispatched asynchronously and the host waits a few times a
second (for the progress bar, NaN checks, checkpoints and evaluations); how
many steps run between waits does not change the results.

The whole run is a function of the seed: the same seed, data and settings
give the same parameters and losses bit for bit (on one machine), whether the
run is done in one go or resumed from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from numpyro.infer.elbo import ELBO
from numpyro.infer.svi import SVIState
from tqdm import tqdm

from invppl._io import check_writable_folder
from invppl.infer._checks import (
    check_data,
    check_data_keys,
    check_observed_support,
    check_positive_int,
    check_seed,
    model_name,
    num_examples,
)
from invppl.infer._fit_checkpoints import (
    ResumePoint,
    find_resume_point,
    restore,
    restore_latest_intact,
    run_metadata,
    save_run,
)
from invppl.infer._fit_step import (
    Augment,
    Chunk,
    ExtendBatch,
    Step,
    check_augment,
    check_extend_batch,
    compile_step,
    run_steps,
)
from invppl.infer._interrupts import FitInterrupted, Interrupts
from invppl.infer.checkpoint import checkpoint_path
from invppl.infer.iwae import DATA_PLATE, _bounds

__all__ = ["FitInterrupted", "FitResult", "fit", "minibatch_indices"]

_logger = logging.getLogger(__name__)

MAX_STEPS_PER_CALL = 256
"""The most SVI steps dispatched between two waits of the host."""

_SECONDS_PER_CALL = 0.25
"""About how long the steps between two waits should take (progress-bar refresh)."""

KEEP_CHECKPOINTS = 3
"""How many of the latest checkpoints :func:`fit` keeps in its directory."""

CHECKPOINT_EVERY = 500
"""Steps between the checkpoints of a :func:`fit` given a ``checkpoint_dir`` only."""

LOSS_WINDOW = 50
"""The steps whose mean loss the progress bar and :meth:`FitResult.final_loss` report."""


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: the fitted ``numpyro.param`` values, constrained
            (``SVI.get_params(state)``).
        state: the final ``SVIState`` (optimiser state with the unconstrained
            parameters, the mutable state of e.g. NNX modules or None, the PRNG
            key); pass it on to continue with ``numpyro.infer.SVI``.
        losses: ``(steps_done,)`` the loss of every step, −ELBO per example of
            its minibatch, at the parameters the step started from.
        eval: one dict per evaluation, in order: ``"step"`` (steps done),
            ``"loss"`` (mean training loss over the ``eval_every`` steps before,
            or over all steps without ``eval_every``) and,
            with ``eval_data``, ``"elbo"`` and ``"iwae"`` (nats per example on
            the evaluation data; ``"iwae"`` with ``iwae_samples`` samples).
        stopped_early: whether the fit stopped before ``num_steps`` (a
            non-finite loss).
        message: what happened, in words.
        steps_done: the number of optimiser steps behind ``state``.
        seconds: wall-clock time of this call.
        best_step: with ``keep_best``, the step whose parameters ``params``
            holds (the best evaluation); None otherwise.

    ``params_and_state`` merges ``params`` with the mutable state, as
    ``numpyro.infer.Predictive(model, guide=guide, params=...)`` and invppl's
    bounds and diagnostics take them; ``final_loss()`` is the number the
    progress bar showed last.
    """

    params: dict[str, Array]
    state: SVIState
    losses: np.ndarray
    eval: list[dict[str, float]]
    stopped_early: bool
    message: str
    steps_done: int
    seconds: float
    best_step: int | None = None

    @property
    def params_and_state(self) -> dict[str, Any]:
        """``params`` with the mutable state (e.g. NNX counters, batch statistics) merged in.

        What a fitted model and guide need to run again, e.g. in
        ``numpyro.infer.Predictive(model, guide=guide, params=result.params_and_state)``.
        """
        return {**self.params, **(self.state.mutable_state or {})}

    def final_loss(self, window: int = LOSS_WINDOW) -> float:
        """The mean loss of the last ``window`` steps (NaN before any step).

        For SVI that is −ELBO per example of the training minibatches, in nats;
        it is the progress bar's last ``loss`` (the mean over the last
        :data:`LOSS_WINDOW` steps) and ``fit.json``'s ``final_loss``.
        """
        recent = self.losses[-window:]
        return float(np.mean(recent)) if recent.size else math.nan


# The parts of fit, in the order it uses them: checking the arguments, setting up the
# first state (or resuming), the minibatch schedule and chunks of compiled steps, the NaN
# stop, evaluations, the progress bar, and the FitResult.


def _check_every(value: int | None, name: str) -> int | None:
    """``value`` checked as a positive ``int``, or None."""
    return None if value is None else check_positive_int(value, name)


def _check_counts(
    seed: int,
    num_steps: int,
    batch_size: int,
    iwae_samples: int,
    eval_every: int | None,
    checkpoint_every: int | None,
) -> tuple[int, int, int, int, int | None, int | None]:
    """The integer arguments as ``int`` (or None), checked in this order."""
    return (
        check_seed(seed),
        check_positive_int(num_steps, "num_steps"),
        check_positive_int(batch_size, "batch_size"),
        check_positive_int(iwae_samples, "iwae_samples"),
        _check_every(eval_every, "eval_every"),
        _check_every(checkpoint_every, "checkpoint_every"),
    )


def _check_options(
    on_nan: str,
    augment: object,
    extend_batch: object,
    eval_data: object,
    checkpoint_every: int | None,
    checkpoint_dir: object,
    keep_best: bool = False,
) -> None:
    """Raises unless the modes and hooks are valid and their combination is allowed."""
    if on_nan not in ("stop", "raise"):
        raise ValueError(f'on_nan must be "stop" or "raise", got {on_nan!r}')
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a function (key, batch) -> batch, got {augment!r}")
    if extend_batch is not None and not callable(extend_batch):
        raise TypeError(
            f"extend_batch must be a function (key, batch, data) -> extras, got {extend_batch!r}"
        )
    if extend_batch is not None and eval_data is not None:
        raise ValueError(
            "eval_data cannot be combined with extend_batch: evaluation batches would lack "
            "the extras the model takes; evaluate the fitted parameters separately"
        )
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir to write to")
    if checkpoint_dir is not None:
        check_writable_folder(checkpoint_dir, "checkpoint_dir")  # type: ignore[arg-type]
    if keep_best and eval_data is None:
        raise ValueError("keep_best needs eval_data: it keeps the evaluation with the best ELBO")


def _optimizer_and_loss(
    optimizer: optax.GradientTransformation | None, loss: ELBO | None
) -> tuple[optax.GradientTransformation, ELBO]:
    """The optimiser (default ``optax.adam(1e-3)``, checked) and the loss (``Trace_ELBO()``)."""
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}"
        )
    return optimizer, Trace_ELBO() if loss is None else loss


def _check_arrays(
    data: Mapping[str, ArrayLike], eval_data: Mapping[str, ArrayLike] | None, batch_size: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """``data`` ``{name: (n, ...)}`` with ``n ≥ batch_size``, and ``eval_data`` ``(m, ...)``.

    ``eval_data`` (or None) must have the keys and per-example shapes of ``data``.
    """
    arrays = check_data(data, "data")
    n = num_examples(arrays)
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples in data")
    if eval_data is None:
        return arrays, None
    eval_arrays = check_data(eval_data, "eval_data")
    trailing = {k: a.shape[1:] for k, a in arrays.items()}
    eval_trailing = {k: a.shape[1:] for k, a in eval_arrays.items()}
    if trailing != eval_trailing:
        raise ValueError(
            "eval_data must have the keys and per-example shapes of data: "
            f"data has {trailing}, eval_data has {eval_trailing}"
        )
    return arrays, eval_arrays


def _first_batch(
    data: Mapping[str, Array],
    rows: np.ndarray,
    augment: Augment | None,
    extend_batch: ExtendBatch | None,
) -> dict[str, Array]:
    """Step 0's minibatch ``{name: (batch_size, ...)}`` and extras; checks the hooks on it.

    ``data`` ``{name: (n, ...)}`` on the device, ``rows`` ``(batch_size,)`` its indices.
    """
    batch = {name: array[rows] for name, array in data.items()}
    if augment is not None:
        check_augment(augment, batch)
    if extend_batch is not None:
        batch = {**batch, **check_extend_batch(extend_batch, batch, data)}
    return batch


def _init_state(
    svi: SVI, seed: int, init_params: Mapping[str, ArrayLike] | None, batch: Mapping[str, Array]
) -> SVIState:
    """``svi.init`` at ``PRNGKey(seed)`` on the first minibatch, compiled.

    Raises ``ValueError`` if the model or guide has mutable state that
    ``svi.loss`` cannot carry.
    """
    # compiled: run op by op, initialising a convolutional model took seconds
    state = jax.jit(svi.init)(
        jax.random.PRNGKey(seed),
        init_params=None if init_params is None else dict(init_params),
        **batch,
    )
    if state.mutable_state is not None:
        _check_loss_carries(svi.loss, sorted(state.mutable_state))
    return state


def _check_loss_carries(loss: ELBO, mutable: list[str]) -> None:
    """Raises ``ValueError`` unless ``loss`` supports the mutable state named ``mutable``."""
    if not isinstance(loss, Trace_ELBO | TraceMeanField_ELBO):
        raise ValueError(
            f"the model or guide has mutable state {mutable} (e.g. "
            f"non-Param NNX variables), which {type(loss).__name__} does not support; use "
            "Trace_ELBO or TraceMeanField_ELBO"
        )
    if getattr(loss, "num_particles", 1) != 1:
        raise ValueError(
            f"mutable state {mutable} needs num_particles=1 in the "
            f"loss, got num_particles={getattr(loss, 'num_particles', None)}"
        )


def _resume(
    found: tuple[ResumePoint | None, list[str]],
    state: SVIState,
    metadata: Mapping[str, Any],
    directory: str | None,
    num_steps: int,
) -> tuple[ResumePoint | None, SVIState, int, list[np.ndarray], list[dict[str, float]]]:
    """Where the loop starts: ``(point, state, steps done, [losses (steps,)], evaluations)``.

    ``found`` is :func:`find_resume_point`'s answer; a fresh start without a
    point, else the checkpoint's, once its settings are checked against
    ``metadata``. A checkpoint whose arrays cannot be read is set aside and the
    next intact one tried (its note joins ``found[1]``).
    """
    latest = restore_latest_intact(
        found, metadata, directory, num_steps, lambda point: restore(point, state)
    )
    if latest is None:
        return None, state, 0, [], []
    point, (restored, losses, evaluations) = latest
    _logger.info("resuming from %s at step %d", point.path, point.step)
    return point, restored, point.step, [losses], evaluations


def _recovery_note(notes: list[str], point: ResumePoint | None) -> str:
    """What was set aside and where the run restarts from, in words ("" if nothing was)."""
    if not notes:
        return ""
    where = f"resuming from {point.path.name}" if point is not None else "starting from step 0"
    return "; ".join(notes) + f"; {where}, the latest intact checkpoint"


def minibatch_indices(seed: int, num_examples: int, batch_size: int, step: int) -> np.ndarray:
    """The example indices of step ``step``'s minibatch: ``(batch_size,)``.

    Epoch e = step // (num_examples // batch_size) uses the permutation
    ``numpy.random.default_rng([seed, e]).permutation(num_examples)``; its
    last ``num_examples % batch_size`` entries are dropped.

    >>> minibatch_indices(0, 10, 4, 0).shape
    (4,)
    >>> sorted(np.concatenate([minibatch_indices(0, 10, 5, s) for s in (0, 1)]).tolist())
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    return _Schedule(seed, num_examples, batch_size).rows(step)


def _epoch_permutation(seed: int, n: int, epoch: int) -> np.ndarray:
    """``(n,)`` the order of the examples in epoch ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class _Schedule:
    """Minibatch indices for a range of steps, caching one epoch's permutation."""

    def __init__(self, seed: int, n: int, batch_size: int) -> None:
        self.seed, self.n, self.batch_size = seed, n, batch_size
        self.steps_per_epoch = n // batch_size
        self._epoch = -1
        self._permutation = np.arange(n)

    def rows(self, step: int) -> np.ndarray:
        """``(batch_size,)`` step ``step``'s example indices (see :func:`minibatch_indices`)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._permutation = _epoch_permutation(self.seed, self.n, epoch)
        return self._permutation[position * self.batch_size : (position + 1) * self.batch_size]

    def block(self, start: int, count: int) -> np.ndarray:
        """``(count, batch_size)`` int32: row i holds step ``start + i``'s indices."""
        indices = np.zeros((count, self.batch_size), dtype=np.int32)
        for offset in range(count):
            indices[offset] = self.rows(start + offset)
        return indices


def _next_count(step: int, num_steps: int, per_call: int, *every: int | None) -> int:
    """How many steps the next chunk runs, after ``step`` steps.

    At most ``per_call``, and never past ``num_steps`` or the next multiple of
    any ``every`` (None: no such boundary), where an evaluation or a checkpoint
    is due.
    """
    boundary = num_steps
    for period in every:
        if period is not None:
            boundary = min(boundary, (step // period + 1) * period)
    return min(boundary - step, per_call)


def _next_per_call(done: int, seconds: float, per_call: int) -> int:
    """Steps per chunk for about ``_SECONDS_PER_CALL`` seconds, given the last chunk's rate.

    At least 1, at most ``4 * per_call`` and ``MAX_STEPS_PER_CALL``.
    """
    rate = done / max(seconds, 1e-9)
    return int(min(max(1, rate * _SECONDS_PER_CALL), 4 * per_call, MAX_STEPS_PER_CALL))


def _failure(chunk: Chunk, step: int, num_steps: int) -> str | None:
    """What went wrong in ``chunk``, or None; ``step``: the steps done before its failure.

    Either the loss of step ``step + 1`` (1-based) is not finite, or (all its
    losses finite) the state after the chunk's last step, step ``step``, is not.
    """
    if chunk.bad_loss:  # the loss at the state after `step` steps is not finite
        return (
            f"the loss became non-finite ({chunk.losses[chunk.done]}) at step {step + 1} "
            f"of {num_steps}"
        )
    if not chunk.state_finite:  # the state after `step` steps is not finite
        return f"the parameters became non-finite at step {step} of {num_steps}"
    return None


def _rewind(
    anchors: list[tuple[int, SVIState]],
    target: int,
    step: Step,
    data: Mapping[str, Array],
    schedule: _Schedule,
) -> tuple[int, SVIState]:
    """``(target, state after target steps)``, recomputed from the latest anchor before it.

    ``anchors`` are ``(steps done, state)`` pairs, e.g. the start states of the
    last two chunks; the same steps from the same state give the same bits.
    Without an anchor at or before ``target`` (e.g. the step right after
    resuming) the first anchor is returned.
    """
    for anchor_step, anchor_state in reversed(anchors):
        if anchor_step <= target:
            if target == anchor_step:
                return anchor_step, anchor_state
            rows = schedule.block(anchor_step, target - anchor_step)
            return target, run_steps(step, anchor_state, data, rows, anchor_step)[0]
    return anchors[0]


def _stop_message(failure: str, kept: int, step: int) -> str:
    """The message of a fit that stopped at ``failure``, returning the state after ``kept``."""
    if kept < step:
        outcome = f"returning the state after step {kept}, the last whose loss was finite"
    else:
        outcome = f"returning the state after step {kept}; no earlier state is held"
    return f"stopped: {failure}; {outcome}"


def _report(model: Callable[..., Any], message: str, progress: bool) -> None:
    """Logs ``message`` as a warning, and prints it to stderr with ``progress``."""
    _logger.warning("fit %s: %s", model_name(model), message)
    if progress:
        tqdm.write(f"fit {model_name(model)}: {message}", file=sys.stderr)


def _report_stop(model: Callable[..., Any], message: str, progress: bool, on_nan: str) -> None:
    """Reports a stop (:func:`_report`); raises ``FloatingPointError`` with ``"raise"``."""
    _report(model, message, progress)
    if on_nan == "raise":
        raise FloatingPointError(message)


def _concat(history: list[np.ndarray], dtype: np.dtype[Any]) -> np.ndarray:
    """``(steps,)`` the losses so far, from their chunks."""
    return np.concatenate(history) if history else np.zeros(0, dtype)


def _is_due(step: int, every: int | None, num_steps: int) -> bool:
    """Whether ``step`` is a multiple of ``every`` (if given) or the last step."""
    return (every is not None and step % every == 0) or step == num_steps


@dataclasses.dataclass(frozen=True)
class _Evaluation:
    """What :func:`fit` evaluates, and when.

    Attributes:
        model, guide: the fitted pair.
        arrays: ``eval_data`` ``{name: (m, ...)}``, or None.
        every: ``eval_every``, or None.
        seed: seeds the bounds' importance samples.
        iwae_samples: importance samples per example of the IWAE bound.
    """

    model: Callable[..., Any]
    guide: Callable[..., Any]
    arrays: dict[str, np.ndarray] | None
    every: int | None
    seed: int
    iwae_samples: int

    def due(self, step: int, num_steps: int) -> bool:
        """Whether to evaluate after ``step`` steps (never without eval_data or eval_every)."""
        active = self.arrays is not None or self.every is not None
        return active and _is_due(step, self.every, num_steps)

    def record(self, svi: SVI, state: SVIState, step: int, losses: np.ndarray) -> dict[str, float]:
        """The evaluation after ``step`` steps; ``losses`` ``(step,)`` are all of them so far.

        ``"loss"`` is the mean of the last ``every`` losses (all without ``every``);
        ``"elbo"`` and ``"iwae"`` (with ``arrays``) are the bounds on ``arrays``.
        """
        window = step if self.every is None else min(self.every, step)
        recent = losses[step - window : step]
        record: dict[str, float] = {
            "step": step,
            "loss": float(np.mean(recent)) if recent.size else math.nan,
        }
        if self.arrays is not None:
            params = {**svi.get_params(state), **(state.mutable_state or {})}
            iwae, elbo = _bounds(
                self.model,
                self.guide,
                params,
                self.arrays,
                seed=self.seed,
                num_samples=self.iwae_samples,
                batch_size=128,
                plate_name=DATA_PLATE,
            )
            record.update(elbo=elbo, iwae=iwae)
        return record


@dataclasses.dataclass(frozen=True)
class _Best:
    """The state of the evaluation with the highest ELBO so far (``keep_best``)."""

    elbo: float
    step: int
    state: SVIState

    @staticmethod
    def update(best: _Best | None, record: Mapping[str, float], state: SVIState) -> _Best:
        """``best``, or the evaluation ``record`` of ``state`` if its ELBO is higher."""
        elbo = float(record["elbo"])
        if best is not None and not elbo > best.elbo:  # a NaN ELBO never wins
            return best
        return _Best(elbo, int(record["step"]), state)


def _progress_bar(model: Callable[..., Any], num_steps: int, step: int, progress: bool) -> tqdm:
    """A tqdm bar over the steps, starting at ``step``; disabled without ``progress``."""
    return tqdm(
        total=num_steps,
        initial=step,
        disable=not progress,
        desc=f"fit {model_name(model)}",
        unit="step",
        dynamic_ncols=True,
    )


def _recent(history: list[np.ndarray], window: int = LOSS_WINDOW) -> np.ndarray:
    """``(≤ window,)`` the last ``window`` losses of the chunks in ``history``."""
    tail: list[np.ndarray] = []
    count = 0
    for chunk in reversed(history):
        if count >= window:
            break
        tail.insert(0, chunk)
        count += chunk.size
    return np.concatenate(tail)[-window:] if tail else np.zeros(0)


def _postfix(losses: np.ndarray, record: Mapping[str, float] | None = None) -> dict[str, str]:
    """The bar's postfix: the mean of the last ``losses`` ``(≤ LOSS_WINDOW,)``, the last IWAE.

    >>> _postfix(np.array([1.0, 2.0]), {"step": 2, "iwae": -3.14159})
    {'loss (mean of last 50 steps)': '1.5', 'eval iwae': '-3.142'}
    """
    postfix = {f"loss (mean of last {LOSS_WINDOW} steps)": f"{float(np.mean(losses)):.4g}"}
    if record is not None:
        postfix["eval iwae"] = f"{record['iwae']:.4g}"
    return postfix


def _final_message(point: ResumePoint | None, num_steps: int, step: int, recovery: str = "") -> str:
    """What a fit that did not stop early did, in words, after ``step`` steps.

    ``recovery`` is :func:`_recovery_note`'s sentence, added when not empty.
    """
    if point is not None and point.step == num_steps:
        message = f"resumed from {point.path} at step {step}; nothing left to do"
    else:
        resumed = "" if point is None else f" (resumed from {point.path})"
        message = f"completed {step} steps{resumed}"
    return message if not recovery else f"{message}; {recovery}"


def _interrupted(
    model: Callable[..., Any], number: int, step: int, num_steps: int, saved: Path | None
) -> FitInterrupted:
    """The :class:`FitInterrupted` of a fit stopped by signal ``number`` after ``step`` steps.

    ``saved`` is the checkpoint written at ``step``, or None.
    """
    name = signal.Signals(number).name
    what = f"fit {model_name(model)} interrupted by {name} after step {step} of {num_steps}"
    if saved is None:
        return FitInterrupted(f"{what}; nothing saved (no checkpoint_dir)", number, step, None)
    return FitInterrupted(
        f"{what}; saved the checkpoint {saved}; fit again with the same checkpoint_dir to continue",
        number,
        step,
        saved,
    )


def _result(
    svi: SVI,
    state: SVIState,
    step: int,
    losses: np.ndarray,
    evaluations: list[dict[str, float]],
    message: str,
    stopped_early: bool,
    started: float,
    best: _Best | None = None,
) -> FitResult:
    """The :class:`FitResult` after ``step`` steps, ``losses`` ``(step,)``.

    ``started`` is the ``time.perf_counter()`` at the start of the fit; with
    ``best``, the parameters are those of its state (``keep_best``).
    """
    return FitResult(
        params=svi.get_params(state if best is None else best.state),
        state=state,
        losses=losses,
        eval=evaluations,
        stopped_early=stopped_early,
        message=message,
        steps_done=step,
        seconds=time.perf_counter() - started,
        best_step=None if best is None else best.step,
    )


def fit(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    num_steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None = None,
    loss: ELBO | None = None,
    eval_data: Mapping[str, ArrayLike] | None = None,
    eval_every: int | None = None,
    iwae_samples: int = 64,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    init_params: Mapping[str, ArrayLike] | None = None,
    on_nan: Literal["stop", "raise"] = "stop",
    augment: Augment | None = None,
    extend_batch: ExtendBatch | None = None,
    keep_best: bool = False,
) -> FitResult:
    """Fits ``model`` and ``guide`` to ``data`` by minibatch SVI.

    The model and guide are called as ``model(**batch)`` with ``batch`` a
    ``batch_size``-row slice of every array in ``data``, and put the examples in
    ``numpyro.plate("data", x.shape[0])``. Flax NNX networks enter through
    ``numpyro.contrib.module.nnx_module``; their non-``Param`` variables (batch
    statistics, counters) are NumPyro *mutable state*, carried in
    ``SVIState.mutable_state`` from step to step, saved in checkpoints and
    returned in ``FitResult.state``. Only ``Trace_ELBO`` and
    ``TraceMeanField_ELBO`` (with one particle) support mutable state.

    Args:
        model: a NumPyro model.
        guide: its guide (e.g. amortised over the batch's arrays).
        data: ``{keyword: (n, ...)}`` arrays sharing their leading axis.
        seed: seeds the parameters' initialisation, the ELBO's samples and the
            minibatch order; an integer in [0, 2**32).
        num_steps: total optimiser steps (counting those of a resumed run).
        batch_size: examples per step, at most ``n``.
        optimizer: an optax transformation; default ``optax.adam(1e-3)``.
        loss: a NumPyro ELBO; default ``Trace_ELBO()``. The reported loss is
            the ELBO loss divided by ``batch_size`` (nats per example).
        eval_data: arrays like ``data`` on which to report the ELBO and the
            IWAE bound at every evaluation.
        eval_every: evaluate after every ``eval_every`` steps; evaluations also
            happen at the end when ``eval_data`` or ``eval_every`` is given.
        iwae_samples: importance samples per example for the evaluation bounds.
        checkpoint_dir: where to save checkpoints (checked to be writable
            before any work; ``step_<n>/``, the latest
            ``KEEP_CHECKPOINTS`` kept): the SVI state, the step, the losses and
            JSON metadata (seed, batch size, model and guide names, data
            shapes and a SHA-256 of the data, invppl version, the
            evaluations). Saved every
            ``checkpoint_every`` steps and at the end.
        checkpoint_every: steps between checkpoints (default
            :data:`CHECKPOINT_EVERY` when there is a ``checkpoint_dir``). On
            SIGINT (Ctrl-C) or SIGTERM the fit finishes the running chunk of
            steps, saves a checkpoint and raises :class:`FitInterrupted`.
        resume: continue from the latest complete checkpoint in
            ``checkpoint_dir``, giving exactly the result of an uninterrupted
            run. With ``resume=False`` the directory must hold no checkpoints.
            A damaged checkpoint (a file truncated, altered or deleted) is
            moved aside to ``<name>.damaged`` and the latest intact one
            resumed; ``message`` says so (and, with ``progress``, a line on
            stderr).
        progress: show a tqdm progress bar with the running loss; nothing is
            printed when False.
        init_params: initial values (constrained) for ``numpyro.param`` sites;
            unused when resuming.
        on_nan: what to do when a step's loss or its parameters are not finite:
            ``"stop"`` returns the last state whose loss was finite with
            ``stopped_early=True`` and a ``message`` naming the step (also
            logged as a warning to ``logging``); ``"raise"`` raises
            ``FloatingPointError`` with that message.
        augment: a data augmentation, ``augment(key, batch) -> batch``, applied
            to each training minibatch inside the compiled step (traceable; it
            must keep the arrays' shapes). Step ``s`` uses the key
            ``fold_in(fold_in(PRNGKey(seed), 1), s)``, so an augmented fit is reproducible
            and resumable too. Evaluations use ``eval_data`` as given.
        extend_batch: draws that join each training minibatch,
            ``extend_batch(key, batch, data) -> extras`` (traceable, inside the
            compiled step; ``data`` is the whole training data; ``extras`` are
            arrays under new names, of fixed shapes). Step ``s`` uses the key
            ``fold_in(fold_in(PRNGKey(seed), 2), s)``. Model and guide see the
            same extras, e.g. the edges and non-edges a graph model's step
            samples (:class:`invppl.infer.GraphBatches`). Not combined with
            ``eval_data``, whose batches would lack the extras.
        keep_best: early stopping: return in ``FitResult.params`` the parameters
            of the evaluation with the highest ELBO on ``eval_data`` (among this
            call's evaluations), and its step in ``FitResult.best_step``;
            ``state``, ``losses`` and checkpoints still describe the last step.
            Needs ``eval_data``; choose ``eval_every`` for how often to look.

    Returns:
        A :class:`FitResult`.

    Raises:
        TypeError, ValueError: for invalid arguments, before any work: empty
            data, leading axes that differ, ``batch_size`` above ``n``, NaN or
            infinite values in the data, data keys the model or guide does not
            take, data outside the support of the model's observed site (e.g.
            images in 0..255 under a continuous Bernoulli), a non-positive
            ``num_steps``, a ``checkpoint_dir`` that cannot be written, a
            checkpoint written by a different run, mutable state with a loss
            that cannot carry it.
        FloatingPointError: with ``on_nan="raise"``, at a non-finite loss.
        FitInterrupted: on SIGINT or SIGTERM, after saving a checkpoint.

    >>> import numpyro, numpyro.distributions as dist
    >>> def model(x):
    ...     loc = numpyro.param("loc", 0.0)
    ...     with numpyro.plate("data", x.shape[0]):
    ...         numpyro.sample("x", dist.Normal(loc, 1.0), obs=x)
    >>> def guide(x):
    ...     pass
    >>> x = np.full(64, 3.0)
    >>> result = fit(model, guide, {"x": x}, seed=0, num_steps=200, batch_size=16,
    ...              optimizer=optax.adam(0.1), progress=False)
    >>> round(float(result.params["loc"]), 2), result.losses.shape
    (3.0, (200,))
    """
    started = time.perf_counter()
    seed, num_steps, batch_size, iwae_samples, eval_every, checkpoint_every = _check_counts(
        seed, num_steps, batch_size, iwae_samples, eval_every, checkpoint_every
    )
    _check_options(
        on_nan, augment, extend_batch, eval_data, checkpoint_every, checkpoint_dir, keep_best
    )
    optimizer, loss = _optimizer_and_loss(optimizer, loss)
    arrays, eval_arrays = _check_arrays(data, eval_data, batch_size)
    directory = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    if directory is not None and checkpoint_every is None:
        checkpoint_every = CHECKPOINT_EVERY
    found = find_resume_point(directory, resume, num_steps)

    # Set-up: the SVI state from the first minibatch's shapes, or from the checkpoint.
    svi = SVI(model, guide, optimizer, loss)
    schedule = _Schedule(seed, num_examples(arrays), batch_size)
    device_data = {name: jnp.asarray(array) for name, array in arrays.items()}
    first_batch = _first_batch(device_data, schedule.rows(0), augment, extend_batch)
    for function, role in ((model, "model"), (guide, "guide")):
        check_data_keys(function, list(first_batch), role, "data")
    check_observed_support(model, first_batch, arrays)
    state = _init_state(svi, seed, init_params, first_batch)
    metadata = (
        {}
        if directory is None
        else run_metadata(model, guide, arrays, state, seed, batch_size, augment, extend_batch)
    )
    point, state, step, history, evaluations = _resume(found, state, metadata, directory, num_steps)
    recovery = _recovery_note(found[1], point)
    if recovery:
        _report(model, recovery, progress)
    loss_dtype = np.dtype(jnp.result_type(float))
    one_step = compile_step(svi, batch_size, loss_dtype, seed, augment, extend_batch)
    evaluation = _Evaluation(model, guide, eval_arrays, eval_every, seed, iwae_samples)

    # The loop: chunks of steps between two waits of the host, each ending at the latest
    # where an evaluation or a checkpoint is due; a SIGINT or SIGTERM ends it after a chunk.
    anchors: list[tuple[int, SVIState]] = []  # the start states of the last two chunks
    per_call, stopped, best = 1, None, None
    with _progress_bar(model, num_steps, step, progress) as bar, Interrupts() as interrupts:
        while step < num_steps:
            count = _next_count(step, num_steps, per_call, checkpoint_every, eval_every)
            rows = schedule.block(step, count)
            anchors = [*anchors[-1:], (step, state)]
            call_started = time.perf_counter()
            state, chunk = run_steps(one_step, state, device_data, rows, step)
            per_call = _next_per_call(chunk.done, time.perf_counter() - call_started, per_call)
            history.append(chunk.good_losses)
            step += chunk.done
            failure = _failure(chunk, step, num_steps)
            if failure is not None:  # keep the last state whose loss was finite
                kept, state = _rewind(anchors, step - 1, one_step, device_data, schedule)
                stopped = _stop_message(failure, kept, step)
                history, step = [_concat(history, loss_dtype)[:kept]], kept
                break
            bar.update(chunk.done)
            bar.set_postfix(_postfix(_recent(history)))
            if evaluation.due(step, num_steps):
                evaluations.append(
                    evaluation.record(svi, state, step, _concat(history, loss_dtype))
                )
                best = _Best.update(best, evaluations[-1], state) if keep_best else None
                if "iwae" in evaluations[-1]:
                    bar.set_postfix(_postfix(_recent(history), evaluations[-1]))
            signalled = interrupts.received is not None and step < num_steps
            if directory is not None and (signalled or _is_due(step, checkpoint_every, num_steps)):
                losses = _concat(history, loss_dtype)
                save_run(directory, step, state, losses, evaluations, metadata, KEEP_CHECKPOINTS)
            if signalled:
                saved = None if directory is None else checkpoint_path(directory, step)
                raise _interrupted(model, interrupts.received, step, num_steps, saved)  # type: ignore[arg-type]
    if stopped is not None:
        _report_stop(model, stopped, progress, on_nan)
    message = _final_message(point, num_steps, step, recovery) if stopped is None else stopped
    losses = _concat(history, loss_dtype)
    if best is not None:
        message += f"; kept the parameters of step {best.step}, the best ELBO on eval_data"
    return _result(
        svi, state, step, losses, evaluations, message, stopped is not None, started, best
    )
