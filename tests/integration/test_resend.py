"""A re-sent signed message counts once (guarantee 2): the same bytes produced again to ingress, in
the same partition, another partition and the other region, are rejected as duplicates; live state,
both replay sources and the archive agree."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_clients import client_conf
from connectors.sdk import Client
from jarvis import topics
from jarvis.codec import decode_batch, decode_rejected
from jarvis.replay_cli import Source, run_replay
from jarvis.security.seen_batches import batch_key
from tests.integration.kafka_helpers import producer, tail_consumer, wait_for
from tests.integration.pipeline_helpers import read_value, wait_until

pytestmark = pytest.mark.integration


def rejections(consumer: Consumer, object_id: str, n: int, timeout: float = 60.0) -> list[list[str]]:
    found = []
    while len(found) < n:
        msg = wait_for(consumer, lambda k, v: k == object_id.encode(), timeout)
        if msg is None:
            break
        found.append(decode_rejected(msg.value()).reasons)
    return found


def seen_in(bootstrap: str, topic: str, key: bytes, timeout: float = 60.0) -> bool:
    c = Consumer({**client_conf(bootstrap), "group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        return wait_for(c, lambda k, v: k == key, timeout) is not None
    finally:
        c.close()


def test_a_resent_message_is_rejected_everywhere_and_counts_once(stack) -> None:
    s = stack.settings
    oid = f"ctr:resend-{uuid.uuid4().hex[:8]}"
    captured = tail_consumer(s.bootstrap("eu"), topics.INGRESS)
    rejected = {r: tail_consumer(s.bootstrap(r), topics.REJECTED) for r in ("eu", "us")}
    with Client(region="eu", node_id="resend-app", dev_trust=True) as c:
        for _ in range(10):
            c.counter(oid).increment(1)
    msg = wait_for(captured, lambda k, v: k == oid.encode())
    assert msg is not None, "the SDK's message never reached ingress"
    original, partition = msg.value(), msg.partition()
    key = batch_key(decode_batch(original).op_digests)
    eu, us = s.region_config("eu").query_url, s.region_config("us").query_url
    assert wait_until(lambda: read_value(eu, oid) == 10 and read_value(us, oid) == 10, 60)

    other = (partition + 1) % s.partitions
    p = producer(s.bootstrap("eu"))
    p.produce(topics.INGRESS, key=oid.encode(), value=original, partition=partition)
    p.produce(topics.INGRESS, key=oid.encode(), value=original, partition=other)
    assert p.flush(10) == 0
    reasons = rejections(rejected["eu"], oid, 2)
    assert len(reasons) == 2, reasons
    where = f"accepted at eu/{partition}/{msg.offset()}"
    assert all(any(r.startswith("duplicate of batch") and where in r for r in rs) for rs in reasons), reasons

    # The other region knows once MirrorMaker has carried eu's note of the acceptance.
    assert seen_in(s.bootstrap("us"), topics.mirrored("eu", topics.SEEN), key), "eu's acceptance never reached us"
    q = producer(s.bootstrap("us"))
    q.produce(topics.INGRESS, key=oid.encode(), value=original, partition=partition)
    assert q.flush(10) == 0
    us_reasons = rejections(rejected["us"], oid, 1)
    assert len(us_reasons) == 1 and where in us_reasons[0][0], us_reasons

    # The rejections above mean every re-send was judged; nothing more can reach the folds.
    assert read_value(eu, oid) == 10 and read_value(us, oid) == 10
    for source in (Source.kafka, Source.archive):
        assert wait_until(lambda src=source: run_replay(oid, None, src, "eu").ops_folded == 10, 60), source
        rep = run_replay(oid, None, source, "eu")
        assert rep.value == 10 and rep.differences() == [], (source, rep.value, rep.differences())
