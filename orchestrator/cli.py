"""The `orchestrator` command line: one entry point for single trials and sweeps.

Every command raises `orchestrator.layout.CommandError` for what it reports to the user; `main` is
the one place that turns it into one line on stderr and its exit code (`UserError`: 2, bad input;
`RunFailed`: 1, what ran failed; Ctrl-C: 130). Heavy imports (torch, Ray, MLflow) happen inside the
commands, so ``--help`` and bad arguments answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .layout import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    SPEC_COPY,
    STATE_FILE,
    CommandError,
    SweepState,
    UserError,
    bound_mlflow_http_retries,
    one_line,
)

if TYPE_CHECKING:
    from .sweep import SweepOptions


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
    p.add_argument("--audit", action="store_true",
                   help="after training, run the masking audit on the final encoder (epsilon ladder, the "
                   "autoattack_suite attack and Square against PGD; --set autoattack_suite=cheap on a CPU)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from trainable.config import parse_overrides, preset
    from trainable.data import data_problem
    from trainable.loop import train
    from trainable.reporting import CHECKPOINT_FILE

    config = preset(args.preset, **parse_overrides(args.overrides))
    problem = data_problem(config.dataset, config.data_dir)  # before anything is printed or built
    if problem:
        raise UserError(problem)
    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if args.resume and not args.checkpoint_dir:
        raise UserError("--resume needs --checkpoint-dir DIR holding the checkpoint to continue from")
    resume_from = None
    if args.resume:
        resume_from = args.checkpoint_dir / CHECKPOINT_FILE
        if not resume_from.is_file():
            raise UserError(f"--resume: no checkpoint at {resume_from}")

    audit_dir = None
    if args.audit:
        from trainable.robustness import require_autoattack

        require_autoattack()
        audit_dir = args.checkpoint_dir or Path(tempfile.mkdtemp(prefix="audit-"))

    def report(metrics: dict[str, float], write_checkpoint) -> None:
        if args.checkpoint_dir is not None:
            write_checkpoint(args.checkpoint_dir)
        elif audit_dir is not None and int(metrics["epoch"]) >= config.epochs:
            write_checkpoint(audit_dir)
        shown = {k: round(v, 4) for k, v in metrics.items() if k in ("epoch", "train_loss", "clean_acc", "robust_acc")}
        print(f"epoch {int(metrics['epoch'])}/{config.epochs}: {shown}", file=sys.stderr)

    objective, adversary, views = config.resolved
    print(f"trial: method={config.method} ({objective}+{adversary}+{views}) profile={config.profile} "
          f"dataset={config.dataset} "
          f"epochs={config.epochs} crops={config.num_crops} epsilon={config.epsilon:.4f}", file=sys.stderr)
    metrics = train(config, reporter=report, resume_from=resume_from, progress=not args.no_progress)
    if audit_dir is not None:
        from trainable.audit import audit_trial, load_trial

        print("masking audit of the final encoder ...", file=sys.stderr)
        result = audit_trial(load_trial(audit_dir / CHECKPOINT_FILE))
        for line in result.lines():
            print(line)
        metrics.update(result.metrics())
        if args.checkpoint_dir is None:
            shutil.rmtree(audit_dir, ignore_errors=True)
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.4f}")
    if args.json:
        print(json.dumps({k: float(v) for k, v in metrics.items()}, allow_nan=True))
    return EXIT_OK


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, metavar="SPEC.yaml", help="the sweep spec (see search_spaces/ for examples)")
    p.add_argument("--preset", default=None, help="start from this preset instead of the spec's `preset` "
                   "(tiny, demo, paper)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base trial setting for every trial, e.g. --set epochs=2 --set "
                   "data_dir=/data/cifar (repeatable; applied on top of the spec's `base`)")


def _add_where_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="join an existing Ray cluster: 'auto' (on a node of a cluster started with `ray start`) "
                   "or 'ray://HOST:10001'; default: start a local Ray instance for this command")
    p.add_argument("--num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray instance (default: all of this machine's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live progress table (the summary is still printed)")
    p.add_argument("--verify", default=None, metavar="SUITE",
                   help="at the end, re-verify the Pareto front with this AutoAttack suite + Square + the masking "
                   "audit instead of the spec's verify.suite (default cheap: APGD-CE + APGD-T): standard, cheap, "
                   "apgd-ce, apgd-ce+square, square, or none")


BUDGET_ARGS = (("trials", "--trials", "N"), ("concurrency", "--concurrency", "N"),
               ("time_limit", "--time-limit", "DURATION"))


def _add_budget_args(p: argparse.ArgumentParser, hidden: bool = False) -> None:
    """--trials, --concurrency, --time-limit; `hidden` (resume): accepted only to be refused in one line."""
    helps = {"trials": "run N trials instead of the spec's budget.trials",
             "concurrency": "run N trials at a time instead of the spec's budget.concurrency",
             "time_limit": "end the sweep after DURATION (seconds or 90s/30m/2h) instead of the spec's "
                           "budget.time_limit"}
    for key, flag, metavar in BUDGET_ARGS:
        p.add_argument(flag, dest=key, default=None, metavar=metavar, help=argparse.SUPPRESS if hidden else helps[key])


def _budget(args: argparse.Namespace) -> dict[str, str]:
    """The budget flags given on the command line (key of the spec's budget -> text)."""
    return {key: getattr(args, key) for key, _, _ in BUDGET_ARGS if getattr(args, key, None) is not None}


def _refuse_on_resume(args: argparse.Namespace) -> None:
    """`resume` continues with the stored budget and study: the flags that would change them are refused."""
    given = [flag for key, flag, _ in BUDGET_ARGS if getattr(args, key, None) is not None]
    if getattr(args, "warm_start", None) is not None:
        given.append("--warm-start")
    if given:
        raise UserError(f"{', '.join(given)}: resume continues with the budget and study the sweep started with; "
                        f"drop {'it' if len(given) == 1 else 'them'} (start a new sweep to change them)")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a sweep from a YAML spec",
        description="Run a multi-objective sweep: Ray Tune runs the trials (checkpointed, retried on failure), "
        "Optuna proposes them (study in SQLite in the sweep directory or --study-storage), MLflow tracks them. Prints the sweep "
        "directory, a live progress table, a summary and the verdict of `orchestrator check`. Exit code: 0 all "
        "trials finished, 1 some failed or timed out or the records disagree, 2 bad input, 130 interrupted "
        "(continue with `orchestrator resume DIR`).")
    _add_spec_args(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the sweep directory (default: runs/<name>-<timestamp>/); must not exist or be empty")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out DIR instead of starting one "
                   "(same as `orchestrator resume DIR`)")
    _add_budget_args(p)
    p.add_argument("--warm-start", type=Path, default=None, metavar="DIR",
                   help="start the Optuna study with the finished trials of the earlier sweep in DIR (its space must "
                   "match this spec's; refused in one line naming the parameter that differs)")
    _add_where_args(p)
    p.add_argument("--storage", default=None, metavar="PATH_OR_URI",
                   help="where Ray Tune keeps trial directories and checkpoints: a path every node can reach "
                   "(NFS) or a URI pyarrow understands (s3://bucket/sweeps); default: <sweep dir>/tune")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLflow tracking server, e.g. http://mlflow.example:5000 (default: SQLite in the sweep "
                   "directory)")
    p.add_argument("--study-storage", default=None, metavar="URL",
                   help="the Optuna study: sqlite:///FILE, postgresql://USER@HOST:5432/DB, mysql://USER@HOST/DB or "
                   "journal:///FILE (a journal file, safe on NFS); default: the spec's execution.study_storage, "
                   "else SQLite in the sweep directory. The password is never stored: give it in "
                   "CFAMC_STUDY_PASSWORD (or PGPASSWORD / ~/.pgpass) to resume and report")
    p.set_defaults(func=cmd_sweep)


def _add_resume(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume", help="continue an interrupted sweep",
        description="Continue a sweep interrupted by Ctrl-C, a killed driver or a lost node: finished trials are "
        "kept, unfinished ones continue from their last checkpoint, the Optuna study keeps its history, and "
        "the remaining trials of the budget are run. Same exit codes as `sweep`.")
    p.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the directory `orchestrator sweep` printed")
    p.add_argument("--no-retry-failed", action="store_true",
                   help="leave failed trials failed (default: retry them from their last checkpoint; trials that "
                   "failed deterministically, e.g. a diverged loss, fail again at once)")
    _add_budget_args(p, hidden=True)
    p.add_argument("--warm-start", type=Path, default=None, help=argparse.SUPPRESS)
    _add_where_args(p)
    p.set_defaults(func=cmd_resume)


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="check that a sweep's four records agree",
        description="Read Ray Tune's experiment, the Optuna study, trials.parquet/history.parquet and the MLflow "
        "runs of a sweep and list every trial whose status or final metrics disagree between them, and every "
        "trial missing from one. Exit code 0 only when they all agree, 1 otherwise.")
    p.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from .integrity import check_sweep
    from .layout import RunFailed

    verdict = check_sweep(args.sweep_dir)
    if not verdict.ok:
        print(verdict.summary())
        raise RunFailed(f"{args.sweep_dir}: {len(verdict.problems)} disagreement(s) among the sweep's records")
    print(verdict.summary())
    return EXIT_OK


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate", help="check a sweep spec without running it",
        description="Check a sweep spec: keys, types, ranges, metric names, sampler, and that the preset + base "
        "+ every bound/choice make valid trials. Prints a summary; errors are one line naming the file and "
        "key (exit code 2).")
    _add_spec_args(p)
    p.set_defaults(func=cmd_validate)


def _add_ui(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui", help="browse a sweep's MLflow store",
        description="Start the MLflow UI (mlflow server, one worker) on this sweep's tracking store and print "
        "its URL; Ctrl-C stops it. Listens on 127.0.0.1 only unless --host says otherwise.")
    p.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the UI, "
                   "which has no authentication, to the network)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.set_defaults(func=cmd_ui)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write the Pareto report of a sweep (tables, plots, report.md)",
        description="Write <SWEEP_DIR>/report/: the Pareto front (pareto.csv/.parquet), plots (PNG and "
        "interactive HTML), hypervolume and report.md; logs them on the sweep's MLflow parent run.",
    )
    p.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the sweep directory")
    p.add_argument("--objectives", default=None,
                   help="comma-separated metric:mode pairs, e.g. clean_acc:max,robust_acc@4/255:max "
                   "(default: the spec's objectives)")
    p.add_argument("--format", default="md", choices=("md", "html"), help="report format (default: md)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report on the MLflow parent run")
    p.add_argument("--verify", action="store_true",
                   help="first re-evaluate every Pareto trial from its final checkpoint with the strong attack and "
                   "the masking audit (writes verified.parquet); the report then shows both fronts")
    p.add_argument("--verify-suite", default="standard", metavar="SUITE",
                   help="AutoAttack suite of --verify: standard (default), cheap, apgd-ce, apgd-ce+square")
    p.add_argument("--square-queries", type=int, default=None, metavar="N",
                   help="Square's query budget in --verify (default: the trials' square_queries, 5000)")
    p.add_argument("--verify-images", type=int, default=0, metavar="N",
                   help="--verify attacks the first N test images of each trial (default 0: all of them)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report; print its summary (and the paper comparison of a ``paper_table`` sweep)."""
    from analysis.report import write_report

    if args.verify:
        from .verify import verify_front

        if args.verify_images < 0:
            raise UserError(f"--verify-images: expected a count >= 0 (0: all test images), got {args.verify_images}")
        print(f"verifying the Pareto front ({args.verify_suite} AutoAttack + Square + masking audit) ...",
              file=sys.stderr)
        verify_front(args.sweep_dir, args.verify_suite, args.square_queries, args.objectives or None,
                     args.verify_images)
    path = write_report(args.sweep_dir, args.objectives or None, args.format, log_to_mlflow=not args.no_mlflow)
    summary = path.parent / "summary.txt"
    print(summary.read_text() if summary.is_file() else "", end="")
    print(f"report: {path}")
    return EXIT_OK


def _options(args: argparse.Namespace) -> "SweepOptions":
    from .sweep import SweepOptions

    return SweepOptions(out=getattr(args, "out", None), address=args.address,
                        storage=getattr(args, "storage", None), tracking_uri=getattr(args, "tracking_uri", None),
                        study_storage=getattr(args, "study_storage", None),
                        num_cpus=args.num_cpus, verbose=0 if args.quiet else 1,
                        verify=_verify_suite(args.verify))


def _verify_suite(value: str | None) -> str | None:
    """--verify's value, checked: an AutoAttack suite, "none", or None (the spec's)."""
    from trainable.config import AUTOATTACK_SUITES

    if value is not None and value != "none" and value not in AUTOATTACK_SUITES:
        raise UserError(f"--verify: unknown suite {value!r}; allowed: {', '.join(AUTOATTACK_SUITES)}, none")
    return value


def cmd_validate(args: argparse.Namespace) -> int:
    from trainable.config import parse_overrides

    from .spec import load_spec, training_rows

    spec = load_spec(args.spec, args.preset, parse_overrides(args.overrides))
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives)
    params = [f"  {p.name}: {p.describe()}" for p in spec.space.params]
    print(f"{args.spec}: OK - sweep {spec.name!r}, preset {spec.preset}, {spec.trials} trials, "
          f"{spec.concurrency} at a time, sampler {spec.sampler}"
          f"{', ' + spec.scheduler.describe() if spec.scheduler else ''}")
    print(f"  objectives: {objectives}")
    print("\n".join(params))
    for p in spec.space.params:
        for group, given in p.resources.items():
            print(f"  {p.name}={group} asks for " + ", ".join(f"{v:g} {k}" for k, v in given.items()))
    if spec.enqueue:
        print(f"  enqueued first: {'; '.join(_point_text(point) for point in spec.enqueue)}")
    if spec.constraints:
        print(f"  constraints: {'; '.join(str(c) for c in spec.constraints)}")
    print("  trains:")
    print("\n".join(f"    {line}" for line in training_rows(spec)))
    return EXIT_OK


def _point_text(point: dict) -> str:
    """An enqueued point as `validate` lists it: ``replay_steps=3, alpha=0.007843``."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.resume:
        _refuse_on_resume(args)
        if args.out is None:
            raise UserError("--resume needs --out DIR naming the sweep to continue")
        if args.storage or args.tracking_uri or args.study_storage or args.overrides or args.preset:
            raise UserError("--resume continues with the sweep's stored settings; drop --storage, "
                            "--tracking-uri, --study-storage, --set and --preset")
        stored = args.out / SPEC_COPY
        if stored.is_file() and args.spec.is_file() and stored.read_text() != args.spec.read_text():
            raise UserError(f"{args.spec} differs from the spec the sweep started with ({stored}); "
                            f"use `orchestrator resume {args.out}`")
        from .sweep import resume_sweep

        options = _options(args)
        options.out = None
        return resume_sweep(args.out, options)
    from .sweep import start_sweep

    return start_sweep(args.spec, args.preset, args.overrides, _options(args), _budget(args), args.warm_start)


def cmd_resume(args: argparse.Namespace) -> int:
    from .sweep import resume_sweep

    _refuse_on_resume(args)
    return resume_sweep(args.sweep_dir, _options(args), retry_failed=not args.no_retry_failed)


def cmd_ui(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from .layout import ARTIFACTS_DIR, sqlite_file

    sweep_dir = args.sweep_dir.resolve()
    state = SweepState.load(sweep_dir)
    uri = state.tracking(sweep_dir)
    if sqlite_file(uri) is None:
        print(f"this sweep is tracked at {uri} (experiment id {state.mlflow_experiment_id}, parent run "
              f"{state.parent_run_id}); open that server's UI")
        return EXIT_OK
    loopback = _is_loopback(args.host)
    if not loopback:
        print(f"warning: --host {args.host}: the MLflow UI has no authentication; anyone who can reach this "
              f"machine on port {args.port} can read and change this sweep's runs", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", str(sweep_dir / ARTIFACTS_DIR), "--host", args.host,
           "--port", str(args.port), "--workers", "1"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host}:{args.port}/#/experiments/{state.mlflow_experiment_id}/runs/{state.parent_run_id}"
    proc = subprocess.Popen(cmd, env=env)
    where = f"listening on {args.host} only (this machine; --host to change)" if loopback else \
        f"listening on {args.host}, no authentication"
    print(f"MLflow UI for {sweep_dir} ({STATE_FILE}: run {state.parent_run_id}): {url}  ({where}; Ctrl-C stops it)",
          flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        return EXIT_OK


def _is_loopback(host: str) -> bool:
    """True for 'localhost', 127.0.0.0/8 and ::1: addresses only this machine can reach."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Sweeps over CF-AMC-SSL (adversarially robust multi-crop SSL) with Ray Tune + Optuna + MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sweep(sub)
    _add_resume(sub)
    _add_check(sub)
    _add_validate(sub)
    _add_train(sub)
    _add_ui(sub)
    _add_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    bound_mlflow_http_retries()  # a tracking server that is down must not stall the sweep's driver for minutes
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # a request MLflow gave up on is reported once, not once per retry
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except CommandError as exc:  # every error meant for the user: one line, its exit code
        print(f"orchestrator {args.command}: {exc.label}: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"orchestrator {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
