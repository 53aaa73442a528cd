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

confluent-kafka's registry client is imported only when a RegistryCodec is built: a pipeline
without a registry never loads it.
"""

from __future__ import annotations

import enum
import json
import struct
import threading
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from jarvis import topics
from jarvis.codec.errors import CodecError, UnknownSchema
from jarvis.codec.fingerprint import crc64_avro
from jarvis.codec.records import batch_from_record, batch_record
from jarvis.codec.single_object import LZ4_MAGIC, MAGIC, decode, encode
from jarvis.codec.store import NAMESPACE, Schema, SchemaStore, store
from jarvis.errors import JarvisError
from jarvis.ops import OperationBatch

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

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


class RegistryCodec:
    """Encode records in the Confluent wire format; decode that and the single-object formats alike."""

    def __init__(
        self,
        url: str,
        *,
        schemas: SchemaStore | None = None,
        client: SchemaRegistryClient | None = None,
        conf: dict[str, Any] | None = None,
        auto_register: bool = True,
    ) -> None:
        """`conf`: more SchemaRegistryClient settings (auth, TLS, retries) beside the URL."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        self.schemas = schemas or store()
        self.client = client or SchemaRegistryClient({"url": url, **(conf or {})})
        self.auto_register = auto_register
        self._serializers: dict[str, Any] = {}
        self._deserializers: dict[str | None, Any] = {}
        # schema id -> (writer's full name, the schemas/ schema with the same canonical form or None)
        self._writers: dict[int, tuple[str, Schema | None]] = {}
        # The registry holds schemas standalone (named types inlined); the store fingerprints a
        # schema that refers to another file's type by that type's name. Both keys lead to it.
        self._by_registered_fp = {
            fingerprint_of(standalone_schema(sc, self.schemas)): sc
            for sc in self.schemas.by_fingerprint.values()
        }
        self._by_registered_fp.update(self.schemas.by_fingerprint)
        self._lock = threading.Lock()

    # -- encoding ---------------------------------------------------------------------------------
    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes:
        """`record` as schemas/<name>.avsc, framed with the id the registry gives that schema under
        subject "<topic>-value" (registered on first use unless auto_register is off)."""
        from confluent_kafka.serialization import MessageField, SerializationContext

        ser = self._serializers.get(name)
        if ser is None:
            ser = self._serializer(name)
        try:
            return ser(record, SerializationContext(topic, MessageField.VALUE))
        except (ValueError, TypeError):
            raise  # the record does not fit its schema: the caller's bug, as with encode()
        except Exception as e:
            raise self._translate(e, f"registering {name} under {subject(topic)}") from e

    def encode_batch(self, batch: OperationBatch, topic: str = topics.INGRESS) -> bytes:
        return self.encode("OperationBatch", batch_record(batch), topic)

    def _serializer(self, name: str) -> Any:
        from confluent_kafka.schema_registry.avro import AvroSerializer

        with self._lock:
            ser = self._serializers.get(name)
            if ser is None:
                schema_str = standalone_schema(self.schemas.schema(name), self.schemas)
                ser = AvroSerializer(
                    self.client, schema_str, conf={"auto.register.schemas": self.auto_register}
                )
                self._serializers[name] = ser
        return ser

    # -- decoding ---------------------------------------------------------------------------------
    def decode(self, data: bytes, topic: str, reader: str | None = None) -> tuple[str, dict[str, Any]]:
        """(full record name, record) of a message in any of the formats; with `reader`, the writer's
        schema is resolved into that schemas/ schema (Avro schema evolution)."""
        if wire_format(data) is not WireFormat.CONFLUENT:
            return decode(data, reader, schemas=self.schemas)
        from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

        writer_name, _ = self._writer(schema_id(data))
        deser = self._deserializer(reader)
        try:
            record = deser(bytes(data), SerializationContext(topic, MessageField.VALUE))
        except _MALFORMED as e:
            raise CodecError(f"malformed {writer_name} body: {type(e).__name__}: {e}") from None
        except SerializationError as e:
            raise CodecError(f"undecodable {writer_name}: {e}") from None
        except Exception as e:
            raise self._translate(e, f"decoding a {writer_name}") from e
        name = self.schemas.schema(reader).name if reader else writer_name
        return name, record

    def decode_batch(self, data: bytes, topic: str = topics.INGRESS) -> OperationBatch:
        name, r = self.decode(data, topic)
        if not name.endswith("OperationBatch"):
            raise CodecError(f"expected an OperationBatch, got a {name}")
        return batch_from_record(r)

    def _deserializer(self, reader: str | None) -> Any:
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        deser = self._deserializers.get(reader)
        if deser is None:
            with self._lock:
                schema_str = standalone_schema(self.schemas.schema(reader), self.schemas) if reader else None
                deser = self._deserializers[reader] = AvroDeserializer(self.client, schema_str)
        return deser

    # -- the verifier's view ----------------------------------------------------------------------
    def to_single_object(self, data: bytes, topic: str = topics.INGRESS) -> bytes:
        """The message as the rest of the pipeline reads it: single-object (an lz4 frame or a
        single-object message comes back unchanged).

        A writer schema whose canonical form is one of schemas/ (current or history) has the same
        binary encoding, so only the header changes, with no decoding. A schema schemas/ does not
        know (a newer producer, say) is resolved into our current schema of the same name by the
        registry's deserializer and written again."""
        if wire_format(data) is not WireFormat.CONFLUENT:
            return data
        name, known = self._writer(schema_id(data))
        if known is not None:
            return MAGIC + known.fingerprint + bytes(data[CONFLUENT_HEADER:])
        short = name.rpartition(".")[2]
        if f"{NAMESPACE}.{short}" not in self.schemas.current:
            raise UnknownSchema(f"registry schema {name} (id {schema_id(data)}) is not a Jarvis record")
        _, record = self.decode(data, topic, reader=short)
        return encode(short, record, schemas=self.schemas)

    def _writer(self, sid: int) -> tuple[str, Schema | None]:
        hit = self._writers.get(sid)
        if hit is not None:
            return hit
        try:
            registered = self.client.get_schema(sid)
        except Exception as e:
            raise self._translate(e, f"looking up schema id {sid}") from e
        if (registered.schema_type or "AVRO") != "AVRO" or not registered.schema_str:
            raise UnknownSchema(f"schema id {sid} is a {registered.schema_type} schema, not Avro")
        try:
            parsed = parse_schema(json.loads(registered.schema_str))
            fp = fingerprint_of(registered.schema_str)
        except Exception as e:  # noqa: BLE001 - whatever the registry holds, say which id it is
            raise UnknownSchema(f"schema id {sid} is not a usable Avro schema: {e}") from None
        name = parsed["name"] if isinstance(parsed, dict) and "name" in parsed else str(parsed)
        hit = (name, self._by_registered_fp.get(fp))
        self._writers[sid] = hit
        return hit

    @staticmethod
    def _translate(e: Exception, doing: str) -> Exception:
        """Whose fault: the registry's when it did not answer (RegistryUnavailable: the caller
        retries, the message is fine), the message's otherwise (a CodecError: rejected with why)."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if isinstance(e, SchemaRegistryError):
            if e.http_status_code == 404:
                return UnknownSchema(f"{doing}: the schema registry does not know it ({e.error_message})")
            if 400 <= e.http_status_code < 500:
                return CodecError(f"{doing}: the schema registry refused it ({e})")
            return RegistryUnavailable(f"{doing}: schema registry error: {e}")
        # Connection refused, time-outs (after the client's own retries): httpx's TransportError,
        # matched by name because the client picks httpx or its successor httpx2 at import.
        if isinstance(e, OSError) or any(c.__name__ == "TransportError" for c in type(e).__mro__):
            return RegistryUnavailable(f"{doing}: schema registry unavailable: {type(e).__name__}: {e}")
        return CodecError(f"{doing}: {type(e).__name__}: {e}")
