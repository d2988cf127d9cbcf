"""AugVAE vs VAE: test IWAE bound on rotated MNIST at several training-set sizes.

For each training size n and seed, on the rotated bundled MNIST digits of
:func:`invppl.jobs.job_data` (digits 0, 1, 7 with known rotation laws): the
SGM is fitted in two stages on the n training images, then a VAE and an
AugVAE (the same VAE trained on SGM-resampled data) are fitted for the same
number of steps, from the same initialisation, and both are scored by the
importance-weighted bound IWAE_K on the same held-out images. Prints a table
(and ``--out`` writes JSON) with the machine, the seeds and the settings.
Likelihood: continuous Bernoulli (grey pixels in [0, 1]).

    .venv/bin/python benchmarks/augvae_vs_vae.py [--sizes 100 300 1000] [--seeds 0 1] \
        [--steps 1500] [--pose-steps 800] [--out results.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax

from invppl._machine import machine_info, record_results
from invppl.infer import fit, fit_two_stage, iwae_bound
from invppl.jobs import job_data
from invppl.models import make_augvae, make_two_stage_sgm, make_vae


def one_run(
    size: int,
    seed: int,
    *,
    steps: int,
    pose_steps: int,
    prior_steps: int,
    batch_size: int,
    hidden: int,
    latent_dim: int,
    iwae_samples: int,
    num_test: int,
) -> dict[str, Any]:
    """Fits the SGM, a VAE and an AugVAE on ``size`` images; returns their test bounds."""
    data = job_data("rotated-mnist", seed=seed, max_examples=100_000)
    x_train, x_test = data.x_train[:size], data.x_test[:num_test]
    shape = (int(x_train.shape[1]), int(x_train.shape[2]), int(x_train.shape[3]))
    batch = min(batch_size, size)
    started = time.perf_counter()
    sgm = make_two_stage_sgm(
        shape,
        ("rotation",),
        seed=seed,
        hidden=hidden,
        context_dim=16,
        blur_steps=max(pose_steps // 4, 1),
    )
    symmetry = fit_two_stage(
        sgm,
        {"x": x_train},
        seed=seed,
        pose_steps=pose_steps,
        prior_steps=prior_steps,
        batch_size=batch,
        progress=False,
    ).symmetry
    sgm_seconds = time.perf_counter() - started
    options: dict[str, Any] = {"seed": seed, "hidden": hidden, "kind": "continuous_bernoulli"}
    vae = make_vae(shape, latent_dim, **options)
    augvae = make_augvae(shape, latent_dim, symmetry, **options)
    row: dict[str, Any] = {"size": size, "seed": seed, "sgm_seconds": sgm_seconds}
    for name, model, guide, augment in (
        ("vae", vae.model, vae.guide, None),
        ("augvae", augvae.model, augvae.guide, augvae.augment),
    ):
        clock = time.perf_counter()
        result = fit(
            model,
            guide,
            {"x": x_train},
            seed=seed,
            num_steps=steps,
            batch_size=batch,
            optimizer=optax.adam(1e-3),
            augment=augment,
            progress=False,
        )
        row[f"{name}_test_iwae"] = iwae_bound(
            vae.model,
            vae.guide,
            result.params,
            {"x": x_test},
            seed=seed,
            num_samples=iwae_samples,
        )
        row[f"{name}_train_loss"] = float(np.mean(result.losses[-100:]))
        row[f"{name}_seconds"] = time.perf_counter() - clock
    row["augvae_minus_vae"] = row["augvae_test_iwae"] - row["vae_test_iwae"]
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1500, help="VAE and AugVAE steps")
    parser.add_argument("--pose-steps", type=int, default=800)
    parser.add_argument("--prior-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--iwae-samples", type=int, default=64)
    parser.add_argument("--num-test", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    print(f"{'n':>6} {'seed':>4} {'VAE IWAE':>10} {'AugVAE IWAE':>12} {'Aug - VAE':>10}")
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            row = one_run(
                size,
                seed,
                steps=args.steps,
                pose_steps=args.pose_steps,
                prior_steps=args.prior_steps,
                batch_size=args.batch_size,
                hidden=args.hidden,
                latent_dim=args.latent_dim,
                iwae_samples=args.iwae_samples,
                num_test=args.num_test,
            )
            rows.append(row)
            print(
                f"{size:>6} {seed:>4} {row['vae_test_iwae']:>10.2f} "
                f"{row['augvae_test_iwae']:>12.2f} {row['augvae_minus_vae']:>10.2f}",
                flush=True,
            )
    summary = {}
    for size in args.sizes:
        gains = [r["augvae_minus_vae"] for r in rows if r["size"] == size]
        summary[str(size)] = {"mean_gain_nats": float(np.mean(gains)), "seeds": len(gains)}
        print(f"n={size}: AugVAE - VAE = {np.mean(gains):.2f} nats (mean over {len(gains)} seeds)")
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
