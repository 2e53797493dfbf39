"""The default cache backend: a diskcache directory on this machine."""

from __future__ import annotations

import os
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
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DiskBackend({str(self.directory)!r})"

    def _open(self):
        with self._lock:
            if self._cache is None:
                import diskcache

                try:
                    self._cache = diskcache.Cache(str(self.directory), size_limit=2**33)
                except OSError as exc:
                    raise BackendUnavailable(f"cannot open cache directory {self.directory}: {exc}") from exc
        return self._cache

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        cache = self._open()
        out: dict[str, bytes] = {}
        for key in keys:
            value = cache.get(key)
            if isinstance(value, bytes):
                out[key] = value
        return out

    def set_many(self, items: Mapping[str, bytes]) -> None:
        cache = self._open()
        with cache.transact():  # one transaction: fast for batches, still atomic per entry
            for key, value in items.items():
                cache.set(key, value)

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
