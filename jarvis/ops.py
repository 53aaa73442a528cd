"""The operation model: what every producer, verifier, fold and archiver agrees an operation is.

An Operation is one CRDT mutation on one object (`<prefix>:<id>`), with the seed's operation names.
Producers send OperationBatches (signed once per batch, see jarvis/security/signing.py); the
verifier forwards the accepted operations of a batch as a VerifiedBatch, each stamped with its Dot
(region, ingress partition, ingress offset, index in the batch), which is unique per accepted
operation and identical if the same ingress record is processed twice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jarvis.crdt import registry as crdt_registry
from jarvis.errors import JarvisError

# Per type, its operation kinds: the registry's live table, so a type registered later is known here.
KINDS_BY_TYPE: dict[str, tuple[str, ...]] = crdt_registry.KINDS

OBJECT_ID = re.compile(r"^[a-z0-9_-]+:.+$")

# An object id travels in URLs and HTTP request lines: past a few KB, HTTP servers refuse the
# request line (aiohttp: "Got more than 8190 bytes"), so a longer id could be written but never read.
MAX_OBJECT_ID_BYTES = 1024
# No id of at most this many characters can exceed MAX_OBJECT_ID_BYTES in UTF-8 (4 bytes a character
# at most): a cheap length check that needs no encoding in the usual case.
SURELY_SHORT_OBJECT_ID_CHARS = MAX_OBJECT_ID_BYTES // 4


class OperationError(JarvisError, ValueError):
    """An operation that does not fit the model (bad object id, unknown type or kind)."""


def object_id_too_long(object_id: str) -> str | None:
    """Why `object_id` is too long to be stored (None if it is fine)."""
    if len(object_id) <= SURELY_SHORT_OBJECT_ID_CHARS:
        return None
    size = len(object_id.encode("utf-8", "surrogatepass"))
    if size <= MAX_OBJECT_ID_BYTES:
        return None
    return f"object id of {size} bytes exceeds the limit of {MAX_OBJECT_ID_BYTES} bytes (UTF-8)"


_VALID_KINDS = crdt_registry.VALID_PAIRS
_valid_prefixes: set[str] = set()  # prefixes already matched: most ids share a handful of them


def validate(object_id: str, crdt_type: str, kind: str) -> None:
    # Runs for every operation decoded anywhere, so the usual case is two set lookups.
    prefix, sep, rest = object_id.partition(":")
    if rest and prefix in _valid_prefixes and (crdt_type, kind) in _VALID_KINDS and "\n" not in rest:
        return
    _validate_slowly(object_id, crdt_type, kind)


def _validate_slowly(object_id: str, crdt_type: str, kind: str) -> None:
    # fullmatch: with match, "$" also matches before a final newline, so "ctr:1\n" passed.
    if not OBJECT_ID.fullmatch(object_id):
        raise OperationError(f"object id {object_id!r} must look like '<prefix>:<id>' (prefix: a-z 0-9 _ -)")
    kinds = KINDS_BY_TYPE.get(crdt_type)
    if kinds is None:
        raise OperationError(f"unknown CRDT type {crdt_type!r}; known: {', '.join(KINDS_BY_TYPE)}")
    if kind not in kinds:
        raise OperationError(f"a {crdt_type} has no operation {kind!r}; it has {', '.join(kinds)}")
    if len(_valid_prefixes) < 10_000:
        _valid_prefixes.add(object_id.partition(":")[0])


@dataclass(slots=True)
class Operation:
    op_id: str
    object_id: str
    crdt_type: str
    kind: str
    args: dict[str, Any]
    node_id: str
    region: str
    hlc: int
    metadata: dict[str, str] = field(default_factory=dict)
    encrypted_fields: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate(self.object_id, self.crdt_type, self.kind)

    @property
    def wall_ms(self) -> int:
        return self.hlc >> 16


class Dot(NamedTuple):
    """An accepted operation's place in the log. A tuple: the fold makes one per operation, and a
    frozen dataclass costs four times as much to build; ordered and hashable all the same."""

    origin_region: str
    partition: int
    offset: int
    index: int


@dataclass(slots=True)
class OperationBatch:
    batch_id: str
    node_id: str
    key_id: str
    region: str
    created_hlc: int
    ops: list[Operation]
    op_digests: bytes
    signature: bytes


@dataclass(slots=True)
class VerifiedBatch:
    batch_id: str
    node_id: str
    key_id: str
    origin_region: str
    op_digests: bytes
    signature: bytes
    indexes: list[int]
    dots: list[Dot]
    confidences: list[float]
    ops: list[Operation]


# An accepted operation as the fold reads it, straight from the batch's columns (no Operation built):
# (index in its batch, object id, CRDT type, kind, args, node id, HLC timestamp).
FoldRow = tuple[int, str, str, str, dict[str, Any], str, int]


@dataclass(slots=True)
class DotRun:
    """Accepted operations whose dots share origin region, partition and offset: a whole VerifiedBatch
    v2 message (version 1 messages may hold several runs). Operation i's dot is
    (origin_region, partition, offset, rows[i][0])."""

    origin_region: str
    partition: int
    offset: int
    rows: list[FoldRow]


@dataclass(slots=True)
class RejectedOperation:
    original: bytes
    reasons: list[str]
    topic: str
    partition: int
    offset: int
    rejected_at_ms: int
    region: str
    index: int | None = None
    op_id: str | None = None
    object_id: str | None = None

    @classmethod
    def from_gate(
        cls,
        *,
        original: bytes,
        reasons: list[str],
        topic: str,
        partition: int,
        offset: int,
        index: int | None,
        op: Operation | None,
        region: str,
    ) -> RejectedOperation:
        return cls(
            original=original,
            reasons=list(reasons),
            topic=topic,
            partition=partition,
            offset=offset,
            rejected_at_ms=int(time.time() * 1000),
            region=region,
            index=index,
            op_id=op.op_id if op else None,
            object_id=op.object_id if op else None,
        )
