"""Fitting a two-player (adversarial) game with two optax optimisers, e.g. a GAN or BiGAN.

:func:`fit_adversarial` trains a *discriminator* and a *generator* (any
pytrees of parameters; for a BiGAN the generator's pytree also holds the
encoder) on minibatches of array data. Each step is one call of a
``jax.jit``-compiled pure function, :func:`adversarial_step`:

    g_D = ∇_D L_D(D, G, batch, key_D)          D ← D + optax update(g_D)
    g_G = ∇_G L_G(D', G, batch, key_G)         G ← G + optax update(g_G)

with ``(key_D, key_G) = split(fold_in(PRNGKey(seed), step))``: the
discriminator takes one step, then the generator one step against the updated
discriminator. The minibatches follow :func:`invppl.infer.minibatch_indices`
(a fresh permutation of the data per epoch), so the whole run is a function of
the seed and the initial parameters, whether done in one go or resumed from a
checkpoint.

The losses are pure functions ``loss(discriminator_params, generator_params,
batch, key) -> scalar``, taken as arguments: this module knows nothing of the
models. A step whose losses, or whose new parameters, are not finite stops the
fit, which returns the state before it (the last whose losses were finite).
Checkpoints reuse :func:`invppl.infer.fit`'s machinery (orbax, written
atomically with a manifest of SHA-256 digests; a damaged one is set aside and
the latest intact one resumed).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike
from tqdm import tqdm

import invppl
from invppl._io import check_writable_folder
from invppl.infer._checks import check_data, check_positive_int, check_seed, model_name
from invppl.infer._fit_checkpoints import (
    ResumePoint,
    find_resume_point,
    fingerprint,
    restore_latest_intact,
)
from invppl.infer._interrupts import FitInterrupted, Interrupts
from invppl.infer.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from invppl.infer.fit import minibatch_indices

__all__ = ["AdversarialLoss", "AdversarialResult", "AdversarialState", "fit_adversarial"]

_logger = logging.getLogger(__name__)

AdversarialLoss = Callable[[Any, Any, Mapping[str, Array], Array], Array]
"""``loss(discriminator_params, generator_params, batch, key) -> scalar``."""

KEEP_CHECKPOINTS = 3
"""How many of the latest checkpoints :func:`fit_adversarial` keeps."""

LOSS_WINDOW = 50
"""The steps whose mean losses the progress bar shows."""


class AdversarialState(NamedTuple):
    """Both players' parameters and optimiser states (a pytree)."""

    discriminator_params: Any
    generator_params: Any
    discriminator_opt_state: Any
    generator_opt_state: Any


@dataclasses.dataclass(frozen=True)
class AdversarialResult:
    """What :func:`fit_adversarial` returns.

    Attributes:
        state: the final :class:`AdversarialState` (after ``steps_done`` steps).
        losses: ``(steps_done, 2)`` each step's discriminator loss (at the
            parameters the step started from) and generator loss (against the
            discriminator after its update).
        stopped_early: whether a non-finite loss or parameter stopped the fit.
        message: what happened, in words.
        steps_done: the steps behind ``state``.
        seconds: wall-clock time of this call.
    """

    state: AdversarialState
    losses: np.ndarray
    stopped_early: bool
    message: str
    steps_done: int
    seconds: float

    @property
    def discriminator_params(self) -> Any:
        """The fitted discriminator parameters."""
        return self.state.discriminator_params

    @property
    def generator_params(self) -> Any:
        """The fitted generator parameters (for a BiGAN: generator and encoder)."""
        return self.state.generator_params


def _all_finite(tree: Any) -> Array:
    """Whether every leaf of ``tree`` is finite: a boolean scalar."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def adversarial_step(
    state: AdversarialState,
    data: Mapping[str, Array],
    rows: Array,
    key: Array,
    *,
    discriminator_loss: AdversarialLoss,
    generator_loss: AdversarialLoss,
    discriminator_optimizer: optax.GradientTransformation,
    generator_optimizer: optax.GradientTransformation,
) -> tuple[AdversarialState, Array, Array]:
    """One step of both players: ``(new state, losses (2,), whether the new state is finite)``.

    ``data`` ``{name: (n, ...)}``, ``rows`` ``(batch_size,)`` the minibatch's indices.
    """
    batch = {name: array[rows] for name, array in data.items()}
    key_d, key_g = jax.random.split(key)
    d_params, g_params = state.discriminator_params, state.generator_params
    loss_d, grads_d = jax.value_and_grad(discriminator_loss)(d_params, g_params, batch, key_d)
    updates, opt_d = discriminator_optimizer.update(
        grads_d, state.discriminator_opt_state, d_params
    )
    d_params = optax.apply_updates(d_params, updates)
    loss_g, grads_g = jax.value_and_grad(generator_loss, argnums=1)(
        d_params, g_params, batch, key_g
    )
    updates, opt_g = generator_optimizer.update(grads_g, state.generator_opt_state, g_params)
    g_params = optax.apply_updates(g_params, updates)
    new = AdversarialState(d_params, g_params, opt_d, opt_g)
    return new, jnp.stack([loss_d, loss_g]), _all_finite(new)


# ---------------------------------------------------------------- checks and set-up


def _check_optimizer(value: object, name: str) -> optax.GradientTransformation:
    """``value`` (default ``optax.adam(2e-4, b1=0.5)``, the DCGAN setting), checked."""
    optimizer = optax.adam(2e-4, b1=0.5) if value is None else value
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"{name} must be an optax.GradientTransformation (e.g. optax.adam(2e-4, b1=0.5)), "
            f"got {type(optimizer).__name__}"
        )
    return optimizer


def _check_arguments(
    losses: tuple[object, object], on_nan: str, checkpoint_dir: object, every: int | None
) -> None:
    """Raises unless the losses are callable and the modes and directory are valid."""
    for loss, name in zip(losses, ("discriminator_loss", "generator_loss"), strict=True):
        if not callable(loss):
            raise TypeError(f"{name} must be a function (d_params, g_params, batch, key) -> loss")
    if on_nan not in ("stop", "raise"):
        raise ValueError(f'on_nan must be "stop" or "raise", got {on_nan!r}')
    if every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir to write to")
    if checkpoint_dir is not None:
        check_writable_folder(checkpoint_dir, "checkpoint_dir")  # type: ignore[arg-type]


def _check_traceable(
    losses: tuple[AdversarialLoss, AdversarialLoss],
    params: tuple[Any, Any],
    batch: Mapping[str, Array],
) -> None:
    """Traces both losses on the first minibatch's shapes (no work); checks they are scalars.

    A loss's own error (e.g. a network's wrong input shape) surfaces here, before any step.
    """
    key = jax.random.key(0)
    for loss, name in zip(losses, ("discriminator_loss", "generator_loss"), strict=True):
        value = jax.eval_shape(loss, *params, batch, key)
        if getattr(value, "shape", None) != ():
            raise ValueError(
                f"{name} must return a scalar, got {getattr(value, 'shape', type(value).__name__)}"
            )


def _metadata(
    losses: tuple[AdversarialLoss, AdversarialLoss],
    arrays: Mapping[str, np.ndarray],
    state: AdversarialState,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it."""
    return {
        "kind": "adversarial",
        "discriminator_loss": model_name(losses[0]),
        "generator_loss": model_name(losses[1]),
        "seed": seed,
        "batch_size": batch_size,
        "num_examples": int(next(iter(arrays.values())).shape[0]),
        "data": {name: [list(a.shape[1:]), str(a.dtype)] for name, a in arrays.items()},
        "data_sha256": fingerprint(arrays),
        "state_structure": str(jax.tree.structure(state)),
    }


# ---------------------------------------------------------------- checkpoints


def _save(
    directory: str, step: int, state: AdversarialState, losses: np.ndarray, metadata: Any
) -> None:
    """Saves the run after ``step`` steps (``losses`` ``(step, 2)``); keeps the latest few."""
    path = checkpoint_path(directory, step)
    if path.exists():  # only a stale directory of a fallen-back run can be here
        shutil.rmtree(path)
    content = {"state": state, "losses": losses, "step": np.asarray(step, np.int64)}
    info = {**metadata, "step": step, "loss_dtype": losses.dtype.name}
    save_checkpoint(path, content, {**info, "invppl_version": invppl.__version__})
    for _, old in list_checkpoints(directory)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old)


def _resume(
    directory: str | None,
    resume: bool,
    num_steps: int,
    state: AdversarialState,
    metadata: Mapping[str, Any],
) -> tuple[ResumePoint | None, AdversarialState, np.ndarray, list[str]]:
    """``(point, state, losses (step, 2), notes)``: where the loop starts.

    A fresh start without a checkpoint; else the latest intact one, once its
    settings are checked against ``metadata``; a checkpoint whose arrays cannot
    be read is set aside (a note says so) and the next one tried.
    """

    def load(point: ResumePoint) -> dict[str, Any]:
        target = {
            "state": state,
            "losses": np.zeros((point.step, 2), np.dtype(point.metadata["loss_dtype"])),
            "step": np.asarray(0, np.int64),
        }
        return load_checkpoint(point.path, target)[0]

    found = find_resume_point(directory, resume, num_steps)
    latest = restore_latest_intact(found, metadata, directory, num_steps, load)
    notes = found[1]
    if latest is None:
        return None, state, np.zeros((0, 2), np.dtype(jnp.result_type(float))), notes
    point, restored = latest
    _logger.info("resuming from %s at step %d", point.path, point.step)
    return point, restored["state"], np.asarray(restored["losses"]), notes


# ---------------------------------------------------------------- the loop


def _failure(losses: np.ndarray, finite: bool, step: int, num_steps: int) -> str | None:
    """What went wrong at step ``step`` (1-based) of ``num_steps``, or None.

    ``losses`` ``(2,)`` are the step's discriminator and generator losses.
    """
    for value, player in zip(losses, ("discriminator", "generator"), strict=True):
        if not np.isfinite(value):
            return f"the {player} loss became non-finite ({value}) at step {step} of {num_steps}"
    if not finite:
        return f"the parameters became non-finite at step {step} of {num_steps}"
    return None


def _postfix(losses: list[np.ndarray]) -> dict[str, str]:
    """The progress bar's postfix: the mean losses of the last :data:`LOSS_WINDOW` steps.

    >>> _postfix([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    {'loss D': '2', 'loss G': '3'}
    """
    recent = np.stack(losses[-LOSS_WINDOW:])
    return {"loss D": f"{recent[:, 0].mean():.4g}", "loss G": f"{recent[:, 1].mean():.4g}"}


def _report_stop(name: str, message: str, progress: bool, on_nan: str) -> None:
    """Logs a stop (and prints it with ``progress``); raises ``FloatingPointError`` with "raise"."""
    _logger.warning("fit_adversarial %s: %s", name, message)
    if progress:
        tqdm.write(f"fit_adversarial {name}: {message}", file=sys.stderr)
    if on_nan == "raise":
        raise FloatingPointError(message)


def _run(
    step_fn: Callable[..., tuple[AdversarialState, Array, Array]],
    state: AdversarialState,
    history: list[np.ndarray],
    data: Mapping[str, Array],
    plan: _Plan,
) -> tuple[AdversarialState, str | None]:
    """Runs steps ``len(history)`` … ``plan.num_steps``; ``(state, failure or None)``.

    ``history`` (one ``(2,)`` array per step done) is extended in place.
    """
    base = jax.random.PRNGKey(plan.seed)
    with (
        tqdm(
            total=plan.num_steps,
            initial=len(history),
            disable=not plan.progress,
            desc=f"fit_adversarial {plan.name}",
            unit="step",
            dynamic_ncols=True,
        ) as bar,
        Interrupts() as interrupts,
    ):
        while len(history) < plan.num_steps:
            step = len(history)
            rows = minibatch_indices(plan.seed, plan.num_examples, plan.batch_size, step)
            new, losses, finite = step_fn(state, data, rows, jax.random.fold_in(base, step))
            values = np.asarray(losses)
            failure = _failure(values, bool(finite), step + 1, plan.num_steps)
            if failure is not None:
                return state, failure
            state = new
            history.append(values)
            bar.update(1)
            bar.set_postfix(_postfix(history), refresh=False)
            done = len(history)
            signalled = interrupts.received is not None and done < plan.num_steps
            if plan.directory is not None and (
                signalled or done % plan.checkpoint_every == 0 or done == plan.num_steps
            ):
                _save(plan.directory, done, state, np.stack(history), plan.metadata)
            if signalled:
                raise _interrupted(plan, interrupts.received, done)  # type: ignore[arg-type]
    return state, None


def _interrupted(plan: _Plan, number: int, step: int) -> FitInterrupted:
    """The :class:`~invppl.infer.FitInterrupted` of a fit stopped by signal ``number``."""
    what = (
        f"fit_adversarial {plan.name} interrupted by {signal.Signals(number).name} after step "
        f"{step} of {plan.num_steps}"
    )
    if plan.directory is None:
        return FitInterrupted(f"{what}; nothing saved (no checkpoint_dir)", number, step, None)
    saved = checkpoint_path(plan.directory, step)
    return FitInterrupted(
        f"{what}; saved the checkpoint {saved}; fit again with the same checkpoint_dir to continue",
        number,
        step,
        saved,
    )


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The checked settings of one :func:`fit_adversarial` call."""

    name: str
    seed: int
    num_steps: int
    batch_size: int
    num_examples: int
    progress: bool
    directory: str | None
    checkpoint_every: int
    metadata: dict[str, Any]


def fit_adversarial(
    discriminator_loss: AdversarialLoss,
    generator_loss: AdversarialLoss,
    init_params: tuple[Any, Any],
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    num_steps: int,
    batch_size: int,
    discriminator_optimizer: optax.GradientTransformation | None = None,
    generator_optimizer: optax.GradientTransformation | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    on_nan: Literal["stop", "raise"] = "stop",
    check: Callable[[Mapping[str, np.ndarray]], None] | None = None,
) -> AdversarialResult:
    """Trains a discriminator and a generator against each other by minibatch gradient steps.

    Args:
        discriminator_loss: ``(d_params, g_params, batch, key) -> scalar`` that
            the discriminator minimises (differentiated in ``d_params``).
        generator_loss: the same signature; the generator minimises it
            (differentiated in ``g_params``).
        init_params: ``(d_params, g_params)``, any pytrees of arrays.
        data: ``{name: (n, ...)}`` arrays sharing their leading axis; each
            step's ``batch`` holds ``batch_size`` rows of each.
        seed: seeds the minibatch order and each step's key; in [0, 2**32).
        num_steps: total steps (counting those of a resumed run), ≥ 1.
        batch_size: examples per step, at most ``n``.
        discriminator_optimizer, generator_optimizer: optax transformations;
            default ``optax.adam(2e-4, b1=0.5)`` each.
        checkpoint_dir: where to save checkpoints ``step_<n>/`` (orbax, atomic,
            with a manifest; the latest :data:`KEEP_CHECKPOINTS` kept), every
            ``checkpoint_every`` steps (default: only at the end) and at the end.
        checkpoint_every: steps between checkpoints; needs ``checkpoint_dir``.
        resume: continue from the latest intact checkpoint in ``checkpoint_dir``
            (the same result as an uninterrupted run); with False the directory
            must hold none.
        progress: a tqdm bar with the mean losses of the last 50 steps.
        on_nan: at a non-finite loss or parameter, ``"stop"`` returns the state
            before that step with ``stopped_early=True`` and a message naming
            the step (also logged); ``"raise"`` raises ``FloatingPointError``.
        check: called with the checked data ``{name: (n, ...)}`` before any
            work, to raise for data the losses cannot take (e.g. a BiGAN's
            ``check_data``).

    Returns:
        An :class:`AdversarialResult`.

    Raises:
        TypeError, ValueError: before any work, for a non-positive
            ``num_steps`` or ``batch_size``, ``batch_size`` above ``n``, empty
            data or NaN/infinite values in it, what ``check`` or tracing the
            losses on the first minibatch raises (e.g. a wrong image shape),
            a loss that is not a scalar, an unwritable ``checkpoint_dir``, or
            a checkpoint of another run.
        FloatingPointError: with ``on_nan="raise"``, at a non-finite loss.

    >>> def d_loss(d, g, batch, key):
    ...     return jnp.mean((d * batch["x"] - g) ** 2)
    >>> def g_loss(d, g, batch, key):
    ...     return (g - 1.0) ** 2
    >>> result = fit_adversarial(d_loss, g_loss, (jnp.zeros(()), jnp.zeros(())),
    ...                          {"x": np.ones(8)}, seed=0, num_steps=300, batch_size=4,
    ...                          generator_optimizer=optax.sgd(0.1), progress=False)
    >>> round(float(result.generator_params), 3), result.losses.shape
    (1.0, (300, 2))
    """
    started = time.perf_counter()
    seed = check_seed(seed)
    num_steps = check_positive_int(num_steps, "num_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    every = (
        None
        if checkpoint_every is None
        else check_positive_int(checkpoint_every, "checkpoint_every")
    )
    losses_fns = (discriminator_loss, generator_loss)
    _check_arguments(losses_fns, on_nan, checkpoint_dir, every)
    d_opt = _check_optimizer(discriminator_optimizer, "discriminator_optimizer")
    g_opt = _check_optimizer(generator_optimizer, "generator_optimizer")
    arrays = check_data(data, "data")
    n = int(next(iter(arrays.values())).shape[0])
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples in data")
    if check is not None:
        check(arrays)
    device_data = {name: jnp.asarray(array) for name, array in arrays.items()}
    rows = minibatch_indices(seed, n, batch_size, 0)
    params = (init_params[0], init_params[1])
    _check_traceable(losses_fns, params, {k: a[rows] for k, a in device_data.items()})

    state = AdversarialState(*params, d_opt.init(params[0]), g_opt.init(params[1]))
    directory = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    metadata = _metadata(losses_fns, arrays, state, seed, batch_size)
    point, state, done, notes = _resume(directory, resume, num_steps, state, metadata)
    name = model_name(generator_loss)
    if notes:
        _report_note(name, "; ".join(notes), progress)
    plan = _Plan(
        name, seed, num_steps, batch_size, n, progress, directory, every or num_steps, metadata
    )
    step_fn = jax.jit(
        partial(
            adversarial_step,
            discriminator_loss=discriminator_loss,
            generator_loss=generator_loss,
            discriminator_optimizer=d_opt,
            generator_optimizer=g_opt,
        )
    )
    history = list(done)
    state, failure = _run(step_fn, state, history, device_data, plan)
    steps = len(history)
    if failure is not None:
        message = f"stopped: {failure}; returning the state after step {steps}"
        message += ", the last whose losses were finite"
        _report_stop(name, message, progress, on_nan)
    else:
        resumed = "" if point is None else f" (resumed from {point.path} at step {point.step})"
        message = f"completed {steps} steps{resumed}"
    losses = np.stack(history) if history else np.zeros((0, 2))
    return AdversarialResult(
        state, losses, failure is not None, message, steps, time.perf_counter() - started
    )


def _report_note(name: str, note: str, progress: bool) -> None:
    """Logs what was set aside while resuming (and prints it with ``progress``)."""
    _logger.warning("fit_adversarial %s: %s", name, note)
    if progress:
        tqdm.write(f"fit_adversarial {name}: {note}", file=sys.stderr)
