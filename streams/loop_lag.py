"""How long a worker's event loop stalls, and how long the garbage collector pauses it (issue 24).

Every SAMPLE_S a task asks to be woken SAMPLE_S later and measures how late it woke: the time the
loop was busy with something that did not yield (a long request, a timer's work, a GC pass). That
delay goes into a histogram and the longest into gauges (since the start, and over the last
minute), exported on the worker's /metrics. A stall between two samples is seen in full by the next
wake-up, so the gauge's maximum is the longest stall, to within one sample's scheduling.

GC pauses are timed by gc.callbacks (start and stop of every collection, any generation): the
collector runs inside whatever Python code is allocating, so it shows up as loop lag too, and this
says how much of it is the collector's.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

SAMPLE_S = 0.1
WINDOW_S = 60.0
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

LOOP_LAG = Histogram(
    "jarvis_loop_lag_seconds", "How late the event loop woke a sampling task (its stall)", ["worker"],
    buckets=_BUCKETS,
)  # fmt: skip
LOOP_LAG_MAX = Gauge("jarvis_loop_lag_max_seconds", "Longest event-loop stall since the worker started", ["worker"])
LOOP_LAG_RECENT = Gauge(
    "jarvis_loop_lag_recent_max_seconds", f"Longest event-loop stall over the last {WINDOW_S:g} s", ["worker"]
)
GC_PAUSE = Histogram(
    "jarvis_gc_pause_seconds", "Garbage-collector passes, by generation", ["worker", "generation"], buckets=_BUCKETS
)
GC_PAUSE_MAX = Gauge("jarvis_gc_pause_max_seconds", "Longest garbage-collector pass since the start", ["worker"])
GC_COLLECTED = Counter("jarvis_gc_collected_total", "Objects the garbage collector freed", ["worker"])


class LagMeter:
    """The loop-lag figures of one worker (`worker`: its metrics label)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.longest = 0.0
        self.recent: deque[tuple[float, float]] = deque()  # (when, lag), lags in the last WINDOW_S
        self._hist = LOOP_LAG.labels(worker)
        self._max = LOOP_LAG_MAX.labels(worker)
        self._recent = LOOP_LAG_RECENT.labels(worker)

    def observe(self, lag: float, now: float) -> None:
        lag = max(0.0, lag)
        self._hist.observe(lag)
        if lag > self.longest:
            self.longest = lag
            self._max.set(lag)
        recent = self.recent
        while recent and recent[0][0] < now - WINDOW_S:
            recent.popleft()
        while recent and recent[-1][1] <= lag:  # a smaller lag before a larger one is never the max
            recent.pop()
        recent.append((now, lag))
        self._recent.set(recent[0][1])

    async def run(self, sample_s: float = SAMPLE_S) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(sample_s)
            now = loop.time()
            self.observe(now - asked - sample_s, now)


class GcTimer:
    """Times each garbage-collector pass through gc.callbacks."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.longest = 0.0
        self._started = 0.0
        self._max = GC_PAUSE_MAX.labels(worker)
        self._collected = GC_COLLECTED.labels(worker)
        self._hists = {g: GC_PAUSE.labels(worker, str(g)) for g in range(3)}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self._hists[info.get("generation", 2)].observe(took)
        self._collected.inc(info.get("collected", 0))
        if took > self.longest:
            self.longest = took
            self._max.set(took)

    def install(self) -> GcTimer:
        if not any(isinstance(cb, GcTimer) for cb in gc.callbacks):  # one per process
            gc.callbacks.append(self)
        return self


def install_loop_lag(app: Any, worker: str) -> LagMeter:
    """Sample the loop of a Faust app's worker once it runs, and time its GC passes."""
    meter = LagMeter(worker)
    GcTimer(worker).install()

    @app.task
    async def sample_loop_lag() -> None:
        await meter.run()

    return meter
