"""Post-hoc adversaries on frozen codes, against cases whose answer is known.

Oracles: codes that hold the target linearly (every adversary near 1); codes
drawn independently of an imbalanced target (every adversary within a few
binomial standard errors of the majority rate, which is not 1/2); an XOR target
whose training codes are symmetric under z ↦ −z, so that the L2-regularised
logistic regression's unique optimum has zero weights and predicts the majority
class, while a network separates it; the majority rate counted by hand;
the same codes with the classes renamed (strings) or reordered.
"""

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from invppl.metrics import (
    ADVERSARY_MODELS,
    AdversaryResult,
    adversary_accuracy,
    adversary_accuracy_split,
)
from invppl.metrics.adversary import _fit_and_score

FAST = ("logistic", "mlp1")


def binomial_standard_error(rate: float, count: int) -> float:
    return math.sqrt(rate * (1.0 - rate) / count)


def test_codes_that_hold_the_target_linearly_are_read_off() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = np.concatenate([centres[labels], rng.normal(size=(300, 2))], axis=1)
    codes[:, :2] += rng.normal(size=(300, 2))
    result = adversary_accuracy(codes, labels, seed=0, models=FAST, hidden=16)
    assert result.accuracy["logistic"] >= 0.97
    assert result.accuracy["mlp1"] >= 0.9
    assert result.classes == (0, 1, 2)
    assert result.best_accuracy == max(result.accuracy.values())
    assert result.accuracy[result.best_model] == result.best_accuracy
    assert result.advantage > 0.5


def test_codes_independent_of_the_target_stay_at_the_majority_rate() -> None:
    rng = np.random.default_rng(0)
    target = np.where(rng.random(600) < 0.3, 1, 0)
    codes = rng.normal(size=(600, 4))
    result = adversary_accuracy(codes, target, seed=0, hidden=16)
    assert tuple(result.accuracy) == ADVERSARY_MODELS
    assert all(result.converged.values())
    assert result.majority_class == 0
    assert 0.6 < result.majority_rate < 0.8  # imbalanced: chance is not 1/2
    error = binomial_standard_error(result.majority_rate, result.num_test)
    for name, accuracy in result.accuracy.items():
        assert abs(accuracy - result.majority_rate) <= 3 * error, name
    assert result.advantage <= 3 * error


def test_xor_target_separates_the_linear_adversary_from_the_networks() -> None:
    rng = np.random.default_rng(1)

    def xor_sample(count: int) -> tuple[np.ndarray, np.ndarray]:
        codes = rng.uniform(-1.0, 1.0, size=(3 * count, 2))
        target = (codes[:, 0] * codes[:, 1] > 0).astype(np.int64)
        keep = (target == 1) | (rng.random(3 * count) < 0.6)  # imbalance: 1 is the majority
        return codes[keep][:count], target[keep][:count]

    half_codes, half_target = xor_sample(200)
    # z and -z share their class, so the logistic loss is symmetric under w -> -w and its
    # unique (L2-regularised) optimum has w = 0: it predicts the training majority.
    train_codes = np.concatenate([half_codes, -half_codes])
    train_target = np.concatenate([half_target, half_target])
    test_codes, test_target = xor_sample(300)
    result = adversary_accuracy_split(
        train_codes,
        train_target,
        test_codes,
        test_target,
        seed=0,
        models=("logistic", "mlp1", "mlp2"),
        hidden=32,
    )
    assert result.majority_class == 1
    assert result.majority_rate == pytest.approx(np.mean(test_target == 1))
    assert result.majority_rate > 0.55
    error = binomial_standard_error(result.majority_rate, result.num_test)
    assert abs(result.accuracy["logistic"] - result.majority_rate) <= 2 * error
    assert result.accuracy["mlp1"] >= 0.88
    assert result.accuracy["mlp2"] >= 0.88
    assert result.best_model in ("mlp1", "mlp2")


def test_majority_rate_is_the_training_majority_counted_on_the_held_out_part() -> None:
    codes = np.arange(11.0).reshape(11, 1)
    # Training majority "b"; held-out majority "a": the rate is that of "b".
    result = adversary_accuracy_split(
        codes[:6],
        ["b", "b", "b", "a", "a", "c"],
        codes[6:],
        ["a", "a", "a", "b", "c"],
        seed=0,
        models=("logistic",),
    )
    assert result.majority_class == "b"
    assert result.majority_rate == pytest.approx(1 / 5)
    assert result.classes == ("a", "b", "c")
    assert (result.num_train, result.num_test) == (6, 5)
    # A tie goes to the smallest class.
    tied = adversary_accuracy_split(
        codes[:4], [1, 1, 0, 0], codes[4:7], [1, 1, 0], seed=0, models=("logistic",)
    )
    assert tied.majority_class == 0
    assert tied.majority_rate == pytest.approx(1 / 3)


def test_stratified_split_keeps_the_class_proportions() -> None:
    rng = np.random.default_rng(2)
    target = np.repeat([0, 1], [70, 30])
    result = adversary_accuracy(
        rng.normal(size=(100, 2)), target, seed=3, test_fraction=0.3, models=("logistic",)
    )
    assert (result.num_train, result.num_test) == (70, 30)
    assert result.majority_rate == pytest.approx(21 / 30)  # 21 of the 30 held out are 0s


def test_string_labels_match_integer_labels() -> None:
    rng = np.random.default_rng(3)
    target = rng.integers(0, 2, size=300)
    codes = rng.normal(size=(300, 3)) + target[:, None]
    names = np.array(["female", "male"])[target]
    with_ints = adversary_accuracy(codes, target, seed=5, models=FAST, hidden=16)
    with_strings = adversary_accuracy(codes, names, seed=5, models=FAST, hidden=16)
    assert with_strings.classes == ("female", "male")
    assert with_strings.accuracy == with_ints.accuracy
    assert with_strings.majority_rate == with_ints.majority_rate
    assert with_strings.majority_class == ("female", "male")[with_ints.majority_class]


def test_integral_float_target_is_categorical() -> None:
    rng = np.random.default_rng(4)
    target = rng.integers(0, 2, size=60)
    codes = rng.normal(size=(60, 2)) + 3.0 * target[:, None]
    as_floats = adversary_accuracy(codes, target.astype(float), seed=0, models=("logistic",))
    as_ints = adversary_accuracy(codes, target, seed=0, models=("logistic",))
    assert as_floats.classes == (0, 1)
    assert isinstance(as_floats.classes[0], int)
    assert as_floats.to_dict() == as_ints.to_dict()


def test_same_seed_gives_the_same_result() -> None:
    rng = np.random.default_rng(5)
    target = rng.integers(0, 2, size=300)
    codes = rng.normal(size=(300, 3)) + 0.5 * target[:, None]
    first = adversary_accuracy(codes, target, seed=7, models=FAST, hidden=16)
    second = adversary_accuracy(codes, target, seed=7, models=FAST, hidden=16)
    assert first.to_dict() == second.to_dict()


def test_unconverged_models_are_recorded_not_warned() -> None:
    rng = np.random.default_rng(6)
    target = rng.integers(0, 2, size=120)
    codes = rng.normal(size=(120, 2)) + target[:, None]
    # pytest turns warnings into errors: a ConvergenceWarning escaping would fail here.
    for validation_fraction in (0.2, 0.0):
        result = adversary_accuracy(
            codes,
            target,
            seed=0,
            models=FAST,
            hidden=4,
            max_iter=1,
            validation_fraction=validation_fraction,
        )
        assert result.converged == {"logistic": False, "mlp1": False}
        assert all(0.0 <= accuracy <= 1.0 for accuracy in result.accuracy.values())


def test_to_dict_is_plain_json() -> None:
    result = AdversaryResult(
        accuracy={"logistic": 0.8, "mlp1": 0.9},
        converged={"logistic": True, "mlp1": False},
        best_model="mlp1",
        best_accuracy=0.9,
        majority_class="a",
        majority_rate=0.6,
        classes=("a", "b"),
        num_train=70,
        num_test=30,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["advantage"] == pytest.approx(0.3)
    assert data["classes"] == ["a", "b"]
    assert data["converged"] == {"logistic": True, "mlp1": False}


# ---------------------------------------------------------------- bad inputs

CODES = np.random.default_rng(7).normal(size=(40, 2))
TARGET = np.repeat([0, 1], 20)


@pytest.mark.parametrize(
    ("codes", "target", "options", "message"),
    [
        (CODES[:, 0], TARGET, {}, r"codes must have shape \(num_examples, latent_dim\)"),
        (np.where(np.eye(40, 2) > 0, np.nan, CODES), TARGET, {}, r"2 NaN or infinite"),
        (CODES, TARGET[:-1], {}, r"target has 39 entries but codes has 40 rows"),
        (CODES, np.linspace(0.0, 1.0, 40), {}, r"non-integer.*bin a continuous target"),
        (CODES, np.zeros(40, dtype=int), {}, r"1 distinct class.*at least 2"),
        (CODES, np.r_[np.zeros(39, dtype=int), 1], {}, r"class\(es\) 1 have a single example"),
        (CODES, TARGET, {"models": ("logistic", "svm")}, r"unknown model name\(s\) \['svm'\]"),
        (CODES, TARGET, {"models": "logistic"}, r"write \('logistic',\)"),
        (CODES, TARGET, {"test_fraction": 0.0}, r"test_fraction must be in \(0, 1\)"),
        (CODES, TARGET, {"test_fraction": 1.5}, r"test_fraction must be in \(0, 1\)"),
        (CODES[:6], [0, 0, 1, 1, 2, 2], {"test_fraction": 0.2}, r"into 4 for training and 2"),
        (CODES[:12], TARGET[14:26], {"validation_fraction": 0.1}, r"= 0.1 .*set it to 0"),
    ],
)
def test_bad_inputs_raise_before_fitting(
    codes: np.ndarray, target: np.ndarray, options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        adversary_accuracy(codes, target, seed=0, **options)


def test_split_needs_every_held_out_class_in_training() -> None:
    with pytest.raises(ValueError, match=r"class\(es\) 2 that train_target lacks"):
        adversary_accuracy_split(CODES[:20], TARGET[10:30], CODES[20:], np.full(20, 2), seed=0)
    with pytest.raises(ValueError, match=r"both hold strings or both hold numbers"):
        adversary_accuracy_split(
            CODES[:20], TARGET[10:30], CODES[20:], np.array(["0", "1"] * 10), seed=0
        )
    with pytest.raises(ValueError, match=r"latent_dim 2 but test_codes has 1"):
        adversary_accuracy_split(CODES[:20], TARGET[10:30], CODES[20:, :1], TARGET[10:30], seed=0)


def test_other_warnings_from_a_fit_are_passed_on() -> None:
    class Noisy:
        def fit(self, codes: np.ndarray, classes: np.ndarray) -> "Noisy":
            warnings.warn("not converged", ConvergenceWarning, stacklevel=2)
            warnings.warn("something else", UserWarning, stacklevel=2)
            return self

        def predict(self, codes: np.ndarray) -> np.ndarray:
            return np.zeros(len(codes), dtype=np.int64)

    with pytest.warns(UserWarning, match="something else") as caught:
        accuracy, converged = _fit_and_score(
            Noisy(), np.zeros((2, 1)), np.array([0, 1]), np.zeros((4, 1)), np.array([0, 0, 0, 1])
        )
    assert not any(issubclass(record.category, ConvergenceWarning) for record in caught)
    assert (accuracy, converged) == (0.75, False)
