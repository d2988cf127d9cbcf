"""The guide against a reference posterior, per example and transformation parameter.

For each example n and parameter j, with guide draws g and reference draws r:

- ``w1``: the 1-D Wasserstein distance between the two samples, on the circle
  (of the parameter's period) for a periodic parameter
  (:func:`invppl.metrics.wasserstein_circle`), on the line otherwise;
- ``ref_sd``: the reference's spread (standard deviation; circular standard
  deviation √(−2 log R̄) for a periodic parameter), a scale for ``w1``;
- ``coverage_p``: the fraction of reference draws inside the guide's central
  ``p`` interval. A calibrated guide gives ≈ p; an over-confident one less.
  On a circle the interval is taken around the guide's circular mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from xarray import DataTree

from invppl.metrics.wasserstein import wasserstein_circle, wasserstein_line
from invppl.transforms.support import Parameter, Periodic

__all__ = ["central_interval", "compare_to_reference", "eta_summary", "worst_examples"]


def _centred(values: np.ndarray, centre: float, period: float) -> np.ndarray:
    """``values - centre`` wrapped onto ``[-period/2, period/2)``."""
    return np.mod(values - centre + period / 2, period) - period / 2


def _circular_mean(values: np.ndarray, period: float) -> float:
    angle = 2 * np.pi * values / period
    return float(np.angle(np.mean(np.exp(1j * angle))) * period / (2 * np.pi))


def central_interval(
    draws: np.ndarray, prob: float, period: float | None = None
) -> tuple[float, float]:
    """The central ``prob`` interval of 1-D ``draws``; on a circle, around their circular mean.

    On a circle the bounds are returned unwrapped, around the circular mean
    (``low`` may lie below the support's start or ``high`` above its end).
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    tail = (1 - prob) / 2
    if period is None:
        low, high = np.quantile(draws, [tail, 1 - tail])
        return float(low), float(high)
    centre = _circular_mean(draws, period)
    low, high = np.quantile(_centred(draws, centre, period), [tail, 1 - tail])
    return centre + float(low), centre + float(high)


def _inside(values: np.ndarray, bounds: tuple[float, float], period: float | None) -> np.ndarray:
    low, high = bounds
    if period is None:
        return (values >= low) & (values <= high)
    centre = (low + high) / 2
    offset = _centred(values, centre, period)
    return np.abs(offset) <= (high - low) / 2


def _spread(draws: np.ndarray, period: float | None) -> float:
    if period is None:
        return float(np.std(draws))
    angle = 2 * np.pi * draws / period
    length = np.abs(np.mean(np.exp(1j * angle)))
    return float(np.sqrt(-2 * np.log(max(length, 1e-12))) * period / (2 * np.pi))


def compare_to_reference(
    guide: DataTree,
    reference: DataTree,
    parameters: Sequence[Parameter],
    *,
    eta_site: str = "eta",
    probs: Sequence[float] = (0.5, 0.9),
) -> pd.DataFrame:
    """Per (example, parameter): ``w1``, ``ref_sd``, ``w1_relative`` and ``coverage_p``.

    Args:
        guide: a DataTree of guide draws (:func:`~invppl.diagnostics.from_guide`).
        reference: a DataTree of reference draws for the same examples
            (:func:`~invppl.diagnostics.reference_posterior`).
        parameters: η's transformation parameters.
        probs: the central interval probabilities whose coverage is reported.

    Returns:
        A DataFrame with a ``(example, parameter)`` index; ``w1_relative`` is
        ``w1 / ref_sd``.

    Raises:
        ValueError: the two trees hold different examples or parameters.
    """
    g = guide["posterior"][eta_site]
    r = reference["posterior"][eta_site]
    for dim in ("example", "parameter"):
        if list(g.coords[dim].values) != list(r.coords[dim].values):
            raise ValueError(
                f"guide and reference differ in {dim}: {list(g.coords[dim].values)} vs "
                f"{list(r.coords[dim].values)}"
            )
    rows = []
    for example in g.coords["example"].values:
        for parameter in parameters:
            gd = np.asarray(g.sel(example=example, parameter=parameter.name)).ravel()
            rd = np.asarray(r.sel(example=example, parameter=parameter.name)).ravel()
            period = parameter.support.period if isinstance(parameter.support, Periodic) else None
            w1 = wasserstein_line(gd, rd) if period is None else wasserstein_circle(gd, rd, period)
            sd = _spread(rd, period)
            row = {
                "example": int(example),
                "parameter": parameter.name,
                "w1": w1,
                "ref_sd": sd,
                "w1_relative": w1 / sd if sd > 0 else np.inf,
            }
            for prob in probs:
                bounds = central_interval(gd, prob, period)
                row[f"coverage_{round(100 * prob)}"] = float(np.mean(_inside(rd, bounds, period)))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["example", "parameter"])


def worst_examples(table: pd.DataFrame, n: int = 5, by: str = "w1_relative") -> pd.DataFrame:
    """The ``n`` rows of a :func:`compare_to_reference` table the guide gets most wrong."""
    if by not in table.columns:
        raise KeyError(f"no column {by!r}; the table has {list(table.columns)}")
    return table.sort_values(by, ascending=False).head(n)


def eta_summary(
    tree: DataTree,
    parameters: Sequence[Parameter],
    *,
    group: str = "posterior",
    eta_site: str = "eta",
    prob: float = 0.9,
) -> pd.DataFrame:
    """Per (example, parameter): mean, sd and central ``prob`` interval, circular where periodic.

    Use it instead of ``arviz.summary`` for η: ArviZ treats every variable as
    lying on the line, so for an angle whose draws straddle ±π it reports a
    mean near 0 (the opposite side of the circle) and a huge sd. Here a
    periodic parameter gets its circular mean (wrapped into its support), its
    circular standard deviation √(−2 log R̄) (in the parameter's units) and
    the central interval around the circular mean (bounds unwrapped, see
    :func:`central_interval`); the others their mean, standard deviation and
    quantile interval. The ``circular`` column says which.

    Args:
        tree: a DataTree with ``group`` holding η's draws ``(chain, draw,
            example, parameter)`` (e.g. ``EtaCheck.tree``, group ``"posterior"``
            for the guide, ``"reference_posterior"`` for NUTS).
        parameters: η's transformation parameters (their supports say which
            are periodic).
    """
    if group not in tree.children or eta_site not in tree[group]:
        raise KeyError(f"the tree has no group {group!r} with η's site {eta_site!r}")
    eta = tree[group][eta_site]
    tail = (1 - prob) / 2
    rows = []
    for example in eta.coords["example"].values:
        for p in parameters:
            draws = np.asarray(eta.sel(example=example, parameter=p.name)).ravel()
            support = p.support
            period = support.period if isinstance(support, Periodic) else None
            mean = float(np.mean(draws))
            if isinstance(support, Periodic):
                mean = support.low + float(
                    np.mod(_circular_mean(draws, support.period) - support.low, support.period)
                )
            low, high = central_interval(draws, prob, period)
            rows.append(
                {
                    "example": example,
                    "parameter": p.name,
                    "mean": mean,
                    "sd": _spread(draws, period),
                    f"q{tail:.0%}": low,
                    f"q{1 - tail:.0%}": high,
                    "circular": period is not None,
                }
            )
    return pd.DataFrame(rows).set_index(["example", "parameter"])
