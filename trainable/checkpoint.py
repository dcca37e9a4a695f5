"""Atomic, safe checkpoint files: written to a temporary name, fsynced, renamed; read weights-only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from orchestrator.layout import UserError, first_line


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, corrupt or carries anything but plain data."""


def save_checkpoint(state: dict[str, Any], path: Path | str) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no pickled code runs); one clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickled objects refused by the weights-only unpickler, ...
        raise CheckpointError(f"checkpoint {path} is corrupt or unsafe and was not loaded: {first_line(exc)}") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"checkpoint {path} is not a trial checkpoint (no model/epoch entries)")
    return state
