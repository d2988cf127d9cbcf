"""The ``invppl`` command line: ``demo``, ``fit``, ``evaluate``, ``diagnose`` and ``gallery``.

A user's mistake (a bad argument, an unwritable ``--out``, a run folder of
another configuration, images outside the likelihood's support, ...) is
printed as one line, ``invppl <command>: error: ...``, with exit code 2, as
argparse does for its own errors; ``--traceback`` shows the whole traceback
instead. Anything else is a bug and keeps its traceback. A fit stopped by
SIGINT (Ctrl-C) or SIGTERM saves a checkpoint, says how to continue and exits
with 130 or 143 (128 + the signal's number).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import invppl
from invppl.jobs import DATASETS, MODELS

__all__ = ["USER_ERROR", "is_user_error", "main"]

USER_ERROR = 2
"""The exit code of a user's mistake (argparse's too)."""

_PACKAGE = Path(invppl.__file__).resolve().parent
_USER_ERRORS = (ValueError, TypeError, OSError)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=32)


def _add(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` shows every option's default."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help, formatter_class=_formatter
    )
    return parser


def _demo_and_gallery(commands: Any) -> None:
    demo = _add(
        commands, "demo", "fit the SGM on rotated MNIST, compare VAE and AugVAE, write a report"
    )
    demo.add_argument("--out", default="reports/demo", help="report folder")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument(
        "--small", action="store_true", help="tiny sizes, for a smoke test (seconds, not minutes)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    gallery = _add(
        commands, "gallery", "draw every transformation family on bundled data (PNGs + JSON)"
    )
    gallery.add_argument("--out", default="reports/gallery", help="output folder")
    gallery.add_argument("--seed", type=int, default=0, help="random seed")


def _fit(commands: Any) -> None:
    fit = _add(
        commands,
        "fit",
        "fit a model into a run folder (config.json, checkpoints/, fit.json); an existing "
        "folder is resumed, or extended by a larger --steps",
    )
    fit.add_argument("--model", choices=MODELS, required=True, help="the model to fit")
    fit.add_argument("--data", choices=DATASETS, default="rotated-mnist", help="the data set")
    fit.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    fit.add_argument("--steps", type=int, default=1000, help="optimiser steps in all")
    fit.add_argument("--batch-size", type=int, default=64, help="examples per step")
    fit.add_argument("--seed", type=int, default=0, help="random seed (data split, fit)")
    fit.add_argument("--hidden", type=int, default=128, help="width of the networks")
    fit.add_argument("--latent-dim", type=int, default=16, help="size of the latent code z")
    fit.add_argument("--context-dim", type=int, default=16, help="size of the flows' context")
    fit.add_argument("--max-examples", type=int, default=100_000, help="cap on train + test")
    fit.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (default: 500; also saved at the end and on "
        "Ctrl-C or SIGTERM)",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bars")


def _evaluate_and_diagnose(commands: Any) -> None:
    evaluate = _add(
        commands,
        "evaluate",
        "evaluate a run folder of `invppl fit` (writes evaluation.json): the test IWAE bound "
        "on log p(x), or the two-stage SGM's invariance and rotation laws",
    )
    evaluate.add_argument("run", help="the run folder")
    evaluate.add_argument(
        "--iwae-samples", type=int, default=64, help="importance samples per test image"
    )
    diagnose = _add(
        commands,
        "diagnose",
        "check the eta posterior of an SGM run folder against NUTS, PSIS and SBC",
    )
    diagnose.add_argument("run", help="the run folder of `invppl fit --model sgm`")
    diagnose.add_argument("--out", help="report folder (default: RUN/diagnostics)")
    diagnose.add_argument("--examples", type=int, default=8, help="test examples to check")
    diagnose.add_argument("--chains", type=int, default=4, help="NUTS chains per example")
    diagnose.add_argument("--warmup", type=int, default=500, help="NUTS warm-up steps")
    diagnose.add_argument("--samples", type=int, default=500, help="NUTS draws per chain")
    diagnose.add_argument("--max-tree-depth", type=int, default=8, help="NUTS tree depth cap")
    diagnose.add_argument("--guide-samples", type=int, default=1000, help="guide draws per example")
    diagnose.add_argument(
        "--sbc-simulations", type=int, default=200, help="simulations for calibration"
    )
    diagnose.add_argument("--quiet", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invppl",
        description="Invariance-aware generative models in NumPyro.",
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error, not just its one-line message",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo_and_gallery(commands)
    _fit(commands)
    _evaluate_and_diagnose(commands)
    return parser


def _demo(args: argparse.Namespace) -> None:
    from invppl._io import check_writable_folder
    from invppl.demo import DemoSettings, run_demo

    check_writable_folder(args.out, "--out")
    settings = DemoSettings.small() if args.small else DemoSettings.full()
    result = run_demo(args.out, seed=args.seed, settings=settings, progress=not args.quiet)
    print(json.dumps(result, indent=2))
    print("\n".join(result["summary"]))
    print(f"report written to {args.out}")


def _run_fit(args: argparse.Namespace) -> None:
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
        checkpoint_every=args.checkpoint_every,
    )
    print(json.dumps(result, indent=2))
    for name, fitted in result["fits"].items():
        print(f"{name}: {fitted['message']}; final loss {fitted['final_loss']:.4g}")
    print(f"final loss: {next(iter(result['fits'].values()))['final_loss_is']}")


def _evaluate(args: argparse.Namespace) -> None:
    from invppl.jobs import run_evaluate

    evaluation = run_evaluate(args.run, iwae_samples=args.iwae_samples)
    print(json.dumps(evaluation, indent=2))
    if "test_iwae_nats" in evaluation:
        print(
            f"test IWAE bound on log p(x): {evaluation['test_iwae_nats']:.2f} nats per image "
            f"(a lower bound on the log likelihood, higher is better), over "
            f"{evaluation['test_images']} test images with {evaluation['iwae_samples']} "
            "importance samples each"
        )
    print(f"written to {Path(args.run) / 'evaluation.json'}")


def _diagnose(args: argparse.Namespace) -> None:
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
        progress=not args.quiet,
    )
    flagged = digest["untrusted_examples"]
    print(f"{digest['examples']} examples checked; untrusted: {flagged or 'none'}")
    for example, reasons in digest.get("untrusted_why", {}).items():
        print(f"  example {example}: {reasons}")
    print(f"report written to {args.out or str(Path(args.run) / 'diagnostics')}")


def _gallery(args: argparse.Namespace) -> None:
    from invppl._io import check_writable_folder
    from invppl.gallery import run_gallery

    check_writable_folder(args.out, "--out")
    manifest = run_gallery(args.out, seed=args.seed)
    print(json.dumps(manifest, indent=2))
    print(f"pictures written to {args.out}")


_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "demo": _demo,
    "fit": _run_fit,
    "evaluate": _evaluate,
    "diagnose": _diagnose,
    "gallery": _gallery,
}


def _raised_by_invppl(traceback: TracebackType | None) -> bool:
    """Whether the innermost frame of ``traceback`` is invppl's own code (a deliberate raise)."""
    last = None
    while traceback is not None:
        last, traceback = traceback, traceback.tb_next
    if last is None:
        return False
    return Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is a user's mistake: a check of invppl's that refused its input.

    That is a ``ValueError``, ``TypeError`` or ``OSError`` raised by invppl's
    own code (its argument checks name the problem and what was expected);
    one raised inside a library invppl calls is a bug and keeps its traceback.
    """
    return isinstance(error, _USER_ERRORS) and _raised_by_invppl(error.__traceback__)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0, or 2 for a user's mistake)."""
    from invppl.infer import FitInterrupted

    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except FitInterrupted as interrupted:
        print(f"invppl {args.command}: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signal_number
    except KeyboardInterrupt:
        print(
            f"invppl {args.command}: interrupted before a fit's steps began; checkpoints "
            "written before it are kept",
            file=sys.stderr,
        )
        return 130
    except Exception as error:
        if args.traceback or not is_user_error(error):
            raise
        message = " ".join(str(error).split("\n")[0].split())  # one line, whatever JAX adds
        print(f"invppl {args.command}: error: {message}", file=sys.stderr)
        return USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
