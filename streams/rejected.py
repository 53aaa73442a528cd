"""The one way a worker turns a refused operation (or an undecodable record) into a message for
jarvis.ops.rejected, so the verifier's and the fold's dead letters have the same key and shape."""

from __future__ import annotations

from jarvis.codec import encode_rejected
from jarvis.ops import Operation, RejectedOperation


def rejected_key(op: Operation | None, topic: str, partition: int, offset: int) -> bytes:
    """The object's id, so an object's rejections share a partition with its operations; a record
    that never decoded into an operation is keyed by where it was read."""
    return (op.object_id if op else f"raw:{topic}:{partition}:{offset}").encode()


def rejected_message(
    *,
    original: bytes,
    reasons: list[str],
    topic: str,
    partition: int,
    offset: int,
    index: int | None,
    op: Operation | None,
    region: str,
) -> tuple[bytes, bytes]:
    """Key and Avro value of the jarvis.ops.rejected message for one refused operation."""
    record = RejectedOperation.from_gate(
        original=original,
        reasons=reasons,
        topic=topic,
        partition=partition,
        offset=offset,
        index=index,
        op=op,
        region=region,
    )
    return rejected_key(op, topic, partition, offset), encode_rejected(record)
