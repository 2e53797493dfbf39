"""The server's configuration: upstreams, tenants and their keys, limits. Plain data from TOML.

Secrets never live in the file: an upstream names the environment variable that holds its key, and a
tenant lists either SHA-256 hashes of its API keys or the names of environment variables holding them.

    [server]
    max_in_flight = 32              # requests one worker holds at once; more get 503 + Retry-After
    redis_url = "redis://127.0.0.1:6379/0"   # shared budgets; leave out to count per worker only
    otel = true                     # OpenTelemetry spans with the GenAI conventions (ctxopt[otel])

    [upstreams.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    [tenants.acme]
    keys_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
    tier = "pro"
    pipeline = "acme-pipeline.toml"    # relative to this file
    filters = { tenant = "acme" }
    on_error = "open"                  # ctxopt fails on a request: forward it unoptimised ("closed": 5xx)

    [tenants.acme.budget]
    tokens = 5_000_000                 # per period, counted in Redis across workers and instances
    period = "month"
    over = "throttle"                  # or "downgrade" (then set downgrade_to = "free")
    max_request_tokens = 20_000
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ctxopt.accounting import DEFAULT_THRESHOLDS
from ctxopt.errors import ConfigError
from ctxopt.pipeline import Pipeline
from ctxopt.tiers import Tier, load_tiers, resolve_tier

CONFIG_ENV = "CTXOPT_SERVE_CONFIG"
PERIODS = ("day", "month")
OVER_POLICIES = ("throttle", "downgrade")
ERROR_POLICIES = ("open", "closed")
PROVIDERS = ("openai", "anthropic")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a config lists for an API key: ``ctxopt serve --hash-key KEY`` prints it.

    >>> hash_key("test")
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Upstream:
    """A provider's endpoint: ``base_url`` (``/chat/completions`` or ``/messages`` is appended) and the
    environment variable holding its API key."""

    name: str
    base_url: str
    api_key_env: str | None = None
    timeout: float = 60.0
    breaker_failures: int = 5  # faults in a row (no answer, or a 5xx) that open the circuit
    breaker_seconds: float = 10.0  # how long an open circuit answers 503 before it tries again

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """A tenant's spend per ``period``, in tokens sent to the model (``tokens``) or dollars (``usd``)."""

    tokens: float | None = None
    usd: float | None = None
    period: Literal["day", "month"] = "month"
    over: Literal["throttle", "downgrade"] = "throttle"
    downgrade_to: str | None = None
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    max_request_tokens: int | None = None

    @property
    def limit(self) -> float | None:
        return self.tokens if self.tokens is not None else self.usd

    @property
    def unit(self) -> str:
        return "tokens" if self.usd is None else "usd"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tenant:
    name: str
    tier: Tier
    pipeline: Pipeline
    filters: Mapping[str, Any] | None = None
    on_error: Literal["open", "closed"] = "closed"
    budget: Budget | None = None
    downgrade_tier: Tier | None = None
    key_hashes: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServeConfig:
    tenants: Mapping[str, Tenant]
    upstreams: Mapping[str, Upstream]
    max_in_flight: int = 32
    max_body_bytes: int = 32 * 2**20  # a larger request body gets 413 before it is read whole
    retry_after: int = 1
    optimize_threads: int = 2
    redis_url: str | None = None
    redis_prefix: str = "ctxopt:serve"
    otel: bool = False  # OpenTelemetry spans (needs ctxopt[otel]; see ctxopt.serve.tracing)

    def tenant_for_key(self, key: str | None) -> Tenant | None:
        """The tenant whose key this is, compared in constant time; ``None`` for a missing or unknown key."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for tenant in self.tenants.values():
            for known in tenant.key_hashes:
                if hmac.compare_digest(digest, known):
                    found = tenant
        return found


def load_config(path: str | os.PathLike[str]) -> ServeConfig:
    """A :class:`ServeConfig` from a TOML file; paths in it are relative to the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read serve config {str(path)!r}: {exc}") from exc
    return config_from_dict(data, base=path.parent)


def config_from_dict(data: Mapping[str, Any], base: Path = Path()) -> ServeConfig:
    _only(data, {"server", "upstreams", "tenants", "tiers"}, "the serve config")
    server = dict(data.get("server", {}))
    _only(server, {"max_in_flight", "max_body_bytes", "retry_after", "optimize_threads", "redis_url", "redis_prefix",
                   "otel"},
          "[server]")
    tiers: dict[str, Tier] | None = load_tiers(base / data["tiers"]) if "tiers" in data else None
    upstreams = {name: _upstream(name, spec) for name, spec in dict(data.get("upstreams", {})).items()}
    tenants = {name: _tenant(name, spec, tiers, base) for name, spec in dict(data.get("tenants", {})).items()}
    if not tenants:
        raise ConfigError("the serve config has no [tenants.NAME] table: every request needs a tenant's key")
    seen: dict[str, str] = {}
    for tenant in tenants.values():
        for digest in tenant.key_hashes:
            if digest in seen:
                raise ConfigError(f"tenants {seen[digest]!r} and {tenant.name!r} share an API key; give each its own")
            seen[digest] = tenant.name
    for field in ("max_in_flight", "max_body_bytes", "retry_after", "optimize_threads"):
        if field in server and (not isinstance(server[field], int) or isinstance(server[field], bool) or server[field] < 1):
            raise ConfigError(f"[server] {field} must be a whole number >= 1, got {server[field]!r}")
    if not isinstance(server.get("otel", False), bool):
        raise ConfigError(f"[server] otel must be true or false, got {server['otel']!r}")
    return ServeConfig(tenants=tenants, upstreams=upstreams, **server)


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _upstream(name: str, spec: Mapping[str, Any]) -> Upstream:
    if "api_key" in spec:
        raise ConfigError(f"[upstreams.{name}] holds no key: set api_key_env to the environment variable holding it")
    _only(spec, {"base_url", "api_key_env", "timeout", "breaker_failures", "breaker_seconds"}, f"[upstreams.{name}]")
    if name not in PROVIDERS:
        raise ConfigError(f"unknown upstream {name!r}; choose from {', '.join(PROVIDERS)}")
    base_url = spec.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"[upstreams.{name}] base_url must be an http(s) URL, got {base_url!r}")
    return Upstream(name=name, base_url=base_url.rstrip("/"), api_key_env=spec.get("api_key_env"),
                    timeout=float(spec.get("timeout", 60.0)), breaker_failures=int(spec.get("breaker_failures", 5)),
                    breaker_seconds=float(spec.get("breaker_seconds", 10.0)))


def _tenant(name: str, spec: Mapping[str, Any], tiers: dict[str, Tier] | None, base: Path) -> Tenant:
    where = f"[tenants.{name}]"
    if "keys" in spec or "api_keys" in spec:
        raise ConfigError(f"{where}: list key hashes (keys_sha256) or env var names (key_envs), never the keys")
    _only(spec, {"keys_sha256", "key_envs", "tier", "pipeline", "filters", "on_error", "budget"}, where)
    hashes = set()
    for digest in spec.get("keys_sha256", []):
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise ConfigError(f"{where}: keys_sha256 holds SHA-256 hex digests (ctxopt serve --hash-key KEY), got {digest!r}")
        hashes.add(digest.lower())
    for env in spec.get("key_envs", []):
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{where}: environment variable {env!r} (in key_envs) is not set; export the tenant's key there")
        hashes.add(hash_key(value))
    if not hashes:
        raise ConfigError(f"{where} has no key: add keys_sha256 = [...] or key_envs = [...]")
    on_error = spec.get("on_error", "closed")
    if on_error not in ERROR_POLICIES:
        raise ConfigError(f"{where}: on_error must be one of {', '.join(ERROR_POLICIES)}, got {on_error!r}")
    filters = spec.get("filters")
    if filters is not None and not isinstance(filters, Mapping):
        raise ConfigError(f"{where}: filters must be a table such as {{ tenant = {name!r} }}, got {filters!r}")
    pipeline = Pipeline.from_config(base / spec["pipeline"]) if "pipeline" in spec else Pipeline()
    budget = _budget(where, spec["budget"]) if "budget" in spec else None
    downgrade = resolve_tier(budget.downgrade_to, tiers) if budget and budget.downgrade_to else None
    return Tenant(name=name, tier=resolve_tier(spec.get("tier", "pro"), tiers), pipeline=pipeline,
                  filters=dict(filters) if filters else None, on_error=on_error, budget=budget,
                  downgrade_tier=downgrade, key_hashes=frozenset(hashes))


def _budget(where: str, spec: Mapping[str, Any]) -> Budget:
    where = f"{where[:-1]}.budget]"
    _only(spec, {"tokens", "usd", "period", "over", "downgrade_to", "thresholds", "max_request_tokens"}, where)
    if ("tokens" in spec) == ("usd" in spec):
        raise ConfigError(f"{where} needs exactly one limit: tokens = N (tokens sent to the model) or usd = X")
    limit = spec.get("tokens", spec.get("usd"))
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise ConfigError(f"{where}: the limit must be a positive number, got {limit!r}")
    if spec.get("period", "month") not in PERIODS:
        raise ConfigError(f"{where}: period must be one of {', '.join(PERIODS)}, got {spec.get('period')!r}")
    if spec.get("over", "throttle") not in OVER_POLICIES:
        raise ConfigError(f"{where}: over must be one of {', '.join(OVER_POLICIES)}, got {spec.get('over')!r}")
    if spec.get("over") == "downgrade" and not spec.get("downgrade_to"):
        raise ConfigError(f"{where}: over = \"downgrade\" needs downgrade_to = \"<smaller tier>\"")
    thresholds = tuple(sorted(float(t) for t in spec.get("thresholds", DEFAULT_THRESHOLDS)))
    if any(not 0 < t <= 1 for t in thresholds):
        raise ConfigError(f"{where}: thresholds are shares of the limit in (0, 1], got {list(thresholds)}")
    cap = spec.get("max_request_tokens")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ConfigError(f"{where}: max_request_tokens must be a whole number >= 1, got {cap!r}")
    return Budget(tokens=spec.get("tokens"), usd=spec.get("usd"), period=spec.get("period", "month"),
                  over=spec.get("over", "throttle"), downgrade_to=spec.get("downgrade_to"),
                  thresholds=thresholds, max_request_tokens=cap)
