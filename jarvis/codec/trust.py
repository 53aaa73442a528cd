"""TrustRecord messages (schemas/TrustRecord.avsc): admin-signed grants and revocations of node keys."""

from __future__ import annotations

from jarvis.codec.single_object import decode, encode
from jarvis.security.trust import TrustRecord


def encode_trust(rec: TrustRecord) -> bytes:
    return encode(
        "TrustRecord",
        {
            "kind": rec.kind, "key_id": rec.key_id, "node_id": rec.node_id, "public_key": rec.public_key,
            "write": list(rec.write), "regions": list(rec.regions), "effective_ms": rec.effective_ms,
            "issued_ms": rec.issued_ms, "note": rec.note, "admin_key_id": rec.admin_key_id,
            "signature": rec.signature,
        },
    )  # fmt: skip


def decode_trust(data: bytes) -> TrustRecord:
    _, r = decode(data, "TrustRecord")
    return TrustRecord(
        r["kind"], r["key_id"], r["node_id"], r["public_key"], tuple(r["write"]), tuple(r["regions"]),
        r["effective_ms"], r["issued_ms"], r["note"], r["admin_key_id"], r["signature"],
    )  # fmt: skip
