"""The η pictures: every parameter drawn, rank-histogram bins that fit few simulations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from xarray import DataTree

from invppl.diagnostics import EtaCheck, SBCResult
from invppl.diagnostics.plots import plot_eta_posteriors, plot_forest, plot_ranks
from invppl.diagnostics.sbc import _default_bins
from invppl.transforms.support import Parameter, Periodic, Real

PARAMETERS = (Parameter("rotation", Periodic()), Parameter("tx", Real()))
EXAMPLES = [0, 1, 2]


def _check(sbc: SBCResult | None = None) -> EtaCheck:
    rng = np.random.default_rng(0)
    names = [p.name for p in PARAMETERS]

    def eta(chains: int) -> xr.Dataset:
        values = rng.normal(scale=0.3, size=(chains, 100, len(EXAMPLES), len(names)))
        coords = {"example": EXAMPLES, "parameter": names}
        return xr.Dataset({"eta": (("chain", "draw", "example", "parameter"), values)}, coords)

    tree = DataTree.from_dict({"posterior": eta(1), "reference_posterior": eta(2)})
    index = pd.MultiIndex.from_product([EXAMPLES, names], names=["example", "parameter"])
    summary = pd.DataFrame({"w1": 0.1, "khat": 0.2, "reference_converged": True}, index=index)
    return EtaCheck(tree, summary, sbc, PARAMETERS)


def test_the_posteriors_show_every_parameter_of_every_example() -> None:
    figure = plot_eta_posteriors(_check())
    drawn = [ax for ax in figure.axes if ax.axison]
    assert len(drawn) == len(EXAMPLES) * len(PARAMETERS)
    assert [ax.get_xlabel() for ax in drawn[-2:]] == ["rotation", "tx"]
    one = plot_eta_posteriors(_check(), "tx")
    assert len([ax for ax in one.axes if ax.axison]) == len(EXAMPLES)


def test_the_forest_plot_has_a_panel_per_parameter() -> None:
    figure = plot_forest(_check())
    labels = [ax.get_xlabel() for ax in figure.axes]
    assert labels == ["rotation − reference circular mean", "tx"]
    assert [ax.get_xlabel() for ax in plot_forest(_check(), "tx").axes] == ["tx"]


@pytest.mark.parametrize(("simulations", "bins"), [(4, 2), (40, 4), (200, 20), (1000, 20)])
def test_rank_bins_follow_the_number_of_simulations(simulations: int, bins: int) -> None:
    assert _default_bins(simulations, 99) == bins
    assert 100 % _default_bins(simulations, 99) == 0  # each bin holds as many ranks


def test_the_rank_histogram_draws_the_results_bins() -> None:
    ranks = np.random.default_rng(1).integers(0, 100, size=(8, 2))
    table = pd.DataFrame({"p_value": [0.5, 0.5]}, index=pd.Index(["rotation", "tx"]))
    result = SBCResult(ranks, 99, PARAMETERS, table, _default_bins(8, 99))
    figure = plot_ranks(_check(result))
    for ax, p in zip(figure.axes, PARAMETERS, strict=True):
        (bars,) = ax.containers
        assert len(bars) == result.bins  # one bar per bin
        heights = [patch.get_height() for patch in bars]
        assert sum(heights) == 8
        assert ax.get_title().startswith(p.name)
    assert math.isclose(sum(result.histogram("tx")), 8)
