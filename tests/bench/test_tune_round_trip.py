import json

import pytest

from ctxopt import load_tiers
from ctxopt.bench import memory
from ctxopt.cli import main


@pytest.mark.slow
def test_tiers_tuned_on_the_locomo_curve_meet_the_requested_recall_when_rerun(tmp_path, real_embedder):
    conversations = memory.load(quick=True)
    conversations[0]["questions"] = conversations[0]["questions"][:25]
    points = memory.curve(conversations, budgets=(250, 500, 1000, 2000, 4000), embedder=real_embedder)
    (tmp_path / "curve.json").write_text(json.dumps({"curve": points}))
    target = 0.75
    out = tmp_path / "tiers.toml"
    assert main(["tune", "--curve", str(tmp_path / "curve.json"), "--target", f"pro={target}",
                 "--out", str(out)]) == 0

    tier = load_tiers(out)["pro"]
    stages, _ = memory.variants(tier.history, real_embedder)[memory.DEFAULT_VARIANT]
    rerun = memory.evaluate(conversations, stages, tier)
    assert rerun["recall"] >= target
    # and it is the smallest budget measured that does: the one below falls short
    smaller = [p for p in points if p["budget"] < tier.history]
    assert all(p["recall"] < target for p in smaller)
