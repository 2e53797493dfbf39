"""``ctxopt report``: the usage summary of an accounting file saved by ``Accountant.save``, or of the
usage every ``ctxopt serve`` worker and instance writes to Redis (``--redis URL``)."""

from __future__ import annotations

import argparse
import json

from ctxopt.accounting import Accountant
from ctxopt.accounting.accountant import total_row, usage_rows
from ctxopt.errors import InputError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.json", nargs="?", help="accounting file written by Accountant.save()")
    parser.add_argument("--redis", metavar="URL", help="read the shared usage in Redis instead of a file "
                        "(the [server] redis_url of ctxopt serve)")
    parser.add_argument("--prefix",
                        help="key prefix of the shared usage (default: ctxopt serve's, ctxopt:serve:usage)")
    parser.add_argument("--month", metavar="YYYY-MM", help="with --redis: that month only (default: every month)")
    parser.add_argument("--tenant", metavar="NAME", help="that tenant's requests only")
    parser.add_argument("--json", action="store_true", help="print every usage row and the totals as JSON")
    parser.add_argument("--top", type=int, default=15, metavar="N", help="rows in the text summary (default 15)")
    parser.add_argument("--by", default="tenant,agent,tier", metavar="FIELDS",
                        help="group rows by these comma-separated fields (default tenant,agent,tier)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    if (args.file is None) == (args.redis is None):
        raise InputError("give either an accounting FILE.json or --redis URL (not both)")
    if args.month is not None and args.redis is None:
        raise InputError("--month needs --redis: an accounting file keeps no months")
    if args.redis is not None:
        from ctxopt.accounting.redis_store import SERVE_PREFIX, RedisUsageStore

        accountant = Accountant(store=RedisUsageStore(args.redis, prefix=args.prefix or SERVE_PREFIX, month=args.month))
    else:
        accountant = Accountant.load(args.file)
    by = tuple(f.strip() for f in args.by.split(",") if f.strip())
    if args.json:
        tallies = accountant.tallies()  # one read: the rows and the total agree
        rows = usage_rows(tallies, by, tenant=args.tenant)
        budgets = {t: s for t, s in accountant.budget_status().items() if args.tenant in (None, t)}
        print(json.dumps({"month": args.month, "tenant": args.tenant,
                          "total": total_row(tallies, tenant=args.tenant).to_dict(),
                          "rows": [u.to_dict() for u in rows], "budgets": budgets}, indent=2))
    else:
        print(accountant.summary(top=args.top, by=by, tenant=args.tenant))
    return 0
