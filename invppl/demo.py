"""The `make demo` job: the SGM on rotated MNIST, with a report folder.

Digits from the bundled MNIST sample are rotated by a known law per digit
(:data:`invppl.jobs.ROTATED_MNIST_LAWS`: 0 uniform on the circle, 1 at
±1 rad (bimodal), 7 within ±0.5 rad). The SGM
is fitted in two stages (:func:`invppl.infer.fit_two_stage`); then a VAE and an
AugVAE (the same VAE trained on SGM-resampled data) are fitted for the same
number of steps, and an InvVAE (a VAE over prototypes) provides new samples.
The report folder holds:

- ``prototypes.png``: test inputs above their prototypes;
- ``rotation_marginals.png``: per digit, the learned p(η | x̂) pooled over test
  prototypes beside the true law (the learned angles are aligned by the
  digit's offset, the circular mean of f(x) − θ over training data: the
  prototype's orientation is arbitrary, only the spread is identifiable);
- ``samples.png``: InvVAE prototypes and their transformed versions;
- ``summary.txt``: per digit, in words, whether its law was recovered: the
  aligned W1 to the true law beside a uniform law and the best point mass
  (:func:`invppl.metrics.law_recovery`), and the pose error;
- ``metrics.json``: settings, seed, machine, time per stage, prototype
  invariance, per-digit circular Wasserstein distances, test IWAE and ELBO of
  VAE and AugVAE.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax import Array

from invppl._io import write_json, write_text
from invppl.infer import fit, fit_two_stage, iwae_bound
from invppl.jobs import JobData, job_data, rotation_report
from invppl.metrics import prototype_invariance
from invppl.models import make_augvae, make_invvae, make_two_stage_sgm, make_vae
from invppl.plots import image_grid, save_figure

__all__ = ["DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's fits; :meth:`full` is `make demo`, :meth:`small` a smoke run."""

    max_examples: int
    test_fraction: float
    pose_steps: int
    prior_steps: int
    vae_steps: int
    batch_size: int
    hidden: int
    latent_dim: int
    context_dim: int
    iwae_samples: int
    num_test: int

    @classmethod
    def full(cls) -> DemoSettings:
        return cls(
            max_examples=100_000,
            test_fraction=0.2,
            pose_steps=800,
            prior_steps=1500,
            vae_steps=600,
            batch_size=64,
            hidden=128,
            latent_dim=16,
            context_dim=16,
            iwae_samples=64,
            num_test=300,
        )

    @classmethod
    def small(cls) -> DemoSettings:
        return cls(
            max_examples=240,
            test_fraction=0.25,
            pose_steps=10,
            prior_steps=10,
            vae_steps=10,
            batch_size=16,
            hidden=16,
            latent_dim=4,
            context_dim=4,
            iwae_samples=4,
            num_test=30,
        )


def _image_shape(data: JobData) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the job's images."""
    height, width, channels = (int(size) for size in data.x_train.shape[1:])
    return height, width, channels


def _fit_symmetry(data: JobData, settings: DemoSettings, seed: int, progress: bool) -> Any:
    """The SGM fitted in two stages on the training digits: ``(sgm, TwoStageFit)``."""
    image_shape = _image_shape(data)
    sgm = make_two_stage_sgm(
        image_shape,
        ("rotation",),
        seed=seed,
        hidden=settings.hidden,
        context_dim=settings.context_dim,
        blur_steps=max(settings.pose_steps // 4, 1),
        consistency_steps=max(3 * settings.pose_steps // 4, 1),
    )
    two_stage = fit_two_stage(
        sgm,
        {"x": data.x_train},
        seed=seed,
        pose_steps=settings.pose_steps,
        prior_steps=settings.prior_steps,
        batch_size=settings.batch_size,
        progress=progress,
    )
    return sgm, two_stage


def _summary(data: JobData, per_digit: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per digit: the verdict, the equivariance error, stage 2's log-densities."""
    summary = []
    for label, law in data.laws.items():
        name = data.class_names[label]
        row = per_digit[name]
        line = f"{name} (true law {law!r}): {row['verdict']}"
        if "equivariance_error" in row:
            line += (
                f"; equivariance error {row['equivariance_error']:.3f} rad; stage 2's "
                f"log p(f(x) | x̂) {row['log_density_train']:.2f} on training digits, "
                f"{row['log_density_test']:.2f} held out"
            )
        summary.append(line)
    return summary


def _plot_marginals(data: JobData, aligned: Mapping[int, np.ndarray], path: Path) -> str:
    """Per digit, the aligned learned angles ``(m,)`` beside the true law; the file name."""
    figure, axes = plt.subplots(1, len(data.laws), figsize=(4 * len(data.laws), 3.2))
    grid = np.linspace(-math.pi, math.pi, 361)
    for axis, (label, law) in zip(np.atleast_1d(axes), data.laws.items(), strict=True):
        axis.hist(
            aligned[label],
            bins=36,
            range=(-math.pi, math.pi),
            density=True,
            alpha=0.6,
            label="learned p(η | x̂), aligned",
        )
        axis.plot(grid, law.pdf(grid, period=2 * math.pi), color="black", label="true law")
        axis.set_title(data.class_names[label])
        axis.set_xlabel("rotation (rad)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path).name


def _evaluate_symmetry(
    sgm: Any,
    symmetry: Any,
    data: JobData,
    settings: DemoSettings,
    seed: int,
    invariance_key: Array,
    folder: Path,
) -> dict[str, Any]:
    """What the SGM learned, on held-out digits: invariance, per-digit report, pictures."""
    shown = jnp.asarray(data.x_test[: settings.num_test])
    eta_random = jax.random.uniform(
        invariance_key, (shown.shape[0], 1), minval=-math.pi, maxval=math.pi
    )
    invariance = prototype_invariance(symmetry.prototype, shown, sgm.family, eta_random)
    per_digit, aligned = rotation_report(symmetry, data, seed=seed)
    prototypes_test = np.asarray(jax.jit(symmetry.prototype)(shown))
    pictures = {
        "rotation_marginals": _plot_marginals(data, aligned, folder / "rotation_marginals.png")
    }
    count = min(12, len(data.x_test))
    pictures["prototypes"] = save_figure(
        image_grid(
            np.concatenate([data.x_test[:count], prototypes_test[:count]]),
            ncols=count,
            row_labels=["input x", "prototype x̂"],
        ),
        folder / "prototypes.png",
    ).name
    return {
        "invariance": invariance,
        "per_digit": per_digit,
        "summary": _summary(data, per_digit),
        "pictures": pictures,
    }


def _vae_settings(
    settings: DemoSettings, seed: int, progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The VAEs' shared construction and fit keywords."""
    # grey images: the continuous Bernoulli is a density on [0, 1] (a Bernoulli is not)
    build = {"seed": seed, "hidden": settings.hidden, "kind": "continuous_bernoulli"}
    common = {
        "seed": seed,
        "num_steps": settings.vae_steps,
        "batch_size": settings.batch_size,
        "optimizer": optax.adam(1e-3),
        "progress": progress,
    }
    return build, common


def _fit_vaes(
    symmetry: Any, data: JobData, settings: DemoSettings, seed: int, progress: bool
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """VAE vs AugVAE at equal steps: test IWAE and final loss of each, and their seconds."""
    image_shape = _image_shape(data)
    build, common = _vae_settings(settings, seed, progress)
    test_data = {"x": data.x_test[: settings.num_test]}
    vae = make_vae(image_shape, settings.latent_dim, **build)
    augvae = make_augvae(image_shape, settings.latent_dim, symmetry, **build)
    fits: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    for name, model, guide, augment in (
        ("vae", vae.model, vae.guide, None),
        ("augvae", augvae.model, augvae.guide, augvae.augment),
    ):
        clock = time.perf_counter()
        result = fit(model, guide, {"x": data.x_train}, augment=augment, **common)
        iwae = iwae_bound(
            vae.model,
            vae.guide,
            result.params,
            test_data,
            num_samples=settings.iwae_samples,
            seed=seed,
        )
        fits[name] = {
            "test_iwae_nats": float(np.mean(iwae)),
            "final_train_loss": float(np.mean(result.losses[-50:])),
        }
        timings[name] = time.perf_counter() - clock
    return fits, timings


def _invvae_samples(
    symmetry: Any,
    data: JobData,
    settings: DemoSettings,
    seed: int,
    sample_key: Array,
    progress: bool,
    path: Path,
) -> str:
    """New digits from an InvVAE (a VAE over prototypes), moved by p(η | x̂); the file name."""
    image_shape = _image_shape(data)
    build, common = _vae_settings(settings, seed, progress)
    invvae = make_invvae(image_shape, settings.latent_dim, symmetry, **build)
    invvae_fit = fit(invvae.model, invvae.guide, invvae.data(data.x_train), **common)
    prototypes, _, samples = invvae.sample(sample_key, invvae_fit.params, 12)
    return save_figure(
        image_grid(
            np.concatenate([np.asarray(prototypes), np.asarray(samples)]),
            ncols=12,
            row_labels=["InvVAE x̂", "T_η x̂"],
        ),
        path,
    ).name


def _machine() -> dict[str, Any]:
    """The machine the demo ran on, for metrics.json."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_version": jax.__version__,
    }


def run_demo(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    settings: DemoSettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fits the SGM, VAE, AugVAE and InvVAE on rotated MNIST; writes the report to ``out``.

    Returns the metrics it writes to ``metrics.json``.
    """
    settings = DemoSettings.full() if settings is None else settings
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    data = job_data(
        "rotated-mnist",
        seed=seed,
        max_examples=settings.max_examples,
        test_fraction=settings.test_fraction,
    )
    clock = time.perf_counter()
    sgm, two_stage = _fit_symmetry(data, settings, seed, progress)
    symmetry = two_stage.symmetry
    timings["sgm_two_stage"] = time.perf_counter() - clock
    clock = time.perf_counter()
    invariance_key, sample_key = jax.random.split(jax.random.key(seed))
    learned = _evaluate_symmetry(sgm, symmetry, data, settings, seed, invariance_key, folder)
    timings["evaluate_sgm"] = time.perf_counter() - clock
    fits, vae_timings = _fit_vaes(symmetry, data, settings, seed, progress)
    timings.update(vae_timings)
    clock = time.perf_counter()
    pictures = {
        **learned["pictures"],
        "samples": _invvae_samples(
            symmetry, data, settings, seed, sample_key, progress, folder / "samples.png"
        ),
    }
    timings["invvae"] = time.perf_counter() - clock
    invariance = learned["invariance"]
    metrics = {
        "job": "SGM on rotated MNIST (two-stage fit), VAE vs AugVAE, InvVAE samples",
        "seed": seed,
        "settings": asdict(settings),
        "data": {
            "source": data.source,
            "laws": {data.class_names[c]: repr(law) for c, law in data.laws.items()},
            "train_examples": len(data.x_train),
            "test_examples": len(data.x_test),
        },
        "prototype_invariance": {
            k: v for k, v in invariance.to_dict().items() if k != "per_example"
        },
        "rotation_per_digit": learned["per_digit"],
        "summary": learned["summary"],
        "likelihood": fits,
        "augvae_minus_vae_test_iwae_nats": fits["augvae"]["test_iwae_nats"]
        - fits["vae"]["test_iwae_nats"],
        "pictures": pictures,
        "seconds": {**timings, "total": time.perf_counter() - started},
        "machine": _machine(),
    }
    write_text("\n".join(learned["summary"]) + "\n", folder / "summary.txt")
    write_json(metrics, folder / "metrics.json")
    return metrics
