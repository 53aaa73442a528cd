"""The loop-lag meter sees a stall of the event loop, and the GC timer sees collections."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import REGISTRY

from streams.loop_lag import GcTimer, LagMeter


def test_a_stall_of_the_loop_is_measured_as_at_least_its_length() -> None:
    meter = LagMeter("lag-test")

    async def run() -> None:
        task = asyncio.create_task(meter.run(sample_s=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # a handler that does not yield: the loop stalls
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(run())
    assert meter.longest >= 0.25
    assert REGISTRY.get_sample_value("jarvis_loop_lag_max_seconds", {"worker": "lag-test"}) == meter.longest
    assert REGISTRY.get_sample_value("jarvis_loop_lag_recent_max_seconds", {"worker": "lag-test"}) == meter.longest
    count = REGISTRY.get_sample_value("jarvis_loop_lag_seconds_count", {"worker": "lag-test"})
    assert count is not None and count >= 3


def test_the_recent_maximum_forgets_stalls_older_than_its_window() -> None:
    meter = LagMeter("lag-window-test")
    meter.observe(2.0, now=0.0)
    meter.observe(0.5, now=30.0)
    assert REGISTRY.get_sample_value("jarvis_loop_lag_recent_max_seconds", {"worker": "lag-window-test"}) == 2.0
    meter.observe(0.1, now=70.0)
    assert REGISTRY.get_sample_value("jarvis_loop_lag_recent_max_seconds", {"worker": "lag-window-test"}) == 0.5
    assert meter.longest == 2.0


def test_gc_passes_are_timed() -> None:
    timer = GcTimer("gc-test")
    gc.callbacks.append(timer)
    try:
        for _ in range(3):
            gc.collect()
    finally:
        gc.callbacks.remove(timer)
    count = REGISTRY.get_sample_value("jarvis_gc_pause_seconds_count", {"worker": "gc-test", "generation": "2"})
    assert count is not None and count >= 3
    assert timer.longest > 0
