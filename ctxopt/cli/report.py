"""``ctxopt report FILE.json``: the usage summary of an accounting file saved by ``Accountant.save``."""

from __future__ import annotations

import argparse
import json

from ctxopt.accounting import Accountant
from ctxopt.errors import InputError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.json", help="accounting file written by Accountant.save()")
    parser.add_argument("--json", action="store_true", help="print every usage row and the totals as JSON")
    parser.add_argument("--top", type=int, default=15, metavar="N", help="rows in the text summary (default 15)")
    parser.add_argument("--by", default="tenant,agent,tier", metavar="FIELDS",
                        help="group rows by these comma-separated fields (default tenant,agent,tier)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    accountant = Accountant.load(args.file)
    by = tuple(f.strip() for f in args.by.split(",") if f.strip())
    rows = accountant.usage(by=by)
    if args.json:
        print(json.dumps({"total": accountant.total().to_dict(), "rows": [u.to_dict() for u in rows],
                          "budgets": accountant.budget_status()}, indent=2))
    else:
        print(accountant.summary(top=args.top, by=by))
    return 0
