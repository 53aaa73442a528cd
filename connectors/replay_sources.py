"""Where a replay finds an object's operations: a region's Kafka topics, or the archive.

Kafka: the object's partition of `jarvis.ops` and of every mirrored `<region>.jarvis.ops`, read from
the start of retention. With a time T the read stops at `offsets_for_times(T + replay window)`: the
verifier refuses operations older than the window, so no record written later can hold an
operation stamped at or before T.

Archive: the newest snapshot whose operations are all at or before T, then the archived operations
of the object at or before T that the snapshot's causal context does not already cover, with
their signing batches so each signature can be re-checked.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors import api_client
from connectors.kafka_clients import ADMIN, confluent_conf
from jarvis import topics
from jarvis.codec import CodecError, decode_verified
from jarvis.config import Settings
from jarvis.materialize import CRDT_CLASSES, ObjectState
from jarvis.ops import Dot, Operation
from jarvis.partitioning import partition_for
from jarvis.replay import ReplayReport, SourcedOp, replay
from jarvis.security.signing import SignatureError, check_digest, verify_batch
from jarvis.security.trust import TrustView
from pipelines.loader import Pipelines, pipelines

DEFAULT_WINDOW_S = 86400.0


class SignatureChecker:
    """Re-verifies replayed operations against the trust *history*: each operation is judged by
    the grants and revocations in effect at its own time (its HLC), in the region that verified it,
    so what was signed before a revocation or a rotation still verifies. One Ed25519 check per batch.

    `trust` is a view, or a function returning the current one (a followed view keeps growing)."""

    def __init__(self, trust: TrustView | Callable[[], TrustView]) -> None:
        self._view = trust if callable(trust) else (lambda: trust)
        self._batches: dict[str, str | None] = {}

    def __call__(self, so: SourcedOp) -> str | None:
        view = self._view()
        op = so.op
        why = view.op(so.dot.origin_region, op.node_id, so.key_id, op.object_id, op.hlc >> 16)
        if why is not None:
            return why
        key = view.public_key(so.key_id)
        assert key is not None  # trusted implies granted, and a grant carries the public key
        verdict = self._batches.get(so.batch_id, "unchecked")
        if verdict == "unchecked":
            if len(self._batches) > 100_000:  # a long-lived archiver: keep memory bounded
                self._batches.clear()
            try:
                verify_batch(so.op_digests, so.signature, key)
                verdict = None
            except SignatureError as e:
                verdict = str(e)
            self._batches[so.batch_id] = verdict
        if verdict is not None:
            return verdict
        try:
            # The batch signature holds (checked once above); now this op's own digest.
            check_digest(so.op, so.index, so.op_digests)
        except SignatureError as e:
            return str(e)
        return None


def max_window_s(pipes: Pipelines) -> float:
    return max([DEFAULT_WINDOW_S, *(r.replay_window_s for r in pipes.rules.values())])


def kafka_ops(
    settings: Settings,
    region: str,
    object_id: str,
    at_hlc: int | None,
    *,
    on_records: Callable[[int, int], None] | None = None,
    principal: str = ADMIN,
) -> Iterator[SourcedOp]:
    """Every verified operation of `object_id` in `region`'s local and mirrored topics."""
    partition = partition_for(object_id, settings.partitions)
    consumer = Consumer(
        {
            **confluent_conf(settings, principal, region),
            "group.id": f"jarvis-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        present = consumer.list_topics(timeout=10).topics
        sources = [topics.OPS, *(topics.mirrored(r) for r in settings.region_names if r != region)]
        ends: dict[str, int] = {}
        starts: list[TopicPartition] = []
        for topic in sources:
            if topic not in present:
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            end = high
            if at_hlc is not None:
                t_ms = (at_hlc >> 16) + int(max_window_s(pipelines()) * 1000)
                found = consumer.offsets_for_times([TopicPartition(topic, partition, t_ms)], timeout=10)[0]
                if found.offset >= 0:
                    end = min(high, found.offset)
            if end > low:
                ends[topic] = end
                starts.append(TopicPartition(topic, partition, low))
        total = sum(ends.values()) - sum(tp.offset for tp in starts)
        done = 0
        if not starts:
            return
        consumer.assign(starts)
        open_topics = set(ends)
        while open_topics:
            for m in consumer.consume(num_messages=1000, timeout=1.0):
                topic = m.topic()
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        open_topics.discard(topic)
                    continue
                if topic not in open_topics:
                    continue
                if m.offset() >= ends[topic]:
                    open_topics.discard(topic)
                    continue
                done += 1
                if m.offset() == ends[topic] - 1:
                    open_topics.discard(topic)
                try:
                    vb = decode_verified(m.value() or b"")
                except CodecError:
                    continue  # the fold rejected it too; the audit's rejected view shows it
                for op, idx, dot in zip(vb.ops, vb.indexes, vb.dots, strict=True):
                    if op.object_id == object_id:
                        yield SourcedOp(op, dot, vb.batch_id, vb.key_id, idx, vb.op_digests, vb.signature)
            if on_records:
                on_records(done, total)
    finally:
        consumer.close()


@dataclass(slots=True)
class Snapshot:
    state: ObjectState
    info: dict[str, Any]


def latest_snapshot(conn: psycopg.Connection, object_id: str, at_hlc: int | None) -> Snapshot | None:
    row = conn.execute(
        "SELECT region, taken_at, hlc, crdt_type, value, context, ops FROM jarvis.snapshots "
        "WHERE object_id = %s AND hlc <= %s ORDER BY hlc DESC, ops DESC LIMIT 1",
        (object_id, at_hlc if at_hlc is not None else 2**63 - 1),
    ).fetchone()
    if row is None:
        return None
    region, taken_at, hlc, crdt_type, value, context, ops = row
    state = ObjectState(object_id, crdt_type, CRDT_CLASSES[crdt_type].from_dict(value), context, ops, hlc)
    info = {"region": region, "taken_at": taken_at.isoformat(), "ops": ops}
    return Snapshot(state, info)


def archive_ops(
    conn: psycopg.Connection, object_id: str, at_hlc: int | None, start: ObjectState | None
) -> Iterator[SourcedOp]:
    """Archived operations of `object_id` up to `at_hlc` that `start` does not already hold."""
    ctx = start.context if start else {}
    origins = [k.split("/") for k in ctx]
    params: list[Any] = [object_id, at_hlc if at_hlc is not None else 2**63 - 1]
    not_covered = ""
    if ctx:
        # Rows at or below the snapshot's dot for their origin are already in the snapshot.
        not_covered = (
            " AND NOT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::int[]) "
            "AS c(region, part, off, idx) WHERE c.region = o.origin_region AND c.part = o.dot_partition "
            "AND (o.dot_offset, o.dot_index) <= (c.off, c.idx))"
        )
        params += [
            [o[0] for o in origins],
            [int(o[1]) for o in origins],
            [ctx[k][0] for k in ctx],
            [ctx[k][1] for k in ctx],
        ]
    where = "WHERE o.object_id = %s AND o.hlc <= %s" + not_covered
    # The signing batches once each (their digests are 32 bytes per op of the whole batch, so one
    # copy per row would cost megabytes per thousand rows), then the rows, streamed.
    batches: dict[str, tuple[str, bytes, bytes]] = {
        b: (k, bytes(d), bytes(sig))
        for b, k, d, sig in conn.execute(
            "SELECT batch_id, key_id, op_digests, signature FROM jarvis.batches WHERE batch_id IN "
            f"(SELECT DISTINCT o.batch_id FROM jarvis.ops o {where})",
            params,
        )
    }
    sql = (
        "SELECT o.op_id, o.crdt_type, o.kind, o.payload, o.node_id, o.op_region, o.hlc, o.metadata, "
        "o.encrypted_fields, o.origin_region, o.dot_partition, o.dot_offset, o.dot_index, "
        f"o.batch_id, o.op_index FROM jarvis.ops o {where}"
    )
    with conn.cursor(name=f"replay_{uuid.uuid4().hex}") as cur:
        cur.itersize = 20_000
        cur.execute(sql, params)
        for r in cur:
            op = Operation(r[0], object_id, r[1], r[2], r[3], r[4], r[5], r[6], r[7], list(r[8]))
            key_id, digests, signature = batches.get(r[13]) or ("?", b"", b"")
            yield SourcedOp(op, Dot(r[9], r[10], r[11], r[12]), r[13], key_id, r[14], digests, signature)


def live_view(settings: Settings, region: str, object_id: str) -> dict[str, Any] | None:
    """The object's live view from the region's query API (None when unknown there)."""
    url = f"{settings.region_config(region).query_url}/v1/objects/{urllib.parse.quote(object_id, safe='')}"
    try:
        with api_client.urlopen(url, 10, settings=settings) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def replay_archived(
    conn: psycopg.Connection,
    object_id: str,
    at_hlc: int | None,
    create: Callable[[str, str], ObjectState],
    verify: Callable[[SourcedOp], str | None],
    keep_history: bool = True,
) -> ReplayReport:
    """Nearest snapshot at or before T, then the archived operations it does not cover."""
    snap = latest_snapshot(conn, object_id, at_hlc)
    start = snap.state if snap else None
    return replay(
        object_id,
        archive_ops(conn, object_id, at_hlc, start),
        source="archive",
        at_hlc=at_hlc,
        create=create,
        verify=verify,
        start=start,
        snapshot=snap.info if snap else None,
        keep_history=keep_history,
    )


def replay_from_archive(
    settings: Settings,
    object_id: str,
    at_hlc: int | None,
    create: Callable[[str, str], ObjectState],
    verify: Callable[[SourcedOp], str | None],
) -> ReplayReport:
    with psycopg.connect(settings.postgres_dsn) as conn:
        return replay_archived(conn, object_id, at_hlc, create, verify)
