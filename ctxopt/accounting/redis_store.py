"""Usage shared by many processes and machines: one Redis hash per month, written once per request.

>>> store = RedisUsageStore("redis://127.0.0.1:6379/0")  # connects on first use
>>> store.month is None  # reads every month; RedisUsageStore(url, month="2026-11") reads one
True

Each request is one Lua script, so it is atomic: it first sets ``PREFIX:seen:REQUEST_ID`` with
``SET NX`` and adds nothing when that key exists, so writing the same request twice (a retry after
a lost reply, a replay after an outage) counts it once. Counters live in ``PREFIX:month:YYYY-MM``,
one hash field per (tenant, agent, tier, counter); latency goes into a histogram of 20 buckets per
decade (percentiles within 12%), since a sample cannot be shared across processes.

Redis down: :meth:`RedisUsageStore.record` keeps the writes that failed in a bounded buffer
(``buffer`` entries; older ones are dropped and counted in ``lost``) and replays them, in order,
with the next write that reaches Redis. Replays are idempotent, so a write whose reply was lost
(it may have landed) is replayed too and still counted once, as long as the replay comes within
``dedupe_seconds`` (2 days) of the first attempt. A process that exits with writes in its buffer
loses them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from operator import methodcaller
from typing import Any

from ctxopt.accounting.budgets import month_of
from ctxopt.accounting.usage import COUNTERS, Histogram, Tally, bill_counters, bucket_of, bucket_seconds, counters_of
from ctxopt.cache.redis_backend import hide_password, url_problem
from ctxopt.errors import ConfigError, InputError, StoreError
from ctxopt.report import Report
from ctxopt.sessions.billing import Bill

log = logging.getLogger("ctxopt.accounting")

LATENCY = "latency"  # a histogram field is "latency:<bucket>"

# KEYS[1] the request's seen-key, KEYS[2] the month's hash, KEYS[3] the set of months.
# ARGV: dedupe ttl, month ttl, month, then field/kind/amount triples (kind "i" integer, "f" float).
RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 4, #ARGV, 3 do
  if ARGV[i + 1] == 'i' then redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 2])
  else redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 2]) end
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

SERVE_PREFIX = "ctxopt:serve:usage"  # where ctxopt serve writes, with its default [server] redis_prefix
RETRY_DOWN_SECONDS = 2.0  # after a failure, writes go straight to the buffer this long instead of each waiting
DEDUPE_SECONDS = 2 * 86400
KEEP_SECONDS = 400 * 86400  # a month's usage is kept a little over a year


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entry:
    """One request's usage, as the store writes it."""

    request_id: str
    month: str
    key: tuple[str, str, str]
    counters: Mapping[str, int | float]  # :data:`~ctxopt.accounting.usage.COUNTERS` it adds to
    bucket: int | None  # the latency bucket; None for a bill added to a request already written

    @classmethod
    def of(cls, report: Report, key: tuple[str, str, str], month: str, request_id: str | None) -> Entry:
        return cls(request_id=request_id or uuid.uuid4().hex, month=month, key=key, counters=counters_of(report),
                   bucket=bucket_of(report.seconds))

    def args(self) -> list[str]:
        """The field/kind/amount triples of the Lua script; zero counters are left out."""
        args: list[str] = []
        for name, amount in self.counters.items():
            if amount:
                args += ([_field(self.key, name), "i", str(int(amount))] if COUNTERS[name] is int
                         else [_field(self.key, name), "f", repr(float(amount))])
        if self.bucket is not None:
            args += [_field(self.key, f"{LATENCY}:{self.bucket}"), "i", "1"]
        return args

    def billed(self, bill: Bill) -> Entry:
        """What the provider billed for this request, as an entry of its own (written once too)."""
        return Entry(request_id=f"{self.request_id}:billed", month=self.month, key=self.key,
                     counters=bill_counters(bill), bucket=None)


def _field(key: tuple[str, str, str], counter: str) -> str:
    # JSON keeps any tenant, agent or tier name apart from the others, colons and all.
    return json.dumps([*key, counter], ensure_ascii=False, separators=(",", ":"))


class RedisUsageStore:
    """Usage in Redis at ``url``, shared by every process that writes or reads it.

    ``prefix`` names its keys; ``month`` (``"YYYY-MM"``) makes reads return that month only (writes
    always go to the month of the request); ``clock`` decides a write's month. See the module
    docstring for what happens while Redis is down: ``buffer`` bounds the writes kept for replay,
    ``retry_seconds`` is how long after a failure writes skip Redis (so requests do not each wait
    on a dead server), ``on_error(exc)`` is called on each failure. ``timeout`` (seconds) bounds each
    call of the synchronous client; the server's async one waits at most 0.5 s.
    """

    def __init__(self, url: str, *, prefix: str = "ctxopt:usage", month: str | None = None, buffer: int = 10_000,
                 dedupe_seconds: int = DEDUPE_SECONDS, retry_seconds: float = RETRY_DOWN_SECONDS,
                 timeout: float = 5.0, clock: Callable[[], float] = time.time,
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        if problem := url_problem(url):
            raise ConfigError(f"the usage store needs a Redis URL: {problem}")
        if month is not None and not (isinstance(month, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month)):
            raise InputError(f"month must be written YYYY-MM, e.g. 2026-11; got {month!r}")
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
            raise ConfigError(f"buffer is how many failed writes to keep for replay, a whole number >= 0; got {buffer!r}")
        self.url, self.prefix, self.month, self.buffer = url, prefix, month, buffer
        self.dedupe_seconds, self.retry_seconds = dedupe_seconds, retry_seconds
        self.timeout, self.clock, self.on_error = timeout, clock, on_error
        self.lost = 0  # writes dropped because the buffer was full
        self._pending: collections.deque[Entry] = collections.deque()
        self._down_until = 0.0  # time.monotonic(): while Redis is known down, buffer without trying
        self._lock = threading.Lock()
        self._client: Any = None
        self._aclient: Any = None
        self._script: Any = None
        self._ascript: Any = None

    def __repr__(self) -> str:
        return f"RedisUsageStore({hide_password(self.url)!r}, prefix={self.prefix!r}, month={self.month!r})"

    @property
    def pending(self) -> int:
        """Writes waiting for Redis to come back."""
        return len(self._pending)

    def entry(self, report: Report, key: tuple[str, str, str], request_id: str | None = None) -> Entry:
        return Entry.of(report, key, month_of(self.clock()), request_id)

    # -- writing ----------------------------------------------------------------------------------

    def record(self, entry: Entry) -> bool:
        """Write ``entry`` (after any buffered ones); ``False`` when Redis failed and it was buffered."""
        if self._script is None:
            self._script = self._redis().register_script(RECORD)
        return self._flush(entry, lambda e: self._script(keys=self._keys(e), args=self._args(e)))

    async def arecord(self, entry: Entry) -> bool:
        """:meth:`record` for asyncio code (the server), on its own async connection."""
        if self._ascript is None:
            import redis.asyncio as aioredis

            self._aclient = aioredis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._ascript = self._aclient.register_script(RECORD)
        batch = self._take(entry)
        if batch is None:
            return False
        for i, item in enumerate(batch):
            try:
                await self._ascript(keys=self._keys(item), args=self._args(item))
            except Exception as exc:  # noqa: BLE001 -- any Redis failure buffers the rest, by design
                self._put_back(batch[i:], exc)
                return False
        return True

    def _flush(self, entry: Entry, write: Callable[[Entry], Any]) -> bool:
        batch = self._take(entry)
        if batch is None:
            return False
        for i, item in enumerate(batch):
            try:
                write(item)
            except Exception as exc:  # noqa: BLE001 -- any Redis failure buffers the rest, by design
                self._put_back(batch[i:], exc)
                return False
        return True

    def _take(self, entry: Entry) -> list[Entry] | None:
        """The buffered writes and ``entry``, to write now; ``None`` (``entry`` buffered) while Redis is down."""
        with self._lock:
            if time.monotonic() < self._down_until:
                self._pending.append(entry)
                self._trim()
                return None
            batch = [*self._pending, entry]
            self._pending.clear()
        return batch

    def _put_back(self, entries: Iterable[Entry], exc: BaseException) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_seconds
            self._pending.extendleft(reversed(list(entries)))
            self._trim()
        log.warning("ctxopt usage store: Redis unavailable (%s: %s); %d write(s) buffered for replay, %d lost",
                    type(exc).__name__, exc, len(self._pending), self.lost)
        if self.on_error is not None:
            self.on_error(exc)

    def _trim(self) -> None:
        while len(self._pending) > self.buffer:
            self._pending.pop()  # the newest goes: the older ones keep their place in time
            self.lost += 1

    def _keys(self, entry: Entry) -> list[str]:
        return [f"{self.prefix}:seen:{entry.request_id}", f"{self.prefix}:month:{entry.month}", f"{self.prefix}:months"]

    def _args(self, entry: Entry) -> list[str]:
        return [str(self.dedupe_seconds), str(KEEP_SECONDS), entry.month, *entry.args()]

    # -- reading ----------------------------------------------------------------------------------

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis
            except ImportError as exc:
                raise ConfigError("the shared usage store needs the redis package: pip install 'ctxopt[redis]'") from exc
            self._client = redis.Redis.from_url(self.url, socket_timeout=self.timeout,
                                              socket_connect_timeout=self.timeout)
        return self._client

    def months(self) -> list[str]:
        """The months with usage, oldest first."""
        return sorted(m.decode() for m in self._read(methodcaller("smembers", f"{self.prefix}:months")))

    def _read(self, call: Callable[[Any], Any]) -> Any:
        import redis

        try:
            return call(self._redis())
        except redis.RedisError as exc:
            raise StoreError(f"cannot read the shared usage in Redis at {hide_password(self.url)}: {type(exc).__name__}: {exc}; "
                             "check that the server runs and the URL (and its password) is right") from exc

    def tallies(self) -> dict[tuple[str, str, str], Tally]:
        """The running totals of each (tenant, agent, tier), over :attr:`month` or every month."""
        tallies: dict[tuple[str, str, str], Tally] = {}
        latency: dict[tuple[str, str, str], Histogram] = {}
        for month in [self.month] if self.month else self.months():
            counters: dict[bytes, bytes] = self._read(methodcaller("hgetall", f"{self.prefix}:month:{month}"))
            for field, value in counters.items():
                tenant, agent, tier, counter = json.loads(field)
                key = (tenant, agent, tier)
                if key not in tallies:
                    latency[key] = Histogram()
                    tallies[key] = Tally(latency=latency[key])
                tally = tallies[key]
                if counter.startswith(LATENCY + ":"):
                    latency[key].add_count(bucket_seconds(int(counter[len(LATENCY) + 1:])), int(value))
                elif counter in COUNTERS:
                    tally.add({counter: COUNTERS[counter](value)})
        return tallies

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()

