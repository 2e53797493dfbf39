"""The listening socket of ``ctxopt serve --no-front``: one per worker, on one port, where the kernel allows it.

(By default the front process listens and balances each request over the workers instead:
:mod:`ctxopt.serve.front`.)

With one socket shared by every worker (uvicorn's default), whichever worker is idle first accepts,
and a client's keep-alive connection then stays with it: 8 pooled connections from one agent SDK
landed 400 of 400 requests on one of 2 workers here, so the second process bought nothing. With
``SO_REUSEPORT`` each worker listens on its own socket bound to the same address, and the kernel
spreads new connections over them by their address hash. The supervisor keeps a bound socket
that never listens (it holds the port and names it), and each worker, as it is spawned, unpickles
it as a fresh bound socket of its own; a replaced worker gets a fresh one too. A socket joins the
kernel's spreading only once it listens, which uvicorn does when the worker's app has started, so
a starting worker is sent no connection it cannot yet answer.

Where ``SO_REUSEPORT`` is missing, the one shared socket is used as before.
"""

from __future__ import annotations

import socket
from typing import Any


class ReusePortSocket(socket.socket):
    """A bound socket that a spawned worker receives as a socket of its own bound to the same address."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_bound, (self.family, self.getsockname()))


def _bound(family: int, address: Any, kind: type[socket.socket] = socket.socket) -> socket.socket:
    sock = kind(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def worker_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets to hand uvicorn's supervisor: one :class:`ReusePortSocket` (needs ``SO_REUSEPORT``)."""
    return [_bound(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port), ReusePortSocket)]
