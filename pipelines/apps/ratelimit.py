"""Distributed rate limiting: one global limit per client and endpoint across API gateways in
several regions, with no request waiting on another region.

CRDT (pipeline `platform`):
  ratelimit:<client>:<endpoint>:<window>:<gateway>   G-Counter  requests that gateway admitted in
                                                     that window. One counter per gateway, so each
                                                     gateway knows its own count exactly and reads
                                                     the others' as they replicate.

A gateway admits a request when its own exact count plus the others' last observed counts is below
the limit. It sends its increments every `flush_s` and re-reads the others' counters every
`refresh_s`, both from its own region's query API (mirrored by MirrorMaker 2). The re-reading is
done by a background thread, so a request never waits on the query API except the first one for a
client and endpoint in a window (it has nothing observed yet).

Slack (stated). Requests another gateway admitted but this one has not observed yet can push the
total past the limit: overshoot <= sum over the other gateways of (their admission rate x
staleness), staleness = flush_s + replication lag + refresh_s (about 1 s on the local stack). A
gateway never overshoots on its own traffic, and the limit is never under-used by more than what
was admitted but not yet observed. benchmarks/usecases.py and tests/integration/test_usecases.py
measure the overshoot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, positive_int, read_value


def counter_id(client_id: str, endpoint: str, window: int, gateway: str) -> str:
    return f"ratelimit:{client_id}:{endpoint}:{window}:{gateway}"


def admit(own: int, others: dict[str, int], limit: int) -> bool:
    return own + sum(others.values()) < limit


def slack_bound(other_rates: dict[str, float], staleness_s: float) -> float:
    """The stated slack: the most requests the others may admit that this gateway has not seen."""
    return sum(other_rates.values()) * staleness_s


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    own: int  # this gateway's admissions in the window, after this request
    observed_total: int  # own + the others' counts as last observed
    limit: int


class RateLimiter:
    """One API gateway's limiter. `gateways` names every gateway sharing the limit (this one too)."""

    def __init__(
        self,
        client: Client,
        gateway: str,
        gateways: list[str],
        limit: int,
        window_s: float = 60.0,
        *,
        flush_s: float = 0.02,
        refresh_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.gateway = name("gateway", gateway)
        if gateway not in gateways:
            raise AppError(f"gateway {gateway!r} is not among the gateways {gateways}")
        self.others = [name("gateway", g) for g in gateways if g != gateway]
        self.limit = positive_int("limit", limit)
        if not window_s > 0:
            raise AppError(f"window_s must be positive, got {window_s!r}")
        self.window_s, self.flush_s, self.refresh_s, self.clock = window_s, flush_s, refresh_s, clock
        self._own: dict[tuple[str, str, int], int] = {}
        self._seen: dict[tuple[str, str, int], tuple[float, dict[str, int]]] = {}
        self._handles: dict[tuple[str, str, int], Any] = {}  # this gateway's counter, per key
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _read_others(self, key: tuple[str, str, int]) -> dict[str, int]:
        return {g: int(read_value(self.client, counter_id(*key, g), 0)) for g in self.others}

    def _observed(self, key: tuple[str, str, int]) -> dict[str, int]:
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = (time.monotonic(), self._read_others(key))
        if self._refresher is None and self.others:
            self._refresher = threading.Thread(target=self._refresh, name="ratelimit-refresh", daemon=True)
            self._refresher.start()
        return seen[1]

    def _refresh(self) -> None:
        """Re-read the others' counters of every key in use, every `refresh_s`, off the request path."""
        while not self._stop.wait(self.refresh_s):
            with self._lock:
                keys = list(self._seen)
            for key in keys:
                try:
                    counts = self._read_others(key)
                except OSError:  # the query API is away for a moment: keep the last observation
                    continue
                with self._lock:
                    if key in self._seen:
                        self._seen[key] = (time.monotonic(), counts)

    def staleness(self, client_id: str, endpoint: str) -> float:
        """Seconds since the others' counts for this client and endpoint were last read."""
        key = (client_id, endpoint, int(self.clock() // self.window_s))
        seen = self._seen.get(key)
        return float("inf") if seen is None else time.monotonic() - seen[0]

    def check_rate_limit(self, client_id: str, endpoint: str) -> RateDecision:
        key = (client_id, endpoint, int(self.clock() // self.window_s))
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:  # first request of the window: a restarted gateway resumes its count
                name("client_id", client_id)
                name("endpoint", endpoint)
                oid = counter_id(*key, self.gateway)
                self._own[key] = int(read_value(self.client, oid, 0))
                handle = self._handles[key] = self.client.counter(oid)
                self._drop_old(key[2])
            others = self._observed(key)
            own = self._own[key]
            allowed = admit(own, others, self.limit)
            if allowed:
                own = self._own[key] = own + 1
                handle.increment(1)
            if time.monotonic() - self._last_flush >= self.flush_s:
                self.client.flush()
                self._last_flush = time.monotonic()
        return RateDecision(allowed, own, own + sum(others.values()), self.limit)

    def _drop_old(self, window: int) -> None:
        for k in [k for k in self._own if k[2] < window - 1]:
            self._own.pop(k, None)
            self._seen.pop(k, None)
            self._handles.pop(k, None)

    def flush(self) -> None:
        with self._lock:
            self.client.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Send what is queued and stop re-reading the other gateways."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5 * self.refresh_s + 10)
        self.flush()

    def admitted(self, client_id: str, endpoint: str) -> int:
        """This gateway's admissions in the current window."""
        return self._own.get((client_id, endpoint, int(self.clock() // self.window_s)), 0)
