"""Small confluent-kafka helpers for integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True})


def tail_consumer(bootstrap: str, topic: str) -> Consumer:
    """A consumer positioned at the current end of every partition of `topic`."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    md = c.list_topics(topic, timeout=10)
    parts = []
    for p in md.topics[topic].partitions:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        parts.append(TopicPartition(topic, p, high))
    c.assign(parts)
    return c


def wait_for(consumer: Consumer, match: Callable[[bytes | None, bytes | None], bool], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        if match(msg.key(), msg.value()):
            return msg
    return None
