"""Shared helpers of the benchmarks: machine description, timers, medians, the markdown table."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence


def machine() -> str:
    """One line: CPU model, cores, torch version and intra-op threads, Python."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "load %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load n/a"
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}, {load}")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a fast smoke run at tiny sizes (numbers not meaningful)")
    return p


def header(name: str, quick: bool) -> None:
    print(f"## {name}{' (--quick: smoke run, not a measurement)' if quick else ''}\n")
    print(f"- command: `python -m {' '.join([_module_name()] + sys.argv[1:])}`")
    print(f"- machine: {machine()}\n")


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else sys.argv[0]


def now() -> float:
    return time.perf_counter()


@contextmanager
def timed(into: dict[str, list[float]], key: str) -> Iterator[None]:
    """Append the block's wall time (seconds) to ``into[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into.setdefault(key, []).append(time.perf_counter() - start)


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run the callables round-robin (A B C A B C ...) ``repeats`` times after ``warmup`` rounds; seconds each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> str:
    """``median (min-max, n=k)`` in seconds/ms, for the detail lines."""
    m = median(xs)
    unit, f = ("ms", 1e3) if m < 1 else ("s", 1.0)
    return f"{m * f:.3g} {unit} (min {min(xs) * f:.3g}, max {max(xs) * f:.3g}, n={len(xs)})"


def markdown(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a markdown table: a header of `columns`, its rule, one line per row."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def table(rows: Sequence[tuple[str, str, str, bool | None]]) -> str:
    """Markdown table of (what, measured, target, met?); met None prints '-' (informational rows)."""
    marks = [(what, measured, target, "-" if met is None else ("yes" if met else "NO"))
             for what, measured, target, met in rows]
    return "\n".join(markdown(("what", "measured", "target", "met?"), marks))


def run_main(description: str, title: str, run: Callable[[bool], str]) -> None:
    """A benchmark's command line: parse ``--quick``, print the header, then what ``run(quick)`` returns."""
    args = parser(description).parse_args()
    header(title, args.quick)
    print(run(args.quick))
