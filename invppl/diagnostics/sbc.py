"""Simulation-based calibration (Talts et al. 2018) of an amortised η posterior.

Simulate from the fitted model, (z, η*, x) ~ p(z) p(η | x̂(z)) p(x | x̂, η), draw
L samples η_1..η_L ~ q(η | x) from the guide, and count the rank
r = #{l : η_l < η*} ∈ {0, ..., L}. If q(η | x) is the model's posterior the
rank is uniform on {0, ..., L}: η* and the η_l are then exchangeable given x.
A ∪-shaped rank histogram means an over-confident guide, a ∩ shape an
under-confident one, a slope a biased one.

A periodic parameter has no order; the circle is cut opposite the circular
mean of M further guide draws (a function of x alone, so exchangeability
survives) and ranks are taken in ``[c − P/2, c + P/2)``.

Uniformity is tested on the randomised PIT values (r + U) / (L + 1), exactly
uniform under calibration, with ArviZ's test (``uniformity_test``, the
default "pot_c" statistic), and with a χ² test on the rank histogram's bins.
Because the guide is amortised no refitting is needed (unlike NumPyro's
``vsbc_diagnostic``, which refits SVI per simulated data set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import scipy.stats
from arviz_stats.base import array_stats
from jax import Array
from numpyro import handlers
from numpyro.primitives import Messenger

from invppl.diagnostics._checks import check_counts, check_guide_has_eta
from invppl.diagnostics.convert import eta_parameters, latent_sites
from invppl.transforms.support import Parameter, Periodic

__all__ = ["SBCResult", "sbc", "simulate"]


class _Unobserved(Messenger):
    """Turns every observed sample site (not factors) into one sampled from its distribution."""

    def process_message(self, msg: dict) -> None:
        if msg["type"] == "sample" and msg["is_observed"] and not _is_factor(msg):
            msg["value"] = None
            msg["is_observed"] = False
            msg["infer"] = {**msg.get("infer", {}), "_simulated": True}


def _is_factor(site: Mapping[str, Any]) -> bool:
    return isinstance(site["fn"], dist.Unit)  # what numpyro.factor samples


def simulate(
    model: Any, params: Mapping[str, Any], x_template: Array, *, seed: int | Array
) -> tuple[Array, dict[str, Array]]:
    """One batch of data from the fitted model, with the latent values behind it.

    ``model(x_template)`` must have exactly one observed site, the data; it is
    sampled instead of observed. Returns ``(x, latents)``: ``x`` shaped like
    ``x_template`` and ``{site: (batch, ...)}``.
    """
    x_template = jnp.asarray(x_template)
    fixed = handlers.substitute(model, data=dict(params))
    observed: list[str] = []

    def probe(x: Array) -> int:  # traced abstractly: names only, nothing computed
        trace = handlers.trace(handlers.seed(fixed, 0)).get_trace(x)
        observed.extend(
            n
            for n, s in trace.items()
            if s["type"] == "sample" and s["is_observed"] and not _is_factor(s)
        )
        return 0

    jax.eval_shape(probe, x_template)
    if len(observed) != 1:
        raise ValueError(
            f"simulation needs exactly one observed site (the data), the model has {observed}"
        )
    trace = handlers.trace(handlers.seed(_Unobserved(fixed), seed)).get_trace(x_template)
    x = trace[observed[0]]["value"]
    if jnp.shape(x) != x_template.shape:
        raise ValueError(
            f"the simulated data {observed[0]!r} has shape {jnp.shape(x)}, the data "
            f"{x_template.shape}"
        )
    latents = {
        n: s["value"]
        for n, s in trace.items()
        if s["type"] == "sample" and not s["is_observed"] and n != observed[0]
    }
    return x.astype(x_template.dtype), latents


@dataclass(frozen=True)
class SBCResult:
    """Ranks of the simulated η among guide draws and uniformity tests per parameter.

    Attributes:
        ranks: ``(num_simulations, k)`` integers in ``0..num_samples``.
        num_samples: L, guide draws per simulation.
        parameters: the k parameters.
        table: per parameter ``p_value`` (ArviZ uniformity test of the randomised
            PIT), ``chi2_p_value`` (χ² on ``bins`` rank bins) and ``mean_pit``.
        bins: the number of equal-width bins of the rank histogram.
    """

    ranks: np.ndarray
    num_samples: int
    parameters: tuple[Parameter, ...]
    table: pd.DataFrame
    bins: int

    def histogram(self, parameter: str) -> np.ndarray:
        """``(bins,)`` counts of the ranks of ``parameter`` in equal-width bins."""
        column = [p.name for p in self.parameters].index(parameter)
        edges = np.linspace(0, self.num_samples + 1, self.bins + 1)
        counts, _ = np.histogram(self.ranks[:, column], bins=edges)
        return counts


def _order_values(
    eta: np.ndarray, centre_draws: np.ndarray, parameters: Sequence[Parameter]
) -> np.ndarray:
    """η ``(..., batch, k)`` mapped to values whose order defines the rank."""
    out = np.array(eta, dtype=float, copy=True)
    for j, parameter in enumerate(parameters):
        if isinstance(parameter.support, Periodic):
            period = parameter.support.period
            angle = 2 * np.pi * centre_draws[..., j] / period
            centre = np.angle(np.mean(np.exp(1j * angle), axis=0)) * period / (2 * np.pi)
            out[..., j] = np.mod(eta[..., j] - centre + period / 2, period)
    return out


_Round = Callable[[Array], tuple[Array, Array, Array]]
"""``one_round(key)``: one simulated batch, see :func:`_simulation_round`."""


def _simulation_round(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x_template: Array,
    eta_site: str,
    num_samples: int,
) -> _Round:
    """A compiled ``one_round(key)``: simulate a batch shaped like ``x_template``, draw the guide.

    ``one_round`` returns ``(truth, draws, centres)``: the simulated η
    ``(batch, k)``, ``num_samples`` guide draws ``(num_samples, batch, k)`` given
    the simulated data, and as many further draws that place each periodic
    parameter's cut (:func:`_order_values`).
    """
    fixed_guide = handlers.substitute(guide, data=dict(params))

    def draw_guide(key: Array, x: Array) -> Array:
        trace = handlers.trace(handlers.seed(fixed_guide, key)).get_trace(x)
        return trace[eta_site]["value"]

    @jax.jit
    def one_round(key: Array) -> tuple[Array, Array, Array]:
        simulate_key, draw_key, centre_key = jax.random.split(key, 3)
        x, latents = simulate(model, params, x_template, seed=simulate_key)
        draws = jax.lax.map(lambda k: draw_guide(k, x), jax.random.split(draw_key, num_samples))
        centres = jax.lax.map(lambda k: draw_guide(k, x), jax.random.split(centre_key, num_samples))
        return latents[eta_site], draws, centres

    return one_round


def _ranks(
    one_round: _Round, parameters: Sequence[Parameter], rounds: int, seed: int
) -> np.ndarray:
    """``(rounds · batch, k)`` ranks ``#{l : η_l < η*}`` of each simulated η among its draws."""
    keys = jax.random.split(jax.random.PRNGKey(seed), rounds)
    ranks = []
    for key in keys:
        truth, draws, centres = (np.asarray(a) for a in one_round(key))
        truth_v = _order_values(truth, centres, parameters)
        draws_v = _order_values(draws, centres, parameters)
        ranks.append(np.sum(draws_v < truth_v[None], axis=0))
    return np.concatenate(ranks, axis=0)


def _default_bins(num_simulations: int, num_samples: int) -> int:
    """About ``num_simulations / 10`` rank bins, from 2 to 20, dividing L + 1 when possible."""
    bins = int(max(2, min(20, num_simulations // 10)))
    while bins > 2 and (num_samples + 1) % bins:
        bins -= 1
    return bins


def _uniformity_table(
    rank: np.ndarray, num_samples: int, bins: int, parameters: Sequence[Parameter], seed: int
) -> pd.DataFrame:
    """Per parameter, tests that the ``(num_simulations, k)`` ranks in ``0..L`` are uniform.

    Columns: ``p_value`` (ArviZ's test of the randomised PIT ``(r + U) / (L + 1)``,
    U uniform from ``seed``), ``chi2_p_value`` (χ² on ``bins`` equal-width rank
    bins) and ``mean_pit``; indexed by parameter name.
    """
    pit = (rank + np.random.default_rng(seed).uniform(size=rank.shape)) / (num_samples + 1)
    rows = []
    edges = np.linspace(0, num_samples + 1, bins + 1)
    for j, parameter in enumerate(parameters):
        p_value = float(array_stats.uniformity_test(pit[:, j])[0])
        counts, _ = np.histogram(rank[:, j], bins=edges)
        expected = np.diff(np.ceil(edges))  # integers per bin
        chi2 = scipy.stats.chisquare(counts, expected * counts.sum() / expected.sum())
        rows.append(
            {
                "parameter": parameter.name,
                "p_value": p_value,
                "chi2_p_value": float(chi2.pvalue),
                "mean_pit": float(pit[:, j].mean()),
            }
        )
    return pd.DataFrame(rows).set_index("parameter")


def sbc(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x_template: Array,
    *,
    parameters: Sequence[Parameter] | None = None,
    eta_site: str = "eta",
    num_simulations: int = 200,
    num_samples: int = 99,
    bins: int | None = None,
    seed: int = 0,
) -> SBCResult:
    """Simulation-based calibration of the guide's η posterior (see the module docs).

    Args:
        model, guide: a fitted NumPyro model/guide pair (``model(x)``, ``guide(x)``).
        params: the fitted parameters (and mutable state).
        x_template: ``(batch, ...)`` data whose shape each simulated batch takes
            (its values are not used); ``num_simulations`` are drawn in batches
            of this size.
        parameters: η's transformation parameters (default: the site's own).
        num_simulations: simulated examples.
        num_samples: L, guide draws per simulated example (ranks in 0..L).
        bins: bins of the rank histogram (default: about num_simulations / 10, at
            most 20, and dividing L + 1 when possible).
        seed: the PRNG seed.
    """
    check_counts(num_simulations=(num_simulations, 2), num_samples=(num_samples, 1))
    x_template = jnp.asarray(x_template)
    present = latent_sites(model, params, x_template)
    parameters = eta_parameters(present, eta_site, parameters)
    check_guide_has_eta(guide, params, x_template, eta_site)
    one_round = _simulation_round(model, guide, params, x_template, eta_site, num_samples)
    rounds = math.ceil(num_simulations / x_template.shape[0])
    rank = _ranks(one_round, parameters, rounds, seed)[:num_simulations]
    if bins is None:
        bins = _default_bins(num_simulations, num_samples)
    table = _uniformity_table(rank, num_samples, bins, parameters, seed)
    return SBCResult(rank, num_samples, parameters, table, bins)
