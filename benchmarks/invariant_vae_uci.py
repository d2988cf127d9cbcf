"""Invariant conditional VAE on UCI Adult and German credit: can an adversary recover c?

For each task (Adult with c = sex; German credit with c = sex and with
c = age > 25; y = the data set's target) and seed, three models are fitted by
:func:`invppl.infer.fit` on the training split (standardised features, Normal
likelihood, ``TraceMeanField_ELBO``), with the same networks, steps and seed:

- ``VAE``: no c, no compression (an unconstrained representation);
- ``cVAE``: decoder p(x | z, c), no compression (λ = 0);
- ``invariant λ=…``: decoder p(x | z, c) and the compression term, one model per
  weight λ in ``--compression``.

Every model also predicts y from z (p(y | z), weight α = ``--supervision``), so
that the code keeps what y needs.

Then adversaries (logistic regression and MLPs with 1–3 hidden layers,
:func:`invppl.metrics.adversary.adversary_accuracy_split`) are trained on the
frozen mean codes of (a subsample of) the training split and scored on the
test split, predicting c (lower is better: invariance) and y (higher is better:
the code stays useful), each beside the majority-class rate of the test split.
Prints a table, per-method means over the seeds, the machine and the settings;
``--out`` writes JSON (atomically). The sensitive columns are never among the
features (the loaders drop them).

    .venv/bin/python benchmarks/invariant_vae_uci.py [--tasks adult-sex german-sex german-age] \
        [--seeds 0 1 2] [--steps 3000] [--compression 5 20] [--out results.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from numpyro.infer import TraceMeanField_ELBO

from invppl._machine import machine_info, record_results
from invppl.datasets.uci import load_adult, load_german
from invppl.infer import fit
from invppl.metrics.adversary import ADVERSARY_MODELS, adversary_accuracy_split
from invppl.models import make_invariant_vae

UCI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uci"
TASKS = {"adult-sex": ("adult", "sex"), "german-sex": ("german", "sex"),
         "german-age": ("german", "age_over_25")}  # fmt: skip


def _subsample(size: int, limit: int, seed: int) -> np.ndarray:
    rows = np.arange(size)
    if size <= limit:
        return rows
    return np.sort(np.random.default_rng([seed, 3]).choice(rows, limit, replace=False))


def _methods(args: argparse.Namespace) -> list[tuple[str, float]]:
    """(name, λ) of each model to fit."""
    return [("VAE", 0.0), ("cVAE", 0.0)] + [
        (f"invariant λ={value:g}", value) for value in args.compression
    ]


def one_run(task: str, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fits the three methods on one task; returns a row per method."""
    dataset, attribute = TASKS[task]
    data = load_adult(args.data) if dataset == "adult" else load_german(args.data, seed=seed)
    train, test = data.train, data.test
    c_train, c_test = train.sensitive[attribute], test.sensitive[attribute]
    rows = []
    for method, compression in _methods(args):
        started = time.perf_counter()
        conditional = method != "VAE"
        ivae = make_invariant_vae(
            (train.x.shape[1],),
            args.latent_dim,
            seed=seed,
            num_categories=2 if conditional else None,
            compression=compression,
            beta=args.beta,
            num_classes=2 if args.supervision > 0 else None,
            supervision=max(args.supervision, 1e-12),
            hidden=(args.hidden, args.hidden),
        )
        labels = train.y if args.supervision > 0 else None
        arrays = ivae.data(train.x, c_train if conditional else None, labels)
        result = fit(
            ivae.model,
            ivae.guide,
            arrays,
            seed=seed,
            num_steps=args.steps,
            batch_size=min(args.batch_size, train.x.shape[0]),
            optimizer=optax.adam(args.learning_rate),
            loss=TraceMeanField_ELBO(),
            progress=False,
        )
        fit_seconds = time.perf_counter() - started
        pick_train = _subsample(train.x.shape[0], args.adversary_train, seed)
        pick_test = _subsample(test.x.shape[0], args.adversary_test, seed + 1)
        codes_train = np.asarray(ivae.encode(result.params, train.x[pick_train])[0])
        codes_test = np.asarray(ivae.encode(result.params, test.x[pick_test])[0])
        scores = {}
        for target, (train_target, test_target) in {
            "c": (c_train, c_test),
            "y": (train.y, test.y),
        }.items():
            scores[target] = adversary_accuracy_split(
                codes_train,
                train_target[pick_train],
                codes_test,
                test_target[pick_test],
                seed=seed,
                hidden=args.adversary_hidden,
                models=args.adversaries,
            )
        rows.append(
            {
                "task": task,
                "seed": seed,
                "method": method,
                "c_accuracy": scores["c"].best_accuracy,
                "c_majority": scores["c"].majority_rate,
                "c_by_model": scores["c"].accuracy,
                "y_accuracy": scores["y"].best_accuracy,
                "y_majority": scores["y"].majority_rate,
                "y_by_model": scores["y"].accuracy,
                "train_loss": float(np.mean(result.losses[-min(200, args.steps) :])),
                "fit_seconds": fit_seconds,
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument(
        "--compression", type=float, nargs="+", default=[5.0, 20.0], help="λ of 'invariant'"
    )
    parser.add_argument(
        "--supervision", type=float, default=20.0, help="α of p(y | z) (0: unsupervised)"
    )
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--adversary-train", type=int, default=5000, help="training codes")
    parser.add_argument("--adversary-test", type=int, default=5000, help="test codes")
    parser.add_argument("--adversary-hidden", type=int, default=64)
    parser.add_argument(
        "--adversaries", nargs="+", choices=ADVERSARY_MODELS, default=list(ADVERSARY_MODELS)
    )
    parser.add_argument("--data", type=Path, default=UCI, help="folder of the UCI files")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    print(
        f"{'task':>10} {'seed':>4} {'method':>15} {'c acc':>6} {'c maj':>6} {'y acc':>6} "
        f"{'y maj':>6} {'s':>6}"
    )
    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            for row in one_run(task, seed, args):
                rows.append(row)
                print(
                    f"{task:>10} {seed:>4} {row['method']:>15} {row['c_accuracy']:>6.3f} "
                    f"{row['c_majority']:>6.3f} {row['y_accuracy']:>6.3f} "
                    f"{row['y_majority']:>6.3f} {row['seconds']:>6.1f}",
                    flush=True,
                )
    summary: dict[str, dict[str, Any]] = {}
    for task in args.tasks:
        summary[task] = {}
        for method, _ in _methods(args):
            mine = [r for r in rows if r["task"] == task and r["method"] == method]
            entry = {
                key: float(np.mean([r[key] for r in mine]))
                for key in ("c_accuracy", "c_majority", "y_accuracy", "y_majority")
            }
            entry["seeds"] = len(mine)
            summary[task][method] = entry
            print(
                f"{task:>10} {method:>15}: c {entry['c_accuracy']:.3f} (majority "
                f"{entry['c_majority']:.3f}), y {entry['y_accuracy']:.3f} (majority "
                f"{entry['y_majority']:.3f}), {len(mine)} seeds"
            )
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
