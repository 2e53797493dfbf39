"""`ctxopt ingest`, `ctxopt search` and `ctxopt kb` end to end on an embedded store."""

from __future__ import annotations

import json

import pytest

from ctxopt.cli import main
from ctxopt.embed import CachedEmbedder, HashEmbedder


@pytest.fixture
def cli(tmp_path, monkeypatch):
    import ctxopt.embed.cache as cache

    embedder = CachedEmbedder(HashEmbedder(64), backend="none")
    monkeypatch.setattr(cache, "get_cached_embedder", lambda *a, **k: embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mars.md").write_text("# Mars\nMars has two moons, Phobos and Deimos.")
    (docs / "venus.txt").write_text("Venus is the hottest planet.")
    store = ["--kb", "planets", "--path", str(tmp_path / "kb")]
    return docs, store


def test_ingest_search_versions_and_rollback(cli, capsys):
    docs, store = cli
    assert main(["ingest", str(docs), *store, "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_written"] == 2
    assert main(["ingest", str(docs), *store, "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_written"] == 0
    (docs / "venus.txt").unlink()
    assert main(["ingest", str(docs), *store, "--prune", "--no-progress"]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert main(["search", "moons of Mars", *store, "--json"]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)] == ["mars.md"]
    assert main(["kb", "versions", *store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("* v2")
    assert main(["kb", "rollback", *store]) == 0
    assert "now serving v1" in capsys.readouterr().out


def test_searching_a_missing_knowledge_base_exits_2_with_a_clear_message(cli, capsys):
    _, store = cli
    assert main(["search", "anything", *store]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_bad_filter_exits_2(cli, capsys):
    docs, store = cli
    main(["ingest", str(docs), *store, "--no-progress"])
    assert main(["search", "x", *store, "--filter", "tenant"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
