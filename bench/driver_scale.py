"""Driver scale (BENCHMARKS.md item 8): does the sweep driver's cost stay flat from trial 100 to trial 1,000?

The real ``orchestrator sweep`` (`orchestrator.cli.main`: spec checks, Optuna searcher and study,
Ray Tune with the spec's ``execution`` settings, the MLflow callback, results and report) runs in a
fresh process (this module's ``--driver`` mode) with one change: each trial runs `noop_trial`
instead of training - it sleeps ``--epoch-seconds`` per epoch, reports the objectives (made up from
its sampled epsilon) and writes a tiny checkpoint at the spec's cadence. Trials ask for a fraction of
a CPU so that ``--concurrency`` of them run at once on this machine.

A Tune callback in the driver samples, every 50 finished trials: the driver process's CPU time
(`time.process_time`: Tune's controller, the searcher, the MLflow callback), results received, its
resident memory and the size of Ray Tune's experiment snapshot (experiment state + searcher state).
Per-trial driver CPU at trial 100 is the CPU between finished trials 50 and 150 over 100, at trial
1,000 between 900 and 1,000. Trial start latency: from a trial finishing (its slot freeing) to the
next trial's function starting in its worker (wall clocks of one machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.common import header, table

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH-DRIVER-SCALE "
SAMPLE_EVERY = 50


def spec_text(trials: int, concurrency: int, cpu: float, sampler: str, execution: str = "") -> str:
    return (f"name: driver-scale\npreset: tiny\nobjectives:\n  - {{metric: clean_acc, mode: max}}\n"
            f"  - {{metric: robust_acc, mode: max}}\nbudget: {{trials: {trials}, concurrency: {concurrency}}}\n"
            f"sampler: {{type: {sampler}, seed: 0}}\nresources: {{cpu: {cpu:g}}}\n"
            + (f"execution: {{{execution}}}\n" if execution else "")
            + "base: {epochs: EPOCHS}\nspace:\n  epsilon: {float: [0, 16/255]}\n")


def noop_trial(config: dict[str, Any], settings: Any, epochs: int, epoch_seconds: float) -> None:
    """A trial without training: sleeps, reports made-up objectives, writes tiny checkpoints."""
    from ray import tune

    started = time.time()
    checkpoint = tune.get_checkpoint()
    first = 1
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            first = int((Path(path) / "epoch").read_text()) + 1
    eps = float(config.get("epsilon", 0.0))
    for epoch in range(first, epochs + 1):
        time.sleep(epoch_seconds)
        metrics: dict[str, Any] = {name: math.nan for name in settings.metric_names}
        metrics.update(epoch=epoch, clean_acc=0.9 - eps, robust_acc=0.1 + eps * epoch / epochs, fn_start=started,
                       final=1.0 if epoch == epochs else 0.0)
        if epoch == epochs or epoch % settings.checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "epoch").write_text(str(epoch))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(metrics)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _snapshot_bytes(experiment: Path) -> int:
    files = list(experiment.glob("experiment_state-*.json")) + list(experiment.glob("searcher-state-*.pkl"))
    files += list(experiment.glob("search_gen_state-*.json"))
    return sum(f.stat().st_size for f in files if f.is_file())


# --- the driver: the real CLI with a no-op trainable and a probe callback (its own process) --------------------
def driver(spec: str, out: str, num_cpus: int, epochs: int, epoch_seconds: float) -> None:
    import ray.tune

    import orchestrator.cli as cli
    import orchestrator.sweep as sweep

    samples: list[dict[str, float]] = []
    gaps: list[tuple[int, float]] = []  # (finished trials when it started, seconds from a free slot to start)
    experiment = Path(out) / "tune"

    class Probe(ray.tune.Callback):
        def __init__(self) -> None:
            self.done = 0
            self.results = 0
            self.freed: deque[float] = deque()
            self.slot_freed: dict[str, float] = {}

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if self.freed:
                self.slot_freed[trial.trial_id] = self.freed.popleft()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.results += 1
            freed = self.slot_freed.pop(trial.trial_id, None)
            if freed is not None and "fn_start" in result:
                gaps.append((self.done, float(result["fn_start"]) - freed))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.done += 1
            self.freed.append(time.time())
            if self.done % SAMPLE_EVERY == 0 or self.done in (1, 10):
                samples.append({"done": self.done, "results": self.results, "cpu": time.process_time(),
                                "wall": time.perf_counter(), "rss": _rss(),
                                "snapshot": _snapshot_bytes(experiment)})

    def build(spec_obj: Any) -> tuple[Any, Any]:
        settings = sweep.trial_settings(spec_obj)
        fn = ray.tune.with_parameters(noop_trial, settings=settings, epochs=epochs, epoch_seconds=epoch_seconds)
        return ray.tune.with_resources(fn, sweep.resources_request(spec_obj)), settings

    sweep._build_trainable = build  # the one change: trials run `noop_trial`
    original_run_config = ray.tune.RunConfig

    class RunConfig(original_run_config):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Probe()]
            super().__init__(*args, **kwargs)

    ray.tune.RunConfig = RunConfig
    fit: dict[str, float] = {}
    original_fit = ray.tune.Tuner.fit

    def timed_fit(self: Any) -> Any:
        start = time.perf_counter()
        try:
            return original_fit(self)
        finally:
            fit["seconds"] = time.perf_counter() - start

    ray.tune.Tuner.fit = timed_fit
    code = 1
    try:  # the figures are printed even when a phase after Tuner.fit fails
        code = cli.main(["sweep", spec, "--out", out, "--num-cpus", str(num_cpus), "--quiet", "--verify", "none"])
    finally:
        print(MARK + json.dumps({"exit_code": code, "samples": samples, "gaps": gaps, "fit": fit.get("seconds", 0.0),
                                 "final_snapshot": _snapshot_bytes(experiment), "rss_end": _rss()}), flush=True)


def run_driver(trials: int, concurrency: int, epochs: int, epoch_seconds: float, sampler: str, num_cpus: int,
               execution: str, tmp: Path) -> dict[str, Any]:
    spec = tmp / "spec.yaml"
    cpu = round(num_cpus / concurrency, 4)
    spec.write_text(spec_text(trials, concurrency, cpu, sampler, execution).replace("EPOCHS", str(epochs)))
    out = tmp / "sweep"
    cmd = [sys.executable, "-m", "bench.driver_scale", "--driver", str(spec), str(out), str(num_cpus), str(epochs),
           repr(epoch_seconds)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"sweep failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1][len(MARK):])
    data["wall"] = time.perf_counter() - start
    import pandas as pd

    data["trials"] = pd.read_parquet(out / "trials.parquet") if (out / "trials.parquet").exists() else \
        pd.DataFrame({"status": []})
    return data


def _per_trial(samples: list[dict[str, float]], lo: int, hi: int, key: str = "done") -> tuple[float, float]:
    """(driver CPU seconds per finished trial, per result) between the samples at `lo` and `hi` trials."""
    at = {int(s["done"]): s for s in samples}
    a, b = at.get(lo), at.get(hi)
    if a is None or b is None or b["done"] == a["done"]:
        return math.nan, math.nan
    cpu = b["cpu"] - a["cpu"]
    return cpu / (b["done"] - a["done"]), cpu / max(1.0, b["results"] - a["results"])


def run(quick: bool = False, trials: int = 1000, concurrency: int = 32, epochs: int = 3, epoch_seconds: float = 2.0,
        sampler: str = "random", num_cpus: int = 2, execution: str = "") -> tuple[str, dict[str, Any]]:
    if quick:
        trials, concurrency, epochs, epoch_seconds = 12, 4, 2, 0.05
    with tempfile.TemporaryDirectory(prefix="bench-driver-scale-") as tmp:
        data = run_driver(trials, concurrency, epochs, epoch_seconds, sampler, num_cpus, execution, Path(tmp))
    samples = data["samples"]
    early_lo, early_hi = (50, 150) if trials >= 150 else (1, 10)
    late_lo, late_hi = (trials - 100, trials) if trials >= 300 else (1, 10)
    early = _per_trial(samples, early_lo, early_hi)
    late = _per_trial(samples, late_lo, late_hi)
    ratio = late[0] / early[0] if early[0] and not math.isnan(early[0]) else math.nan
    gaps = [g for _, g in data["gaps"]]
    gap_med = statistics.median(gaps) if gaps else math.nan
    gap_p90 = sorted(gaps)[int(0.9 * (len(gaps) - 1))] if gaps else math.nan
    snap = {int(s["done"]): s["snapshot"] for s in samples}
    rss = {int(s["done"]): s["rss"] for s in samples}
    ideal = trials * epochs * epoch_seconds / concurrency
    efficiency = ideal / data["fit"] if data["fit"] else math.nan
    mb = 1024 * 1024
    rows = [
        (f"driver CPU per trial at trial {early_hi} ({early_lo}-{early_hi})", f"{early[0] * 1e3:.1f} ms", "reported", None),
        (f"driver CPU per trial at trial {late_hi} ({late_lo}-{late_hi})", f"{late[0] * 1e3:.1f} ms", "reported", None),
        ("per-trial driver cost, late / early", f"{ratio:.2f}", "<= 1.2", ratio <= 1.2),
        ("driver CPU per result, early / late", f"{early[1] * 1e3:.1f} / {late[1] * 1e3:.1f} ms", "reported", None),
        ("slot free -> next trial's function starts, median (p90)", f"{gap_med:.2f} s ({gap_p90:.2f} s)", "<= 1 s",
         gap_med <= 1.0),
        (f"experiment snapshot at trial {early_hi} / {trials}",
         f"{snap.get(early_hi, math.nan) / 1024:.0f} / {data['final_snapshot'] / 1024:.0f} KB", "flat", None),
        (f"driver RSS at trial {early_hi} / end", f"{rss.get(early_hi, math.nan) / mb:.0f} / {data['rss_end'] / mb:.0f} MB",
         "reported", None),
        (f"efficiency of Tuner.fit: ideal {ideal:.0f} s / measured {data['fit']:.0f} s", f"{efficiency:.2f}",
         "reported", None),
    ]
    statuses = data["trials"]["status"].value_counts().to_dict()
    text = "\n".join([table(rows), "",
                      f"{trials} no-op trials ({epochs} epochs of {epoch_seconds:g} s), {concurrency} at a time on "
                      f"--num-cpus {num_cpus} (resources.cpu {num_cpus / concurrency:.4g}), sampler {sampler}"
                      f"{', execution: {' + execution + '}' if execution else ', default execution settings'}; "
                      f"sweep wall {data['wall']:.0f} s, exit code {data['exit_code']}, statuses {statuses}."])
    return text, data


def main() -> None:
    if "--driver" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--driver", nargs=5, metavar=("SPEC", "OUT", "CPUS", "EPOCHS", "EPOCH_S"))
        a = p.parse_args()
        spec, out, cpus, epochs, seconds = a.driver
        driver(spec, out, int(cpus), int(epochs), float(seconds))
        return
    p = argparse.ArgumentParser(description="Driver cost per trial at trial 100 vs 1,000 (no-op trials)")
    p.add_argument("--quick", action="store_true", help="12 trials, 4 at a time: a smoke run, numbers mean nothing")
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--epoch-seconds", type=float, default=2.0)
    p.add_argument("--sampler", default="random", choices=("random", "tpe", "nsga2"))
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--execution", default="", help="the spec's execution settings, e.g. 'keep_checkpoints: 1, "
                   "reuse_actors: false' (today's behaviour before these settings)")
    args = p.parse_args()
    header("bench.driver_scale: driver cost per trial", args.quick)
    text, _ = run(args.quick, args.trials, args.concurrency, args.epochs, args.epoch_seconds, args.sampler,
                  args.num_cpus, args.execution)
    print(text)


if __name__ == "__main__":
    main()
