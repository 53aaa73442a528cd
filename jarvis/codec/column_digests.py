"""Every operation's digest straight from the columns of a decoded OperationBatch.

The verifier must hash every operation's content (`op_content`: the schemaless Avro encoding of its
record) to hold it against the signed digest. An OperationBatch v2 carries operations by column, so
each column is encoded as a whole: a value repeated down a column (object, type, kind, node, region)
once per batch, the args as the JSON text that arrived (so it needs no re-serialising; text that is
not the canonical form is reported, because an audit recomputes digests from the canonical form),
timestamps with their slowly changing high bytes reused (`HlcVarints`). The result equals
`b"".join(op_digest(op) for op in batch.ops)` (a property test holds the two equal); a shape this
does not cover (metadata or encrypted fields, a version 1 batch) returns None and the caller hashes
operation by operation.
"""

from __future__ import annotations

from hashlib import sha256
from itertools import repeat
from typing import Any

import orjson

from jarvis.codec.batch_columns import BatchColumns, batch_columns
from jarvis.codec.records import (
    SHORT_LENGTHS,
    HlcVarints,
    avro_long,
    avro_str,
    decode_batch_record,
    op_content,
)

_NO_METADATA_NO_ENCRYPTION = b"\x00\x00"


def _strings(column: list[str]) -> list[bytes]:
    """Avro strings of a column of mostly distinct values."""
    return [
        (SHORT_LENGTHS[len(b)] if len(b) < 64 else avro_long(len(b))) + b for b in map(str.encode, column)
    ]


def _encoded_once(column: list[str]) -> list[bytes]:
    """Avro strings of a column of few distinct values: each encoded once."""
    encoded = {s: avro_str(s) for s in set(column)}
    return list(map(encoded.__getitem__, column))


def noncanonical_args(args_json: list[str]) -> list[int]:
    """Indexes of args texts that are not their canonical form (sorted keys, no spaces)."""
    canonical = set()
    for text in set(args_json):
        try:
            if orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS) == text.encode():
                canonical.add(text)
        except orjson.JSONDecodeError:
            pass  # the decoder reports it
    if len(canonical) == len(set(args_json)):
        return []
    return [i for i, text in enumerate(args_json) if text not in canonical]


def column_digests(r: dict[str, Any]) -> bytes | None:
    """SHA-256 of every operation's content, end to end, from a decoded OperationBatch v2 record;
    None for a record this does not cover."""
    if "op_ids" not in r or r["metadata"] or r["encrypted_fields"]:
        return None
    contents = map(
        b"".join,
        zip(
            _strings(r["op_ids"]),
            _encoded_once(r["object_ids"]),
            _encoded_once(r["crdt_types"]),
            _encoded_once(r["kinds"]),
            _strings(r["args_json"]),
            _encoded_once(r["node_ids"]),
            _encoded_once(r["regions"]),
            map(HlcVarints(), r["hlcs"]),
            repeat(_NO_METADATA_NO_ENCRYPTION),
        ),
    )
    return b"".join([sha256(c).digest() for c in contents])


def decode_batch_checked(data: bytes) -> tuple[BatchColumns, bytes, list[int]]:
    """Decode an OperationBatch message for the verifier: the batch by column, the digests its
    operations' contents hash to (end to end, as `op_digests` should be), and the indexes of
    operations whose args text is not canonical."""
    r = decode_batch_record(data)
    cols = batch_columns(r)  # checks the columns' lengths, which zip below relies on
    digests = column_digests(r)
    if digests is None:
        return cols, b"".join([sha256(op_content(op)).digest() for op in cols.ops()]), []
    return cols, digests, noncanonical_args(r["args_json"])
