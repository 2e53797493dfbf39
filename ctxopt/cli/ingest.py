"""``ctxopt ingest PATH... --kb NAME``: chunk, embed (through the cache) and index documents.

Each ingest that changes something builds a new version and then switches the knowledge base to
it; unchanged documents are skipped, and an ingest that changes nothing writes nothing. Files in a
folder that no reader reads are skipped and named on stderr (and in ``--json`` as
``files_skipped``); a ``--prune`` that read no document is refused unless ``--allow-empty``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ctxopt.cli.kb import add_store_options, open_kb
from ctxopt.errors import InputError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help=".jsonl (id, title, text, metadata per line), .txt, .md, .pdf, .html or .docx files, "
                        "or folders (PDF and HTML need ctxopt's docs extra)")
    add_store_options(parser)
    parser.add_argument("--prune", action="store_true", help="remove documents that are not in PATH... any more")
    parser.add_argument("--allow-empty", action="store_true",
                        help="let --prune empty the knowledge base when PATH... holds no document (refused otherwise)")
    parser.add_argument("--chunk-tokens", type=int, default=512, help="chunk size in tokens (default: 512)")
    parser.add_argument("--overlap", type=int, default=64, help="token overlap between chunks (default: 64)")
    parser.add_argument("--keep", type=int, default=3, help="versions to keep for rollback (default: 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ctxopt.ingest.readers import read_documents, short_list

    kb = open_kb(args, writes=True, chunk_tokens=args.chunk_tokens, overlap=args.overlap, keep=args.keep)
    skipped: list[str] = []
    documents = [doc for path in args.paths for doc in read_documents(path, skipped=skipped)]
    if args.prune and not documents and not args.allow_empty:
        why = f" (skipped {short_list(skipped)}: no reader reads them)" if skipped else ""
        raise InputError(f"{' '.join(args.paths)} held no document{why}, so --prune would empty knowledge base "
                         f"{args.kb!r}; nothing was changed. Check PATH, or add --allow-empty to empty it on purpose")
    if skipped:
        print(f"ctxopt ingest: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} no reader reads: "
              f"{short_list(skipped)}", file=sys.stderr)
    summary = kb.ingest(documents, prune=args.prune, allow_empty=args.allow_empty, progress=not args.no_progress)
    print(json.dumps({**summary.to_dict(), "files_skipped": skipped}, indent=2) if args.json else summary)
    return 0
