"""Read the newest records of a topic (every partition), without joining a consumer group.

The console shows what sits in jarvis.ops.rejected and jarvis.tasks.dead; both are small, retained
topics, so reading the last `limit` records per partition up to the end offsets is enough.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis.codec import CodecError, decode_batch, decode_rejected
from jarvis.config import Settings
from jarvis.ops import RejectedOperation

T = TypeVar("T")


def tail(
    bootstrap: str,
    topic: str,
    decode: Callable[[bytes, int], T],
    limit: int = 2000,
    since_ms: int | None = None,
    timeout: float = 10.0,
    settings: Settings | None = None,
) -> list[T]:
    """The last `limit` records of each partition (or those from `since_ms` on), decoded, oldest first."""
    c = Consumer({**client_conf(bootstrap, "console", settings), "group.id": f"console-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    try:
        md = c.list_topics(topic, timeout=timeout)
        if topic not in md.topics or md.topics[topic].error is not None:
            return []
        starts, ends = [], {}
        by_time: dict[int, int] = {}
        parts = list(md.topics[topic].partitions)
        if since_ms is not None:
            found = c.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=timeout)
            by_time = {tp.partition: tp.offset for tp in found}
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high <= low:
                continue
            start = max(low, high - limit)
            if p in by_time:
                t = by_time[p]
                start = high if t < 0 else max(start, t)  # -1: nothing at or after since_ms
            if start < high:
                starts.append(TopicPartition(topic, p, start))
                ends[p] = high
        if not starts:
            return []
        c.assign(starts)
        out: list[tuple[int, T]] = []
        done: set[int] = set()
        while len(done) < len(ends):
            msg = c.poll(timeout)
            if msg is None:
                raise KafkaException(f"no record from {topic} within {timeout:.0f} s")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            if msg.offset() >= ends[msg.partition()] - 1:
                done.add(msg.partition())
            if msg.offset() < ends[msg.partition()]:
                ts = msg.timestamp()[1]
                out.append((ts, decode(msg.value() or b"", ts)))
        out.sort(key=lambda x: x[0])
        return [v for _, v in out]
    finally:
        c.close()


def rejected_row(value: bytes, ts_ms: int) -> dict[str, Any]:
    """One jarvis.ops.rejected record as the console shows it: reasons, where, and the raw message
    decoded (the batch's node and, for one operation, that operation) when it decodes at all."""
    try:
        rec: RejectedOperation = decode_rejected(value)
    except CodecError as e:
        return {"rejected_at_ms": ts_ms, "rejected_at": _iso(ts_ms), "region": "?", "reasons": [f"(record undecodable: {e})"],
                "object_id": None, "op_id": None, "node_id": None, "kind": None, "topic": "?", "partition": -1,
                "offset": -1, "index": None, "decoded": None, "raw_bytes": len(value)}  # fmt: skip
    decoded: Any = None
    node = kind = None
    object_id, op_id = rec.object_id, rec.op_id
    try:
        b = decode_batch(rec.original)
        node = b.node_id
        ops = b.ops if rec.index is None else b.ops[rec.index : rec.index + 1]
        decoded = {
            "batch_id": b.batch_id, "node_id": b.node_id, "key_id": b.key_id, "region": b.region,
            "ops": [{"op_id": o.op_id, "object_id": o.object_id, "type": o.crdt_type, "kind": o.kind,
                     "args": o.args, "hlc": o.hlc, "node_id": o.node_id} for o in ops],
        }  # fmt: skip
        if ops:
            kind = ops[0].kind
            object_id = object_id or ops[0].object_id
    except (CodecError, IndexError, ValueError) as e:
        decoded = {"undecodable": f"{type(e).__name__}: {e}", "preview": rec.original[:200].decode(errors="replace")}
    return {
        "rejected_at_ms": rec.rejected_at_ms, "rejected_at": _iso(rec.rejected_at_ms), "region": rec.region,
        "reasons": list(rec.reasons), "object_id": object_id, "op_id": op_id, "node_id": node, "kind": kind,
        "topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "index": rec.index,
        "decoded": decoded, "raw_bytes": len(rec.original),
    }  # fmt: skip


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
