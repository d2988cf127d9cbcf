"""BiGAN on MNIST digits: a linear probe of its encoder's codes, a VAE's, a random encoder's.

BiGAN's claim (Donahue et al. 2017): the encoder E learned by the adversarial
game gives features useful for supervised tasks. For each seed, on MNIST
digits average-pooled to 14 × 14 by default: the 5,000 bundled digits split
in two by a seeded permutation, or with ``--mnist-dir PATH`` (default: the
environment variable ``INVPPL_MNIST_DIR``) full MNIST's IDX files, training
on ``--num-train`` digits of the train split and testing on ``--num-test``
of the t10k split (seeded draws; 0 for a whole split):

- a BiGAN is fitted by :func:`invppl.infer.fit_adversarial` (non-saturating
  losses; Adam(2e-4, β1 = 0.5) for both players, as in the BiGAN paper;
  dropout 0.2 in the discriminator; the R1 gradient penalty on the real
  pairs, γ = 1: without it the discriminator wins within a few hundred
  steps and the generator collapses to one image, whatever the learning
  rates and dropout tried, see docs/bigan.md);
- a VAE with the same code size is fitted by :func:`invppl.infer.fit` for the
  same number of steps;
- a logistic regression (the linear probe, scikit-learn, standardised codes)
  is trained on the training digits' codes and scored on the held-out ones,
  for E(x), the VAE's posterior means, the untrained BiGAN encoder (a random
  encoder: the BiGAN's initial weights) and, as a reference, the raw pixels.

Also printed: the mean squared error of the reconstructions G(E(x)) on the
held-out digits beside that of the mean training image, and the samples'
diversity (the per-pixel sd over 1,000 samples G(z), averaged over pixels)
beside the held-out digits' (one image repeated scores 0). ``--figure`` draws
held-out digits, their reconstructions G(E(x)) and samples G(z) of the first
seed. Prints the machine and each seed's row; ``--out`` writes JSON.

    .venv/bin/python benchmarks/bigan_mnist.py [--seeds 0 1 2] [--steps 2000] \
        [--out results.json] [--figure bigan.png] [--mnist-dir ~/data/mnist]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from invppl._machine import machine_info, record_results
from invppl.datasets import train_test_mnist
from invppl.infer import fit, fit_adversarial
from invppl.metrics.adversary import adversary_accuracy_split
from invppl.models import make_bigan, make_vae
from invppl.models.bigan import encode, generate, reconstruct
from invppl.nn import with_fitted_params
from invppl.plots import image_grid, save_figure

ENCODERS = ("bigan", "vae", "random", "pixels")
"""The codes each seed's linear probe reads, in the table's order."""


def _pooled(images: np.ndarray, pool: int) -> np.ndarray:
    """``(n, 28, 28, 1)`` → ``(n, 28 / pool, 28 / pool, 1)`` by average pooling."""
    n, size = images.shape[0], images.shape[1] // pool
    return images.reshape(n, size, pool, size, pool, 1).mean(axis=(2, 4))


def digits(
    pool: int,
    num_train: int,
    num_test: int,
    seed: int,
    mnist_dir: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """Digits average-pooled by ``pool``, drawn by a seeded permutation.

    ``mnist_dir`` None: the 5,000 bundled digits split in two. Else full
    MNIST's IDX files there: ``num_train`` digits of the train split (60,000),
    ``num_test`` of the t10k split (10,000); 0 takes a whole split.

    Returns ``x_train`` ``(num_train, H, W, 1)``, ``y_train`` ``(num_train,)``,
    ``x_test`` ``(num_test, H, W, 1)`` and ``y_test`` ``(num_test,)``.
    """
    train, test = train_test_mnist(mnist_dir, num_train, num_test, np.random.default_rng(seed))
    return {
        "x_train": _pooled(train.images, pool),
        "y_train": train.labels,
        "x_test": _pooled(test.images, pool),
        "y_test": test.labels,
    }


def probe(train: np.ndarray, test: np.ndarray, split: dict[str, np.ndarray], seed: int) -> float:
    """Held-out accuracy of a logistic regression on codes ``(num_train, d)``, ``(num_test, d)``."""
    result = adversary_accuracy_split(
        train.reshape(train.shape[0], -1),
        split["y_train"],
        test.reshape(test.shape[0], -1),
        split["y_test"],
        seed=seed,
        models=("logistic",),
    )
    return result.accuracy["logistic"]


def diagnose(bigan: Any, fitted: Any, x_test: np.ndarray, seed: int) -> dict[str, float]:
    """How the game stands: D's held-out accuracy, the samples' spread, G(E(x))'s error.

    ``x_test`` ``(n, H, W, 1)``. D (no dropout) is right on a real pair
    (x, E(x)) when its logit is positive, on a generated pair (G(z), z), of
    1,000 fixed z, when negative. ``sample_diversity``: the per-pixel sd of
    those G(z), averaged over pixels (0 for a generator that has collapsed to
    one image).
    """
    players = fitted.generator_params
    d = nnx.merge(bigan.graphs["discriminator"], fitted.discriminator_params)
    z = jax.random.normal(jax.random.key(seed + 1), (1000, bigan.latent_dim))
    samples = generate(bigan, players, z)
    rebuilt = reconstruct(bigan, players, x_test)
    return {
        "d_accuracy_real": float(
            jnp.mean(d(jnp.asarray(x_test), encode(bigan, players, x_test)) > 0)
        ),
        "d_accuracy_generated": float(jnp.mean(d(samples, z) < 0)),
        "sample_diversity": float(jnp.mean(jnp.std(samples, axis=0))),
        "reconstruction_mse": float(jnp.mean((rebuilt - x_test) ** 2)),
    }


def fit_bigan(
    bigan: Any, x_train: np.ndarray, x_test: np.ndarray, seed: int, args: argparse.Namespace
) -> tuple[Any, list[dict[str, float]]]:
    """Fits the BiGAN; ``(fit result, trace)``.

    With ``--trace-every N`` the fit stops every N steps to :func:`diagnose`
    (``trace``: one entry per stop) and resumes from its checkpoint, which
    gives the parameters of an uninterrupted fit.
    """
    settings = {
        "seed": seed,
        "batch_size": args.batch_size,
        "discriminator_optimizer": optax.adam(args.lr_discriminator, b1=0.5),
        "generator_optimizer": optax.adam(args.lr_generator, b1=0.5),
        "progress": args.progress,
        "check": bigan.check_data,
    }
    losses = (bigan.discriminator_loss, bigan.generator_loss, bigan.init_params(), {"x": x_train})
    if not args.trace_every:
        return fit_adversarial(*losses, num_steps=args.steps, **settings), []
    trace = []
    with tempfile.TemporaryDirectory() as folder:
        for steps in [*range(args.trace_every, args.steps, args.trace_every), args.steps]:
            fitted = fit_adversarial(*losses, num_steps=steps, checkpoint_dir=folder, **settings)
            recent = fitted.losses[-args.trace_every :].mean(axis=0)
            trace.append({"step": steps, "loss_d": float(recent[0]), "loss_g": float(recent[1])})
            trace[-1].update(diagnose(bigan, fitted, x_test, seed))
            print(
                f"  seed {seed} step {steps}: "
                + ", ".join(
                    f"{key} {value:.4g}" for key, value in trace[-1].items() if key != "step"
                ),
                flush=True,
            )
    return fitted, trace


def vae_codes(
    shape: tuple[int, int, int], x_train: np.ndarray, x_test: np.ndarray, seed: int, args: Any
) -> list[np.ndarray]:
    """A VAE's posterior means of ``x_train`` and ``x_test``, fitted as long as the BiGAN."""
    vae = make_vae(
        shape, args.latent_dim, seed=seed, hidden=args.hidden, kind="continuous_bernoulli"
    )
    vae_fit = fit(
        vae.model,
        vae.guide,
        {"x": x_train},
        seed=seed,
        num_steps=args.steps,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    encoder = with_fitted_params(vae.encoder, "encoder", vae_fit.params)
    return [np.asarray(encoder(x)[0]) for x in (x_train, x_test)]


def one_seed(seed: int, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fits a BiGAN and a VAE on one seed's split; ``(row, figure arrays)``."""
    split = digits(args.pool, args.num_train, args.num_test, seed, args.mnist_dir)
    x_train, x_test = split["x_train"], split["x_test"]
    shape = (int(x_train.shape[1]), int(x_train.shape[2]), 1)
    bigan = make_bigan(
        shape,
        args.latent_dim,
        seed=seed,
        architecture=args.architecture,
        hidden=args.hidden,
        dropout=args.dropout,
        gradient_penalty=args.gradient_penalty,
    )
    started = time.perf_counter()
    fitted, trace = fit_bigan(bigan, x_train, x_test, seed, args)
    bigan_seconds = time.perf_counter() - started
    players, initial = fitted.generator_params, bigan.init_params()[1]
    codes = {
        "bigan": [np.asarray(encode(bigan, players, x)) for x in (x_train, x_test)],
        "random": [np.asarray(encode(bigan, initial, x)) for x in (x_train, x_test)],
        "pixels": [x_train, x_test],
    }
    started = time.perf_counter()
    codes["vae"] = vae_codes(shape, x_train, x_test, seed, args)
    vae_seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "seed": seed,
        **{f"probe_{name}": probe(*codes[name], split, seed) for name in ENCODERS},
        **diagnose(bigan, fitted, x_test, seed),
        "mean_image_mse": float(np.mean((x_train.mean(axis=0) - x_test) ** 2)),
        "data_diversity": float(x_test.std(axis=0).mean()),
        "bigan_final_losses": fitted.losses[-100:].mean(axis=0).tolist(),
        "bigan_stopped_early": fitted.stopped_early,
        "bigan_seconds": bigan_seconds,
        "vae_seconds": vae_seconds,
        "trace": trace,
    }
    z = jax.random.normal(jax.random.key(seed), (8, args.latent_dim))
    pictures = {
        "x": x_test[:8],
        "rebuilt": reconstruct(bigan, players, x_test[:8]),
        "samples": generate(bigan, players, z),
    }
    return row, pictures


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample sd over seeds of each probe accuracy and the reconstruction MSE."""
    keys = [f"probe_{name}" for name in ENCODERS]
    keys += ["reconstruction_mse", "mean_image_mse", "sample_diversity", "data_diversity"]
    summary: dict[str, Any] = {"seeds": [row["seed"] for row in rows]}
    for key in keys:
        values = np.array([row[key] for row in rows], float)
        sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        summary[key] = {"mean": float(values.mean()), "sd": sd}
    bigan_wins = [row["probe_bigan"] > row["probe_random"] for row in rows]
    summary["bigan_beats_random"] = f"{sum(bigan_wins)} of {len(rows)} seeds"
    return summary


def draw(pictures: dict[str, Any], path: Path) -> None:
    """Saves held-out digits, their reconstructions G(E(x)) and samples G(z), one row each."""
    images = np.concatenate([np.asarray(pictures[k]) for k in ("x", "rebuilt", "samples")])
    labels = ["x", "G(E(x))", "G(z)"]
    save_figure(image_grid(images, ncols=8, row_labels=labels, cell_size=0.8), path)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000, help="BiGAN and VAE steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--architecture", choices=("conv", "mlp"), default="mlp")
    parser.add_argument("--dropout", type=float, default=0.2, help="in the discriminator")
    parser.add_argument("--gradient-penalty", type=float, default=1.0, help="R1 weight γ (0: none)")
    parser.add_argument("--lr-discriminator", type=float, default=2e-4)
    parser.add_argument("--lr-generator", type=float, default=2e-4, help="generator and encoder")
    parser.add_argument("--pool", type=int, choices=(1, 2, 4), default=2, help="28 / pool pixels")
    parser.add_argument("--num-train", type=int, default=4000, help="0: all (IDX files only)")
    parser.add_argument("--num-test", type=int, default=1000, help="0: all (IDX files only)")
    parser.add_argument(
        "--mnist-dir",
        default=os.environ.get("INVPPL_MNIST_DIR") or None,
        help="a folder with the MNIST IDX files: train on the train split, test on t10k "
        "(default: $INVPPL_MNIST_DIR, else the 5,000 bundled digits)",
    )
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument(
        "--trace-every",
        type=int,
        default=0,
        help="measure the BiGAN (D's accuracy, sample sd, G(E(x)) error) every N steps",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--figure", type=Path, help="reconstructions and samples (first seed)")
    args = parser.parse_args(argv)
    if args.trace_every < 0:
        parser.error(f"--trace-every must be ≥ 0, got {args.trace_every}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    print(
        f"{'seed':>6} " + " ".join(f"{name:>8}" for name in ENCODERS) + f" {'rec MSE':>8}"
        f" {'mean-img':>8} {'sample sd':>9} {'data sd':>8}"
    )
    rows = []
    for index, seed in enumerate(args.seeds):
        row, pictures = one_seed(seed, args)
        rows.append(row)
        probes = " ".join(f"{row[f'probe_{name}']:>8.3f}" for name in ENCODERS)
        print(
            f"seed {seed}: {probes} {row['reconstruction_mse']:>8.4f} "
            f"{row['mean_image_mse']:>8.4f} {row['sample_diversity']:>9.4f} "
            f"{row['data_diversity']:>8.4f}",
            flush=True,
        )
        if index == 0 and args.figure is not None:
            draw(pictures, args.figure)
    summary = summarise(rows)
    for name in ENCODERS:
        entry = summary[f"probe_{name}"]
        print(f"probe {name}: {entry['mean']:.3f} ± {entry['sd']:.3f} over {len(rows)} seed(s)")
    for key in ("reconstruction_mse", "mean_image_mse", "sample_diversity", "data_diversity"):
        entry = summary[key]
        print(f"{key}: {entry['mean']:.4f} ± {entry['sd']:.4f}")
    print(f"BiGAN probe > random encoder's: {summary['bigan_beats_random']}")
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
