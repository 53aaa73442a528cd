"""The Confluent Schema Registry wire format, beside the single-object encoding, for a pipeline that
sets JARVIS_SCHEMA_REGISTRY_URL.

    Confluent:      00 | schema id (4 bytes, big-endian) | Avro body    (TopicNameStrategy: "<topic>-value")
    single-object:  C3 01 | CRC-64-AVRO fingerprint (8 bytes)   | Avro body    (jarvis/codec/single_object.py)
    lz4 frame:      04 22 4D 18 ... around a single-object message

The first bytes tell the three apart, so one topic can carry all of them while producers migrate.
Encoding and decoding the Confluent format is confluent-kafka's AvroSerializer / AvroDeserializer;
this module only picks the schema (schemas/*.avsc, the same ones) and the subject.

Where it applies: producers (the SDK) write it to jarvis.ops.ingress and the verifier reads it.
The verifier forwards every accepted message to jarvis.ops as a single-object message (re-framed:
same Avro body, see `to_single_object`), because jarvis.ops crosses regions through MirrorMaker and
a schema id means something only to the registry that issued it; the fingerprint means the same
everywhere. The signature covers each operation's content (records.op_content), never the framing,
so re-framing or re-encoding a batch leaves it verifiable.

This module is the format itself (pure): telling the framings apart, subjects, the schema a
registry is given. The client that talks to a registry, RegistryCodec, is an adapter:
connectors/schema_registry.py.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from jarvis.codec.errors import CodecError
from jarvis.codec.fingerprint import crc64_avro
from jarvis.codec.single_object import LZ4_MAGIC, MAGIC
from jarvis.codec.store import NAMESPACE, Schema, SchemaStore, store
from jarvis.errors import JarvisError

if TYPE_CHECKING:
    pass

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER = 5  # magic byte + 4-byte schema id


class WireFormat(enum.Enum):
    SINGLE_OBJECT = "single-object"
    LZ4 = "lz4"  # an lz4 frame around a single-object message
    CONFLUENT = "confluent"
    UNKNOWN = "unknown"


def wire_format(data: bytes) -> WireFormat:
    """Which framing a Kafka value uses, from its first bytes alone."""
    head = bytes(data[:4])
    if head[:2] == MAGIC:
        return WireFormat.SINGLE_OBJECT
    if head == LZ4_MAGIC:
        return WireFormat.LZ4
    # A Confluent message has at least the header and a body: an empty record still is one record.
    if len(data) > CONFLUENT_HEADER and head[0] == CONFLUENT_MAGIC:
        return WireFormat.CONFLUENT
    return WireFormat.UNKNOWN


def schema_id(data: bytes) -> int:
    """The registry schema id of a Confluent-framed message."""
    if wire_format(data) is not WireFormat.CONFLUENT:
        raise CodecError(f"not a Confluent-framed message (starts with {bytes(data[:5]).hex() or 'nothing'})")
    return int(struct.unpack_from(">I", data, 1)[0])


def explain_unframed(data: bytes) -> str | None:
    """Why a message the single-object decoder refused cannot be read here, if its framing says so."""
    if wire_format(data) is WireFormat.CONFLUENT:
        return (
            f"Confluent wire format (schema id {schema_id(data)}), but no schema registry is configured "
            "here: set JARVIS_SCHEMA_REGISTRY_URL"
        )
    return None


def subject(topic: str) -> str:
    """TopicNameStrategy, confluent-kafka's default: the value schema of topic T is subject "T-value"."""
    return f"{topic}-value"


def standalone_schema(schema: Schema, schemas: SchemaStore | None = None) -> str:
    """The schema as one self-contained JSON document, for the registry: docs and defaults kept (a
    reader needs the defaults to resolve older writers), named types from other files inlined where
    first used, as the Avro specification requires of a single schema."""
    st = schemas or store()
    raw = json.loads(schema.path.read_text())
    known = {name: json.loads(s.path.read_text()) for name, s in st.current.items()}
    return json.dumps(_inline(raw, known, set(), raw.get("namespace", NAMESPACE)), separators=(",", ":"))


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _inline(node: Any, known: dict[str, Any], defined: set[str], namespace: str) -> Any:
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = node if "." in node else f"{namespace}.{node}"
        if full in defined or full not in known:
            return node
        return _inline(known[full], known, defined, namespace)
    if isinstance(node, list):
        return [_inline(n, known, defined, namespace) for n in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    out = dict(node)
    if kind in ("record", "error", "enum", "fixed"):
        ns = node.get("namespace", namespace)
        name = node["name"]
        defined.add(name if "." in name else f"{ns}.{name}")
        if kind != "enum" and "fields" in node:
            out["fields"] = [{**f, "type": _inline(f["type"], known, defined, ns)} for f in node["fields"]]
        return out
    if kind == "array":
        out["items"] = _inline(node["items"], known, defined, namespace)
    elif kind == "map":
        out["values"] = _inline(node["values"], known, defined, namespace)
    elif isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in _PRIMITIVES):
        out["type"] = _inline(kind, known, defined, namespace)
    return out


def fingerprint_of(schema_str: str) -> bytes:
    """The single-object fingerprint (8 bytes, little-endian) of a schema given as JSON text."""
    canonical = to_parsing_canonical_form(parse_schema(json.loads(schema_str)))
    return struct.pack("<Q", crc64_avro(canonical.encode()))


# What fastavro raises for bytes that do not hold a record of the schema (as single_object.decode).
_MALFORMED = (EOFError, IndexError, ValueError, TypeError, UnicodeDecodeError, OverflowError, MemoryError)


class RegistryUnavailable(JarvisError, RuntimeError):
    """The registry did not answer (down, or an error of its own): retry later, the message is fine."""
