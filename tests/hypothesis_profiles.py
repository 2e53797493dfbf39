"""Hypothesis settings for the whole suite: reproducible in CI, wide by hand.

The default profile ``ci`` is derandomised (examples come from a fixed seed per test) and keeps no
example database, so every run of the test command sees the same examples and passes or fails for
a reason, never by the luck of the draw. ``HYPOTHESIS_PROFILE=wide`` searches widely instead: random
seeds, 10,000 examples per property test, and a local example database that replays failures::

    HYPOTHESIS_PROFILE=wide .venv/bin/python -m pytest tests/test_ingest.py -k chunks

Property tests write ``@settings(max_examples=examples(40))``: 40 in CI, the wide count by hand.
"""

from __future__ import annotations

import os

from hypothesis import settings

WIDE_EXAMPLES = 10_000
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("wide", max_examples=WIDE_EXAMPLES, deadline=None, print_blob=True)
if PROFILE not in ("ci", "wide"):
    raise ValueError(f"HYPOTHESIS_PROFILE={PROFILE!r}: choose 'ci' (the default) or 'wide'")
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """``ci`` examples in the reproducible CI profile; the wide profile's count otherwise."""
    return ci if PROFILE == "ci" else WIDE_EXAMPLES
