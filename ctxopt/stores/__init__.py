"""Vector stores: the small protocol ingestion and retrieval use, and its backends (Qdrant Edge
embedded on disk, qdrant-client in memory and on Qdrant servers)."""

from ctxopt.stores.base import FILTER_FIELDS, MODES, Chunk, Fusion, Hit, VectorStore
from ctxopt.stores.edge import EdgeStore
from ctxopt.stores.qdrant import QdrantStore
from ctxopt.stores.shared import open_store

__all__ = ["FILTER_FIELDS", "MODES", "Chunk", "EdgeStore", "Fusion", "Hit", "QdrantStore", "VectorStore", "open_store"]
