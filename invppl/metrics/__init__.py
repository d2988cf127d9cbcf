"""Metrics for judging a fit: distances between laws, invariance, and graph evaluation.

- :func:`wasserstein_line`, :func:`wasserstein_circle`: exact 1-D W1 between
  two empirical samples, on the line or on a circle (angles).
- :func:`wasserstein_to_law`: W1 between a sample and a law given by its
  distribution function, e.g. a learned p(η) against the true law of
  :mod:`invppl.datasets.laws`.
- :func:`law_recovery`: whether a class's learned law of η was recovered:
  the aligned W1 to the truth beside a uniform and a point-mass baseline and
  the pose function's own error; :func:`pose_equivariance_error`, the
  truth-free check of a pose function on held-out data.
- :func:`local_equivariance_error`: the Lie derivative of a network along
  each generator of a continuous family, as Gruver et al.'s (2023) local
  equivariance error (:mod:`invppl.metrics.lie_derivative`).
- :func:`prototype_invariance`: how much a prototype function changes when its
  input is transformed, relative to the data's variance.
- :func:`expected_squared_distance`, :func:`expected_distance_rows`,
  :func:`link_prediction_ncrr`,
  :func:`spectral_clustering_accuracy`, :func:`clustering_accuracy`: evaluation
  of latent codes on graph data (Correlated VAEs): expected distances between
  correlated normal codes, link prediction by normalised cumulative reciprocal
  rank, and clustering accuracy under the best matching of clusters to labels.
- :func:`adversary_accuracy`, :func:`adversary_accuracy_split`: post-hoc
  adversaries (logistic regression and 1-3 hidden-layer networks) trained to
  predict a categorical target from frozen codes, their held-out accuracy read
  against the majority-class rate (invariant representations, Moyer et al.).
- :mod:`invppl.metrics.disentanglement`: :func:`beta_vae_score`,
  :func:`factor_vae_score`, :func:`mutual_information_gap` (MIG),
  :func:`dci`, :func:`sap_score` and :func:`modularity`, after the
  definitions of disentanglement_lib (paired weak supervision).
"""

from invppl.metrics.adversary import (
    ADVERSARY_MODELS,
    AdversaryResult,
    adversary_accuracy,
    adversary_accuracy_split,
)
from invppl.metrics.congealing import Congealed, congeal
from invppl.metrics.disentanglement import (
    BetaVAEResult,
    DCIResult,
    FactorVAEResult,
    GroupSampler,
    MIGResult,
    ModularityResult,
    SAPResult,
    beta_vae_score,
    dci,
    discrete_entropy,
    discrete_mutual_information,
    factor_vae_score,
    histogram_discretize,
    modularity,
    mutual_information_gap,
    sap_score,
)
from invppl.metrics.graph import (
    NCRRResult,
    RowDistances,
    clustering_accuracy,
    expected_distance_rows,
    expected_squared_distance,
    link_prediction_ncrr,
    spectral_clustering_accuracy,
)
from invppl.metrics.invariance import InvarianceReport, prototype_invariance
from invppl.metrics.lie_derivative import LocalEquivarianceError, local_equivariance_error
from invppl.metrics.recovery import LawRecovery, law_recovery, pose_equivariance_error
from invppl.metrics.wasserstein import (
    CdfLike,
    wasserstein_circle,
    wasserstein_line,
    wasserstein_to_law,
)

__all__ = [
    "ADVERSARY_MODELS",
    "AdversaryResult",
    "BetaVAEResult",
    "CdfLike",
    "Congealed",
    "DCIResult",
    "FactorVAEResult",
    "GroupSampler",
    "InvarianceReport",
    "LawRecovery",
    "LocalEquivarianceError",
    "MIGResult",
    "ModularityResult",
    "NCRRResult",
    "RowDistances",
    "SAPResult",
    "adversary_accuracy",
    "adversary_accuracy_split",
    "beta_vae_score",
    "clustering_accuracy",
    "congeal",
    "dci",
    "discrete_entropy",
    "discrete_mutual_information",
    "expected_distance_rows",
    "expected_squared_distance",
    "factor_vae_score",
    "histogram_discretize",
    "law_recovery",
    "link_prediction_ncrr",
    "local_equivariance_error",
    "modularity",
    "mutual_information_gap",
    "pose_equivariance_error",
    "prototype_invariance",
    "sap_score",
    "spectral_clustering_accuracy",
    "wasserstein_circle",
    "wasserstein_line",
    "wasserstein_to_law",
]
