"""Real servers for the backend tests, started once per session on 127.0.0.1 and torn down after:

- `postgres`: a throwaway PostgreSQL cluster (the Debian package's ``initdb``/``pg_ctl``) in a temp
  directory, password authentication over TCP, a role ``sweeps`` with a password, a database per test;
- `mlflow_server`: ``mlflow server`` with a SQLite backend and its own artifact directory (`MlflowServer`,
  which a test can also start, stop and start again itself).

Where a server cannot start (no PostgreSQL binaries, no free port) the tests that need it skip with
one line saying why. PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser``). Only processes started here are stopped.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import pytest

PG_USER, PG_PASSWORD = "sweeps", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


@dataclass
class Postgres:
    host: str
    port: int
    socket_dir: str
    version: str

    def url(self, database: str, password: bool = True) -> str:
        auth = f"{PG_USER}:{PG_PASSWORD}" if password else PG_USER
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        conn = psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" OWNER {PG_USER}')
        conn.close()
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server could not start: no initdb/pg_ctl (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL server not used: psycopg is not installed (pip install -e '.[servers]')")
    root = tempfile.mkdtemp(prefix="cfamc-pg-")  # under /tmp: the postgres user must reach it
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), free_port()
    pwfile = os.path.join(root, "pw")
    Path(pwfile).write_text("postgres-admin\n")
    if as_user:
        shutil.chown(pwfile, "postgres")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)

    started = False
    try:
        init = run(initdb, "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                   f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8")
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL server could not start: initdb failed: {init.stderr.strip().splitlines()[-1:]}")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        start = run(pg_ctl, "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "-t", "60", "start")
        if start.returncode != 0:
            log = Path(root, "log").read_text() if Path(root, "log").exists() else start.stderr
            pytest.skip(f"PostgreSQL server could not start: {log.strip().splitlines()[-1:]}")
        started = True
        import psycopg

        conn = psycopg.connect(host=root, port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        conn.close()
        print(f"\nbackend: PostgreSQL {version} on 127.0.0.1:{port}", file=sys.stderr)
        yield Postgres("127.0.0.1", port, root, version)
    finally:
        if started:
            run(pg_ctl, "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on 127.0.0.1:`port` with a SQLite backend and artifacts under `root`; `stop`
    then `start` again is the same server (same port and store) back up."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root, self.port = Path(root), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log: IO[str] | None = None

    def start(self, timeout: float = 120) -> None:
        """Start it and wait for /health; skip the test (one line) where it cannot start."""
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
               f"sqlite:///{self.root / 'mlflow.db'}", "--artifacts-destination", str(self.root / "artifacts"),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self._log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.skip(f"MLflow server could not start (exit {self.proc.returncode}): "
                            f"{(self.root / 'server.log').read_text().strip().splitlines()[-1:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.skip(f"MLflow server could not start: no answer on /health within {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM its process group (SIGKILL after 30 s); nothing if it is not running."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a real ``mlflow server`` (SQLite backend, one worker)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        print(f"\nbackend: mlflow server at {server.url} (SQLite backend)", file=sys.stderr)
        yield server.url
    finally:
        server.stop()
