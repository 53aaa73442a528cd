"""An OperationBatch written straight into its Avro columns as operations arrive.

The SDK's hot path. Every operation's digest covers the schemaless Avro encoding of its record
(`op_content`), and an OperationBatch stores operations by column: op ids and timestamps laid end
to end, the other fields as references to each distinct encoded value (v3). So each field is encoded once and serves both the digest and the
batch body, and the batch needs no Operation objects, no record dict and no generic Avro writer.
The output is byte-for-byte what `encode_batch` writes for the same operations (a property test
holds the two equal). Metadata shared by every operation of the batch (the ingest gateway's
principal and node) is encoded once; operations with encrypted fields take the general path instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import sha256
from typing import NamedTuple

from jarvis.codec.records import SHORT_LENGTHS, HlcVarints, avro_long, avro_str, avro_utf8
from jarvis.codec.single_object import MAGIC
from jarvis.codec.store import store
from jarvis.ops import validate

_EMPTY = b"\x00"  # an empty Avro map or array
_SIX_EMPTY_COLUMNS = b"\x00" * 6  # object_ids .. regions, given by reference instead


class Head(NamedTuple):
    """The encoded object_id, crdt_type and kind of an operation; callers cache one per object/kind."""

    object_id: bytes
    crdt_type: bytes
    kind: bytes
    joined: bytes
    key: bytes  # the object id as the Kafka key

    @classmethod
    def of(cls, object_id: str, crdt_type: str, kind: str) -> Head:
        validate(object_id, crdt_type, kind)
        o, t, k = avro_str(object_id), avro_str(crdt_type), avro_str(kind)
        return cls(o, t, k, o + t + k, object_id.encode())


def _array(n: int, items: bytes | bytearray) -> bytes:
    # fastavro writes a non-empty array as one block: count, items, then the 0 that ends it.
    return avro_long(n) + items + b"\x00" if n else b"\x00"


def _map(m: Mapping[str, str]) -> bytes:
    return avro_long(len(m)) + b"".join(avro_str(k) + avro_str(v) for k, v in m.items()) + _EMPTY


class BatchBuilder:
    """One partition's pending operations, as Avro columns and a digest per operation."""

    __slots__ = (
        "_node", "_region", "_node_region", "n", "heads", "op_ids", "hlcs", "digests", "_hlc", "_refs_of",
        "strings", "refs", "_metadata", "_tail", "_head_refs", "_origin_refs",
    )  # fmt: skip

    def __init__(self, node_id: str, region: str, metadata: Mapping[str, str] | None = None) -> None:
        self._node = avro_str(node_id)
        self._region = avro_str(region)
        self._node_region = self._node + self._region
        self.n = 0
        self.heads: list[Head] = []
        self.op_ids = bytearray()
        self.hlcs = bytearray()
        self.digests = bytearray()
        self._hlc = HlcVarints()
        # The repetitive columns by reference (OperationBatch v3): each distinct encoded value once in
        # `strings`, in order of first use; `refs` six indexes per operation.
        self._refs_of: dict[bytes, bytes] = {}  # encoded value -> its index as an Avro int
        self.strings = bytearray()
        self.refs = bytearray()
        # The refs an object/kind and the node/region come to, found once (by the head's `joined`,
        # whose hash bytes keep); taken in the same order as one `_ref` per field, so the same bytes.
        self._head_refs: dict[bytes, bytes] = {}
        self._origin_refs = b""
        # Every operation's metadata map, encoded once (fastavro writes a map as one block).
        self._metadata = _map(metadata) if metadata else b""
        self._tail = (self._metadata or _EMPTY) + _EMPTY  # metadata, then no encrypted fields

    def _ref(self, encoded: bytes) -> bytes:
        ref = self._refs_of.get(encoded)
        if ref is None:
            i = len(self._refs_of)
            ref = self._refs_of[encoded] = SHORT_LENGTHS[i] if i < 64 else avro_long(i)
            self.strings += encoded
        return ref

    def add(self, op_id: str, head: Head, args_json: bytes, hlc: int) -> None:
        """Append one operation; `args_json` must be `canonical_args_utf8(args)`."""
        oid = avro_str(op_id)
        args = avro_utf8(args_json)
        ts = self._hlc(hlc)
        content = b"".join((oid, head.joined, args, self._node_region, ts, self._tail))
        self.digests += sha256(content).digest()
        self.heads.append(head)
        self.op_ids += oid
        ref = self._ref
        head_refs = self._head_refs.get(head.joined)
        if head_refs is None:
            head_refs = self._head_refs[head.joined] = ref(head.object_id) + ref(head.crdt_type) + ref(head.kind)
        args_ref = ref(args)
        if not self._origin_refs:
            self._origin_refs = ref(self._node) + ref(self._region)
        self.refs += head_refs + args_ref + self._origin_refs
        self.hlcs += ts
        self.n += 1

    def object_ids_list(self) -> list[str]:
        return [h.key.decode() for h in self.heads]

    def encode(self, batch_id: str, key_id: str, created_hlc: int, signature: bytes) -> bytes:
        """The single-object message of schemas/OperationBatch.avsc for the operations added."""
        n = self.n
        return b"".join(
            (
                MAGIC,
                store().schema("OperationBatch").fingerprint,
                avro_str(batch_id),
                self._node,
                avro_str(key_id),
                self._region,
                avro_long(created_hlc),
                _array(n, self.op_ids),
                _SIX_EMPTY_COLUMNS,
                _array(n, self.hlcs),
                # An empty column stands for "empty for every operation".
                _array(n, self._metadata * n) if self._metadata else _EMPTY,
                _EMPTY,
                avro_long(len(self.digests)),
                self.digests,
                avro_long(len(signature)),
                signature,
                _array(len(self._refs_of), self.strings),
                _array(6 * n, self.refs),
            )
        )
