"""Reading documents: JSONL records, plain-text and Markdown files, or a directory of them.

A JSONL line is ``{"id": ..., "title": ..., "text": ..., "metadata": {...}}`` (BEIR's ``_id`` is
accepted for ``id``). A .txt/.md file is one document whose id is its path relative to the folder
given, and whose title is its first Markdown heading or its file name.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ctxopt.errors import InputError
from ctxopt.validate import check_text, parse_json

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (".jsonl", *TEXT_SUFFIXES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    """One document to ingest. ``metadata`` may hold ``tenant``, ``source`` and ``tags`` for filters."""

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InputError(f"a document id must be a non-empty str, got {self.id!r}")
        if not isinstance(self.text, str) or not isinstance(self.title, str):
            raise InputError(f"document {self.id!r}: title and text must be strings")
        if not isinstance(self.metadata, Mapping):
            raise InputError(f"document {self.id!r}: metadata must be a dict, got {type(self.metadata).__name__}")
        check_text((self.id, self.title, self.text, self.metadata), f"document {self.id!r}")


def read_documents(path: str | os.PathLike[str]) -> Iterator[Document]:
    """The documents in a .jsonl, .txt or .md file, or in every such file under a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        for file in files:
            yield from _read_file(file, root=path)
    elif path.is_file():
        yield from _read_file(path, root=path.parent)
    else:
        raise InputError(f"no such file or directory: {str(path)!r}; give a .jsonl, .txt or .md file or a folder")


def _read_file(file: Path, root: Path) -> Iterator[Document]:
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        yield from _read_jsonl(file)
    elif suffix in TEXT_SUFFIXES:
        text = file.read_text(encoding="utf-8", errors="replace")
        heading = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
        rel = file.relative_to(root).as_posix()
        yield Document(id=rel, title=heading.group(1) if heading else file.stem, text=text,
                       metadata={"source": rel})
    else:
        raise InputError(f"cannot read {str(file)!r}: supported files are {', '.join(SUFFIXES)}")


def _read_jsonl(file: Path) -> Iterator[Document]:
    with file.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{file}:{number} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                 "save the file as UTF-8") from None
            if not line.strip():
                continue
            where = f"{file}:{number}"
            record = parse_json(line, where)
            if not isinstance(record, dict):
                raise InputError(f"{where} must be a JSON object with id and text")
            doc_id = record.get("id", record.get("_id"))
            if doc_id is None or "text" not in record:
                raise InputError(f"{where} needs 'id' (or '_id') and 'text'; got keys {sorted(record)}")
            metadata = record.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise InputError(f"{where}: metadata must be an object")
            yield Document(id=str(doc_id), title=str(record.get("title") or ""), text=str(record["text"]),
                           metadata={"source": file.name, **metadata})
