"""Every script in examples/ runs offline, with no arguments, in under a minute, and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT_SECONDS = 60


def test_there_are_examples():
    assert EXAMPLES, "examples/*.py is empty: the README points users at these scripts"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_offline_and_exits_0(script: Path, tmp_path: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # The working directory is a scratch folder so an example that writes files leaves no trace.
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} took over {TIMEOUT_SECONDS} s; examples must stay quick to try")
    assert done.returncode == 0, f"{script.name} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{script.name} printed nothing; an example should show its result"
    # a report line never shows a share over 100% or a negative saving (retrieval adds tokens)
    assert all(int(share) <= 100 for share in re.findall(r"(\d+)% kept", done.stdout)), done.stdout
    assert "saved $-" not in done.stdout, done.stdout
