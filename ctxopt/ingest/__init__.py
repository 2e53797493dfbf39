"""Ingestion: read documents, chunk them by tokens, embed through the cache, upsert into a store.

The knowledge-base logic (content hashes, versions behind an alias, rollback) is in
:mod:`ctxopt.kb`; this package holds the readers and the chunker it uses.
"""

from ctxopt.ingest.chunking import chunk_text, split_sentences
from ctxopt.ingest.readers import Document, read_documents

__all__ = ["Document", "chunk_text", "read_documents", "split_sentences"]
