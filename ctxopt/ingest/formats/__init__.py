"""Readers for document formats beyond plain text: PDF, HTML and DOCX.

Each reader turns one file into ``(title, text)``; the title is "" when the file names none. The
PDF and HTML libraries live in the ``docs`` extra (``pip install "./ctxopt[docs]"`` from a clone)
and are imported only when a file of their kind is read, so a missing library is an error naming
the extra, raised when such a file is met. DOCX needs only the standard library. The libraries
were chosen by measuring speed and text quality on real files (``benchmarks/readers.py``,
``results/readers/``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ctxopt.errors import ConfigError

EXTRA = "docs"
# suffix -> the module of this package that reads it
FORMATS: dict[str, str] = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx"}


def require(module: str, package: str, what: str) -> ModuleType:
    """``module``, or a ConfigError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"reading {what} needs {package}, which is not installed: install ctxopt's {EXTRA} extra "
                          f"(pip install \"./ctxopt[{EXTRA}]\" from the folder that holds your clone) or pip install "
                          f"{package}; {type(exc).__name__}: {exc}") from None


def read_file(file: Path) -> tuple[str, str]:
    """``(title, text)`` of a file whose suffix is in :data:`FORMATS`."""
    module = importlib.import_module(f"ctxopt.ingest.formats.{FORMATS[file.suffix.lower()]}")
    title, text = module.read(file)
    return title, text
