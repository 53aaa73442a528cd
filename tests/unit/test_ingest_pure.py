"""The ingest gateway's pure parts: op ids, request checks, MQTT payloads."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ingest import op_ids
from connectors.ingest.mqtt import Message, already_written, packet_hash, to_operation_item
from connectors.ingest.requests import check_idempotency_key, check_op, parse_body
from jarvis.json_ops import JsonOp, OpInputError, OpParser
from jarvis.ops import Operation
from jarvis.security.apikeys import ADMIN, Principal, Role
from pipelines.loader import pipelines

PIPES = pipelines()
ADMIN_P = Principal("ops-team", "k0", ADMIN)


def _build(j: JsonOp) -> Operation:
    return Operation("g0.1.00000000", j.object_id, j.crdt_type, j.kind, j.args, "ingest-eu-0", "eu", 1 << 16, {}, [])


def test_op_ids_carry_partition_and_time() -> None:
    oid = op_ids.make(5, 1732520000123, "deadbeefcafe0001", 17)
    assert op_ids.parse(oid) == (5, 1732520000123)
    for bad in ("", "g5.12", "x5.1.deadbeef", "g5.1.xyz12345", "g" + "9" * 6 + ".1.deadbeef"):
        assert op_ids.parse(bad) is None


def test_body_shapes() -> None:
    assert parse_body(b'{"a": 1}') == [{"a": 1}]
    assert parse_body(b"[1, 2]") == [1, 2]
    for raw, reason in ((b"", "empty body"), (b"  \n", "empty body"), (b"[]", "empty array"), (b"{", "not JSON"),
                        (b'{"v": NaN}', "not JSON"), (b"[" * 5000 + b"]" * 5000, "not JSON"),
                        (b"\xff", "not JSON"), (b"[" + b"1," * 10_000 + b"1]", "at most 10000")):  # fmt: skip
        with pytest.raises(OpInputError) as e:
            parse_body(raw)
        assert reason in e.value.reasons[0], raw[:20]


def test_check_op_applies_grants_then_the_verifiers_rules() -> None:
    c, op = check_op({"object_id": "ctr:a", "kind": "increment", "args": {"n": 3}}, ADMIN_P, PIPES, _build)
    assert op is not None and op.args == {"n": 3} and not c.reasons
    reader = Principal("dash", "k1", Role("reader", read=("*",)))
    c, op = check_op({"object_id": "ctr:a", "kind": "increment"}, reader, PIPES, _build)
    assert op is None and c.forbidden and c.reasons == ["dash (role reader) may not write ctr:a"]
    c, op = check_op({"object_id": "quality:l", "kind": "append", "args": {"timestamp": 1, "value": 500}}, ADMIN_P, PIPES, _build)
    assert op is None and not c.forbidden and "outside the pipeline's range" in c.reasons[0]
    c, op = check_op({"object_id": "reg:a", "kind": "write", "args": {"value": "x" * 1_000_000}}, ADMIN_P, PIPES, _build)
    assert op is None and "payload of" in c.reasons[0]


def test_check_op_with_a_parser_and_remembered_verdicts_answers_as_without() -> None:
    parser, verdicts = OpParser(PIPES.rule_for), {}
    items = [
        {"object_id": "ctr:a", "kind": "increment", "args": {"n": 3}},
        {"object_id": "quality:l", "kind": "append", "args": {"timestamp": 1, "value": 500}},
        {"object_id": "quality:m", "kind": "append", "args": {"timestamp": 1, "value": 500}},
        {"object_id": "quality:m", "kind": "append", "args": {"timestamp": 1, "value": 5}},
        {"object_id": "ctr:a", "kind": "explode"},
    ]
    for item in items * 2:
        plain, op = check_op(item, ADMIN_P, PIPES, _build)
        fast, fast_op = check_op(item, ADMIN_P, PIPES, _build, parser=parser, verdicts=verdicts)
        assert (fast.reasons, fast.forbidden, fast_op) == (plain.reasons, plain.forbidden, op)
    assert len(verdicts) == 3  # the two quality:* appends of value 500 share one verdict


def test_idempotency_key_header() -> None:
    assert check_idempotency_key("abc-123") is None
    assert check_idempotency_key("") and check_idempotency_key("x" * 256) and check_idempotency_key("a\nb")
    assert check_idempotency_key("two words") is None and check_idempotency_key("x" * 255) is None
    # what an HTTP server would alter or a header cannot carry: the ends' spaces, non-ASCII
    assert check_idempotency_key(" a") and check_idempotency_key("a ") and check_idempotency_key("clé")


def _item(topic: str, payload: bytes, received: float = 99.0) -> dict[str, Any]:
    return to_operation_item(topic, payload, received)


def test_mqtt_topics_become_operations() -> None:
    assert _item("telemetry/quality:l-1", b'{"ts": 5.5, "value": 93.1, "metadata": {"s": "a"}}') == {
        "object_id": "quality:l-1", "kind": "append_data_point",
        "args": {"timestamp": 5.5, "value": 93.1, "metadata": {"s": "a"}},
    }  # fmt: skip
    assert _item("telemetry/quality:l-1", b'{"value": 1}')["args"] == {"timestamp": 99.0, "value": 1}
    assert _item("jarvis/ops/ctr:a/b", b'{"kind": "increment", "args": {"n": 2}}') == {
        "object_id": "ctr:a/b", "kind": "increment", "args": {"n": 2}
    }
    for topic, payload, reason in (
        ("telemetry/q:1", b"\x00\x01", "not JSON"),
        ("telemetry/q:1", b"[1]", "must be a JSON object"),
        ("telemetry/q:1", b'{"temp": 1}', "ts, value, metadata"),
        ("telemetry/q:1", b'{"ts": 1}', "needs a value"),
        ("jarvis/ops/ctr:a", b'{"object_id": "ctr:b", "kind": "increment"}', "differs from the topic"),
        ("other/x", b"{}", "neither"),
        ("telemetry/q:1", b"x" * (1024 * 1024 + 1), "exceeds"),
    ):
        with pytest.raises(OpInputError) as e:
            _item(topic, payload)
        assert reason in e.value.reasons[0], (topic, payload[:20])


def test_a_redelivery_is_recognised_by_its_topic_and_payload_not_its_payload_alone() -> None:
    # Packet id 7 last carried {"value": 1} to one sensor; a different sensor's message with the same
    # payload, redelivered under the reused packet id, was never written and must not be skipped.
    payload = b'{"value": 1}'
    written = {7: packet_hash("telemetry/sensor:a", payload)}
    same = Message("telemetry/sensor:a", payload, 7, 1, True, 0.0)
    other = Message("telemetry/sensor:b", payload, 7, 1, True, 0.0)
    assert already_written(written, same)
    assert not already_written(written, other)
    assert not already_written(written, Message("telemetry/sensor:a", payload, 7, 1, False, 0.0))  # not a dup
    assert not already_written(written, Message("telemetry/sensor:a", payload, 8, 1, True, 0.0))
