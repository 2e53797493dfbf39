"""Worker processes behind the front: a killed worker's requests get a clean 5xx, the others keep
serving, the front replaces it; keep-alive clients are spread; nothing outlives the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving import KEYS, auth, base_config, metric

from ctxopt.serve.process import ServerProcess

pytestmark = pytest.mark.slow

SMALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {"x-api-key": "sk-acme-test-key", "anthropic-version": "2023-06-01"}


def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for something another process does (a request arriving, a worker starting or exiting)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def started(server: ServerProcess, workers: int) -> ServerProcess:
    until(lambda: len(server.worker_pids()) == workers)
    return server


def idle_worker(server: ServerProcess) -> int:
    """The pid of a worker with nothing in flight: the front sends /healthz to the least busy one."""
    answer = httpx.get(f"{server.url}/healthz").json()
    assert answer["in_flight"] == 0
    return int(answer["pid"])


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def burst(url: str) -> dict[int, int]:
    """Requests per worker pid from what an agent SDK's pool does: 32 connections opened at once and kept."""
    served: dict[int, int] = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
        async def client() -> None:
            for _ in range(5):
                pid = (await http.get(f"{url}/healthz")).json()["pid"]
                served[pid] = served.get(pid, 0) + 1
        await asyncio.gather(*(client() for _ in range(32)))
    return served


def test_a_worker_killed_while_it_holds_a_request_answers_it_502_and_the_others_keep_serving(servers, provider):
    server = started(servers(base_config(provider), workers=2), 2)
    held = {"model": "claude-sonnet-4-5", "max_tokens": 64, "user": "slow:20", "messages": [{"role": "user", "content": "hi"}]}
    other = {**SMALL, "user": "slow:1"}
    with ThreadPoolExecutor(2) as pool:
        lost = pool.submit(httpx.post, f"{server.url}/v1/messages", json=held, headers=ANTHROPIC, timeout=30)
        until(lambda: len(provider.received) == 1)  # in flight on one worker, held by the provider
        victim = (server.worker_pids() - {idle_worker(server)}).pop()
        served = pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json=other, headers=auth("acme"),
                             timeout=30)
        until(lambda: len(provider.received) == 2)  # in flight on the other worker
        os.kill(victim, signal.SIGKILL)
        answer = lost.result()
        assert served.result().status_code == 200
    assert answer.status_code == 502 and answer.headers["retry-after"] == "1"
    error = answer.json()  # in Anthropic's shape, as the route is Anthropic's
    assert error["type"] == "error" and error["error"]["type"] == "worker_lost"
    assert "not retried" in error["error"]["message"]
    until(lambda: len(server.worker_pids() - {victim}) == 2)  # replaced
    assert victim not in server.worker_pids()
    metrics = httpx.get(f"{server.url}/metrics").text
    assert metric(metrics, "ctxopt_errors_total", cause="worker_lost") == 1


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(servers, provider):
    server = started(servers(base_config(provider), workers=2), 2)
    victim = idle_worker(server)
    os.kill(victim, signal.SIGKILL)
    statuses = []  # requests while the worker is dead, then while its replacement starts: no errors at all
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < deadline:
            statuses.append(http.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=auth("acme")).status_code)
            served = {http.get(f"{server.url}/healthz").json()["pid"] for _ in range(2)}  # equals take turns
            if len(statuses) >= 10 and len(served) == 2:
                break
    assert statuses == [200] * len(statuses)
    assert victim not in served and served == server.worker_pids()  # the replacement takes requests


def listening_path(pid: int) -> str:
    """The Unix socket a worker listens on (Linux: its socket inodes, looked up in /proc/net/unix)."""
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    with open("/proc/net/unix", encoding="utf-8") as table:
        paths = [fields[7] for fields in (line.split() for line in table) if len(fields) > 7 and fields[6] in inodes]
    return next(path for path in paths if ".sock" in path)


def test_a_request_that_cannot_reach_a_worker_goes_to_another_and_that_worker_is_replaced(servers, provider):
    """Nothing reached the worker, so sending the request elsewhere is safe. With its socket file
    deleted (as a temp folder cleaner might), a live worker takes no new connection: deterministic."""
    server = started(servers(base_config(provider), workers=2), 2)
    unreachable = idle_worker(server)
    os.unlink(listening_path(unreachable))
    slow = {**SMALL, "user": "slow:0.5"}  # at once, so new connections to that worker are needed
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{server.url}/v1/chat/completions", json=slow,
                                                     headers=auth("acme"), timeout=30), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert metric(httpx.get(f"{server.url}/metrics").text, "ctxopt_errors_total", cause="worker_unreachable") >= 1
    until(lambda: unreachable not in server.worker_pids() and len(server.worker_pids()) == 2)  # replaced
    until(lambda: {httpx.get(f"{server.url}/healthz").json()["pid"] for _ in range(2)} == server.worker_pids())


def test_replacements_that_cannot_start_are_retried_one_at_a_time_while_the_others_serve(servers, provider):
    server = started(servers(base_config(provider), workers=2), 2)
    good = server.config.read_text(encoding="utf-8")
    server.config.write_text("tiers = [", encoding="utf-8")  # what a replacement reads: it cannot start
    victim = idle_worker(server)
    os.kill(victim, signal.SIGKILL)
    until(lambda: server.log.read_text(errors="replace").count("exited") >= 3)  # the victim, then 2 replacements
    assert len(server.worker_pids()) <= 2  # one replacement at a time, never a growing crowd
    assert httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=auth("acme")).status_code == 200
    server.config.write_text(good, encoding="utf-8")
    until(lambda: {httpx.get(f"{server.url}/healthz").json()["pid"] for _ in range(2)} == server.worker_pids()
          and len(server.worker_pids()) == 2)


def test_with_one_worker_a_dead_worker_means_503_with_retry_after_until_it_is_replaced(servers, provider):
    server = started(servers(base_config(provider), workers=1), 1)
    victim = idle_worker(server)
    os.kill(victim, signal.SIGKILL)
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=auth("acme"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["type"] == "no_worker"
    until(lambda: httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=auth("acme")).status_code == 200)
    assert server.worker_pids() and victim not in server.worker_pids()


@pytest.mark.parametrize(("route", "body", "headers", "last"), [
    ("/v1/chat/completions", {**SMALL, "stream": True}, auth("acme"), "data: "),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                      "messages": [{"role": "user", "content": "hi"}]}, ANTHROPIC, "event: error\ndata: "),
])
def test_a_worker_killed_mid_stream_ends_the_stream_with_the_providers_error_event(servers, provider, route, body,
                                                                                   headers, last):
    server = started(servers(base_config(provider), workers=2), 2)
    hold = threading.Event()
    provider.hold = hold  # the provider sends the first event, then waits
    try:
        with httpx.stream("POST", f"{server.url}{route}", json=body, headers=headers, timeout=30) as answer:
            assert answer.status_code == 200
            chunks = answer.iter_text()
            first = next(chunks)
            victim = (server.worker_pids() - {idle_worker(server)}).pop()
            os.kill(victim, signal.SIGKILL)
            rest = "".join(chunks)
    finally:
        hold.set()
    assert first.startswith(("data: {", "event: message_start"))
    event = rest.strip().split("\n\n")[-1]
    assert event.startswith(last)
    error = json.loads(event[len(last):])
    assert error["error"]["type"] == "worker_lost"


def test_a_client_that_leaves_mid_stream_frees_its_worker(servers, provider):
    """The front closes its connection to the worker (which stops relaying the provider's stream), and
    stops counting the request against that worker."""
    server = started(servers(base_config(provider), workers=2), 2)
    hold = threading.Event()
    provider.hold = hold
    try:
        with httpx.stream("POST", f"{server.url}/v1/messages", headers=ANTHROPIC, timeout=30,  # no upstream timeout
                          json={"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]}) as answer:
            next(answer.iter_raw())
            busy = (server.worker_pids() - {idle_worker(server)}).pop()
        # Gone: requests go to both workers again, as soon as the front has let go of the stream.
        until(lambda: {httpx.get(f"{server.url}/healthz").json()["pid"] for _ in range(2)} == server.worker_pids(), 10)
    finally:
        hold.set()
    assert busy in server.worker_pids()


def test_the_openai_and_anthropic_sdks_read_a_lost_worker_as_their_own_api_errors(servers, provider):
    """What an agent sees: Anthropic's SDK raises its 5xx error with the worker_lost body; OpenAI's
    raises APIError from the stream's error event, not a silently short answer."""
    anthropic = pytest.importorskip("anthropic")
    openai = pytest.importorskip("openai")
    server = started(servers(base_config(provider), workers=2), 2)

    def kill_the_busy_worker() -> None:
        until(lambda: len(provider.received) == 1)
        os.kill((server.worker_pids() - {idle_worker(server)}).pop(), signal.SIGKILL)

    claude = anthropic.Anthropic(base_url=server.url, api_key=KEYS["acme"], max_retries=0)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(kill_the_busy_worker)
        with pytest.raises(anthropic.InternalServerError) as lost:
            claude.messages.create(model="claude-sonnet-4-5", max_tokens=64, extra_body={"user": "slow:20"},
                                   messages=[{"role": "user", "content": "hi"}])
    assert lost.value.status_code == 502 and lost.value.body["error"]["type"] == "worker_lost"

    until(lambda: {httpx.get(f"{server.url}/healthz").json()["pid"] for _ in range(2)} == server.worker_pids()
          and len(server.worker_pids()) == 2)  # replaced
    provider.received.clear()
    hold = threading.Event()
    provider.hold = hold
    gpt = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEYS["acme"], max_retries=0)
    try:
        stream = gpt.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}])
        next(iter(stream))  # the first event arrived
        kill_the_busy_worker()
        with pytest.raises(openai.APIError) as broken:
            list(stream)
    finally:
        hold.set()
    assert broken.value.body["type"] == "worker_lost"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_finishes_the_requests_in_flight_and_leaves_no_worker_behind(servers, provider, stop):
    server = started(servers(base_config(provider), workers=2), 2)
    workers = server.worker_pids()
    sockets = os.path.dirname(listening_path(min(workers)))
    assert server.process is not None
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json={**SMALL, "user": "slow:1"},
                           headers=auth("acme"), timeout=30)
        until(lambda: len(provider.received) == 1)
        server.process.send_signal(stop)  # the front alone, as a service manager would
        assert slow.result().status_code == 200
    server.process.wait(timeout=30)
    assert not any(alive(pid) for pid in workers)
    assert not os.path.exists(sockets)  # the workers' private folder is removed


def test_a_sigkilled_front_leaves_no_worker_behind(servers, provider):
    server = started(servers(base_config(provider), workers=2), 2)
    workers = server.worker_pids()
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=5)
    until(lambda: not any(alive(pid) for pid in workers))  # each worker hears its parent's death (Linux)


def test_keep_alive_clients_are_spread_over_the_workers_request_by_request(servers, provider):
    """The front sends each request to the least busy worker (taking turns among equals), so one
    kept-alive connection is served by every worker, and so is an SDK's pool of them."""
    server = started(servers(base_config(provider), workers=2), 2)
    with httpx.Client() as http:
        one_connection = [http.get(f"{server.url}/healthz").json()["pid"] for _ in range(10)]
    assert set(one_connection) == server.worker_pids()
    assert min(one_connection.count(pid) for pid in server.worker_pids()) >= 4

    served = asyncio.run(burst(server.url))
    assert set(served) == server.worker_pids()
    assert min(served.values()) >= 40  # of 160: a fair share each
    assert server.cpu_seconds() > 0  # the front's own CPU, which the serve benchmark reports per request


def test_without_the_front_each_worker_listens_on_its_own_socket(servers, provider):
    """``--no-front``: the kernel spreads connections over the workers' SO_REUSEPORT sockets by address
    hash; 32 connections all on one of 2 sockets has odds of 2 in 4 billion."""
    server = started(servers(base_config(provider), workers=2, args=("--no-front",)), 2)
    listening: set[int] = set()  # a worker is listed before its socket listens: wait until each has answered
    until(lambda: listening.add(httpx.get(f"{server.url}/healthz", headers={"connection": "close"}).json()["pid"])
          or listening == server.worker_pids())
    served = asyncio.run(burst(server.url))
    assert set(served) == server.worker_pids()
    assert min(served.values()) >= 16


@pytest.mark.parametrize("front", [True, False], ids=["front", "no-front"])
def test_a_server_left_to_make_its_own_metrics_folder_shares_it_and_removes_it_when_it_stops(
        tmp_path, provider, front):
    """Before, every run left a ctxopt-metrics-* folder in the temp folder. The folder is now part of
    the run's private folder, which the server removes on SIGTERM, with or without the front."""
    from serving import TIERS

    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "tiers.toml").write_text(TIERS, encoding="utf-8")
    config = tmp_path / "serve.toml"
    config.write_text(base_config(provider), encoding="utf-8")
    server = ServerProcess(config, workers=2, metrics_dir=None, log=tmp_path / "serve.log",
                           env={"TMPDIR": str(temp), "LOOPBACK_KEY": "sk-upstream-secret", "ACME_KEY": KEYS["acme"]},
                           args=() if front else ("--no-front",))
    with server:
        for _ in range(4):
            assert httpx.post(f"{server.url}/v1/chat/completions", json=SMALL, headers=auth("acme"),
                              timeout=30).status_code == 200
        (run,) = list(temp.iterdir())
        assert (run / "metrics").is_dir()
        assert metric(httpx.get(f"{server.url}/metrics").text, "ctxopt_requests_total",
                      route="chat_completions", tenant="acme", status="200") == 4  # every worker's counts
    assert list(temp.iterdir()) == []
