"""Pictures of an :class:`~invppl.diagnostics.EtaCheck`: posteriors, forest plot, rank histograms.

Without a ``parameter``, the posteriors and the forest plot show every η
parameter (one column each). Each function returns a matplotlib ``Figure``
built with the object API (no pyplot state, nothing displayed until the caller
shows or saves it); periodic
parameters are drawn on their circle's interval (histograms) or around the
guide's circular mean (intervals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import binom

from invppl.diagnostics.check import EtaCheck
from invppl.diagnostics.compare import central_interval
from invppl.transforms.support import Interval, Parameter, Periodic

__all__ = ["plot_eta_posteriors", "plot_forest", "plot_ranks"]


def _parameter(check: EtaCheck, name: str | None) -> Parameter:
    names = [p.name for p in check.parameters]
    if name is None:
        return check.parameters[0]
    if name not in names:
        raise KeyError(f"no transformation parameter {name!r}; the check has {names}")
    return check.parameters[names.index(name)]


def _draws(check: EtaCheck, group: str, example: int, parameter: str) -> np.ndarray:
    if check.eta_site not in check.tree[group]:
        raise KeyError(f"group {group!r} has no draws of η's site {check.eta_site!r}")
    eta = check.tree[group][check.eta_site]
    return np.asarray(eta.sel(example=example, parameter=parameter)).ravel()


def _examples(check: EtaCheck, examples: Sequence[int] | None, limit: int) -> list[int]:
    present = [int(e) for e in check.tree.posterior.coords["example"].values]
    chosen = present[:limit] if examples is None else [int(e) for e in examples]
    missing = sorted(set(chosen) - set(present))
    if missing:
        raise KeyError(f"examples {missing} were not checked; the check has {present}")
    return chosen


def _edges(p: Parameter, bins: int) -> np.ndarray | None:
    """Fixed histogram edges ``(bins + 1,)`` on a bounded support, else None (from the data)."""
    if isinstance(p.support, Periodic | Interval):
        return np.linspace(p.support.low, p.support.high, bins + 1)
    return None


def _posterior_panel(ax: Any, check: EtaCheck, example: int, p: Parameter, bins: int) -> None:
    """One example's guide and reference histograms of ``p``, titled with its W1 and k̂."""
    guide = _draws(check, "posterior", example, p.name)
    reference = _draws(check, "reference_posterior", example, p.name)
    grid = _edges(p, bins)
    if grid is None:
        grid = np.histogram_bin_edges(np.concatenate([guide, reference]), bins)
    ax.hist(reference, bins=grid, density=True, color="0.6", label="NUTS reference")
    ax.hist(guide, bins=grid, density=True, histtype="step", color="C0", lw=1.5, label="guide")
    row = check.summary.loc[(example, p.name)]
    flag = "" if row.reference_converged else " (ref. not conv.)"
    ax.set_title(rf"ex. {example}: W1 {row.w1:.2f}, $\hat{{k}}$ {row.khat:.2f}{flag}", fontsize=8)
    ax.set_yticks([])
    ax.tick_params(labelsize=7)


def plot_eta_posteriors(
    check: EtaCheck,
    parameter: str | None = None,
    *,
    examples: Sequence[int] | None = None,
    max_examples: int = 8,
    bins: int = 40,
) -> Figure:
    """Per example, histograms of the guide's and the NUTS reference's draws of η.

    With ``parameter`` (or a one-parameter η) the examples fill a grid of up
    to four columns; otherwise each row is an example and each column one of
    η's parameters, named on top. Each panel's title gives the W1 and k̂ of
    that example and marks examples whose reference did not converge.
    """
    chosen = _examples(check, examples, max_examples)
    shown = [_parameter(check, parameter)] if parameter is not None else list(check.parameters)
    if len(shown) == 1:
        columns = min(4, len(chosen))
        rows = math.ceil(len(chosen) / columns)
        cells = [(example, shown[0]) for example in chosen]
    else:
        columns, rows = len(shown), len(chosen)
        cells = [(example, p) for example in chosen for p in shown]
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (example, p) in zip(axes.ravel(), cells, strict=False):
        _posterior_panel(ax, check, example, p, bins)
    for ax in axes.ravel()[len(cells) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    if len(shown) == 1:
        fig.supxlabel(shown[0].name)
    else:
        for ax, p in zip(axes[-1], shown, strict=True):
            ax.set_xlabel(p.name)
    fig.tight_layout()
    return fig


def _forest_axis(
    ax: Any, check: EtaCheck, p: Parameter, chosen: list[int], probs: tuple[float, float]
) -> None:
    """The forest plot of parameter ``p`` for the examples ``chosen``, on ``ax``."""
    period = p.support.period if isinstance(p.support, Periodic) else None
    for row, example in enumerate(chosen):
        reference = _draws(check, "reference_posterior", example, p.name)
        anchor = 0.0
        if period is not None:
            low, high = central_interval(reference, 0.5, period)
            anchor = (low + high) / 2
        for offset, group, colour in (
            (0.15, "posterior", "C0"),
            (-0.15, "reference_posterior", "0.4"),
        ):
            draws = _draws(check, group, example, p.name)
            shift = 0.0
            if period is not None:
                # each sample around its own circular mean, then placed relative to the
                # reference's: a bar is never cut by the seam
                low, high = central_interval(draws, 0.5, period)
                own = (low + high) / 2
                draws = np.mod(draws - own + period / 2, period) - period / 2
                shift = float(np.mod(own - anchor + period / 2, period) - period / 2)
            inner = np.add(central_interval(draws, probs[0]), shift)
            outer = np.add(central_interval(draws, probs[1]), shift)
            y = row + offset
            ax.plot(outer, [y, y], color=colour, lw=1)
            ax.plot(inner, [y, y], color=colour, lw=3.5)
            ax.plot(np.median(draws) + shift, y, "o", color=colour, ms=3.5)
    ax.plot([], [], color="C0", lw=3.5, label="guide")
    ax.plot([], [], color="0.4", lw=3.5, label="NUTS reference")
    ax.set_yticks(range(len(chosen)), [str(e) for e in chosen])
    ax.set_xlabel(p.name if period is None else f"{p.name} − reference circular mean")


def plot_forest(
    check: EtaCheck,
    parameter: str | None = None,
    *,
    examples: Sequence[int] | None = None,
    max_examples: int = 30,
    probs: tuple[float, float] = (0.5, 0.9),
) -> Figure:
    """Per example, the guide's and the reference's central intervals of η's parameters.

    One panel per parameter (only ``parameter``'s when given). Thick bars are
    the ``probs[0]`` intervals, thin ones ``probs[1]``, dots the medians (on a
    circle: each sample's intervals are taken around its own circular mean and
    drawn relative to the reference's, so the seam never cuts a bar and a
    guide half a turn away shows as such).
    """
    chosen = _examples(check, examples, max_examples)
    shown = [_parameter(check, parameter)] if parameter is not None else list(check.parameters)
    fig = Figure(figsize=(5 * len(shown), 0.32 * len(chosen) + 1.2))
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, p in zip(axes, shown, strict=True):
        _forest_axis(ax, check, p, chosen, probs)
    axes[0].set_ylabel("example")
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_ranks(check: EtaCheck, *, band: float = 0.99) -> Figure:
    """SBC rank histograms per parameter with the ``band`` range of a uniform histogram.

    The grey band is the central ``band`` interval of one bin's count under
    calibration (binomial); the title gives the uniformity test's p-value.
    """
    if check.sbc is None:
        raise ValueError("the check ran without simulation-based calibration (sbc_simulations)")
    result = check.sbc
    count = len(result.parameters)
    fig = Figure(figsize=(3.6 * count, 2.6))
    axes = fig.subplots(1, count, squeeze=False)
    simulations = result.ranks.shape[0]
    for ax, p in zip(axes.ravel(), result.parameters, strict=True):
        counts = result.histogram(p.name)
        share = 1.0 / result.bins
        low, high = binom.interval(band, simulations, share)
        ax.axhspan(low, high, color="0.85", zorder=0)
        ax.axhline(simulations * share, color="0.5", lw=0.8)
        ax.bar(np.arange(result.bins), counts, width=0.9, color="C0")
        p_value = result.table.loc[p.name, "p_value"]
        ax.set_title(f"{p.name}: uniformity p = {p_value:.2g}", fontsize=9)
        ax.set_xlabel(f"rank bin (L = {result.num_samples})")
    axes[0, 0].set_ylabel("simulations")
    fig.tight_layout()
    return fig
