"""Restarts a Faust worker whose rebalance or table recovery has stopped making progress.

Faust 0.15.3 can stall in table recovery after a rebalance: it waits for changelog records of newly
assigned partitions that its fetcher never delivers ("No event received for active tp ... since
recovery start", for minutes; a known class of Faust bugs). The worker then answers nothing for
those partitions. Once, a worker also stayed in a rebalance for minutes without reaching recovery.
A fresh process recovers from the changelog, so when recovery shows no progress for STALL_S, or a
rebalance lasts REBALANCE_STALL_S without recovery moving, the worker leaves its consumer group and
replaces itself (same PID, so the stack's pid file stays right). A restart is safe at any point: it
is what `kill -9` does, and the fold's dots make redelivered operations no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import faust

from streams.faust_compat import recovery_progress
from streams.reexec import restart_argv

log = logging.getLogger(__name__)

STALL_S = 45.0
# Longer: a rebalance legitimately waits for a dead member's session to time out (60 s by default).
REBALANCE_STALL_S = 150.0
CHECK_EVERY_S = 5.0


@dataclass
class StallClock:
    """Decides when a worker is stuck: busy (rebalancing or recovering) with nothing changing."""

    _marker: object = None
    _since: float = field(default=0.0)

    def stalled(self, busy: bool, marker: object, limit: float, now: float) -> bool:
        """`marker` changes whenever there is progress (e.g. the changelog records still to read)."""
        if not busy:
            self._marker = None
            return False
        if marker != self._marker:
            self._marker, self._since = marker, now
            return False
        return now - self._since >= limit

    def stalled_for(self, now: float) -> float:
        return now - self._since


def install_recovery_watchdog(app: faust.App) -> StallClock:
    clock = StallClock()

    @app.timer(CHECK_EVERY_S)
    async def watch_recovery() -> None:
        progress = recovery_progress(app)
        now = time.monotonic()
        recovering, remaining = progress.recovering, progress.remaining
        busy = recovering or progress.rebalancing
        limit = STALL_S if recovering else REBALANCE_STALL_S
        if not clock.stalled(busy, (progress.rebalancing_count, recovering, remaining), limit, now):
            return
        log.error(
            "%s made no progress for %.0f s (%d changelog records still to read): "
            "restarting this worker to recover from the changelog afresh",
            "table recovery" if recovering else "the rebalance", clock.stalled_for(now), max(remaining, 0),
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
