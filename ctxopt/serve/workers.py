"""The worker processes behind ``ctxopt serve``'s front: started, watched, replaced and stopped.

Each worker is a spawned process running uvicorn with :func:`ctxopt.serve.app.create_app` on a Unix
socket of its own in a private folder. The front hears a worker's death at once (its process
sentinel is a file descriptor the event loop watches), stops routing to it, and starts a
replacement on a fresh socket, which takes requests once it answers ``/healthz``. A worker asks the
kernel for SIGTERM when the front dies (Linux), so not even a SIGKILLed front leaves one behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx

log = logging.getLogger("ctxopt.serve")

# The front's pooled connections expire first, so a worker never closes one the front is reusing.
WORKER_KEEP_ALIVE = 300
FRONT_KEEP_ALIVE = 60.0
START_SECONDS = 120.0  # a worker imports the pipeline's libraries before it answers
STOP_SECONDS = 12.0  # a worker's own graceful shutdown is 10 s
# Seconds before a replacement, by how many in a row exited before they answered: a broken
# environment must not spin.
BACKOFF = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)


def serve_worker(path: str, log_level: str, parent: int) -> None:
    """A worker process: the app under uvicorn on the Unix socket ``path``, until SIGTERM."""
    if sys.platform == "linux":
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the front died before the request above took effect
            return
    import uvicorn

    uvicorn.Server(uvicorn.Config("ctxopt.serve.app:create_app", factory=True, uds=path, log_level=log_level,
                                  timeout_graceful_shutdown=10, timeout_keep_alive=WORKER_KEEP_ALIVE)).run()


class Worker:
    """One worker process, its socket, the front's connection pool to it and its requests in flight."""

    def __init__(self, process: BaseProcess, path: Path) -> None:
        self.process, self.path = process, path
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(path)), base_url="http://ctxopt-worker",
            # No read timeout: the worker bounds its upstream calls, and a stream may last minutes.
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=FRONT_KEEP_ALIVE))
        self.in_flight = 0
        self.ready = False  # answers /healthz and takes requests
        self.answered = False  # has been ready once
        self.dead = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def finished(self) -> None:
        """One request is done with this worker; a dead worker's pool closes with its last one."""
        self.in_flight -= 1
        if self.dead and self.in_flight == 0:
            asyncio.get_running_loop().create_task(self.client.aclose())


class Workers:
    """``count`` workers on sockets in ``folder``, kept at that number until :meth:`stop`.

    ``stopping()`` says whether the server is shutting down (then a worker that exits is not replaced).
    """

    def __init__(self, count: int, folder: Path, *, log_level: str = "warning",
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.count, self.folder, self.log_level, self.stopping = count, folder, log_level, stopping
        self.workers: list[Worker] = []
        self._names = itertools.count()
        self._turn = itertools.count()
        self._replacing: set[asyncio.Task[None]] = set()
        self._running = False  # replacing dead workers: from a complete start until stop
        self._failed_starts = 0  # replacements in a row that exited before they answered
        self._stopped = False
        self.on_death: Callable[[int], None] = lambda pid: None  # hears each dead worker's pid

    def pick(self, exclude: set[Worker]) -> Worker | None:
        """The ready worker with the fewest requests in flight (taking turns among equals), or ``None``."""
        ready = [w for w in self.workers if w.ready and w not in exclude]
        if not ready:
            return None
        start = next(self._turn) % len(ready)
        return min(ready[start:] + ready[:start], key=lambda w: w.in_flight)

    def unreachable(self, worker: Worker, error: Exception) -> None:
        """The front could not connect to ``worker``. Alive without a listening socket (its file deleted,
        by a temp folder cleaner say), it would never take a new connection again: it finishes what
        it has (SIGTERM) and a replacement takes its place. A worker that has died is left to its
        sentinel, a merely slow one (connect timeout) is left alone."""
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, OSError):  # httpx's error, from httpcore's, from the OS's
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, (FileNotFoundError, ConnectionRefusedError)) and worker.ready and worker.process.is_alive():
            log.warning("ctxopt serve: worker %s no longer takes connections (%s); replacing it", worker.pid, error)
            worker.ready = False
            worker.process.terminate()

    async def start(self) -> None:
        """Start every worker and return once all answer; a worker that exits first fails the start."""
        workers = [self._spawn() for _ in range(self.count)]
        ready = await asyncio.gather(*(self._until_ready(w, START_SECONDS) for w in workers))
        if not all(ready):
            await self.stop()
            codes = ", ".join(str(w.process.exitcode) for w, ok in zip(workers, ready, strict=True) if not ok)
            raise RuntimeError(f"ctxopt serve: {ready.count(False)} worker(s) did not start (exit code {codes}); "
                               "their error is in the log above")
        self._running = True

    async def stop(self) -> None:
        """SIGTERM every worker (each finishes its requests for up to 10 s), SIGKILL any left after."""
        self._stopped = True
        for task in self._replacing:
            task.cancel()
        for worker in self.workers:
            worker.ready = False
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        while any(w.process.is_alive() for w in self.workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.kill()
        for worker in self.workers:
            await worker.client.aclose()
        # Here, not after uvicorn returns: a server stopped by a signal re-raises it and exits at once.
        shutil.rmtree(self.folder, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL every worker still running and reap them all (the last resort of a shutdown)."""
        for worker in self.workers:
            with contextlib.suppress(ValueError, OSError):  # a reaped process's sentinel is closed
                asyncio.get_running_loop().remove_reader(worker.process.sentinel)
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5)

    def _spawn(self) -> Worker:
        path = self.folder / f"worker-{next(self._names)}.sock"
        process = multiprocessing.get_context("spawn").Process(
            target=serve_worker, args=(str(path), self.log_level, os.getpid()), name="ctxopt-serve-worker")
        process.start()
        worker = Worker(process, path)
        self.workers.append(worker)
        asyncio.get_running_loop().add_reader(process.sentinel, self._died, worker)
        return worker

    def _died(self, worker: Worker) -> None:
        asyncio.get_running_loop().remove_reader(worker.process.sentinel)
        worker.process.join()
        worker.ready, worker.dead = False, True
        self.workers.remove(worker)
        self._failed_starts += not worker.answered
        if worker.in_flight == 0:
            asyncio.get_running_loop().create_task(worker.client.aclose())
        with contextlib.suppress(OSError):
            worker.path.unlink(missing_ok=True)
        if worker.pid is not None:
            self.on_death(worker.pid)
        if not self._running or self._stopped or self.stopping():
            return
        log.warning("ctxopt serve: worker %s exited (code %s); starting a replacement", worker.pid, worker.process.exitcode)
        task = asyncio.get_running_loop().create_task(self._replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        await asyncio.sleep(BACKOFF[min(self._failed_starts, len(BACKOFF) - 1)])
        if self._stopped or self.stopping():
            return
        worker = self._spawn()
        if not await self._until_ready(worker, START_SECONDS) and not worker.dead:
            worker.process.kill()  # alive but silent for START_SECONDS: its death starts the next replacement

    async def _until_ready(self, worker: Worker, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not worker.dead and not self._stopped and time.monotonic() < deadline:
            try:
                if (await worker.client.get("/healthz", timeout=2.0)).status_code == 200:
                    worker.ready = worker.answered = not worker.dead
                    if worker.ready:
                        self._failed_starts = 0
                    return worker.ready
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)  # the socket appears once the worker's app has started
        return False
