"""`pip install ctxopt` without extras is light, and the fit with the default pipeline works in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_clean_venv_without_extras_runs_ctxopt_optimize_on_the_example(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, str(ROOT)], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not [m for m in ("torch", "sentence_transformers", "qdrant_client", "redis", "matplotlib")
                if (site / m).exists()]
    out = subprocess.run([str(venv / "bin" / "ctxopt"), "optimize", str(ROOT / "examples" / "oncall_conversation.json"),
                          "--tier", "free", "--model", "gpt-4o", "--json"],
                         capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["report"]["tokens_after"] <= data["report"]["budget"]
    # the long log is cut by keyword scoring (no embedding model here), not dropped with its tool call
    assert any(m["role"] == "tool" and m["tool_call_id"] == "call_logs_1" for m in data["messages"])
