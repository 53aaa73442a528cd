"""The archiver's COPY text (connectors/archive/rows.py) against the row the archive always stored:
every wire version of jarvis.ops, partial acceptance, characters COPY must escape, and rejection of
exactly what decode_verified rejects."""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import re

import orjson
import pytest
from fastavro import schemaless_writer

from connectors.archive import rows
from connectors.archive.rows import COPY_COLUMNS, message_rows
from jarvis.codec import CodecError, decode_verified, encode_batch, encode_verified, store
from jarvis.codec.records import op_record
from jarvis.codec.store import SCHEMA_DIR
from jarvis.ops import Operation, OperationBatch

HLC = (1_764_100_000_123 << 16) | 7
NASTY = 'tab\there back\\slash new\nline cr\r quote" {brace} ,comma é✓ \\N'


def op(i: int, **kw: object) -> Operation:
    fields: dict[str, object] = dict(
        op_id=f"op-{i}", object_id=f"ctr:obj-{i % 3}", crdt_type="pncounter", kind="increment",
        args={"n": i + 1}, node_id="node-1", region="eu", hlc=HLC + (i << 16), metadata={}, encrypted_fields=[],
    )  # fmt: skip
    fields.update(kw)
    return Operation(**fields)  # type: ignore[arg-type]


def mixed_ops() -> list[Operation]:
    return [
        op(0),
        op(1, object_id="ts:line\t1\\x", crdt_type="timeseries", kind="append",
           args={"timestamp": 1_764_000_000.5, "value": 93.1, "metadata": {"sensor": NASTY}}),
        op(2, op_id=NASTY, node_id=f"node {NASTY}", metadata={NASTY: NASTY, "plain": "x"}),
        op(3, object_id="ors:set", crdt_type="orset", kind="add", args={"element": NASTY, "tag": "t"},
           encrypted_fields=["element", 'we"ird\\name', "tab\tname"]),
        op(4, crdt_type="lww", object_id="reg:r", kind="write", args={"value": 1.5, "nested": {"b": [1, 2.0, None]}}),
        op(5, hlc=(1_764_100_000_999 << 16) | 65535, args={"n": 10**18}),
    ]  # fmt: skip


def digests(n: int) -> bytes:
    return b"".join(i.to_bytes(2, "big") * 16 for i in range(n))


def wire_v2(ops: list[Operation], indexes: list[int]) -> bytes:
    batch = OperationBatch("batch-1", "node-1", "key-1", "eu", HLC, ops, digests(len(ops)), b"\x07" * 64)
    return encode_verified("eu", 3, 1234, indexes, [1.0] * len(indexes), encode_batch(batch))


def _history(name: str) -> object:
    path = SCHEMA_DIR / "history" / f"{name}.v1.avsc"
    return next(s for s in store().by_fingerprint.values() if s.path == path)


def _single_object(schema: object, record: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + schema.fingerprint)  # type: ignore[attr-defined]
    schemaless_writer(buf, schema.parsed, record)  # type: ignore[attr-defined]
    return buf.getvalue()


def wire_v2_record_batch(ops: list[Operation], indexes: list[int]) -> bytes:
    """VerifiedBatch v2 around an OperationBatch of the first version (an array of records)."""
    inner = _single_object(_history("OperationBatch"), {
        "batch_id": "batch-1", "node_id": "node-1", "key_id": "key-1", "region": "eu", "created_hlc": HLC,
        "ops": [op_record(o) for o in ops], "op_digests": digests(len(ops)), "signature": b"\x07" * 64,
    })  # fmt: skip
    return encode_verified("eu", 3, 1234, indexes, [1.0] * len(indexes), inner)


def wire_v1(ops: list[Operation], indexes: list[int]) -> bytes:
    """VerifiedBatch v1: the accepted operations as records, each with its dot."""
    return _single_object(_history("VerifiedBatch"), {
        "batch_id": "batch-1", "node_id": "node-1", "key_id": "key-1", "origin_region": "eu",
        "op_digests": digests(len(ops)), "signature": b"\x07" * 64, "indexes": indexes,
        "dots": [{"origin_region": "eu", "partition": 3, "offset": 1234, "index": i} for i in indexes],
        "confidences": [1.0] * len(indexes), "ops": [op_record(ops[i]) for i in indexes],
    })  # fmt: skip


WIRES = {"v2": wire_v2, "v2-record-batch": wire_v2_record_batch, "v1": wire_v1}


def reference(value: bytes) -> list[list[str]]:
    """The row the archive stored before, field by field as text: decode_verified + the old formatting."""
    vb = decode_verified(value)
    out = []
    for o, idx, dot in zip(vb.ops, vb.indexes, vb.dots, strict=True):
        t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=o.hlc >> 16)
        row = {
            "ts": f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}+00", "hlc": str(o.hlc), "op_id": o.op_id,
            "object_id": o.object_id, "crdt_type": o.crdt_type, "kind": o.kind, "node_id": o.node_id,
            "op_region": o.region, "payload": orjson.dumps(o.args).decode(),
            "metadata": orjson.dumps(o.metadata).decode(), "encrypted_fields": _old_text_array(o.encrypted_fields),
            "op_index": str(idx), "dot_index": str(dot.index),
            "content_sha256": "\\x" + vb.op_digests[idx * 32 : idx * 32 + 32].hex(),
            "origin_region": dot.origin_region, "signature": "\\x" + vb.signature.hex(), "batch_id": vb.batch_id,
            "dot_partition": str(dot.partition), "dot_offset": str(dot.offset),
        }  # fmt: skip
        out.append([row[c] for c in COPY_COLUMNS])
    return out


def _old_text_array(items: list[str]) -> str:
    if not items:
        return "{}"
    return "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def parse_copy(text: str) -> list[list[str]]:
    """What COPY ... FROM STDIN (text format) reads from `text`."""
    assert text == "" or text.endswith("\n")
    return [
        [re.sub(r"\\(.)", lambda m: _UNESCAPE[m.group(1)], f) for f in line.split("\t")]
        for line in text.split("\n")[:-1]
    ]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("accepted", ["all", "some"])
def test_copy_text_is_the_row_the_archive_always_stored(wire: str, accepted: str) -> None:
    ops = mixed_ops()
    indexes = list(range(len(ops))) if accepted == "all" else [1, 2, 5]
    value = WIRES[wire](ops, indexes)
    m = message_rows(value)
    expected = reference(value)
    assert parse_copy(m.text) == expected
    assert all(len(line) == len(COPY_COLUMNS) for line in expected)
    assert m.count == len(indexes) and m.batch == (
        "batch-1",
        "node-1",
        "key-1",
        b"\x07" * 64,
        digests(len(ops)),
    )
    assert m.object_ids == [ops[i].object_id for i in indexes] and m.origin_region == "eu"
    assert (m.min_hlc, m.max_hlc) == (min(ops[i].hlc for i in indexes), max(ops[i].hlc for i in indexes))
    # The time-series append, as its own lines (the telemetry table's source), and its point's month.
    assert parse_copy(m.appends) == [r for r in expected if r[COPY_COLUMNS.index("kind")] == "append"]
    assert m.point_months == {dt.datetime(2025, 11, 1, tzinfo=dt.UTC)}


def test_plain_messages_need_no_escaping_pass_and_the_generic_path_agrees() -> None:
    ops = [op(i) for i in range(50)]
    value = wire_v2(ops, list(range(50)))
    m = message_rows(value)
    assert m.text.count("\\") == 4 * m.count  # only the two bytea columns' `\\x`: nothing escaped
    assert parse_copy(m.text) == reference(value)
    # A message of a shape the fast path does not know goes through decode_verified: same text.
    batch, groups = rows._generic(value)
    assert rows._build(batch, "eu", groups).text == m.text
    nasty = wire_v2(mixed_ops(), list(range(6)))
    batch, groups = rows._generic(nasty)
    assert rows._build(batch, "eu", groups).text == message_rows(nasty).text


def test_non_canonical_args_are_stored_as_parsed() -> None:
    """The payload is the args as parsed (what the archive always stored), not args_json verbatim."""
    inner = _single_object(_history("OperationBatch"), {
        "batch_id": "b", "node_id": "n", "key_id": "k", "region": "eu", "created_hlc": HLC,
        "ops": [{**op_record(op(0)), "args_json": '{ "n" : 1.0e2, "a": 12345678901234567890123 }'}],
        "op_digests": digests(1), "signature": b"s",
    })  # fmt: skip
    value = encode_verified("eu", 0, 0, [0], [1.0], inner)
    assert parse_copy(message_rows(value).text) == reference(value)


def test_ts_is_the_hlc_millisecond_in_utc() -> None:
    for ms in (0, 999, 1_000, 1_764_100_000_000, 1_764_100_000_999, 253_402_300_799_999, -1, -1_000):
        t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
        text = rows._ts_text((ms << 16) | 123)
        assert text == f"{t.year:04d}-{t:%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}+00", ms
        assert rows._ts_by_ms[ms] == text
    with pytest.raises(CodecError, match="not a representable time"):
        rows._ts_text(-(1 << 62))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"args": None, "args_json": "not json"}, "not JSON"),
        ({"args": None, "args_json": "[1, 2]"}, "JSON object"),
        ({"args": None, "args_json": '{"a": 1}, {"b": 2}'}, "not JSON"),
        ({"kind": "explode"}, "invalid operation"),
        ({"object_id": "NoPrefix"}, "invalid operation"),
    ],
)
@pytest.mark.parametrize("wire", ["v2-record-batch", "v1"])
def test_what_decode_verified_rejects_is_rejected(change: dict[str, str], problem: str, wire: str) -> None:
    ops = [op(0), op(1)]
    record = {**op_record(ops[0]), **{k: v for k, v in change.items() if k != "args"}}
    if wire == "v1":
        value = _single_object(_history("VerifiedBatch"), {
            "batch_id": "b", "node_id": "n", "key_id": "k", "origin_region": "eu", "op_digests": digests(2),
            "signature": b"s", "indexes": [0, 1],
            "dots": [{"origin_region": "eu", "partition": 0, "offset": 0, "index": i} for i in (0, 1)],
            "confidences": [], "ops": [op_record(ops[1]), record],
        })  # fmt: skip
    else:
        inner = _single_object(_history("OperationBatch"), {
            "batch_id": "b", "node_id": "n", "key_id": "k", "region": "eu", "created_hlc": HLC,
            "ops": [op_record(ops[1]), record], "op_digests": digests(2), "signature": b"s",
        })  # fmt: skip
        value = encode_verified("eu", 0, 0, [0, 1], [], inner)
    with pytest.raises(CodecError):
        decode_verified(value)
    with pytest.raises(CodecError, match=problem):
        message_rows(value)


def test_malformed_batches_are_rejected() -> None:
    ops = [op(0), op(1)]
    batch = OperationBatch("b", "n", "k", "eu", HLC, ops, digests(1), b"s")  # one digest for two ops
    with pytest.raises(CodecError, match="op_digests"):
        message_rows(encode_verified("eu", 0, 0, [0, 1], [], encode_batch(batch)))
    with pytest.raises(CodecError, match="outside the batch"):
        message_rows(wire_v2(ops, [0, 2]))
    with pytest.raises(CodecError):
        message_rows(encode_batch(OperationBatch("b", "n", "k", "eu", HLC, ops, digests(2), b"s")))


def test_a_large_random_batch_matches_the_reference() -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    alphabet = "ab\t\n\r\\\"'{},é✓ "
    ops = [
        op(
            i,
            object_id="ctr:" + "".join(rng.choice(alphabet.replace("\n", "")) for _ in range(6)),
            op_id="".join(rng.choice(alphabet) for _ in range(8)),
            metadata={
                "".join(rng.choice(alphabet) for _ in range(3)): "".join(
                    rng.choice(alphabet) for _ in range(3)
                )
            }
            if rng.random() < 0.3
            else {},
            encrypted_fields=["".join(rng.choice(alphabet) for _ in range(4))] if rng.random() < 0.2 else [],
            args={"n": rng.randint(0, 10**6), "s": "".join(rng.choice(alphabet) for _ in range(5))},
        )  # fmt: skip
        for i in range(300)
    ]
    indexes = sorted(rng.sample(range(300), 200))
    for wire in WIRES.values():
        value = wire(ops, indexes)
        assert parse_copy(message_rows(value).text) == reference(value), seed
