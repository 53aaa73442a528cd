"""The Confluent wire format end to end, against a real schema registry: Apicurio Registry, built and
started by the stack code if it is not running (`jarvis stack up --schema-registry` does the same)."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from connectors.schema_registry import RegistryCodec
from connectors.sdk import Client
from jarvis import topics
from jarvis.codec import store
from jarvis.codec.records import batch_record, op_record
from jarvis.codec.registry import (
    WireFormat,
    schema_id,
    standalone_schema,
    subject,
    wire_format,
)
from jarvis.config import Settings
from jarvis.ops import Operation, OperationBatch
from jarvis.partitioning import partition_for
from jarvis.security.signing import sign_batch
from jarvis.stack.stack import Stack
from tests.integration.pipeline_helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # builds and starts a schema registry: two minutes


@pytest.fixture(scope="module")
def registry_url(stack: Stack) -> str:
    # A Stack of its own: the session's keeps its settings, so other tests stay single-object.
    return Stack(stack.settings).ensure_schema_registry()


@pytest.fixture(scope="module")
def registry(registry_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry_url})


def settings_with(stack: Stack, url: str | None) -> Settings:
    return dataclasses.replace(stack.settings, schema_registry_url=url)


def ingress_batches(consumer: Any, node_ids: set[str], codec: RegistryCodec) -> list[tuple[bytes, Any]]:
    """(raw value, decoded batch) of ingress messages until every one of these nodes has been seen."""
    got: list[tuple[bytes, Any]] = []
    deadline = time.monotonic() + 30
    while {b.node_id for _, b in got} != node_ids and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        batch = codec.decode_batch(msg.value())  # either format
        if batch.node_id in node_ids:
            got.append((msg.value(), batch))
    return got


def test_sdk_in_registry_mode_is_folded_beside_single_object_producers(
    stack: Stack, registry_url: str, registry: SchemaRegistryClient
) -> None:
    s = stack.settings
    consumer = tail_consumer(s.bootstrap("eu"), topics.INGRESS)
    run = uuid.uuid4().hex[:8]
    counter, members = f"ctr:sr-{run}", f"members:sr-{run}"
    with Client(region="eu", node_id="sr-test", settings=settings_with(stack, registry_url), dev_trust=True) as new:
        assert new.registry is not None
        new.counter(counter).increment(3)
        new.orset(members).add("ada")
    # A producer not yet migrated writes to the same objects and topic at the same time.
    with Client(region="eu", node_id="sr-legacy", settings=settings_with(stack, None), dev_trust=True) as old:
        assert old.registry is None
        old.counter(counter).increment(4)

    seen = ingress_batches(consumer, {"sr-test", "sr-legacy"}, RegistryCodec(registry_url))
    consumer.close()
    formats = {b.node_id: wire_format(raw) for raw, b in seen}
    assert formats == {"sr-test": WireFormat.CONFLUENT, "sr-legacy": WireFormat.SINGLE_OBJECT}
    for raw, batch in seen:
        if batch.node_id == "sr-test":
            assert raw[0] == 0
            registered = registry.get_schema(schema_id(raw))  # the id is the registry's
            assert json.loads(registered.schema_str)["name"] == "OperationBatch"
    assert subject(topics.INGRESS) in registry.get_subjects()

    assert wait_until(lambda: (new.read(counter) or {}).get("value") == 7, 60), new.read(counter)
    assert wait_until(lambda: (new.read(members) or {}).get("value") == ["ada"], 30), new.read(members)


def test_a_newer_producers_schema_is_resolved_through_the_registry_and_folded(
    stack: Stack, registry_url: str, registry: SchemaRegistryClient
) -> None:
    """A writer schema schemas/ does not know (one more batch field): the verifier asks the registry
    for it, resolves it into our schema and forwards a single-object message; the signature, over the
    operations' content, still verifies."""
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    oid = f"ctr:sr-newer-{run}"
    codec = RegistryCodec(registry_url)
    client = Client(region="eu", node_id="sr-newer", settings=settings_with(stack, registry_url), dev_trust=True)
    op = Operation(
        uuid.uuid4().hex, oid, "pncounter", "increment", {"n": 5}, "sr-newer", "eu", client.hlc.now(), {}, []
    )
    digests, sig = sign_batch([op], client.signer)
    batch = OperationBatch(
        uuid.uuid4().hex, "sr-newer", client.signer.key_id, "eu", client.hlc.now(), [op], digests, sig
    )
    newer = json.loads(standalone_schema(store().schema("OperationBatch")))
    newer["fields"].append({"name": "trace_id", "type": "string", "default": ""})
    ser = AvroSerializer(registry, json.dumps(newer))
    value = ser(
        {**batch_record(batch), "trace_id": run}, SerializationContext(topics.INGRESS, MessageField.VALUE)
    )
    assert wire_format(value) is WireFormat.CONFLUENT
    assert schema_id(value) != schema_id(codec.encode_batch(batch))  # the SDK's schema has another id

    p = Producer(client_conf(s.bootstrap("eu")))
    p.produce(topics.INGRESS, key=oid.encode(), value=value, partition=partition_for(oid, s.partitions))
    assert p.flush(10) == 0
    assert wait_until(lambda: (client.read(oid) or {}).get("value") == 5, 60), client.read(oid)


def test_writer_and_reader_schemas_evolve_under_the_registrys_compatibility_rule(
    registry_url: str, registry: SchemaRegistryClient
) -> None:
    topic = f"jarvis.test.evolution-{uuid.uuid4().hex[:8]}"  # a subject only: nothing is produced
    name = subject(topic)
    registry.set_compatibility(subject_name=name, level="BACKWARD")
    codec = RegistryCodec(registry_url)
    op = Operation(
        uuid.uuid4().hex, "ctr:evo", "pncounter", "increment", {"n": 2}, "n", "eu", 1 << 16, {}, []
    )
    record = op_record(op)

    # An old producer writes Operation version 1 (no metadata, no encrypted fields) ...
    v1 = next(sc for sc in store().by_fingerprint.values() if sc.path.name == "Operation.v1.avsc")
    old = {k: v for k, v in record.items() if k not in ("metadata", "encrypted_fields")}
    data = AvroSerializer(registry, standalone_schema(v1))(
        old, SerializationContext(topic, MessageField.VALUE)
    )
    # ... which a current reader resolves, the new fields taking their defaults.
    got_name, got = codec.decode(data, topic, reader="Operation")
    assert got_name == "io.jarvis.v1.Operation" and got == record
    assert codec.to_single_object(data, topic)[:2] == b"\xc3\x01"

    # Version 2 only adds fields with defaults: BACKWARD-compatible, so the registry takes it.
    data2 = codec.encode("Operation", record, topic)
    assert schema_id(data2) != schema_id(data)
    assert codec.decode(data2, topic) == ("io.jarvis.v1.Operation", record)
    # A field without a default would break readers of older data: the registry refuses it.
    bad = json.loads(standalone_schema(store().schema("Operation")))
    bad["fields"].append({"name": "tenant", "type": "string"})
    assert registry.test_compatibility(name, Schema(json.dumps(bad), "AVRO")) is False
