"""Can the learned η posteriors be trusted? ArviZ-based checks of an amortised guide q(η | x).

- :mod:`~invppl.diagnostics.convert`: guide draws and MCMC runs as ArviZ DataTrees
  with named dimensions (example, transformation parameter);
- :mod:`~invppl.diagnostics.reference`: a NUTS reference posterior per example,
  networks fixed, with R-hat / ESS / divergence flags;
- :mod:`~invppl.diagnostics.compare`: guide vs reference, W1 (circular where
  periodic) and interval coverage; :func:`eta_summary`, a per-example summary
  that is circular for periodic parameters (``arviz.summary`` is not);
- :mod:`~invppl.diagnostics.psis`: Pareto k̂ of the guide per example;
- :mod:`~invppl.diagnostics.sbc`: simulation-based calibration;
- :mod:`~invppl.diagnostics.check`: all of it in :func:`check_eta`;
- :mod:`~invppl.diagnostics.plots`: posteriors, forest plot, rank histograms
  (imported on demand: ``from invppl.diagnostics.plots import plot_forest``).
"""

from invppl.diagnostics.check import EtaCheck, check_eta
from invppl.diagnostics.compare import (
    central_interval,
    compare_to_reference,
    eta_summary,
    worst_examples,
)
from invppl.diagnostics.convert import (
    eta_parameters,
    from_guide,
    from_mcmc,
    guide_draws,
    latent_sites,
    to_datatree,
)
from invppl.diagnostics.psis import KHAT_UNRELIABLE, log_weights, pareto_khat
from invppl.diagnostics.reference import convergence, reference_posterior
from invppl.diagnostics.sbc import SBCResult, sbc, simulate

__all__ = [
    "KHAT_UNRELIABLE",
    "EtaCheck",
    "SBCResult",
    "central_interval",
    "check_eta",
    "compare_to_reference",
    "convergence",
    "eta_parameters",
    "eta_summary",
    "from_guide",
    "from_mcmc",
    "guide_draws",
    "latent_sites",
    "log_weights",
    "pareto_khat",
    "reference_posterior",
    "sbc",
    "simulate",
    "to_datatree",
    "worst_examples",
]
