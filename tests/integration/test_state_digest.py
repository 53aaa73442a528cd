"""The state digest on the real stack (issue 24): kept as objects change, it agrees across regions,
follows every change, comes back the same after the fold restarts and recovers its table from the
changelog, and is served by curl while the loop-lag metrics are on the fold's /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest

from connectors import api_client
from connectors.regions import agreement, digests
from connectors.sdk import Client
from jarvis.stack.workers import worker_proc
from tests.integration.cli_helpers import curl_tls
from tests.integration.pipeline_helpers import read_value, wait_until

pytestmark = pytest.mark.integration


def curl(url: str) -> tuple[int, str]:
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", *curl_tls(), "-H", f"Authorization: Bearer {api_client.api_key()}", url],
        capture_output=True, text=True, check=False,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status or 0), body


def digest_of(url: str) -> dict[str, Any] | None:
    status, body = curl(f"{url}/v1/digest")
    return json.loads(body) if status == 200 else None


@pytest.mark.slow  # a fold restart under load: over a minute
def test_digests_agree_follow_changes_and_survive_a_fold_restart(stack) -> None:
    s = stack.settings
    eu, us = (s.region_config(r).query_url for r in ("eu", "us"))
    run = uuid.uuid4().hex[:8]
    ids = [f"ctr:digest-{run}-{i}" for i in range(200)]
    with Client(region="eu", node_id="digest-eu", dev_trust=True) as a, Client(region="us", node_id="digest-us", dev_trust=True) as b:
        for i, oid in enumerate(ids):
            (a if i % 2 else b).counter(oid).increment(i + 1)
            a.register(f"reg:digest-{run}-{i % 10}").write({"i": i, "by": "eu"})
    assert wait_until(lambda: read_value(us, ids[-2]) == len(ids) - 1 and read_value(eu, ids[0]) == 1, 120)
    assert wait_until(lambda: agreement(digests(s))[0], 120, interval=1.0), digests(s)
    before = digest_of(eu)
    assert before is not None and before["digest"] == "v2" and before["objects"] >= len(ids) + 10

    # One more change in one region: that region's digest moves at once, the other's once mirrored.
    with Client(region="us", node_id="digest-us", dev_trust=True) as b:
        b.counter(ids[0]).increment(1000)
    assert wait_until(lambda: read_value(us, ids[0]) == 1001, 60)
    moved = digest_of(us)
    assert moved is not None and moved["partitions"] != before["partitions"]
    assert wait_until(lambda: agreement(digests(s))[0], 120, interval=1.0), digests(s)
    settled = digest_of(eu)
    assert settled is not None and settled["partitions"] == moved["partitions"]

    # kill -9 the eu fold: the supervisor restarts it, it recovers its table from the changelog
    # (Faust writes the storage the digest observes), and answers the same digest.
    proc = worker_proc(s, "fold", "eu")
    pid = proc.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: proc.pid() not in (None, pid), 30, interval=0.2)
    assert wait_until(lambda: (digest_of(eu) or {}).get("partitions") == settled["partitions"], 120, interval=1.0), (
        digest_of(eu),
        settled,
    )
    assert agreement(digests(s))[0]


def test_the_fold_exports_its_loop_lag_and_gc_pauses(stack) -> None:
    url = stack.settings.region_config("eu").query_url
    time.sleep(1)  # a few samples
    status, text = curl(f"{url}/metrics")
    assert status == 200
    for name in ("jarvis_loop_lag_seconds_bucket", "jarvis_loop_lag_max_seconds", "jarvis_gc_pause_seconds_count"):
        assert name in text, name
    lag = [line for line in text.splitlines() if line.startswith("jarvis_loop_lag_seconds_count")]
    assert lag and float(lag[0].split()[-1]) > 0
