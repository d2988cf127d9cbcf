"""Predictor-based disentanglement metrics: DCI and SAP.

Both follow disentanglement_lib (``evaluation/metrics/dci.py`` and
``sap_score.py``), which draws 10,000 training and 5,000 held-out points;
here one sample of codes and factors is split at random by ``seed``
(``test_fraction`` = 1/3 held out, the same proportion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from invppl._checks import check_int
from invppl.metrics._checks import as_float
from invppl.metrics._fitting import fit_recording_convergence
from invppl.metrics.disentanglement._inputs import (
    check_codes,
    check_factors,
    check_test_fraction,
    check_varying,
    split_indices,
)

__all__ = ["DCIResult", "SAPResult", "dci", "sap_score"]

_ENTROPY_FLOOR = 1e-11
"""Added to every importance before the entropies, as disentanglement_lib does."""


@dataclass(frozen=True)
class DCIResult:
    """The result of :func:`dci`.

    Attributes:
        disentanglement: Σ_i ρ_i (1 − H_f(P_i·)), ρ_i the share of all importance
            held by code i, P_i· its importances over the factors normalised.
        completeness: Σ_j ρ̃_j (1 − H_d(P̃_·j)), the same per factor over the codes.
        informativeness_train: mean over factors of the predictor's training
            score (accuracy; R² for the lasso).
        informativeness_test: the same on the held-out part.
        importance: ``(d, f)`` importance of code i for predicting factor j.
        converged: whether every predictor's optimiser converged (lasso).
    """

    disentanglement: float
    completeness: float
    informativeness_train: float
    informativeness_test: float
    importance: np.ndarray
    converged: bool


@dataclass(frozen=True)
class SAPResult:
    """The result of :func:`sap_score`.

    Attributes:
        score: the SAP score, the mean over factors of the gap between the
            best and second-best code dimension's score.
        score_matrix: ``(d, f)`` how well code dimension i alone predicts factor j.
        converged: whether every classifier converged (discrete factors).
    """

    score: float
    score_matrix: np.ndarray
    converged: bool


def _normalised_entropy(weights: np.ndarray) -> np.ndarray:
    """Entropy of each row of ``(r, k)`` non-negative weights, in base k (so in [0, 1])."""
    shifted = weights + _ENTROPY_FLOOR
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return -np.sum(probabilities * np.log(probabilities), axis=1) / np.log(weights.shape[1])


def _weighted_score(importance: np.ndarray) -> float:
    """Σ_rows share_row · (1 − normalised entropy of the row), as in ``dci.disentanglement``."""
    total = importance.sum()
    share = importance.sum(axis=1) / total if total > 0 else np.ones(importance.shape[0])
    return float(np.sum(share * (1.0 - _normalised_entropy(importance))))


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes scaled column-wise by the training part's mean and (nonzero) standard deviation."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def _importance_boosting(
    x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray], seed: int, trees: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-factor gradient-boosted trees: importances ``(d, f)``, train and test accuracies."""
    from sklearn.ensemble import GradientBoostingClassifier

    importance = np.zeros((x[0].shape[1], y[0].shape[1]))
    train_scores, test_scores = np.zeros(y[0].shape[1]), np.zeros(y[0].shape[1])
    for j in range(y[0].shape[1]):
        model = GradientBoostingClassifier(n_estimators=trees, random_state=seed)
        model.fit(x[0], y[0][:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_scores[j] = np.mean(model.predict(x[0]) == y[0][:, j])
        test_scores[j] = np.mean(model.predict(x[1]) == y[1][:, j])
    return importance, train_scores, test_scores


def _importance_lasso(
    x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray], alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Per-factor lasso on standardised codes and factors: ``|coef|`` ``(d, f)``, R², converged."""
    from sklearn.linear_model import Lasso

    codes = _standardise(*x)
    targets = _standardise(*y)
    importance = np.zeros((x[0].shape[1], y[0].shape[1]))
    train_scores, test_scores = np.zeros(y[0].shape[1]), np.zeros(y[0].shape[1])
    converged = True
    for j in range(y[0].shape[1]):
        model = Lasso(alpha=alpha)
        converged &= fit_recording_convergence(model, codes[0], targets[0][:, j])
        importance[:, j] = np.abs(model.coef_)
        train_scores[j] = model.score(codes[0], targets[0][:, j])
        test_scores[j] = model.score(codes[1], targets[1][:, j])
    return importance, train_scores, test_scores, converged


def dci(
    codes: ArrayLike,
    factors: ArrayLike,
    *,
    seed: int,
    test_fraction: float = 1 / 3,
    predictor: Literal["gradient_boosting", "lasso"] = "gradient_boosting",
    num_trees: int = 100,
    alpha: float = 0.01,
) -> DCIResult:
    """Disentanglement, completeness and informativeness (Eastwood & Williams, ICLR 2018).

    One predictor per factor is trained on the codes; its importances form a
    ``(d, f)`` matrix R. Disentanglement weighs each code's 1 − entropy (base
    f) of its normalised row by the code's share of the total importance;
    completeness does the same for each factor's column (entropy base d);
    informativeness is the predictors' mean score. As disentanglement_lib's
    ``compute_dci``: ``predictor="gradient_boosting"`` is scikit-learn's
    ``GradientBoostingClassifier`` with its defaults (``num_trees`` = 100),
    importances its impurity-based ``feature_importances_``, informativeness
    the classification accuracy, entropies with 1e-11 added to every importance.
    ``predictor="lasso"`` is Eastwood & Williams' original choice: ``Lasso(alpha)``
    on codes and factors standardised by the training part, importances
    ``|coef|``, informativeness the R²; it also accepts continuous factors.

    Args:
        codes: ``(n, d)`` finite codes, d ≥ 2.
        factors: ``(n, f)`` factors, f ≥ 2: integer classes (gradient boosting) or reals (lasso).
        seed: seeds the random train/held-out split and the trees.
        test_fraction: the held-out share of the examples.
        predictor: ``"gradient_boosting"`` or ``"lasso"``.
        num_trees: boosting stages (scikit-learn's ``n_estimators``).
        alpha: the lasso's L1 weight.

    Returns:
        :class:`DCIResult`.
    """
    if predictor not in ("gradient_boosting", "lasso"):
        raise ValueError(f"predictor must be 'gradient_boosting' or 'lasso', got {predictor!r}")
    array = check_codes(codes, minimum_dims=2)
    boosting = predictor == "gradient_boosting"
    labels = check_factors(factors, array.shape[0], discrete=boosting, minimum_factors=2)
    seed = check_int(seed, "seed", minimum=0)
    num_trees = check_int(num_trees, "num_trees", minimum=1)
    alpha = as_float(alpha, "alpha", "a positive number")
    if not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    train, test = split_indices(array.shape[0], check_test_fraction(test_fraction), seed)
    check_varying(labels[train], "training part", discrete=boosting)
    x, y = (array[train], array[test]), (labels[train], labels[test])
    converged = True
    if boosting:
        importance, train_scores, test_scores = _importance_boosting(x, y, seed, num_trees)
    else:
        importance, train_scores, test_scores, converged = _importance_lasso(x, y, alpha)
    return DCIResult(
        disentanglement=_weighted_score(importance),
        completeness=_weighted_score(importance.T),
        informativeness_train=float(np.mean(train_scores)),
        informativeness_test=float(np.mean(test_scores)),
        importance=importance,
        converged=converged,
    )


def _explained_variance(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``(d, f)`` squared correlation of each code dimension with each factor (0 if constant)."""
    centred_codes = codes - codes.mean(axis=0)
    centred_factors = factors - factors.mean(axis=0)
    covariance = centred_codes.T @ centred_factors / (codes.shape[0] - 1)
    code_var = centred_codes.var(axis=0, ddof=1)
    factor_var = centred_factors.var(axis=0, ddof=1)
    scores = np.zeros(covariance.shape)
    held = code_var > 1e-12
    scores[held] = covariance[held] ** 2 / (code_var[held, None] * factor_var[None, :])
    return scores


def _classification_scores(
    x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[np.ndarray, bool]:
    """``(d, f)`` held-out accuracy of a balanced linear SVM (C = 0.01) on one code dimension."""
    from sklearn.svm import LinearSVC

    train, test = _standardise(*x)
    scores = np.zeros((x[0].shape[1], y[0].shape[1]))
    converged = True
    for i in range(x[0].shape[1]):
        for j in range(y[0].shape[1]):
            model = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            converged &= fit_recording_convergence(model, train[:, i : i + 1], y[0][:, j])
            scores[i, j] = np.mean(model.predict(test[:, i : i + 1]) == y[1][:, j])
    return scores, converged


def sap_score(
    codes: ArrayLike,
    factors: ArrayLike,
    *,
    seed: int,
    test_fraction: float = 1 / 3,
    continuous_factors: bool = False,
) -> SAPResult:
    """The separated attribute predictability (SAP; Kumar et al., ICLR 2018).

    Each code dimension alone predicts each factor, giving a ``(d, f)`` score
    matrix; a factor's gap is its best score minus its second best, and SAP is
    the mean gap. As disentanglement_lib's ``compute_sap``: for discrete
    factors the score is the held-out accuracy of a ``LinearSVC(C=0.01,
    class_weight="balanced")`` (one-vs-rest) fitted on the training part (one
    difference: each code dimension is first standardised by the training
    part, so that the SVM's fixed C acts alike at any code scale); for
    ``continuous_factors`` it is the squared correlation (R² of a linear fit),
    computed on all examples (there is no split). With discrete factors even
    a perfect code scores below 1: an unrelated dimension still scores about
    the rate of one balanced class, and a 1-D one-vs-rest SVM cannot isolate
    middle classes.

    Args:
        codes: ``(n, d)`` finite codes, d ≥ 2.
        factors: ``(n, f)`` integer classes, or reals with ``continuous_factors``.
        seed: seeds the split and the SVMs.
        test_fraction: the held-out share (discrete factors).
        continuous_factors: score by R² instead of classification accuracy.

    Returns:
        :class:`SAPResult`.
    """
    array = check_codes(codes, minimum_dims=2)
    discrete = not continuous_factors
    labels = check_factors(factors, array.shape[0], discrete=discrete)
    seed = check_int(seed, "seed", minimum=0)
    converged = True
    if continuous_factors:
        check_varying(labels, "examples", discrete=False)
        scores = _explained_variance(array, labels)
    else:
        train, test = split_indices(array.shape[0], check_test_fraction(test_fraction), seed)
        check_varying(labels[train], "training part", discrete=True)
        scores, converged = _classification_scores(
            (array[train], array[test]), (labels[train], labels[test]), seed
        )
    ordered = np.sort(scores, axis=0)
    return SAPResult(float(np.mean(ordered[-1] - ordered[-2])), scores, converged)
