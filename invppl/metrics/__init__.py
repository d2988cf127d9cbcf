"""Metrics for judging a fit: distances between laws and invariance of prototypes.

- :func:`wasserstein_line`, :func:`wasserstein_circle`: exact 1-D W1 between
  two empirical samples, on the line or on a circle (angles).
- :func:`wasserstein_to_law`: W1 between a sample and a law given by its
  distribution function, e.g. a learned p(η) against the true law of
  :mod:`invppl.datasets.laws`.
- :func:`prototype_invariance`: how much a prototype function changes when its
  input is transformed, relative to the data's variance.
"""

from invppl.metrics.invariance import InvarianceReport, prototype_invariance
from invppl.metrics.wasserstein import (
    CdfLike,
    wasserstein_circle,
    wasserstein_line,
    wasserstein_to_law,
)

__all__ = [
    "CdfLike",
    "InvarianceReport",
    "prototype_invariance",
    "wasserstein_circle",
    "wasserstein_line",
    "wasserstein_to_law",
]
