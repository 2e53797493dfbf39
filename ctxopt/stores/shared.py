"""One store per location per process, and which backend a location gets.

- ``url=...`` (or $CTXOPT_QDRANT_URL): :class:`~ctxopt.stores.qdrant.QdrantStore` on the server or cluster;
- ``path=...``: :class:`~ctxopt.stores.edge.EdgeStore` (Qdrant Edge), except a folder that already
  holds a qdrant-client local base, which keeps opening as one;
- neither: :class:`~ctxopt.stores.edge.EdgeStore` in a temporary folder, removed at exit.

"Neither" used to be qdrant-client's in-memory mode. Measured on this 2-core machine through the
same knowledge-base API, it builds a small base a little faster (500 chunks: 3.4 s vs 5.2 s; Edge
pays about a second per version for its shard, indexes and WAL), but it scores in Python: hybrid
p50 86 ms at 500 chunks and 0.7 s at 3,000, where Edge answers in 1-20 ms. A base is searched
more often than it is built, so the throwaway base is an Edge shard too. ``QdrantStore()`` stays
available (``KnowledgeBase(store=QdrantStore())``) for code that wants no files at all.

Sharing matters: an on-disk store can be opened by one handle at a time, so every stage and
knowledge base in a process that names the same folder must use the same store object.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from ctxopt.stores.qdrant import DEFAULT_TIMEOUT, URL_ENV, QdrantStore

_shared: dict[tuple[str | None, str | None, float | None], Any] = {}
_shared_lock = threading.Lock()


def is_qdrant_local_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a base written by qdrant-client's local mode (and no Edge state)."""
    from ctxopt.stores.edge import is_edge_folder

    folder = Path(path)
    return (folder / "meta.json").is_file() and not is_edge_folder(folder)


def open_store(*, path: str | os.PathLike[str] | None = None, url: str | None = None, api_key: str | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The process-wide store for ``path`` or ``url`` (else $CTXOPT_QDRANT_URL, else a temporary one).

    A server store is shared per ``timeout`` too, so a stage asking for a shorter bound gets a
    client with it; an embedded store answers in this process and is one store whatever the timeout.
    """
    if path is None and url is None:
        url = os.environ.get(URL_ENV) or None
    key = (os.path.abspath(os.fspath(path)) if path is not None else None, url, timeout if url else None)
    with _shared_lock:
        if key not in _shared:
            if not _shared:
                atexit.register(_close_shared)
            _shared[key] = _make(path, url, api_key, timeout)
        return _shared[key]


def _make(path: str | os.PathLike[str] | None, url: str | None, api_key: str | None, timeout: float) -> Any:
    from ctxopt.stores.edge import EdgeStore

    if url is not None:
        return QdrantStore(url=url, api_key=api_key, timeout=timeout)
    if path is not None and is_qdrant_local_folder(path):
        return QdrantStore(path=str(path), timeout=timeout)
    return EdgeStore(path)


def _close_shared() -> None:
    # Closing before interpreter shutdown releases on-disk locks cleanly (and avoids qdrant-client's
    # noisy __del__ when modules are already torn down).
    for store in list(_shared.values()):
        with contextlib.suppress(Exception):  # at interpreter exit nothing can be done about a failed close
            store.close()
