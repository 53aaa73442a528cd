"""SeenBatch records (schemas/SeenBatch.avsc): the verifier's durable note of an accepted batch."""

from __future__ import annotations

from dataclasses import dataclass

from jarvis.codec.errors import CodecError
from jarvis.codec.single_object import decode, encode
from jarvis.security.seen_batches import KEY_BYTES, Acceptance


@dataclass(frozen=True, slots=True)
class SeenRecord:
    key: bytes
    batch_id: str
    where: Acceptance
    expires_ms: int


def encode_seen(rec: SeenRecord) -> bytes:
    return encode(
        "SeenBatch",
        {
            "key": rec.key,
            "batch_id": rec.batch_id,
            "region": rec.where.region,
            "partition": rec.where.partition,
            "offset": rec.where.offset,
            "expires_ms": rec.expires_ms,
        },
    )


def decode_seen(data: bytes) -> SeenRecord:
    name, r = decode(data, "SeenBatch")
    if len(r["key"]) != KEY_BYTES:
        raise CodecError(f"SeenBatch key of {len(r['key'])} bytes, expected {KEY_BYTES}")
    return SeenRecord(r["key"], r["batch_id"], Acceptance(r["region"], r["partition"], r["offset"]), r["expires_ms"])
