import pytest

from ctxopt import DEFAULT_TIERS, ConfigError, Tier, dump_tiers, load_tiers
from ctxopt.tiers import resolve_tier


def test_a_tier_is_a_value_with_a_readable_repr():
    assert Tier(4096, reserve=512, retrieved=0.5) == Tier(4096, reserve=512, retrieved=0.5)
    assert repr(Tier(4096, reserve=512, retrieved=0.5)) == "Tier(4096, reserve=512, retrieved=0.5)"


def test_section_caps_are_tokens_or_shares_of_the_budget():
    tier = Tier(1000, reserve=200, history=300, retrieved=0.25)
    assert (tier.budget, tier.cap("history"), tier.cap("retrieved"), tier.cap("system")) == (800, 300, 200, 800)


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": -5}, "limit must be a non-negative whole number"),
    ({"limit": 10.5}, "limit must be a non-negative whole number"),
    ({"limit": "4096"}, "limit must be a non-negative whole number"),
    ({"limit": 100, "reserve": 100}, r"reserve \(100\) must be smaller than limit \(100\)"),
    ({"limit": 100, "reserve": 500}, r"reserve \(500\) must be smaller than limit"),
    ({"limit": 100, "retrieved": 1.5}, "retrieved cap must be"),
    ({"limit": 100, "history": -1}, "history cap must be"),
])
def test_invalid_limits_are_rejected_with_the_reason(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Tier(**kwargs)


def test_tiers_round_trip_through_toml(tmp_path):
    path = tmp_path / "tiers.toml"
    path.write_text(dump_tiers(DEFAULT_TIERS))
    assert load_tiers(path) == DEFAULT_TIERS


@pytest.mark.parametrize("text, message", [
    ("[free]\nlimit = -1\n", "limit must be a non-negative whole number"),
    ("[free]\nlimit = 1.5\n", "limit must be a non-negative whole number"),
    ("[free]\nlimit = 100\nreserve = 200\n", "reserve .* must be smaller than limit"),
    ("[free]\nreserve = 10\n", "has no 'limit'"),
    ("[free]\nlimit = 100\nhistroy = 5\n", "unknown key.*histroy"),
    ("[free\n", "not valid TOML"),
    ("", "defines no tiers"),
])
def test_bad_tier_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "tiers.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_tiers(path)


def test_unknown_tier_names_the_tiers_available():
    with pytest.raises(ConfigError, match="unknown tier 'gold'; choose from enterprise, free, pro"):
        resolve_tier("gold")


def test_a_tiers_file_adds_to_and_overrides_the_defaults(tmp_path):
    path = tmp_path / "tiers.toml"
    path.write_text("[free]\nlimit = 2000\n\n[team]\nlimit = 9000\nreserve = 1000\n")
    assert resolve_tier("free", path) == Tier(2000, name="free")
    assert resolve_tier("team", path).budget == 8000
    assert resolve_tier("pro", path) == DEFAULT_TIERS["pro"]
