"""Locks for embedded stores: one writer per knowledge base across threads and processes.

:class:`FileLock` is an exclusive lock on a file: a process-wide thread lock per path (so threads
queue in this process) plus ``flock`` on the file (so processes queue across the machine). The
kernel releases ``flock`` when a process dies, so a killed ingest never leaves a stale lock.
``flock`` exists on Linux and macOS; on Windows only the thread lock applies.

:class:`ReadWriteLock` lets many searches share a shard handle while closing it waits for them.

>>> import tempfile, os
>>> lock = FileLock(os.path.join(tempfile.mkdtemp(), "kb.lock"))
>>> with lock.hold(timeout=1.0):
...     lock.held()
True
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ctxopt.errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: threads still queue; processes rely on the engine's own file locks
    fcntl = None  # type: ignore[assignment]

DEFAULT_LOCK_TIMEOUT = 600.0  # seconds a writer waits for another ingest into the same base

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(path, threading.Lock())


class FileLock:
    """An exclusive lock on ``path`` for threads and processes; ``hold(timeout)`` waits up to
    ``timeout`` seconds, then raises :class:`StoreError` naming ``what`` is locked."""

    def __init__(self, path: str | os.PathLike[str], *, what: str = "") -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.what = what or self.path
        self._owner = threading.local()

    def held(self) -> bool:
        """Whether this thread holds the lock now."""
        return bool(getattr(self._owner, "depth", 0))

    @contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        if self.held():  # re-entrant in one thread: an ingest may call rollback-like steps inside
            self._owner.depth += 1
            try:
                yield
            finally:
                self._owner.depth -= 1
            return
        deadline = time.monotonic() + timeout
        thread_lock = _thread_lock(self.path)
        if not thread_lock.acquire(timeout=max(timeout, 0.0)):
            raise self._busy(timeout)
        fd = None
        try:
            if fcntl is not None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                delay = 0.005
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise self._busy(timeout) from None
                        time.sleep(delay)
                        delay = min(delay * 2, 0.25)
            self._owner.depth = 1
            try:
                yield
            finally:
                self._owner.depth = 0
        finally:
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the flock
            thread_lock.release()

    def _busy(self, timeout: float) -> StoreError:
        return StoreError(f"{self.what} is locked by another writer (thread or process) and stayed locked for "
                          f"{timeout:g} s; wait for that ingest to finish and retry, or raise lock_timeout")


class ReadWriteLock:
    """Many readers or one writer. A waiting writer lets the readers in flight finish and holds
    new ones back, so a steady stream of searches cannot starve it. Not re-entrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
