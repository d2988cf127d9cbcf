"""Post-hoc adversaries: how well can a classifier read a target off frozen codes?

Invariant representations (Moyer et al., "Invariant Representations without
Adversarial Training", NeurIPS 2018) are judged by training fresh classifiers,
after the encoder is fixed, to predict a target from the codes z (e.g. the
encoder's means): for a nuisance c that the codes should not hold, a good
representation leaves every such adversary near the majority-class rate; for a
label y that the codes should keep, accuracy should stay high.

**Procedure.** The examples are split into a training and a held-out part
(stratified by the target, or a split given by the caller). The codes are
standardised with the training part's mean and standard deviation. Each
adversary is fitted on the training part and scored by its accuracy on the
held-out part:

- ``"logistic"``: L2-regularised logistic regression (scikit-learn's
  :class:`~sklearn.linear_model.LogisticRegression`, lbfgs, C = 1), a linear
  adversary;
- ``"mlp1"``, ``"mlp2"``, ``"mlp3"``: ReLU networks with 1, 2 or 3 hidden
  layers of ``hidden`` units (:class:`~sklearn.neural_network.MLPClassifier`,
  Adam on minibatches of 64, so that even a few hundred examples give
  several steps an epoch). By default each holds out a stratified
  ``validation_fraction`` of the training part and keeps the weights of the
  epoch with the best validation accuracy, stopping after 50 epochs without
  improvement (early stopping). Without it, a network memorises the training part and scores
  below what the codes allow (on codes independent of the target, well below
  the majority rate), which would understate the adversary.

The adversary's strength is the best held-out accuracy over the models. It is
read against the **majority-class rate**: the held-out accuracy of always
predicting the most frequent training class, what an adversary achieves with
no information. Being the maximum of several noisy accuracies, the best
accuracy tends to sit at or slightly above the majority rate even for codes
that hold nothing about the target: compare differences with the binomial standard error
√(m (1 − m) / num_test) of a held-out accuracy m.

Everything is deterministic given ``seed`` (the split, the networks'
initialisation, shuffling and validation split). A model that stops at
``max_iter`` before converging is still scored, and is marked in
:attr:`AdversaryResult.converged`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from invppl._checks import check_int
from invppl.metrics._checks import as_float, code_matrix, finite_codes
from invppl.metrics._fitting import fit_recording_convergence

__all__ = [
    "ADVERSARY_MODELS",
    "AdversaryResult",
    "adversary_accuracy",
    "adversary_accuracy_split",
]

ADVERSARY_MODELS: tuple[str, ...] = ("logistic", "mlp1", "mlp2", "mlp3")
"""The adversaries that :func:`adversary_accuracy` knows, and its default."""

_PATIENCE = 50
"""Epochs without a better validation accuracy before a network stops."""

_BATCH_SIZE = 64
"""The networks' minibatch size (scikit-learn's default, 200, takes only one or two
steps an epoch on a few hundred examples, too few for the patience above)."""


@dataclass(frozen=True, eq=False)
class AdversaryResult:
    """The result of :func:`adversary_accuracy` and :func:`adversary_accuracy_split`.

    Attributes:
        accuracy: held-out accuracy of each model, by name, in the order asked for.
        converged: whether each model's optimiser converged within ``max_iter``
            (a model that did not is still scored).
        best_model: the model with the highest held-out accuracy (the first
            of those tied, in the order asked for).
        best_accuracy: its accuracy, the adversary's strength.
        majority_class: the most frequent class of the training part (the
            smallest of those tied).
        majority_rate: the fraction of the held-out part in ``majority_class``,
            the accuracy of an adversary that learns nothing.
        classes: the distinct target values of both parts, sorted.
        num_train: the number of training examples.
        num_test: the number of held-out examples.
    """

    accuracy: dict[str, float]
    converged: dict[str, bool]
    best_model: str
    best_accuracy: float
    majority_class: Any
    majority_rate: float
    classes: tuple[Any, ...]
    num_train: int
    num_test: int

    @property
    def advantage(self) -> float:
        """``best_accuracy − majority_rate``: how much the best adversary beats guessing."""
        return self.best_accuracy - self.majority_rate

    def to_dict(self) -> dict[str, Any]:
        """The result as plain Python values (classes as a list), e.g. for JSON.

        >>> result = AdversaryResult(
        ...     {"logistic": 0.75}, {"logistic": True}, "logistic", 0.75, 0, 0.5, (0, 1), 8, 4
        ... )
        >>> result.to_dict()["advantage"]
        0.25
        """
        return {
            "accuracy": dict(self.accuracy),
            "converged": dict(self.converged),
            "best_model": self.best_model,
            "best_accuracy": self.best_accuracy,
            "majority_class": self.majority_class,
            "majority_rate": self.majority_rate,
            "advantage": self.advantage,
            "classes": list(self.classes),
            "num_train": self.num_train,
            "num_test": self.num_test,
        }


# ---------------------------------------------------------------- argument checks


def _check_codes(codes: ArrayLike, name: str) -> np.ndarray:
    """Checks ``(n, d)`` finite real codes; returns them as float64."""
    hint = " (reshape one-dimensional codes to (n, 1))"
    array = code_matrix(codes, name, rows="num_examples", hint=hint, allow_bool=True)
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); need at least one example")
    return finite_codes(array, name)


def _is_text(array: np.ndarray) -> bool:
    return array.dtype.kind in "US"


def _check_target(target: ArrayLike, name: str, size: int, codes_name: str) -> np.ndarray:
    """Checks ``(size,)`` categorical labels; returns them (integral floats as int64)."""
    array = np.asarray(target)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array, one class per example, got shape {array.shape}"
        )
    if array.size != size:
        raise ValueError(
            f"{name} has {array.size} entries but {codes_name} has {size} rows: give one "
            "class per example"
        )
    if np.iscomplexobj(array):
        raise ValueError(f"{name} must hold class labels, got complex dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        nan = int(np.count_nonzero(np.isnan(array)))
        if nan:
            raise ValueError(f"{name} has {nan} NaN value(s); expected a class for every example")
        if not np.all(np.isfinite(array)):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(f"{name} has {bad} infinite value(s); expected class labels")
        if not np.all(array == np.round(array)):
            raise ValueError(
                f"{name} holds non-integer values (dtype {array.dtype}); the adversaries are "
                "classifiers and need a categorical target: bin a continuous target first, "
                "e.g. np.digitize(target, np.quantile(target, [0.25, 0.5, 0.75]))"
            )
        array = array.astype(np.int64)
    elif array.dtype.kind not in "biuUSO":
        raise ValueError(
            f"{name} must hold class labels (integers, strings or bools), got dtype {array.dtype}"
        )
    try:
        np.unique(array)
    except TypeError:
        raise ValueError(
            f"{name} must hold comparable labels (e.g. all integers or all strings), got "
            f"dtype {array.dtype} with mixed values"
        ) from None
    return array


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        raise ValueError(
            f"models must be a sequence of model names, got the string {models!r} (write "
            f"({models!r},) for one model)"
        )
    names = tuple(models)
    if not names:
        raise ValueError(f"models is empty; choose at least one of {ADVERSARY_MODELS}")
    unknown = [name for name in names if name not in ADVERSARY_MODELS]
    if unknown:
        raise ValueError(f"unknown model name(s) {unknown}; expected names from {ADVERSARY_MODELS}")
    if len(set(names)) != len(names):
        raise ValueError(f"models lists a name more than once: {names}")
    return names


def _check_fraction(value: object, name: str, *, allow_zero: bool) -> float:
    interval = "[0, 1)" if allow_zero else "(0, 1)"
    fraction = as_float(value, name, f"a number in {interval}")
    low_ok = fraction >= 0 if allow_zero else fraction > 0
    if not (low_ok and fraction < 1):
        raise ValueError(f"{name} must be in {interval}, got {fraction}")
    return fraction


class _Settings(NamedTuple):
    """The adversaries' settings, as checked by :func:`_check_settings`."""

    models: tuple[str, ...]
    seed: int
    hidden: int
    max_iter: int
    validation_fraction: float


def _check_settings(
    models: Sequence[str], seed: int, hidden: int, max_iter: int, validation_fraction: float
) -> _Settings:
    """The adversaries' settings, checked in that order."""
    return _Settings(
        _check_models(models),
        check_int(seed, "seed", minimum=0, maximum=2**32 - 1),
        check_int(hidden, "hidden", minimum=1),
        check_int(max_iter, "max_iter", minimum=1),
        _check_fraction(validation_fraction, "validation_fraction", allow_zero=True),
    )


def _label(value: Any) -> Any:
    """A NumPy scalar as the matching Python value (``np.int64(3)`` → ``3``)."""
    return value.item() if isinstance(value, np.generic) else value


def _describe(labels: np.ndarray) -> str:
    return ", ".join(repr(_label(value)) for value in labels)


def _class_counts(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``(c,)`` sorted distinct classes of ``(n,)`` labels and ``(c,)`` their counts, c ≥ 2."""
    classes, counts = np.unique(labels, return_counts=True)
    if classes.size < 2:
        raise ValueError(
            f"{name} has {classes.size} distinct class(es) ({_describe(classes)}); an adversary "
            "needs at least 2"
        )
    return classes, counts


def _check_split_codes(
    train_codes: ArrayLike, test_codes: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """``(num_train, d)`` and ``(num_test, d)`` float64 codes of both parts, one ``d``."""
    train_x = _check_codes(train_codes, "train_codes")
    test_x = _check_codes(test_codes, "test_codes")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train_codes has latent_dim {train_x.shape[1]} but test_codes has "
            f"{test_x.shape[1]}; both parts need the same code dimensions"
        )
    return train_x, test_x


def _check_split_targets(
    train_target: ArrayLike, test_target: ArrayLike, num_train: int, num_test: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(num_train,)`` and ``(num_test,)`` labels of both parts, both text or both not."""
    train_y = _check_target(train_target, "train_target", num_train, "train_codes")
    test_y = _check_target(test_target, "test_target", num_test, "test_codes")
    if _is_text(train_y) != _is_text(test_y):
        raise ValueError(
            f"train_target (dtype {train_y.dtype}) and test_target (dtype {test_y.dtype}) must "
            "both hold strings or both hold numbers"
        )
    return train_y, test_y


def _check_held_out_classes(
    train_y: np.ndarray, test_y: np.ndarray, train_labels: np.ndarray
) -> None:
    """Every class of ``test_y`` ``(num_test,)`` is among ``train_labels`` ``(c,)``."""
    try:
        missing = np.setdiff1d(np.unique(test_y), train_labels)
    except TypeError:
        raise ValueError(
            f"test_target (dtype {test_y.dtype}) holds labels that cannot be compared with "
            f"train_target's (dtype {train_y.dtype})"
        ) from None
    if missing.size:
        raise ValueError(
            f"test_target has class(es) {_describe(missing)} that train_target lacks; every "
            "held-out class needs training examples"
        )


def _check_validation_split(
    settings: _Settings, train_labels: np.ndarray, train_counts: np.ndarray, num_train: int
) -> None:
    """The networks' stratified validation split leaves every class in both subsets.

    Only checked when early stopping is on and ``settings.models`` has a network;
    ``train_labels`` and ``train_counts`` are ``(c,)``, the training part's classes.
    """
    validation_fraction = settings.validation_fraction
    if validation_fraction > 0 and any(name.startswith("mlp") for name in settings.models):
        num_validation = math.ceil(validation_fraction * num_train)
        rare = train_labels[train_counts < 2]
        if (
            rare.size
            or num_validation < train_labels.size
            or num_train - num_validation < train_labels.size
        ):
            raise ValueError(
                f"the networks hold out validation_fraction = {validation_fraction} of the "
                f"{num_train} training examples ({num_validation}) for early stopping, stratified "
                f"by class: each of the {train_labels.size} classes needs at least 2 training "
                "examples and both subsets need at least one example per class; give more "
                "training examples, change validation_fraction, or set it to 0 to turn early "
                "stopping off"
            )


def _check_stratifiable(labels: np.ndarray, fraction: float) -> np.ndarray:
    """The ``(c,)`` classes of ``(n,)`` labels, once a stratified split by ``fraction`` can work.

    Each class needs two examples, and both parts (``ceil(fraction · n)`` held
    out, the rest for training) at least ``c`` examples.
    """
    classes, counts = _class_counts(labels, "target")
    if np.any(counts < 2):
        raise ValueError(
            f"target class(es) {_describe(classes[counts < 2])} have a single example; the "
            "stratified split needs at least 2 per class (drop or merge rare classes)"
        )
    num_examples = labels.shape[0]
    num_test = math.ceil(fraction * num_examples)
    num_train = num_examples - num_test
    if min(num_train, num_test) < classes.size:
        raise ValueError(
            f"test_fraction = {fraction} splits the {num_examples} examples into {num_train} "
            f"for training and {num_test} held out; both need at least one example of each of "
            f"the {classes.size} classes: give more examples or change test_fraction"
        )
    return classes


# ---------------------------------------------------------------- fitting


def _make_model(name: str, settings: _Settings, num_train: int) -> Any:
    """The unfitted scikit-learn classifier ``name`` for ``num_train`` training examples."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if name == "logistic":
        return LogisticRegression(max_iter=settings.max_iter, random_state=settings.seed)
    layers = int(name.removeprefix("mlp"))
    validation_fraction = settings.validation_fraction
    early_stopping = validation_fraction > 0
    # The examples a network fits after holding out its validation subset (the
    # same rounding as scikit-learn's split); a larger batch would be clipped with a warning.
    num_fit = num_train - math.ceil(validation_fraction * num_train)
    return MLPClassifier(
        hidden_layer_sizes=(settings.hidden,) * layers,
        max_iter=settings.max_iter,
        random_state=settings.seed,
        early_stopping=early_stopping,
        validation_fraction=validation_fraction if early_stopping else 0.1,
        n_iter_no_change=_PATIENCE if early_stopping else 10,
        batch_size=min(_BATCH_SIZE, num_fit),
    )


def _fit_and_score(
    model: Any,
    train_codes: np.ndarray,
    train_classes: np.ndarray,
    test_codes: np.ndarray,
    test_classes: np.ndarray,
) -> tuple[float, bool]:
    """Fits ``model``; returns its held-out accuracy and whether it converged.

    scikit-learn's ConvergenceWarning is caught and turned into ``converged =
    False``; any other warning is passed on.
    """
    converged = fit_recording_convergence(model, train_codes, train_classes)
    predicted = model.predict(test_codes)
    return float(np.mean(predicted == test_classes)), converged


def _standardise(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(num_train, d)`` and ``(num_test, d)`` codes scaled by the training part's mean and sd."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    return scaler.transform(train_x), scaler.transform(test_x)


def _score_models(
    settings: _Settings,
    train_x: np.ndarray,
    train_classes: np.ndarray,
    test_x: np.ndarray,
    test_classes: np.ndarray,
) -> tuple[dict[str, float], dict[str, bool]]:
    """Each model's held-out accuracy and whether it converged, by name, in order.

    ``train_x`` ``(num_train, d)`` with ``train_classes`` ``(num_train,)``, and
    ``test_x`` ``(num_test, d)`` with ``test_classes`` ``(num_test,)``; classes
    are integer indices.
    """
    accuracy: dict[str, float] = {}
    converged: dict[str, bool] = {}
    for name in settings.models:
        model = _make_model(name, settings, train_x.shape[0])
        accuracy[name], converged[name] = _fit_and_score(
            model, train_x, train_classes, test_x, test_classes
        )
    return accuracy, converged


def _result(
    accuracy: dict[str, float],
    converged: dict[str, bool],
    train_labels: np.ndarray,
    train_counts: np.ndarray,
    test_classes: np.ndarray,
    num_train: int,
) -> AdversaryResult:
    """The :class:`AdversaryResult` of the scored models (``accuracy`` in the order asked for).

    ``train_labels`` and ``train_counts`` are the training part's ``(c,)`` classes
    and counts; ``test_classes`` ``(num_test,)`` indexes ``train_labels``.
    """
    best_model = max(accuracy, key=lambda name: accuracy[name])
    majority = int(np.argmax(train_counts))
    return AdversaryResult(
        accuracy=accuracy,
        converged=converged,
        best_model=best_model,
        best_accuracy=accuracy[best_model],
        majority_class=_label(train_labels[majority]),
        majority_rate=float(np.mean(test_classes == majority)),
        classes=tuple(_label(value) for value in train_labels),
        num_train=num_train,
        num_test=test_classes.shape[0],
    )


def _stratified_split(
    codes: np.ndarray, labels: np.ndarray, classes: np.ndarray, fraction: float, seed: int
) -> list[np.ndarray]:
    """``[train_codes, test_codes, train_labels, test_labels]``, split stratified by label.

    ``codes`` ``(n, d)`` and ``labels`` ``(n,)``; ``ceil(fraction · n)`` examples
    are held out. Every one of the ``(c,)`` ``classes`` must keep a training example.
    """
    from sklearn.model_selection import train_test_split

    parts = train_test_split(codes, labels, test_size=fraction, random_state=seed, stratify=labels)
    absent = np.setdiff1d(classes, parts[2])
    if absent.size:
        raise ValueError(
            f"with test_fraction = {fraction}, class(es) {_describe(absent)} got no training "
            "examples (all went to the held-out part); give more examples of them or a "
            "smaller test_fraction"
        )
    return parts


# ---------------------------------------------------------------- public functions


def adversary_accuracy_split(
    train_codes: ArrayLike,
    train_target: ArrayLike,
    test_codes: ArrayLike,
    test_target: ArrayLike,
    *,
    seed: int,
    models: Sequence[str] = ADVERSARY_MODELS,
    hidden: int = 64,
    max_iter: int = 1000,
    validation_fraction: float = 0.2,
) -> AdversaryResult:
    """Held-out accuracy of adversaries predicting a categorical target, on a given split.

    The codes are standardised with the training part's mean and standard
    deviation; each model is fitted on the training part and scored on the
    held-out part (see the module docstring). Use this when the data already
    come split; :func:`adversary_accuracy` splits them for you.

    Args:
        train_codes: ``(num_train, latent_dim)`` finite codes to train on.
        train_target: ``(num_train,)`` their classes: integers, strings, bools,
            or floats with integer values; at least two distinct classes.
        test_codes: ``(num_test, latent_dim)`` finite codes to score on.
        test_target: ``(num_test,)`` their classes, each of which must occur in
            ``train_target``.
        seed: seeds the networks (initialisation, shuffling, validation split)
            and the logistic regression; a non-negative integer below 2³².
        models: which adversaries to train, names from :data:`ADVERSARY_MODELS`.
        hidden: the width of every hidden layer of the networks.
        max_iter: the most iterations (lbfgs steps for ``"logistic"``, epochs
            for the networks) before a model stops unconverged.
        validation_fraction: the fraction of the training part the networks
            hold out for early stopping, in [0, 1); 0 turns early stopping off
            (each network then trains until its training loss stops improving).

    Returns:
        An :class:`AdversaryResult`.

    Raises:
        ValueError: the codes are not 2-D, real and finite or differ in
            latent_dim; a target does not have one class per row of its codes,
            holds NaN, non-integer floats (bin them first) or incomparable
            values; the training part has fewer than two classes or lacks a
            class of the held-out part; ``models`` is empty, repeats a name or
            names an unknown model; ``hidden`` or ``max_iter`` is below 1,
            ``seed`` is out of range; ``validation_fraction`` is outside
            [0, 1) or leaves the networks' validation or training subset
            without every class.
        TypeError: ``seed``, ``hidden`` or ``max_iter`` is not an integer.

    >>> codes = np.array([[-2.0], [-1.0], [1.0], [2.0], [-1.5], [1.5]])
    >>> result = adversary_accuracy_split(
    ...     codes[:4], [0, 0, 1, 1], codes[4:], [0, 1], seed=0, models=("logistic",)
    ... )
    >>> result.accuracy, result.majority_rate
    ({'logistic': 1.0}, 0.5)
    """
    train_x, test_x = _check_split_codes(train_codes, test_codes)
    train_y, test_y = _check_split_targets(
        train_target, test_target, train_x.shape[0], test_x.shape[0]
    )
    settings = _check_settings(models, seed, hidden, max_iter, validation_fraction)
    train_labels, train_counts = _class_counts(train_y, "train_target")
    _check_held_out_classes(train_y, test_y, train_labels)
    _check_validation_split(settings, train_labels, train_counts, train_x.shape[0])

    # Classes as integer indices into train_labels (sorted), so that any label type works.
    train_classes = np.searchsorted(train_labels, train_y)
    test_classes = np.searchsorted(train_labels, test_y)
    train_x, test_x = _standardise(train_x, test_x)
    accuracy, converged = _score_models(settings, train_x, train_classes, test_x, test_classes)
    return _result(accuracy, converged, train_labels, train_counts, test_classes, train_x.shape[0])


def adversary_accuracy(
    codes: ArrayLike,
    target: ArrayLike,
    *,
    seed: int,
    test_fraction: float = 0.3,
    models: Sequence[str] = ADVERSARY_MODELS,
    hidden: int = 64,
    max_iter: int = 1000,
    validation_fraction: float = 0.2,
) -> AdversaryResult:
    """Held-out accuracy of adversaries predicting a categorical target from codes.

    The examples are split by :func:`sklearn.model_selection.train_test_split`
    with ``random_state=seed``, stratified by the target, so that both parts
    keep its class proportions; then :func:`adversary_accuracy_split` trains
    and scores the adversaries (see the module docstring).

    Args:
        codes: ``(num_examples, latent_dim)`` finite codes, e.g. an encoder's means.
        target: ``(num_examples,)`` the class of each example: a nuisance the
            codes should not hold or a label they should keep. Integers,
            strings, bools, or floats with integer values; at least two classes,
            each with at least two examples. A continuous target must be
            binned first.
        seed: seeds the split and the models; a non-negative integer below 2³².
        test_fraction: the fraction of examples held out for scoring, in (0, 1)
            (rounded up to a whole number of examples).
        models: which adversaries to train, names from :data:`ADVERSARY_MODELS`.
        hidden: the width of every hidden layer of the networks.
        max_iter: the most iterations (lbfgs steps for ``"logistic"``, epochs
            for the networks) before a model stops unconverged.
        validation_fraction: the fraction of the training part the networks
            hold out for early stopping, in [0, 1); 0 turns early stopping off.

    Returns:
        An :class:`AdversaryResult`.

    Raises:
        ValueError: ``codes`` is not 2-D, real and finite; ``target`` does not
            have one class per row of ``codes``, holds NaN, non-integer floats
            (bin them first) or incomparable values, has fewer than two
            classes or a class with a single example; ``test_fraction`` is
            outside (0, 1) or leaves a part with fewer examples than classes,
            or a class without training examples; or an argument of
            :func:`adversary_accuracy_split` is invalid.
        TypeError: ``seed``, ``hidden`` or ``max_iter`` is not an integer.

    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(["a", "b"], [70, 30])
    >>> codes = rng.normal(size=(100, 2)) + 5.0 * (labels == "b")[:, None]
    >>> result = adversary_accuracy(codes, labels, seed=0, models=("logistic",))
    >>> result.best_accuracy, result.majority_class, result.majority_rate, result.num_test
    (1.0, 'a', 0.7, 30)
    """
    array = _check_codes(codes, "codes")
    labels = _check_target(target, "target", array.shape[0], "codes")
    fraction = _check_fraction(test_fraction, "test_fraction", allow_zero=False)
    # adversary_accuracy_split's checks, before the split: a bad argument costs nothing.
    settings = _check_settings(models, seed, hidden, max_iter, validation_fraction)
    classes = _check_stratifiable(labels, fraction)
    train_x, test_x, train_y, test_y = _stratified_split(
        array, labels, classes, fraction, settings.seed
    )
    return adversary_accuracy_split(
        train_x,
        train_y,
        test_x,
        test_y,
        seed=settings.seed,
        models=settings.models,
        hidden=settings.hidden,
        max_iter=settings.max_iter,
        validation_fraction=settings.validation_fraction,
    )
