"""The sweep spec tests start from: the ``tiny`` preset cut to seconds, as YAML text.

`tiny_spec()` is the default (3 random trials over the training epsilon, 2 at a time); its keyword
arguments change one part each, so a test states only what it is about.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"
# The tiny preset cut further: 5 minibatches of 20 images per epoch, 50 test images, 2 probe epochs.
TINY_BASE = "train_images: 100, eval_images: 50, probe_epochs: 2"


def tiny_spec(*, name: str = "tiny", trials: int | None = 3, concurrency: int = 2, epochs: int = 2,
              space: str = "  epsilon: {float: [0, 16/255]}", sampler: str = "{type: random, seed: 1}",
              retries: int | None = None, base: str = TINY_BASE, extra: str = "", verify: str = "none") -> str:
    """A valid spec on the tiny preset; `trials=None` leaves the budget to the grid sampler; `space` is
    the indented body of ``space:``; `extra` adds top-level YAML lines; `verify` is the spec's
    ``verify:`` (none by default: the end-of-sweep verification costs half a minute, and only the tests
    of verification are about it)."""
    budget = f"{{trials: {trials}, concurrency: {concurrency}}}" if trials else f"{{concurrency: {concurrency}}}"
    lines = textwrap.dedent(f"""\
        name: {name}
        preset: tiny
        objectives:
          - {{metric: clean_acc, mode: max}}
          - {{metric: robust_acc, mode: max}}
        budget: {budget}
        sampler: {sampler}
        resources: {{cpu: 1}}
        verify: {verify}
        """)
    if retries is not None:
        lines += f"retries: {retries}\n"
    lines += extra
    return lines + f"base: {{epochs: {epochs}, {base}}}\nspace:\n{space}\n"
