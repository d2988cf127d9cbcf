"""``check_eta``: every η diagnostic of a fitted model/guide pair in one call.

For the chosen examples x_1..x_N it

1. draws η (and z) from the guide: ``tree.posterior``;
2. runs NUTS on the model's posterior with the networks fixed:
   ``tree.reference_posterior`` / ``tree.reference_sample_stats``, with
   R-hat, bulk/tail ESS and divergences per example (:func:`convergence`);
3. compares the guide with the reference per example and parameter: circular
   or linear W1 and the coverage of the guide's central intervals
   (:func:`compare_to_reference`);
4. computes PSIS k̂ of the guide against the model's joint density per example
   (:func:`pareto_khat`);
5. runs simulation-based calibration of the amortised η posterior (:func:`sbc`).

The result holds the DataTree and one summary table, a row per example and
parameter, whose ``trusted`` column says whether the guide passes for that
example: the reference converged, k̂ ≤ 0.7, and the guide's 90% interval holds
at least ``min_coverage`` (default 0.8) of the reference's mass; its ``why``
column says, in words, which of these failed and by how much. With
``progress=True`` a bar names each stage as it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from jax import Array
from tqdm import tqdm
from xarray import DataTree

from invppl._checks import check_int
from invppl.diagnostics._checks import check_counts, check_guide_has_eta
from invppl.diagnostics.compare import compare_to_reference, eta_summary, worst_examples
from invppl.diagnostics.convert import eta_parameters, from_guide, latent_sites
from invppl.diagnostics.psis import KHAT_UNRELIABLE, MIN_SAMPLES, pareto_khat
from invppl.diagnostics.reference import convergence, reference_posterior
from invppl.diagnostics.sbc import SBCResult, sbc
from invppl.transforms.support import Parameter

_STAGES = ("guide draws", "NUTS reference", "comparison", "PSIS k-hat", "calibration (SBC)")

__all__ = ["EtaCheck", "check_eta"]


@dataclass(frozen=True)
class EtaCheck:
    """What :func:`check_eta` found.

    Attributes:
        tree: the DataTree: ``posterior`` (guide draws), ``reference_posterior``
            and ``reference_sample_stats`` (NUTS), ``observed_data``, ``psis``
            (``khat``, ``ess`` per example), ``sbc`` (``ranks``) and ``fit``
            (``loss``) when a loss history was given.
        summary: one row per (example, parameter): ``w1``, ``ref_sd``,
            ``w1_relative``, ``coverage_50``, ``coverage_90``, ``khat``,
            ``psis_ess``, ``rhat``, ``ess_bulk``, ``ess_tail``, ``divergences``,
            ``reference_converged``, ``trusted`` and ``why`` (why not trusted,
            in words; empty when trusted).
        sbc: the calibration result (ranks and uniformity tests per parameter),
            or None when skipped.
        parameters: η's transformation parameters.
        eta_site: the name of η's site.
    """

    tree: DataTree
    summary: pd.DataFrame
    sbc: SBCResult | None
    parameters: tuple[Parameter, ...]
    eta_site: str = "eta"

    @property
    def reference(self) -> DataTree:
        """The NUTS reference as :func:`reference_posterior` gives it (for ``reference=``)."""
        groups = {
            "posterior": self.tree["reference_posterior"].to_dataset(),
            "sample_stats": self.tree["reference_sample_stats"].to_dataset(),
        }
        if "observed_data" in self.tree.children:
            groups["observed_data"] = self.tree["observed_data"].to_dataset()
        return DataTree.from_dict(groups)

    def eta_summary(self, group: str = "posterior", prob: float = 0.9) -> pd.DataFrame:
        """Mean, sd and interval per (example, parameter), circular where η is periodic.

        The guide's draws (``group="reference_posterior"``: NUTS'); see
        :func:`invppl.diagnostics.eta_summary`, and use it rather than
        ``arviz.summary``, which would average angles on the line.
        """
        return eta_summary(
            self.tree, self.parameters, group=group, eta_site=self.eta_site, prob=prob
        )

    def worst(self, n: int = 5, by: str = "w1_relative") -> pd.DataFrame:
        """The ``n`` (example, parameter) rows the guide gets most wrong."""
        return worst_examples(self.summary, n, by)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready digest: per-row summary, SBC table, counts of flagged examples."""
        summary = self.summary
        rows = summary.reset_index().replace([np.inf, -np.inf], None)

        def examples_where(flags: pd.Series) -> list[int]:
            """The examples with a flagged row (any parameter), once each, in order."""
            return sorted({int(e) for e in summary[flags].index.get_level_values("example")})

        out: dict[str, Any] = {
            "parameters": [p.name for p in self.parameters],
            "examples": int(summary.index.get_level_values("example").nunique()),
            "untrusted_examples": examples_where(~summary.trusted),
            "untrusted_why": _why_by_example(summary),
            "unreliable_psis_examples": examples_where(summary.khat > KHAT_UNRELIABLE),
            "unconverged_reference_examples": examples_where(~summary.reference_converged),
            "summary": rows.to_dict(orient="records"),
        }
        if self.sbc is not None:
            out["sbc"] = {
                "simulations": int(self.sbc.ranks.shape[0]),
                "guide_samples": self.sbc.num_samples,
                "tests": self.sbc.table.reset_index().to_dict(orient="records"),
            }
        return out


def _check_reference(
    reference: DataTree,
    eta_site: str,
    parameters: Sequence[Parameter],
    count: int,
    examples: Sequence[int] | None,
) -> None:
    """A given reference must hold η draws of the same examples and parameters, ≥ 2 chains."""
    if "posterior" not in reference.children or eta_site not in reference["posterior"]:
        raise ValueError(f"reference has no posterior group with η's site {eta_site!r}")
    eta = reference["posterior"][eta_site]
    labels = list(range(count)) if examples is None else [int(e) for e in examples]
    held = [int(e) for e in eta.coords["example"].values]
    if held != labels:
        raise ValueError(f"reference holds examples {held}, the check {labels}")
    names = [p.name for p in parameters]
    held_names = [str(n) for n in eta.coords["parameter"].values]
    if held_names != names:
        raise ValueError(f"reference has parameters {held_names}, expected {names}")
    if "sample_stats" not in reference.children or eta.sizes["chain"] < 2:
        raise ValueError(
            "reference needs sample_stats and at least 2 chains (as reference_posterior gives)"
        )


def _check_settings(
    x: Array, min_coverage: float, sbc_simulations: int | None, **counts: tuple[object, int]
) -> None:
    """Checks ``x`` ``(N, ...)`` has N ≥ 1, ``min_coverage`` ∈ [0, 1] and every count.

    ``counts`` maps each count's name to ``(value, minimum)``; ``sbc_simulations``
    is checked last, and only when SBC is not skipped (not None).
    """
    x_shape = np.shape(x)
    if len(x_shape) < 1 or x_shape[0] < 1:
        raise ValueError(f"x must hold at least one example along its first axis, got {x_shape}")
    if not 0 <= min_coverage <= 1:
        raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage}")
    check_counts(**counts)
    if sbc_simulations is not None:
        check_int(sbc_simulations, "sbc_simulations", minimum=2)


def _checked_parameters(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    parameters: Sequence[Parameter] | None,
    eta_site: str,
    reference: DataTree | None,
    examples: Sequence[int] | None,
) -> tuple[Parameter, ...]:
    """η's parameters, once the model, a given reference and the guide all hold η.

    ``x`` is ``(N, ...)``; the model's latent sites must lie in the data plate,
    a given ``reference`` must hold the same N examples and parameters (see
    :func:`_check_reference`), and ``guide(x)`` must have η's site.
    """
    model_sites = latent_sites(model, params, x)
    checked = eta_parameters(model_sites, eta_site, parameters)
    if reference is not None:
        _check_reference(reference, eta_site, checked, np.shape(x)[0], examples)
    check_guide_has_eta(guide, params, x, eta_site)
    return checked


def _psis_group(khat: pd.DataFrame, labels: np.ndarray) -> xr.Dataset:
    """The ``psis`` group: ``khat`` and ``ess`` ``(N,)`` of :func:`pareto_khat`'s table.

    ``labels`` ``(N,)`` are the examples' labels, the table's index.
    """
    return xr.Dataset(
        {"khat": ("example", khat.khat.values), "ess": ("example", khat.ess.values)},
        coords={"example": labels},
    )


def _why_by_example(summary: pd.DataFrame) -> dict[str, str]:
    """``{example: why}`` for each untrusted example, its parameters' reasons joined once each."""
    reasons: dict[str, list[str]] = {}
    for (example, parameter), why in summary.why.items():
        if why:
            listed = reasons.setdefault(str(example), [])
            for reason in why.split("; "):
                reason = reason.replace("90% coverage", f"{parameter}: 90% coverage")
                if reason not in listed:
                    listed.append(reason)
    return {example: "; ".join(listed) for example, listed in reasons.items()}


def _why(row: Any, rhat_max: float, ess_min: float, min_coverage: float) -> str:
    """Why the (example, parameter) ``row`` of the summary is not trusted ("" if it is)."""
    reasons = []
    if not row.reference_converged:
        failed = [f"R-hat {row.rhat:.3f} > {rhat_max}"] if row.rhat > rhat_max else []
        failed += [
            f"{kind} ESS {value:.0f} < {ess_min:.0f}"
            for kind, value in (("bulk", row.ess_bulk), ("tail", row.ess_tail))
            if value < ess_min
        ]
        failed += [f"{int(row.divergences)} divergences"] if row.divergences > 0 else []
        reasons.append(f"reference not converged ({', '.join(failed)})")
    if not row.khat <= KHAT_UNRELIABLE:
        reasons.append(f"PSIS k-hat {row.khat:.2f} > {KHAT_UNRELIABLE}")
    if not row.coverage_90 >= min_coverage:
        reasons.append(
            f"90% coverage {row.coverage_90:.2f} < {min_coverage} (the guide is over-confident)"
        )
    return "; ".join(reasons)


def _summary(
    compared: pd.DataFrame,
    khat: pd.DataFrame,
    converged: pd.DataFrame,
    min_coverage: float,
    thresholds: tuple[float, float] = (1.01, 400.0),
) -> pd.DataFrame:
    """One row per (example, parameter): the comparison, k̂ and the reference's convergence.

    ``compared`` is indexed by (example, parameter), ``khat`` and ``converged`` by
    example; ``trusted`` holds where the reference converged, k̂ ≤ 0.7 and the
    guide's 90% interval holds at least ``min_coverage`` of the reference's mass;
    ``why`` says which failed, given the convergence ``thresholds``
    ``(rhat_max, ess_min)``.
    """
    summary = compared.join(khat.rename(columns={"ess": "psis_ess"}).drop(columns="reliable"))
    summary = summary.join(converged.rename(columns={"converged": "reference_converged"}))
    summary["trusted"] = (
        summary.reference_converged
        & (summary.khat <= KHAT_UNRELIABLE)
        & (summary.coverage_90 >= min_coverage)
    )
    summary["why"] = [_why(row, *thresholds, min_coverage) for row in summary.itertuples()]
    return summary


def _sbc_group(ranks: np.ndarray, parameters: Sequence[Parameter]) -> xr.Dataset:
    """The ``sbc`` group: :func:`sbc`'s ``(simulation, parameter)`` ranks, parameters by name."""
    return xr.Dataset(
        {"ranks": (("simulation", "parameter"), ranks)},
        coords={"parameter": [p.name for p in parameters]},
    )


class _Stages:
    """A bar over :func:`check_eta`'s stages, naming the one running (disabled without progress)."""

    def __init__(self, progress: bool, with_sbc: bool) -> None:
        self.names = _STAGES if with_sbc else _STAGES[:-1]
        self.bar = tqdm(total=len(self.names), disable=not progress, desc="check_eta", unit="stage")
        self.bar.set_postfix_str(self.names[0])

    def next(self) -> None:
        """Marks the running stage done; names the next one, or closes the bar after the last."""
        self.bar.update(1)
        if self.bar.n < len(self.names):
            self.bar.set_postfix_str(self.names[self.bar.n])
        else:
            self.bar.close()


def check_eta(
    model: Any,
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    parameters: Sequence[Parameter] | None = None,
    eta_site: str = "eta",
    examples: Sequence[int] | None = None,
    guide_samples: int = 1000,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    max_tree_depth: int = 8,
    sbc_simulations: int | None = 200,
    sbc_samples: int = 99,
    min_coverage: float = 0.8,
    rhat_max: float = 1.01,
    ess_min: float | None = None,
    loss: np.ndarray | None = None,
    reference: DataTree | None = None,
    seed: int = 0,
    progress: bool = False,
) -> EtaCheck:
    """Checks the guide's η posterior on the examples ``x`` (see the module docs).

    (Long for its twenty settings: the signature and the documentation below
    give each a line or more, and the body passes each on by name, one per
    line, to the public function that uses it. The body is one named step after
    another: check, draw from the guide, run NUTS, compare, PSIS, SBC.)

    Args:
        model, guide: a fitted NumPyro model/guide pair, called as ``model(x)`` and
            ``guide(x)``, whose latent sites lie in the data plate.
        params: the fitted parameters and mutable state (e.g.
            ``FitResult.params_and_state``).
        x: ``(N, ...)`` the examples to check, e.g. ``(N, H, W, C)`` images.
        parameters: η's transformation parameters (default: the η site's own).
        eta_site: the name of η's site in both model and guide.
        examples: labels of the examples (e.g. their indices in the test set).
        guide_samples: guide draws per example (for W1, coverage and k̂), at least 25.
        num_chains, num_warmup, num_samples, max_tree_depth: the NUTS reference
            (at least 2 chains: R-hat compares chains).
        sbc_simulations: simulated examples for calibration; None skips SBC.
        sbc_samples: guide draws per simulated example.
        min_coverage: the least mass of the reference inside the guide's 90%
            interval for an example to be ``trusted`` (0.8: a guide that covers
            less is over-confident; a ×5 too concentrated von Mises guide covers
            about half).
        rhat_max, ess_min: when the reference counts as converged (see
            :func:`convergence`; ``ess_min`` defaults to 100 per chain, so short
            runs need it lowered).
        loss: ``(steps,)`` the fit's loss history, kept in ``tree.fit``.
        reference: a reference posterior of the same examples from an earlier
            :func:`reference_posterior` call, to judge several guides of one model
            against one NUTS run; the NUTS settings are then unused.
        seed: the PRNG seed of every step (the reference runs with ``seed + 1``).
        progress: show a bar over the stages (guide draws, NUTS, comparison,
            PSIS, SBC) on stderr, naming the one running.

    Raises:
        KeyError: the model or guide has no η site ``eta_site``.
        ValueError: ``x`` has no examples, η is not ``(batch, k)``, a latent site
            lies outside the data plate, the model rejects ``x``'s shape, or a count
            is out of range; all before any sampling.
    """
    _check_settings(
        x,
        min_coverage,
        sbc_simulations,
        guide_samples=(guide_samples, MIN_SAMPLES),
        num_chains=(num_chains, 2),
        num_warmup=(num_warmup, 1),
        num_samples=(num_samples, 2),
        max_tree_depth=(max_tree_depth, 1),
        sbc_samples=(sbc_samples, 1),
    )
    parameters = _checked_parameters(
        model, guide, params, x, parameters, eta_site, reference, examples
    )
    stages = _Stages(progress, sbc_simulations is not None)
    tree = from_guide(
        guide,
        params,
        x,
        parameters=parameters,
        eta_site=eta_site,
        num_samples=guide_samples,
        seed=seed,
        examples=examples,
        loss=loss,
    )
    stages.next()
    if reference is None:
        reference = reference_posterior(
            model,
            params,
            x,
            parameters=parameters,
            eta_site=eta_site,
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            max_tree_depth=max_tree_depth,
            seed=seed + 1,
            examples=examples,
        )
    tree["reference_posterior"] = reference["posterior"].to_dataset()
    tree["reference_sample_stats"] = reference["sample_stats"].to_dataset()
    stages.next()
    converged = convergence(
        reference, parameters, eta_site=eta_site, rhat_max=rhat_max, ess_min=ess_min
    )
    compared = compare_to_reference(tree, reference, parameters, eta_site=eta_site)
    labels = tree.posterior.coords["example"].values
    stages.next()
    khat = pareto_khat(
        model, guide, params, x, num_samples=guide_samples, seed=seed + 2, examples=labels
    )
    tree["psis"] = _psis_group(khat, labels)
    chains = int(reference["posterior"].sizes["chain"])
    thresholds = (rhat_max, 100.0 * chains if ess_min is None else float(ess_min))
    summary = _summary(compared, khat, converged, min_coverage, thresholds)
    calibration = None
    if sbc_simulations is not None:
        stages.next()
        calibration = sbc(
            model,
            guide,
            params,
            x,
            parameters=parameters,
            eta_site=eta_site,
            num_simulations=sbc_simulations,
            num_samples=sbc_samples,
            seed=seed + 3,
        )
        tree["sbc"] = _sbc_group(calibration.ranks, parameters)
    stages.next()
    return EtaCheck(tree, summary, calibration, parameters, eta_site)
