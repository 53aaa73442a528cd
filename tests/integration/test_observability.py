"""Prometheus, started by the stack, scrapes every worker: every Grafana panel's query returns
series from the running stack once some traffic (operations, a rejection, a task) has flowed."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import pytest

from connectors.sdk import Client
from jarvis.config import REPO_ROOT
from jarvis.stack import prometheus
from tests.integration.pipeline_helpers import get_json, read_value, wait_until

pytestmark = pytest.mark.integration

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "jarvis.json"


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def test_stack_status_names_the_console_and_prometheus(stack) -> None:
    st = stack.status()
    assert st["prometheus_url"] == prometheus.url(stack.settings) and st["prometheus_status"] == "up"
    assert st["console_url"] == "https://127.0.0.1:9281/"
    status, health = get_json(st["console_url"] + "healthz")
    assert status == 200 and health["region"] == "eu"


def test_every_worker_is_scraped(stack) -> None:
    url = prometheus.url(stack.settings)

    def all_up() -> bool:
        status, body = get_json(f"{url}/api/v1/targets?state=active")
        if status != 200:
            return False
        targets = body["data"]["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    assert wait_until(all_up, 60, interval=2), get_json(f"{url}/api/v1/targets?state=active")[1]


def test_every_dashboard_panel_returns_series(stack) -> None:
    s = stack.settings
    url = prometheus.url(s)
    c = Client(region="eu", node_id="observability-test", dev_trust=True)
    oid = f"ctr:obs-{uuid.uuid4().hex[:6]}"
    c.counter(oid).increment(3)
    c.counter(f"{oid}-rejected").increment(9_000_000_000_000)  # out of range: a rejection by reason
    c.tasks.submit("noop", {"x": 1})
    c.flush()
    assert wait_until(lambda: read_value(s.region_config("eu").query_url, oid) == 3, 60)
    missing: dict[str, str] = {}
    deadline = time.monotonic() + 120
    pending = panel_queries()
    while pending and time.monotonic() < deadline:
        still = []
        for title, expr in pending:
            # Rates need two scrapes of a series that moved: keep writing while waiting.
            status, body = get_json(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}")
            if status != 200 or not body["data"]["result"]:
                still.append((title, expr))
                missing[title] = expr if status == 200 else f"HTTP {status}: {body}"
        pending = still
        if pending:
            c.counter(oid).increment(1)
            c.flush()
            time.sleep(3)
    assert not pending, f"panels without series: {[(t, missing[t]) for t, _ in pending]}"
