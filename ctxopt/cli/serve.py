"""``ctxopt serve --config serve.toml``: the proxy, one worker process per core by default.

The main process is the front (:mod:`ctxopt.serve.front`): it holds the client connections,
forwards each request to a worker process and replaces a worker that dies, so a killed worker's
requests get a clean 5xx. ``--no-front`` runs the workers on the port directly under uvicorn's
supervisor instead (one ``SO_REUSEPORT`` socket each). The config is read once here first, so a bad
file fails with one clear line before any worker starts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from ctxopt.errors import ConfigError, InputError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SERVE.toml", help="tenants, keys, upstreams and limits (see the README)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="worker processes (default: one per core, here %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default %(default)s)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--otel", action="store_true",
                        help="OpenTelemetry spans for every request (needs ctxopt[otel]; like [server] otel = true)")
    parser.add_argument("--no-front", action="store_true",
                        help="workers listen on the port themselves (SO_REUSEPORT), without the front process: "
                             "one process hop less, but a killed worker's clients see reset connections")
    parser.add_argument("--hash-key", action="store_true",
                        help="read an API key from standard input and print the SHA-256 hash a config lists for it")


def run(args: argparse.Namespace) -> int:
    if args.hash_key:
        from ctxopt.serve.config import hash_key

        key = sys.stdin.readline().strip()
        if not key:
            raise InputError("--hash-key reads the key from standard input: echo \"$KEY\" | ctxopt serve --hash-key")
        print(hash_key(key))
        return 0
    if not args.config:
        raise InputError("ctxopt serve needs --config SERVE.toml (tenants, keys and upstreams)")
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    # One private folder (mode 0700) per run: the workers' sockets and, unless PROMETHEUS_MULTIPROC_DIR
    # names one, the metrics folder every process (workers and front) writes to, so /metrics shows
    # them all. Set before prometheus_client is imported, which fixes its storage then. The server
    # removes the folder when it stops.
    run_folder = Path(tempfile.mkdtemp(prefix="ctxopt-serve-"))
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        (run_folder / "metrics").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(run_folder / "metrics")
    try:
        return _serve(args, run_folder)
    finally:  # reached when uvicorn returns; a front stopped by a signal removes it before it re-raises
        shutil.rmtree(run_folder, ignore_errors=True)


def _serve(args: argparse.Namespace, run_folder: Path) -> int:
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from ctxopt.serve.config import CONFIG_ENV, load_config
        from ctxopt.serve.sockets import worker_sockets
    except ImportError as exc:
        raise ConfigError("ctxopt serve needs the serve extra: pip install 'ctxopt[serve]'") from exc
    config = load_config(args.config)  # a bad file fails here, once, with one line
    os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    if config.otel or args.otel:
        from ctxopt.serve.tracing import OTEL_ENV, Tracing

        Tracing(True)  # opentelemetry missing: one clear line here, not one per worker
        os.environ[OTEL_ENV] = "1"
    # One process per core already uses the cores: torch's default intra-op pool per worker would
    # oversubscribe them and spin-wait under load (see the load benchmark in the README).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.no_front:
        from ctxopt.serve import front

        front.run(host=args.host, port=args.port, workers=args.workers, log_level=args.log_level,
                  max_body_bytes=config.max_body_bytes, folder=run_folder)
        return 0
    uvi = uvicorn.Config("ctxopt.serve.app:create_app", factory=True, host=args.host, port=args.port,
                         workers=args.workers, log_level=args.log_level, timeout_graceful_shutdown=10)
    # One listening socket per worker (SO_REUSEPORT), so keep-alive clients spread over the workers.
    sockets = worker_sockets(args.host, args.port) if hasattr(socket, "SO_REUSEPORT") else [uvi.bind_socket()]
    # The supervisor even for one worker: it replaces a worker that dies.
    Multiprocess(uvi, sockets=sockets).run()
    return 0
