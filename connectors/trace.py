"""`jarvis trace`: one operation's way through the pipeline, read back from Kafka and the archive.

Reads only: the ingress partition of the operation's object in each region (to find where it was
written), the verifier's outputs of that region, the fold's state changelog in every region, and
the archive's batch row. Each scan starts at a timestamp (offsets_for_times) and reads at most
SCAN_LIMIT records, so a trace stays cheap on a busy partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.kafka_clients import ADMIN, confluent_conf
from jarvis import topics, tracecontext
from jarvis.codec import CodecError, decode_rejected
from jarvis.codec.records import decode_batch_record
from jarvis.codec.single_object import decode
from jarvis.config import Settings
from jarvis.ops import Dot
from jarvis.partitioning import partition_for
from jarvis.roles import fold_changelog
from jarvis.trace import Step, Trace, context_covers

SCAN_LIMIT = 200_000  # records read at most per partition scan
SLACK_MS = 5_000  # hosts' clocks and producers' batching: start each scan a little earlier
IDLE_S = 2.0  # a scan ends when the partition has nothing newer for this long


class Tracer:
    def __init__(self, settings: Settings, principal: str = ADMIN) -> None:
        self.settings = settings
        self.principal = principal  # the CLI reads as the operator; the console as its own role

    def _consumer(self, region: str) -> Consumer:
        return Consumer({
            **confluent_conf(self.settings, self.principal, region),
            "group.id": f"jarvis-trace-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        })  # fmt: skip

    def _scan(self, region: str, topic: str, partition: int, since_ms: int) -> Iterator[Any]:
        """The records of one partition from `since_ms` to its current end."""
        c = self._consumer(region)
        try:
            tp = TopicPartition(topic, partition, max(0, since_ms - SLACK_MS))
            start = c.offsets_for_times([tp], timeout=10)[0].offset
            _, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if start < 0 or start >= high:
                return
            c.assign([TopicPartition(topic, partition, start)])
            read = 0
            while read < SCAN_LIMIT:
                msgs = c.consume(500, IDLE_S)
                if not msgs:
                    return
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            return
                        continue
                    read += 1
                    yield m
                    if m.offset() + 1 >= high:
                        return
        finally:
            c.close()

    def _first(self, region: str, topic: str, partitions: list[int], since_ms: int,
               match: Callable[[Any], Any]) -> tuple[Any, Any] | None:  # fmt: skip
        for p in partitions:
            for m in self._scan(region, topic, p, since_ms):
                hit = match(m)
                if hit is not None:
                    return m, hit
        return None

    def trace(self, op_id: str, object_id: str, since_ms: int) -> Trace | None:
        """The trace of `op_id` (an operation of `object_id` written after `since_ms`), or None if no
        region's ingress holds it."""
        s = self.settings
        p = partition_for(object_id, s.partitions)
        for region in s.region_names:
            found = self._first(region, topics.INGRESS, [p], since_ms, _holding(op_id))
            if found is not None:
                break
        else:
            return None
        m, (rec, index) = found
        t = Trace(op_id, object_id, region)
        parent = tracecontext.from_headers(m.headers())
        t.trace_id = parent.trace_id if parent is not None else None
        written = m.timestamp()[1]
        t.add(Step("written", region, written, f"ingress {p}/{m.offset()}, node {rec['node_id']}"), "written")
        key = (p, m.offset())
        decided = self._decision(region, key, index, written)
        if decided is None:
            t.missing += ["verified", *(f"folded in {r}" for r in s.region_names), "archived"]
            return t
        step, reasons = decided
        t.add(step, "verified")
        if reasons:
            t.reasons = reasons
            return t
        dot = Dot(region, p, m.offset(), index)
        for r in s.region_names:
            t.add(self.folded(r, object_id, dot, step.at_ms), f"folded in {r}")
        t.add(self._archived(rec["batch_id"]), "archived")
        return t

    def _decision(self, region: str, key: tuple[int, int], index: int, since_ms: int) -> tuple[Step, list[str]] | None:
        s = self.settings
        ok = self._first(region, topics.OPS, [key[0]], since_ms, _verified(region, key, index))
        if ok is not None:
            m, _ = ok
            return Step("verified", region, m.timestamp()[1], f"jarvis.ops {key[0]}/{m.offset()}"), []
        rejected = self._first(region, topics.REJECTED, list(range(s.partitions)), since_ms, _rejected(region, key, index))
        if rejected is not None:
            m, reasons = rejected
            return Step("rejected", region, m.timestamp()[1], "; ".join(reasons)), reasons
        return None

    def folded(self, region: str, object_id: str, dot: Dot, since_ms: int) -> Step | None:
        """The first record of `region`'s fold state changelog after `since_ms` whose causal context
        covers `dot` (None: not folded there yet). Also what `GET /v1/ops/{op_id}` asks."""
        p = partition_for(object_id, self.settings.partitions)
        key = object_id.encode()

        def covers(m: Any) -> bool | None:
            if m.key() != key or not m.value():
                return None
            try:
                context = orjson.loads(m.value()).get("c")
            except (orjson.JSONDecodeError, AttributeError):
                return None
            return True if context_covers(context, dot) else None

        hit = self._first(region, fold_changelog(region), [p], since_ms, covers)
        if hit is None:
            return None
        return Step("folded", region, hit[0].timestamp()[1], f"state changelog {p}/{hit[0].offset()}")

    def _archived(self, batch_id: str) -> Step | None:
        import psycopg  # only `jarvis trace` needs the archive's driver

        try:
            with psycopg.connect(self.settings.postgres_dsn, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT (extract(epoch FROM archived_at) * 1000)::bigint FROM jarvis.batches WHERE batch_id = %s",
                    (batch_id,),
                ).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else Step("archived", "archive", int(row[0]), f"batch {batch_id}")


def _holding(op_id: str) -> Callable[[Any], tuple[dict[str, Any], int] | None]:
    def match(m: Any) -> tuple[dict[str, Any], int] | None:
        try:
            rec = decode_batch_record(m.value() or b"")
        except CodecError:
            return None
        ids = rec.get("op_ids") or []
        return (rec, ids.index(op_id)) if op_id in ids else None

    return match


def _verified(region: str, key: tuple[int, int], index: int) -> Callable[[Any], bool | None]:
    def match(m: Any) -> bool | None:
        try:
            name, r = decode(m.value() or b"")
        except CodecError:
            return None
        if not name.endswith("VerifiedBatch") or r.get("origin_region") != region:
            return None
        if (r.get("partition"), r.get("offset")) != key:
            return None
        return True if index in (r.get("indexes") or []) else None

    return match


def _rejected(region: str, key: tuple[int, int], index: int) -> Callable[[Any], list[str] | None]:
    def match(m: Any) -> list[str] | None:
        try:
            rej = decode_rejected(m.value() or b"")
        except CodecError:
            return None
        if rej.topic != topics.INGRESS or rej.region != region or (rej.partition, rej.offset) != key:
            return None
        return list(rej.reasons) if rej.index in (None, index) else None

    return match
