"""`jarvis trace` on the real stack (issue 20, item 3): an operation written in eu, folded in both
regions and archived, its steps in order and summing to the end-to-end time; a rejected one with
its reason; an unknown one with a clear error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from connectors.sdk import Client
from jarvis import topics, tracecontext
from jarvis.partitioning import partition_for
from jarvis.security import kafka_credentials
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


KCAT = shutil.which("kcat")


def kcat_headers(settings, region: str, topic: str, partition: int, since_ms: int) -> str:
    """kcat (a client we did not write) prints the headers of a partition's records since a time."""
    password = kafka_credentials.read_password(settings.home, "admin")
    args = [
        KCAT, "-C", "-b", settings.bootstrap(region), "-t", topic, "-p", str(partition), "-o", f"s@{since_ms}",
        "-e", "-q", "-f", "%h\\n",
    ]  # fmt: skip
    if password is not None:
        args += [
            "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin",
            "-X", f"sasl.password={password}", "-X", f"ssl.ca.location={settings.tls_dir / 'ca.pem'}",
        ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(KCAT is None, reason="kcat not installed (deploy/install-system-deps.sh)")
def test_the_w3c_trace_rides_from_the_sdk_through_the_verifier_and_mirrormaker(stack, settings) -> None:
    oid = f"ctr:tracectx-{uuid.uuid4().hex[:8]}"
    since_ms = int(time.time() * 1000) - 1000
    with Client(region="eu", node_id="trace-ctx", dev_trust=True) as c:
        op_id = c.counter(oid).increment(2)
        c.flush()
    us = settings.region_config("us").query_url
    assert wait_until(lambda: read_value(us, oid) == 2, 60)
    p = jarvis_trace(op_id, "--object", oid, "--json")
    assert p.returncode == 0, p.stderr
    trace_id = json.loads(p.stdout)["trace_id"]
    assert trace_id is not None and len(trace_id) == 32
    part = partition_for(oid, settings.partitions)

    def spans(region: str, topic: str) -> set[str]:
        out = kcat_headers(settings, region, topic, part, since_ms)
        found = {tracecontext.parse(h.split("=", 1)[1]) for line in out.splitlines() for h in line.split(",")
                 if h.startswith(tracecontext.HEADER + "=")}  # fmt: skip
        return {t.span_id for t in found if t is not None and t.trace_id == trace_id}

    written, verified = spans("eu", topics.INGRESS), spans("eu", topics.OPS)
    assert len(written) == 1 and len(verified) == 1 and written != verified  # the verifier's own span
    # MirrorMaker 2 copies the headers as they are.
    assert wait_until(lambda: spans("us", topics.mirrored("eu", topics.OPS)) == verified, 30)
