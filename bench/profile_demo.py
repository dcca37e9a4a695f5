"""Demo trial profile (BENCHMARKS.md item 5): where the time of one demo CF-AMC-SSL trial goes.

Runs `trainable.loop.train` on the demo preset (what ``orchestrator train --preset demo`` and each
trial of ``orchestrator sweep search_spaces/epsilon.yaml`` run; threads=1 by default, as a sweep trial
with ``resources: {cpu: 1}``), with timers wrapped around: trial set-up (data, model), make_views,
the encoder forward + loss, the training backward, the optimiser, the free-AT delta (x + delta, ascent),
the checkpoint write, and evaluation's parts (feature extraction, linear-probe training, clean
accuracy, PGD robust accuracy per epsilon). Orchestration per trial (worker start, Tune, MLflow) is
measured by ``bench.sweep``; here a fresh worker's imports are timed as its main part.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench.common import header, parser

TIMES: dict[str, float] = {}
CALLS: dict[str, int] = {}
_phase = ["setup"]


@contextmanager
def _clock(key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        TIMES[key] = TIMES.get(key, 0.0) + time.perf_counter() - start
        CALLS[key] = CALLS.get(key, 0) + 1


def _wrap(owner: Any, name: str, key: str | Callable[[], str], patched: list) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _clock(key() if callable(key) else key):
            return original(*args, **kwargs)

    patched.append((owner, name, original))
    setattr(owner, name, wrapped)


def instrument() -> list:
    """Wrap the timers around the trial's parts; returns what to restore."""
    import trainable.attacks as attacks
    import trainable.evaluate as evaluate
    import trainable.loop as loop
    import trainable.methods as methods
    import trainable.optim as optim

    patched: list = []
    _wrap(methods, "make_views", "train: make_views", patched)
    _wrap(methods.TrainingMethod, "ssl_loss", "train: encoder forward + EMP loss", patched)
    _wrap(optim.LARSWrapper, "step", "train: optimizer (LARS + SGD)", patched)
    _wrap(attacks.FreePerturbation, "perturb", "train: free-AT x + delta", patched)
    _wrap(attacks.FreePerturbation, "ascend", "train: free-AT delta ascent", patched)
    # the training backward only; backward passes inside evaluation (probe) are part of their timers
    _wrap(torch.Tensor, "backward", lambda: "train: backward" if _phase[0] == "train" else "nested: backward", patched)
    _wrap(loop.Trial, "write_checkpoint", "checkpoint write", patched)
    _wrap(evaluate, "extract_features", "eval: probe feature extraction", patched)
    _wrap(evaluate, "train_probe", "eval: linear probe training", patched)
    _wrap(evaluate, "accuracy", "eval: clean accuracy", patched)
    _wrap(evaluate, "robust_accuracy", "eval: PGD robust accuracy (all epsilons)", patched)

    original_init = loop.Trial.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        with _clock("setup: Trial (data, model, optimiser)"):
            original_init(self, *args, **kwargs)

    patched.append((loop.Trial, "__init__", original_init))
    loop.Trial.__init__ = init

    for name, phase in (("train_epoch", "train"), ("evaluate", "eval")):
        original = getattr(loop.Trial, name)

        def in_phase(self: Any, *args: Any, _original=original, _phase_name=phase, **kwargs: Any) -> Any:
            _phase[0] = _phase_name
            try:
                with _clock(f"{_phase_name} total"):
                    return _original(self, *args, **kwargs)
            finally:
                _phase[0] = "other"

        patched.append((loop.Trial, name, original))
        setattr(loop.Trial, name, in_phase)
    return patched


def restore(patched: list) -> None:
    for owner, name, original in reversed(patched):
        setattr(owner, name, original)


def profile_trial(overrides: dict[str, Any]) -> tuple[dict[str, float], dict[str, int], float, dict[str, float]]:
    """Run one demo trial with the timers; (times, calls, wall seconds, final metrics)."""
    from trainable.config import preset
    from trainable.loop import train

    TIMES.clear()
    CALLS.clear()
    config = preset("demo", **overrides)
    threads = torch.get_num_threads()
    patched = instrument()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            def report(metrics: dict[str, float], write_checkpoint: Callable[[Path], Path]) -> None:
                write_checkpoint(Path(tmp))

            start = time.perf_counter()
            metrics = train(config, reporter=report)
            wall = time.perf_counter() - start
    finally:
        restore(patched)
        torch.set_num_threads(threads)
    return dict(TIMES), dict(CALLS), wall, metrics


def run(quick: bool = False, threads: int = 1, method: str = "cf-amc-ssl") -> str:
    overrides: dict[str, Any] = {"method": method, "threads": threads}
    if quick:
        overrides.update(train_images=40, batch_size=20, num_crops=4, eval_images=20, probe_epochs=2,
                         eval_pgd_steps=2, width=4, feature_dim=16, hidden_dim=16, z_dim=8)
    times, calls, wall, metrics = profile_trial(overrides)
    from bench.sweep import worker_import_seconds

    imports = worker_import_seconds()
    train_total = times.get("train total", 0.0)
    eval_total = times.get("eval total", 0.0)
    train_parts = [k for k in times if k.startswith("train:")]
    eval_parts = [k for k in times if k.startswith("eval:")]
    lines = ["| part | seconds | share of trial | calls |", "|---|---|---|---|"]

    def row(name: str, seconds: float, count: int | str = "") -> None:
        lines.append(f"| {name} | {seconds:.2f} | {100 * seconds / wall:.1f}% | {count} |")

    row("**trial (train())**", wall, 1)
    row("setup: Trial (data, model, optimiser)", times.get("setup: Trial (data, model, optimiser)", 0.0), 1)
    row("**training epochs**", train_total, calls.get("train total", 0))
    for k in train_parts:
        row("  " + k.removeprefix("train: "), times[k], calls[k])
    row("  other (minibatch loading, scheduler, loss sync)", train_total - sum(times[k] for k in train_parts))
    row("**evaluation**", eval_total, calls.get("eval total", 0))
    for k in eval_parts:
        row("  " + k.removeprefix("eval: "), times[k], calls[k])
    row("  other", eval_total - sum(times[k] for k in eval_parts))
    row("checkpoint write", times.get("checkpoint write", 0.0), calls.get("checkpoint write", 0))
    rest = wall - train_total - eval_total - times.get("setup: Trial (data, model, optimiser)", 0.0) \
        - times.get("checkpoint write", 0.0)
    row("rest of train()", rest)
    lines.append("")
    lines.append(f"Orchestration per sweep trial (not in the trial above): a fresh Ray worker's imports (torch, ray, "
                 f"trainable) take {imports:.2f} s here; Tune start/report/checkpoint and MLflow per trial: run "
                 f"`python -m bench.sweep`.")
    shown = {k: round(v, 3) for k, v in metrics.items() if k in ("clean_acc", "robust_acc", "train_seconds")}
    lines.append(f"\nSettings: demo preset, {overrides}; final metrics {shown}. The demo sweep "
                 f"(`orchestrator sweep search_spaces/epsilon.yaml`: 4 such trials, 2 at a time, threads=1 each) "
                 f"takes about 2 x (trial + orchestration) + the sweep's fixed start-up; target <= 10 min.")
    return "\n".join(lines)


def main() -> None:
    p = parser("Demo trial profile: where the time of one demo CF-AMC-SSL trial goes")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the trial (a sweep trial uses 1)")
    args = p.parse_args()
    header("bench.profile_demo: one demo trial", args.quick)
    print(run(args.quick, args.threads))


if __name__ == "__main__":
    main()
