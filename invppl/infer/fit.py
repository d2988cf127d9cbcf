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
import hashlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
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

import invppl
from invppl.infer._checks import (
    check_data,
    check_positive_int,
    check_seed,
    model_name,
    num_examples,
)
from invppl.infer.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_metadata,
    save_checkpoint,
)
from invppl.infer.iwae import DATA_PLATE, _bounds

__all__ = ["FitResult", "fit", "minibatch_indices"]

_logger = logging.getLogger(__name__)

MAX_STEPS_PER_CALL = 256
"""The most SVI steps dispatched between two waits of the host."""

_SECONDS_PER_CALL = 0.25
"""About how long the steps between two waits should take (progress-bar refresh)."""

KEEP_CHECKPOINTS = 3
"""How many of the latest checkpoints :func:`fit` keeps in its directory."""


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
    """

    params: dict[str, Array]
    state: SVIState
    losses: np.ndarray
    eval: list[dict[str, float]]
    stopped_early: bool
    message: str
    steps_done: int
    seconds: float


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
    return np.random.default_rng([seed, epoch]).permutation(n)


class _Schedule:
    """Minibatch indices for a range of steps, caching one epoch's permutation."""

    def __init__(self, seed: int, n: int, batch_size: int) -> None:
        self.seed, self.n, self.batch_size = seed, n, batch_size
        self.steps_per_epoch = n // batch_size
        self._epoch = -1
        self._permutation = np.arange(n)

    def rows(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._permutation = _epoch_permutation(self.seed, self.n, epoch)
        return self._permutation[position * self.batch_size : (position + 1) * self.batch_size]

    def block(self, start: int, count: int, capacity: int) -> np.ndarray:
        """``(capacity, batch_size)`` int32 indices; rows past ``count`` are zeros."""
        indices = np.zeros((capacity, self.batch_size), dtype=np.int32)
        for offset in range(count):
            indices[offset] = self.rows(start + offset)
        return indices


def _all_finite(tree: Any) -> Array:
    """Whether every floating-point leaf of ``tree`` is finite (a scalar bool)."""
    checks = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


Augment = Callable[[Array, dict[str, Array]], dict[str, Array]]
"""``augment(key, batch) -> batch``: a traceable, random change of a minibatch."""

ExtendBatch = Callable[[Array, Mapping[str, Array], Mapping[str, Array]], Mapping[str, Array]]
"""``extend_batch(key, batch, data) -> extras``: traceable draws that join a minibatch.

``data`` is the whole training data (on the device, an argument of the compiled
step, never a constant of it); ``extras`` are new arrays of fixed shapes, e.g. a
graph's edges sampled for the step with their endpoints' rows of ``data``.
"""


def _make_runner(
    svi: SVI,
    batch_size: int,
    capacity: int,
    loss_dtype: Any,
    augment: Augment | None = None,
    augment_key: Array | None = None,
    extend_batch: ExtendBatch | None = None,
    extend_key: Array | None = None,
) -> Callable[..., tuple[SVIState, Array, Array, Array, Array]]:
    """Runs up to ``num`` SVI steps, reporting the first non-finite loss.

    ``run(state, data, indices, num, start)`` with ``indices`` ``(capacity,
    batch_size)`` (row i: step ``start + i``'s example indices) returns ``(state, losses,
    done, bad, finite)``: the state after the ``num`` steps, the ``(capacity,)``
    losses, the number of steps before the first non-finite loss, whether there
    was one (then ``losses[done]`` is that loss and ``state`` is garbage), and
    whether every value in ``state`` is finite.

    Each step is one call of a compiled function (minibatch gather, augmentation,
    ``svi.update``); the calls are dispatched asynchronously and the host waits
    once, at the end. Steps are not fused into a ``lax.while_loop`` or ``scan``:
    on XLA:CPU a convolutional model's step inside a loop ran 7x slower than the
    same step compiled alone (jax 0.12, measured on the SGM's pose network).

    The last good state is not kept: after a failure :func:`fit` recomputes it
    by running again from an earlier state, which gives the same bits.
    """

    def one_step(
        state: SVIState, data: Mapping[str, Array], rows: Array, step: Array
    ) -> tuple[SVIState, Array]:
        batch = {name: jnp.take(array, rows, axis=0) for name, array in data.items()}
        if augment is not None and augment_key is not None:
            batch = augment(jax.random.fold_in(augment_key, step), batch)
        if extend_batch is not None and extend_key is not None:
            batch = {**batch, **extend_batch(jax.random.fold_in(extend_key, step), batch, data)}
        state, loss = svi.update(state, **batch)
        return state, (loss / batch_size).astype(loss_dtype)

    compiled_step = jax.jit(one_step)
    all_finite = jax.jit(_all_finite)

    def run(
        state: SVIState, data: Mapping[str, Array], indices: Array, num: Array, start: Array
    ) -> tuple[SVIState, Array, Array, Array, Array]:
        count, first = int(num), int(start)
        step_losses = []
        for offset in range(count):
            state, loss = compiled_step(state, data, indices[offset], np.int32(first + offset))
            step_losses.append(loss)
        losses = np.full((capacity,), np.nan, dtype=loss_dtype)
        if step_losses:
            losses[:count] = np.asarray(jnp.stack(step_losses))
        bad_steps = np.flatnonzero(~np.isfinite(losses[:count]))
        done = int(bad_steps[0]) if bad_steps.size else count
        return (
            state,
            jnp.asarray(losses),
            jnp.asarray(done, jnp.int32),
            jnp.asarray(bad_steps.size > 0),
            all_finite(state),
        )

    return run


def _check_augment(augment: Augment, batch: Mapping[str, Array]) -> None:
    """Raises ``ValueError`` unless ``augment`` keeps the batch's keys, shapes and dtypes."""
    expected = {name: (array.shape, array.dtype) for name, array in batch.items()}
    out = jax.eval_shape(augment, jax.random.PRNGKey(0), dict(batch))
    if not isinstance(out, Mapping):
        raise ValueError(f"augment must return a dict of arrays, got {type(out).__name__}")
    got = {name: (tuple(leaf.shape), leaf.dtype) for name, leaf in out.items()}
    if got != expected:
        raise ValueError(
            f"augment must keep the minibatch's keys, shapes and dtypes: given {expected}, "
            f"it returned {got}"
        )


def _check_extend_batch(
    extend_batch: ExtendBatch, batch: Mapping[str, Array], data: Mapping[str, Array]
) -> dict[str, Array]:
    """The extras of the first step; ``ValueError`` unless they are new names of arrays."""
    extras = extend_batch(jax.random.PRNGKey(0), dict(batch), dict(data))
    if not isinstance(extras, Mapping) or not extras:
        raise ValueError(
            "extend_batch must return a non-empty dict of arrays (new names), got "
            f"{type(extras).__name__}"
        )
    clash = sorted(set(extras) & set(batch))
    if clash:
        raise ValueError(
            f"extend_batch must add new arrays, but returned {clash}, which the minibatch "
            f"already has (its keys: {sorted(batch)}); use augment to change them"
        )
    return {name: jnp.asarray(value) for name, value in extras.items()}


def _fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """A SHA-256 of the data's keys, shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        digest.update(f"{name}:{array.shape}:{array.dtype};".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _check_every(value: int | None, name: str) -> int | None:
    return None if value is None else check_positive_int(value, name)


def _metadata(
    *,
    seed: int,
    batch_size: int,
    model: Callable[..., Any],
    guide: Callable[..., Any],
    arrays: Mapping[str, np.ndarray],
    structure: str,
    augment: Callable[..., Any] | None,
    extend_batch: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it."""
    return {
        "augment": None if augment is None else model_name(augment),
        "extend_batch": None if extend_batch is None else model_name(extend_batch),
        "seed": seed,
        "batch_size": batch_size,
        "model": model_name(model),
        "guide": model_name(guide),
        "num_examples": num_examples(arrays),
        "data": {name: [list(a.shape[1:]), str(a.dtype)] for name, a in arrays.items()},
        "data_sha256": _fingerprint(arrays),
        "state_structure": structure,
    }


def _check_resumable(
    path: os.PathLike[str], saved: Mapping[str, Any], now: Mapping[str, Any]
) -> None:
    different = [
        f"{key}: {saved.get(key)!r} in the checkpoint, {value!r} now"
        for key, value in now.items()
        if saved.get(key) != value
    ]
    if different:
        raise ValueError(
            f"checkpoint {path} was written by a different run and cannot be resumed ("
            + "; ".join(different)
            + "); use another checkpoint_dir"
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
        checkpoint_dir: where to save checkpoints (``step_<n>/``, the latest
            ``KEEP_CHECKPOINTS`` kept): the SVI state, the step, the losses and
            JSON metadata (seed, batch size, model and guide names, data
            shapes and a SHA-256 of the data, invppl version, the
            evaluations). Saved every
            ``checkpoint_every`` steps and at the end.
        checkpoint_every: steps between checkpoints; needs ``checkpoint_dir``.
        resume: continue from the latest complete checkpoint in
            ``checkpoint_dir``, giving exactly the result of an uninterrupted
            run. With ``resume=False`` the directory must hold no checkpoints.
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

    Returns:
        A :class:`FitResult`.

    Raises:
        TypeError, ValueError: for invalid arguments, before any work: empty
            data, leading axes that differ, ``batch_size`` above ``n``, NaN or
            infinite values in the data, a non-positive ``num_steps``, a
            checkpoint written by a different run, mutable state with a loss
            that cannot carry it.
        FloatingPointError: with ``on_nan="raise"``, at a non-finite loss.

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
    seed = check_seed(seed)
    num_steps = check_positive_int(num_steps, "num_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    iwae_samples = check_positive_int(iwae_samples, "iwae_samples")
    eval_every = _check_every(eval_every, "eval_every")
    checkpoint_every = _check_every(checkpoint_every, "checkpoint_every")
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
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}"
        )
    loss = Trace_ELBO() if loss is None else loss
    arrays = check_data(data, "data")
    n = num_examples(arrays)
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples in data")
    eval_arrays = None if eval_data is None else check_data(eval_data, "eval_data")
    if eval_arrays is not None:
        trailing = {k: (a.shape[1:], a.dtype) for k, a in arrays.items()}
        eval_trailing = {k: (a.shape[1:], a.dtype) for k, a in eval_arrays.items()}
        if trailing.keys() != eval_trailing.keys() or any(
            trailing[k][0] != eval_trailing[k][0] for k in trailing
        ):
            raise ValueError(
                "eval_data must have the keys and per-example shapes of data: "
                f"data has { {k: s for k, (s, _) in trailing.items()} }, "
                f"eval_data has { {k: s for k, (s, _) in eval_trailing.items()} }"
            )
    directory = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    existing = list_checkpoints(directory) if directory is not None else []
    if existing and not resume:
        raise ValueError(
            f"checkpoint_dir {directory} already holds checkpoints (latest step "
            f"{existing[-1][0]}); pass resume=True to continue that run or choose an empty "
            "directory"
        )
    resume_from = existing[-1][1] if existing else None
    saved_metadata = None if resume_from is None else load_metadata(resume_from)
    if saved_metadata is not None and int(saved_metadata.get("step", -1)) > num_steps:
        raise ValueError(
            f"checkpoint {resume_from} is at step {saved_metadata.get('step')}, past "
            f"num_steps={num_steps}; raise num_steps or use another checkpoint_dir"
        )

    # Set-up: SVI state from the first minibatch's shapes.
    schedule = _Schedule(seed, n, batch_size)
    device_data = {name: jnp.asarray(array) for name, array in arrays.items()}
    first_rows = schedule.rows(0)
    first_batch = {name: array[first_rows] for name, array in device_data.items()}
    if augment is not None:
        _check_augment(augment, first_batch)
    if extend_batch is not None:
        first_batch = {**first_batch, **_check_extend_batch(extend_batch, first_batch, device_data)}
    svi = SVI(model, guide, optimizer, loss)
    # compiled: run op by op, initialising a convolutional model took seconds
    state = jax.jit(svi.init)(
        jax.random.PRNGKey(seed),
        init_params=None if init_params is None else dict(init_params),
        **first_batch,
    )
    if state.mutable_state is not None:
        if not isinstance(loss, Trace_ELBO | TraceMeanField_ELBO):
            raise ValueError(
                f"the model or guide has mutable state {sorted(state.mutable_state)} (e.g. "
                f"non-Param NNX variables), which {type(loss).__name__} does not support; use "
                "Trace_ELBO or TraceMeanField_ELBO"
            )
        if getattr(loss, "num_particles", 1) != 1:
            raise ValueError(
                f"mutable state {sorted(state.mutable_state)} needs num_particles=1 in the "
                f"loss, got num_particles={getattr(loss, 'num_particles', None)}"
            )
    metadata = (
        {}
        if directory is None
        else _metadata(
            seed=seed,
            batch_size=batch_size,
            model=model,
            guide=guide,
            arrays=arrays,
            structure=str(jax.tree.structure(state)),
            augment=augment,
            extend_batch=extend_batch,
        )
    )
    history: list[np.ndarray] = []
    evaluations: list[dict[str, float]] = []
    step = 0
    if resume_from is not None and saved_metadata is not None:
        _check_resumable(resume_from, saved_metadata, metadata)
        step = int(saved_metadata["step"])
        target = {
            "svi_state": state,
            "losses": np.zeros((step,), np.dtype(saved_metadata["loss_dtype"])),
            "step": np.asarray(0, np.int64),
        }
        restored, _ = load_checkpoint(resume_from, target)
        state = restored["svi_state"]
        history.append(np.asarray(restored["losses"]))
        evaluations = [dict(record) for record in saved_metadata.get("eval", [])]
        _logger.info("resuming from %s at step %d", resume_from, step)
    loss_dtype = np.dtype(jnp.result_type(float))
    augment_key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    extend_key = jax.random.fold_in(jax.random.PRNGKey(seed), 2)
    runner = _make_runner(
        svi,
        batch_size,
        MAX_STEPS_PER_CALL,
        loss_dtype,
        augment,
        augment_key,
        extend_batch,
        extend_key,
    )

    def evaluate(current: SVIState, steps: int) -> dict[str, float]:
        window = steps if eval_every is None else min(eval_every, steps)
        recent = np.concatenate(history)[steps - window : steps] if history else np.zeros(0)
        record: dict[str, float] = {
            "step": steps,
            "loss": float(np.mean(recent)) if recent.size else math.nan,
        }
        if eval_arrays is not None:
            params = {**svi.get_params(current), **(current.mutable_state or {})}
            iwae, elbo = _bounds(
                model,
                guide,
                params,
                eval_arrays,
                seed=seed,
                num_samples=iwae_samples,
                batch_size=128,
                plate_name=DATA_PLATE,
            )
            record.update(elbo=elbo, iwae=iwae)
        return record

    def save(current: SVIState, steps: int) -> None:
        assert directory is not None
        losses = np.concatenate(history) if history else np.zeros(0, loss_dtype)
        content = {"svi_state": current, "losses": losses, "step": np.asarray(steps, np.int64)}
        info = {
            **metadata,
            "step": steps,
            "loss_dtype": losses.dtype.name,
            "eval": evaluations,
            "invppl_version": invppl.__version__,
        }
        path = checkpoint_path(directory, steps)
        if path.exists():  # only a stale incomplete directory can be here
            shutil.rmtree(path)
        save_checkpoint(path, content, info)
        for _, old in list_checkpoints(directory)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old)

    stopped_early = False
    message = ""
    start_step = step
    # The start states of the last two calls: a failed run is rewound from one of them.
    anchors: list[tuple[int, SVIState]] = []

    def rewind(target: int) -> tuple[int, SVIState]:
        """The state after ``target`` steps, recomputed from the latest anchor before it."""
        for anchor_step, anchor_state in reversed(anchors):
            if anchor_step <= target:
                count = target - anchor_step
                if count == 0:
                    return anchor_step, anchor_state
                indices = schedule.block(anchor_step, count, MAX_STEPS_PER_CALL)
                rewound = runner(
                    anchor_state, device_data, indices, np.int32(count), np.int32(anchor_step)
                )[0]
                return target, rewound
        return anchors[0]  # nothing earlier is held (e.g. the step right after resuming)

    evaluating = eval_arrays is not None or eval_every is not None
    per_call = 1
    bar = tqdm(
        total=num_steps,
        initial=step,
        disable=not progress,
        desc=f"fit {model_name(model)}",
        unit="step",
        dynamic_ncols=True,
    )
    try:
        while step < num_steps:
            boundary = num_steps
            for every in (checkpoint_every, eval_every):
                if every is not None:
                    boundary = min(boundary, (step // every + 1) * every)
            count = min(boundary - step, per_call)
            indices = schedule.block(step, count, MAX_STEPS_PER_CALL)
            anchors = [*anchors[-1:], (step, state)]
            call_started = time.perf_counter()
            state, losses, done_array, bad_array, finite_array = runner(
                state, device_data, indices, np.int32(count), np.int32(step)
            )
            done, bad = int(done_array), bool(bad_array)
            elapsed = time.perf_counter() - call_started
            chunk_losses = np.asarray(losses)
            if done:
                history.append(chunk_losses[:done])
            step += done
            failure = None
            if bad:  # the loss at the state after `step` steps is not finite
                failure = (
                    f"the loss became non-finite ({chunk_losses[done]}) at step {step + 1} "
                    f"of {num_steps}"
                )
            elif not bool(finite_array):  # the state after `step` steps is not finite
                failure = f"the parameters became non-finite at step {step} of {num_steps}"
            if failure is not None:
                kept, state = rewind(step - 1)
                history = [np.concatenate(history)[:kept]] if history else []
                stopped_early = True
                if kept < step:
                    outcome = (
                        f"returning the state after step {kept}, the last whose loss was finite"
                    )
                else:
                    outcome = f"returning the state after step {kept}; no earlier state is held"
                message = f"stopped: {failure}; {outcome}"
                step = kept
                break
            bar.update(done)
            bar.set_postfix(loss=f"{float(np.mean(chunk_losses[:done])):.4g}")
            rate = done / max(elapsed, 1e-9)
            per_call = int(min(max(1, rate * _SECONDS_PER_CALL), 4 * per_call, MAX_STEPS_PER_CALL))
            if evaluating and (
                (eval_every is not None and step % eval_every == 0) or step == num_steps
            ):
                evaluations.append(evaluate(state, step))
                if "iwae" in evaluations[-1]:
                    bar.set_postfix(
                        loss=f"{float(np.mean(chunk_losses[:done])):.4g}",
                        iwae=f"{evaluations[-1]['iwae']:.4g}",
                    )
            if directory is not None and (
                (checkpoint_every is not None and step % checkpoint_every == 0) or step == num_steps
            ):
                save(state, step)
    finally:
        bar.close()
    if stopped_early:
        _logger.warning("fit %s: %s", model_name(model), message)
        if progress:
            tqdm.write(message, file=sys.stderr)
        if on_nan == "raise":
            raise FloatingPointError(message)
    elif resume_from is not None and start_step == num_steps:
        message = f"resumed from {resume_from} at step {step}; nothing left to do"
    else:
        message = f"completed {step} steps"
        if resume_from is not None:
            message += f" (resumed from {resume_from})"
    losses_all = np.concatenate(history) if history else np.zeros(0, loss_dtype)
    return FitResult(
        params=svi.get_params(state),
        state=state,
        losses=losses_all,
        eval=evaluations,
        stopped_early=stopped_early,
        message=message,
        steps_done=step,
        seconds=time.perf_counter() - started,
    )
