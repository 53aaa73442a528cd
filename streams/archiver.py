"""Archiver worker: consumer group on jarvis.ops and every mirrored <region>.jarvis.ops.

A plain confluent-kafka consumer rather than a Faust agent, because its one job is "commit the
offset only after PostgreSQL has the rows": poll a batch, write it in one transaction
(connectors/archive/sink.py), then commit synchronously. kill -9 at any moment redelivers at most
the batch in flight, which the archive's unique content key absorbs.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError
from prometheus_client import Counter, start_http_server
from rich.console import Console

from connectors.archive.migrate import migrate
from connectors.archive.sink import ArchiveRow, ArchiveSink
from connectors.archive.snapshots import SnapshotPolicy, take_snapshot
from connectors.replay_sources import SignatureChecker
from jarvis import topics
from jarvis.codec import CodecError, decode_verified
from jarvis.config import Settings
from jarvis.security.keys import TrustStore
from pipelines.loader import object_factory, pipelines
from streams.app import web_port

ARCHIVED = Counter("jarvis_archiver_rows_total", "Operations newly archived", ["region"])
SNAPSHOTS = Counter("jarvis_archiver_snapshots_total", "Snapshots written to the archive", ["region"])
SKIPPED = Counter(
    "jarvis_archiver_undecodable_total", "Records on jarvis.ops that did not decode", ["region"]
)

console = Console(stderr=True)


def rows_of(value: bytes) -> tuple[list[ArchiveRow], tuple[str, str, str, bytes, bytes]]:
    vb = decode_verified(value)
    rows = [
        ArchiveRow(
            op,
            vb.batch_id,
            idx,
            dot.origin_region,
            dot.partition,
            dot.offset,
            dot.index,
            vb.signature,
            vb.op_digests[idx * 32 : (idx + 1) * 32],
        )  # fmt: skip
        for op, idx, dot in zip(vb.ops, vb.indexes, vb.dots, strict=True)
    ]
    return rows, (vb.batch_id, vb.node_id, vb.key_id, vb.signature, vb.op_digests)


def run(settings: Settings, region: str, instance: int = 0, max_batch: int = 2000) -> None:
    applied = migrate(settings.postgres_dsn)
    if applied:
        console.print(f"archive migrations applied: {', '.join(applied)}")
    start_http_server(web_port(settings, "archiver", region, instance), addr=settings.host)
    sink = ArchiveSink(settings.postgres_dsn)
    policy = SnapshotPolicy(settings.snapshot_every_ops)
    create = object_factory(pipelines())
    checker = SignatureChecker(TrustStore(settings.keys_dir))
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap(region),
            "group.id": f"jarvis-archiver-{region}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    sources = [topics.OPS, *(topics.mirrored(r) for r in settings.region_names if r != region)]
    consumer.subscribe(sources)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            msgs = consumer.consume(num_messages=max_batch, timeout=0.5)
            if not msgs:
                continue
            rows: list[ArchiveRow] = []
            batches = []
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        console.print(f"[yellow]consumer error:[/] {m.error()}")
                    continue
                try:
                    r, b = rows_of(m.value() or b"")
                except (CodecError, ValueError) as e:
                    SKIPPED.labels(region).inc()
                    console.print(
                        f"[yellow]skipping undecodable record {m.topic()}:{m.partition()}@{m.offset()}:[/] {e}"
                    )
                    continue
                rows += r
                batches.append(b)
            for attempt in range(5):
                try:
                    ARCHIVED.labels(region).inc(sink.write(rows, batches))
                    break
                except Exception as e:  # noqa: BLE001 - retry transient database errors, then crash
                    console.print(f"[red]archive write failed (attempt {attempt + 1}):[/] {e}")
                    time.sleep(1 + attempt)
                    sink.close()
                    sink = ArchiveSink(settings.postgres_dsn)
            else:
                raise SystemExit("archive unreachable; offsets not committed, nothing lost")
            consumer.commit(asynchronous=False)
            # Each region's archiver snapshots for the operations that originate in it, so the two
            # archivers share the work instead of both snapshotting every object.
            policy.saw([r.op.object_id for r in rows if r.origin_region == region])
            for oid in policy.due():
                try:
                    if take_snapshot(sink.conn, oid, region, create, checker) is not None:
                        SNAPSHOTS.labels(region).inc()
                except Exception as e:  # noqa: BLE001 - a snapshot is an optimisation; never stop archiving
                    console.print(f"[yellow]snapshot of {oid} failed:[/] {e}")
    finally:
        consumer.close()
        sink.close()
