"""Fixture for the fault-injection tests: `orchestrator` subprocesses in their own session whose whole
process tree (the driver and the Ray processes of its private cluster) is SIGKILLed at teardown: only
processes these tests started are ever killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

from tests.specs import REPO

CLI = [sys.executable, "-m", "orchestrator.cli"]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.update(extra)
    return env


class Proc:
    """A CLI subprocess in a new session; remembers every descendant it has seen so a kill -9 of the
    driver can also take down the Ray processes of its private cluster."""

    def __init__(self, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._fh = open(log, "w")
        self.popen = subprocess.Popen(args, cwd=cwd, env=env or child_env(), stdout=self._fh,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid
        self.seen: dict[int, psutil.Process] = {}

    def track(self) -> None:
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def poll(self) -> int | None:
        self.track()
        return self.popen.poll()

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (rc := self.poll()) is None:
            if time.monotonic() > deadline:
                self.kill_tree()
                raise AssertionError(f"{self.popen.args[3:5]} did not end within {timeout:.0f}s:\n"
                                     f"{self.output()[-3000:]}")
            time.sleep(0.5)
        return rc

    def kill_tree(self) -> list[psutil.Process]:
        """SIGKILL the process group and every descendant seen; return the processes that were killed."""
        self.track()
        victims = [p for p in self.seen.values() if p.is_running()]
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in victims:
            try:
                proc.kill()  # psutil checks the process is still the one we saw (no PID reuse)
            except psutil.Error:
                pass
        self.popen.wait(timeout=30)
        psutil.wait_procs(victims, timeout=30)
        self._fh.close()
        return victims


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start `orchestrator` subprocesses (`procs(args, env={...})`); they and their children die at teardown."""
    started: list[Proc] = []

    def start(args: list[str], env: dict[str, str] | None = None, name: str | None = None) -> Proc:
        """`orchestrator ARGS` with the test's environment plus `env`; output in <tmp>/<name>-<n>.log."""
        log = tmp_path / f"{name or args[0]}-{len(started)}.log"
        proc = Proc([*CLI, *args], cwd=tmp_path, log=log, env=child_env(**(env or {})))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_tree()
