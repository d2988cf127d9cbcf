"""The ``invppl`` command line: ``demo``, ``fit``, ``evaluate``, ``diagnose`` and ``gallery``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from invppl.jobs import DATASETS, MODELS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invppl", description="Invariance-aware generative models in NumPyro."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="fit the SGM on rotated MNIST, compare VAE and AugVAE, write a report folder",
    )
    demo.add_argument("--out", default="reports/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument(
        "--small", action="store_true", help="tiny sizes, for a smoke test (seconds, not minutes)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    fit = commands.add_parser(
        "fit", help="fit a model into a run folder (config.json, checkpoints/, fit.json)"
    )
    fit.add_argument("--model", choices=MODELS, required=True)
    fit.add_argument("--data", choices=DATASETS, default="rotated-mnist")
    fit.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    fit.add_argument("--steps", type=int, default=1000)
    fit.add_argument("--batch-size", type=int, default=64)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--hidden", type=int, default=128, help="width of the networks")
    fit.add_argument("--latent-dim", type=int, default=16)
    fit.add_argument("--context-dim", type=int, default=16, help="size of the flows' context")
    fit.add_argument("--max-examples", type=int, default=100_000, help="cap on train + test")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a run folder of `invppl fit` (writes evaluation.json)"
    )
    evaluate.add_argument("run", help="the run folder")
    evaluate.add_argument("--iwae-samples", type=int, default=64)

    diagnose = commands.add_parser(
        "diagnose",
        help="check the eta posterior of an SGM run folder against NUTS, PSIS and SBC",
    )
    diagnose.add_argument("run", help="the run folder of `invppl fit --model sgm`")
    diagnose.add_argument("--out", help="report folder (default: RUN/diagnostics)")
    diagnose.add_argument("--examples", type=int, default=8, help="test examples to check")
    diagnose.add_argument("--chains", type=int, default=4, help="NUTS chains per example")
    diagnose.add_argument("--warmup", type=int, default=500, help="NUTS warm-up steps")
    diagnose.add_argument("--samples", type=int, default=500, help="NUTS draws per chain")
    diagnose.add_argument("--max-tree-depth", type=int, default=8)
    diagnose.add_argument("--guide-samples", type=int, default=1000)
    diagnose.add_argument("--sbc-simulations", type=int, default=200)

    gallery = commands.add_parser(
        "gallery", help="draw every transformation family on bundled data (PNGs + JSON)"
    )
    gallery.add_argument(
        "--out", default="reports/gallery", help="output folder (default: %(default)s)"
    )
    gallery.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from invppl.demo import DemoSettings, run_demo

        settings = DemoSettings.small() if args.small else DemoSettings.full()
        result = run_demo(args.out, seed=args.seed, settings=settings, progress=not args.quiet)
        print(json.dumps(result, indent=2))
        print("\n".join(result["summary"]))
        print(f"report written to {args.out}")
    elif args.command == "fit":
        from invppl.jobs import run_fit

        result = run_fit(
            args.out,
            model=args.model,
            dataset=args.data,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            hidden=args.hidden,
            latent_dim=args.latent_dim,
            context_dim=args.context_dim,
            max_examples=args.max_examples,
            progress=not args.quiet,
        )
        print(json.dumps(result, indent=2))
    elif args.command == "evaluate":
        from invppl.jobs import run_evaluate

        print(json.dumps(run_evaluate(args.run, iwae_samples=args.iwae_samples), indent=2))
    elif args.command == "diagnose":
        from invppl.jobs import run_diagnose

        digest = run_diagnose(
            args.run,
            out=args.out,
            examples=args.examples,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            max_tree_depth=args.max_tree_depth,
            guide_samples=args.guide_samples,
            sbc_simulations=args.sbc_simulations,
        )
        flagged = digest["untrusted_examples"]
        print(f"{digest['examples']} examples checked; untrusted: {flagged or 'none'}")
        print(f"report written to {args.out or args.run + '/diagnostics'}")
    elif args.command == "gallery":
        from invppl.gallery import run_gallery

        manifest = run_gallery(args.out, seed=args.seed)
        print(json.dumps(manifest, indent=2))
        print(f"pictures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
