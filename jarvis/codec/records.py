"""Dataclasses of jarvis.ops <-> Avro records, and the byte-level helpers the pipeline calls."""

from __future__ import annotations

import io
from typing import Any

import orjson
from fastavro import schemaless_writer

from jarvis.codec.errors import CodecError
from jarvis.codec.single_object import decode, encode
from jarvis.codec.store import store
from jarvis.ops import (
    Dot,
    DotRun,
    Operation,
    OperationBatch,
    OperationError,
    RejectedOperation,
    VerifiedBatch,
    validate,
)


def canonical_args(args: dict[str, Any]) -> str:
    return orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()


def canonical_args_utf8(args: dict[str, Any]) -> bytes:
    """canonical_args as UTF-8, without the round trip through str."""
    return orjson.dumps(args, option=orjson.OPT_SORT_KEYS)


def op_record(op: Operation) -> dict[str, Any]:
    return {
        "op_id": op.op_id,
        "object_id": op.object_id,
        "crdt_type": op.crdt_type,
        "kind": op.kind,
        "args_json": canonical_args(op.args),
        "node_id": op.node_id,
        "region": op.region,
        "hlc": op.hlc,
        "metadata": op.metadata,
        "encrypted_fields": op.encrypted_fields,
    }


# orjson reads JSON nested up to 1024 levels but writes only 255: args nested deeper parse, then
# make every canonical_args (digests, rules, the fold's changelog) raise. Such text holds more than
# this many brackets, so only a long text is ever looked at twice.
_WRITABLE_DEPTH = 255


def too_deep(texts: list[str], args: list[Any]) -> str | None:
    """Why one of these parsed args cannot be written back as canonical JSON (None if all can)."""
    for text, parsed in zip(texts, args, strict=True):
        if len(text) > 2 * _WRITABLE_DEPTH and text.count("[") + text.count("{") > _WRITABLE_DEPTH:
            try:
                orjson.dumps(parsed)
            except orjson.JSONEncodeError as e:
                return f"an operation's args nest too deeply to be written as canonical JSON ({e})"
    return None


def op_from_record(r: dict[str, Any]) -> Operation:
    try:
        args = orjson.loads(r["args_json"])
    except orjson.JSONDecodeError as e:
        raise CodecError(f"operation {r.get('op_id')!r}: args_json is not JSON: {e}") from None
    if not isinstance(args, dict):
        raise CodecError(f"operation {r.get('op_id')!r}: args must be a JSON object")
    deep = too_deep([r["args_json"]], [args])
    if deep:
        raise CodecError(f"operation {r.get('op_id')!r}: {deep}")
    # fastavro hands out a fresh map and list per record: they can be kept without copying.
    md = r.get("metadata")
    ef = r.get("encrypted_fields")
    try:
        return Operation(
            r["op_id"], r["object_id"], r["crdt_type"], r["kind"], args, r["node_id"], r["region"], r["hlc"],
            {} if md is None else md, [] if ef is None else ef,
        )  # fmt: skip
    except OperationError as e:
        raise CodecError(f"invalid operation {r.get('op_id')!r}: {e}") from None


def op_content(op: Operation) -> bytes:
    """The bytes an operation's digest covers: the schemaless Avro encoding of its record.

    Written out by hand for this one fixed schema (schemas/Operation.avsc: seven strings, a long, a
    map of strings, an array of strings) because it runs for every operation in the SDK, the
    verifier and every audit; a property test holds it byte-equal to fastavro's schemaless_writer.
    """
    s = avro_str
    c = _avro_str_cached
    parts = [
        s(op.op_id), c(op.object_id), c(op.crdt_type), c(op.kind), avro_utf8(canonical_args_utf8(op.args)),
        c(op.node_id), c(op.region), avro_long(op.hlc),
    ]  # fmt: skip
    md = op.metadata
    if md:
        parts.append(avro_long(len(md)))
        for k, v in md.items():
            parts.append(s(k))
            parts.append(s(v))
    parts.append(b"\x00")
    ef = op.encrypted_fields
    if ef:
        parts.append(avro_long(len(ef)))
        parts.extend(s(x) for x in ef)
    parts.append(b"\x00")
    return b"".join(parts)


def op_content_reference(op: Operation) -> bytes:
    """op_content through fastavro: the definition the hand-written encoder is tested against."""
    buf = io.BytesIO()
    schemaless_writer(buf, store().schema("Operation").parsed, op_record(op))
    return buf.getvalue()


def avro_long(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)  # zig-zag
    if z < 0x80:
        return bytes((z,))
    if 1 << 56 <= z < 1 << 63:
        # Nine bytes, unrolled: every HLC timestamp is this long, and one is encoded per operation.
        return bytes((
            (z & 127) | 128, (z >> 7 & 127) | 128, (z >> 14 & 127) | 128, (z >> 21 & 127) | 128,
            (z >> 28 & 127) | 128, (z >> 35 & 127) | 128, (z >> 42 & 127) | 128, (z >> 49 & 127) | 128, z >> 56,
        ))  # fmt: skip
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


class HlcVarints:
    """avro_long for a stream of HLC timestamps. A clock's timestamps rise slowly: in their nine-byte
    varints only the first three bytes (the logical counter and the lowest milliseconds) change
    within ~16 ms, so the other six are kept from the timestamp before. Bytes before the last always
    carry the continuation bit."""

    __slots__ = ("_high", "_high_bytes")

    def __init__(self) -> None:
        self._high = -1
        self._high_bytes = b""

    def __call__(self, hlc: int) -> bytes:
        z = hlc << 1
        if z >> 21 == self._high and hlc >= 0:
            return bytes(((z & 127) | 128, (z >> 7 & 127) | 128, (z >> 14 & 127) | 128)) + self._high_bytes
        ts = avro_long(hlc)
        if len(ts) == 9 and hlc >= 0:
            self._high, self._high_bytes = z >> 21, ts[3:]
        return ts


SHORT_LENGTHS = [bytes((n << 1,)) for n in range(64)]  # zig-zag varints of 0..63: one byte each


def avro_utf8(b: bytes) -> bytes:
    """An Avro string from its UTF-8 bytes."""
    n = len(b)
    return (SHORT_LENGTHS[n] if n < 64 else avro_long(n)) + b


_AVRO_STR_CACHE: dict[str, bytes] = {}
_AVRO_STR_CACHE_MAX = 50_000


def _avro_str_cached(s: str) -> bytes:
    """avro_str for fields that repeat from one operation to the next (type, kind, node, region,
    object): encoded once. The verifier re-encodes every operation to check its digest."""
    b = _AVRO_STR_CACHE.get(s)
    if b is None:
        if len(_AVRO_STR_CACHE) >= _AVRO_STR_CACHE_MAX:
            _AVRO_STR_CACHE.clear()
        b = _AVRO_STR_CACHE[s] = avro_str(s)
    return b


def avro_str(s: str) -> bytes:
    b = s.encode()
    n = len(b)
    return (SHORT_LENGTHS[n] if n < 64 else avro_long(n)) + b


def encode_op(op: Operation) -> bytes:
    return encode("Operation", op_record(op))


def decode_op(data: bytes) -> Operation:
    return op_from_record(decode(data, "Operation")[1])


# The columns an OperationBatch v3 gives by reference, in the order of each operation's six refs.
REF_COLUMNS = ("object_ids", "crdt_types", "kinds", "args_json", "node_ids", "regions")


def batch_record(batch: OperationBatch) -> dict[str, Any]:
    """The OperationBatch record: operations by column, the repetitive ones by reference
    (schemas/OperationBatch.avsc)."""
    ops = batch.ops
    index: dict[str, int] = {}
    refs = [
        index.setdefault(v, len(index))
        for o in ops
        for v in (o.object_id, o.crdt_type, o.kind, canonical_args(o.args), o.node_id, o.region)
    ]
    return {
        "batch_id": batch.batch_id,
        "node_id": batch.node_id,
        "key_id": batch.key_id,
        "region": batch.region,
        "created_hlc": batch.created_hlc,
        "op_ids": [o.op_id for o in ops],
        **dict.fromkeys(REF_COLUMNS, []),
        "hlcs": [o.hlc for o in ops],
        # Empty columns stand for "empty for every operation", the usual case.
        "metadata": [o.metadata for o in ops] if any(o.metadata for o in ops) else [],
        "encrypted_fields": [o.encrypted_fields for o in ops] if any(o.encrypted_fields for o in ops) else [],
        "op_digests": batch.op_digests,
        "signature": batch.signature,
        "strings": list(index),
        "refs": refs,
    }


def decode_batch_record(data: bytes) -> dict[str, Any]:
    """Decode an OperationBatch message into its record, every column written out (as in v2)."""
    _, r = decode(data, expect="OperationBatch")
    return expand_refs(r)


def expand_refs(r: dict[str, Any]) -> dict[str, Any]:
    """Write out the columns an OperationBatch v3 record gives by reference (in place)."""
    refs = r.get("refs")
    if not refs:
        return r
    n = len(r["op_ids"])
    if len(refs) != 6 * n:
        raise CodecError(f"OperationBatch refs holds {len(refs)} indexes for {n} operations (6 each)")
    if any(r[c] for c in REF_COLUMNS):
        raise CodecError("OperationBatch gives columns both by reference and written out")
    strings = r["strings"]
    if min(refs) < 0 or max(refs) >= len(strings):
        raise CodecError(f"OperationBatch refs point outside its {len(strings)} strings")
    at = strings.__getitem__
    for k, column in enumerate(REF_COLUMNS):
        r[column] = list(map(at, refs[k::6]))
    r["refs"], r["strings"] = [], []  # written out now: a second call changes nothing
    return r


def batch_from_record(r: dict[str, Any]) -> OperationBatch:
    if "ops" in r:  # version 1 (schemas/history): an array of Operation records
        ops = [op_from_record(o) for o in r["ops"]]
        if len(r["op_digests"]) != 32 * len(ops):
            raise CodecError(f"op_digests holds {len(r['op_digests'])} bytes for {len(ops)} operations")
    else:
        ops = _ops_from_columns(r)  # checks the digests' length with the columns
    return OperationBatch(
        r["batch_id"], r["node_id"], r["key_id"], r["region"], r["created_hlc"], ops, r["op_digests"], r["signature"]
    )  # fmt: skip


# The per-operation columns of an OperationBatch v2 record, in Operation field order.
BATCH_COLUMNS = ("op_ids", "object_ids", "crdt_types", "kinds", "args_json", "node_ids", "regions", "hlcs")


def column_args(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Check an OperationBatch v2 record's columns (one item per operation in each, every object id,
    type and kind valid) and return each operation's parsed args."""
    expand_refs(r)
    n = len(r["op_ids"])
    md, ef = r["metadata"], r["encrypted_fields"]
    lengths = {c: len(r[c]) for c in BATCH_COLUMNS}
    if any(v != n for v in lengths.values()) or (md and len(md) != n) or (ef and len(ef) != n):
        raise CodecError(
            f"OperationBatch columns differ in length: {lengths}, metadata {len(md)}, encrypted {len(ef)}"
        )
    if len(r["op_digests"]) != 32 * n:
        raise CodecError(f"op_digests holds {len(r['op_digests'])} bytes for {n} operations")
    try:
        args = list(map(orjson.loads, r["args_json"]))
    except orjson.JSONDecodeError as e:
        raise CodecError(f"an operation's args_json is not JSON: {e}") from None
    if not all(type(x) is dict for x in args):
        raise CodecError("an operation's args must be a JSON object")
    deep = too_deep(r["args_json"], args)
    if deep:
        raise CodecError(deep)
    try:
        for triple in set(zip(r["object_ids"], r["crdt_types"], r["kinds"], strict=True)):
            validate(*triple)
    except OperationError as e:
        raise CodecError(f"invalid operation in the batch: {e}") from None
    return args


def _ops_from_columns(r: dict[str, Any]) -> list[Operation]:
    args = column_args(r)
    n = len(args)
    # Each operation gets its own (empty) metadata and encrypted-field list: they are mutable.
    mds = r["metadata"] or [{} for _ in range(n)]
    efs = r["encrypted_fields"] or [[] for _ in range(n)]
    try:
        return list(
            map(
                Operation,
                r["op_ids"],
                r["object_ids"],
                r["crdt_types"],
                r["kinds"],
                args,
                r["node_ids"],
                r["regions"],
                r["hlcs"],
                mds,
                efs,
            )  # fmt: skip
        )
    except OperationError as e:
        raise CodecError(f"invalid operation in the batch: {e}") from None


def encode_batch(batch: OperationBatch, *, compress: bool = False) -> bytes:
    return encode("OperationBatch", batch_record(batch), compress=compress)


def decode_batch(data: bytes) -> OperationBatch:
    return batch_from_record(decode_batch_record(data))


def encode_verified(
    origin_region: str,
    partition: int,
    offset: int,
    indexes: list[int],
    confidences: list[float],
    original: bytes,
) -> bytes:
    """The verifier's output: which operations of the ingress message `original` it accepted.

    The message travels as received, so accepting a batch costs no encoding per operation."""
    return encode(
        "VerifiedBatch",
        {
            "origin_region": origin_region,
            "partition": partition,
            "offset": offset,
            "indexes": indexes,
            "confidences": confidences,
            "batch": original,
        },
    )


def decode_verified(data: bytes) -> VerifiedBatch:
    name, r = decode(data)
    if not name.endswith("VerifiedBatch"):
        raise CodecError(f"expected a VerifiedBatch, got a {name}")
    if "batch" not in r:
        return _verified_v1(r)
    b = decode_batch(r["batch"])
    n = len(b.ops)
    indexes = accepted_indexes(r, n)
    region, partition, offset = r["origin_region"], r["partition"], r["offset"]
    ops = b.ops if len(indexes) == n else [b.ops[i] for i in indexes]
    return VerifiedBatch(
        b.batch_id, b.node_id, b.key_id, region, b.op_digests, b.signature, indexes,
        [Dot(region, partition, offset, i) for i in indexes], list(r.get("confidences") or []), ops,
    )  # fmt: skip


def decode_verified_runs(data: bytes) -> list[DotRun]:
    """A jarvis.ops message as the fold reads it: rows taken from the batch's columns, without an
    Operation per operation (building them was ~1.2 µs of the fold's ~8 µs per operation). Rejects
    exactly what decode_verified rejects; a shape it does not read by column goes through it."""
    name, r = decode(data)
    if not name.endswith("VerifiedBatch"):
        raise CodecError(f"expected a VerifiedBatch, got a {name}")
    if "batch" in r:
        b = decode_batch_record(r["batch"])
        if "op_ids" in b:
            return [_run_from_columns(r, b)]
    vb = decode_verified(data)
    runs: list[DotRun] = []
    for op, d in zip(vb.ops, vb.dots, strict=True):
        if not runs or (runs[-1].origin_region, runs[-1].partition, runs[-1].offset) != d[:3]:
            runs.append(DotRun(d.origin_region, d.partition, d.offset, []))
        runs[-1].rows.append((d.index, op.object_id, op.crdt_type, op.kind, op.args, op.node_id, op.hlc))
    return runs


def _run_from_columns(r: dict[str, Any], b: dict[str, Any]) -> DotRun:
    args = column_args(b)
    n = len(args)
    indexes = accepted_indexes(r, n)
    cols = (b["object_ids"], b["crdt_types"], b["kinds"], args, b["node_ids"], b["hlcs"])
    if len(indexes) != n:
        cols = tuple([c[i] for i in indexes] for c in cols)
    return DotRun(r["origin_region"], r["partition"], r["offset"], list(zip(indexes, *cols, strict=True)))


def accepted_indexes(r: dict[str, Any], n: int) -> list[int]:
    """A VerifiedBatch v2 record's accepted indexes, each checked to lie in its batch of n."""
    indexes = list(r["indexes"])
    if any(not 0 <= i < n for i in indexes):
        raise CodecError(f"VerifiedBatch: an accepted index is outside the batch of {n} operations")
    return indexes


def _verified_v1(r: dict[str, Any]) -> VerifiedBatch:
    """Version 1 (schemas/history): the accepted operations re-encoded, with their dots."""
    ops = [op_from_record(o) for o in r["ops"]]
    dots = [Dot(d["origin_region"], d["partition"], d["offset"], d["index"]) for d in r["dots"]]
    if len(dots) != len(ops) or len(r["indexes"]) != len(ops):
        raise CodecError("VerifiedBatch: ops, dots and indexes differ in length")
    return VerifiedBatch(
        r["batch_id"], r["node_id"], r["key_id"], r["origin_region"], r["op_digests"], r["signature"],
        list(r["indexes"]), dots, list(r.get("confidences") or []), ops,
    )  # fmt: skip


def encode_rejected(rej: RejectedOperation) -> bytes:
    return encode(
        "RejectedOperation",
        {
            "original": rej.original,
            "reasons": rej.reasons,
            "topic": rej.topic,
            "partition": rej.partition,
            "offset": rej.offset,
            "rejected_at_ms": rej.rejected_at_ms,
            "region": rej.region,
            "index": rej.index,
            "op_id": rej.op_id,
            "object_id": rej.object_id,
        },
    )


def decode_rejected(data: bytes) -> RejectedOperation:
    _, r = decode(data, "RejectedOperation")
    return RejectedOperation(
        r["original"], list(r["reasons"]), r["topic"], r["partition"], r["offset"], r["rejected_at_ms"],
        r["region"], r.get("index"), r.get("op_id"), r.get("object_id"),
    )  # fmt: skip
