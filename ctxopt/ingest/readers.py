"""Reading documents: JSONL records, text, Markdown, PDF, HTML and DOCX files, or a folder of them.

A JSONL line is ``{"id": ..., "title": ..., "text": ..., "metadata": {...}}`` (BEIR's ``_id`` is
accepted for ``id``; ``text`` must be a string, ``title`` a string or null). Any other file is one
document whose id is its path relative to the folder given, with ``source`` the same path; its title
is a .md file's first heading, a PDF's or DOCX's title property or an HTML page's ``<title>``, else
the file name. PDF and HTML need the ``docs`` extra (``ctxopt[docs]``), see
:mod:`ctxopt.ingest.formats`.

In a folder, files and folders whose names start with "." (``.git``, ``.DS_Store``) are not read.
A file no reader reads (an image, a spreadsheet) is an error naming it, unless the caller passes a
``skipped`` list, which then receives its path: a file is never dropped without a word.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ctxopt.errors import InputError
from ctxopt.ingest.formats import FORMATS, read_file
from ctxopt.validate import check_text, parse_json

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (".jsonl", *TEXT_SUFFIXES, *FORMATS)
# Metadata fields that retrieval filters on (ctxopt.stores.base.FILTER_FIELDS, less the document id).
SINGLE_FIELDS = ("tenant", "source")


def _is_label(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    """One document to ingest.

    ``metadata`` may hold the fields retrieval filters on: ``tenant`` and ``source`` (one str
    each; a whole number is taken as its digits, None as not set) and ``tags`` (one str is one tag,
    or a list of str). Other keys are kept with the chunks as they are.
    """

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
        for field in SINGLE_FIELDS:
            value = self.metadata.get(field)
            if value is not None and not _is_label(value):
                why = " (a document belongs to one tenant: ingest a copy per tenant, or group with tags)" \
                    if field == "tenant" else ""
                raise InputError(f"document {self.id!r}: {field} must be one str, got {value!r}{why}")
        tags = self.metadata.get("tags")
        if tags is not None and not _is_label(tags) and not (
                isinstance(tags, (list, tuple)) and all(_is_label(t) for t in tags)):
            raise InputError(f"document {self.id!r}: tags must be a str (one tag) or a list of str, got {tags!r}")

    def filter_fields(self) -> dict[str, Any]:
        """``tenant``, ``source`` (str, "" when not set) and ``tags`` (list of str) as stored for
        filters, plus the rest of the metadata under ``metadata``.

        >>> Document(id="a", text="x", metadata={"tags": "billing", "lang": "en"}).filter_fields()
        {'tenant': '', 'source': '', 'tags': ['billing'], 'metadata': {'lang': 'en'}}
        """
        rest = dict(self.metadata)
        fields: dict[str, Any] = {f: "" if rest.get(f) is None else str(rest.get(f)) for f in SINGLE_FIELDS}
        for f in SINGLE_FIELDS:
            rest.pop(f, None)
        tags = rest.pop("tags", None)
        fields["tags"] = [] if tags is None else [str(tags)] if _is_label(tags) else [str(t) for t in tags]
        return {**fields, "metadata": rest}


def read_documents(path: str | os.PathLike[str], *, skipped: list[str] | None = None) -> Iterator[Document]:
    """The documents in a file (.jsonl, .txt, .md, .pdf, .html, .docx), or in every such file under a folder.

    A file in the folder that no reader reads raises :class:`~ctxopt.errors.InputError` naming it,
    before anything is read; pass a list as ``skipped`` to go on without such files and get their
    paths in it instead.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        unsupported = [str(p) for p in files if p.suffix.lower() not in SUFFIXES]
        if unsupported and skipped is None:
            raise InputError(f"{len(unsupported)} file(s) in {str(path)!r} have no reader: "
                             f"{short_list(unsupported)}; readers exist for {', '.join(SUFFIXES)}. Remove them, or "
                             "pass skipped=[] to read_documents to skip them and get their names")
        if skipped is not None:
            skipped.extend(unsupported)
        for file in files:
            if file.suffix.lower() in SUFFIXES:
                yield from _read_file(file, root=path)
    elif path.is_file():
        yield from _read_file(path, root=path.parent)
    else:
        raise InputError(f"no such file or directory: {str(path)!r}; give a file ({', '.join(SUFFIXES)}) or a folder")


def short_list(paths: list[str], most: int = 5) -> str:
    shown = ", ".join(repr(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _read_file(file: Path, root: Path) -> Iterator[Document]:
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        yield from _read_jsonl(file)
    elif suffix in TEXT_SUFFIXES or suffix in FORMATS:
        if suffix in FORMATS:
            title, text = read_file(file)
        else:
            text = file.read_text(encoding="utf-8", errors="replace")
            heading = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
            title = heading.group(1) if heading else ""
        rel = file.relative_to(root).as_posix()
        yield Document(id=rel, title=title or file.stem, text=text, metadata={"source": rel})
    else:
        raise InputError(f"cannot read {str(file)!r}: supported files are {', '.join(SUFFIXES)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object"}[type(value)]


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
            if not _is_label(doc_id):
                raise InputError(f"{where}: 'id' must be a string or a whole number, got {_json_type(doc_id)}")
            text, title = record["text"], record.get("title")
            if not isinstance(text, str):
                raise InputError(f"{where}: 'text' must be a string, got {_json_type(text)}")
            if title is not None and not isinstance(title, str):
                raise InputError(f"{where}: 'title' must be a string or null, got {_json_type(title)}")
            metadata = record.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise InputError(f"{where}: metadata must be an object")
            try:
                doc = Document(id=str(doc_id), title=title or "", text=text, metadata={"source": file.name, **metadata})
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            yield doc
