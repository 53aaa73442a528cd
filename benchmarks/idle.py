"""Wait until the local stack has no backlog, so one benchmark's tail does not skew the next."""

from __future__ import annotations

import time
import urllib.request

from jarvis.config import Settings


def fold_lag(query_url: str) -> float:
    text = urllib.request.urlopen(f"{query_url}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jarvis_fold_consumer_lag{")
    )


def wait_idle(settings: Settings, timeout: float = 600, quiet_reads: int = 3) -> float:
    """Block until every region's fold reports no lag `quiet_reads` times in a row; returns seconds waited."""
    t0 = time.monotonic()
    quiet = 0
    while quiet < quiet_reads:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the stack still has a backlog after {timeout:.0f} s")
        lag = sum(fold_lag(r.query_url) for r in settings.regions)
        quiet = quiet + 1 if lag == 0 else 0
        time.sleep(2.1)  # the fold refreshes its lag gauge every 2 s
    return time.monotonic() - t0
