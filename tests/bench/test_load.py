"""The load benchmark's driver: it counts every request, records failures, and reads percentiles
the way latency SLOs are read."""

import threading

from ctxopt.bench.load import drive, memory_run, percentile


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_drive_runs_every_request_once_across_threads_and_counts_failures():
    seen: list[int] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            seen.append(n)
        if n % 10 == 0:
            raise ValueError("bad request")

    stats = drive(call, 4, requests=50)
    assert sorted(seen) == list(range(50))
    assert stats["requests"] == 50 and stats["errors"] == 5
    assert stats["first_error"] == "ValueError: bad request"
    assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]


def test_memory_run_samples_rss_at_each_mark():
    result = memory_run(lambda n: None, total=300, threads=2, every=100)
    assert sorted(result["rss_mb_by_requests"]) == [100, 200, 300]
    assert result["within_10_percent"]
