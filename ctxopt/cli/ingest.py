"""``ctxopt ingest PATH... --kb NAME``: chunk, embed (through the cache) and index documents.

Each ingest that changes something builds a new version and then switches the knowledge base to
it; unchanged documents are skipped, and an ingest that changes nothing writes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json

from ctxopt.cli.kb import add_store_options, open_kb


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help=".jsonl (id, title, text, metadata per line), .txt or .md files, or folders")
    add_store_options(parser)
    parser.add_argument("--prune", action="store_true", help="remove documents that are not in PATH... any more")
    parser.add_argument("--chunk-tokens", type=int, default=512, help="chunk size in tokens (default: 512)")
    parser.add_argument("--overlap", type=int, default=64, help="token overlap between chunks (default: 64)")
    parser.add_argument("--keep", type=int, default=3, help="versions to keep for rollback (default: 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ctxopt.ingest.readers import read_documents

    kb = open_kb(args, writes=True, chunk_tokens=args.chunk_tokens, overlap=args.overlap, keep=args.keep)
    documents = itertools.chain.from_iterable(read_documents(p) for p in args.paths)
    summary = kb.ingest(documents, prune=args.prune, progress=not args.no_progress)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary)
    return 0
