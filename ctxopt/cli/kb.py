"""``ctxopt kb versions|rollback|delete --kb NAME``: the versions of a knowledge base.

Also holds the options every knowledge-base command shares (where the store is, which cache).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ctxopt.cli.files import check_output_dir
from ctxopt.errors import InputError


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """--kb, --path/--url and the embedding-cache options, shared by ingest, kb and search."""
    parser.add_argument("--kb", default="default", help="knowledge base name (default: default)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--path", help="embedded store folder, Qdrant Edge (default: $CTXOPT_QDRANT_URL if set, "
                       "else ~/.cache/ctxopt/qdrant, or under $CTXOPT_CACHE_DIR)")
    where.add_argument("--url", help="Qdrant server or cluster URL, e.g. http://localhost:6333 "
                       "(API key from $CTXOPT_QDRANT_API_KEY)")
    parser.add_argument("--cache", choices=("disk", "redis", "none"),
                        help="embedding cache (default: redis if $CTXOPT_REDIS_URL is set, else disk)")
    parser.add_argument("--cache-dir", help="disk cache folder (default: $CTXOPT_CACHE_DIR or ~/.cache/ctxopt)")
    parser.add_argument("--redis-url", help="shared Redis cache, e.g. redis://cache:6379/0 (or $CTXOPT_REDIS_URL)")
    parser.add_argument("--model", help="embedding model (default: all-MiniLM-L6-v2, or $CTXOPT_MODEL)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def open_kb(args: argparse.Namespace, *, writes: bool = False, **options: Any):
    """The knowledge base the shared options name; ``writes`` checks first that an embedded
    store's folder can be written (or created)."""
    from ctxopt.cache.base import default_cache_dir
    from ctxopt.cache.redis_backend import url_problem
    from ctxopt.embed.cache import get_cached_embedder
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stores.qdrant import URL_ENV
    from ctxopt.stores.shared import open_store

    path, url = args.path, args.url
    if writes and path is not None:
        check_output_dir(path, "--path")
    if path is None and url is None:
        url = os.environ.get(URL_ENV) or None
        if url is None:
            path = str(default_cache_dir() / "qdrant")
    if args.redis_url is not None and (problem := url_problem(args.redis_url)):
        raise InputError(f"--redis-url: {problem}")
    embedder = get_cached_embedder(args.model, backend=args.cache, directory=args.cache_dir, redis_url=args.redis_url)
    return KnowledgeBase(args.kb, store=open_store(path=path, url=url), embedder=embedder, **options)


def add_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_store_options(sub.add_parser("versions", help="list the versions and which one is served"))
    rollback = sub.add_parser("rollback", help="serve an earlier version (default: the one before)")
    add_store_options(rollback)
    rollback.add_argument("--to", type=int, metavar="N", help="version number to serve")
    delete = sub.add_parser("delete", help="a new version without the given documents")
    add_store_options(delete)
    delete.add_argument("doc_ids", nargs="+", metavar="DOC_ID")


def run(args: argparse.Namespace) -> int:
    kb = open_kb(args, writes=args.action != "versions")
    if args.action == "versions":
        versions = kb.versions()
        if args.json:
            print(json.dumps([v.__dict__ for v in versions], indent=2))
        elif not versions:
            print(f"knowledge base {args.kb!r} has no versions yet; run `ctxopt ingest PATH --kb {args.kb}`")
        for v in [] if args.json else versions:
            mark = "*" if v.current else " "
            print(f"{mark} v{v.number:<4} {v.status:<9} {v.docs:>7} docs {v.chunks:>8} chunks  {v.created}")
        served = [] if args.json else [c.rsplit("__v", 1)[-1] for c in kb.history()]
        if served:  # what a rollback goes back to: the serving history, not the numbers
            target = kb.rollback_target()
            print(f"serving history: {' -> '.join('v' + n for n in served)}"
                  + (f" (rollback serves v{target.number})" if target is not None else ""))
        return 0
    if args.action == "rollback":
        version = kb.rollback(args.to)
        print(json.dumps(version.__dict__) if args.json else f"{args.kb}: now serving v{version.number} "
              f"({version.docs} docs, {version.chunks} chunks, created {version.created})")
        return 0
    if args.action == "delete":
        summary = kb.delete(args.doc_ids)
        if summary.docs_removed == 0:
            raise InputError(f"none of {', '.join(args.doc_ids)} is in knowledge base {args.kb!r}; nothing deleted")
        print(json.dumps(summary.to_dict()) if args.json else summary)
        return 0
    return 2
