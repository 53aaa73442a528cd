"""confluent-kafka plumbing shared by the SDK, the CLI, the demo, benchmarks and tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

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


def records_to_end(
    c: Consumer, topic: str, ends: dict[int, int], todo: set[int], timeout: float = 60.0
) -> Iterator[Message]:
    """Every record of `topic`'s partitions in `todo` from offset 0 to their `ends`, through `c`
    (made with enable.partition.eof). A partition read to its end leaves `todo`; what is still in it
    when the generator ends was not read to its end within `timeout`."""
    c.assign([TopicPartition(topic, p, 0) for p in todo])
    deadline = time.monotonic() + timeout
    while todo and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                todo.discard(m.partition())
            continue
        yield m
        if m.offset() >= ends[m.partition()] - 1:
            todo.discard(m.partition())
