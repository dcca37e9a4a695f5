"""Is learning real? Pre-trained encoders against a randomly initialised one, same data, same probe.

For each budget (a set of TrialConfig overrides on a preset) this trains clean EMP-SSL and CF-AMC-SSL
and evaluates the untrained encoder (epochs=0) of the same architecture with the same probe,
test images and attack, then prints a markdown table of clean and robust accuracy and time.

    python scripts/compare_to_random.py --preset demo                      # the demo budget
    python scripts/compare_to_random.py --preset demo --budget train_images=5000,epochs=3
"""

from __future__ import annotations

import argparse
import time

from trainable.config import parse_overrides, preset
from trainable.loop import train

METHODS = ("random", "emp-ssl", "cf-amc-ssl")


def run_budget(preset_name: str, overrides: dict, seeds: list[int]):
    """Yield one result row per (method, seed) as soon as it is measured."""
    for method in METHODS:
        for seed in seeds:
            settings = dict(overrides, seed=seed)
            if method == "random":
                cfg = preset(preset_name, **settings, epochs=0)
            else:
                cfg = preset(preset_name, **settings).replace(method=method)
            start = time.perf_counter()
            metrics = train(cfg)
            yield {"method": method, "seed": seed, "seconds": time.perf_counter() - start, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--budget", action="append", default=[],
                        help="comma-separated key=value overrides; repeat for several budgets")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    args = parser.parse_args()
    budgets = args.budget or [""]
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| budget | method | clean_acc | robust_acc@4/255 | robust_acc@8/255 | train s |")
    print("|---|---|---|---|---|---|")
    for budget in budgets:
        overrides = parse_overrides([p for p in budget.split(",") if p])
        for row in run_budget(args.preset, overrides, seeds):
            print(f"| {budget or args.preset} (seed {row['seed']}) | {row['method']} | {row['clean_acc']:.3f} | "
                  f"{row['robust_acc@4/255']:.3f} | {row['robust_acc@8/255']:.3f} | {row['train_seconds']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
