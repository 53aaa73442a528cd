"""jarvis.ops messages straight into the text of PostgreSQL's COPY, one line per accepted operation.

The archiver's work is per operation, so this path builds no Operation, Dot or row object: the
columns fastavro hands out (OperationBatch v2 stores operations by column; older versions are turned
into columns first) become one f-string per operation, and a whole message is checked for characters
COPY needs escaped with a few C-level counts instead of a test per field. It reads every version of
jarvis.ops messages and rejects what `jarvis.codec.decode_verified` rejects; a message of a shape it
does not know (a newer schema) goes through `decode_verified` itself, slower but never wrong.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson

from jarvis.codec import CodecError, decode, decode_verified
from jarvis.codec.records import BATCH_COLUMNS, accepted_indexes, canonical_args, decode_batch_record
from jarvis.ops import OperationError, validate

# COPY's column order: per-operation columns first, then the ones a whole message shares, so those
# are formatted once per message and appended to every line as one suffix.
COPY_COLUMNS = (
    "ts", "hlc", "op_id", "object_id", "crdt_type", "kind", "node_id", "op_region", "payload", "metadata",
    "encrypted_fields", "op_index", "dot_index", "content_sha256",
    "origin_region", "signature", "batch_id", "dot_partition", "dot_offset",
)  # fmt: skip
_TABS_PER_LINE = len(COPY_COLUMNS) - 1
# Every line has two bytea columns in hex input form, written `\\x...` (COPY turns `\\` into `\`).
_BACKSLASHES_PER_LINE = 4


# A jarvis.batches row: batch_id, node_id, key_id, signature, op_digests.
Batch = tuple[str, str, str, bytes, bytes]


@dataclass(slots=True)
class MessageRows:
    """One jarvis.ops message, ready for COPY."""

    batch: Batch
    text: str  # COPY text: a line per accepted operation, columns as COPY_COLUMNS
    count: int
    min_hlc: int
    max_hlc: int
    origin_region: str
    object_ids: list[str]  # of the accepted operations, for the snapshot policy
    appends: str = ""  # the lines of time-series appends: the telemetry table's source
    point_months: set[dt.datetime] = field(default_factory=set)  # months of the appends' own timestamps

    @property
    def batch_id(self) -> str:
        return self.batch[0]


# The operations of one ingress batch as columns: op_ids, object_ids, crdt_types, kinds, args_json,
# node_ids, regions, hlcs, metadata and encrypted_fields (these two None when empty for every operation).
Columns = tuple[list[Any], ...]
_RECORD_FIELDS = ("op_id", "object_id", "crdt_type", "kind", "args_json", "node_id", "region", "hlc")


@dataclass(slots=True)
class _Group:
    """Accepted operations that share a dot's origin, partition and offset (v2: the whole message)."""

    origin: str
    partition: int
    offset: int
    cols: Columns
    indexes: list[int]  # in the signed batch: op_index, and which digest
    dot_indexes: list[int]


def message_rows(value: bytes) -> MessageRows:
    """Decode one jarvis.ops message; raises CodecError (or ValueError) where decode_verified would."""
    name, r = decode(value)
    if not name.endswith("VerifiedBatch"):
        raise CodecError(f"expected a VerifiedBatch, got a {name}")
    try:
        batch, groups = _v2(r) if "batch" in r else _v1(r)
        origin = r["origin_region"]
    except KeyError:
        batch, groups = _generic(value)
        origin = groups[0].origin if groups else ""
    return _build(batch, origin, groups)


def _v2(r: dict[str, Any]) -> tuple[Batch, list[_Group]]:
    b = decode_batch_record(r["batch"])
    cols = _columns(b["ops"]) if "ops" in b else _batch_columns(b)
    digests = b["op_digests"]
    n = len(cols[0])
    if len(digests) != 32 * n:
        raise CodecError(f"op_digests holds {len(digests)} bytes for {n} operations")
    indexes = accepted_indexes(r, n)
    if indexes != list(range(n)):
        cols = tuple(None if c is None else [c[i] for i in indexes] for c in cols)
    batch = (b["batch_id"], b["node_id"], b["key_id"], b["signature"], digests)
    return batch, [_Group(r["origin_region"], r["partition"], r["offset"], cols, indexes, indexes)]


def _v1(r: dict[str, Any]) -> tuple[Batch, list[_Group]]:
    """Version 1 carries the accepted operations as records, each with its dot."""
    ops, dots, indexes = r["ops"], r["dots"], r["indexes"]
    if len(dots) != len(ops) or len(indexes) != len(ops):
        raise CodecError("VerifiedBatch: ops, dots and indexes differ in length")
    batch = (r["batch_id"], r["node_id"], r["key_id"], r["signature"], r["op_digests"])
    runs: list[tuple[tuple[str, int, int], list[dict[str, Any]], list[int], list[int]]] = []
    for op, d, i in zip(ops, dots, indexes, strict=True):
        key = (d["origin_region"], d["partition"], d["offset"])
        if not runs or runs[-1][0] != key:
            runs.append((key, [], [], []))
        runs[-1][1].append(op)
        runs[-1][2].append(i)
        runs[-1][3].append(d["index"])
    return batch, [_Group(*key, _columns(o), i, d) for key, o, i, d in runs]


def _generic(value: bytes) -> tuple[Batch, list[_Group]]:
    """Any version decode_verified reads, through its Operation objects."""
    vb = decode_verified(value)
    ops = vb.ops
    cols: Columns = (
        *([getattr(o, f) for o in ops] for f in _RECORD_FIELDS[:4]),
        [canonical_args(o.args) for o in ops],
        *([getattr(o, f) for o in ops] for f in _RECORD_FIELDS[5:]),
        [o.metadata for o in ops],
        [o.encrypted_fields for o in ops],
    )
    groups = [
        _Group(d.origin_region, d.partition, d.offset, tuple([c[k]] for c in cols), [i], [d.index])
        for k, (i, d) in enumerate(zip(vb.indexes, vb.dots, strict=True))
    ]
    return (vb.batch_id, vb.node_id, vb.key_id, vb.signature, vb.op_digests), groups


def _columns(ops: list[dict[str, Any]]) -> Columns:
    """Operation records (OperationBatch v1, VerifiedBatch v1) as columns."""
    md = [o.get("metadata") or {} for o in ops]
    ef = [o.get("encrypted_fields") or [] for o in ops]
    return (*([o[f] for o in ops] for f in _RECORD_FIELDS), md if any(md) else None, ef if any(ef) else None)


def _batch_columns(b: dict[str, Any]) -> Columns:
    cols = [b[c] for c in BATCH_COLUMNS]
    n = len(cols[0])
    md, ef = b["metadata"], b["encrypted_fields"]
    if any(len(c) != n for c in cols) or (md and len(md) != n) or (ef and len(ef) != n):
        raise CodecError("OperationBatch columns differ in length")
    return (*cols, md or None, ef or None)


def _build(batch: Batch, origin: str, groups: list[_Group]) -> MessageRows:
    digests_hex = batch[4].hex()
    sig_hex = batch[3].hex()
    lines: list[str] = []
    appends: list[str] = []
    months: set[dt.datetime] = set()
    prepared = [(g, *_text_columns(g)) for g in groups]
    for g, text_cols, _ in prepared:
        suffix = f"{g.origin}\t\\\\x{sig_hex}\t{batch[0]}\t{g.partition}\t{g.offset}\n"
        lines += _lines(text_cols, g, digests_hex, suffix)
    text = "".join(lines)
    if not _plain_text(text, len(lines)):
        # Some field holds a tab, newline, carriage return or backslash: build it again, escaped.
        lines = []
        for g, text_cols, _ in prepared:
            escaped = tuple(None if c is None else [_escape(x) for x in c] for c in text_cols)
            suffix = f"{_escape(g.origin)}\t\\\\x{sig_hex}\t{_escape(batch[0])}\t{g.partition}\t{g.offset}\n"
            lines += _lines(escaped, g, digests_hex, suffix)
        text = "".join(lines)
    k = 0
    for g, _, args in prepared:
        kinds = g.cols[3]
        if "append" in kinds:
            for j, kind in enumerate(kinds):
                if kind == "append":
                    appends.append(lines[k + j])
                    months.add(_month(_point_time(args[j], g.cols[7][j])))
        k += len(kinds)
    hlcs = [h for g in groups for h in g.cols[7]]
    object_ids = [o for g in groups for o in g.cols[1]]
    return MessageRows(
        batch, text, len(lines), min(hlcs, default=0), max(hlcs, default=0), origin, object_ids,
        "".join(appends), months,
    )  # fmt: skip


def _text_columns(g: _Group) -> tuple[tuple[list[str] | None, ...], list[dict[str, Any]]]:
    """The group's string columns as COPY takes them (before escaping), and each operation's args.

    Checks what op_from_record checks: a known type and kind for a well-formed object id, and args
    that are a JSON object."""
    op_ids, object_ids, crdt_types, kinds, args_json, node_ids, regions, _, mds, efs = g.cols
    for object_id, crdt_type, kind in set(zip(object_ids, crdt_types, kinds, strict=True)):
        try:
            validate(object_id, crdt_type, kind)
        except OperationError as e:
            op_id = next(
                o
                for o, i, t, k in zip(op_ids, object_ids, crdt_types, kinds, strict=True)
                if (i, t, k) == (object_id, crdt_type, kind)
            )
            raise CodecError(f"invalid operation {op_id!r}: {e}") from None
    # One parse for the whole message; the payload is the args as every reader parses them (orjson),
    # which for canonical args_json (what producers send) is args_json itself.
    joined = "[" + ",".join(args_json) + "]"
    try:
        args = orjson.loads(joined)
    except orjson.JSONDecodeError:
        args = None
    if args is None or len(args) != len(args_json) or any(type(a) is not dict for a in args):
        args = [_args(op_id, aj) for op_id, aj in zip(op_ids, args_json, strict=True)]
    dumps = orjson.dumps
    payloads = args_json if dumps(args) == joined.encode() else [dumps(a).decode() for a in args]
    md_texts = None if mds is None else [dumps(md).decode() if md else "{}" for md in mds]
    ef_texts = None if efs is None else [_text_array(ef) if ef else "{}" for ef in efs]
    return (op_ids, object_ids, crdt_types, kinds, node_ids, regions, payloads, md_texts, ef_texts), args


def _args(op_id: str, args_json: str) -> dict[str, Any]:
    try:
        args = orjson.loads(args_json)
    except orjson.JSONDecodeError as e:
        raise CodecError(f"operation {op_id!r}: args_json is not JSON: {e}") from None
    if type(args) is not dict:
        raise CodecError(f"operation {op_id!r}: args must be a JSON object")
    return args


def _lines(cols: tuple[list[str] | None, ...], g: _Group, digests_hex: str, suffix: str) -> list[str]:
    op_ids, object_ids, crdt_types, kinds, node_ids, regions, payloads, md_texts, ef_texts = cols
    empty = repeat("{}")
    cache, miss = _ts_by_ms, _ts_text
    ts = [cache.get(h >> 16) or miss(h) for h in g.cols[7]]
    return [
        f"{t}\t{h}\t{a}\t{o}\t{c}\t{k}\t{n}\t{r}\t{p}\t{m}\t{e}\t{i}\t{d}\t\\\\x{digests_hex[64 * i : 64 * i + 64]}\t{suffix}"
        for t, h, a, o, c, k, n, r, p, m, e, i, d in zip(
            ts,
            g.cols[7],
            op_ids,
            object_ids,
            crdt_types,
            kinds,
            node_ids,
            regions,
            payloads,
            empty if md_texts is None else md_texts,
            empty if ef_texts is None else ef_texts,
            g.indexes,
            g.dot_indexes,
            strict=False,  # the columns' lengths are checked; `empty` is endless
        )  # fmt: skip
    ]


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escape(s: str) -> str:
    return s.translate(_ESCAPES)


def _plain_text(text: str, lines: int) -> bool:
    """Whether no field needed escaping: every tab, newline and backslash is one the format put there."""
    return (
        text.count("\t") == _TABS_PER_LINE * lines
        and text.count("\n") == lines
        and text.count("\\") == _BACKSLASHES_PER_LINE * lines
        and "\r" not in text
    )


def _text_array(items: list[str]) -> str:
    """The input form of a text[] (before COPY's own escaping)."""
    return "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


_ts_by_ms: dict[int, str] = {}


def _ts_text(hlc: int) -> str:
    """The operation's time from its HLC as timestamptz input (UTC, milliseconds), remembered per ms.

    The same value as the to_timestamp((hlc >> 16) / 1000.0) the archive computed in SQL before.
    The operations of a batch share a handful of milliseconds. An HLC outside years 1-9999 (which no
    verifier's replay window lets through) is undecodable.
    """
    ms = hlc >> 16
    try:
        t = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise CodecError(f"hlc {hlc} is not a representable time: {e}") from None
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}.{ms % 1000:03d}+00"
    if len(_ts_by_ms) >= 65_536:
        _ts_by_ms.clear()
    _ts_by_ms[ms] = text
    return text


def hlc_time(hlc: int) -> dt.datetime:
    return dt.datetime.fromtimestamp((hlc >> 16) / 1000, tz=dt.UTC)


def _point_time(args: dict[str, Any], hlc: int) -> dt.datetime:
    """A time-series point's own time (the telemetry table's partition key), else its HLC's."""
    try:
        return dt.datetime.fromtimestamp(float(args["timestamp"]), tz=dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return hlc_time(hlc)


def _month(t: dt.datetime) -> dt.datetime:
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
