"""``ctxopt serve`` in a child process, for tests and benchmarks: start it, wait until it answers,
stop it with its workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m ctxopt serve --config CONFIG`` on a free loopback port, in its own process group.

    Metrics go to ``metrics_dir`` (created; None: the server's own folder, removed when it stops);
    stdout and stderr to ``log``; ``args`` are added to the
    command line (e.g. ``["--no-front"]``).
    """

    def __init__(self, config: Path, *, workers: int = 1, metrics_dir: Path | None, log: Path,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> None:
        self.config, self.workers, self.metrics_dir, self.log = config, workers, metrics_dir, log
        self.env, self.args = dict(env or {}), list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if self.metrics_dir is not None:
            self.metrics_dir.mkdir(parents=True, exist_ok=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ctxopt", "serve", "--config", str(self.config), "--port", str(self.port),
                 "--workers", str(self.workers), "--log-level", "warning", *self.args],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ctxopt serve did not start:\n{self.log.read_text(errors='replace')}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)

    def worker_pids(self) -> set[int]:
        """The worker processes (Linux): the front's (or the supervisor's) spawned children, not
        multiprocessing's resource tracker, which is a child too."""
        if self.process is None:
            return set()
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children", encoding="ascii") as f:
            children = [int(p) for p in f.read().split()]
        workers = set()
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"spawn_main" in f.read():
                        workers.add(pid)
            except OSError:
                continue  # gone since the listing
        return workers

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the main process has used: the front, or uvicorn's supervisor (Linux)."""
        if self.process is None:
            return 0.0
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the front (or supervisor) and its workers, in MB (Linux)."""
        total = 0
        if self.process is None:
            return 0.0
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children", encoding="ascii") as f:
            pids = {self.process.pid, *(int(p) for p in f.read().split())}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                continue
        return total / 2**20

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
