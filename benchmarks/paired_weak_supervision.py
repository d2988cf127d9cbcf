"""Paired weak supervision: β-VAE vs Ada-GVAE vs Ada-ML-VAE vs the latent-map model.

On the paired shapes of :func:`invppl.datasets.make_paired_shapes` (square,
ellipse, heart; factors shape, scale, rotation, pos_x, pos_y), in each
setting (k = 1 or k uniform on 1 … f − 1 changed factors; exact or
approximate sharing; independent or correlated factors) and for each seed,
every method is fitted on the same training pairs for the same steps, from
the same initialisation seed, with the same β. Each is scored on held-out
images by every disentanglement metric of
:mod:`invppl.metrics.disentanglement` (BetaVAE, FactorVAE, MIG, DCI
disentanglement, SAP, modularity; codes are the encoder's means) and by the
fraction of held-out pairs whose not-shared latent units are exactly the
units of the changed factors (``moved_units_report``, units assigned to
factors by the DCI importance). For the β-VAE the units are found by the same
adaptive threshold on its posteriors, for the latent-map model by its own
rule. ``rotation_nmi`` is max_i I(code_i; rotation) / H(rotation), which the
circular variant (``--circular``: Ada-GVAE with one circular code pair) is
meant to raise. Prints a table of mean ± sd over seeds (and ``--out`` writes
JSON) with the machine, the seeds and the settings.

    .venv/bin/python benchmarks/paired_weak_supervision.py [--settings k1 krandom approx corr] \
        [--seeds 0 1 2] [--size 32] [--pairs 2000] [--steps 2000] [--out results.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax

from invppl._machine import machine_info, record_results
from invppl.datasets import make_paired_shapes, shapes_with_fixed_factor
from invppl.infer import fit
from invppl.metrics.disentanglement import (
    beta_vae_score,
    dci,
    factor_vae_score,
    modularity,
    mutual_information_gap,
    sap_score,
)
from invppl.models.paired_vae import (
    adaptive_shared,
    encoder_means,
    make_latent_map_vae,
    make_paired_vae,
    moved_units,
    moved_units_report,
    per_dimension_kl,
    readout_codes,
)

SETTINGS: dict[str, dict[str, Any]] = {
    "k1": {"k": 1, "mode": "exact"},
    "krandom": {"k": "uniform", "mode": "exact"},
    "approx": {"k": 1, "mode": "approximate"},
    "corr": {"k": 1, "mode": "correlated"},
}
METHODS = ("betavae", "adagvae", "admlvae", "latentmap", "adagvae_circular")
METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "shared_ok")


def build(method: str, shape: tuple[int, int, int], args: argparse.Namespace, seed: int) -> Any:
    """The method's model bundle: same networks, β and initialisation seed for all."""
    options: dict[str, Any] = {
        "seed": seed,
        "beta": args.beta,
        "hidden": args.hidden,
        "channels": tuple(args.channels),
        "kind": args.likelihood,
        "scale": args.noise,
    }
    if method == "latentmap":
        capacity = args.capacity if args.capacity == "adaptive" else int(args.capacity)
        return make_latent_map_vae(
            shape, args.latent_dim, capacity=capacity, gamma=args.gamma, **options
        )
    aggregation = {"betavae": "none", "adagvae": "gvae", "admlvae": "mlvae"}[
        method.removesuffix("_circular")
    ]
    circular = 1 if method.endswith("_circular") else 0
    return make_paired_vae(
        shape, args.latent_dim, aggregation=aggregation, num_circular=circular, **options
    )


def detected(bundle: Any, encode: Any, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """``(pairs, d')`` the units found not shared, over the read-out units (angles merged)."""
    loc1, sd1 = encode(x1)
    loc2, sd2 = encode(x2)
    kl = per_dimension_kl(loc1, sd1, loc2, sd2)
    if hasattr(bundle, "capacity"):
        moved = np.asarray(moved_units(kl, bundle.capacity))
    else:
        moved = ~np.asarray(adaptive_shared(kl))
    c = bundle.num_circular
    angles = moved[:, 0 : 2 * c : 2] | moved[:, 1 : 2 * c : 2]
    return np.concatenate([angles, moved[:, 2 * c :]], axis=1)


def evaluate(bundle: Any, params: Any, held_out: Any, args: argparse.Namespace, seed: int) -> dict:
    """Every metric of one fitted model on held-out pairs and groups."""
    space = held_out.space
    num_factors = len(space.names)
    encode = encoder_means(bundle, params)

    def codes(images: np.ndarray) -> np.ndarray:
        return readout_codes(encode(images)[0], bundle.num_circular)

    def sampler(draw_seed: int, factor: int, groups: int, group_size: int) -> np.ndarray:
        images = shapes_with_fixed_factor(
            groups, group_size, factor, seed=draw_seed, space=space, size=args.size, supersample=2
        ).images
        return codes(images.reshape(groups * group_size, *images.shape[2:])).reshape(
            groups, group_size, -1
        )

    z = codes(held_out.images1)
    labels = held_out.classes1
    counts = {"batch_size": args.metric_batch, "num_train": args.metric_train}
    result_dci = dci(z, labels, seed=seed, num_trees=args.trees)
    report = moved_units_report(
        detected(bundle, encode, held_out.images1, held_out.images2),
        held_out.changed,
        result_dci.importance,
    )
    mig = mutual_information_gap(z, labels)
    rotation = space.names.index("rotation")
    row = {
        "beta_vae": beta_vae_score(
            sampler, num_factors, seed=seed, num_eval=args.metric_train // 2, **counts
        ).eval_accuracy,
        "factor_vae": factor_vae_score(
            sampler,
            num_factors,
            seed=seed,
            num_eval=args.metric_train // 2,
            num_variance_estimate=args.metric_train,
            **counts,
        ).eval_accuracy,
        "mig": mig.score,
        "dci": result_dci.disentanglement,
        "sap": sap_score(z, labels, seed=seed).score,
        "modularity": modularity(z, labels).score,
        "shared_ok": report.fraction_exact,
        "moved_per_pair": float(report.num_moved.mean()),
        "changed_per_pair": float(report.num_changed.mean()),
        "rotation_nmi": float(mig.mutual_information[:, rotation].max() / mig.entropy[rotation]),
    }
    return row


def one_run(setting: str, method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fits one method on one setting's pairs for one seed; returns its scores."""
    options = {"size": args.size, "supersample": 2, **SETTINGS[setting]}
    train = make_paired_shapes(args.pairs, seed=seed, **options)
    held_out = make_paired_shapes(args.eval_pairs, seed=10_000 + seed, **options)
    shape = (args.size, args.size, 1)
    bundle = build(method, shape, args, seed)
    started = time.perf_counter()
    result = fit(
        bundle.model,
        bundle.guide,
        {"x1": train.images1, "x2": train.images2},
        seed=seed,
        num_steps=args.steps,
        batch_size=args.batch_size,
        optimizer=optax.adam(args.learning_rate),
        progress=False,
    )
    fit_seconds = time.perf_counter() - started
    row = {"setting": setting, "method": method, "seed": seed, "fit_seconds": fit_seconds}
    row.update(evaluate(bundle, result.params, held_out, args, seed))
    row["final_loss"] = float(np.mean(np.asarray(result.losses)[-50:]))
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd (ddof = 1) over seeds of every score, per setting and method."""
    summary: dict[str, Any] = {}
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["setting"] == setting):
            chosen = [r for r in rows if r["setting"] == setting and r["method"] == method]
            entry = {}
            for key in (*METRICS, "moved_per_pair", "changed_per_pair", "rotation_nmi"):
                values = np.array([r[key] for r in chosen])
                sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
                entry[key] = {"mean": float(values.mean()), "sd": sd}
            entry["seeds"] = [r["seed"] for r in chosen]
            summary[f"{setting}/{method}"] = entry
    return summary


def print_table(summary: dict[str, Any]) -> None:
    """One line per setting and method: mean ± sd of each score."""
    columns = (*METRICS, "moved_per_pair", "rotation_nmi")
    print("setting/method".ljust(26) + "".join(f"{c:>16}" for c in columns))
    for name, entry in summary.items():
        cells = "".join(f"{entry[c]['mean']:>9.3f} ± {entry[c]['sd']:<4.2f}" for c in columns)
        print(name.ljust(26) + cells)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS[:4]), choices=METHODS)
    parser.add_argument("--circular", action="store_true", help="add Ada-GVAE, circular code")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=32, help="image height and width")
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs")
    parser.add_argument("--eval-pairs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument(
        "--likelihood",
        default="normal",
        choices=["normal", "continuous_bernoulli"],
        help="pixel likelihood (the continuous Bernoulli collapsed every code at 16x16)",
    )
    parser.add_argument("--noise", type=float, default=0.1, help="pixel sd of the normal")
    parser.add_argument("--gamma", type=float, default=1.0, help="latent-map term weight")
    parser.add_argument("--capacity", default="adaptive", help="latent-map units: int or adaptive")
    parser.add_argument("--metric-train", type=int, default=500, help="BetaVAE/FactorVAE points")
    parser.add_argument("--metric-batch", type=int, default=32)
    parser.add_argument("--trees", type=int, default=50, help="DCI gradient-boosting trees")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    methods = [*args.methods, *(["adagvae_circular"] if args.circular else [])]
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}", flush=True)
    rows = []
    for setting in args.settings:
        for seed in args.seeds:
            for method in methods:
                row = one_run(setting, method, seed, args)
                rows.append(row)
                print(
                    f"{setting:>8} {method:>17} seed {seed}: "
                    + " ".join(f"{key} {row[key]:.3f}" for key in METRICS)
                    + f" ({row['fit_seconds']:.0f} s fit)",
                    flush=True,
                )
    summary = summarise(rows)
    print_table(summary)
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
