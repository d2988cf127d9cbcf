"""One-dimensional Wasserstein-1 distances on the line and on the circle.

These are evaluation metrics on concrete arrays (NumPy, float64), e.g. to
compare a learned marginal p(η) with the law that generated the data.

On the line, W1 is the area between the two distribution functions::

    W1(μ, ν) = ∫ |F(t) − G(t)| dt.

On a circle of circumference ``P`` (angles), the distribution functions are
defined from an arbitrary origin only up to an additive constant, and::

    W1(μ, ν) = min_α ∫_0^P |F(t) − G(t) − α| dt,

minimised at α = a weighted median of F − G (weights: lengths of the pieces
on which F − G is constant); see Rabin, Delon & Gousseau, "Transportation
distances on the circle", J. Math. Imaging Vis. 2011, and Cabrelli & Molter,
"The Kantorovich metric for probability measures on the circle", J. Comput.
Appl. Math. 1995.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from invppl._checks import check_int
from invppl.metrics._checks import as_float, finite_float64

__all__ = ["CdfLike", "wasserstein_circle", "wasserstein_line", "wasserstein_to_law"]

# Mass a law may leave outside the integration range (each side).
_TAIL_MASS = 1e-10
# Tolerance on a distribution function's values and monotonicity.
_CDF_TOLERANCE = 1e-9
# The most periods a law may spread over before wrapping it is refused.
_MAX_PERIODS = 100_000
# Cap on the size of one (periods × points) block of cdf evaluations.
_BLOCK = 4_000_000


@runtime_checkable
class _HasCdf(Protocol):
    def cdf(self, x: ArrayLike) -> np.ndarray: ...


CdfLike = Callable[[np.ndarray], ArrayLike] | _HasCdf
"""A distribution function ``x -> P(X ≤ x)`` (vectorised), or an object with a ``cdf`` method
such as the laws of :mod:`invppl.datasets.laws`."""


def _check_samples(samples: ArrayLike, name: str) -> np.ndarray:
    """Checks a non-empty, finite, 1-D sample; returns it as float64, shape ``(n,)``."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of samples, got ndim {array.ndim} with shape "
            f"{array.shape} (flatten it, or pass one coordinate at a time)"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return finite_float64(array, name)


def _check_period(period: object) -> float:
    """Checks a finite, positive circumference."""
    value = as_float(period, "period", "a positive finite number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"period must be a positive finite number, got {value}")
    return value


def _wrap(values: np.ndarray, period: float) -> np.ndarray:
    """Reduces values into ``[0, period)`` (``np.mod`` can round up to ``period`` itself)."""
    wrapped = np.mod(values, period)
    return np.where(wrapped >= period, 0.0, wrapped)


def _empirical_cdf(sorted_samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Fraction of the samples ≤ each point."""
    return np.searchsorted(sorted_samples, points, side="right") / sorted_samples.size


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """A minimiser of Σ_i w_i |v_i − α| over α (weights non-negative, not all zero)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, 0.5 * cumulative[-1], side="left"))
    return float(values[order][min(index, values.size - 1)])


def _circle_cost(difference: np.ndarray, lengths: np.ndarray) -> float:
    """min_α Σ_i lengths_i |difference_i − α|."""
    if lengths.size == 0 or float(np.sum(lengths)) <= 0:
        return 0.0
    alpha = _weighted_median(difference, lengths)
    return float(np.sum(lengths * np.abs(difference - alpha)))


def wasserstein_line(a: ArrayLike, b: ArrayLike) -> float:
    """Exact W1 between two empirical samples on the real line.

    Each sample puts equal mass on its points; the two may differ in size.
    Computed as ``∫ |F_a − F_b|`` over the merged, sorted sample points, where both
    empirical distribution functions are constant between consecutive points.

    Args:
        a: ``(n,)`` finite samples.
        b: ``(m,)`` finite samples.

    Returns:
        The distance, a non-negative float (in the units of the samples).

    Raises:
        ValueError: a sample is empty, not 1-D, or has NaN or infinite values.

    >>> wasserstein_line([0.0, 1.0], [0.5])
    0.5
    """
    first = np.sort(_check_samples(a, "a"))
    second = np.sort(_check_samples(b, "b"))
    points = np.sort(np.concatenate([first, second]))
    widths = np.diff(points)
    left = points[:-1]
    gap = np.abs(_empirical_cdf(first, left) - _empirical_cdf(second, left))
    return float(np.sum(gap * widths))


def wasserstein_circle(a: ArrayLike, b: ArrayLike, period: float = 2 * math.pi) -> float:
    """Exact W1 between two empirical samples on a circle of circumference ``period``.

    The cost of moving mass is the arc length, the shorter way round. Values
    may be any reals (angles are reduced modulo ``period``); the samples may
    differ in size. Uses ``W1 = min_α ∫_0^P |F_a − F_b − α|``, minimised at the
    weighted median of F_a − F_b over the pieces between merged sample points
    (Rabin, Delon & Gousseau 2011), in O((n + m) log(n + m)).

    Args:
        a: ``(n,)`` finite samples (e.g. angles in radians).
        b: ``(m,)`` finite samples.
        period: the circumference, e.g. ``2 * math.pi`` for radians or
            ``360.0`` for degrees.

    Returns:
        The distance, a float in ``[0, period / 2]``.

    Raises:
        ValueError: a sample is empty, not 1-D, or has NaN or infinite values,
            or ``period`` is not a positive finite number.

    >>> round(wasserstein_circle([0.1], [2 * math.pi - 0.1]), 12)
    0.2
    """
    period = _check_period(period)
    first = np.sort(_wrap(_check_samples(a, "a"), period))
    second = np.sort(_wrap(_check_samples(b, "b"), period))
    points = np.unique(np.concatenate([first, second, [0.0, period]]))
    lengths = np.diff(points)
    left = points[:-1]
    difference = _empirical_cdf(first, left) - _empirical_cdf(second, left)
    return _circle_cost(difference, lengths)


def _as_cdf(cdf: CdfLike) -> Callable[[np.ndarray], ArrayLike]:
    if callable(cdf):
        return cdf
    method = getattr(cdf, "cdf", None)
    if callable(method):
        return method
    raise TypeError(
        "cdf must be a callable x -> P(X <= x) or an object with a cdf method "
        f"(e.g. invppl.datasets.UniformLaw), got {type(cdf).__name__}"
    )


def _evaluate(cdf: Callable[[np.ndarray], ArrayLike], points: np.ndarray) -> np.ndarray:
    """The cdf at ``points``, checked to be finite probabilities of the same shape."""
    values = np.asarray(cdf(points), dtype=np.float64)
    if values.shape != points.shape:
        raise ValueError(
            f"cdf must be vectorised: given points of shape {points.shape} it returned shape "
            f"{values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("cdf returned NaN or infinite values")
    if np.any(values < -_CDF_TOLERANCE) or np.any(values > 1 + _CDF_TOLERANCE):
        raise ValueError(
            f"cdf must return probabilities in [0, 1] on the whole real line, got values in "
            f"[{values.min()}, {values.max()}] (clip a cdf given only on its support)"
        )
    return np.clip(values, 0.0, 1.0)


def _tail_bound(
    cdf: Callable[[np.ndarray], ArrayLike], start: float, scale: float, *, upper: bool
) -> float:
    """A point beyond which the law leaves at most ``_TAIL_MASS`` (below it, or above if upper).

    Returns ``start`` if it already is one; otherwise steps outwards, doubling,
    and then bisects towards ``start`` to keep the range tight.
    """

    def outside(x: float) -> bool:
        value = float(_evaluate(cdf, np.array([x]))[0])
        return value >= 1 - _TAIL_MASS if upper else value <= _TAIL_MASS

    if outside(start):
        return start
    sign = 1.0 if upper else -1.0
    step = scale
    for _ in range(200):
        far = start + sign * step
        if outside(far):
            break
        step *= 2.0
    else:
        limit = "1 at +inf" if upper else "0 at -inf"
        raise ValueError(f"cdf does not tend to {limit}: is it a distribution function?")
    near = start
    for _ in range(200):
        middle = 0.5 * (near + far)
        if middle in (near, far):
            break
        if outside(middle):
            far = middle
        else:
            near = middle
    return far


def _check_monotone(values: np.ndarray) -> None:
    if np.any(np.diff(values) < -_CDF_TOLERANCE):
        raise ValueError("cdf must be non-decreasing")


def _wrapped_cdf(
    cdf: Callable[[np.ndarray], ArrayLike], points: np.ndarray, period: float
) -> np.ndarray:
    """The law wrapped onto ``[0, period)``: G(t) = Σ_k [F(t + kP) − F(kP)], for t in points.

    G is the mass of the wrapped law in ``[0, t]`` up to atoms at the origin,
    which only shift G by a constant (irrelevant on the circle). It works for a
    line law on any support (e.g. angles in (−π, π]) and for a cdf already
    given on ``[0, period)``.
    """
    low = _tail_bound(cdf, 0.0, period, upper=False)
    high = _tail_bound(cdf, period, period, upper=True)
    first, last = math.floor(low / period), math.floor(high / period)
    count = last - first + 1
    if count > _MAX_PERIODS:
        raise ValueError(
            f"the law spreads over {count} periods of length {period}; wrap samples of it "
            "and use wasserstein_circle instead"
        )
    shifts = period * np.arange(first, last + 1, dtype=np.float64)
    total = -float(np.sum(_evaluate(cdf, shifts)))
    wrapped = np.full(points.shape, total)
    rows = max(1, _BLOCK // max(points.size, 1))
    for start in range(0, shifts.size, rows):
        block = shifts[start : start + rows, None] + points[None, :]
        wrapped += _evaluate(cdf, block).sum(axis=0)
    return wrapped


def wasserstein_to_law(
    samples: ArrayLike,
    cdf: CdfLike,
    *,
    period: float | None = None,
    grid: int = 4096,
) -> float:
    """W1 between an empirical sample and a law given by its distribution function.

    The integral ``∫ |F_emp − F|`` (on a circle: ``min_α ∫_0^P |F_emp − G − α|``, with
    G the law wrapped onto ``[0, period)``) is taken by the midpoint rule on a
    uniform grid of ``grid`` cells merged with the sample points, so the
    empirical part is exact and the error comes only from F varying within a
    cell (a jump of F, e.g. an atom, costs at most half a cell width times its
    mass).

    On the line the grid spans the samples and the law's range up to 1e-10 of
    mass in each tail, found by searching the cdf. On a circle the cdf may be a
    line law's (e.g. over (−π, π] for angles, or a normal law spread over many
    turns): it is wrapped as G(t) = Σ_k [F(t + kP) − F(kP)].

    Args:
        samples: ``(n,)`` finite samples (on a circle, any reals: they are
            reduced modulo ``period``).
        cdf: a vectorised distribution function ``x -> P(X ≤ x)`` on the whole
            real line (values in [0, 1], non-decreasing), or an object with
            such a ``cdf`` method, e.g. the laws of :mod:`invppl.datasets.laws`.
        period: the circumference for a circle (e.g. ``2 * math.pi``); ``None``
            (default) for the line.
        grid: the number of uniform grid cells (at least 2).

    Returns:
        The distance, a non-negative float.

    Raises:
        ValueError: ``samples`` is empty, not 1-D, or has NaN or infinite
            values; ``period`` is not a positive finite number; ``grid`` is
            below 2; the cdf returns values of the wrong shape, non-finite,
            outside [0, 1] or decreasing.
        TypeError: ``cdf`` is neither callable nor has a ``cdf`` method, or
            ``grid`` is not an integer.

    >>> from invppl.datasets import UniformLaw
    >>> round(wasserstein_to_law([0.5], UniformLaw(0.0, 1.0)), 6)
    0.25
    """
    points = np.sort(_check_samples(samples, "samples"))
    function = _as_cdf(cdf)
    grid = check_int(grid, "grid", minimum=2)
    if period is None:
        scale = max(float(points[-1] - points[0]), 1.0)
        low = _tail_bound(function, float(points[0]), scale, upper=False)
        high = _tail_bound(function, float(points[-1]), scale, upper=True)
        nodes = np.unique(np.concatenate([np.linspace(low, high, grid + 1), points]))
        if nodes.size < 2:  # every sample and all the law's mass on one point
            return 0.0
        middles = 0.5 * (nodes[:-1] + nodes[1:])
        law = _evaluate(function, middles)
        _check_monotone(law)
        gap = np.abs(_empirical_cdf(points, middles) - law)
        return float(np.sum(gap * np.diff(nodes)))
    period = _check_period(period)
    wrapped = np.sort(_wrap(points, period))
    nodes = np.unique(np.concatenate([np.linspace(0.0, period, grid + 1), wrapped]))
    middles = 0.5 * (nodes[:-1] + nodes[1:])
    law = _wrapped_cdf(function, middles, period)
    _check_monotone(law)
    difference = _empirical_cdf(wrapped, middles) - law
    return _circle_cost(difference, np.diff(nodes))
