"""Archive and replay on the real stack: PostgreSQL holds every operation once, replays from Kafka
and from the archive agree with each other, with live state and with a model at any past time,
tampering is caught, and kill -9 of the archiver loses and duplicates nothing."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest

from connectors.archive.rows import message_rows
from connectors.archive.sink import ArchiveSink
from connectors.archive.snapshots import take_snapshot
from connectors.replay_sources import SignatureChecker
from connectors.sdk import Client
from connectors.trust_feed import read_view
from jarvis.codec import encode_batch, encode_verified
from jarvis.crdt.clocks import HLC
from jarvis.ops import Operation, OperationBatch
from jarvis.replay_cli import Source, run_replay
from jarvis.security.signing import sign_batch
from jarvis.stack.workers import worker_proc
from pipelines.loader import object_factory, pipelines
from tests.integration.pipeline_helpers import get_json, normalize, object_url, recorder, wait_until
from tests.model import SentOp, model_value

pytestmark = pytest.mark.integration


def archived_count(dsn: str, object_ids: list[str]) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM jarvis.ops WHERE object_id = ANY(%s)", (object_ids,)
        ).fetchone()[0]


def write_mixed(clients: list[Client], run: str, n: int, rng: random.Random) -> None:
    for i in range(n):
        c = clients[i % len(clients)]
        r = rng.random()
        if r < 0.4:
            c.counter(f"ctr:{run}-a").increment(rng.randint(1, 5))
        elif r < 0.6:
            h = c.orset(f"ors:{run}-a")
            h.add(rng.choice("abcd")) if rng.random() < 0.6 else h.remove(rng.choice("abcd"))
        elif r < 0.8:
            c.timeseries(f"ts:{run}-a").append_data_point(1000 + i, float(i))
        else:
            c.workflow(f"wf:{run}-a").transition(rng.choice(["submitted", "approved", "rejected", "draft"]))
    for c in clients:
        c.flush()


def test_replay_from_kafka_and_archive_agree_with_live_and_with_the_past(stack) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    objects = [f"ctr:{run}-a", f"ors:{run}-a", f"ts:{run}-a", f"wf:{run}-a"]
    sent: list[SentOp] = []
    clients = [Client(region=r, node_id=f"audit-app-{r}", on_op=recorder(sent), dev_trust=True) for r in ("eu", "us")]
    rng = random.Random(11)
    write_mixed(clients, run, 1500, rng)
    time.sleep(0.05)
    mid = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    first_half = list(sent)
    write_mixed(clients, run, 1500, rng)
    total = len(sent)

    eu = s.region_config("eu").query_url
    wait_until(
        lambda: sum((get_json(object_url(eu, o))[1] or {}).get("ops", 0) for o in objects) == total, 90
    )
    assert wait_until(lambda: archived_count(s.postgres_dsn, objects) == total, 90), "archive incomplete"
    assert archived_count(s.postgres_dsn, objects) == total  # both archivers saw every op: stored once

    types = {o.object_id: o.crdt_type for o in sent}
    wf = pipelines().rule_for(f"wf:{run}-a").workflow.as_dict()
    for oid in objects:
        live = get_json(object_url(eu, oid))[1]
        k = run_replay(oid, None, Source.kafka, "eu")
        a = run_replay(oid, None, Source.archive, "eu")
        assert k.differences() == [] and a.differences() == [], (oid, k.differences(), a.differences())
        assert k.ops_folded == a.ops_folded == live["ops"] and not k.failures and not a.failures
        # At a past time both sources give the model's value of the operations sent before it.
        past = [o for o in first_half if o.object_id == oid]
        model = model_value(past, workflow=wf if types[oid] == "workflow" else None) if past else None
        kp = run_replay(oid, mid, Source.kafka, "us")
        ap = run_replay(oid, mid, Source.archive, "eu")
        assert normalize(types[oid], kp.value) == normalize(types[oid], ap.value) == model, oid
        assert kp.ops_folded == ap.ops_folded == len(past)


def test_snapshots_shorten_archive_replay_and_tampering_is_caught(stack) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    oid = f"ctr:{run}-snap"
    client = Client(region="eu", node_id="audit-snap", dev_trust=True)
    for i in range(2000):
        client.counter(oid).increment(1 + i % 3)
    client.flush()
    expected = sum(1 + i % 3 for i in range(2000))
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 2000, 90)
    create, checker = object_factory(pipelines()), SignatureChecker(read_view(s))
    with psycopg.connect(s.postgres_dsn) as conn:
        assert take_snapshot(conn, oid, "eu", create, checker) == 2000
    for _ in range(500):
        client.counter(oid).increment(1)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 2500, 90)
    wait_until(
        lambda: (get_json(object_url(s.region_config("eu").query_url, oid))[1] or {}).get("ops") == 2500, 60
    )
    rep = run_replay(oid, None, Source.archive, "eu")
    assert rep.snapshot is not None and rep.snapshot["ops"] == 2000
    assert rep.ops_folded == 500 and rep.value == expected + 500 and rep.differences() == []

    # Tamper with one archived operation: the replay names it and the value differs from live.
    with psycopg.connect(s.postgres_dsn) as conn:
        conn.execute(
            "UPDATE jarvis.ops SET payload = '{\"n\": 1000}' WHERE ctid = "
            "(SELECT ctid FROM jarvis.ops WHERE object_id = %s ORDER BY hlc DESC LIMIT 1)",
            (oid,),
        )
    bad = run_replay(oid, None, Source.archive, "eu")
    assert len(bad.failures) == 1 and "digest mismatch" in (bad.failures[0].problem or "")
    assert bad.value == expected + 499 and bad.differences()
    cli = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "replay", "--object", oid, "--source", "archive", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 3, cli.stderr  # failures are an error exit
    body = json.loads(cli.stdout)
    assert body["value"] == expected + 499 and len(body["signature_failures"]) == 1


def test_replay_cli_html_and_history_endpoint_and_audit(stack, tmp_path) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    oid = f"ctr:{run}-cli"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    client = Client(region="us", node_id="audit-cli", dev_trust=True)
    for _ in range(50):
        client.counter(oid).increment(2)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 50, 90)
    wait_until(
        lambda: (get_json(object_url(s.region_config("us").query_url, oid))[1] or {}).get("value") == 100, 60
    )
    out = tmp_path / "r.html"
    cli = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "replay", "--object", oid, "--region", "us", "--format", "html", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr + cli.stdout
    html = out.read_text()
    assert "<svg" in html and "equals the live state" in html and "audit-cli" in html

    status, body = get_json(object_url(s.region_config("eu").query_url, oid) + "/history?limit=5", timeout=30)
    assert status == 200 and body["value"] == 100 and len(body["history"]) == 5
    assert body["history"][0]["node_id"] == "audit-cli" and body["history_truncated"] == 45
    status, body = get_json(object_url(s.region_config("eu").query_url, "ctr:never-written") + "/history")
    assert status == 404 and "error" in body

    audit = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "audit", "--since", since.isoformat(), "--prefix", "ctr", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    report = json.loads(audit.stdout)
    mine = [g for g in report["by_node_prefix"] if g["node_id"] == "audit-cli"]
    assert mine and mine[0]["ops"] == 50 and mine[0]["prefix"] == "ctr"

    missing = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "replay", "--object", "ctr:never-written"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no operations" in missing.stderr


def test_kill_9_of_the_archiver_loses_and_duplicates_nothing(stack) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    objects = [f"ctr:{run}-arch-{i}" for i in range(20)]
    total = 60_000
    proc = worker_proc(s, "archiver", "eu")
    us_proc = worker_proc(s, "archiver", "us")
    us_proc.stop()  # only the eu archiver writes: its kill must be what the archive survives
    try:

        def produce() -> None:
            c = Client(region="eu", node_id="archive-kill", dev_trust=True)
            for i in range(total):
                c.counter(objects[i % 20]).increment(1)
                if i % 1000 == 999:  # a steady stream, so the kill lands between archive batches
                    c.flush(timeout=120)
                    time.sleep(0.05)
            c.flush(timeout=120)

        t = threading.Thread(target=produce)
        t.start()
        assert wait_until(lambda: 0 < archived_count(s.postgres_dsn, objects) < total, 120, interval=0.05)
        proc.kill9()
        time.sleep(1)
        proc.start()
        t.join(timeout=180)
        wait_until(lambda: archived_count(s.postgres_dsn, objects) >= total, 180, interval=1.0)
        time.sleep(3)
        with psycopg.connect(s.postgres_dsn) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT op_id) FROM jarvis.ops WHERE object_id = ANY(%s)", (objects,)
            ).fetchone()
        assert rows == distinct == total
    finally:
        us_proc.start()


AWKWARD = 'tab\there back\\slash cr\rlf\n quote" {braces,comma} \\N é✓'


def test_text_copy_needs_escaping_and_the_archive_still_replays_exactly(stack) -> None:
    """Tabs, newlines, backslashes and quotes in ids, args and metadata go through the archiver's COPY
    text: a replay from the archive re-checks every operation's digest, so one wrong byte shows."""
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    ors, ts = f"ors:{run}\tset\\x", f"ts:{run}-awkward"
    c = Client(region="eu", node_id=f"audit-awkward\t{run}", dev_trust=True)
    c.orset(ors).add(AWKWARD)
    c.orset(ors).add("plain")
    c.orset(ors).remove(AWKWARD)
    c.timeseries(ts).append_data_point(1_000.5, 2.5, {"sensor\t": AWKWARD})
    c.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [ors, ts]) == 4, 90), "archive incomplete"
    eu = s.region_config("eu").query_url
    wait_until(lambda: sum((get_json(object_url(eu, o))[1] or {}).get("ops", 0) for o in (ors, ts)) == 4, 60)
    for oid, ops in ((ors, 3), (ts, 1)):
        a = run_replay(oid, None, Source.archive, "eu")
        assert not a.failures and a.differences() == [] and a.ops_folded == ops, (
            oid,
            a.failures,
            a.differences(),
        )
    with psycopg.connect(s.postgres_dsn) as conn:
        node, md = conn.execute(
            "SELECT o.node_id, t.metadata FROM jarvis.ops o JOIN jarvis.telemetry t USING (content_sha256) "
            "WHERE o.object_id = %s",
            (ts,),
        ).fetchone()
    assert node == f"audit-awkward\t{run}" and md == {"sensor\t": AWKWARD}


def test_sink_stores_each_operation_once_however_it_comes_back(stack) -> None:
    """The sink's paths against the real archive: a batch twice in one poll, a redelivered batch (staged,
    deduplicated), and a new batch that re-signs archived operations (its direct COPY hits the unique
    key, and the savepoint falls back to the staged path): every operation once, telemetry once."""
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    signer = Client(region="eu", node_id=f"archive-sink-{run}", dev_trust=True).signer
    clock = HLC("t")

    def op(i: int) -> Operation:
        if i % 4 == 3:
            args = {"timestamp": 1_000.0 + i, "value": float(i)}
            return Operation(
                f"{run}-{i}",
                f"ts:{run}-sink",
                "timeseries",
                "append",
                args,
                f"archive-sink-{run}",
                "eu",
                clock.now(),
            )
        return Operation(f"{run}-{i}", f"ctr:{run}-sink", "pncounter", "increment", {"n": i}, f"archive-sink-{run}", "eu", clock.now())  # fmt: skip

    def message(batch_id: str, ops: list[Operation], offset: int) -> bytes:
        digests, sig = sign_batch(ops, signer)
        batch = OperationBatch(batch_id, ops[0].node_id, signer.key_id, "eu", clock.now(), ops, digests, sig)
        return encode_verified("eu", 0, offset, list(range(len(ops))), [1.0] * len(ops), encode_batch(batch))

    ops = [op(i) for i in range(12)]
    first = message(f"{run}-b1", ops[:8], 1)
    resigned = message(f"{run}-b2", ops[4:12], 2)  # ops 4-7 again, in another batch, and 4 new ones
    sink = ArchiveSink(s.postgres_dsn)
    try:
        assert sink.write([message_rows(first), message_rows(first)]) == 8
        assert sink.write([message_rows(first)]) == 0
        assert sink.write([message_rows(resigned), message_rows(first)]) == 4
    finally:
        sink.close()
    with psycopg.connect(s.postgres_dsn) as conn:
        n, distinct, batches = conn.execute(
            "SELECT count(*), count(DISTINCT op_id), array_agg(DISTINCT batch_id ORDER BY batch_id) "
            "FROM jarvis.ops WHERE object_id = ANY(%s)",
            ([f"ctr:{run}-sink", f"ts:{run}-sink"],),
        ).fetchone()
        points = conn.execute(
            "SELECT count(*) FROM jarvis.telemetry WHERE object_id = %s", (f"ts:{run}-sink",)
        ).fetchone()[0]
        stored = conn.execute(
            "SELECT count(*) FROM jarvis.batches WHERE batch_id = ANY(%s)", ([f"{run}-b1", f"{run}-b2"],)
        ).fetchone()[0]
    assert n == distinct == 12 and batches == [f"{run}-b1", f"{run}-b2"]
    assert points == 3 and stored == 2
    # Replayed from the archive, the re-signed copies verify against their first batch.
    rep = run_replay(f"ctr:{run}-sink", None, Source.archive, "eu")
    assert not rep.failures and rep.ops_folded == 9 and rep.value == sum(i for i in range(12) if i % 4 != 3)
