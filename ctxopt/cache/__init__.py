"""Cache backends behind one small interface: bytes in, bytes out, keyed by content hash.

``DiskBackend`` (diskcache, the default) keeps one machine's cache in a directory;
``RedisBackend`` lets many agent instances share one cache. The embedding cache
(:mod:`ctxopt.embed.cache`) is the only user today; any content-keyed cache can use them.
"""

from ctxopt.cache.base import BackendUnavailable, CacheBackend, open_backend
from ctxopt.cache.disk import DiskBackend
from ctxopt.cache.redis_backend import RedisBackend

__all__ = ["BackendUnavailable", "CacheBackend", "DiskBackend", "RedisBackend", "open_backend"]
