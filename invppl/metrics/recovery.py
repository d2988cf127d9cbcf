"""Was a class's law of η recovered? The learned law against the truth and two baselines.

A prototype's pose is identifiable only up to an offset per class (the
prototype's own orientation, position or size is arbitrary), so the learned
values are first aligned: the offset is the (circular) mean of f(x) − η over
the class's training examples, f the pose function and η the true
transformation of each example. Then, on held-out examples of the class:

- ``w1``: the 1-D Wasserstein distance between the aligned samples of the
  learned p(η | x̂) and a sample of the true law (on the circle of period
  ``period`` for periodic parameters, on the line otherwise);
- ``uniform_baseline``: the W1 of a law that knows nothing, uniform on the
  circle (periodic) or on ``bounds`` (the line);
- ``point_baseline``: the W1 of the best point mass, "this class has no such
  transformation";
- ``pose_error``: the mean absolute deviation of f(x) − η − offset, the pose
  function's own error, and ``stage1_w1``: the W1 of the aligned poses
  themselves (the law a perfect stage 2 would learn);
- ``sampling_floor``: the W1 of the held-out examples' own true values to the
  law, the noise of a finite test set (about 0.14 rad for 100 angles uniform
  on the circle): a learned law that is sharp per example cannot come closer.

A law counts as recovered when ``w1`` is within ``tolerance`` and no worse
than the better baseline, leaving out a baseline that is the truth itself
(the point mass for a point-mass law, the uniform law for a uniform one:
within half the tolerance of it), which no learned law can beat.

:func:`pose_equivariance_error` needs no truth: how far f is from
f(T_η x) = η ∘ f(x) on held-out data, the check that flags a failed stage 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import jax.numpy as jnp
import numpy as np
from jax import Array
from numpy.typing import ArrayLike

from invppl.metrics.wasserstein import wasserstein_circle, wasserstein_line
from invppl.models.sgm_two_stage import pose_residual
from invppl.transforms.family import TransformFamily

__all__ = ["LawRecovery", "law_recovery", "pose_equivariance_error"]

_SAME = 0.5
"""A baseline within this fraction of the tolerance of the truth is the truth itself.

Half the tolerance: the truth is a finite sample (4,000 draws put a uniform law
on the circle about 0.03 rad from itself), so a uniform law's own baseline is
never exactly 0."""


@dataclass(frozen=True)
class LawRecovery:
    """How close one class's learned law of one parameter came to the truth (see module)."""

    w1: float
    uniform_baseline: float
    point_baseline: float
    pose_error: float
    stage1_w1: float
    sampling_floor: float
    offset: float
    tolerance: float
    recovered: bool

    @property
    def verdict(self) -> str:
        """One sentence: recovered or not, with the distance and the baselines."""
        word = "recovered" if self.recovered else "NOT recovered"
        return (
            f"{word}: W1 {self.w1:.3f} to the true law (tolerance {self.tolerance:.3f}); "
            f"a uniform law is at {self.uniform_baseline:.3f}, the best point mass at "
            f"{self.point_baseline:.3f}; the held-out examples' own true values are "
            f"{self.sampling_floor:.3f} from it; pose error {self.pose_error:.3f}"
        )

    def to_dict(self) -> dict[str, float | bool | str]:
        return {**asdict(self), "verdict": self.verdict}


def _wrap(values: np.ndarray, period: float | None) -> np.ndarray:
    return values if period is None else (values + period / 2) % period - period / 2


def _offset(deviation: np.ndarray, period: float | None) -> float:
    if period is None:
        return float(np.mean(deviation))
    turns = np.exp(2j * math.pi * deviation / period)
    return float(np.angle(turns.mean()) * period / (2 * math.pi))


def _distance(a: np.ndarray, b: np.ndarray, period: float | None) -> float:
    return wasserstein_line(a, b) if period is None else wasserstein_circle(a, b, period)


def _best_point_mass(truth: np.ndarray, period: float | None) -> float:
    if period is None:
        return float(np.mean(np.abs(truth - np.median(truth))))
    # on the circle: the best of a fine grid of points, refined around the best one
    grid = np.linspace(-period / 2, period / 2, 721)
    costs = [np.mean(np.abs(_wrap(truth - c, period))) for c in grid]
    centre = grid[int(np.argmin(costs))]
    fine = centre + np.linspace(-period / 720, period / 720, 41)
    return float(min(np.mean(np.abs(_wrap(truth - c, period))) for c in fine))


def _uniform(truth: np.ndarray, period: float | None, bounds: tuple[float, float] | None) -> float:
    if period is None:
        if bounds is None:
            raise ValueError("a parameter on the line needs bounds for the uniform baseline")
        low, high = bounds
    else:
        low, high = -period / 2, period / 2
    grid = low + (high - low) * (np.arange(4096) + 0.5) / 4096
    return _distance(grid, truth, period)


def _check_pairs(*pairs: tuple[str, np.ndarray, np.ndarray]) -> None:
    for name, first, second in pairs:
        if first.shape != second.shape or first.ndim != 1 or first.size == 0:
            raise ValueError(
                f"{name}: poses and true values must be non-empty (n,) arrays of one shape, "
                f"got {first.shape} and {second.shape}"
            )


def law_recovery(
    learned: ArrayLike,
    truth: ArrayLike,
    *,
    poses_train: ArrayLike,
    eta_train: ArrayLike,
    poses_test: ArrayLike,
    eta_test: ArrayLike,
    tolerance: float,
    period: float | None = None,
    bounds: tuple[float, float] | None = None,
) -> LawRecovery:
    """Compares one class's learned law of one parameter with the truth (see module).

    Args:
        learned: ``(m,)`` samples of the learned p(η | x̂) on the class's held-out
            prototypes, in the pose function's frame (not yet aligned).
        truth: ``(t,)`` samples of the true law.
        poses_train, eta_train: ``(n,)`` f(x) and the true η of training examples.
        poses_test, eta_test: ``(n',)`` the same on held-out examples.
        tolerance: the largest W1 that counts as recovered.
        period: the circle's circumference for a periodic parameter (e.g. 2π,
            or 2π/4 for a shape with four-fold symmetry); ``None`` on the line.
        bounds: ``(low, high)`` of the uniform baseline on the line.

    >>> rng = np.random.default_rng(0)
    >>> eta = rng.uniform(-0.3, 0.3, 500)
    >>> report = law_recovery(eta + 1.0, rng.uniform(-0.3, 0.3, 4000), poses_train=eta + 1.0,
    ...                       eta_train=eta, poses_test=eta + 1.0, eta_test=eta,
    ...                       tolerance=0.1, period=2 * math.pi)
    >>> report.recovered, round(report.offset, 3), report.w1 < 0.05 < report.point_baseline
    (True, 1.0, True)
    """
    learned_values = np.asarray(learned, np.float64).ravel()
    true_values = np.asarray(truth, np.float64).ravel()
    train = (np.asarray(poses_train, np.float64), np.asarray(eta_train, np.float64))
    test = (np.asarray(poses_test, np.float64), np.asarray(eta_test, np.float64))
    _check_pairs(("training", *train), ("held-out", *test))
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    offset = _offset(_wrap(train[0] - train[1], period), period)
    aligned = _wrap(learned_values - offset, period)
    pose_error = float(np.mean(np.abs(_wrap(test[0] - test[1] - offset, period))))
    stage1 = _distance(_wrap(test[0] - offset, period), true_values, period)
    floor = _distance(_wrap(test[1], period), true_values, period)
    w1 = _distance(aligned, true_values, period)
    uniform, point = _uniform(true_values, period, bounds), _best_point_mass(true_values, period)
    fair = [b for b in (uniform, point) if b > _SAME * tolerance]
    recovered = w1 <= tolerance and w1 <= min(fair, default=math.inf)
    return LawRecovery(
        w1, uniform, point, pose_error, stage1, floor, offset, float(tolerance), recovered
    )


def pose_equivariance_error(
    pose: Callable[[Array], Array], family: TransformFamily, x: Array, eta: Array
) -> np.ndarray:
    """How far a pose function is from equivariant on ``x``, needing no true η: ``(batch,)``.

    For images ``x`` ``(batch, H, W, C)`` and transformations ``eta``
    ``(batch, k)``, the composed map M = T_f(x) ∘ T_f(T_η x)⁻¹ ∘ T_η is the
    identity for an exactly equivariant f; this returns ‖M − I‖_F / √2 over
    its free entries (:func:`invppl.models.sgm_two_stage.pose_residual`),
    which for a rotation is the chord ``2 |sin(d / 2)|`` (about ``|d|``, at most 2), d the
    angle by which f misses.
    Held-out examples with a large error are ones whose prototype cannot be
    trusted; a fit whose median error is large has failed, whatever its loss.

    >>> import jax.numpy as jnp
    >>> from invppl.transforms import Affine
    >>> family = Affine(("tx",))
    >>> images = jnp.zeros((2, 8, 8, 1))
    >>> error = pose_equivariance_error(lambda x: jnp.zeros((2, 1)), family, images,
    ...                                 jnp.array([[0.2], [-0.1]]))
    >>> [round(float(e), 3) for e in error]  # a constant pose misses each shift entirely
    [0.141, 0.071]
    """
    x = jnp.asarray(x)
    eta = jnp.asarray(eta)
    if eta.shape != (x.shape[0], family.dim):
        raise ValueError(
            f"eta must have shape (batch, {family.dim}) = ({x.shape[0]}, {family.dim}), "
            f"got {eta.shape}"
        )
    residual = pose_residual(family, pose(x), pose(family.apply(x, eta)), eta)
    return np.asarray(jnp.linalg.norm(residual, axis=-1) / math.sqrt(2.0))
