"""One row of usage: the running totals of one (tenant, agent, tier) and its latency samples.

Latency is kept in a fixed-size reservoir (Vitter's algorithm R): every request has the same chance
to be in the sample whatever the traffic, and memory stays the same after a million requests.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctxopt.report import Report
    from ctxopt.sessions.billing import Bill

RESERVOIR_SIZE = 512
BUCKETS_PER_DECADE = 20  # latency histogram resolution: buckets 12% apart
BILL_COUNTS = ("cached_tokens", "billed_requests", "billed_prompt_tokens", "billed_cached_tokens")
BILL_MONEY = ("cost", "cost_without_ctxopt", "billed_cost")


class Reservoir:
    """A uniform sample of at most ``size`` values out of all values ever added."""

    __slots__ = ("seen", "size", "values")

    def __init__(self, size: int = RESERVOIR_SIZE, values: Iterable[float] = (), seen: int | None = None) -> None:
        self.size = size
        self.values = list(values)[:size]
        self.seen = len(self.values) if seen is None else max(seen, len(self.values))

    def add(self, value: float, rng: random.Random) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = rng.randrange(self.seen)
            if slot < self.size:
                self.values[slot] = value


    def samples(self) -> list[tuple[float, float]]:
        """``(value, weight)`` pairs, each value standing for ``seen / len(values)`` requests."""
        return [(v, self.seen / len(self.values)) for v in self.values]


def bucket_of(seconds: float) -> int:
    """The latency bucket of ``seconds``: its upper bound is ``10 ** (bucket / 20)`` milliseconds.

    >>> bucket_of(0.010), round(bucket_seconds(bucket_of(0.0105)), 5)
    (20, 0.01122)
    """
    return math.ceil(math.log10(max(seconds * 1000, 1e-3)) * BUCKETS_PER_DECADE - 1e-9)


def bucket_seconds(bucket: int) -> float:
    return float(10 ** (bucket / BUCKETS_PER_DECADE) / 1000)


class Histogram:
    """Counts of latency per bucket value, as the shared store keeps them (see ``redis_store``)."""

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[float, int] | None = None) -> None:
        self.counts: dict[float, int] = dict(counts or {})

    @property
    def seen(self) -> int:
        return sum(self.counts.values())

    def add(self, value: float, rng: random.Random | None = None) -> None:
        """Count ``value`` in its bucket (``rng`` is unused: the same call as :meth:`Reservoir.add`)."""
        self.add_count(bucket_seconds(bucket_of(value)), 1)

    def add_count(self, value: float, count: int) -> None:
        self.counts[value] = self.counts.get(value, 0) + count

    def samples(self) -> list[tuple[float, float]]:
        return [(v, float(c)) for v, c in self.counts.items() if c > 0]


def percentile(samples: Iterable[tuple[float, float]], q: float) -> float:
    """The weighted nearest-rank ``q``-th percentile (0 < q <= 100) of ``(value, weight)`` pairs;
    0.0 when there are none. Weights let reservoirs of different traffic be pooled fairly."""
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)
    if not ordered or total <= 0:
        return 0.0
    target, running = total * q / 100, 0.0
    for value, weight in ordered:
        running += weight
        if running >= target - 1e-9 * total:
            return value
    return ordered[-1][0]


@dataclasses.dataclass(kw_only=True)
class Tally:
    """Mutable running totals for one key; the accountant holds its lock while changing it."""

    requests: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    cost_saved: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cost: float = 0.0
    cost_without_ctxopt: float = 0.0
    cached_tokens: int = 0
    billed_requests: int = 0
    billed_prompt_tokens: int = 0
    billed_cached_tokens: int = 0
    billed_cost: float = 0.0
    latency: Reservoir | Histogram = dataclasses.field(default_factory=Reservoir)

    def add(self, counters: Mapping[str, int | float]) -> None:
        """Add what one request counts (:func:`counters_of`, :func:`bill_counters`)."""
        for name, amount in counters.items():
            setattr(self, name, getattr(self, name) + amount)

    def to_dict(self) -> dict[str, Any]:
        # Unrounded: JSON floats round-trip exactly, so a loaded accountant equals the saved one.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "latency"}
        if isinstance(self.latency, Histogram):
            data["latency_histogram"] = [[v, c] for v, c in sorted(self.latency.counts.items())]
        else:
            data["latency_seen"] = self.latency.seen
            data["latency_seconds"] = list(self.latency.values)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], size: int) -> Tally:
        counts = {k: int(data[k]) for k in ("requests", "tokens_before", "tokens_after", "cache_hits", "cache_misses")}
        latency: Reservoir | Histogram
        if "latency_histogram" in data:  # saved from an accountant reading a shared store
            latency = Histogram({float(v): int(c) for v, c in data["latency_histogram"]})
        else:
            latency = Reservoir(size, (float(v) for v in data["latency_seconds"]), int(data["latency_seen"]))
        tally = cls(**counts, cost_saved=float(data["cost_saved"]), latency=latency)
        # Files written before the bill existed lack these: they read as zero.
        for key in BILL_COUNTS:
            setattr(tally, key, int(data.get(key, 0)))
        for key in BILL_MONEY:
            setattr(tally, key, float(data.get(key, 0.0)))
        return tally


# Each counter of a Tally and its type (int or float), read from the dataclass: the one list of them.
COUNTERS: dict[str, type] = {f.name: type(f.default) for f in dataclasses.fields(Tally) if f.name != "latency"}


def counters_of(report: Report) -> dict[str, int | float]:
    """What one request's report adds to each counter of a :class:`Tally` (its latency aside)."""
    return {"requests": 1, "tokens_before": report.tokens_before, "tokens_after": report.tokens_after,
            "cost_saved": report.cost_saved, "cache_hits": report.cache_hits, "cache_misses": report.cache_misses,
            "cost": report.cost, "cost_without_ctxopt": report.cost_without_ctxopt,
            "cached_tokens": report.cached_tokens, **bill_counters(report.billed)}


def bill_counters(bill: Bill | None) -> dict[str, int | float]:
    """What the provider's bill for one request (``None``: it sent none) adds to the counters."""
    if bill is None:
        return {"billed_requests": 0, "billed_prompt_tokens": 0, "billed_cached_tokens": 0, "billed_cost": 0.0}
    return {"billed_requests": 1, "billed_prompt_tokens": bill.prompt_tokens,
            "billed_cached_tokens": bill.cached_tokens, "billed_cost": bill.cost}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Usage:
    """What one tenant/agent/tier (or a roll-up of several, where a field is ``"*"``) used.

    ``tokens_before`` reached ctxopt, ``tokens_after`` went to the model; ``cost`` is the estimated
    bill of what was sent (prompt cache included), ``cost_without_ctxopt`` that of the prompts as
    they came in, ``cost_saved`` the difference (negative when ctxopt cost more). ``billed_*`` sum
    what providers reported in ``usage`` for the ``billed_requests`` that returned it. Latency is
    ctxopt's own optimisation time per request, from a bounded sample (see :class:`Reservoir`).
    """

    tenant: str
    agent: str
    tier: str
    requests: int
    tokens_before: int
    tokens_after: int
    cost_saved: float
    cache_hits: int
    cache_misses: int
    p50_ms: float
    p95_ms: float
    cost: float = 0.0
    cost_without_ctxopt: float = 0.0
    cached_tokens: int = 0
    billed_requests: int = 0
    billed_prompt_tokens: int = 0
    billed_cached_tokens: int = 0
    billed_cost: float = 0.0

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def saved_share(self) -> float:
        return self.tokens_saved / self.tokens_before if self.tokens_before else 0.0

    @property
    def cache_hit_rate(self) -> float | None:
        """Embedding-cache hits over lookups; ``None`` when no stage used the cache."""
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tokens_saved": self.tokens_saved,
                "p50_ms": round(self.p50_ms, 3), "p95_ms": round(self.p95_ms, 3),
                "cost_saved": round(self.cost_saved, 8), "cost": round(self.cost, 8),
                "cost_without_ctxopt": round(self.cost_without_ctxopt, 8), "billed_cost": round(self.billed_cost, 8),
                "cache_hit_rate": self.cache_hit_rate}


def usage_of(key: tuple[str, str, str], tallies: Iterable[Tally]) -> Usage:
    """The usage of several tallies summed under ``key``; latency percentiles pool their samples,
    each weighted by how many requests it stands for."""
    tallies = list(tallies)
    samples = [sample for t in tallies for sample in t.latency.samples()]
    return Usage(
        tenant=key[0], agent=key[1], tier=key[2],
        requests=sum(t.requests for t in tallies),
        tokens_before=sum(t.tokens_before for t in tallies),
        tokens_after=sum(t.tokens_after for t in tallies),
        cost_saved=sum(t.cost_saved for t in tallies),
        cache_hits=sum(t.cache_hits for t in tallies),
        cache_misses=sum(t.cache_misses for t in tallies),
        p50_ms=percentile(samples, 50) * 1000,
        p95_ms=percentile(samples, 95) * 1000,
        **{k: sum(getattr(t, k) for t in tallies) for k in (*BILL_COUNTS, *BILL_MONEY)},
    )
