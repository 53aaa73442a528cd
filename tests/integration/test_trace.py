"""`jarvis trace` on the real stack (issue 20, item 3): an operation written in eu, folded in both
regions and archived, its steps in order and summing to the end-to-end time; a rejected one with
its reason; an unknown one with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from connectors.sdk import Client
from tests.integration.pipeline_helpers import read_value, wait_until

pytestmark = pytest.mark.integration


def jarvis_trace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "trace", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_an_operation_written_in_eu_is_traced_through_both_regions_and_the_archive(stack, settings) -> None:
    oid = f"ctr:trace-{uuid.uuid4().hex[:8]}"
    with Client(region="eu", node_id="trace-app", dev_trust=True) as c:
        op_id = c.counter(oid).increment(5)
        c.flush()
    for region in ("eu", "us"):
        url = settings.region_config(region).query_url
        assert wait_until(lambda url=url: read_value(url, oid) == 5, 60), f"{oid} never folded in {region}"

    def traced() -> dict | None:
        p = jarvis_trace(op_id, "--object", oid, "--json")
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        return doc if not doc["missing"] else None

    assert wait_until(lambda: traced() is not None, 60), "some step never showed (the archive's batch?)"
    doc = traced()
    assert doc is not None
    steps = [(s["step"], s["region"]) for s in doc["steps"]]
    assert steps[:2] == [("written", "eu"), ("verified", "eu")]
    assert set(steps[2:]) == {("folded", "eu"), ("folded", "us"), ("archived", "archive")}
    # No order between the regions' folds: each writes its state changelog once per settle, so us
    # (after the MirrorMaker hop) can write the object before eu does.
    gaps = [s["since_previous_ms"] for s in doc["steps"]]
    assert all(g >= 0 for g in gaps)
    assert sum(gaps) == doc["total_ms"] == doc["steps"][-1]["at_ms"] - doc["steps"][0]["at_ms"]
    assert doc["origin_region"] == "eu" and doc["op_id"] == op_id
    table = jarvis_trace(op_id, "--object", oid)
    assert table.returncode == 0 and "end to end:" in table.stdout and "folded" in table.stdout


def test_a_rejected_operation_is_traced_to_its_reason_and_exits_2(stack) -> None:
    oid = f"quality:trace-{uuid.uuid4().hex[:8]}"  # value_range [0, 100] in pipelines/default.yaml
    with Client(region="eu", node_id="trace-app", dev_trust=True) as c:
        op_id = c.timeseries(oid).append_data_point(time.time(), 500.0)
        c.flush()
    p: subprocess.CompletedProcess | None = None

    def decided() -> bool:
        nonlocal p
        p = jarvis_trace(op_id, "--object", oid, "--json")
        return p.returncode == 2

    assert wait_until(decided, 60), p.stdout if p else ""
    assert p is not None
    doc = json.loads(p.stdout)
    assert [s["step"] for s in doc["steps"]] == ["written", "rejected"]
    assert any("range" in r for r in doc["reasons"]), doc["reasons"]


def test_an_unknown_operation_is_a_clear_error(stack) -> None:
    p = jarvis_trace("no-such-op", "--object", "ctr:nothing-here")
    assert p.returncode == 1
    assert "no region's ingress holds operation 'no-such-op'" in p.stderr
    assert "Traceback" not in p.stderr
