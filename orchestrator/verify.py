"""Re-verify a sweep's Pareto front: each front trial's final checkpoint is re-evaluated with the strong
attack and the masking audit (`trainable.audit`), into ``<sweep_dir>/verified.parquet``.

The report (`analysis.report`) then shows the front as searched and the front after verification,
where each robust objective (`layout.VERIFIED_METRICS`) takes the worst case over PGD and the strong
attack, image by image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .layout import FRONT_STATUS, VERIFIED_FILE, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifySettings:
    """The end-of-sweep verification (the spec's ``verify:``): the AutoAttack suite
    (`trainable.config.AUTOATTACK_SUITES`), Square's query budget, and how many of each trial's test
    images are attacked (0: all). The defaults keep a CPU sweep's verification to minutes."""

    suite: str = "cheap"
    square_queries: int = 1000
    images: int = 0

    def describe(self) -> str:
        shown = "all test images" if not self.images else f"{self.images} test images"
        return f"{self.suite} AutoAttack + Square ({self.square_queries} queries) + masking audit, {shown}"


def verify_front(sweep_dir: Path, suite: str = "cheap", square_queries: int | None = None,
                 objectives: str | Sequence[str] | None = None, images: int = 0) -> Path:
    """Audit every trial on the sweep's front from its checkpoint; write and return ``verified.parquet``.

    ``suite``: the AutoAttack suite (`trainable.config.AUTOATTACK_SUITES`); ``images`` > 0 audits the
    first that many of each trial's test images (0 = all of them).
    """
    import torch

    from analysis.pareto import front
    from analysis.results import load_sweep, parse_objectives
    from trainable.audit import audit_trial, load_trial
    from trainable.config import AUTOATTACK_SUITES
    from trainable.robustness import require_autoattack

    if suite not in AUTOATTACK_SUITES:
        raise UserError(f"--verify-suite: unknown suite {suite!r}; allowed: {', '.join(AUTOATTACK_SUITES)}")
    require_autoattack()
    sweep = load_sweep(sweep_dir)
    chosen = parse_objectives(objectives) if objectives else sweep.objectives
    if not chosen:
        raise UserError(f"{sweep_dir}: no objectives to verify a front of")
    on_front = front(sweep.trials[sweep.trials["status"] == FRONT_STATUS], chosen)
    rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    for _, trial_row in on_front.iterrows():
        checkpoint = trial_row.get("checkpoint")
        row: dict[str, Any] = {"trial_id": trial_row["trial_id"], "verify_suite": suite}
        if not isinstance(checkpoint, str) or not Path(checkpoint).exists():
            row["verify_error"] = f"no final checkpoint at {checkpoint}"
            rows.append(row)
            continue
        try:
            trial = load_trial(checkpoint)
            if images:
                trial.test_set = type(trial.test_set)(trial.test_set.images[:images], trial.test_set.labels[:images],
                                                      trial.test_set.num_classes, trial.test_set.name)
            result = audit_trial(trial, suite=suite, square_queries=square_queries)
        except Exception as exc:  # one trial's checkpoint must not stop the others' verification
            row["verify_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rows.append(row)
            continue
        finally:
            torch.set_num_threads(threads)
        row.update({f"verified_{k}_acc": v for k, v in result.accuracies.items()})
        row.update({"verified_images": float(result.images), "audit_passed": result.passed,
                    "audit_failures": "; ".join(result.failures())})
        row.update({f"audit_{c.name}": c.passed for c in result.checks})
        rows.append(row)
        log.info("verified %s: %s", row["trial_id"], "; ".join(result.lines()))
    table = pd.DataFrame(rows, columns=None if rows else ["trial_id", "verify_suite"])  # an empty front: no rows
    path = Path(sweep_dir) / VERIFIED_FILE
    table.to_parquet(path, index=False)
    return path

