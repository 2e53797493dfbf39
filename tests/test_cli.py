import json
import subprocess
import sys
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
