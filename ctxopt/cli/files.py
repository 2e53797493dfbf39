"""The files the command line reads and writes: JSON inputs, conversation files, output paths.

Reading a conversation lives here, in one function, so every command reads the same shapes and
a new shape (another provider's request format) is added in one place.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctxopt.errors import InputError
from ctxopt.validate import parse_json

CONVERSATION_KEYS = ("messages", "query")
# What a top-level key usually means, so the error can say where its content belongs instead.
_KEY_ADVICE = {
    "system": "is an Anthropic-style system prompt: put it first in 'messages' as {'role': 'system', 'content': ...}",
    "model": "names the model: give it as --model (it prices the savings)",
}


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A conversation file's messages, and its query when it names one."""

    messages: list[Any]
    query: str | None = None


def read_json(path: str) -> Any:
    """JSON from a file path or '-', with errors that say which file and where."""
    name = "standard input" if path == "-" else repr(path)
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    return parse_json(text, name)


def read_conversation(path: str) -> Conversation:
    """The conversation in a JSON file: a list of OpenAI-style messages, or ``{"messages": [...],
    "query": "..."}``. Any other top-level key is an error naming it: ctxopt never drops part of a
    file without a word (an Anthropic request's ``system`` prompt, say)."""
    data = read_json(path)
    name = "standard input" if path == "-" else repr(path)
    if not isinstance(data, Mapping):
        return Conversation(messages=data)
    unknown = [key for key in data if key not in CONVERSATION_KEYS]
    if "messages" not in data:
        has = f" (it has {', '.join(map(repr, unknown))})" if unknown else ""
        raise InputError(f"{name} has no 'messages' key{has}; give a list of messages or {{'messages': [...]}}")
    if unknown:
        advice = "".join(f"; {k!r} {_KEY_ADVICE[k]}" for k in unknown if k in _KEY_ADVICE)
        raise InputError(f"{name} has top-level key(s) {', '.join(map(repr, unknown))} that ctxopt does not read "
                         f"and would drop; a conversation file is a list of messages or an object with only "
                         f"{' and '.join(map(repr, CONVERSATION_KEYS))}: move their content into 'messages' or "
                         f"remove them{advice}")
    return Conversation(messages=data["messages"], query=data.get("query"))


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a Path if a file can be written there, else an InputError naming ``flag``: run
    before any work, so a typo in an output path does not cost a finished computation."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise InputError(f"{flag} {str(path)!r} is a folder; give a file path such as {str(path / 'out')!r}")
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"{flag} {str(path)!r}: folder {str(folder)!r} {why}; create it first "
                         f"(mkdir -p {folder}) or choose another path")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {str(path)!r} is not writable; choose a path you can write to")
    return path


def check_output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a Path if it is a writable folder or one that can be created, else an InputError
    naming ``flag``."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if existing == path and not path.is_dir():
        raise InputError(f"{flag} {str(path)!r} is a file; give a folder")
    if not existing.is_dir():
        raise InputError(f"{flag} {str(path)!r}: {str(existing)!r} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK):
        raise InputError(f"{flag} {str(path)!r}: cannot write in {str(existing)!r}; choose another folder")
    return path
