"""``ctxopt search "query" --kb NAME``: what retrieval would add for a query."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ctxopt.cli.kb import add_store_options, open_kb
from ctxopt.cli.progress import spinner
from ctxopt.errors import InputError
from ctxopt.stores.base import FILTER_FIELDS, FUSIONS, MODES, Fusion


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="the search text")
    add_store_options(parser)
    parser.add_argument("--mode", choices=MODES, default="hybrid", help="search mode (default: hybrid)")
    parser.add_argument("-k", type=int, default=5, help="number of chunks (default: 5)")
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"payload filter, repeatable; fields: {', '.join(FILTER_FIELDS)}")
    parser.add_argument("--fusion", choices=FUSIONS, default="dbsf", help="hybrid fusion (default: dbsf, tuned on SciFact train)")
    parser.add_argument("--rrf-k", type=int, default=60, help="RRF k (default: 60)")


def _filters(specs: list[str]) -> dict[str, object] | None:
    filters: dict[str, object] = {}
    for spec in specs:
        field, sep, value = spec.partition("=")
        if not sep or not value:
            raise InputError(f"--filter {spec!r} must look like FIELD=VALUE, e.g. tenant=acme")
        if field in filters:  # the same field twice means any of the values
            previous = filters[field]
            filters[field] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            filters[field] = value
    return filters or None


def _warm_up(kb: Any, query: str, mode: str) -> str:
    """Open the store and, unless the search is by keyword only, embed the query once (loading the
    model the first time), with a spinner on a terminal; says how long each took, so the search's
    own time is reported apart from one-off loading (about 17 s for a cold model)."""
    started = time.perf_counter()
    with spinner(f"opening knowledge base {kb.name!r}"):
        kb.store.collections()
    loaded = f"store opened in {time.perf_counter() - started:.1f} s"
    if mode == "keyword":
        return loaded
    started = time.perf_counter()
    with spinner(f"loading the embedding model {kb.embedder.model_id} (first use only)"):
        embed_with_stats = getattr(kb.embedder, "embed_with_stats", None)
        misses = embed_with_stats([query])[1].misses if embed_with_stats else 1
    if not misses:
        return f"{loaded}; query embedding from the cache, no model load"
    return f"{loaded}; embedding model loaded (and the query embedded) in {time.perf_counter() - started:.1f} s"


def run(args: argparse.Namespace) -> int:
    kb = open_kb(args)
    filters, fusion = _filters(args.filter), Fusion(method=args.fusion, k=args.rrf_k)
    loading = _warm_up(kb, args.query, args.mode)
    started = time.perf_counter()
    hits = kb.search(args.query, mode=args.mode, k=args.k, filters=filters, fusion=fusion)
    ms = (time.perf_counter() - started) * 1000
    if args.json:
        print(json.dumps([{"chunk_id": h.chunk_id, "doc_id": h.doc_id, "score": h.score, "title": h.payload.get("title"),
                           "text": h.text} for h in hits], indent=2))
        return 0
    for rank, hit in enumerate(hits, 1):
        title = hit.payload.get("title") or hit.doc_id
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank:>2}. {hit.score:.4f}  {hit.chunk_id}  {title}\n    {snippet}")
    print(f"{len(hits)} hits in {ms:.0f} ms ({args.mode} search); before it: {loading}")
    return 0
