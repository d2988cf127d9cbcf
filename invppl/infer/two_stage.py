"""The SGM's two-stage fit: a self-supervised pose function, then p(η | x̂) by maximum likelihood.

Both stages are NumPyro models without latent variables
(:mod:`invppl.models.sgm_two_stage`), so both run through :func:`fit`, with
its minibatches, compiled step, NaN handling and checkpoints.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optax
from jax.typing import ArrayLike

from invppl._batching import in_batches
from invppl._checks import check_int
from invppl.infer.fit import FitResult, fit
from invppl.models.sgm_two_stage import LearnedSymmetry, TwoStageSGM, no_guide
from invppl.transforms.align import FrameTemplates, fit_templates
from invppl.transforms.blur import gaussian_blur
from invppl.transforms.graph_frames import fit_graph_templates

__all__ = [
    "TwoStageFit",
    "fit_eta_prior",
    "fit_two_stage",
    "neighbour_poses",
    "stage_optimizer",
]

POSE_LEARNING_RATE = 2e-3
"""Stage 1's default peak learning rate."""
PRIOR_LEARNING_RATE = 3e-3
"""Stage 2's default peak learning rate."""


def stage_optimizer(
    num_steps: int,
    peak_learning_rate: float,
    *,
    warmup_fraction: float = 0.05,
    final_fraction: float = 1 / 30,
    clip_norm: float = 2.0,
    weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
    """AdamW with gradient clipping and a warm-up + cosine-decay learning rate.

    The learning rate rises linearly from a tenth of ``peak_learning_rate``
    over the first ``warmup_fraction`` of ``num_steps``, then falls along a
    cosine to ``final_fraction`` of it at ``num_steps`` (the schedule of the
    SGM reference code). Both stages need the late small steps: the pose
    network's precision and the sharpness of narrow laws in p(η | x̂) come
    from them (docs/sgm.md shows the measurements).

    >>> import jax.numpy as jnp
    >>> optimizer = stage_optimizer(100, 1e-3)
    >>> state = optimizer.init({"w": jnp.zeros(2)})
    """
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps}")
    if not (math.isfinite(peak_learning_rate) and peak_learning_rate > 0):
        raise ValueError(f"peak_learning_rate must be positive, got {peak_learning_rate}")
    if num_steps < 2:
        schedule: optax.ScalarOrSchedule = peak_learning_rate
    else:
        warmup = min(max(round(warmup_fraction * num_steps), 1), num_steps - 1)
        schedule = optax.warmup_cosine_decay_schedule(
            peak_learning_rate / 10,
            peak_learning_rate,
            warmup,
            int(num_steps),
            peak_learning_rate * final_fraction,
        )
    return optax.chain(
        optax.clip_by_global_norm(clip_norm), optax.adamw(schedule, weight_decay=weight_decay)
    )


def _holdout_count(n: int, fraction: float, batch_size: int) -> int:
    """How many of ``n`` examples stage 2 holds out; raises for settings that leave too few."""
    if not (isinstance(fraction, int | float) and 0 <= fraction < 0.5):
        raise ValueError(f"prior_holdout must be a fraction in [0, 0.5), got {fraction!r}")
    if fraction == 0:
        return 0
    held = max(round(fraction * n), 1)
    if n - held < batch_size:
        raise ValueError(
            f"prior_holdout={fraction} leaves {n - held} of {n} examples for "
            f"stage 2, fewer than batch_size={batch_size}; lower one of them"
        )
    return held


def _holdout_split(
    data: Mapping[str, ArrayLike], fraction: float, batch_size: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """Stage 2's examples (``n - m`` rows of every array in ``data``) and held-out ones (``m``).

    ``m = round(fraction · n)`` (at least 1 when ``fraction > 0``), drawn by a
    permutation seeded with ``seed``; ``fraction = 0`` holds none out (None).
    """
    arrays = {name: np.asarray(value) for name, value in data.items()}
    kept_rows, held_rows = _holdout_rows(len(arrays["x"]), fraction, batch_size, seed)
    if len(held_rows) == 0:
        return arrays, None
    kept = {name: value[kept_rows] for name, value in arrays.items()}
    return kept, {name: value[held_rows] for name, value in arrays.items()}


def _holdout_rows(n: int, fraction: float, batch_size: int, seed: int) -> tuple[Any, Any]:
    """The rows stage 2 fits and the rows it holds out (see :func:`_holdout_split`)."""
    held = _holdout_count(n, fraction, batch_size)
    if held == 0:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng([seed, 2]).permutation(n)
    return order[held:], order[:held]


def neighbour_poses(
    family: Any,
    x: ArrayLike,
    poses: ArrayLike,
    count: int,
    *,
    holdout: float,
    batch_size: int,
    seed: int,
) -> np.ndarray:
    """Stage 2's ``neighbour_eta`` ``(n, count, k)`` for images ``x`` with ``poses`` ``(n, k)``.

    The examples that :func:`fit_eta_prior` (with ``holdout``, ``batch_size``
    and ``seed``) fits get their own pose and their nearest fitted
    prototypes' poses; the held-out ones their own pose ``count`` times.
    """
    count = check_int(count, "count", minimum=1)
    kept, _ = _holdout_rows(len(np.asarray(x)), holdout, batch_size, seed)
    return _neighbour_poses(
        family, np.asarray(x, np.float32), np.asarray(poses, np.float32), count, np.sort(kept)
    )


def _neighbour_poses(
    family: Any, x: np.ndarray, poses: np.ndarray, count: int, kept: np.ndarray, batch: int = 500
) -> np.ndarray:
    """``(n, count, k)``: each example's pose and its nearest kept prototypes' poses.

    Prototypes x̂ = T_pose⁻¹(x) blurred by one pixel, compared by squared
    distance; a kept example is its own nearest. A held-out example gets its
    own pose ``count`` times, so that stage 2's held-out score stays its plain
    log p(η | x̂).
    """
    prototypes = in_batches(
        lambda a: gaussian_blur(family.apply(a[0], -a[1]), 1.0, radius=3), (x, poses), batch
    )
    every = prototypes.reshape(len(x), -1)
    flat = every[kept]
    squared = np.square(flat).sum(1)
    out = np.repeat(poses[:, None], count, axis=1)
    for start in range(0, len(kept), batch):
        rows = kept[start : start + batch]
        query = every[rows]
        distance = squared[None] - 2 * query @ flat.T
        distance[np.arange(len(rows)), np.arange(start, start + len(rows))] = -np.inf
        nearest = np.argpartition(distance, count - 1, axis=1)[:, :count]
        out[rows] = poses[kept[nearest]]
    return out


def fit_eta_prior(
    model: Callable[..., Any],
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    num_steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None = None,
    holdout: float = 0.1,
    eval_every: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FitResult:
    """Stage 2 alone: maximum likelihood for p(η | x̂), early-stopped on held-out examples.

    Args:
        model: stage 2's model, ``TwoStageSGM.eta_prior_model(pose_params)``
            (``model(x)``), or with known poses ``eta_prior_model(None)``
            (``model(x, eta)``).
        data: ``{"x": (n, H, W, C)}``, and ``{"eta": (n, k)}`` for known poses.
        seed: the hold-out draw and the minibatch order.
        holdout, eval_every: see ``prior_holdout`` and ``prior_eval_every`` of
            :func:`fit_two_stage` (default: 20 evaluations in all).
        num_steps, batch_size, optimizer, checkpoint_dir, progress: as in
            :func:`~invppl.infer.fit` (default optimizer: :func:`stage_optimizer`
            with :data:`PRIOR_LEARNING_RATE`).

    Raises ``FloatingPointError`` when the fit stopped at a non-finite loss.
    """
    if "x" not in data:
        raise ValueError(f"data must hold the images under 'x', got keys {sorted(data)}")
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    kept, held_out = _holdout_split(data, holdout, batch_size, seed)
    every = max(num_steps // 20, 1) if eval_every is None else eval_every
    every = check_int(every, "eval_every", minimum=1)
    prior = fit(
        model,
        no_guide,
        kept,
        seed=(seed + 1) % 2**32,
        num_steps=num_steps,
        batch_size=batch_size,
        optimizer=optimizer or stage_optimizer(num_steps, PRIOR_LEARNING_RATE),
        eval_data=held_out,
        eval_every=None if held_out is None else every,
        iwae_samples=1,  # no latent variables: the ELBO is log p(η | x̂) itself
        keep_best=held_out is not None,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )
    if prior.stopped_early:
        raise FloatingPointError(f"stage 2 (p(eta | prototype)) {prior.message}")
    return prior


@dataclass(frozen=True)
class TwoStageFit:
    """What :func:`fit_two_stage` returns: the learned symmetry and each stage's fit."""

    symmetry: LearnedSymmetry
    pose: FitResult
    prior: FitResult
    frames: FrameTemplates | None = None
    """The templates learned between the stages (``sgm.frame_templates`` > 0), else None."""


def _frame_templates(
    sgm: TwoStageSGM, pose: FitResult, x: np.ndarray, seed: int, batch: int = 500
) -> FrameTemplates | None:
    """Templates aligned to the fitted pose network's poses on ``x`` ``(n, H, W, C)``."""
    if sgm.frame_templates == 0:
        return None
    if sgm.frame_method == "graph":
        return fit_graph_templates(
            sgm.family, x, count=sgm.frame_templates, seed=seed, blur=sgm.frame_blur
        )
    poses = in_batches(sgm.fitted_pose(pose.params), x, batch)
    return fit_templates(
        sgm.family, x, poses, count=sgm.frame_templates, seed=seed, blur=sgm.frame_blur
    )


def fit_two_stage(
    sgm: TwoStageSGM,
    data: Mapping[str, ArrayLike],
    *,
    seed: int,
    pose_steps: int,
    prior_steps: int,
    batch_size: int,
    pose_optimizer: optax.GradientTransformation | None = None,
    prior_optimizer: optax.GradientTransformation | None = None,
    prior_holdout: float = 0.1,
    prior_eval_every: int | None = None,
    prior_neighbours: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TwoStageFit:
    """Fits stage 1 (the pose network) and then stage 2 (p(η | x̂)) on ``data["x"]``.

    Args:
        sgm: from :func:`~invppl.models.make_two_stage_sgm`.
        data: ``{"x": (n, H, W, C)}`` images.
        seed: seeds both stages (stage 2 uses ``seed + 1`` for its minibatch order).
        pose_steps, prior_steps: optimiser steps of each stage.
        batch_size: examples per step in both stages.
        pose_optimizer, prior_optimizer: optax transformations; default
            :func:`stage_optimizer` over each stage's steps, with peak learning
            rates :data:`POSE_LEARNING_RATE` and :data:`PRIOR_LEARNING_RATE`.
        prior_holdout: the fraction of examples (drawn with ``seed``) that
            stage 2 does not fit but evaluates, every ``prior_eval_every``
            steps (default: 20 times in all), keeping the parameters with the
            best held-out log p(f(x) | x̂): early stopping. With one pose per
            prototype a flexible p(η | x̂) otherwise learns each training
            prototype's own pose (on rotated digits: training log-density up to
            +1.6 nats, held out −3.9, below a uniform law's −1.84; docs/sgm.md).
            0 fits every example for all ``prior_steps``. Stage 1 always uses
            every example.
        prior_neighbours: m > 1: stage 2 fits, for each example, the poses of
            its m nearest prototypes among the fitted examples (itself first;
            see :func:`~invppl.models.eta_prior_model`'s ``neighbour_eta``),
            an empirical law smoothed over similar prototypes; 0 or 1: each
            example's own pose. The held-out score stays each example's own.
        checkpoint_dir: optional; the stages checkpoint into ``pose/`` and
            ``prior/`` below it and resume from there.
        progress: progress bars.

    With ``sgm.frame_templates`` = K > 0, K templates are learned between the
    stages (``sgm.frame_method``: from the fitted pose network's poses on every
    example, :func:`~invppl.transforms.fit_templates`, or from the invariant
    neighbour graph, :func:`~invppl.transforms.graph_frames.fit_graph_templates`;
    seeded with ``seed``) and every pose, in stage 2 and in the result, is
    aligned to them; stage 2 then fits the aligned poses, computed once.
    """
    if "x" not in data:
        raise ValueError(f"data must hold the images under 'x', got keys {sorted(data)}")
    pose_steps = check_int(pose_steps, "pose_steps", minimum=1)
    prior_steps = check_int(prior_steps, "prior_steps", minimum=1)
    _holdout_count(np.shape(data["x"])[0], prior_holdout, batch_size)  # fail before stage 1
    if prior_eval_every is not None:
        check_int(prior_eval_every, "prior_eval_every", minimum=1)
    prior_neighbours = check_int(prior_neighbours, "prior_neighbours", minimum=0)
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    pose = fit(
        sgm.pose_model,
        no_guide,
        {"x": data["x"]},
        seed=seed,
        num_steps=pose_steps,
        batch_size=batch_size,
        optimizer=pose_optimizer or stage_optimizer(pose_steps, POSE_LEARNING_RATE),
        checkpoint_dir=None if directory is None else directory / "pose",
        progress=progress,
    )
    if pose.stopped_early:
        raise FloatingPointError(f"stage 1 (pose network) {pose.message}")
    x = np.asarray(data["x"], np.float32)
    frames = _frame_templates(sgm, pose, x, seed)
    if frames is None and prior_neighbours <= 1:
        model, stage2_data = sgm.eta_prior_model(pose.params), {"x": x}
    else:  # the (searched) poses once, not at every step
        poses = in_batches(sgm.fitted_pose(pose.params, frames), x, 500)
        model, stage2_data = sgm.eta_prior_model(None), {"x": x, "eta": poses}
        if prior_neighbours > 1:
            stage2_data["neighbour_eta"] = neighbour_poses(
                sgm.family,
                x,
                poses,
                prior_neighbours,
                holdout=prior_holdout,
                batch_size=batch_size,
                seed=seed,
            )
    prior = fit_eta_prior(
        model,
        stage2_data,
        seed=seed,
        num_steps=prior_steps,
        batch_size=batch_size,
        optimizer=prior_optimizer,
        holdout=prior_holdout,
        eval_every=prior_eval_every,
        checkpoint_dir=None if directory is None else directory / "prior",
        progress=progress,
    )
    return TwoStageFit(sgm.learned(pose.params, prior.params, frames), pose, prior, frames)
