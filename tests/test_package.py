import subprocess
import sys

import ctxopt


def test_import_ctxopt_stays_light():
    code = ("import sys, ctxopt; heavy = [m for m in ('torch', 'sentence_transformers', 'qdrant_client', 'redis')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_explicit_and_sorted():
    assert ctxopt.__all__ == sorted(ctxopt.__all__)
    assert all(hasattr(ctxopt, name) for name in ctxopt.__all__)
