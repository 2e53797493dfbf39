import hashlib
import re
import subprocess
import sys
from pathlib import Path

import ctxopt


def test_import_ctxopt_stays_light():
    code = ("import sys, ctxopt; heavy = [m for m in ('torch', 'sentence_transformers', 'qdrant_client', 'redis')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_explicit_and_sorted():
    assert ctxopt.__all__ == sorted(ctxopt.__all__)
    assert all(hasattr(ctxopt, name) for name in ctxopt.__all__)


ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_licence_file_is_the_verbatim_apache_2_text_that_pyproject_declares():
    text = (ROOT / "LICENSE").read_bytes()
    # sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt
    assert hashlib.sha256(text).hexdigest() == "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    assert re.search(r'^license = "Apache-2.0"$', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)


def test_the_readme_says_how_to_install_torch_s_cpu_build_and_then_ctxopt_with_pip():
    torch_range = re.search(r'"torch(>=[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f'pip install "torch{torch_range}" --index-url https://download.pytorch.org/whl/cpu' in README
    assert "pip install ./ctxopt" in README and "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash " \
        "scripts/setup.sh" in README
    assert "TORCH_INDEX_URL" in (ROOT / "scripts" / "setup.sh").read_text()


def test_the_readme_says_to_activate_the_venv_before_its_first_bare_ctxopt_command():
    commands = []  # (line number, command) of every line inside a fenced code block
    inside = False
    for number, line in enumerate(README.splitlines()):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            commands.append((number, line.strip().removeprefix("$ ")))
    activate = next(n for n, c in commands if c.startswith("source .venv/bin/activate"))
    bare = [n for n, c in commands if c.startswith("ctxopt ") or c.startswith("python ")]
    assert bare and activate < min(bare)
    assert all(c.startswith(".venv/bin/") or "&& .venv/bin/" in c for n, c in commands
               if n < activate and ("ctxopt " in c or "python " in c))
