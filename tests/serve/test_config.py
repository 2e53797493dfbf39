"""The serve config: tenants and keys as plain TOML data, secrets only from the environment."""

from __future__ import annotations

import pytest

from ctxopt.errors import ConfigError
from ctxopt.serve.config import config_from_dict, hash_key, load_config

UPSTREAM = {"openai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY"}}


def tenant(**spec: object) -> dict[str, object]:
    return {"upstreams": UPSTREAM, "tenants": {"acme": {"keys_sha256": [hash_key("sk-acme")], **spec}}}


def test_a_key_finds_its_tenant_and_an_unknown_or_missing_key_finds_none(monkeypatch):
    monkeypatch.setenv("BETA_KEY", "sk-beta")
    config = config_from_dict({"upstreams": UPSTREAM, "tenants": {
        "acme": {"keys_sha256": [hash_key("sk-acme")], "filters": {"tenant": "acme"}},
        "beta": {"key_envs": ["BETA_KEY"], "tier": "free"}}})
    assert config.tenant_for_key("sk-acme").filters == {"tenant": "acme"}
    assert config.tenant_for_key("sk-beta").tier.name == "free"
    assert config.tenant_for_key("sk-other") is None
    assert config.tenant_for_key("") is None and config.tenant_for_key(None) is None


def test_keys_written_into_the_config_are_refused():
    with pytest.raises(ConfigError, match="never the keys"):
        config_from_dict({"upstreams": UPSTREAM, "tenants": {"acme": {"keys": ["sk-acme"]}}})
    with pytest.raises(ConfigError, match="api_key_env"):
        config_from_dict({"upstreams": {"openai": {"base_url": "http://x/v1", "api_key": "sk-up"}},
                          "tenants": {"acme": {"keys_sha256": [hash_key("k")]}}})
    with pytest.raises(ConfigError, match="SHA-256 hex"):
        config_from_dict(tenant(keys_sha256=["sk-acme"]))


def test_an_unset_key_variable_and_a_key_shared_by_two_tenants_are_config_errors(monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"'NOT_SET_KEY'.*not set"):
        config_from_dict({"upstreams": UPSTREAM, "tenants": {"acme": {"key_envs": ["NOT_SET_KEY"]}}})
    shared = [hash_key("sk-same")]
    with pytest.raises(ConfigError, match="share an API key"):
        config_from_dict({"upstreams": UPSTREAM, "tenants": {"a": {"keys_sha256": shared}, "b": {"keys_sha256": shared}}})


@pytest.mark.parametrize(("spec", "message"), [
    ({"tier": "gold"}, "unknown tier 'gold'"),
    ({"on_error": "maybe"}, "on_error must be one of open, closed"),
    ({"budget": {"tokens": 10, "usd": 1.0}}, "exactly one limit"),
    ({"budget": {"tokens": -1}}, "positive number"),
    ({"budget": {"tokens": 10, "over": "downgrade"}}, "downgrade_to"),
    ({"budget": {"tokens": 10, "period": "week"}}, "period must be one of day, month"),
    ({"budget": {"tokens": 10, "thresholds": [0.5, 1.5]}}, r"\(0, 1\]"),
    ({"budget": {"tokens": 10, "max_request_tokens": 0}}, "max_request_tokens"),
    ({"colour": "blue"}, "unknown key.*colour"),
])
def test_a_bad_tenant_entry_says_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tenant(**spec))


def test_a_config_file_reads_its_pipeline_and_tiers_relative_to_itself(tmp_path):
    (tmp_path / "tiers.toml").write_text("[tiny]\nlimit = 64\nreserve = 8\n", encoding="utf-8")
    (tmp_path / "acme.toml").write_text('model = "gpt-4o-mini"\n[[stages]]\nname = "prune_history"\nkeep_last = 4\n',
                                        encoding="utf-8")
    (tmp_path / "serve.toml").write_text(f"""
tiers = "tiers.toml"
[server]
max_in_flight = 4
[upstreams.openai]
base_url = "http://127.0.0.1:9/v1"
[tenants.acme]
keys_sha256 = ["{hash_key('sk-acme')}"]
tier = "tiny"
pipeline = "acme.toml"
[tenants.acme.budget]
usd = 25.0
period = "day"
over = "downgrade"
downgrade_to = "free"
""", encoding="utf-8")
    config = load_config(tmp_path / "serve.toml")
    acme = config.tenants["acme"]
    assert config.max_in_flight == 4
    assert acme.tier.limit == 64 and acme.pipeline.model == "gpt-4o-mini"
    assert acme.pipeline.stages[0].name == "prune_history"
    assert acme.budget is not None and (acme.budget.limit, acme.budget.unit) == (25.0, "usd")
    assert acme.downgrade_tier is not None and acme.downgrade_tier.name == "free"


def test_a_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read serve config"):
        load_config(tmp_path / "nope.toml")


def test_the_cli_hashes_a_key_from_stdin_and_rejects_a_bad_config_in_one_line(tmp_path):
    import subprocess
    import sys

    hashed = subprocess.run([sys.executable, "-m", "ctxopt", "serve", "--hash-key"], input="sk-acme\n",
                            capture_output=True, text=True, check=True)
    assert hashed.stdout.strip() == hash_key("sk-acme")
    (tmp_path / "serve.toml").write_text('[tenants.acme]\nkeys = ["sk-acme"]\n', encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "ctxopt", "serve", "--config", str(tmp_path / "serve.toml")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["ctxopt serve: error: [tenants.acme]: list key hashes (keys_sha256) "
                                               "or env var names (key_envs), never the keys"]
