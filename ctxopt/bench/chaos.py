"""Chaos phases of the serve benchmark: Redis stopped and restarted mid-load, and an upstream that fails.

Each phase is an open loop (:func:`ctxopt.bench.serve.open_loop`) against a running ``ctxopt serve``
with something broken for part of it, then a check that the server recovered:

- :func:`redis_outage`: Redis gets SIGTERM a third of the way in and comes back (same port, same
  append-only file) half way. The proxy must keep answering; afterwards the tenant's counter in Redis
  must equal the tokens of every request answered (no charge lost, none counted twice).
- :func:`upstream_outage`: the loopback provider fails a share of requests in the middle third. Every
  failed client request must be a clean 5xx with a JSON error (never a reset connection), and the
  circuit breakers' changes are counted from ``/metrics``.
- :func:`ctxopt.bench.serve.kill_a_worker`: a worker gets SIGKILL a third of the way in. The requests
  it held must fail as a clean 5xx (the front's 502 ``worker_lost``), never as connection errors.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ctxopt.errors import ConfigError
from ctxopt.serve.process import free_port

CIRCUIT = "ctxopt_upstream_circuit_total"
RECOVERY_SECONDS = 30.0  # how long a phase waits, after its load, for the server to recover


class RedisProcess:
    """``redis-server`` on a free loopback port, writing an append-only file in ``directory`` (fsync
    on every write), so a restart on the same port finds every count it acknowledged; with
    ``persist=False`` it keeps nothing, and a restart comes back empty (a failover without
    persistence) or with what an explicit ``SHUTDOWN SAVE`` left. The tests' ``redis_server`` fixture is one of these."""

    def __init__(self, directory: Path, *, persist: bool = True) -> None:
        self.directory, self.persist = directory, persist
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("the Redis chaos phase needs redis-server: apt-get install -y redis-server")
        self.stop()  # a restart: the same port, a new process
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis closes every connection and flushes its file, as in a planned restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)

    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def get(self, key: str) -> float:
        import redis

        with redis.Redis.from_url(self.url) as client:
            return float(client.get(key) or 0)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def redis_outage(server_url: str, url: str, bodies: list[bytes], rate: float, seconds: float, redis: RedisProcess,
                       counter_key: str) -> dict[str, Any]:
    """An open loop at ``rate`` while Redis is stopped (from 1/3 to 1/2 of ``seconds``), then a check
    that the tenant's counter (``counter_key``, in tokens) equals the tokens of every answered request.

    Each worker adds the charges it could not make to its next successful one, and skips Redis for a
    moment after a failure; so after the load, single requests (new connections, reaching any worker)
    go on until the counts agree or :data:`RECOVERY_SECONDS` pass.
    """
    from ctxopt.bench.serve import open_loop

    charged: list[int] = []  # tokens_after of every request answered 200
    before = redis.get(counter_key)
    errors = await _metric(server_url, "ctxopt_errors_total", "cause", "redis")

    async def outage() -> None:
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(seconds / 2 - seconds / 3)
        await asyncio.to_thread(redis.start)

    stats = await open_loop(url, bodies, rate, seconds, during=outage(), on_answer=_tokens_into(charged))
    extra, recovered = await _until(url, bodies, charged, lambda: redis.get(counter_key) - before == sum(charged))
    counted = redis.get(counter_key) - before
    expected = sum(charged)
    failed_calls = await _metric(server_url, "ctxopt_errors_total", "cause", "redis") - errors
    return stats | {"redis_down_s": round(seconds / 2 - seconds / 3, 2), "redis_calls_failed": failed_calls,
                    "tokens_answered": expected,
                    "tokens_counted": counted, "counts_agree": counted == expected,
                    "double_counted": max(0.0, counted - expected), "lost": max(0.0, expected - counted),
                    "requests_to_recover": extra, "recovered": recovered}


async def upstream_outage(server_url: str, url: str, bodies: list[bytes], rate: float, seconds: float, provider: Any,
                          failure_rate: float) -> dict[str, Any]:
    """An open loop at ``rate`` whose upstream fails ``failure_rate`` of its requests in the middle
    third. Reports how many client requests failed and how, whether every failure was a clean 5xx with
    a JSON error, the circuit breakers' changes (from ``/metrics``) and whether requests succeed again."""
    from ctxopt.bench.serve import failure_kinds, open_loop

    opened, closed = await _metric(server_url, CIRCUIT, "state", "open"), await _metric(server_url, CIRCUIT, "state", "closed")
    received = len(provider.received)

    async def outage() -> None:
        await asyncio.sleep(seconds / 3)
        provider.failure_rate = failure_rate
        await asyncio.sleep(seconds / 3)
        provider.failure_rate = 0.0

    try:
        stats = await open_loop(url, bodies, rate, seconds, during=outage())
    finally:
        provider.failure_rate = 0.0
    injected = len(provider.received) - received
    extra, recovered = await _until(url, bodies, [], lambda: False, stop_on_success=True)
    opened_after = await _metric(server_url, CIRCUIT, "state", "open")
    closed_after = await _metric(server_url, CIRCUIT, "state", "closed")
    return stats | failure_kinds(stats["failures"]) | {"failure_rate": failure_rate, "upstream_requests": injected,
                    "circuit_opened": opened_after - opened, "circuit_closed": closed_after - closed,
                    "requests_to_recover": extra, "recovered": recovered}


def _tokens_into(charged: list[int]) -> Any:
    def on_answer(status: int, response_headers: Any) -> None:
        if status == 200 and "x-ctxopt-tokens-after" in response_headers:
            charged.append(int(response_headers["x-ctxopt-tokens-after"]))
    return on_answer


async def _until(url: str, bodies: list[bytes], charged: list[int], done: Any,
                 stop_on_success: bool = False) -> tuple[int, bool]:
    """Single requests, each on a new connection, until ``done()`` (or one succeeds, with
    ``stop_on_success``); returns how many were sent and whether it got there."""
    import httpx

    from ctxopt.bench.serve import _send

    sent = 0
    deadline = time.monotonic() + RECOVERY_SECONDS
    async with httpx.AsyncClient(headers={"connection": "close"}) as http:
        while not done():
            if time.monotonic() > deadline:
                return sent, False
            failure = await _send(http, url, bodies[sent % len(bodies)], _tokens_into(charged))
            sent += 1
            if stop_on_success and failure is None:
                break
            if failure is not None:
                await asyncio.sleep(0.2)  # pacing while the server recovers; the deadline bounds the wait
    return sent, True


async def _metric(server_url: str, name: str, label: str, value: str) -> float:
    """The sum over every worker of the samples of ``name`` whose ``label`` is ``value``."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server_url}/metrics", timeout=30)).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and sample.labels.get(label) == value)


def run_phases(directory: Path, provider: Any, bodies: list[bytes], *, rate: float | None, seconds: float,
               workers: int = 2, failure_rate: float = 1.0, stages: dict[str, dict[str, Any]] | None = None,
               warm_bodies: int | None = None) -> dict[str, Any]:
    """The three chaos phases against a fresh ``ctxopt serve`` (``workers`` processes, shared budgets
    in a Redis started here): a worker killed, Redis stopped, the upstream failing. ``rate`` defaults
    to half the capacity a short closed loop measures first."""
    from ctxopt.bench.serve import (
        BUDGET_PREFIX,
        CLIENTS,
        WARM_CONNECTIONS,
        closed_loop,
        kill_a_worker,
        warm,
        write_config,
    )
    from ctxopt.serve.budgets import period_of
    from ctxopt.serve.process import ServerProcess

    results: dict[str, Any] = {}
    with RedisProcess(directory / "redis") as redis:
        config = write_config(directory, provider.base_url, redis_url=redis.url, stages=stages)
        with ServerProcess(config, workers=workers, metrics_dir=directory / "metrics-chaos",
                           log=directory / "serve-chaos.log") as server:
            url = f"{server.url}/v1/chat/completions"
            asyncio.run(warm(url, bodies[:warm_bodies] * workers, WARM_CONNECTIONS * workers))
            if rate is None:
                capacity = asyncio.run(closed_loop(url, bodies, CLIENTS, seconds / 2))
                rate = 0.5 * capacity["throughput_rps"]
                results["capacity"] = capacity
            key = f"{BUDGET_PREFIX}:budget:bench:{period_of('month', time.time())[0]}"
            results["redis_stopped"] = asyncio.run(redis_outage(server.url, url, bodies, rate, seconds, redis, key))
            results["upstream_failing"] = asyncio.run(upstream_outage(server.url, url, bodies, rate, seconds, provider,
                                                                     failure_rate))
            # Last: a killed worker's replacement starts cold (model, caches) and would slow what follows.
            results["worker_killed"] = asyncio.run(kill_a_worker(server, url, bodies, rate, seconds))
    return results


def notes(results: dict[str, Any]) -> list[str]:
    """One sentence per phase, for the benchmark's Markdown."""
    redis, upstream, killed = results["redis_stopped"], results["upstream_failing"], results["worker_killed"]
    return [
        f"Chaos, Redis stopped: SIGTERM a third into an open loop at {redis['rate_rps']} req/s, back "
        f"{redis['redis_down_s']} s later (same port and append-only file); {redis['errors']} of {redis['requests']} "
        f"requests failed ({redis['failures'] or 'none'}), {redis['redis_calls_failed']:.0f} Redis calls failed. "
        f"Afterwards Redis counted {redis['tokens_counted']:.0f} tokens for {redis['tokens_answered']} answered "
        f"({'equal: nothing lost or counted twice' if redis['counts_agree'] else 'NOT equal'}) after "
        f"{redis['requests_to_recover']} more request(s).",
        f"Chaos, upstream failing: the provider failed {upstream['failure_rate']:.0%} of its requests in the middle "
        f"third of an open loop at {upstream['rate_rps']} req/s; {upstream['errors']} of {upstream['requests']} client "
        f"requests failed ({upstream['failures'] or 'none'}; "
        f"{'every one a 5xx with a JSON error' if upstream['all_failures_clean_5xx'] else 'NOT all clean 5xx'}); "
        f"circuits opened {upstream['circuit_opened']:.0f} and closed {upstream['circuit_closed']:.0f} time(s) "
        f"(one breaker per worker); {upstream['upstream_requests']} requests reached the provider.",
        f"Chaos, worker killed: one of {killed['workers_before']} workers got SIGKILL a third into an open loop at "
        f"{killed['rate_rps']} req/s: {killed['errors']} of {killed['requests']} requests failed "
        f"({killed['failures'] or 'none'}; {killed['clean_5xx']} as a 5xx with a JSON error, "
        f"{killed['connection_errors']} as connection errors: "
        f"{'clean 5xx, met' if killed['all_failures_clean_5xx'] else 'NOT all clean 5xx'}); the front "
        f"{'replaced the worker' if killed['replaced'] else f'had not replaced the worker within {RECOVERY_SECONDS:g} s'}. The "
        "front holds the client connections: a request the worker held gets 502 worker_lost (not retried: the "
        "provider may have been called), one that could not reach it goes to another worker.",
    ]


def rows(results: dict[str, Any]) -> list[list[Any]]:
    """Table rows in the serve benchmark's columns (run, requests, errors, req/s, p50, p99, RSS, load)."""
    names = {"redis_stopped": "chaos: Redis stopped", "upstream_failing": "chaos: upstream failing",
             "worker_killed": "chaos: worker killed"}
    return [[f"{label}, open loop {results[k]['rate_rps']} req/s", results[k]["requests"], results[k]["errors"],
             results[k]["throughput_rps"], results[k]["p50_ms"], results[k]["p99_ms"], "", results[k]["load_average_1m"]]
            for k, label in names.items()]
