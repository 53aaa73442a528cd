"""confluent-kafka plumbing shared by the SDK, the CLI, the demo, benchmarks and tests."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_clients import ADMIN, client_conf
from jarvis.config import Settings


def tail_consumer(
    bootstrap: str, topic: str, *, principal: str = ADMIN, settings: Settings | None = None, **conf: object
) -> Consumer:
    """A throw-away consumer (no group commits) positioned at the current end of every partition;
    the operator's (`admin`) unless told otherwise."""
    c = Consumer(
        {
            **client_conf(bootstrap, principal, settings),
            "group.id": f"tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            **conf,
        }
    )
    parts = []
    for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        parts.append(TopicPartition(topic, p, high))
    c.assign(parts)
    return c
