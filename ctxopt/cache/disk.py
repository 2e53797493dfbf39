"""The default cache backend: a diskcache directory on this machine."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from ctxopt.cache.base import BackendUnavailable, default_cache_dir


class DiskBackend:
    """Entries in a diskcache directory ($CTXOPT_CACHE_DIR or ~/.cache/ctxopt by default).

    diskcache writes each entry in one SQLite transaction, so a crash mid-write leaves the old
    entry or none, and several processes may share the directory.
    """

    name = "disk"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory else default_cache_dir() / "embeddings"
        self._cache = None
        self._lock = threading.RLock()  # _failed may run inside _open

    def __repr__(self) -> str:
        return f"DiskBackend({str(self.directory)!r})"

    def _open(self):
        with self._lock:
            if self._cache is not None and not self.directory.is_dir():
                # the directory was deleted under us: sqlite would keep writing into the unlinked
                # file and lose every entry at exit, so start a fresh cache where it belongs
                self._cache.close()
                self._cache = None
            if self._cache is None:
                import diskcache

                try:
                    self._cache = diskcache.Cache(str(self.directory), size_limit=2**33)
                except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
                    raise self._failed(exc) from exc
        return self._cache

    def _failed(self, exc: BaseException) -> BackendUnavailable:
        # corrupt, unwritable or locked: callers recompute, and the next call tries to reopen
        with self._lock:
            with contextlib.suppress(Exception):
                if self._cache is not None:
                    self._cache.close()
            self._cache = None
        corrupt = isinstance(exc, sqlite3.DatabaseError) and any(
            m in str(exc) for m in ("not a database", "malformed"))
        hint = " (the cache file is corrupt: delete the directory to start a new cache)" if corrupt else ""
        return BackendUnavailable(f"disk cache {self.directory} unusable: {type(exc).__name__}: {exc}{hint}")

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        import diskcache

        cache = self._open()
        out: dict[str, bytes] = {}
        try:
            for key in keys:
                value = cache.get(key)
                if isinstance(value, bytes):
                    out[key] = value
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._failed(exc) from exc
        return out

    def set_many(self, items: Mapping[str, bytes]) -> None:
        import diskcache

        cache = self._open()
        try:
            with cache.transact():  # one transaction: fast for batches, still atomic per entry
                for key, value in items.items():
                    cache.set(key, value)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
