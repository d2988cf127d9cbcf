"""Flows on MNIST digits: held-out bits/dim of RealNVP, a Gaussian and VAEs, in one run.

On MNIST digits average-pooled 2×2 to 14×14 and rounded back to 8-bit
levels: by default the 5,000 bundled digits (``load_mnist()``), split once (a
fixed permutation) into ``--num-train`` training and ``--num-test`` test
digits; with ``--mnist-dir PATH`` (default: the environment variable
``INVPPL_MNIST_DIR``), full MNIST from its IDX files, ``--num-train`` digits of
the 60,000 of the train split and ``--num-test`` of the 10,000 of the t10k
split (each a fixed permutation's first; 0 for the whole split). Each seed fits

- a multi-scale RealNVP density (:func:`invppl.models.make_flow_density`) by
  maximum likelihood through ``fit``, each minibatch dequantised afresh;
- the maximum-likelihood Gaussian of the same pre-processed pixels, full and
  diagonal covariance (closed form);
- three VAEs (:func:`invppl.models.make_flow_vae`, a likelihood that is a
  density on the dequantised pixels: ``--likelihood``, continuous Bernoulli by
  default): Gaussian prior and guide, a RealNVP prior, and a conditional
  coupling-flow guide, for the same number of steps
  from the same encoder and decoder initialisation.

Every model is scored on the same dequantised test pixels (one uniform draw
per test pixel, key ``seed``): the density models by their exact log-density,
the VAEs by IWAE_K; all converted to bits/dim by
``−(log p(x̃) − D·log 256) / (D·log 2)`` (see :mod:`invppl.models.flow_density`).
Prints the machine, the settings, one line per seed and the mean ± sd over
seeds; ``--out`` writes JSON.

    .venv/bin/python benchmarks/flows_mnist.py [--seeds 0 1 2] [--steps 1000] [--out flows.json] \
        [--mnist-dir ~/data/mnist --num-train 0 --num-test 0]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from invppl._machine import machine_info, record_results
from invppl.datasets import train_test_mnist
from invppl.infer import fit, iwae_bound
from invppl.models.flow_density import (
    dequantize,
    evaluate_bits_per_dim,
    fit_gaussian_baseline,
    iwae_bits_per_dim,
    make_flow_density,
    pixel_levels,
)
from invppl.models.flow_vae import make_flow_vae

VAES: dict[str, tuple[Any, Any]] = {
    "vae": ("gaussian", "gaussian"),
    "vae_flow_prior": ("realnvp", "gaussian"),
    "vae_flow_guide": ("gaussian", "coupling"),
}
MODELS = ("flow", *VAES)
"""What ``--models`` may name; the Gaussians (closed form) are always fitted."""
DENSITIES = ("flow", "gaussian_full", "gaussian_diag")
COLUMNS = (*(f"{name}_bpd" for name in (*DENSITIES, *VAES)), *(f"{name}_iwae" for name in VAES))


def mnist_images(
    mnist_dir: str | os.PathLike[str] | None, num_train: int, num_test: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test digits ``(n, 28, 28, 1)`` in [0, 1], each a fixed permutation's first.

    ``mnist_dir`` None: the 5,000 bundled digits, split once. Else full MNIST's
    IDX files there: ``num_train`` of the train split, ``num_test`` of the t10k
    split (0 for a whole split).
    """
    train, test = train_test_mnist(mnist_dir, num_train, num_test, np.random.default_rng(0))
    return train.images, test.images


def digits(
    factor: int, num_train: int, num_test: int, mnist_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test 8-bit digits ``(n, 28/factor, 28/factor, 1)`` as floats k/255.

    The digits of :func:`mnist_images`, average-pooled by ``factor``.
    """
    if 28 % factor:
        raise ValueError(f"--pool must divide 28, got {factor}")
    size = 28 // factor
    pooled = []
    for images in mnist_images(mnist_dir, num_train, num_test):
        means = images.reshape(len(images), size, factor, size, factor, 1).mean((2, 4))
        pooled.append((np.round(means * 255) / 255).astype(np.float32))  # the 8-bit grid
    pixel_levels(pooled[0], "train")
    return pooled[0], pooled[1]


def _fit(built: Any, train: np.ndarray, seed: int, args: Any) -> Any:
    """Fits ``built.model``/``guide`` on dequantised minibatches, the same way for every arm."""
    return fit(
        built.model,
        built.guide,
        {"x": train},
        augment=built.augment,
        optimizer=optax.adam(args.lr),
        progress=False,
        seed=seed,
        num_steps=args.steps,
        batch_size=args.batch_size,
    )


def one_seed(seed: int, train: np.ndarray, test: np.ndarray, args: Any) -> dict[str, Any]:
    """Fits every model with ``seed``; returns the test bits/dim and IWAE bounds."""
    shape = (int(train.shape[1]), int(train.shape[2]), int(train.shape[3]))
    row: dict[str, Any] = {"seed": seed}
    if "flow" in args.models:
        row.update(_flow(seed, train, test, args))
    for covariance in ("full", "diagonal"):
        gaussian = fit_gaussian_baseline(train, seed=seed, covariance=covariance)
        row[f"gaussian_{covariance[:4]}_bpd"] = evaluate_bits_per_dim(gaussian, test, seed=seed)
    pixels = np.asarray(dequantize(test, jax.random.key(seed)))  # the same x̃ as the densities'
    for name, (prior, guide) in VAES.items():
        if name not in args.models:
            continue
        clock = time.perf_counter()
        vae = make_flow_vae(
            shape,
            args.latent_dim,
            seed=seed,
            prior=prior,
            guide=guide,
            hidden=args.hidden,
            likelihood=args.likelihood,
        )
        result = _fit(vae, train, seed, args)
        iwae = iwae_bound(
            vae.model, vae.guide, result.params, {"x": pixels}, seed=seed, num_samples=args.iwae
        )
        row[f"{name}_iwae"] = iwae
        row[f"{name}_bpd"] = iwae_bits_per_dim(iwae, shape, vae.likelihood)
        row[f"{name}_seconds"] = time.perf_counter() - clock
    return row


def _flow(seed: int, train: np.ndarray, test: np.ndarray, args: Any) -> dict[str, float]:
    """The RealNVP density fitted with ``seed``: its test bits/dim and seconds."""
    shape = (int(train.shape[1]), int(train.shape[2]), int(train.shape[3]))
    clock = time.perf_counter()
    density = make_flow_density(
        shape,
        seed=seed,
        num_scales=args.scales,
        couplings=args.couplings,
        width=args.width,
        blocks=args.blocks,
    )
    result = _fit(density, train, seed, args)
    bpd = evaluate_bits_per_dim(density.distribution(result.params), test, seed=seed)
    return {"flow_bpd": bpd, "flow_seconds": time.perf_counter() - clock}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per column, the mean and sample sd (ddof 1; 0 for one seed) over the rows."""
    summary = {}
    for column in (c for c in COLUMNS if c in rows[0]):
        values = np.array([row[column] for row in rows], dtype=np.float64)
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        summary[column] = {"mean": float(np.mean(values)), "sd": sd, "seeds": len(values)}
    return summary


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=1000, help="fit steps of every model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pool", type=int, default=2, help="average-pool factor (28 → 14)")
    parser.add_argument("--num-train", type=int, default=4000, help="0: all (IDX files only)")
    parser.add_argument("--num-test", type=int, default=1000, help="0: all (IDX files only)")
    parser.add_argument(
        "--mnist-dir",
        default=os.environ.get("INVPPL_MNIST_DIR") or None,
        help="a folder with the MNIST IDX files: train on the train split, test on t10k "
        "(default: $INVPPL_MNIST_DIR, else the 5,000 bundled digits)",
    )
    parser.add_argument("--scales", type=int, default=2, help="RealNVP scales")
    parser.add_argument("--couplings", type=int, default=2, help="RealNVP couplings per half-scale")
    parser.add_argument("--width", type=int, default=32, help="RealNVP ResNet width")
    parser.add_argument("--blocks", type=int, default=1, help="RealNVP residual blocks")
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64, help="VAE network width")
    parser.add_argument(
        "--likelihood",
        choices=("continuous_bernoulli", "logit_normal"),
        default="continuous_bernoulli",
    )
    parser.add_argument("--iwae", type=int, default=64, help="importance samples K")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    train, test = digits(args.pool, args.num_train, args.num_test, args.mnist_dir)
    source = "bundled digits" if args.mnist_dir is None else f"MNIST IDX files in {args.mnist_dir}"
    print(
        f"data: {len(train)} train, {len(test)} test digits of {train.shape[1:]} (8-bit), {source}"
    )
    rows = []
    for seed in args.seeds:
        row = one_seed(seed, train, test, args)
        rows.append(row)
        shown = ", ".join(f"{c} {row[c]:.3f}" for c in COLUMNS if c in row)
        print(f"seed {seed}: {shown}", flush=True)
    summary = summarise(rows)
    for column, entry in summary.items():
        print(f"{column}: {entry['mean']:.3f} ± {entry['sd']:.3f} ({entry['seeds']} seeds)")
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
