"""A per-client brake for the pages a bearer token opens: a small in-process limiter on the
standard library (a lock, ``time.monotonic`` and an LRU-bounded dict of fixed windows).

Two budgets per client address, each a fixed window: requests (``requests`` per ``window_s``)
and failures - links the page refused (``failures`` per ``failure_window_s``), which is what
guessing tokens produces. A client over either budget gets 429 with ``Retry-After`` until its
window ends, whatever link it asks for.

Why in-process is enough: ``crm web`` is one uvicorn process, so one limiter sees every request
it serves; the tokens are HMAC-SHA256 (guessing one is hopeless anyway), so the brake is about
load and noise, and a restart forgetting the counts costs nothing. Behind a reverse proxy the
client is the address uvicorn takes from ``X-Forwarded-For`` (it trusts the proxy on
127.0.0.1 by default); several ``crm web`` instances behind one proxy need the proxy's own
limit (e.g. nginx ``limit_req``) in addition.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_CLIENTS = 50_000  # the least recently seen are forgotten beyond this


@dataclass(slots=True)
class _Window:
    started: float
    count: int = 0


@dataclass(slots=True)
class _Client:
    requests: _Window
    failures: _Window


class ClientLimiter:
    """Thread-safe: the page handlers run in Starlette's thread pool."""

    def __init__(
        self,
        *,
        requests: int,
        window_s: float = 60.0,
        failures: int = 20,
        failure_window_s: float = 600.0,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests, self.window_s = requests, window_s
        self.failures, self.failure_window_s = failures, failure_window_s
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0  # requests answered 429 since start (tests and the benchmark read it)

    def _client(self, key: str, now: float) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = _Client(_Window(now), _Window(now))
            self._clients[key] = client
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        if now - client.requests.started >= self.window_s:
            client.requests = _Window(now)
        if now - client.failures.started >= self.failure_window_s:
            client.failures = _Window(now)
        return client

    def admit(self, key: str) -> int | None:
        """Count a request of client ``key``: None when it may go on, else the seconds to wait
        (for ``Retry-After``)."""
        with self._lock:
            now = self._clock()
            client = self._client(key, now)
            if client.failures.count >= self.failures:
                wait = client.failures.started + self.failure_window_s - now
            elif client.requests.count >= self.requests:
                wait = client.requests.started + self.window_s - now
            else:
                client.requests.count += 1
                return None
            self.refused += 1
            return max(1, math.ceil(wait))

    def failed(self, key: str) -> None:
        """Count a refused link of client ``key``."""
        with self._lock:
            self._client(key, self._clock()).failures.count += 1


__all__ = ["ClientLimiter"]
