"""Vector stores: the small protocol ingestion and retrieval use, and the Qdrant store."""

from ctxopt.stores.base import FILTER_FIELDS, MODES, Chunk, Fusion, Hit, VectorStore
from ctxopt.stores.qdrant import QdrantStore, open_store

__all__ = ["FILTER_FIELDS", "MODES", "Chunk", "Fusion", "Hit", "QdrantStore", "VectorStore", "open_store"]
