"""What a dataset's symmetry buys a classifier: built-in, learned and no rotation invariance.

Rotated MNIST with a rotation law per class: digits 0, 1 and 8 turned by
U(−π, π), 6 and 9 by the narrow U(−0.3, 0.3) (so 6 and 9 stay apart: a 6
turned half a turn is a 9), every other digit upright (a point mass at 0).
The 5,000 bundled digits (:func:`invppl.datasets.load_mnist`) are rotated at
28 × 28 (:func:`invppl.datasets.rotated_mnist`, the angles drawn with the
seed) and average-pooled to 14 × 14 for CPU speed; per seed 1,000 of them are
the test set and the training sets are the first n of the remaining 4,000
(nested, so the curve over n is paired).

Arms, each trained by :func:`invppl.infer.fit` for the same number of Adam
steps at every n (:mod:`invppl.models.classifiers`):

- ``mlp``: an MLP over the pixels (256-256 hidden);
- ``cnn``: :class:`invppl.nn.ConvEncoder` (16-32 channels, 128 hidden);
- ``c4``, ``d4``: :class:`invppl.nn.GroupCNN`, P4 (8-16-16 channels per
  group element) and P4M (4-8-8, so that both have 64 channels per layer in
  all); exactly invariant to quarter turns (and, D4, mirror images);
- ``pooled``: :class:`invppl.nn.GroupPooled`, the CNN's features averaged
  over the C4 orbit of the input, then a linear read-out;
- ``augerino``: the CNN inside Augerino (:func:`~invppl.models.make_augerino`,
  a learned uniform rotation width, 4 copies, width reward 0.01);
- ``sgm_cnn``: the CNN trained on data resampled from the two-stage SGM
  (:func:`~invppl.models.make_two_stage_sgm`, rotation, fitted on the same n
  training images, labels unused), x' = T_η'(x̂), η' ~ p(η | x̂).

Measured per arm, n and seed: test accuracy; accuracy on the test 6s and 9s
and how many of them were called the other digit (:func:`six_nine`); the
local equivariance error (:func:`invppl.metrics.local_equivariance_error`,
bicubic) along rotation (per radian) and along translation (mean of tx and
ty, per normalised unit) on 200 test images. What the learned methods
recovered: Augerino's one global width (against the true half-widths π, 0.3
and 0 of the three groups of digits), and the SGM's per-class law of η, the
W1 on the circle (:func:`invppl.metrics.law_recovery`, each class's offset
aligned) to the true law, beside a uniform law and the best point mass.
Printed: a table of mean ± sd over seeds, with the machine and settings;
``--out`` writes JSON, ``--figure`` a plot of accuracy against n.

    .venv/bin/python benchmarks/symmetry_sample_efficiency.py [--sizes 100 300 1000] \\
        [--seeds 0 1 2] [--steps 600] [--compilation-cache build/jax-cache] \\
        [--out results.json] [--figure accuracy.png]

Every training set is repeated to the largest size's length, so that one
compiled training step serves every size; with ``--compilation-cache`` XLA
keeps its compiled programs there, and the seeds after the first compile
little.

``--small`` (two sizes, one seed, a few steps, tiny networks) is the smoke
run of ``tests/test_benchmarks_symmetry.py``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from invppl._batching import in_batches
from invppl._machine import machine_info, record_results
from invppl.datasets import load_mnist, rotated_mnist
from invppl.datasets.laws import DeltaLaw, Law, UniformLaw
from invppl.infer import fit, fit_two_stage
from invppl.metrics import law_recovery, local_equivariance_error
from invppl.models import (
    Augerino,
    Classifier,
    learned_widths,
    make_augerino,
    make_classifier,
    make_two_stage_sgm,
    predict_logits,
    sgm_augmented,
)
from invppl.models.sgm_two_stage import LearnedSymmetry
from invppl.nn import MLP, ConvEncoder, GroupCNN, GroupPooled
from invppl.transforms import Affine, CyclicRotation

ARMS = ("mlp", "cnn", "c4", "d4", "pooled", "augerino", "sgm_cnn")
FULL, NARROW = (0, 1, 8), (6, 9)
NARROW_HALF_WIDTH = 0.3
NUM_TEST, NUM_LEE = 1000, 200
ROTATION = Affine(("rotation",))
LEE_FAMILY = Affine(("rotation", "tx", "ty"), method="bicubic")


def true_laws() -> dict[int, Law]:
    """Each digit's rotation law: U(−π, π), U(−0.3, 0.3) for 6 and 9, else upright."""
    laws: dict[int, Law] = {digit: DeltaLaw(0.0) for digit in range(10)}
    laws.update({digit: UniformLaw(-math.pi, math.pi) for digit in FULL})
    laws.update({d: UniformLaw(-NARROW_HALF_WIDTH, NARROW_HALF_WIDTH) for d in NARROW})
    return laws


def law_kind(digit: int) -> str:
    """``"full"``, ``"narrow"`` or ``"none"``: the kind of the digit's true law."""
    return "full" if digit in FULL else "narrow" if digit in NARROW else "none"


def true_half_width(digit: int) -> float:
    """The half-width of the digit's uniform law (0 for the point mass)."""
    return {"full": math.pi, "narrow": NARROW_HALF_WIDTH, "none": 0.0}[law_kind(digit)]


@dataclass(frozen=True)
class Split:
    """One seed's data: ``x`` ``(n, 14, 14, 1)``, labels, true angles; test and training rows."""

    x: np.ndarray
    y: np.ndarray
    angles: np.ndarray
    test: np.ndarray
    pool: np.ndarray  # training rows in order: a training set of size n is pool[:n]


def average_pool(images: np.ndarray, factor: int) -> np.ndarray:
    """``(n, h, w, c)`` → ``(n, h / factor, w / factor, c)`` by block means."""
    n, height, width, depth = images.shape
    if height % factor or width % factor:
        raise ValueError(f"the pool factor {factor} must divide the image size {height}x{width}")
    blocks = images.reshape(n, height // factor, factor, width // factor, factor, depth)
    return blocks.mean(axis=(2, 4)).astype(np.float32)


def make_split(seed: int, pool_factor: int) -> Split:
    """The bundled digits rotated by :func:`true_laws` with ``seed``, pooled, and split."""
    mnist = load_mnist()
    rotated = rotated_mnist(mnist.images, mnist.labels, seed=seed, law=true_laws())
    order = np.random.default_rng([seed, 16]).permutation(len(rotated.labels))
    return Split(
        average_pool(rotated.images, pool_factor),
        rotated.labels.astype(np.int32),
        rotated.angles.astype(np.float64),
        order[:NUM_TEST],
        order[NUM_TEST:],
    )


def six_nine(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy on the 6s and 9s, and the fraction of them called the other digit.

    >>> six_nine(np.array([6, 6, 9, 9, 1]), np.array([6, 9, 9, 9, 1]))
    {'accuracy_6': 0.5, 'accuracy_9': 1.0, 'accuracy_69': 0.75, 'swapped_69': 0.25}
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    six, nine = labels == 6, labels == 9
    both = six | nine
    if not six.any() or not nine.any():
        raise ValueError("six_nine needs at least one 6 and one 9 among the labels")
    swapped = (six & (predicted == 9)) | (nine & (predicted == 6))
    return {
        "accuracy_6": float(np.mean(predicted[six] == 6)),
        "accuracy_9": float(np.mean(predicted[nine] == 9)),
        "accuracy_69": float(np.mean(predicted[both] == labels[both])),
        "swapped_69": float(np.mean(swapped[both])),
    }


def build_arm(arm: str, shape: tuple[int, int, int], seed: int, small: bool) -> Any:
    """The arm's :class:`~invppl.models.Classifier` or :class:`~invppl.models.Augerino`."""
    rngs = nnx.Rngs(seed)
    channels, hidden = ((4, 8), 16) if small else ((16, 32), 128)

    def cnn(out: int = 10) -> ConvEncoder:
        return ConvEncoder(shape, out, rngs=rngs, channels=channels, hidden=hidden)

    if arm == "mlp":
        width = 16 if small else 256
        return make_classifier(
            MLP(int(np.prod(shape)), (width, width), 10, rngs=rngs), flatten=True
        )
    if arm in ("cnn", "sgm_cnn"):
        return make_classifier(cnn())
    if arm in ("c4", "d4"):
        per_element = {"c4": (8, 16, 16), "d4": (4, 8, 8)}[arm]
        group_channels = (2, 4) if small else per_element
        network = GroupCNN(shape, 10, rngs=rngs, group=arm.upper(), channels=group_channels)  # type: ignore[arg-type]
        return make_classifier(network)
    if arm == "pooled":
        head = nnx.Linear(hidden, 10, rngs=rngs)
        return make_classifier(GroupPooled(cnn(hidden), CyclicRotation(4), head=head))
    if arm == "augerino":
        return make_augerino(cnn(), ROTATION, copies=4, width_weight=0.01, init_width=0.1)
    raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")


def fit_symmetry(x: np.ndarray, seed: int, args: argparse.Namespace) -> LearnedSymmetry:
    """The two-stage SGM (rotation) fitted on the training images ``x``: its learned symmetry."""
    pose_steps, prior_steps = args.pose_steps, args.prior_steps
    sgm = make_two_stage_sgm(
        x.shape[1:],
        ("rotation",),
        seed=seed,
        hidden=16 if args.small else 64,
        context_dim=4 if args.small else 16,
        blur=1.0,
        blur_steps=max(pose_steps // 4, 1),
        consistency_steps=max(3 * pose_steps // 4, 1),
    )
    fitted = fit_two_stage(
        sgm,
        {"x": x},
        seed=seed,
        pose_steps=pose_steps,
        prior_steps=prior_steps,
        batch_size=args.batch_size,
        progress=False,
    )
    return fitted.symmetry


def train(
    arm: str,
    classifier: Classifier | Augerino,
    data: Mapping[str, np.ndarray],
    seed: int,
    args: argparse.Namespace,
    symmetry: LearnedSymmetry | None = None,
) -> dict[str, Any]:
    """Fits one arm on ``data`` ``{"x", "y"}``; ``symmetry`` augments ``sgm_cnn``'s batches."""
    result = fit(
        classifier.model,
        classifier.guide,
        data,
        seed=seed,
        num_steps=args.steps,
        batch_size=args.batch_size,
        optimizer=optax.adam(args.learning_rate),
        augment=sgm_augmented(symmetry) if arm == "sgm_cnn" and symmetry is not None else None,
        progress=False,
    )
    if result.stopped_early:
        raise FloatingPointError(f"{arm}: {result.message}")
    return result.params


def evaluate(
    classifier: Classifier | Augerino, params: Mapping[str, Any], split: Split, seed: int
) -> dict[str, float]:
    """Test accuracy, :func:`six_nine` and the LEE along rotation and translation.

    Augerino predicts with 8 copies drawn with a fixed key. The parameters
    enter the compiled function as arguments (not constants), so that XLA's
    persistent cache serves every seed and size.
    """

    @jax.jit
    def predict_and_lee(
        fitted: Mapping[str, Any], key: jax.Array, x: jax.Array, x_lee: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        def logits(images: jax.Array) -> jax.Array:
            return predict_logits(classifier, fitted, images, key=key, copies=8)

        return logits(x), local_equivariance_error(logits, x_lee, LEE_FAMILY).per_example

    x_test, y_test = jnp.asarray(split.x[split.test]), split.y[split.test]
    logits, per_example = predict_and_lee(params, jax.random.key(seed), x_test, x_test[:NUM_LEE])
    predicted = np.asarray(jnp.argmax(logits, axis=-1))
    row = {"accuracy": float(np.mean(predicted == y_test)), **six_nine(y_test, predicted)}
    kinds = np.array([law_kind(int(d)) for d in y_test])
    for kind in ("full", "narrow", "none"):
        row[f"accuracy_{kind}"] = float(np.mean(predicted[kinds == kind] == y_test[kinds == kind]))
    row["lee_rotation"] = float(np.mean(per_example[:, 0]))
    row["lee_translation"] = float(np.mean(per_example[:, 1:]))
    if isinstance(classifier, Augerino):
        row["augerino_width"] = learned_widths(classifier, params)["rotation"]
    return row


def sgm_laws(
    symmetry: LearnedSymmetry, split: Split, train_rows: np.ndarray, seed: int
) -> list[dict[str, Any]]:
    """Per digit: the SGM's learned law of η on the test digits against the truth (aligned W1)."""
    poses = in_batches(symmetry.pose, split.x, 500)[:, 0]
    prototypes = in_batches(symmetry.prototype, split.x[split.test], 500)
    key = jax.random.key(seed)
    samples = np.asarray(symmetry.sample_eta(key, jnp.asarray(prototypes), (8,)))[..., 0]
    rng = np.random.default_rng([seed, 3])
    laws, rows = true_laws(), []
    for digit in range(10):
        in_train = train_rows[split.y[train_rows] == digit]
        in_test_mask = split.y[split.test] == digit
        in_test = split.test[in_test_mask]
        if len(in_train) == 0:
            continue
        report = law_recovery(
            samples[:, in_test_mask].ravel(),
            laws[digit].sample(rng, 4000),
            poses_train=poses[in_train],
            eta_train=split.angles[in_train],
            poses_test=poses[in_test],
            eta_test=split.angles[in_test],
            tolerance=0.15,
            period=2 * math.pi,
        )
        record = report.to_dict()
        record.pop("verdict")
        rows.append({"digit": digit, "kind": law_kind(digit), **record})
    return rows


def one_run(split: Split, size: int, seed: int, args: argparse.Namespace) -> dict[str, list]:
    """Trains and evaluates every arm on the first ``size`` training digits of ``split``."""
    rows = split.pool[:size]
    # repeated to the largest size: one compiled training step serves every size
    repeated = rows[np.arange(max(args.sizes)) % size]
    data = {"x": split.x[repeated], "y": split.y[repeated]}
    shape = (int(split.x.shape[1]), int(split.x.shape[2]), int(split.x.shape[3]))
    symmetry, laws = None, []
    if "sgm_cnn" in args.arms:
        started = time.perf_counter()
        symmetry = fit_symmetry(data["x"], seed, args)
        laws = [
            {"size": size, "seed": seed, **law} for law in sgm_laws(symmetry, split, rows, seed)
        ]
        print(f"  n={size} seed {seed}: SGM fitted in {time.perf_counter() - started:.0f} s")
    results = []
    for arm in args.arms:
        started = time.perf_counter()
        classifier = build_arm(arm, shape, seed, args.small)
        params = train(arm, classifier, data, seed, args, symmetry)
        row = {"arm": arm, "size": size, "seed": seed, **evaluate(classifier, params, split, seed)}
        row["seconds"] = time.perf_counter() - started
        results.append(row)
        print(
            f"  n={size} seed {seed} {arm:>8}: accuracy {row['accuracy']:.3f}, "
            f"6/9 {row['accuracy_69']:.3f}, LEE rot {row['lee_rotation']:.4f} "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )
    return {"arms": results, "laws": laws}


def mean_sd(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value).

    >>> mean_sd([1.0, 2.0, 3.0])
    {'mean': 2.0, 'sd': 1.0, 'count': 3}
    """
    array = np.asarray(values, dtype=np.float64)
    sd = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "sd": sd, "count": int(array.size)}


METRICS = (
    "accuracy",
    "accuracy_full",
    "accuracy_narrow",
    "accuracy_none",
    "accuracy_69",
    "swapped_69",
    "lee_rotation",
    "lee_translation",
)
LAW_METRICS = ("w1", "uniform_baseline", "point_baseline", "stage1_w1", "pose_error")


def summarise(arms: list[dict[str, Any]], laws: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd over seeds of every metric, per arm and size; the SGM's W1 per law kind."""
    summary: dict[str, Any] = {"arms": {}, "augerino_width": {}, "sgm_laws": {}}
    for arm in dict.fromkeys(row["arm"] for row in arms):
        per_size: dict[str, Any] = {}
        for size in sorted({row["size"] for row in arms if row["arm"] == arm}):
            chosen = [row for row in arms if row["arm"] == arm and row["size"] == size]
            per_size[str(size)] = {m: mean_sd([row[m] for row in chosen]) for m in METRICS}
            if arm == "augerino":
                widths = [row["augerino_width"] for row in chosen]
                summary["augerino_width"][str(size)] = mean_sd(widths)
        summary["arms"][arm] = per_size
    for size in sorted({row["size"] for row in laws}):
        per_kind = {}
        for kind in ("full", "narrow", "none"):
            chosen = [row for row in laws if row["size"] == size and row["kind"] == kind]
            # per seed, the mean over the kind's digits; then mean ± sd over seeds
            seeds = sorted({row["seed"] for row in chosen})
            per_kind[kind] = {
                m: mean_sd([np.mean([r[m] for r in chosen if r["seed"] == s]) for s in seeds])
                for m in LAW_METRICS
            }
        summary["sgm_laws"][str(size)] = per_kind
    return summary


def _cell(stats: Mapping[str, float], digits: int = 3) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}"


def print_summary(summary: Mapping[str, Any]) -> None:
    """The table (mean ± sd over seeds), Augerino's widths and the SGM's laws."""
    columns = (
        "accuracy",
        "accuracy_full",
        "accuracy_69",
        "swapped_69",
        "lee_rotation",
        "lee_translation",
    )
    print("\n| arm | n | " + " | ".join(columns) + " |")
    print("|---|---:|" + "---:|" * len(columns))
    for arm, per_size in summary["arms"].items():
        for size, stats in per_size.items():
            cells = [_cell(stats[c], 4 if c.startswith("lee") else 3) for c in columns]
            print(f"| {arm} | {size} | " + " | ".join(cells) + " |")
    if summary["augerino_width"]:
        print("\nAugerino's learned rotation half-width (one for all digits; true: π for 0, 1, 8;")
        print(f"{NARROW_HALF_WIDTH} for 6, 9; 0 for the rest):")
        for size, stats in summary["augerino_width"].items():
            print(f"  n={size}: {_cell(stats)} rad")
    if summary["sgm_laws"]:
        print("\nSGM's per-digit laws, W1 (rad) on the circle to the truth, mean over the")
        print("kind's digits (full: 0 1 8; narrow: 6 9; none: the rest), mean ± sd over seeds:")
        print("| n | kind | W1 | uniform law | best point mass | stage-1 poses |")
        print("|---:|---|---:|---:|---:|---:|")
        for size, per_kind in summary["sgm_laws"].items():
            for kind, stats in per_kind.items():
                cells = [_cell(stats[m]) for m in ("w1", "uniform_baseline", "point_baseline")]
                cells.append(_cell(stats["stage1_w1"]))
                print(f"| {size} | {kind} | " + " | ".join(cells) + " |")


def plot(summary: Mapping[str, Any], path: Path) -> None:
    """Test accuracy and 6/9 accuracy against n, mean ± sd over seeds (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from invppl.plots import save_figure

    metrics = ("accuracy", "accuracy_full", "accuracy_69")
    titles = ("all test digits", "0, 1, 8 (any angle)", "6 and 9 (upright ± 0.3 rad)")
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for arm, per_size in summary["arms"].items():
        sizes = [int(size) for size in per_size]
        for axis, metric in zip(axes, metrics, strict=True):
            means = [per_size[str(s)][metric]["mean"] for s in sizes]
            sds = [per_size[str(s)][metric]["sd"] for s in sizes]
            axis.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=arm)
    for axis, title in zip(axes, titles, strict=True):
        axis.set_xscale("log")
        axis.set_xlabel("training examples n")
        axis.set_ylabel("test accuracy")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save_figure(figure, path)
    plt.close(figure)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--steps", type=int, default=600, help="Adam steps of every classifier")
    parser.add_argument("--pose-steps", type=int, default=400, help="SGM stage 1")
    parser.add_argument("--prior-steps", type=int, default=300, help="SGM stage 2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--pool", type=int, default=2, help="average-pool factor (28 → 14)")
    parser.add_argument("--small", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument(
        "--compilation-cache", type=Path, help="XLA's persistent cache (reused across runs)"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    if args.small:
        args.sizes, args.seeds, args.steps, args.batch_size = [40], args.seeds[:1], 5, 16
        args.pose_steps, args.prior_steps, args.pool = 3, 3, 4
    smallest = math.ceil(args.batch_size / 0.9)  # the SGM's stage 2 holds 10 % out
    if max(args.sizes) > 5000 - NUM_TEST or min(args.sizes) < smallest:
        parser.error(f"--sizes must lie in {smallest}..{5000 - NUM_TEST} (--batch-size)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.compilation_cache is not None:  # the steps of every seed and size compile once
        jax.config.update("jax_compilation_cache_dir", str(args.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)} (seeds {args.seeds})")
    started = time.perf_counter()
    arms: list[dict[str, Any]] = []
    laws: list[dict[str, Any]] = []
    for seed in args.seeds:
        split = make_split(seed, args.pool)
        for size in args.sizes:
            run = one_run(split, size, seed, args)
            arms.extend(run["arms"])
            laws.extend(run["laws"])
    summary = summarise(arms, laws)
    summary["seconds"] = time.perf_counter() - started
    print_summary(summary)
    print(f"\nwall time {summary['seconds'] / 60:.1f} min")
    if args.figure is not None:
        plot(summary, args.figure)
    return record_results(machine, args, {"arms": arms, "laws": laws}, summary, args.out)


if __name__ == "__main__":
    main()
