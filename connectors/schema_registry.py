"""RegistryCodec: the Confluent Schema Registry client side of the wire format in jarvis/codec/registry.py.

Encoding and decoding the Confluent format is confluent-kafka's AvroSerializer / AvroDeserializer;
this class only picks the schema (schemas/*.avsc, the same ones) and the subject, and re-frames an
accepted message as single-object for jarvis.ops (see `to_single_object`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from fastavro import parse_schema

from jarvis import topics
from jarvis.codec.errors import CodecError, UnknownSchema
from jarvis.codec.records import batch_from_record, batch_record
from jarvis.codec.registry import (
    _MALFORMED,
    CONFLUENT_HEADER,
    RegistryUnavailable,
    WireFormat,
    fingerprint_of,
    schema_id,
    standalone_schema,
    subject,
    wire_format,
)
from jarvis.codec.single_object import MAGIC, decode, encode
from jarvis.codec.store import NAMESPACE, Schema, SchemaStore, store
from jarvis.ops import OperationBatch


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
