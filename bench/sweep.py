"""Sweep efficiency (BENCHMARKS.md item 4): a Ray sweep at concurrency 2 vs the same trials one after another.

N tiny CF-AMC-SSL trials (tiny preset; a grid over ``seed`` so both sides run exactly the same N
trial configs, each with threads=1 as the sweep sets for ``resources: {cpu: 1}``):

- parallel: the real ``orchestrator sweep`` (``orchestrator.cli.main``) on a generated spec in a temp
  dir, ``--num-cpus 2``, run in a fresh process by this module's ``--driver`` mode, which only wraps
  timers around the phases (imports, ``ray.init``, ``Tuner.fit``, MLflow callbacks, results and
  report, shutdown) and prints them as JSON;
- serial: ``trainable.loop.train`` for each config in this one process (torch imported once).

parallel efficiency = serial / (2 * parallel) (end to end, and of ``Tuner.fit`` alone); per-trial
orchestration overhead = (2 * fit - serial) / N: core-seconds per trial beyond the trial's own work.
Its parts are measured directly: a fresh worker's imports, a checkpoint write, MLflow logging per
trial, and Tune's in-worker time per trial (``time_total_s``) against the serial ``train`` time.
The sweep runs with ``execution.reuse_actors: true`` (the default: one worker process per slot, reused
across trials); by default a second parallel run has ``reuse_actors=False`` (a fresh process per trial,
the behaviour before that default) to show what the per-trial process start costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import header, median, parser, table

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH-SWEEP-TIMINGS "


def spec_text(trials: int, epochs: int, extra: dict | None = None) -> str:
    base = {"method": "cf-amc-ssl", "epochs": epochs, **(extra or {})}
    seeds = ", ".join(str(s) for s in range(trials))
    base_text = ", ".join(f"{k}: {v}" for k, v in base.items())
    return (f"name: bench-sweep\npreset: tiny\nobjectives:\n  - {{metric: clean_acc, mode: max}}\n"
            f"  - {{metric: robust_acc, mode: max}}\nbudget: {{trials: {trials}, concurrency: 2}}\n"
            f"sampler: grid\nresources: {{cpu: 1}}\nbase: {{{base_text}}}\nspace:\n  seed: {{choice: [{seeds}]}}\n")


def trial_configs(trials: int, epochs: int, extra: dict | None = None) -> list:
    from trainable.config import preset

    return [preset("tiny", method="cf-amc-ssl", epochs=epochs, seed=s, threads=1, **(extra or {}))
            for s in range(trials)]


# --- the driver: the real CLI with timers around its phases (runs in its own process) -----------------------
def driver(spec: str, out: str, reuse_actors: bool) -> None:
    t0 = time.perf_counter()
    timings: dict[str, float] = {"python_start_to_main": t0 - float(os.environ.get("BENCH_T0", t0))}
    import ray
    import ray.tune

    import orchestrator.cli as cli
    import orchestrator.sweep as sweep
    import orchestrator.tracking as tracking

    timings["driver_imports"] = time.perf_counter() - t0
    mlflow_calls: list[float] = []

    def wrap(owner, name, key=None, into=None):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                if into is not None:
                    into.append(seconds)
                else:
                    timings[key] = timings.get(key, 0.0) + seconds

        setattr(owner, name, wrapped)

    wrap(sweep, "connect_ray", "ray_init")
    wrap(sweep, "disconnect_ray", "ray_shutdown")
    wrap(sweep, "_write_report", "report")
    wrap(sweep.results_mod, "collect", "results_collect")
    wrap(sweep.results_mod, "write", "results_write")
    wrap(sweep.Tracker, "__init__", "mlflow_setup")
    wrap(sweep.Tracker, "start_parent", "mlflow_setup")
    wrap(sweep.Tracker, "finish_parent", "mlflow_finish")
    wrap(sweep.Tracker, "reconcile_children", "mlflow_finish")
    for hook in ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error"):
        wrap(tracking.MlflowTrialCallback, hook, into=mlflow_calls)
    wrap(ray.tune.Tuner, "fit", "tuner_fit")
    if reuse_actors:
        original_config = ray.tune.TuneConfig

        def config_with_reuse(*args, **kwargs):
            kwargs["reuse_actors"] = False  # the flag now names the comparison run: a process per trial
            return original_config(*args, **kwargs)

        ray.tune.TuneConfig = config_with_reuse
    start = time.perf_counter()
    code = cli.main(["sweep", spec, "--out", out, "--num-cpus", "2", "--quiet"])
    timings["main"] = time.perf_counter() - start
    timings["mlflow_trial_callbacks"] = sum(mlflow_calls)
    timings["exit_code"] = code
    print(MARK + json.dumps(timings), flush=True)


def run_parallel(spec: Path, out: Path, reuse_actors: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.sweep", "--driver", str(spec), str(out)] + (["--reuse-actors"] if reuse_actors else [])
    start = time.perf_counter()
    env = {**os.environ, "BENCH_T0": repr(start)}  # perf_counter is CLOCK_MONOTONIC: the child's clock too
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"sweep failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    timings = json.loads(lines[-1][len(MARK):])
    timings["wall"] = wall
    import pandas as pd

    trials = pd.read_parquet(out / "trials.parquet")
    timings["trial_seconds"] = [float(s) for s in trials["seconds"]]  # Tune's time_total_s per trial
    timings["statuses"] = list(trials["status"])
    timings["pids"] = sorted({int(p) for p in trials["pid"].dropna()})
    return timings


def run_serial(configs: list) -> list[float]:
    import torch

    from trainable.loop import train

    threads = torch.get_num_threads()
    seconds = []
    try:
        for config in configs:
            start = time.perf_counter()
            train(config)
            seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return seconds


def worker_import_seconds() -> float:
    """A fresh process importing what a trial's worker needs (torch, ray, the trainable)."""
    code = "import time; t = time.perf_counter(); import torch, ray, trainable.tune_adapter; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def checkpoint_seconds(config, repeats: int = 5) -> float:
    from trainable.loop import Trial

    trial = Trial(config)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            trial.write_checkpoint(Path(tmp))
            times.append(time.perf_counter() - start)
    return median(times)


def run(quick: bool = False, trials: int = 6, epochs: int = 2, reuse_compare: bool = True) -> str:
    extra = None
    if quick:
        trials, epochs, reuse_compare = 2, 1, False
        extra = {"train_images": 40, "eval_images": 20, "probe_epochs": 1, "eval_pgd_steps": 1}
    configs = trial_configs(trials, epochs, extra)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(spec_text(trials, epochs, extra))
        serial = run_serial(configs)
        runs["as shipped"] = run_parallel(spec, Path(tmp) / "sweep", reuse_actors=False)
        if reuse_compare:
            runs["reuse_actors=False"] = run_parallel(spec, Path(tmp) / "sweep-no-reuse", reuse_actors=True)
    s = sum(serial)
    n = trials
    worker_imports = worker_import_seconds()
    ckpt = checkpoint_seconds(configs[0])
    rows = []
    details = ["| phase (seconds) | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for label, t in runs.items():
        eff = s / (2 * t["wall"])
        eff_fit = s / (2 * t["tuner_fit"])
        overhead = (2 * t["tuner_fit"] - s) / n
        rows += [
            (f"parallel efficiency, end to end ({label})", f"{eff:.2f}", ">= 0.9", eff >= 0.9),
            (f"parallel efficiency of Tuner.fit ({label})", f"{eff_fit:.2f}", ">= 0.9", eff_fit >= 0.9),
            (f"per-trial orchestration overhead (2*fit - serial)/N ({label})", f"{overhead:.2f} s", "<= 2 s",
             overhead <= 2.0),
        ]
    phases = [
        ("sweep wall time (process start to exit)", lambda t: t["wall"]),
        ("python start + driver imports (ray, optuna, mlflow, orchestrator)",
         lambda t: t["python_start_to_main"] + t["driver_imports"]),
        ("ray.init (local instance, 2 CPUs)", lambda t: t["ray_init"]),
        ("MLflow setup (experiment, parent run)", lambda t: t.get("mlflow_setup", 0.0)),
        ("Tuner.fit", lambda t: t["tuner_fit"]),
        ("  MLflow logging in trial callbacks, all trials (driver)", lambda t: t["mlflow_trial_callbacks"]),
        ("  MLflow logging per trial", lambda t: t["mlflow_trial_callbacks"] / n),
        ("  Tune time_total_s per trial (worker: build, train, eval, report, checkpoint), mean",
         lambda t: sum(t["trial_seconds"]) / n),
        ("  fit slot time not inside a trial function per trial: (2*fit - sum time_total_s)/N",
         lambda t: (2 * t["tuner_fit"] - sum(t["trial_seconds"])) / n),
        ("results collect + write, report, MLflow finish",
         lambda t: t.get("results_collect", 0) + t.get("results_write", 0) + t.get("report", 0)
         + t.get("mlflow_finish", 0)),
        ("ray shutdown", lambda t: t["ray_shutdown"]),
        ("worker processes used", lambda t: len(t["pids"])),
    ]
    for name, get in phases:
        details.append(f"| {name} | " + " | ".join(f"{get(t):.2f}" if not isinstance(get(t), int) else str(get(t))
                                                    for t in runs.values()) + " |")
    lines = [table(rows), ""]
    lines.append(f"{n} tiny CF-AMC-SSL trials ({epochs} epoch(s), threads=1 each). Serial in one process: "
                 f"{s:.1f} s ({', '.join(f'{x:.1f}' for x in serial)}), mean {s / n:.2f} s per trial.\n")
    lines += details
    lines.append("")
    in_worker = {label: sum(t["trial_seconds"]) / n - s / n for label, t in runs.items()}
    lines.append(f"Measured directly: a fresh worker's imports (torch, ray, trainable) {worker_imports:.2f} s; "
                 f"a tiny trial's checkpoint write {ckpt * 1e3:.0f} ms; Tune time_total_s minus serial train() "
                 f"per trial (reporting, checkpoints, two trials sharing the machine): "
                 + ", ".join(f"{k} {v:+.2f} s" for k, v in in_worker.items()) + ". Trial statuses: "
                 + "; ".join(f"{k}: {sorted(set(t['statuses']))}" for k, t in runs.items()) + ".")
    return "\n".join(lines)


def main() -> None:
    if "--driver" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--driver", nargs=2, metavar=("SPEC", "OUT"))
        p.add_argument("--reuse-actors", action="store_true")
        a = p.parse_args()
        driver(a.driver[0], a.driver[1], a.reuse_actors)
        return
    p = parser("Sweep efficiency: Ray sweep at concurrency 2 vs the same trials serially")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=2, help="epochs per tiny trial (default 2)")
    p.add_argument("--no-reuse-compare", action="store_true", help="skip the second run with reuse_actors=False")
    args = p.parse_args()
    header("bench.sweep: sweep efficiency", args.quick)
    print(run(args.quick, args.trials, args.epochs, not args.no_reuse_compare))


if __name__ == "__main__":
    main()
