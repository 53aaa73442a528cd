"""A jarvis.ops.rejected record as the Rejected page shows it: reasons, place, and the original
message decoded down to the one rejected operation; garbage stays visible as garbage."""

from __future__ import annotations

from connectors.console.topic_tail import rejected_row
from jarvis.codec import encode_batch, encode_rejected
from jarvis.ops import Operation, OperationBatch, RejectedOperation


def op(i: int, n: int) -> Operation:
    return Operation(op_id=f"op{i}", object_id=f"ctr:r{i}", crdt_type="pncounter", kind="increment",
                     args={"n": n}, node_id="node-x", region="eu", hlc=(1_700_000_000_000 << 16) + i)  # fmt: skip


def record(original: bytes, index: int | None, **kw) -> bytes:
    return encode_rejected(RejectedOperation(original=original, reasons=["number 5e12 at args.n is out of range"],
                                             topic="jarvis.ops.ingress", partition=3, offset=41,
                                             rejected_at_ms=1_700_000_000_123, region="eu", index=index, **kw))  # fmt: skip


def test_one_rejected_operation_is_decoded_from_its_batch() -> None:
    batch = encode_batch(OperationBatch("b1", "node-x", "key-1", "eu", 1, [op(0, 1), op(1, 5_000_000_000_000)],
                                        b"\0" * 64, b"\0" * 64))  # fmt: skip
    row = rejected_row(record(batch, 1, op_id="op1", object_id="ctr:r1"), 0)
    assert (row["object_id"], row["op_id"], row["node_id"], row["kind"], row["index"]) == (
        "ctr:r1", "op1", "node-x", "increment", 1)
    assert row["rejected_at"] == "2023-11-14T22:13:20.123+00:00" and row["reasons"][0].endswith("out of range")
    assert [o["args"] for o in row["decoded"]["ops"]] == [{"n": 5_000_000_000_000}]
    assert row["decoded"]["key_id"] == "key-1" and (row["partition"], row["offset"]) == (3, 41)


def test_an_undecodable_original_is_shown_as_a_preview() -> None:
    row = rejected_row(record(b"\x8f\x00<img src=x onerror=alert(1)>", None), 0)
    assert row["object_id"] is None and row["node_id"] is None
    assert "undecodable" in row["decoded"] and "<img src=x" in row["decoded"]["preview"]
    broken = rejected_row(b"not a record", 1_700_000_000_000)
    assert broken["reasons"][0].startswith("(record undecodable") and broken["raw_bytes"] == 12
