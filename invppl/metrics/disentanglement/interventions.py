"""Intervention-based disentanglement metrics: the BetaVAE and FactorVAE scores.

Both need observations drawn with one factor held fixed, so they take a
:data:`GroupSampler`, a callable ``(seed, factor_index, num_groups,
group_size) -> codes`` of shape ``(num_groups, group_size, d)``: within each
group the factor ``factor_index`` takes one value (drawn per group from its
law), every other factor is drawn independently, and the observations are
encoded. ``group_size = 1`` thus draws independent observations. For
:mod:`invppl.datasets.paired_shapes`, with ``encode`` mapping ``(n, h, w, c)``
images to ``(n, d)`` codes::

    def sampler(seed, k, g, s):
        images = shapes_with_fixed_factor(g, s, k, seed=seed).images
        return encode(images.reshape(g * s, *images.shape[2:])).reshape(g, s, -1)

Both follow disentanglement_lib (``evaluation/metrics/beta_vae.py`` and
``factor_vae.py``); its defaults (batch 64, 10,000 training and 5,000
evaluation points, 10,000 points for the variances) are the defaults here
too, and scaled down in the tests. Every draw is seeded from ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from invppl._checks import check_int
from invppl.metrics._checks import as_float
from invppl.metrics._fitting import fit_recording_convergence

__all__ = ["BetaVAEResult", "FactorVAEResult", "GroupSampler", "beta_vae_score", "factor_vae_score"]

GroupSampler = Callable[[int, int, int, int], ArrayLike]
"""``(seed, factor_index, num_groups, group_size) -> (num_groups, group_size, d)`` codes
of observations that share, within a group, the value of factor ``factor_index``."""


@dataclass(frozen=True)
class BetaVAEResult:
    """The result of :func:`beta_vae_score`.

    Attributes:
        train_accuracy: the classifier's accuracy on its training points.
        eval_accuracy: its accuracy on fresh evaluation points, the score.
        converged: whether the logistic regression converged.
    """

    train_accuracy: float
    eval_accuracy: float
    converged: bool


@dataclass(frozen=True)
class FactorVAEResult:
    """The result of :func:`factor_vae_score`.

    Attributes:
        train_accuracy: the majority-vote classifier's accuracy on its votes.
        eval_accuracy: its accuracy on fresh votes, the score.
        num_active_dims: code dimensions whose standard deviation reaches the threshold.
        votes: ``(d, f)`` training votes: how often dimension i had the least
            normalised variance when factor j was fixed.
    """

    train_accuracy: float
    eval_accuracy: float
    num_active_dims: int
    votes: np.ndarray


def _draw(
    sampler: GroupSampler, seed: int, factor: int, groups: int, size: int, dim: int | None
) -> np.ndarray:
    """Calls ``sampler`` and checks its answer: finite, ``(groups, size, d)``, d as before."""
    codes = np.asarray(sampler(seed, factor, groups, size))
    wanted = f"({groups}, {size}, {'d' if dim is None else dim})"
    if (
        codes.ndim != 3
        or codes.shape[:2] != (groups, size)
        or (dim is not None and codes.shape[2] != dim)
        or codes.shape[2] == 0
    ):
        raise ValueError(
            f"sampler(seed, factor_index={factor}, num_groups={groups}, group_size={size}) "
            f"returned shape {codes.shape}; expected codes of shape {wanted}"
        )
    if not np.issubdtype(codes.dtype, np.number) or np.iscomplexobj(codes):
        raise ValueError(f"sampler returned dtype {codes.dtype}; expected real codes")
    codes = codes.astype(np.float64)
    if not np.all(np.isfinite(codes)):
        raise ValueError(
            f"sampler returned NaN or infinite codes for factor_index={factor}; expected finite"
        )
    return codes


def _grouped(
    sampler: GroupSampler,
    rng: np.random.Generator,
    shape: tuple[int, int, int, int],
    dim: int | None,
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """Points that each fix one uniformly drawn factor, and per factor its points' codes.

    ``shape`` is ``(num_factors, num_points, groups_per_point, group_size)``.
    Returns the ``(num_points,)`` fixed factors and, for each factor with
    ``count`` points, codes ``(count, groups_per_point, group_size, d)``
    (``None`` for a factor that no point drew: the sampler is not called).
    """
    num_factors, num_points, groups, size = shape
    labels = rng.integers(num_factors, size=num_points)
    seeds = rng.integers(2**31 - 1, size=num_factors)
    blocks: list[np.ndarray | None] = []
    for factor in range(num_factors):
        count = int(np.count_nonzero(labels == factor))
        if count == 0:
            blocks.append(None)
            continue
        codes = _draw(sampler, int(seeds[factor]), factor, count * groups, size, dim)
        blocks.append(codes.reshape(count, groups, size, codes.shape[-1]))
        dim = codes.shape[-1]
    return labels, blocks


def _check_counts(
    num_factors: object, batch_size: object, num_train: object, num_eval: object
) -> tuple[int, int, int, int]:
    return (
        check_int(num_factors, "num_factors", minimum=2),
        check_int(batch_size, "batch_size", minimum=2),
        check_int(num_train, "num_train", minimum=2),
        check_int(num_eval, "num_eval", minimum=1),
    )


def _beta_vae_points(
    sampler: GroupSampler,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    dim: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(num_points, d)`` features, mean |z1 − z2| over a batch of pairs sharing factor k.

    ``shape`` is ``(num_factors, num_points, batch_size)``; returns the
    features and the ``(num_points,)`` labels k.
    """
    num_factors, num_points, batch_size = shape
    labels, blocks = _grouped(sampler, rng, (num_factors, num_points, batch_size, 2), dim)
    dim = next(codes for codes in blocks if codes is not None).shape[-1]
    features = np.zeros((num_points, dim))
    for factor, codes in enumerate(blocks):
        if codes is None:
            continue
        features[labels == factor] = np.abs(codes[:, :, 0] - codes[:, :, 1]).mean(axis=1)
    return features, labels


def beta_vae_score(
    sampler: GroupSampler,
    num_factors: int,
    *,
    seed: int,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
) -> BetaVAEResult:
    """The BetaVAE score (Higgins et al., "β-VAE", ICLR 2017).

    A training point is a batch of ``batch_size`` pairs of observations that
    share the value of one factor k (a value per pair; k drawn uniformly), its
    feature the mean over the batch of ``|z1 − z2|`` per code dimension and its
    label k. A linear classifier predicts k; the score is its accuracy on
    fresh evaluation points. As disentanglement_lib's ``compute_beta_vae_sklearn``:
    scikit-learn's ``LogisticRegression`` with its defaults (lbfgs, C = 1;
    here ``max_iter`` = 1000) on the raw features. Chance is 1 / num_factors.

    Args:
        sampler: a :data:`GroupSampler`; called with ``group_size = 2``.
        num_factors: the number of factors f, at least 2.
        seed: seeds every draw and the classifier.
        batch_size: pairs per point.
        num_train, num_eval: training and evaluation points.

    Returns:
        :class:`BetaVAEResult`.
    """
    from sklearn.linear_model import LogisticRegression

    num_factors, batch_size, num_train, num_eval = _check_counts(
        num_factors, batch_size, num_train, num_eval
    )
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    train_x, train_y = _beta_vae_points(sampler, rng, (num_factors, num_train, batch_size), None)
    eval_x, eval_y = _beta_vae_points(
        sampler, rng, (num_factors, num_eval, batch_size), train_x.shape[1]
    )
    if np.unique(train_y).size < 2:
        raise ValueError(f"num_train = {num_train} points drew a single fixed factor; draw more")
    model = LogisticRegression(max_iter=1000, random_state=seed)
    converged = fit_recording_convergence(model, train_x, train_y)
    return BetaVAEResult(
        train_accuracy=float(np.mean(model.predict(train_x) == train_y)),
        eval_accuracy=float(np.mean(model.predict(eval_x) == eval_y)),
        converged=converged,
    )


def _factor_vae_votes(
    sampler: GroupSampler,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    scale: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """``(d, f)`` votes: the active dimension of least variance / global variance per point.

    ``shape`` is ``(num_factors, num_points, batch_size)``; ``scale`` the
    ``(d,)`` global variances and ``active`` the ``(d,)`` mask of kept dimensions.
    """
    num_factors, num_points, batch_size = shape
    _, blocks = _grouped(sampler, rng, (num_factors, num_points, 1, batch_size), scale.size)
    votes = np.zeros((scale.size, num_factors), dtype=np.int64)
    kept = np.flatnonzero(active)
    for factor, codes in enumerate(blocks):
        if codes is None:
            continue
        local = codes[:, 0].var(axis=1, ddof=1)[:, kept] / scale[kept]
        votes[:, factor] = np.bincount(kept[np.argmin(local, axis=1)], minlength=scale.size)
    return votes


def factor_vae_score(
    sampler: GroupSampler,
    num_factors: int,
    *,
    seed: int,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> FactorVAEResult:
    """The FactorVAE score (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

    Each code dimension's variance over ``num_variance_estimate`` independent
    observations normalises it; dimensions whose standard deviation is below
    ``prune_threshold`` are dropped (collapsed to the prior). A training point
    fixes one factor k (drawn uniformly) across a batch of ``batch_size``
    observations and votes for the active dimension with the least normalised
    variance within the batch. The classifier maps each dimension to the
    factor it got most votes for (a majority vote); the score is its accuracy
    on fresh votes. As disentanglement_lib's ``compute_factor_vae``
    (variances with ``ddof = 1``, threshold 0.05 as in its evaluation
    configs); if no dimension is active both accuracies are 0.

    Args:
        sampler: a :data:`GroupSampler`; called with ``group_size = batch_size``
            and once with ``group_size = 1`` for the variances.
        num_factors: the number of factors f, at least 2.
        seed: seeds every draw.
        batch_size: observations per point.
        num_train, num_eval: training and evaluation points (votes).
        num_variance_estimate: observations for the global variances, at least 2.
        prune_threshold: the least standard deviation of a kept dimension.

    Returns:
        :class:`FactorVAEResult`.
    """
    num_factors, batch_size, num_train, num_eval = _check_counts(
        num_factors, batch_size, num_train, num_eval
    )
    num_variance_estimate = check_int(num_variance_estimate, "num_variance_estimate", minimum=2)
    threshold = as_float(prune_threshold, "prune_threshold", "a non-negative number")
    if not threshold >= 0:
        raise ValueError(f"prune_threshold must be a non-negative number, got {threshold}")
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    first = int(rng.integers(2**31 - 1))
    overall = _draw(sampler, first, 0, num_variance_estimate, 1, None)[:, 0]
    scale = overall.var(axis=0, ddof=1)
    active = np.sqrt(scale) >= threshold
    if not active.any():
        votes = np.zeros((scale.size, num_factors), dtype=np.int64)
        return FactorVAEResult(0.0, 0.0, 0, votes)
    train_shape, eval_shape = (
        (num_factors, num_train, batch_size),
        (num_factors, num_eval, batch_size),
    )
    train_votes = _factor_vae_votes(sampler, rng, train_shape, scale, active)
    classifier = np.argmax(train_votes, axis=1)
    eval_votes = _factor_vae_votes(sampler, rng, eval_shape, scale, active)
    rows = np.arange(scale.size)
    return FactorVAEResult(
        train_accuracy=float(train_votes[rows, classifier].sum() / train_votes.sum()),
        eval_accuracy=float(eval_votes[rows, classifier].sum() / eval_votes.sum()),
        num_active_dims=int(active.sum()),
        votes=train_votes,
    )
