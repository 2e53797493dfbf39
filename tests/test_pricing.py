"""Prices: litellm's map or the shipped snapshot, provider prefixes, dated ids, overrides, clear errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from ctxopt import ConfigError, Pipeline, pricing
from ctxopt.pricing import PRICES_ENV, Price, from_litellm, known_models, load_prices, price_of, snapshot_info


@pytest.mark.parametrize("model, family", [
    ("gpt-5", "openai"), ("gpt-5-mini", "openai"), ("gpt-4.1", "openai"), ("gpt-4o-mini", "openai"),
    ("o3", "openai"), ("o4-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"), ("claude-sonnet-4-5-20250929", "anthropic"), ("claude-opus-4-1", "anthropic"),
    ("claude-haiku-4-5", "anthropic"), ("claude-haiku-4-5-20251001", "anthropic"),
    ("gemini-2.5-pro", "google"), ("gemini-2.5-flash", "google"), ("gemini-2.0-flash", "google"),
])
def test_current_models_have_input_cache_read_and_cache_write_prices(model, family):
    price = price_of(model)
    assert price.input > 0 and 0 < price.cache_read < price.input
    if family == "anthropic":
        assert price.caching == "explicit"
        assert price.cache_read == pytest.approx(0.1 * price.input)
        assert price.cache_write == pytest.approx(1.25 * price.input)
    else:
        assert price.caching == "automatic" and price.cache_write == price.input


def test_published_list_prices_are_what_the_snapshot_says():
    # Spot checks against the providers' published prices (US$ per 1M input tokens).
    assert (price_of("gpt-4o").input, price_of("gpt-4o").cache_read) == (2.5, 1.25)
    assert (price_of("gpt-5").input, price_of("gpt-5").cache_read) == (1.25, 0.125)
    assert (price_of("claude-opus-4-1").input, price_of("claude-opus-4-1").cache_write) == (15.0, 18.75)


@pytest.mark.parametrize("given, resolved", [
    ("openai/gpt-4o", "gpt-4o"),
    ("azure/gpt-4.1-mini", "gpt-4.1-mini"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("us.anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1-20250805"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
    ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
    ("openrouter/openai/gpt-5", "gpt-5"),
])
def test_provider_prefixes_resolve_to_the_model(given, resolved, monkeypatch):
    # The snapshot alone: litellm's own map lists some provider routes (azure/..., gemini/...) itself.
    monkeypatch.setattr(pricing, "_litellm_map", lambda: None)
    price = price_of(given)
    assert price.model == resolved and f"as {resolved!r}" in price.source


def test_a_listed_dated_snapshot_keeps_its_own_price_and_an_unlisted_date_takes_the_alias():
    assert price_of("gpt-4o-2024-05-13").input == 5.0          # the older snapshot cost more
    newer = price_of("gpt-4o-2031-01-01")
    assert (newer.model, newer.input) == ("gpt-4o", 2.5) and "as 'gpt-4o'" in newer.source


def test_an_undated_alias_with_one_dated_id_resolves_to_it():
    assert price_of("claude-sonnet-4").model == "claude-sonnet-4-20250514"


def test_an_unknown_model_is_a_clear_error_saying_how_to_give_a_price():
    with pytest.raises(ConfigError) as caught:
        price_of("llama-3-8b")
    message = str(caught.value)
    assert "no price known for model 'llama-3-8b'" in message
    assert "prices=" in message and PRICES_ENV in message
    assert "--prices FILE" in caught.value.cli_message() and "--price USD" in caught.value.cli_message()


def test_your_prices_win_and_fill_in_cache_prices():
    mine = price_of("my-model", {"my-model": {"input": 3.0, "cache_read": 0.3, "cache_write": 3.75}})
    assert (mine.input, mine.cache_read, mine.cache_write, mine.caching) == (3.0, 0.3, 3.75, "explicit")
    plain = price_of("my-model", {"my-model": 2.0})
    assert (plain.cache_read, plain.caching) == (2.0, "none")
    contract = price_of("gpt-4o", {"gpt-4o": {"input": 2.0, "cache_read": 0.5}})
    assert (contract.input, contract.cache_read, contract.source) == (2.0, 0.5, "your prices")


def test_price_per_1k_replaces_the_input_price_and_keeps_the_cache_ratios():
    price = price_of("gpt-5", price_per_1k=0.002)
    assert (price.input, price.cache_read) == (2.0, pytest.approx(0.2))
    assert price_of("my-model", price_per_1k=0.002).caching == "none"


@pytest.mark.parametrize("bad, message", [
    ({"m": {"input": -1}}, "non-negative"),
    ({"m": {"input": float("nan")}}, "non-negative"),
    ({"m": {"cache_read": 1}}, "table with 'input'"),
    ({"m": {"input": 1, "discount": 0.5}}, "unknown key"),
    ({"m": {"input": 1, "caching": "sometimes"}}, "caching must be one of"),
])
def test_bad_prices_are_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        Pipeline(model="m", prices=bad, encoding="cl100k_base")


def test_a_prices_file_in_the_environment_prices_unknown_models(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"local-llm": {"input": 0.5, "cache_read": 0.05}}))
    monkeypatch.setenv(PRICES_ENV, str(path))
    load_prices.cache_clear()
    assert price_of("local-llm").cache_read == 0.05
    toml = tmp_path / "prices.toml"
    toml.write_text('[prices."local-llm"]\ninput = 0.7\n')
    assert load_prices(str(toml))["local-llm"] == {"input": 0.7}


def test_pipeline_prices_round_trip_through_its_config():
    pipeline = Pipeline(model="my-model", prices={"my-model": {"input": 3.0, "cache_read": 0.3}}, encoding="cl100k_base")
    assert Pipeline.from_config(pipeline.to_config()) == pipeline
    assert pipeline.price().cache_read == 0.3


def test_litellm_cost_maps_convert_to_per_million_prices():
    cost_map = {"sample_spec": {"mode": "chat"},
                "gpt-x": {"input_cost_per_token": 2e-06, "cache_read_input_token_cost": 2e-07,
                          "litellm_provider": "openai", "mode": "chat"},
                "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"}}
    assert from_litellm(cost_map, "9.9") == {"gpt-x": {"provider": "openai", "input": 2.0, "cache_read": 0.2,
                                                       "cache_write": None, "source": "litellm 9.9"}}


def test_the_snapshot_is_dated_sourced_and_litellm_is_never_imported():
    info = snapshot_info()
    assert info["generated"] and "litellm" in info["source"] and info["models"] > 100
    assert "gpt-5" in known_models()
    probe = ("import sys; from ctxopt.pricing import price_of; price = price_of('gpt-5'); "
             "print(price.source, 'litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_an_installed_litellm_is_read_first_and_the_snapshot_fills_what_it_retired():
    if importlib.util.find_spec("litellm") is None:  # installed with the dev extras; never imported here
        pytest.skip("litellm is not installed")
    assert price_of("gpt-5").source.startswith("litellm ")
    assert "snapshot" in price_of("claude-opus-4-1").source   # retired from the newest map


def test_price_validation_rejects_nonsense():
    with pytest.raises(ConfigError, match="min_cached_tokens"):
        Price(input=1.0, min_cached_tokens=-5)
