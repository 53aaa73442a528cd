"""Wait until the local stack has no backlog, so one benchmark's tail does not skew the next."""

from __future__ import annotations

import time

from connectors import api_client
from jarvis.config import Settings


def fold_lag(query_url: str) -> float:
    text = api_client.urlopen(f"{query_url}/metrics", 5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jarvis_fold_consumer_lag{")
    )


def wait_idle(settings: Settings, timeout: float = 600, quiet_reads: int = 3) -> float:
    """Block until every region's fold reports no lag `quiet_reads` times in a row; returns seconds waited."""
    t0 = time.monotonic()
    probe_round_trip(settings, timeout)
    quiet = 0
    while quiet < quiet_reads:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"the stack still has a backlog after {timeout:.0f} s")
        lag = sum(fold_lag(r.query_url) for r in settings.regions)
        quiet = quiet + 1 if lag == 0 else 0
        time.sleep(2.1)  # the fold refreshes its lag gauge every 2 s
    return time.monotonic() - t0


def probe_round_trip(settings: Settings, timeout: float) -> None:
    """A fresh write must become visible in every region: a fold still restoring its table from
    the changelog after a restart (which reports no lag yet) holds this up."""
    import uuid

    from connectors.sdk import Client

    oid = f"ctr:idle-probe-{uuid.uuid4().hex[:8]}"
    c = Client(region=settings.region_names[0], node_id="bench-idle", dev_trust=True)
    c.counter(oid).increment(1)
    c.flush()
    deadline = time.monotonic() + timeout
    for r in settings.region_names:
        reader = Client(region=r, node_id="bench-idle", dev_trust=True)
        while (reader.value(oid) if _up(reader, oid) else None) != 1:
            if time.monotonic() > deadline:
                raise SystemExit(f"a probe write did not reach {r} within {timeout:.0f} s")
            time.sleep(0.5)


def _up(client, oid: str) -> bool:
    try:
        client.read(oid)
        return True
    except Exception:  # noqa: BLE001 - a restarting fold answers 503 or not at all
        return False
