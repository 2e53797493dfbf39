"""The command line: ``ctxopt COMMAND ...`` (also ``python -m ctxopt``).

Each command lives in its own module in this folder with two functions: ``add_parser(subparsers)``
and ``run(args) -> int``. ``COMMANDS`` names them; a command module is imported only when it is
used, so ``ctxopt tiers`` never loads a model. Bad input exits with code 2 and one clear line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ctxopt import __version__
from ctxopt.errors import CtxoptError, InputError

COMMANDS: dict[str, str] = {
    "optimize": "fit OpenAI-style messages from a JSON file to a tier",
    "tiers": "list the tiers in effect",
    "report": "summarise per-tenant usage: a file saved by Accountant.save(), or the shared store of ctxopt serve (--redis)",
    "bench": "run the benchmark suite and write the results folder",
    "tune": "recommend tier limits from recall curves or an evaluation set",
    "ingest": "chunk, embed and index documents into a versioned knowledge base",
    "kb": "list, roll back or delete from knowledge-base versions",
    "search": "search a knowledge base (dense, keyword or hybrid)",
    "serve": "run the OpenAI/Anthropic-compatible proxy that optimises every request (needs ctxopt[serve])",
}


def _module(name: str):
    return importlib.import_module(f"ctxopt.cli.{name.replace('-', '_')}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctxopt", description="Fit an agent's prompt to a token budget.")
    parser.add_argument("--version", action="version", version=f"ctxopt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if only is None or only == name:
            _module(name).add_parser(sub.add_parser(name, help=help_text, description=help_text))
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _check_text_arguments(argv)
        return int(_module(args.command).run(args) or 0)
    except CtxoptError as exc:
        print(f"ctxopt {args.command}: error: {exc.cli_message()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ctxopt ... | head` closed the pipe: not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"ctxopt {args.command}: interrupted", file=sys.stderr)
        return 130


def _check_text_arguments(argv: Sequence[str]) -> None:
    """InputError for an argument that is not text: bytes the shell passed that are not UTF-8 arrive
    as lone surrogates, which no query, filter or name can hold. An existing path is fine as is."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            if not os.path.exists(arg):
                raise InputError(f"argument {arg!a} is not valid UTF-8 text; type it again, or run in a "
                                 "UTF-8 locale (LANG=C.UTF-8)") from None
