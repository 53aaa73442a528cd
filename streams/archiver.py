"""Archiver worker: consumer group on jarvis.ops and every mirrored <region>.jarvis.ops.

A plain confluent-kafka consumer rather than a Faust agent, because its one job is "commit the
offset only after PostgreSQL has the rows": poll, write the rows in a transaction
(connectors/archive/sink.py), then commit exactly the offsets of the messages that transaction
holds. kill -9 at any moment redelivers at most the messages not yet committed, which the
archive's unique content key absorbs.

Decoding is Python work and the write is mostly PostgreSQL's, so the two overlap: a poll is cut
into chunks of about CHUNK_ROWS operations, and while one thread waits for PostgreSQL to take a
chunk, the main thread decodes the next. At most one chunk is in PostgreSQL's hands at a time, and
offsets are committed in order, each after its chunk's commit.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter
from rich.console import Console

from connectors.archive import access_audit
from connectors.archive.migrate import migrate
from connectors.archive.rows import MessageRows, message_rows
from connectors.archive.sink import ArchiveSink
from connectors.archive.snapshots import SnapshotPolicy
from connectors.http_tls import start_metrics_server
from connectors.kafka_clients import confluent_conf
from connectors.replayer import Replayer
from jarvis import topics
from jarvis.codec import CodecError, UnknownSchema
from jarvis.config import Settings
from jarvis.roles import web_port

ARCHIVED = Counter("jarvis_archiver_rows_total", "Operations newly archived", ["region"])
SNAPSHOTS = Counter("jarvis_archiver_snapshots_total", "Snapshots written to the archive", ["region"])
SKIPPED = Counter(
    "jarvis_archiver_undecodable_total", "Records on jarvis.ops that did not decode", ["region"]
)

console = Console(stderr=True)

# Large enough that a transaction's commit (an fsync) is noise, small enough that a backlog's poll
# becomes several chunks to overlap, and that a poll of big batches is not one huge transaction.
CHUNK_ROWS = 20_000
WRITE_ATTEMPTS = 5


class _Chunk:
    def __init__(self) -> None:
        self.rows: list[MessageRows] = []
        self.count = 0
        self.offsets: dict[tuple[str, int], int] = {}  # next offset to read, per topic partition

    def add(self, m: Message, rows: MessageRows | None) -> None:
        self.offsets[(m.topic(), m.partition())] = m.offset() + 1
        if rows is not None:
            self.rows.append(rows)
            self.count += rows.count


class Archiver:
    """Polled messages in, archived rows and committed offsets out (the worker's loop and the benchmark's).

    `consumer` None: offsets are not committed (a reader that tracks its own progress).
    `after_write` runs on the calling thread after each chunk is durable, with the sink idle.
    """

    def __init__(
        self,
        connect: Callable[[], ArchiveSink],
        region: str,
        consumer: Consumer | None = None,
        after_write: Callable[[ArchiveSink, list[MessageRows]], None] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.connect, self.region, self.consumer = connect, region, consumer
        self.after_write, self.chunk_rows = after_write, chunk_rows
        self.sink = connect()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-writer")
        self._inflight: tuple[_Chunk, Future[int]] | None = None
        self.archived = 0

    def archive(self, msgs: list[Message]) -> None:
        chunk = _Chunk()
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    console.print(f"[yellow]consumer error:[/] {err}")
                continue
            try:
                rows = message_rows(m.value() or b"")
            except UnknownSchema as e:
                # Written by a newer verifier: this archiver must be upgraded. Skipping would commit
                # past operations the archive then never holds, so stop here, offsets uncommitted.
                raise SystemExit(
                    f"record {m.topic()}:{m.partition()}@{m.offset()} uses a schema this archiver does not "
                    f"know ({e}); upgrade the archiver - nothing after this record was committed"
                ) from None
            except (CodecError, ValueError) as e:
                SKIPPED.labels(self.region).inc()
                console.print(
                    f"[yellow]skipping undecodable record {m.topic()}:{m.partition()}@{m.offset()}:[/] {e}"
                )
                rows = None  # its offset is committed with the chunk: it would never decode
            chunk.add(m, rows)
            if chunk.count >= self.chunk_rows:
                self._hand_over(chunk)
                chunk = _Chunk()
        if chunk.offsets:
            self._hand_over(chunk)

    def flush(self) -> None:
        """Wait for the chunk in flight to be archived and its offsets committed."""
        if self._inflight is None:
            return
        chunk, future = self._inflight
        self._inflight = None
        try:
            inserted = future.result()
        except Exception as e:  # noqa: BLE001 - retry transient database errors, then crash
            inserted = self._retry(chunk, e)
        self.archived += inserted
        ARCHIVED.labels(self.region).inc(inserted)
        if self.consumer is not None:
            try:
                self.consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in chunk.offsets.items()],
                    asynchronous=False,
                )
            except KafkaException as e:
                # The rows are durable: a rebalance that refuses this commit only means redelivery.
                console.print(f"[yellow]offset commit refused (rows are archived):[/] {e}")
        if self.after_write is not None:
            self.after_write(self.sink, chunk.rows)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
            self.sink.close()

    def _hand_over(self, chunk: _Chunk) -> None:
        self.flush()
        self._inflight = (chunk, self._writer.submit(self.sink.write, chunk.rows))

    def _retry(self, chunk: _Chunk, error: Exception) -> int:
        for attempt in range(WRITE_ATTEMPTS):
            console.print(f"[red]archive write failed (attempt {attempt + 1}):[/] {error}")
            time.sleep(1 + attempt)
            self.sink.close()
            try:
                self.sink = self.connect()
                return self.sink.write(chunk.rows)
            except Exception as e:  # noqa: BLE001 - as above
                error = e
        raise SystemExit("archive unreachable; offsets not committed, nothing lost")


def run(settings: Settings, region: str, instance: int = 0, max_batch: int = 2000) -> None:
    applied = migrate(settings.postgres_dsn)
    if applied:
        console.print(f"archive migrations applied: {', '.join(applied)}")
    start_metrics_server(settings, web_port(settings, "archiver", region, instance))
    policy = SnapshotPolicy(settings.snapshot_every_ops)
    replayer = Replayer.from_settings(settings, "archiver")

    def snapshot(sink: ArchiveSink, rows: list[MessageRows]) -> None:
        # Each region's archiver snapshots for the operations that originate in it, so the two
        # archivers share the work instead of both snapshotting every object.
        for m in rows:
            if m.origin_region == region:
                policy.saw(m.object_ids)
        for oid in policy.due():
            try:
                if replayer.snapshot(sink.conn, oid, region) is not None:
                    SNAPSHOTS.labels(region).inc()
            except Exception as e:  # noqa: BLE001 - a snapshot is an optimisation; never stop archiving
                console.print(f"[yellow]snapshot of {oid} failed:[/] {e}")

    consumer = Consumer(
        {
            **confluent_conf(settings, "archiver", region),
            "group.id": f"jarvis-archiver-{region}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    sources = topics.ops_sources(region, settings.region_names)
    consumer.subscribe(sources)
    archiver = Archiver(lambda: ArchiveSink(settings.postgres_dsn), region, consumer, snapshot)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The access audit's copy runs beside, on its own consumer: its few records never wait for the ops.
    audit_stop = threading.Event()
    audit = threading.Thread(
        target=access_audit.run, args=(settings.postgres_dsn, settings.bootstrap(region), region, audit_stop, settings),
        name="audit-archiver", daemon=True,
    )  # fmt: skip
    audit.start()
    try:
        while not stopping:
            msgs = consumer.consume(num_messages=max_batch, timeout=0.5)
            if msgs:
                archiver.archive(msgs)
            else:
                archiver.flush()  # nothing new: make the last chunk's offsets committed now
    finally:
        audit_stop.set()
        try:
            archiver.close()
        finally:
            consumer.close()
            audit.join(timeout=10)
