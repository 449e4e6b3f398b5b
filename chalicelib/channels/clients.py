"""httpx clients taken in turn, so that no connection pool holds more than a few dozen connections.

httpcore 1.0.9 (the pool under httpx 0.28) hands out connections under one lock, and each time walks every
connection of the pool and, for each idle one, counts all of them again (`_assign_requests_to_connections`):
its cost grows with the square of the pool, on every request and every answer read. It also closes idle
connections whenever the pool holds more than `max_keepalive_connections`, so a pool larger than that opened a
new connection for most sends. A dispatch invocation sends up to 50 at once, and the local stack runs several
invocations in one process. Measured with 150 threads sending 3,000 messages to the fake provider: one client
of 256 connections (64 kept alive) took 261 requests/s and 2.44 ms of CPU per request; 8 clients of 32 (all
kept alive) 466 requests/s and 1.41 ms (decision 52).
"""

from __future__ import annotations

import itertools
import math
import ssl
from collections.abc import Callable

import httpx

CLIENTS = 8


class ClientSet:
    """`clients` httpx clients made alike, sharing `connections` between them; `next()` takes them in turn.

    `make(limits, verify)` makes one. They share one SSL context: a client makes its own otherwise, 22 ms of
    CPU each (the CA bundle read and parsed), 8 times per set."""

    def __init__(
        self, make: Callable[[httpx.Limits, ssl.SSLContext], httpx.Client], *, connections: int, clients: int = CLIENTS
    ):
        each = max(1, math.ceil(connections / clients))
        # As many kept alive as may be open: httpcore closes idle connections beyond that on every request.
        limits = httpx.Limits(max_connections=each, max_keepalive_connections=each)
        verify = httpx.create_ssl_context()
        self.clients = [make(limits, verify) for _ in range(clients)]
        self._turn = itertools.count()

    def next(self) -> httpx.Client:
        return self.clients[next(self._turn) % len(self.clients)]
