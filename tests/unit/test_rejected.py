"""The one rejected-message builder the verifier and the fold share."""

from __future__ import annotations

from jarvis.codec import decode_rejected
from jarvis.ops import Operation
from streams.rejected import rejected_key, rejected_message


def test_an_operation_is_keyed_by_its_object_and_a_raw_record_by_where_it_was_read() -> None:
    op = Operation("op-1", "ctr:a", "pncounter", "increment", {"n": 1}, "n1", "eu", 1)
    assert rejected_key(op, "jarvis.ops.ingress", 3, 41) == b"ctr:a"
    assert rejected_key(None, "jarvis.ops.ingress", 3, 41) == b"raw:jarvis.ops.ingress:3:41"
    assert rejected_key(None, "us.jarvis.ops", 3, 41) == b"raw:us.jarvis.ops:3:41"


def test_the_message_carries_the_original_bytes_every_reason_and_the_operation() -> None:
    op = Operation("op-1", "ctr:a", "pncounter", "increment", {"n": 1}, "n1", "eu", 1)
    key, value = rejected_message(
        original=b"\x00raw",
        reasons=["bad signature", "unknown key"],
        topic="jarvis.ops.ingress",
        partition=3,
        offset=41,
        index=2,
        op=op,
        region="eu",
    )
    rec = decode_rejected(value)
    assert key == b"ctr:a"
    assert (rec.original, rec.reasons, rec.topic, rec.partition, rec.offset) == (
        b"\x00raw", ["bad signature", "unknown key"], "jarvis.ops.ingress", 3, 41,
    )  # fmt: skip
    assert (rec.region, rec.index, rec.op_id, rec.object_id) == ("eu", 2, "op-1", "ctr:a")
    key, value = rejected_message(
        original=b"junk", reasons=["undecodable"], topic="jarvis.ops", partition=0, offset=7,
        index=None, op=None, region="us",
    )  # fmt: skip
    rec = decode_rejected(value)
    assert key == b"raw:jarvis.ops:0:7" and (rec.index, rec.op_id, rec.object_id) == (None, None, None)
