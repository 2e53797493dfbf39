"""The cache backend interface, and how a backend is chosen from plain settings.

A backend maps str keys to bytes. Rules every backend follows:

1. ``get_many`` returns only the keys it has; a missing key is simply absent.
2. ``set_many`` is atomic per key: a reader sees the old value or the new one, never half.
3. A backend that cannot be reached raises :class:`BackendUnavailable`; callers degrade to
   recomputing, so an outage costs time, never a failed request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ctxopt.errors import ConfigError

CACHE_DIR_ENV = "CTXOPT_CACHE_DIR"
REDIS_URL_ENV = "CTXOPT_REDIS_URL"
BACKENDS = ("disk", "redis", "none")


class BackendUnavailable(Exception):
    """The backend could not be reached (Redis down, timeout). Not a CtxoptError: it is caught."""


@runtime_checkable
class CacheBackend(Protocol):
    name: str

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]: ...

    def set_many(self, items: Mapping[str, bytes]) -> None: ...


def default_cache_dir() -> Path:
    """$CTXOPT_CACHE_DIR, else ~/.cache/ctxopt."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ctxopt"


def open_backend(
    backend: str | CacheBackend | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
    redis_ttl: int | None = None,
) -> CacheBackend | None:
    """A backend from plain settings: "disk" (default), "redis" or "none" (no cache).

    ``backend=None`` means Redis when ``redis_url`` or $CTXOPT_REDIS_URL is set, else disk.
    ``redis_prefix`` and ``redis_ttl`` namespace and expire Redis keys (embeddings by default).
    """
    if backend is not None and not isinstance(backend, str):
        return backend
    url = redis_url or os.environ.get(REDIS_URL_ENV)
    choice = backend or ("redis" if url else "disk")
    if choice == "disk":
        from ctxopt.cache.disk import DiskBackend

        return DiskBackend(directory)
    if choice == "redis":
        if not url:
            raise ConfigError("the redis cache needs a URL", hint=f"pass redis_url='redis://host:6379/0' or set {REDIS_URL_ENV}",
                              cli_hint=f"give --redis-url redis://host:6379/0 or set {REDIS_URL_ENV}")
        from ctxopt.cache.redis_backend import RedisBackend

        options: dict[str, Any] = {"ttl": redis_ttl}
        if redis_prefix is not None:
            options["prefix"] = redis_prefix
        return RedisBackend(url, **options)
    if choice == "none":
        return None
    raise ConfigError(f"unknown cache backend {choice!r}; choose from {', '.join(BACKENDS)}")
