"""Benchmark datasets: where they live and how they are read.

``data_dir()`` is ``benchmarks/data`` in the repository, or $CTXOPT_DATA.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from ctxopt.errors import ConfigError

DATA_ENV = "CTXOPT_DATA"


def data_dir() -> Path:
    """The folder holding the benchmark datasets ($CTXOPT_DATA, else benchmarks/data)."""
    env = os.environ.get(DATA_ENV)
    path = Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "benchmarks" / "data"
    if not path.is_dir():
        raise ConfigError(f"benchmark data folder {str(path)!r} does not exist; set {DATA_ENV} to the folder "
                          "holding scifact/, hotpotqa/ and locomo/")
    return path


def load_beir(name: str, split: str) -> tuple[dict[str, dict], dict[str, str], dict[str, dict[str, int]]]:
    """A BEIR dataset: corpus {id: {"title", "text"}}, queries {id: text}, qrels {query: {doc: grade}}.

    Only queries that have judgements in ``split`` are returned.
    """
    folder = data_dir() / name
    corpus = {}
    with (folder / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            corpus[str(record["_id"])] = {"title": record.get("title", ""), "text": record["text"]}
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8", newline="") as rows:
        reader = csv.reader(rows, delimiter="\t")
        next(reader)  # header: query-id, corpus-id, score
        for query_id, doc_id, score in reader:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if str(record["_id"]) in qrels:
                queries[str(record["_id"])] = record["text"]
    return corpus, queries, qrels
