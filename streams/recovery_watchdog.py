"""Restarts a Faust worker whose table recovery has stopped making progress.

Faust 0.15.3 can stall in table recovery after a rebalance: it waits for changelog records of newly
assigned partitions that its fetcher never delivers ("No event received for active tp ... since
recovery start", for minutes; a known class of Faust bugs). The worker then answers nothing for
those partitions. A fresh process recovers them from the changelog, so when recovery shows no
progress for STALL_S the worker leaves its consumer group and replaces itself (same PID, so the
stack's pid file stays right). A restart is safe at any point: it is what `kill -9` does, and the
fold's dots make redelivered operations no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import faust

log = logging.getLogger(__name__)

STALL_S = 45.0
CHECK_EVERY_S = 5.0


@dataclass
class StallClock:
    """Decides when recovery is stalled: in recovery, with the records still to read unchanged."""

    stall_s: float = STALL_S
    _remaining: int | None = None
    _since: float = field(default=0.0)

    def stalled(self, in_recovery: bool, remaining: int, now: float) -> bool:
        if not in_recovery:
            self._remaining = None
            return False
        if remaining != self._remaining:
            self._remaining, self._since = remaining, now
            return False
        return now - self._since >= self.stall_s

    def stalled_for(self, now: float) -> float:
        return now - self._since


def restart_argv() -> list[str]:
    # Started as `python -m jarvis.cli worker ...` or as the `jarvis` script: the same command either way.
    return [sys.executable, "-m", "jarvis.cli", *sys.argv[1:]]


def install_recovery_watchdog(app: faust.App, stall_s: float = STALL_S) -> StallClock:
    clock = StallClock(stall_s)

    @app.timer(CHECK_EVERY_S)
    async def watch_recovery() -> None:
        recovery = app.tables.recovery
        now = time.monotonic()
        remaining = recovery.active_remaining_total() if recovery.in_recovery else 0
        if not clock.stalled(recovery.in_recovery, remaining, now):
            return
        log.error(
            "table recovery made no progress for %.0f s (%d changelog records still to read): "
            "restarting this worker to recover from the changelog afresh",
            clock.stalled_for(now), remaining,
        )  # fmt: skip
        await restart_worker(app)

    return clock


async def restart_worker(app: faust.App) -> None:
    """Leave the consumer group (so the others rebalance now, not after the session timeout), then
    replace this process with a fresh run of the same command."""
    try:
        await asyncio.wait_for(app.consumer.stop(), timeout=10)
    except Exception as e:  # noqa: BLE001 - restarting anyway
        log.warning("consumer did not stop cleanly before the restart: %r", e)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, restart_argv())
