"""What a session keeps between requests: the prints of its previous prompt, in the shared cache.

The layout needs no state (it is replayed from the messages); the bill does: which prefix the
provider holds depends on the prompt sent before. That print (token counts and hashes, no text)
lives in a cache backend, disk by default ($CTXOPT_CACHE_DIR/sessions) or Redis when
$CTXOPT_REDIS_URL (or ``redis_url=``) is set, so every process serving a conversation bills it the
same way. An unreachable backend degrades to a cold-cache bill, never to a failed request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from typing import Any

from ctxopt.cache.base import BackendUnavailable, CacheBackend, default_cache_dir, open_backend
from ctxopt.errors import InputError
from ctxopt.sessions.billing import PromptPrint

REDIS_PREFIX = "ctxopt:session:"
TTL_SECONDS = 24 * 3600  # a provider's prompt cache lives minutes to an hour; a day is plenty


@dataclasses.dataclass(frozen=True)
class Previous:
    """The prints of a session's previous request: the prompt sent, and the prompt as it came in."""

    sent: PromptPrint | None = None
    unoptimised: PromptPrint | None = None


class SessionStore:
    """Previous-prompt prints per session key, in a shared cache backend.

    ``backend`` is "disk", "redis", "none" or a backend object; ``None`` picks Redis when a URL is
    set, else disk. Constructing it opens nothing; the backend opens on first use.
    """

    def __init__(self, backend: str | CacheBackend | None = None, *, directory: str | os.PathLike[str] | None = None,
                 redis_url: str | None = None, ttl: int | None = TTL_SECONDS) -> None:
        self.backend = backend
        self.directory = directory
        self.redis_url = redis_url
        self.ttl = ttl
        self._opened: CacheBackend | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SessionStore({self._open()!r})"

    def _open(self) -> CacheBackend | None:
        with self._lock:
            if self._opened is None:
                directory = self.directory or default_cache_dir() / "sessions"
                self._opened = open_backend(self.backend, directory=directory, redis_url=self.redis_url,
                                            redis_prefix=REDIS_PREFIX, redis_ttl=self.ttl)
            return self._opened

    def load(self, key: str) -> tuple[Previous, str | None]:
        """The session's previous prints (empty for a new session) and why not, if the backend failed."""
        backend = self._open()
        if backend is None:
            return Previous(), None
        try:
            raw = backend.get_many([_key(key)]).get(_key(key))
        except BackendUnavailable as exc:
            return Previous(), str(exc)
        if raw is None:
            return Previous(), None
        try:
            data = json.loads(raw)
            return Previous(*(PromptPrint.from_json(json.dumps(data[k]).encode()) if data.get(k) else None
                              for k in ("sent", "unoptimised"))), None
        except (ValueError, KeyError, TypeError) as exc:  # a damaged entry is a cold cache, then rewritten
            return Previous(), f"session state unreadable ({type(exc).__name__}); billed as a cold cache"

    def save(self, key: str, previous: Previous) -> str | None:
        """Store the prints; returns why not if the backend failed (the request still succeeds)."""
        backend = self._open()
        if backend is None:
            return None
        data = {k: json.loads(p.to_json()) if p is not None else None
                for k, p in (("sent", previous.sent), ("unoptimised", previous.unoptimised))}
        try:
            backend.set_many({_key(key): json.dumps(data, separators=(",", ":")).encode()})
        except BackendUnavailable as exc:
            return str(exc)
        return None


def _key(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()


def check_key(session: Any) -> str:
    if not isinstance(session, str) or not session:
        raise InputError(f"session must be a non-empty str naming the conversation (e.g. a thread id), got {session!r}")
    return session


_default: list[SessionStore] = []  # the process-wide store, created on first use
_default_lock = threading.Lock()


def default_store() -> SessionStore:
    """The process-wide store: Redis when $CTXOPT_REDIS_URL is set, else $CTXOPT_CACHE_DIR/sessions."""
    with _default_lock:
        if not _default:
            _default.append(SessionStore())
        return _default[0]
