"""Embedders and the embedding cache."""

from ctxopt.embed.base import (
    DEFAULT_MODEL,
    Embedder,
    HashEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
)
from ctxopt.embed.cache import CachedEmbedder, CacheStats, get_cached_embedder

__all__ = [
    "DEFAULT_MODEL",
    "CacheStats",
    "CachedEmbedder",
    "Embedder",
    "HashEmbedder",
    "SentenceTransformerEmbedder",
    "get_cached_embedder",
    "get_embedder",
]
