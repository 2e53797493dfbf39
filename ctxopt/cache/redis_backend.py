"""A Redis cache backend, so many agent instances share one embedding cache."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence

from ctxopt.cache.base import BackendUnavailable

KEY_PREFIX = "ctxopt:emb:"
SCHEMES = ("redis", "rediss", "unix")


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ***, for messages and reprs."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL (its password hidden), or None if it can be used.

    >>> url_problem("redis://cache:6379/0") is None
    True
    >>> url_problem("http://cache:6379/0")
    "redis URL 'http://cache:6379/0' has scheme 'http'; use redis://host:port/db, rediss:// (TLS) or unix://path"
    """
    shown = hide_password(str(url))
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "unix":
            _ = parts.port  # a port that is not a number in 0-65535 raises here
    except (ValueError, TypeError, AttributeError) as exc:
        return f"redis URL {shown!r} is invalid ({exc}); use redis://host:port/db"
    if parts.scheme not in SCHEMES:
        return (f"redis URL {shown!r} has scheme {parts.scheme!r}; "
                "use redis://host:port/db, rediss:// (TLS) or unix://path")
    if parts.scheme != "unix" and not re.fullmatch(r"/?\d*", parts.path):
        # redis-py would quietly use database 0 here instead of the one meant
        return f"redis URL {shown!r} names database {parts.path.lstrip('/')!r}; a database is a number: redis://host:port/0"
    return None


class RedisBackend:
    """Entries in Redis at ``url`` (redis://host:port/db, rediss:// for TLS).

    Timeouts are short (``timeout`` seconds, default 0.25) because a cache that hangs is worse
    than no cache: on any connection error the caller recomputes. After a failure the backend
    stays "down" for ``retry_after`` seconds and fails fast instead of waiting out the timeout on
    every request. ``ttl`` (seconds) lets entries expire; None keeps them. ``prefix`` namespaces the
keys (embeddings by default; session state uses its own).
    """

    name = "redis"

    def __init__(self, url: str, *, timeout: float = 0.25, retry_after: float = 5.0, ttl: int | None = None,
                 prefix: str = KEY_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.retry_after = retry_after
        self.ttl = ttl
        self._client = None
        self._down_until = 0.0
        self._last_error = ""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisBackend({hide_password(self.url)!r})"

    def _connect(self):
        # A mistyped URL degrades like an outage (the cache never fails a request), every time,
        # with the reason: it will not fix itself.
        problem = url_problem(self.url)
        if problem:
            raise BackendUnavailable(f"redis unavailable: {problem}")
        if time.monotonic() < self._down_until:
            raise BackendUnavailable(f"redis unavailable: {self._last_error} (retrying in a few seconds)")
        with self._lock:
            if self._client is None:
                import redis

                try:
                    self._client = redis.Redis.from_url(
                        self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                        retry_on_timeout=False, health_check_interval=0,
                    )
                except ValueError as exc:  # what url_problem does not catch, e.g. a bad query option
                    raise self._failed(exc) from exc
        return self._client

    def _failed(self, exc: Exception) -> BackendUnavailable:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._down_until = time.monotonic() + self.retry_after
        return BackendUnavailable(f"redis unavailable: {self._last_error}")

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        import redis

        client = self._connect()
        try:
            values = client.mget([self.prefix + k for k in keys])
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return {k: v for k, v in zip(keys, values) if isinstance(v, bytes)}

    def set_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        import redis

        client = self._connect()
        try:
            # SET is atomic per key; the pipeline only saves round trips.
            pipe = client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(self.prefix + key, value, ex=self.ttl)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
