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
    assert len(lines) == 3 and lines[1].startswith("* v2")
    assert lines[2] == "serving history: v1 -> v2 (rollback serves v1)"
    assert main(["kb", "rollback", *store]) == 0
    assert "now serving v1" in capsys.readouterr().out
    assert main(["kb", "versions", *store]) == 0  # a rollback steps back in the history
    assert capsys.readouterr().out.splitlines()[-1] == "serving history: v1"


def test_searching_a_missing_knowledge_base_exits_2_with_a_clear_message(cli, capsys):
    _, store = cli
    assert main(["search", "anything", *store]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_bad_filter_exits_2(cli, capsys):
    docs, store = cli
    main(["ingest", str(docs), *store, "--no-progress"])
    assert main(["search", "x", *store, "--filter", "tenant"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


def test_a_prune_that_reads_no_document_exits_2_names_the_skipped_files_and_keeps_the_base(cli, tmp_path, capsys):
    docs, store = cli
    assert main(["ingest", str(docs), *store, "--no-progress"]) == 0
    other = tmp_path / "exports"
    other.mkdir()
    (other / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (other / "prices.xlsx").write_bytes(b"PK\x03\x04")
    capsys.readouterr()
    assert main(["ingest", str(other), *store, "--prune", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "logo.png" in err and "prices.xlsx" in err and "--allow-empty" in err
    assert main(["search", "moons of Mars", *store, "--json"]) == 0
    assert "mars.md" in capsys.readouterr().out  # nothing was pruned
    assert main(["ingest", str(other), *store, "--prune", "--allow-empty", "--no-progress", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["docs_removed"] == 2 and "logo.png" in out.err


def test_files_no_reader_reads_are_named_on_stderr_and_in_the_json(cli, capsys):
    docs, store = cli
    (docs / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD").write_text("ref: refs/heads/main")  # hidden: never a document, never reported
    assert main(["ingest", str(docs), *store, "--no-progress", "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["docs_seen"] == 2 and summary["files_skipped"] == [str(docs / "diagram.png")]
    assert "skipped 1 file no reader reads" in out.err and "diagram.png" in out.err and "HEAD" not in out.err


def test_a_prune_from_a_folder_of_pdf_and_html_replaces_the_base_with_them_and_never_empties_it(cli, tmp_path, capsys,
                                                                                                monkeypatch):
    import shutil
    import sys
    from pathlib import Path

    docs, store = cli
    assert main(["ingest", str(docs), *store, "--no-progress"]) == 0
    exports = tmp_path / "exports"
    exports.mkdir()
    fixtures = Path(__file__).parent / "fixtures" / "docs"
    for name in ("handbook.pdf", "returns.html"):
        shutil.copy(fixtures / name, exports / name)
    with monkeypatch.context() as patch:  # the case: no reader for these files
        patch.setitem(sys.modules, "pypdfium2", None)
        assert main(["ingest", str(exports), *store, "--prune", "--no-progress"]) == 2
        assert "ctxopt[docs]" in capsys.readouterr().err
    assert main(["search", "moons of Mars", *store, "--json"]) == 0
    assert "mars.md" in capsys.readouterr().out  # the base is intact
    assert main(["ingest", str(exports), *store, "--prune", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["docs_seen"], summary["docs_added"], summary["docs_removed"]) == (2, 2, 2)
