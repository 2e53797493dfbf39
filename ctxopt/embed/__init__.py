"""Embedders and the embedding cache."""

from ctxopt.embed.base import (
    DEFAULT_MODEL,
    Embedder,
    HashEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
)

__all__ = ["DEFAULT_MODEL", "Embedder", "HashEmbedder", "SentenceTransformerEmbedder", "get_embedder"]
