import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctxopt.cli import main

EXAMPLE = Path(__file__).parents[1] / "examples" / "oncall_conversation.json"


def test_optimize_shows_tokens_before_after_and_what_each_stage_did(capsys):
    assert main(["optimize", str(EXAMPLE), "--tier", "free"]) == 0
    out = capsys.readouterr().out
    # the default pipeline cuts the long log instead of dropping the tool call with it
    assert "tier free:" in out and "->" in out and "prune_tool_output" in out and "18 of 18 messages kept" in out


def test_optimize_json_output_fits_the_tier(capsys):
    assert main(["optimize", str(EXAMPLE), "--tier", "free", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"]["tokens_after"] <= data["report"]["budget"] == 3584
    assert data["messages"][-1]["content"].startswith("OK. Customer impact")


@pytest.mark.parametrize("content, args, message", [
    (b"[1", [], "is not valid JSON"),
    (b"\xff\xfe[]", [], "is not UTF-8"),
    (b'"hello"', [], "messages must be a list"),
    (b'{"msgs": []}', [], "has no 'messages' key"),
    (b'[{"role": "wizard", "content": "x"}]', [], "role 'wizard'"),
    (b'[{"role": "user", "content": "x"}]', ["--tier", "gold"], "unknown tier 'gold'"),
    (b'[{"role": "user", "content": "x"}]', ["--model", "nope"], "how to count tokens for model 'nope'"),
])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, capsys, content, args, message):
    path = tmp_path / "in.json"
    path.write_bytes(content)
    assert main(["optimize", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_exits_2(capsys):
    assert main(["optimize", "/no/such/file.json"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_tiers_lists_the_tiers_in_effect(tmp_path, capsys):
    path = tmp_path / "tiers.toml"
    path.write_text("[team]\nlimit = 9000\nreserve = 1000\n")
    assert main(["tiers", "--tiers", str(path)]) == 0
    out = capsys.readouterr().out
    assert "team" in out and "9000" in out and "free" in out


def test_a_bad_tiers_file_exits_2(tmp_path, capsys):
    path = tmp_path / "tiers.toml"
    path.write_text("[free]\nlimit = -3\n")
    assert main(["tiers", "--tiers", str(path)]) == 2
    assert "limit must be a non-negative whole number" in capsys.readouterr().err


def test_python_dash_m_ctxopt_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "ctxopt", "tiers", "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["free"]["limit"] == 4096


def test_ctxopt_version_prints_the_package_version(capsys):
    import ctxopt

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ctxopt {ctxopt.__version__}"


# -- a conversation file is read whole, or refused (issue 11) --------------------------------------

def test_an_anthropic_shaped_file_is_refused_naming_the_system_key_instead_of_dropping_the_prompt(tmp_path, capsys):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"system": "Answer in French.", "messages": [{"role": "user", "content": "Hi"}]}))
    assert main(["optimize", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'system'" in err and "'messages' and 'query'" in err and "{'role': 'system'" in err


@pytest.mark.parametrize("key", ["model", "tools", "temperature", "Messages"])
def test_every_unknown_top_level_key_of_a_conversation_file_is_an_error(tmp_path, capsys, key):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}], key: 1}))
    assert main(["optimize", str(path)]) == 2
    assert f"top-level key(s) '{key}'" in capsys.readouterr().err


def test_a_conversation_file_with_messages_and_query_is_read_whole(tmp_path, capsys):
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}], "query": "greeting"}))
    assert main(["optimize", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"] == [{"role": "user", "content": "Hi"}]


# -- errors name the flag or file that fixes them, not a Python argument (issue 11) ----------------

def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


CHAT = '[{"role": "user", "content": "Hi"}]'
CLI_FIXES = [
    ("unknown tier", lambda p: ["optimize", _file(p, "m.json", CHAT), "--tier", "gold"], "--tiers FILE", "Tier("),
    ("unknown --model", lambda p: ["optimize", _file(p, "m.json", CHAT), "--model", "gpt-99"], "--price USD",
     "price_per_1k="),
    ("unknown model in a pipeline file", lambda p: ["optimize", _file(p, "m.json", CHAT), "--pipeline",
                                                    _file(p, "p.toml", 'model = "gpt-99"\n')], "--price", "price_per_1k="),
    ("unknown tune --model", lambda p: ["tune", "--curve", _file(p, "c.json", json.dumps(
        [{"budget": 500, "recall": 0.9, "tokens": 500, "full_tokens": 900}])), "--out", str(p / "t.toml"),
        "--model", "gpt-99"], "--price", "price_per_1k="),
    ("protected items over the tier", lambda p: ["optimize", _file(p, "m.json", json.dumps(
        [{"role": "user", "content": "word " * 5000}])), "--tier", "free"], 'on_overflow = "truncate"', "Fit("),
    ("unknown encoding in a pipeline file", lambda p: ["optimize", _file(p, "m.json", CHAT), "--pipeline",
                                                       _file(p, "p.toml", 'encoding = "nope"\n')], 'encoding = "..."',
     "encoding="),
    ("redis cache without a URL", lambda p: ["search", "moons", "--path", str(p / "kb"), "--cache", "redis"],
     "--redis-url", "redis_url="),
    ("unreachable Qdrant server", lambda p: ["search", "moons", "--url", "http://127.0.0.1:9", "--mode", "keyword",
                                             "--cache", "none"], "--path DIR", "path=..."),
]


@pytest.mark.parametrize("case, argv, flag, python_fix", [pytest.param(*c, id=c[0]) for c in CLI_FIXES])
def test_cli_errors_name_the_flag_or_file_that_fixes_them(tmp_path, capsys, monkeypatch, case, argv, flag, python_fix):
    monkeypatch.delenv("CTXOPT_REDIS_URL", raising=False)
    assert main(argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert flag in err and python_fix not in err, f"{case}: {err!r}"


def test_the_python_api_keeps_its_python_fix():
    import ctxopt

    with pytest.raises(ctxopt.ConfigError, match=r"pass a Tier\(\.\.\.\)"):
        ctxopt.optimize([{"role": "user", "content": "Hi"}], tier="gold")


# -- output paths are checked before the work runs (issue 11) -------------------------------------

def test_tune_checks_its_output_path_before_measuring_anything(tmp_path, capsys, monkeypatch):
    import ctxopt.tune.evalset as evalset

    def measured(*args, **kwargs):
        raise AssertionError("the recall curve was measured before the output path was checked")

    monkeypatch.setattr(evalset, "recall_curve", measured)
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"query": "q", "messages": [{"role": "user", "content": "x"}], "evidence": ["m0"]}\n')
    assert main(["tune", "--evalset", str(cases), "--out", str(tmp_path / "newdir" / "tiers.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ctxopt tune: error: --out '{tmp_path}/newdir/tiers.toml': folder '{tmp_path}/newdir' does not "
                   f"exist; create it first (mkdir -p {tmp_path}/newdir) or choose another path")


# -- quick benchmarks leave the full results alone (issue 11) -------------------------------------

def test_a_quick_benchmark_run_writes_results_quick_by_default(tmp_path, monkeypatch):
    import ctxopt.bench.suite as suite

    runs = []
    monkeypatch.setattr(suite, "run_suite", lambda out, names, quick: runs.append((str(out), quick)) or
                        {"benchmarks": {}})
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "overhead", "--quick"]) == 0
    assert main(["bench", "overhead"]) == 0
    assert runs == [("results/quick", True), ("results", False)]


def test_a_quick_run_never_overwrites_full_results(tmp_path):
    from ctxopt import ConfigError
    from ctxopt.bench.suite import run_suite

    index = tmp_path / "suite.json"
    index.write_text(json.dumps({"quick": False, "benchmarks": {"overhead": {"seconds": 60.0}}}))
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="holds full benchmark results"):
        run_suite(tmp_path, ["overhead"], quick=True)
    assert sorted(tmp_path.rglob("*")) == before and json.loads(index.read_text())["quick"] is False


# -- search reports its own time apart from loading, with a spinner on a terminal (issue 11) -------

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_spinner_shows_the_step_and_time_on_a_terminal_and_clears_its_line():
    from ctxopt.cli.progress import spinner

    stream = _Terminal()
    with spinner("loading the embedding model", stream, interval=0.01):
        time.sleep(0.05)
    out = stream.getvalue()
    assert re.search(r"\r\| loading the embedding model \(\d+\.\d s\)", out) and out.endswith("\r\x1b[K")


def test_the_spinner_writes_nothing_when_stderr_is_not_a_terminal():
    from ctxopt.cli.progress import spinner

    stream = io.StringIO()
    with spinner("loading", stream, interval=0.01):
        time.sleep(0.03)
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_search_reports_the_search_time_apart_from_opening_the_store_and_loading_the_model(tmp_path, capsys):
    doc = tmp_path / "mars.md"
    doc.write_text("# Mars\nMars has two moons, Phobos and Deimos.\n")
    store = ["--path", str(tmp_path / "kb"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["ingest", str(doc), *store, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "moons of mars", *store]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"1 hits in \d+ ms \(hybrid search\); before it: store opened in [\d.]+ s; embedding model "
                        r"loaded \(and the query embedded\) in [\d.]+ s", first), first
    assert main(["search", "moons of mars", *store]) == 0
    again = capsys.readouterr().out.strip().splitlines()[-1]
    assert again.endswith("query embedding from the cache, no model load"), again
