"""The `orchestrator` command line: one entry point for single trials and sweeps.

Errors meant for users are one line on stderr and exit code 2 (bad input) or 1 (a failed run).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="run one trial (pre-training + clean/robust evaluation) without Ray",
        description="Run one trial: pre-train, then evaluate clean and PGD robust accuracy. "
        "Prints the final metrics.",
    )
    p.add_argument("--preset", default="demo", help="starting settings: demo (CPU minutes), paper, tiny "
                   "(default: demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set epsilon=4/255 --set epochs=0 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on the "
                   "last line of standard output")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="write a checkpoint here after every epoch (resumable with --resume)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from trainable.checkpoint import CheckpointError
    from trainable.config import ConfigError, parse_overrides, preset
    from trainable.data import DatasetError
    from trainable.loop import TrainingDiverged, train
    from trainable.reporting import CHECKPOINT_FILE

    try:
        config = preset(args.preset, **parse_overrides(args.overrides))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.resume and not args.checkpoint_dir:
        raise UsageError("--resume needs --checkpoint-dir DIR holding the checkpoint to continue from")
    resume_from = None
    if args.resume:
        resume_from = args.checkpoint_dir / CHECKPOINT_FILE
        if not resume_from.is_file():
            raise UsageError(f"--resume: no checkpoint at {resume_from}")

    def report(metrics: dict[str, float], write_checkpoint) -> None:
        if args.checkpoint_dir is not None:
            write_checkpoint(args.checkpoint_dir)
        shown = {k: round(v, 4) for k, v in metrics.items() if k in ("epoch", "train_loss", "clean_acc", "robust_acc")}
        print(f"epoch {int(metrics['epoch'])}/{config.epochs}: {shown}", file=sys.stderr)

    objective, adversary, views = config.resolved
    print(f"trial: method={config.method} ({objective}+{adversary}+{views}) dataset={config.dataset} "
          f"epochs={config.epochs} crops={config.num_crops} epsilon={config.epsilon:.4f}", file=sys.stderr)
    try:
        metrics = train(config, reporter=report, resume_from=resume_from, progress=not args.no_progress)
    except (DatasetError, CheckpointError) as exc:
        raise UsageError(str(exc)) from None
    except TrainingDiverged as exc:
        print(f"orchestrator train: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.4f}")
    if args.json:
        print(json.dumps({k: float(v) for k, v in metrics.items()}, allow_nan=True))
    return EXIT_OK


def _add_pending(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("args", nargs="*")
    p.set_defaults(func=lambda _a, _n=name: _not_yet(_n))


def _not_yet(name: str) -> int:
    raise UsageError(f"'orchestrator {name}' is not available yet in this version")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Sweeps over CF-AMC-SSL (adversarially robust multi-crop SSL) with Ray Tune + Optuna + MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    for name, text in (
        ("sweep", "run a sweep from a YAML spec"),
        ("resume", "continue an interrupted sweep"),
        ("validate", "check a sweep spec without running it"),
        ("report", "write the Pareto report of a sweep"),
        ("ui", "browse a sweep's MLflow store"),
    ):
        _add_pending(sub, name, text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"orchestrator {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"orchestrator {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
