"""``ctxopt optimize FILE.json --tier pro``: fit a saved conversation and show what was saved."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ctxopt.cli.files import read_conversation


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON file: a list of OpenAI-style messages, or {'messages': [...], "
                        "'query': ...}; '-' reads standard input")
    parser.add_argument("--tier", default="pro", help="tier name (default: pro); see `ctxopt tiers`")
    parser.add_argument("--tiers", metavar="TOML", help="tiers file (default: $CTXOPT_TIERS or built-in tiers)")
    parser.add_argument("--pipeline", metavar="TOML", help="pipeline file (default: fit only)")
    parser.add_argument("--query", help="what the answer needs (default: the latest user message)")
    parser.add_argument("--model", help="the model the prompt is for: it picks the tokenizer (o200k for gpt-4o and "
                        "later, an estimate with a margin for Claude and Gemini) and prices the savings")
    parser.add_argument("--encoding", help="count with this tiktoken encoding instead (e.g. o200k_base), for any model")
    parser.add_argument("--price", type=float, metavar="USD", help="price per 1k input tokens, overrides --model's")
    parser.add_argument("--prices", metavar="FILE", help="JSON or TOML of per-model prices in US$ per 1M tokens, "
                        "e.g. {\"my-model\": {\"input\": 3.0, \"cache_read\": 0.3}} (default: $CTXOPT_PRICES)")
    parser.add_argument("--session", metavar="KEY", help="the conversation's key: lay the prompt out for the "
                        "provider's cache and bill it after this session's previous request")
    parser.add_argument("--json", action="store_true", help="print the fitted messages and the report as JSON")


def run(args: argparse.Namespace) -> int:
    from ctxopt.pipeline import Pipeline

    conversation = read_conversation(args.file)
    data = conversation.messages
    query = args.query if args.query is not None else conversation.query
    pipeline = Pipeline.from_config(args.pipeline) if args.pipeline else Pipeline()
    if args.model or args.price is not None or args.encoding or args.prices:
        from ctxopt.pricing import load_prices

        prices = {**(pipeline.prices or {}), **(load_prices(args.prices) if args.prices else {})}
        pipeline = dataclasses.replace(pipeline, encoding=args.encoding or pipeline.encoding,
                                       model=args.model or pipeline.model, prices=prices or None,
                                       price_per_1k=args.price if args.price is not None else pipeline.price_per_1k)
    result = pipeline.optimize(data, args.tier, query, tiers=args.tiers, session=args.session)
    if args.json:
        json.dump({"messages": result.messages, "report": result.report.to_dict()}, sys.stdout,
                  indent=2, ensure_ascii=False)
        print()
    else:
        print(result.report)
        print(f"{len(result.messages)} of {len(data)} messages kept")
    return 0
