"""Correlated VAEs on synthetic tree data: held-out link prediction (NCRR) and clustering.

For each seed: :func:`invppl.datasets.make_tree_data` draws a random
recursive tree of n nodes with latents z_i = τ z_parent + √(1 − τ²) ε and
binary observations x_i = Bernoulli(sigmoid(MLP(z_i))); a fraction of the
edges is held out (the rest, a forest, is the training graph). CVAE_corr,
CVAE_ind and a VAE with an independent prior are fitted by
:func:`invppl.infer.fit` (``TraceMeanField_ELBO``: closed-form KLs) for the
same number of steps from the same seed, and scored on

- held-out link prediction: candidates ranked by the guide's expected squared
  distance E‖z_i − z_j‖² (with CVAE_corr's learned correlation), scored by NCRR
  (:func:`invppl.metrics.link_prediction_ncrr`; 1 = perfect), beside the
  exact NCRR of a random ranking;
- spectral clustering of the codes' means against the data's two classes
  (:func:`invppl.metrics.spectral_clustering_accuracy`).

Prints a table and per-method means ± standard deviations over the seeds, the
machine and the settings; ``--out`` writes JSON (atomically).

    .venv/bin/python benchmarks/cvae_tree.py [--nodes 1000] [--seeds 0 1 2] [--steps 3000] \
        [--out results.json]
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
from invppl.datasets import make_tree_data
from invppl.infer import GraphBatches, fit
from invppl.metrics import (
    expected_distance_rows,
    link_prediction_ncrr,
    spectral_clustering_accuracy,
)
from invppl.models.correlated_vae import correlation_rows, encode_codes, make_correlated_vae

METHODS = ("corr", "ind", "vae")
NAMES = {"corr": "CVAE_corr", "ind": "CVAE_ind", "vae": "VAE"}


def split_edges(edges: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) edges: a random ``fraction`` of ``edges`` held out."""
    order = np.random.default_rng([seed, 7]).permutation(edges.shape[0])
    num_test = max(1, round(fraction * edges.shape[0]))
    return edges[order[num_test:]], edges[order[:num_test]]


def one_run(seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fits the three methods on one tree; returns a row per method."""
    data = make_tree_data(
        args.nodes,
        seed=seed,
        tau=args.tau,
        latent_dim=args.latent_dim,
        observed_dim=args.observed_dim,
    )
    train, test = split_edges(data.edges, args.test_fraction, seed)
    rows = []
    for method in METHODS:
        started = time.perf_counter()
        cvae = make_correlated_vae(
            args.observed_dim,
            args.latent_dim,
            variant=method,
            seed=seed,
            tau=args.tau,
            hidden=(args.hidden,),
            correlation_hidden=(args.hidden,),
        )
        batches = None
        if method != "vae":
            batches = GraphBatches(
                train,
                args.nodes,
                edges_per_step=args.batch_size,
                non_edges_per_step=args.batch_size if method == "corr" else 0,
                non_edge_weight=args.non_edge_weight,
            )
        result = fit(
            cvae.model,
            cvae.guide,
            {"x": data.x},
            seed=seed,
            num_steps=args.steps,
            batch_size=args.batch_size,
            optimizer=optax.adam(args.learning_rate),
            loss=TraceMeanField_ELBO(),
            extend_batch=batches,
            progress=False,
        )
        loc, scale = encode_codes(cvae, result.params, data.x)
        distances = expected_distance_rows(
            loc, scale, correlation_rows(cvae, result.params, data.x)
        )
        ncrr = link_prediction_ncrr(distances, train, test, args.nodes)
        accuracy = spectral_clustering_accuracy(np.asarray(loc), data.labels, seed=seed)
        rows.append(
            {
                "seed": seed,
                "method": NAMES[method],
                "test_ncrr": ncrr.score,
                "random_ncrr": ncrr.random_baseline,
                "cluster_accuracy": accuracy,
                "train_loss": float(np.mean(result.losses[-min(200, args.steps) :])),
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128, help="nodes, edges, non-edges")
    parser.add_argument("--tau", type=float, default=0.8, help="the data's and the prior's τ")
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--observed-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--non-edge-weight", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(args)}")
    print(f"{'seed':>4} {'method':>10} {'NCRR':>7} {'random':>7} {'cluster acc':>11} {'s':>6}")
    rows = []
    for seed in args.seeds:
        for row in one_run(seed, args):
            rows.append(row)
            print(
                f"{row['seed']:>4} {row['method']:>10} {row['test_ncrr']:>7.4f} "
                f"{row['random_ncrr']:>7.4f} {row['cluster_accuracy']:>11.3f} "
                f"{row['seconds']:>6.1f}",
                flush=True,
            )
    summary = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == NAMES[method]]
        ncrr = np.array([r["test_ncrr"] for r in mine])
        accuracy = np.array([r["cluster_accuracy"] for r in mine])
        summary[NAMES[method]] = {
            "test_ncrr_mean": float(ncrr.mean()),
            "test_ncrr_sd": float(ncrr.std(ddof=1)) if ncrr.size > 1 else 0.0,
            "cluster_accuracy_mean": float(accuracy.mean()),
            "cluster_accuracy_sd": float(accuracy.std(ddof=1)) if accuracy.size > 1 else 0.0,
            "seeds": len(mine),
        }
        s = summary[NAMES[method]]
        print(
            f"{NAMES[method]:>10}: NCRR {s['test_ncrr_mean']:.4f} ± {s['test_ncrr_sd']:.4f}, "
            f"cluster accuracy {s['cluster_accuracy_mean']:.3f} ± "
            f"{s['cluster_accuracy_sd']:.3f} ({s['seeds']} seeds)"
        )
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
