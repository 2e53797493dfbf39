"""The code-quality gates run with the tests, so the one test command CI runs checks them too.

The rule sets live in pyproject.toml ([tool.ruff], [tool.mypy]); the doctests in ctxopt's
docstrings run through pytest's --doctest-modules (see [tool.pytest.ini_options]).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["ctxopt", "tests", "examples", "benchmarks"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, check=False)
    except FileNotFoundError as exc:  # pragma: no cover - the interpreter itself is missing
        pytest.fail(f"cannot run {command[0]}: {exc}")


def test_ruff_finds_nothing():
    done = _run("ruff", "check", "--no-cache", *CHECKED)
    assert "No module named ruff" not in done.stderr, "ruff is not installed: bash scripts/setup.sh installs it"
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_finds_no_type_errors():
    done = _run("mypy")  # files and settings come from pyproject.toml
    assert "No module named mypy" not in done.stderr, "mypy is not installed: bash scripts/setup.sh installs it"
    assert done.returncode == 0, done.stdout + done.stderr
