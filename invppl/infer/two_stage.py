"""The SGM's two-stage fit: a self-supervised pose function, then p(η | x̂) by maximum likelihood.

Both stages are NumPyro models without latent variables
(:mod:`invppl.models.sgm_two_stage`), so both run through :func:`fit`, with
its minibatches, compiled step, NaN handling and checkpoints.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optax
from jax.typing import ArrayLike

from invppl._checks import check_int
from invppl.infer.fit import FitResult, fit
from invppl.models.sgm_two_stage import LearnedSymmetry, TwoStageSGM, no_guide

__all__ = ["TwoStageFit", "fit_two_stage", "stage_optimizer"]

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


@dataclass(frozen=True)
class TwoStageFit:
    """What :func:`fit_two_stage` returns: the learned symmetry and each stage's fit."""

    symmetry: LearnedSymmetry
    pose: FitResult
    prior: FitResult


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
        checkpoint_dir: optional; the stages checkpoint into ``pose/`` and
            ``prior/`` below it and resume from there.
        progress: progress bars.
    """
    if "x" not in data:
        raise ValueError(f"data must hold the images under 'x', got keys {sorted(data)}")
    pose_steps = check_int(pose_steps, "pose_steps", minimum=1)
    prior_steps = check_int(prior_steps, "prior_steps", minimum=1)
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    pose = fit(
        sgm.pose_model,
        no_guide,
        data,
        seed=seed,
        num_steps=pose_steps,
        batch_size=batch_size,
        optimizer=pose_optimizer or stage_optimizer(pose_steps, POSE_LEARNING_RATE),
        checkpoint_dir=None if directory is None else directory / "pose",
        progress=progress,
    )
    if pose.stopped_early:
        raise FloatingPointError(f"stage 1 (pose network) {pose.message}")
    prior = fit(
        sgm.eta_prior_model(pose.params),
        no_guide,
        data,
        seed=(seed + 1) % 2**32,
        num_steps=prior_steps,
        batch_size=batch_size,
        optimizer=prior_optimizer or stage_optimizer(prior_steps, PRIOR_LEARNING_RATE),
        checkpoint_dir=None if directory is None else directory / "prior",
        progress=progress,
    )
    if prior.stopped_early:
        raise FloatingPointError(f"stage 2 (p(eta | prototype)) {prior.message}")
    return TwoStageFit(sgm.learned(pose.params, prior.params), pose, prior)
