"""The SGM's two-stage fit: a self-supervised pose function, then p(η | x̂) by maximum likelihood.

Both stages are NumPyro models without latent variables
(:mod:`invppl.models.sgm_two_stage`), so both run through :func:`fit`, with
its minibatches, compiled step, NaN handling and checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optax
from jax.typing import ArrayLike

from invppl.infer.fit import FitResult, fit
from invppl.models.sgm_two_stage import LearnedSymmetry, TwoStageSGM, no_guide

__all__ = ["TwoStageFit", "fit_two_stage"]


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
        pose_optimizer, prior_optimizer: optax transformations; default Adam
            with learning rate 1e-3.
        checkpoint_dir: optional; the stages checkpoint into ``pose/`` and
            ``prior/`` below it and resume from there.
        progress: progress bars.
    """
    if "x" not in data:
        raise ValueError(f"data must hold the images under 'x', got keys {sorted(data)}")
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    pose = fit(
        sgm.pose_model,
        no_guide,
        data,
        seed=seed,
        num_steps=pose_steps,
        batch_size=batch_size,
        optimizer=pose_optimizer,
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
        optimizer=prior_optimizer,
        checkpoint_dir=None if directory is None else directory / "prior",
        progress=progress,
    )
    if prior.stopped_early:
        raise FloatingPointError(f"stage 2 (p(eta | prototype)) {prior.message}")
    return TwoStageFit(sgm.learned(pose.params, prior.params), pose, prior)
