"""Invariant conditional VAE on MNIST with c = the digit: style transfer and an adversary.

The 5,000 bundled MNIST digits (500 per class) are split 80/20 (stratified by
the seed). Three models with the same MLP networks, steps and seed are fitted
by :func:`invppl.infer.fit` (continuous Bernoulli likelihood on the grey pixels,
``TraceMeanField_ELBO``):

- ``VAE``: no c, no compression;
- ``cVAE``: decoder p(x | z, c) with c the digit, λ = 0;
- ``invariant``: the same with the compression term, weight λ.

Scored on the test digits: the reconstruction error (mean squared, pixels in
[0, 1], decoding the mean code with the true digit) and adversaries
(logistic regression, MLPs with 1–3 hidden layers) predicting the digit from the
mean code, trained on the training codes, beside the majority-class rate.
Figures (``--figures DIR``): each model's reconstructions, and the conditional
models' style-transfer grids (row: a test digit's code; column: decoded
under c = 0..9). Prints a table, the machine and the settings; ``--out`` writes
JSON (atomically).

    .venv/bin/python benchmarks/invariant_vae_mnist.py [--seeds 0 1] [--steps 3000] \
        [--compression 1.0] [--figures reports/invariant_mnist] [--out results.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from numpyro.infer import TraceMeanField_ELBO
from sklearn.model_selection import train_test_split

from invppl._machine import machine_info, record_results
from invppl.datasets import load_mnist
from invppl.infer import fit
from invppl.metrics.adversary import ADVERSARY_MODELS, adversary_accuracy_split
from invppl.models import make_invariant_vae
from invppl.plots import image_grid, save_figure

METHODS = ("VAE", "cVAE", "invariant")


def one_run(seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fits the three methods on one split; returns a row per method (and draws figures)."""
    digits = load_mnist()
    images, labels = digits.images, digits.labels
    if args.max_examples < labels.size:  # the bundled digits come in class order: stratify
        images, _, labels, _ = train_test_split(
            images, labels, train_size=args.max_examples, random_state=seed, stratify=labels
        )
    x_train, x_test, c_train, c_test = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    shown = np.array([np.flatnonzero(c_test == digit)[0] for digit in range(10)])
    rows = []
    for method in METHODS:
        started = time.perf_counter()
        conditional = method != "VAE"
        ivae = make_invariant_vae(
            x_train.shape[1:],
            args.latent_dim,
            seed=seed,
            num_categories=10 if conditional else None,
            compression=args.compression if method == "invariant" else 0.0,
            kind="continuous_bernoulli",
            hidden=(args.hidden, args.hidden),
        )
        result = fit(
            ivae.model,
            ivae.guide,
            ivae.data(x_train, c_train if conditional else None),
            seed=seed,
            num_steps=args.steps,
            batch_size=args.batch_size,
            optimizer=optax.adam(args.learning_rate),
            loss=TraceMeanField_ELBO(),
            progress=False,
        )
        train_codes = np.asarray(ivae.encode(result.params, x_train)[0])
        test_codes = np.asarray(ivae.encode(result.params, x_test)[0])
        given = c_test if conditional else None
        reconstructions = np.asarray(ivae.decode(result.params, test_codes, given))
        adversary = adversary_accuracy_split(
            train_codes,
            c_train,
            test_codes,
            c_test,
            seed=seed,
            hidden=args.adversary_hidden,
            models=args.adversaries,
        )
        rows.append(
            {
                "seed": seed,
                "method": method,
                "digit_accuracy": adversary.best_accuracy,
                "digit_by_model": adversary.accuracy,
                "majority": adversary.majority_rate,
                "reconstruction_mse": float(np.mean((reconstructions - x_test) ** 2)),
                "train_loss": float(np.mean(result.losses[-min(200, args.steps) :])),
                "seconds": time.perf_counter() - started,
            }
        )
        if args.figures is not None:
            pairs = np.concatenate([x_test[shown], reconstructions[shown]])
            save_figure(
                image_grid(pairs, ncols=10, row_labels=["data", method]),
                args.figures / f"reconstructions_{method}_seed{seed}.png",
            )
            if conditional:  # each shown digit's code decoded under every c
                codes = np.repeat(test_codes[shown], 10, axis=0)
                transfer = np.asarray(ivae.decode(result.params, codes, np.tile(np.arange(10), 10)))
                save_figure(
                    image_grid(transfer, ncols=10, cell_size=0.8),
                    args.figures / f"style_transfer_{method}_seed{seed}.png",
                )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--compression", type=float, default=1.0, help="λ of 'invariant'")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--adversary-hidden", type=int, default=64)
    parser.add_argument(
        "--adversaries", nargs="+", choices=ADVERSARY_MODELS, default=list(ADVERSARY_MODELS)
    )
    parser.add_argument("--max-examples", type=int, default=5000)
    parser.add_argument("--figures", type=Path, help="folder for the PNG grids")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    print(f"{'seed':>4} {'method':>9} {'digit acc':>9} {'majority':>8} {'MSE':>7} {'s':>6}")
    rows = []
    for seed in args.seeds:
        for row in one_run(seed, args):
            rows.append(row)
            print(
                f"{seed:>4} {row['method']:>9} {row['digit_accuracy']:>9.3f} "
                f"{row['majority']:>8.3f} {row['reconstruction_mse']:>7.4f} "
                f"{row['seconds']:>6.1f}",
                flush=True,
            )
    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        summary[method] = {
            "digit_accuracy": float(np.mean([r["digit_accuracy"] for r in mine])),
            "majority": float(np.mean([r["majority"] for r in mine])),
            "reconstruction_mse": float(np.mean([r["reconstruction_mse"] for r in mine])),
            "seeds": len(mine),
        }
        s = summary[method]
        print(
            f"{method:>9}: digit from z {s['digit_accuracy']:.3f} (majority {s['majority']:.3f}),"
            f" reconstruction MSE {s['reconstruction_mse']:.4f}, {s['seeds']} seeds"
        )
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
