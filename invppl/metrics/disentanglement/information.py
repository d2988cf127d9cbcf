"""Information-based disentanglement metrics: MIG and modularity.

Both follow disentanglement_lib (Locatello et al., "Challenging Common
Assumptions in the Unsupervised Learning of Disentangled Representations",
ICML 2019, ``evaluation/metrics/mig.py`` and ``modularity_explicitness.py``):

- the codes are discretised per dimension by :func:`histogram_discretize`
  (``num_bins = 20`` equal-width bins between the column's minimum and
  maximum, ``numpy.histogram``'s edges);
- mutual information and entropies are computed from contingency counts in
  nats (:func:`discrete_mutual_information`), here by our own counting rather
  than ``sklearn.metrics.mutual_info_score``, whose users reported drift
  between scikit-learn versions;
- all examples are used (there is no train/test split).

The factors must already be discrete (integer class indices); continuous
factors can be discretised with the same :func:`histogram_discretize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from invppl.metrics.disentanglement._inputs import (
    check_codes,
    check_factors,
    check_num_bins,
    check_varying,
)

__all__ = [
    "MIGResult",
    "ModularityResult",
    "discrete_entropy",
    "discrete_mutual_information",
    "histogram_discretize",
    "modularity",
    "mutual_information_gap",
]


@dataclass(frozen=True)
class MIGResult:
    """The result of :func:`mutual_information_gap`.

    Attributes:
        score: the MIG, the mean of ``per_factor``.
        per_factor: ``(f,)`` gap between the largest and second-largest mutual
            information of a factor with a code dimension, over its entropy.
        mutual_information: ``(d, f)`` I(code_i; factor_j) in nats.
        entropy: ``(f,)`` H(factor_j) in nats.
    """

    score: float
    per_factor: np.ndarray
    mutual_information: np.ndarray
    entropy: np.ndarray


@dataclass(frozen=True)
class ModularityResult:
    """The result of :func:`modularity`.

    Attributes:
        score: the modularity, the mean of ``per_code``.
        per_code: ``(d,)`` one minus the deviation of a code dimension's
            squared mutual informations from a one-hot profile (0 for a
            dimension that holds no information).
        mutual_information: ``(d, f)`` I(code_i; factor_j) in nats.
    """

    score: float
    per_code: np.ndarray
    mutual_information: np.ndarray


def histogram_discretize(values: ArrayLike, num_bins: int = 20) -> np.ndarray:
    """Each column of ``values`` binned into ``num_bins`` equal-width bins.

    As disentanglement_lib's ``utils.histogram_discretize``: the edges are
    ``numpy.histogram(column, num_bins)``'s, spanning the column's minimum to
    maximum, and a value's bin is ``numpy.digitize`` against the left edges
    (the maximum falls in the last bin). A constant column is one bin.

    Args:
        values: ``(n, d)`` finite reals.
        num_bins: bins per column, at least 2.

    Returns:
        ``(n, d)`` int64 bin indices in ``0 .. num_bins − 1``.

    >>> histogram_discretize(np.array([[0.0], [0.4], [0.6], [1.0]]), num_bins=2).ravel().tolist()
    [0, 0, 1, 1]
    """
    array = check_codes(values, minimum_rows=1, name="values")
    num_bins = check_num_bins(num_bins)
    bins = np.empty(array.shape, dtype=np.int64)
    for column in range(array.shape[1]):
        edges = np.histogram(array[:, column], num_bins)[1]
        bins[:, column] = np.digitize(array[:, column], edges[:-1]) - 1
    return bins


def _joint_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Contingency table of two ``(n,)`` label vectors, ``(distinct a, distinct b)``."""
    _, a_index = np.unique(a, return_inverse=True)
    _, b_index = np.unique(b, return_inverse=True)
    width = int(b_index.max()) + 1
    flat = np.bincount(a_index * width + b_index, minlength=(int(a_index.max()) + 1) * width)
    return flat.reshape(-1, width)


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two ``(n,)`` label vectors, from their empirical joint law."""
    joint = _joint_counts(a, b) / a.shape[0]
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(max(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])), 0.0))


def discrete_mutual_information(codes: ArrayLike, factors: ArrayLike) -> np.ndarray:
    """Empirical mutual information in nats between discrete codes and factors.

    Args:
        codes: ``(n, d)`` integer labels (e.g. :func:`histogram_discretize`'s bins).
        factors: ``(n, f)`` integer labels.

    Returns:
        ``(d, f)`` I(code_i; factor_j) of the empirical joint law of each pair.

    >>> same = np.array([[0], [0], [1], [1]])
    >>> float(discrete_mutual_information(same, same)[0, 0]) == float(np.log(2))
    True
    """
    code_labels = check_factors(codes, None, name="codes")
    factor_labels = check_factors(factors, code_labels.shape[0])
    info = np.empty((code_labels.shape[1], factor_labels.shape[1]))
    for i in range(code_labels.shape[1]):
        for j in range(factor_labels.shape[1]):
            info[i, j] = _mutual_information(code_labels[:, i], factor_labels[:, j])
    return info


def discrete_entropy(factors: ArrayLike) -> np.ndarray:
    """``(f,)`` empirical entropy in nats of each column of ``(n, f)`` integer labels."""
    labels = check_factors(factors, None)
    return np.array(
        [_mutual_information(labels[:, j], labels[:, j]) for j in range(labels.shape[1])]
    )


def mutual_information_gap(
    codes: ArrayLike, factors: ArrayLike, *, num_bins: int = 20
) -> MIGResult:
    """The mutual information gap (MIG; Chen et al., "Isolating Sources of Disentanglement", 2018).

    For each factor j, the mutual informations I(code_i; factor_j) with all
    code dimensions are sorted; the factor's gap is (largest − second
    largest) / H(factor_j), and the MIG is the mean gap. As disentanglement_lib's
    ``compute_mig``: codes discretised by :func:`histogram_discretize`
    (``num_bins`` = 20), mutual information and entropy from contingency
    counts, every example used (it draws 10,000).

    Args:
        codes: ``(n, d)`` finite codes (e.g. the encoder's means), d ≥ 2.
        factors: ``(n, f)`` integer factor classes, each taking at least two values.
        num_bins: histogram bins per code dimension.

    Returns:
        :class:`MIGResult`: the score in [0, 1] (1 when each factor is held by
        one code dimension alone, losslessly), with the per-factor gaps.

    >>> factors = np.indices((4, 2)).reshape(2, -1).T  # every combination once
    >>> round(mutual_information_gap(factors[:, ::-1] * 2.0, factors).score, 6)
    1.0
    """
    array = check_codes(codes, minimum_dims=2)
    labels = check_factors(factors, array.shape[0])
    check_varying(labels, "examples", discrete=True)
    info = discrete_mutual_information(histogram_discretize(array, num_bins), labels)
    entropy = discrete_entropy(labels)
    ordered = np.sort(info, axis=0)[::-1]
    gaps = (ordered[0] - ordered[1]) / entropy
    return MIGResult(float(np.mean(gaps)), gaps, info, entropy)


def modularity(codes: ArrayLike, factors: ArrayLike, *, num_bins: int = 20) -> ModularityResult:
    """Modularity (Ridgeway & Mozer, "Learning Deep Disentangled Embeddings with the F-Statistic
    Loss", NeurIPS 2018).

    For each code dimension i with squared mutual informations
    m_ij = I(code_i; factor_j)² and θ_i = max_j m_ij, the deviation from an
    ideal one-factor profile is δ_i = (Σ_j m_ij − θ_i) / (θ_i (f − 1)), and
    the dimension scores 1 − δ_i (0 if θ_i = 0); the modularity is the mean
    over dimensions. As disentanglement_lib's ``compute_modularity_explicitness``
    (modularity part): codes discretised by :func:`histogram_discretize`
    (``num_bins`` = 20), mutual information from contingency counts, every
    example used.

    Args:
        codes: ``(n, d)`` finite codes.
        factors: ``(n, f)`` integer factor classes, f ≥ 2.
        num_bins: histogram bins per code dimension.

    Returns:
        :class:`ModularityResult`: the score in [0, 1] and each dimension's.
    """
    array = check_codes(codes)
    labels = check_factors(factors, array.shape[0], minimum_factors=2)
    info = discrete_mutual_information(histogram_discretize(array, num_bins), labels)
    squared = np.square(info)
    largest = np.max(squared, axis=1)
    held = largest > 0
    deviation = np.zeros_like(largest)
    deviation[held] = (np.sum(squared[held], axis=1) - largest[held]) / (
        largest[held] * (squared.shape[1] - 1)
    )
    per_code = np.where(held, 1.0 - deviation, 0.0)
    return ModularityResult(float(np.mean(per_code)), per_code, info)
