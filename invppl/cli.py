"""The ``invppl`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invppl", description="Invariance-aware generative models in NumPyro."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="draw every transformation family on bundled data (writes PNGs + JSON)"
    )
    demo.add_argument("--out", default="reports/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from invppl.demo import run_transformations_demo

        manifest = run_transformations_demo(args.out, seed=args.seed)
        print(json.dumps(manifest, indent=2))
        print(f"pictures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
