"""Telling the wire formats apart, and the schemas as the registry receives them (no registry needed)."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from pathlib import Path

import avro.schema
import pytest

from connectors.schema_registry import RegistryCodec
from jarvis.codec import encode, encode_batch, store
from jarvis.codec.registry import (
    RegistryUnavailable,
    WireFormat,
    explain_unframed,
    fingerprint_of,
    schema_id,
    standalone_schema,
    subject,
    wire_format,
)
from jarvis.gate import Gate
from jarvis.ops import Operation, OperationBatch
from jarvis.security.keys import ensure_node_key
from jarvis.security.signing import sign_batch
from pipelines.loader import pipelines
from tests.trust_helpers import view_trusting

TELEMETRY = {"object_id": "quality:line-1", "timestamp": 1.5, "value": 93.1, "metadata": {}}


def confluent(sid: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", sid) + body


def test_single_object_lz4_and_confluent_messages_are_told_apart_by_their_first_bytes() -> None:
    plain = encode("TelemetryPoint", TELEMETRY)
    framed = encode("TelemetryPoint", TELEMETRY, compress=True)
    assert wire_format(plain) is WireFormat.SINGLE_OBJECT
    assert wire_format(framed) is WireFormat.LZ4
    assert wire_format(confluent(7, plain[10:])) is WireFormat.CONFLUENT
    assert wire_format(memoryview(confluent(7, b"\x02"))) is WireFormat.CONFLUENT


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00\x00\x00\x01",
        b"\xc3",
        b"\x04\x22\x4d",
        b"garbage",
        b"\x01\x00\x00\x00\x01\x02",
    ],
)
def test_anything_else_is_unknown(data: bytes) -> None:
    # A bare 5-byte Confluent header has no record after it: not a message of either format.
    assert wire_format(data) is WireFormat.UNKNOWN


def test_schema_id_is_the_big_endian_int_after_the_magic_byte() -> None:
    assert schema_id(confluent(1, b"\x00")) == 1
    assert schema_id(confluent(0x01020304, b"\x00")) == 0x01020304
    assert schema_id(confluent(2**32 - 1, b"\x00")) == 2**32 - 1
    with pytest.raises(ValueError, match="not a Confluent-framed message"):
        schema_id(encode("TelemetryPoint", TELEMETRY))


def test_subjects_follow_the_topic_name_strategy() -> None:
    assert subject("jarvis.ops.ingress") == "jarvis.ops.ingress-value"


def test_every_current_schema_goes_to_the_registry_whole_and_keeps_its_fingerprint() -> None:
    for name, schema in store().current.items():
        text = standalone_schema(schema)
        raw = json.loads(text)
        avro.schema.parse(text)  # the reference implementation: self-contained and valid
        assert fingerprint_of(text) == schema.fingerprint, name
        # Docs and defaults survive (a reader resolving an older writer needs the defaults).
        assert raw == json.loads(schema.path.read_text()), name


def test_a_history_schema_referring_to_another_file_is_sent_with_that_type_inlined_once() -> None:
    # VerifiedBatch v1 refers to Operation and Dot, defined in their own files.
    v1 = next(s for s in store().by_fingerprint.values() if s.path.name == "VerifiedBatch.v1.avsc")
    text = standalone_schema(v1)
    avro.schema.parse(text)
    assert text.count('"name":"Operation"') == 1 and text.count('"name":"Dot"') == 1


def test_without_a_registry_the_gate_says_why_a_confluent_message_is_unreadable(tmp_path: Path) -> None:
    signer = ensure_node_key("fmt-test", keys_dir=tmp_path)
    op = Operation(
        uuid.uuid4().hex, "ctr:fmt", "pncounter", "increment", {"n": 1}, "fmt-test", "eu",
        int(time.time() * 1000) << 16, {}, [],
    )  # fmt: skip
    digests, sig = sign_batch([op], signer)
    single = encode_batch(OperationBatch("b", "fmt-test", signer.key_id, "eu", 1, [op], digests, sig))
    gate = Gate("eu", pipelines(), view_trusting(signer))

    ok = gate.check(single, 0, 0, int(time.time() * 1000))
    assert ok.accepted == [0] and ok.batch.op(0) == op and ok.message == single

    framed = confluent(42, single[10:])
    result = gate.check(framed, 0, 1, int(time.time() * 1000))
    assert not result.accepted
    (reason,) = result.rejected[0].reasons
    assert "Confluent wire format (schema id 42)" in reason and "JARVIS_SCHEMA_REGISTRY_URL" in reason
    assert explain_unframed(single) is None


def test_a_registry_that_does_not_answer_stops_the_gate_instead_of_rejecting(tmp_path: Path) -> None:
    """The message is fine; the verifier must wait for the registry, not reject what it cannot read yet."""
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    codec = RegistryCodec(f"http://127.0.0.1:{port}/apis/ccompat/v7", conf={"max.retries": 0})
    gate = Gate("eu", pipelines(), view_trusting(), framing=codec.to_single_object)
    single = encode("TelemetryPoint", TELEMETRY)
    assert codec.to_single_object(single) == single  # no registry needed for the single-object format
    with pytest.raises(RegistryUnavailable, match="schema id 9: schema registry unavailable"):
        gate.check(confluent(9, single[10:]), 0, 0, int(time.time() * 1000))
