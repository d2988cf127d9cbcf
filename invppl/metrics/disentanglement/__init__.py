"""Disentanglement metrics: how well codes separate the true factors of variation.

Codes are ``(n, d)`` (e.g. an encoder's means), factors ``(n, f)``; the
definitions follow disentanglement_lib (Locatello et al., ICML 2019), and each
function's docstring says which choices it makes (bins, split, classifier).

- :func:`beta_vae_score`, :func:`factor_vae_score`: classify which factor was
  held fixed in a batch of observations, drawn through a :data:`GroupSampler`.
- :func:`mutual_information_gap` (MIG), :func:`modularity`: from the mutual
  information of histogram-discretised codes with the factors.
- :func:`dci` (disentanglement, completeness, informativeness),
  :func:`sap_score` (SAP): from predictors of each factor.
- :func:`histogram_discretize`, :func:`discrete_mutual_information`,
  :func:`discrete_entropy`: the building blocks, in nats.
"""

from invppl.metrics.disentanglement.information import (
    MIGResult,
    ModularityResult,
    discrete_entropy,
    discrete_mutual_information,
    histogram_discretize,
    modularity,
    mutual_information_gap,
)
from invppl.metrics.disentanglement.interventions import (
    BetaVAEResult,
    FactorVAEResult,
    GroupSampler,
    beta_vae_score,
    factor_vae_score,
)
from invppl.metrics.disentanglement.predictors import DCIResult, SAPResult, dci, sap_score

__all__ = [
    "BetaVAEResult",
    "DCIResult",
    "FactorVAEResult",
    "GroupSampler",
    "MIGResult",
    "ModularityResult",
    "SAPResult",
    "beta_vae_score",
    "dci",
    "discrete_entropy",
    "discrete_mutual_information",
    "factor_vae_score",
    "histogram_discretize",
    "modularity",
    "mutual_information_gap",
    "sap_score",
]
