"""The command line's jobs: data splits, `invppl fit`, `invppl evaluate`, `invppl diagnose`.

A fit writes a run folder: ``config.json`` (everything needed to rebuild the
data split and the model), ``checkpoints/`` (orbax, see
:func:`invppl.infer.fit`) and ``fit.json`` (losses and timings). Running the
same fit on the folder again resumes it (after an interruption, or from the last
intact checkpoint when one is damaged); a larger ``steps`` extends a finished
run; any other change of the configuration is refused, naming each changed key.
``invppl evaluate RUN`` rebuilds the model from ``config.json``, restores the
last checkpoint and writes ``evaluation.json``: the test IWAE bound for the VAE
and the jointly fitted SGM; prototype invariance and per-class circular
Wasserstein distances of the learned rotations for the two-stage SGM.
``invppl diagnose RUN`` checks the jointly fitted SGM's q(η | x) on test
examples (:func:`invppl.diagnostics.check_eta`) and writes a report folder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from invppl._batching import in_batches
from invppl._checks import check_int
from invppl._io import check_writable_folder, write_json
from invppl.datasets import load_mnist, make_dsprites, rotated_mnist
from invppl.datasets.laws import Law, MixtureLaw, UniformLaw
from invppl.infer import fit, fit_two_stage, iwae_bound, list_checkpoints
from invppl.infer.fit import CHECKPOINT_EVERY
from invppl.metrics import law_recovery, pose_equivariance_error, prototype_invariance
from invppl.models import make_sgm, make_two_stage_sgm, make_vae

__all__ = [
    "DATASETS",
    "FINAL_LOSS_IS",
    "IWAE_IS",
    "MODELS",
    "ROTATED_MNIST_LAWS",
    "ROTATION_TOLERANCE",
    "JobData",
    "job_data",
    "rotation_report",
    "run_diagnose",
    "run_evaluate",
    "run_fit",
]

MODELS = ("vae", "sgm", "sgm-two-stage")
DATASETS = ("rotated-mnist", "dsprites")

FINAL_LOSS_IS = (
    "the mean training loss of the last 50 steps (the progress bar's last 'loss'); for SVI "
    "-ELBO per example of the training minibatches, in nats (lower is better)"
)
"""What ``fit.json``'s ``final_loss`` is, in words (written beside it)."""

IWAE_IS = (
    "the importance-weighted lower bound on log p(x) per test image, in nats: a log "
    "likelihood, so negative for images and higher is better (not a loss)"
)
"""What ``evaluation.json``'s ``test_iwae_nats`` is, in words (written beside it)."""

ROTATED_MNIST_LAWS: dict[int, Law] = {
    0: UniformLaw(-math.pi, math.pi),
    1: MixtureLaw((UniformLaw(-1.2, -0.8), UniformLaw(0.8, 1.2)), (0.5, 0.5)),
    7: UniformLaw(-0.5, 0.5),
}
"""The true rotation law of each digit in the rotated-MNIST jobs and the demo."""


@dataclass(frozen=True)
class JobData:
    """A train/test split with the true rotation of every image and each class's law.

    ``x_*`` ``(n, H, W, 1)``, ``labels_*`` ``(n,)``, ``angles_*`` ``(n,)`` radians.
    """

    x_train: np.ndarray
    x_test: np.ndarray
    labels_train: np.ndarray
    labels_test: np.ndarray
    angles_train: np.ndarray
    angles_test: np.ndarray
    laws: Mapping[int, Any]
    class_names: Mapping[int, str]
    source: str


def job_data(dataset: str, *, seed: int, max_examples: int, test_fraction: float = 0.2) -> JobData:
    """The data of a job: rotated bundled MNIST digits or procedural 28×28 dSprites.

    The split is a function of ``seed``; ``max_examples`` caps train + test.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if max_examples < 2:
        raise ValueError(f"max_examples must be at least 2, got {max_examples}")
    if dataset == "rotated-mnist":
        mnist = load_mnist()
        rotated = rotated_mnist(
            mnist.images,
            mnist.labels,
            seed=seed,
            law=ROTATED_MNIST_LAWS,
            classes=sorted(ROTATED_MNIST_LAWS),
        )
        images, labels, angles = rotated.images, rotated.labels, rotated.angles
        laws: Mapping[int, Any] = dict(ROTATED_MNIST_LAWS)
        names = {d: f"digit {d}" for d in ROTATED_MNIST_LAWS}
        source = f"{mnist.source}, rotated"
    else:
        sprites = make_dsprites(max_examples, seed=seed, size=28)
        images, labels = sprites.images, sprites.labels
        angles = np.asarray(sprites.factors["rotation"])
        laws = {i: sprites.laws[name]["rotation"] for i, name in enumerate(sprites.shape_names)}
        names = dict(enumerate(sprites.shape_names))
        source = "procedural dSprites-like shapes, 28x28"
    order = np.random.default_rng([seed, 1]).permutation(len(labels))[:max_examples]
    num_test = min(max(round(test_fraction * len(order)), 1), len(order) - 1)
    test, train = order[:num_test], order[num_test:]
    return JobData(
        x_train=images[train].astype(np.float32),
        x_test=images[test].astype(np.float32),
        labels_train=labels[train],
        labels_test=labels[test],
        angles_train=np.asarray(angles[train], np.float64),
        angles_test=np.asarray(angles[test], np.float64),
        laws=laws,
        class_names=names,
        source=source,
    )


def _circular_mean(angles: np.ndarray) -> tuple[float, float]:
    """Mean direction and mean resultant length R of angles ``(n,)``."""
    resultant = np.mean(np.exp(1j * angles)) if angles.size else 0j
    return float(np.angle(resultant)), float(np.abs(resultant))


def _log_density(symmetry: Any, prototypes: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """log p(f(x) | x̂) per image ``(n,)`` under the fitted stage 2, in batches."""
    chunks = []
    for start in range(0, len(poses), 256):
        batch = slice(start, start + 256)
        flow = symmetry.eta_distribution(jnp.asarray(prototypes[batch]))
        chunks.append(np.asarray(flow.log_prob(jnp.asarray(poses[batch]))))
    return np.concatenate(chunks)


ROTATION_TOLERANCE = 0.10
"""The W1 (radians) within which a digit's rotation law counts as recovered (×1.5 for mixtures)."""


def rotation_report(
    symmetry: Any, data: JobData, *, seed: int, samples_per_example: int = 8
) -> tuple[dict[str, dict[str, Any]], dict[int, np.ndarray]]:
    """Per class: how consistent the learned pose is and how well p(η | x̂) matches the law.

    The prototype's orientation is not identifiable, so learned angles are
    aligned by the class's offset, the circular mean of f(x) − θ over the
    training data; ``pose_consistency_R`` (1 = the same offset for every
    example) says whether that alignment is meaningful. Each class also gets
    the verdict of :func:`invppl.metrics.law_recovery`: the aligned W1 beside
    a uniform law and the best point mass, the pose error on held-out digits,
    and whether the law was recovered (within :data:`ROTATION_TOLERANCE`), and
    the truth-free median equivariance error of the pose on held-out digits
    (:func:`invppl.metrics.pose_equivariance_error`), and stage 2's mean
    log p(f(x) | x̂) on training and on held-out digits: a held-out value far
    below the training one says that p(η | x̂) memorised its training
    prototypes, values near −log 2π ≈ −1.84 that it learned no more than a
    uniform law (these checks need no true angles). A class without training
    or held-out digits is reported as not judged.
    Returns the report and the aligned samples per class (for plots).
    """
    poses = in_batches(symmetry.pose, data.x_train, 256)[:, 0]
    poses_test = in_batches(symmetry.pose, data.x_test, 256)[:, 0]
    prototypes = in_batches(symmetry.prototype, data.x_test, 256)
    samples = np.asarray(
        symmetry.sample_eta(jax.random.key(seed), jnp.asarray(prototypes), (samples_per_example,))
    )[..., 0]
    turns = jax.random.uniform(
        jax.random.key(seed + 1), (len(data.x_test), 1), minval=-math.pi, maxval=math.pi
    )
    equivariance = pose_equivariance_error(
        jax.jit(symmetry.pose), symmetry.family, jnp.asarray(data.x_test), turns
    )
    # stage 2's fit on held-out digits against its training digits: log p(f(x) | x̂) per image
    prototypes_train = in_batches(symmetry.prototype, data.x_train, 256)
    log_density = {
        "train": _log_density(symmetry, prototypes_train, poses[:, None]),
        "test": _log_density(symmetry, prototypes, poses_test[:, None]),
    }
    truth_rng = np.random.default_rng([seed, 3])
    report: dict[str, dict[str, Any]] = {}
    aligned: dict[int, np.ndarray] = {}
    for label, law in data.laws.items():
        in_train = data.labels_train == label
        in_test = data.labels_test == label
        if not (in_train.any() and in_test.any()):
            report[data.class_names[label]] = {
                "test_examples": int(in_test.sum()),
                "verdict": "not judged: the class has no training or no held-out examples",
            }
            aligned[label] = np.zeros(0)
            continue
        _, resultant = _circular_mean(poses[in_train] - data.angles_train[in_train])
        recovery = law_recovery(
            samples[:, in_test].ravel(),
            law.sample(truth_rng, 4000),
            poses_train=poses[in_train],
            eta_train=data.angles_train[in_train],
            poses_test=poses_test[in_test],
            eta_test=data.angles_test[in_test],
            tolerance=ROTATION_TOLERANCE * (1.5 if isinstance(law, MixtureLaw) else 1.0),
            period=2 * math.pi,
        )
        aligned[label] = np.angle(np.exp(1j * (samples[:, in_test].ravel() - recovery.offset)))
        report[data.class_names[label]] = {
            "pose_offset": recovery.offset,
            "pose_consistency_R": resultant,
            "wasserstein_circle_aligned": recovery.w1,
            "test_examples": int(in_test.sum()),
            "equivariance_error": float(np.median(equivariance[in_test])),
            "log_density_train": float(np.mean(log_density["train"][in_train])),
            "log_density_test": float(np.mean(log_density["test"][in_test])),
            **{k: v for k, v in recovery.to_dict().items() if k not in ("offset", "w1")},
        }
    return report, aligned


def _build(config: Mapping[str, Any], image_shape: tuple[int, int, int]) -> Any:
    model, seed = config["model"], config["seed"]
    hidden = config["hidden"]
    # grey images: the continuous Bernoulli is a density on [0, 1] (a Bernoulli is not)
    if model == "vae":
        return make_vae(
            image_shape, config["latent_dim"], seed=seed, hidden=hidden, kind="continuous_bernoulli"
        )
    if model == "sgm":
        return make_sgm(
            image_shape,
            config["latent_dim"],
            ("rotation",),
            seed=seed,
            context_dim=config["context_dim"],
            hidden=hidden,
            kind="continuous_bernoulli",
        )
    return make_two_stage_sgm(
        image_shape,
        ("rotation",),
        seed=seed,
        context_dim=config["context_dim"],
        blur_steps=max(config["steps"] // 4, 1),
        consistency_steps=max(3 * config["steps"] // 4, 1),
        hidden=hidden,
    )


def _fit_all(
    config: Mapping[str, Any],
    data: JobData,
    folder: Path,
    progress: bool,
    checkpoint_every: int | None = None,
) -> Any:
    """Fits (or, with checkpoints present, restores) the configured model."""
    image_shape = tuple(int(s) for s in data.x_train.shape[1:])
    built = _build(config, image_shape)  # type: ignore[arg-type]
    common = {
        "seed": config["seed"],
        "batch_size": config["batch_size"],
        "progress": progress,
    }
    if config["model"] == "sgm-two-stage":
        return built, fit_two_stage(
            built,
            {"x": data.x_train},
            pose_steps=config["steps"],
            prior_steps=config["steps"],
            checkpoint_dir=folder / "checkpoints",
            **common,
        )
    return built, fit(
        built.model,
        built.guide,
        {"x": data.x_train},
        num_steps=config["steps"],
        checkpoint_dir=folder / "checkpoints",
        checkpoint_every=checkpoint_every,
        **common,
    )


def _check_same_run(folder: Path, previous: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` unless ``config`` may resume or extend the run ``previous``.

    Only ``steps`` may change (not for the two-stage SGM, whose stage schedules
    depend on it), and not below the steps already done; the message names every
    changed key.
    """
    changed = [
        f"{key} is {previous.get(key)!r} there, {value!r} now"
        for key, value in config.items()
        if key != "steps" and previous.get(key) != value
    ]
    changed += [f"{key} is {previous[key]!r} there, unset now" for key in previous.keys() - config]
    if changed:
        raise ValueError(
            f"{folder} holds a run with another configuration ({'; '.join(changed)}); resume "
            "it with the same settings (only steps may change: a larger one extends it), or "
            "choose another folder"
        )
    if config["steps"] == previous["steps"]:
        return
    if config["model"] == "sgm-two-stage":
        raise ValueError(
            f"{folder} holds a sgm-two-stage run of {previous['steps']} steps; its stage "
            "schedules (blur and consistency steps) are set by steps, so it cannot be extended "
            f"to {config['steps']}; choose another folder"
        )
    done = max((step for step, _ in list_checkpoints(folder / "checkpoints")), default=0)
    if config["steps"] < done:
        raise ValueError(
            f"{folder} holds a run that has done {done} steps already; steps={config['steps']} "
            f"would undo some; give steps of at least {done}, or choose another folder"
        )


def _fit_summary(config: Mapping[str, Any], fits: Mapping[str, Any]) -> dict[str, Any]:
    """``fit.json``'s content: the configuration and, per fit, steps, message, time, loss."""
    return {
        "config": dict(config),
        "fits": {
            name: {
                "steps_done": r.steps_done,
                "message": r.message,
                "seconds": r.seconds,
                "final_loss": r.final_loss(),
                "final_loss_is": FINAL_LOSS_IS,
            }
            for name, r in fits.items()
        },
    }


def run_fit(
    out: str | os.PathLike[str],
    *,
    model: str,
    dataset: str = "rotated-mnist",
    steps: int = 1000,
    batch_size: int = 64,
    seed: int = 0,
    hidden: int = 128,
    latent_dim: int = 16,
    context_dim: int = 16,
    max_examples: int = 100_000,
    progress: bool = True,
    checkpoint_every: int | None = None,
) -> dict[str, Any]:
    """Fits ``model`` on ``dataset`` into the run folder ``out``; returns ``fit.json``'s content.

    Running it again on the same folder resumes from the latest intact
    checkpoint; a larger ``steps`` extends a finished run (not a two-stage
    one). ``checkpoint_every`` defaults to :data:`invppl.infer.fit.CHECKPOINT_EVERY`
    steps; a SIGINT or SIGTERM saves a checkpoint too.

    Raises:
        ValueError, TypeError, OSError: before any work, for an unknown model or
            dataset, a bad count, an ``out`` that cannot be written, or a run
            folder holding another configuration (naming each changed key).
        invppl.infer.FitInterrupted: on SIGINT or SIGTERM, once saved.
    """
    folder = check_writable_folder(out, "the run folder")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    for name, value in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("hidden", hidden),
        ("latent_dim", latent_dim),
        ("context_dim", context_dim),
        ("max_examples", max_examples),
    ):
        check_int(value, name, minimum=1)
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every", minimum=1)
        if model == "sgm-two-stage":
            raise ValueError(
                "checkpoint_every is not supported for sgm-two-stage: each stage saves a "
                f"checkpoint every {CHECKPOINT_EVERY} steps, at its end and on SIGINT/SIGTERM"
            )
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    config = {
        "model": model,
        "dataset": dataset,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "hidden": hidden,
        "latent_dim": latent_dim,
        "context_dim": context_dim,
        "max_examples": max_examples,
    }
    saved = folder / "config.json"
    if saved.exists():
        _check_same_run(folder, json.loads(saved.read_text()), config)
    data = job_data(dataset, seed=seed, max_examples=max_examples)
    if batch_size > len(data.x_train):
        raise ValueError(
            f"batch_size {batch_size} exceeds the {len(data.x_train)} training examples"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(config, saved)
    _, result = _fit_all(config, data, folder, progress, checkpoint_every)
    fits = (
        {"pose": result.pose, "prior": result.prior}
        if model == "sgm-two-stage"
        else {"svi": result}
    )
    summary = _fit_summary(config, fits)
    write_json(summary, folder / "fit.json")
    return summary


def _load_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a run folder, checked to name a known model."""
    saved = folder / "config.json"
    if not saved.exists():
        raise FileNotFoundError(
            f"{folder} is not a run folder of `invppl fit` (no config.json in it)"
        )
    config = json.loads(saved.read_text())
    if config.get("model") not in MODELS:
        raise ValueError(f"{saved} names an unknown model {config.get('model')!r}")
    if not (folder / "checkpoints").is_dir():
        raise FileNotFoundError(f"{folder} has no checkpoints/ folder: the fit never started")
    return config


def run_evaluate(
    run: str | os.PathLike[str], *, iwae_samples: int = 64, progress: bool = False
) -> dict[str, Any]:
    """Evaluates a run folder of :func:`run_fit`; returns what it writes to ``evaluation.json``.

    For the VAE and the jointly fitted SGM: ``test_iwae_nats`` (see
    :data:`IWAE_IS`, also written beside it as ``test_iwae_is``),
    ``iwae_samples`` and ``test_images``.
    """
    folder = Path(run)
    config = _load_config(folder)
    check_writable_folder(folder, "the run folder")
    check_int(iwae_samples, "iwae_samples", minimum=1)
    data = job_data(config["dataset"], seed=config["seed"], max_examples=config["max_examples"])
    built, result = _fit_all(config, data, folder, progress)  # restores; nothing left to fit
    evaluation: dict[str, Any] = {"config": config}
    if config["model"] == "sgm-two-stage":
        symmetry = result.symmetry
        shown = jnp.asarray(data.x_test[:300])
        eta = jax.random.uniform(
            jax.random.key(config["seed"]), (shown.shape[0], 1), minval=-math.pi, maxval=math.pi
        )
        invariance = prototype_invariance(symmetry.prototype, shown, built.family, eta)
        evaluation["prototype_invariance"] = {
            k: v for k, v in invariance.to_dict().items() if k != "per_example"
        }
        evaluation["rotation_per_class"], _ = rotation_report(symmetry, data, seed=config["seed"])
    else:
        evaluation["test_iwae_nats"] = iwae_bound(
            built.model,
            built.guide,
            result.params_and_state,
            {"x": data.x_test},
            seed=config["seed"],
            num_samples=iwae_samples,
        )
        evaluation["test_iwae_is"] = IWAE_IS
        evaluation["iwae_samples"] = iwae_samples
        evaluation["test_images"] = len(data.x_test)
    write_json(evaluation, folder / "evaluation.json")
    return evaluation


def run_diagnose(
    run: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    examples: int = 8,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    max_tree_depth: int = 8,
    guide_samples: int = 1000,
    sbc_simulations: int = 200,
    progress: bool = False,
) -> dict[str, Any]:
    """Checks the η posterior of a run folder's SGM guide on its first test examples.

    Writes the report of :func:`invppl.diagnostics.report.write_report` into
    ``out`` (default ``RUN/diagnostics``) and returns its JSON digest. Only an
    SGM fitted by joint SVI (``invppl fit --model sgm``) has an amortised
    q(η | x) to check.
    """
    from invppl.diagnostics import check_eta
    from invppl.diagnostics.report import write_report

    folder = Path(run)
    config = _load_config(folder)
    if config["model"] != "sgm":
        why = (
            "the two-stage SGM's pose network gives a point estimate f(x), not a posterior"
            if config["model"] == "sgm-two-stage"
            else "a VAE has no transformation η"
        )
        raise ValueError(
            f"{folder} holds a {config['model']!r} fit, which has no amortised η posterior to "
            f"check ({why}); diagnose needs an SGM fitted by joint SVI (invppl fit --model sgm)"
        )
    check_int(examples, "examples", minimum=1)
    report = Path(out) if out is not None else folder / "diagnostics"
    check_writable_folder(report, "the report folder")
    data = job_data(config["dataset"], seed=config["seed"], max_examples=config["max_examples"])
    if examples > len(data.x_test):
        raise ValueError(f"examples={examples} exceeds the {len(data.x_test)} test examples")
    built, result = _fit_all(config, data, folder, progress)  # restores; nothing left to fit
    check = check_eta(
        built.model,
        built.guide,
        result.params_and_state,
        jnp.asarray(data.x_test[:examples]),
        guide_samples=guide_samples,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        max_tree_depth=max_tree_depth,
        sbc_simulations=sbc_simulations,
        loss=result.losses,
        seed=config["seed"],
        progress=progress,
    )
    settings = {
        "run": str(folder),
        "config": config,
        "steps_done": result.steps_done,
        "nuts": {
            "chains": num_chains,
            "warmup": num_warmup,
            "samples": num_samples,
            "max_tree_depth": max_tree_depth,
        },
        "example_classes": [int(v) for v in data.labels_test[:examples]],
        "example_true_angles": [float(v) for v in data.angles_test[:examples]],
    }
    return write_report(check, report, settings)
