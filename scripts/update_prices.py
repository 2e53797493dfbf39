"""Regenerate ctxopt's price snapshot (ctxopt/data/prices.json) from litellm's model cost map.

    .venv/bin/python scripts/update_prices.py NEWEST.json [OLDER.json ...]

Each argument is litellm's ``model_prices_and_context_window_backup.json`` (inside the litellm wheel;
``pip download --no-deps litellm`` and unzip it), newest first. A model is taken from the first map
that has it, so ids a newer map retired (claude-opus-4-1, gemini-2.0-flash) keep their last
published price, labelled with the version they came from. Only the model families ctxopt prices
by default are kept (OpenAI gpt-4o/4.1/5 and o-series, Anthropic Claude, Google Gemini 2.x), with
input, cache-read and cache-write prices in US$ per 1M tokens.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import zipfile
from pathlib import Path

from ctxopt.pricing import from_litellm

FAMILIES = re.compile(r"^(gpt-4o(-mini)?|gpt-4\.1|gpt-5|o1|o3|o4-mini|claude-|gemini-2\.[05]-(pro|flash))")
PROVIDERS = {"openai", "anthropic", "google"}
OUT = Path(__file__).resolve().parents[1] / "ctxopt" / "data" / "prices.json"


def entries(cost_map: dict, version: str) -> dict[str, dict]:
    """The families ctxopt ships, without provider-prefixed duplicates."""
    return {model: entry for model, entry in from_litellm(cost_map, version).items()
            if "/" not in model and FAMILIES.match(model) and entry["provider"] in PROVIDERS}


def version_of(path: Path) -> str:
    """The litellm version, from a wheel next to the JSON or the folder it was unzipped from."""
    for wheel in (w for folder in path.resolve().parents[:4] for w in folder.glob("litellm-*.whl")):
        with zipfile.ZipFile(wheel) as z:
            if "litellm/" + path.name in z.namelist():
                return wheel.name.split("-")[1]
    return "unknown version"


def main(paths: list[str]) -> None:
    models: dict[str, dict] = {}
    versions = []
    for raw in paths:
        path = Path(raw)
        version = version_of(path)
        versions.append(version)
        for model, entry in entries(json.loads(path.read_text(encoding="utf-8")), version).items():
            models.setdefault(model, entry)
    snapshot = {
        "format": "ctxopt-prices",
        "version": 1,
        "generated": datetime.date.today().isoformat(),
        "source": "litellm's model cost map (model_prices_and_context_window_backup.json), "
                  f"litellm {', then '.join(versions)} for ids the newer map retired",
        "units": "US$ per 1M input tokens; null cache_read / cache_write = no separate price (billed as input)",
        "models": dict(sorted(models.items())),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(snapshot, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(models)} models to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
