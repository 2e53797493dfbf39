import dataclasses
import json
from typing import ClassVar

import pytest

import ctxopt
from ctxopt import ConfigError, Context, Fit, Pipeline, StageError, Tier

CHAT = [
    {"role": "system", "content": "You are terse."},
    *[{"role": r, "content": f"message number {n} " * 30} for n, r in enumerate(["user", "assistant"] * 5)],
    {"role": "user", "content": "What now?"},
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shout:
    name: ClassVar[str] = "shout"

    def run(self, context: Context) -> Context:
        return context.replace(items=[i.replace(text=i.text.upper()) for i in context.items]).note(shouted=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Broken:
    name: ClassVar[str] = "broken"

    def run(self, context: Context) -> Context:
        raise KeyError("boom")


def test_optimize_returns_messages_within_the_tier_and_a_report():
    messages, report = ctxopt.optimize(CHAT, tier="free")
    assert report.tokens_before == ctxopt.get_tokenizer().count_messages(CHAT)
    assert report.tokens_after == ctxopt.get_tokenizer().count_messages(messages) <= report.budget
    assert messages[0] == CHAT[0] and messages[-1] == CHAT[-1]


def test_the_report_says_what_each_stage_did_and_what_it_saved():
    result = Pipeline(stages=[Shout()], model="gpt-4o-mini").optimize(CHAT, Tier(300, name="small"))
    shout, fit = result.report.stages
    assert (shout.name, shout.notes, shout.dropped) == ("shout", {"shouted": True}, ())
    assert fit.dropped and fit.tokens_out == result.report.tokens_after
    assert result.report.cost_saved == pytest.approx(result.report.tokens_saved / 1000 * 0.00015)
    data = json.loads(json.dumps(result.report.to_dict()))
    assert data["tier"] == "small" and data["stages"][1]["dropped"] == list(fit.dropped)
    assert "small" in str(result.report) and "dropped" in str(result.report)


def test_a_failing_stage_is_named_and_keeps_its_cause():
    with pytest.raises(StageError, match="stage 'broken' failed: KeyError") as info:
        Pipeline(stages=[Broken()]).optimize(CHAT)
    assert isinstance(info.value.__cause__, KeyError)


def test_a_stage_that_returns_the_wrong_type_is_reported():
    @dataclasses.dataclass(frozen=True)
    class Lazy:
        name: ClassVar[str] = "lazy"

        def run(self, context):
            return None

    with pytest.raises(StageError, match=r"stage 'lazy' failed.*returned NoneType, not a Context"):
        Pipeline(stages=[Lazy()]).optimize(CHAT)


def test_pipeline_config_round_trips_through_a_dict_and_toml(tmp_path):
    pipeline = Pipeline(fit=Fit(on_overflow="truncate"), model="gpt-4o-mini", price_per_1k=0.001)
    assert Pipeline.from_config(pipeline.to_config()) == pipeline
    path = tmp_path / "pipeline.toml"
    path.write_text('model = "gpt-4.1"\n[fit]\non_overflow = "truncate"\n')
    assert Pipeline.from_config(path) == Pipeline(fit=Fit(on_overflow="truncate"), model="gpt-4.1")


@pytest.mark.parametrize("config, message", [
    ({"stages": [{"name": "nope"}]}, "unknown stage 'nope'; choose from .*fit"),
    ({"stages": [{"keep": 3}]}, "each stage is a table with a 'name'"),
    ({"fit": {"on_overflow": "drop"}}, "on_overflow must be one of"),
    ({"fit": {"colour": "red"}}, "stage 'fit' has no option.*colour"),
    ({"stagez": []}, "unknown pipeline key.*stagez"),
    ({"model": "my-llm"}, "how to count tokens for model 'my-llm'.*encoding"),
])
def test_bad_pipeline_configs_say_what_is_wrong(config, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_config(config)


def test_unknown_tier_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown tier 'platinum'"):
        ctxopt.optimize(CHAT, tier="platinum")
