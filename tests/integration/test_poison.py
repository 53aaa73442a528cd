"""Bad input gets a clear reason in jarvis.ops.rejected, loses nothing, and the pipeline keeps going."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from confluent_kafka import Producer

from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from connectors.sdk import Client
from jarvis import topics
from jarvis.codec import decode_rejected, encode_batch
from jarvis.crdt import HLC
from jarvis.ops import Operation, OperationBatch
from jarvis.partitioning import partition_for
from jarvis.security.keys import create_key
from jarvis.security.signing import sign_batch
from tests.integration.pipeline_helpers import read_value, wait_until

pytestmark = pytest.mark.integration


def batch_of(ops: list[Operation], signer, **kw) -> bytes:
    digests, sig = sign_batch(ops, signer)
    b = OperationBatch(
        uuid.uuid4().hex, ops[0].node_id, signer.key_id, "eu", HLC("t").now(), ops, digests, sig
    )
    return encode_batch(dataclasses.replace(b, **kw))


def test_poison_lands_in_rejected_with_its_reason_and_later_ops_are_folded(stack, tmp_path) -> None:
    s = stack.settings
    bootstrap = s.bootstrap("eu")
    rejected = tail_consumer(bootstrap, topics.REJECTED)
    client = Client(region="eu", node_id="poison-test", dev_trust=True)
    hlc = HLC("poison-test")
    oid = f"ctr:poison-{uuid.uuid4().hex[:8]}"

    def op(object_id: str = oid, **kw) -> Operation:
        fields = dict(op_id=uuid.uuid4().hex, object_id=object_id, crdt_type="pncounter", kind="increment",
                      args={"n": 1}, node_id="poison-test", region="eu", hlc=hlc.now())  # fmt: skip
        fields.update(kw)
        return Operation(**fields)

    good = batch_of([op()], client.signer)
    valid = encode_batch(
        OperationBatch("x", "poison-test", client.signer.key_id, "eu", 1, [op()], b"\0" * 32, b"\0" * 64)
    )
    forger = create_key(tmp_path, "poison-test")  # same node name, key nobody trusts
    cases = {
        "random-bytes": (b"\x8f\x00garbage\xff" * 5, "undecodable message"),
        "truncated-avro": (good[: len(good) - 9], "undecodable message"),
        "forged-signature": (batch_of([op()], forger), "of node poison-test is not trusted in eu"),
        "tampered-signature": (batch_of([op()], client.signer, signature=b"\1" * 64), "bad signature"),
        "unknown-prefix": (
            batch_of([op(object_id=f"nosuch:{uuid.uuid4().hex[:6]}", crdt_type="pncounter")], client.signer),
            "unknown object prefix 'nosuch'",
        ),
        "expired": (
            batch_of([op(hlc=(int(time.time() * 1000) - 3 * 86400_000) << 16)], client.signer),
            "timestamp too old",
        ),
        "oversized": (
            batch_of(
                [op(object_id="reg:big", crdt_type="lww", kind="write", args={"value": "x" * 20000})],
                client.signer,
            ),
            "exceeds the limit",
        ),
        "bad-digest": (valid, "bad signature"),
    }
    p = Producer(client_conf(bootstrap))
    part = partition_for(oid, s.partitions)
    for name, (value, _) in cases.items():
        p.produce(topics.INGRESS, key=name.encode(), value=value, partition=part)
    p.flush(10)
    client.counter(oid).increment(5)  # produced after the poison, to the same partition
    client.flush()

    found: dict[str, list[str]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(found) < len(cases):
        msg = rejected.poll(0.5)
        if msg is None or msg.error():
            continue
        rec = decode_rejected(msg.value())
        for name, (value, _) in cases.items():
            if rec.original == value:
                found[name] = rec.reasons
    rejected.close()
    for name, (_, reason) in cases.items():
        assert name in found, f"{name} never reached {topics.REJECTED}"
        assert any(reason in r for r in found[name]), f"{name}: reasons {found[name]} lack {reason!r}"
    q = s.region_config("eu").query_url
    assert wait_until(lambda: read_value(q, oid) == 5, 60), "operations after the poison were not folded"


def test_sdk_produces_signed_batches_a_raw_consumer_reads_back(stack) -> None:
    from jarvis.codec import decode_batch

    consumer = tail_consumer(stack.settings.bootstrap("us"), topics.INGRESS)
    client = Client(region="us", node_id="sdk-test", dev_trust=True)
    oid = f"members:{uuid.uuid4().hex[:8]}"
    client.orset(oid).add("ada")
    client.orset(oid).add("grace")
    client.orset(oid).remove("ada")
    client.flush()
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.key() == oid.encode():
            got = decode_batch(msg.value())
    consumer.close()
    assert got is not None
    assert [(o.kind, o.args["element"]) for o in got.ops] == [
        ("add", "ada"),
        ("add", "grace"),
        ("remove", "ada"),
    ]
    assert got.node_id == "sdk-test" and len(got.signature) == 64
    assert got.ops[0].hlc < got.ops[1].hlc < got.ops[2].hlc


def test_sdk_plain_and_encrypted_batches_verify_and_sealed_fields_need_the_key(stack) -> None:
    """Plain operations take the SDK's column writer, encrypted ones the general codec: a raw
    consumer checks both kinds of message against the node's public key, op by op."""
    from jarvis.codec import decode_batch
    from jarvis.security.crypto import DataKeyring, decrypt_fields
    from jarvis.security.signing import check_digest, verify_batch

    consumer = tail_consumer(stack.settings.bootstrap("eu"), topics.INGRESS)
    client = Client(region="eu", node_id="sdk-mixed", dev_trust=True)
    run = uuid.uuid4().hex[:8]
    ctr, patient = f"ctr:mixed-{run}", f"patient:mixed-{run}"
    for i in range(3):
        client.counter(ctr).increment(i + 1)
        client.register(patient).write({"diagnosis": f"secret-{i}"})
    client.flush()
    got: dict[str, list] = {}
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error() and msg.key() in (ctr.encode(), patient.encode()):
            got[msg.key().decode()] = [msg.value(), decode_batch(msg.value())]
    consumer.close()
    assert set(got) == {ctr, patient}
    for _raw, batch in got.values():
        verify_batch(batch.op_digests, batch.signature, client.signer.public)
        for i, op in enumerate(batch.ops):
            check_digest(op, i, batch.op_digests)
    counter_ops = got[ctr][1].ops
    assert [o.args["n"] for o in counter_ops] == [1, 2, 3]
    assert all(o.encrypted_fields == [] for o in counter_ops)
    sealed = got[patient][1].ops
    assert all(o.encrypted_fields == ["value"] for o in sealed)
    assert b"secret-" not in got[patient][0]
    opened = [decrypt_fields(o, DataKeyring(stack.settings.keys_dir)) for o in sealed]
    assert [o.args["value"] for o in opened] == [{"diagnosis": f"secret-{i}"} for i in range(3)]
