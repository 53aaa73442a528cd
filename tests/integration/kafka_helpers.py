"""Small confluent-kafka helpers for integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer

from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer  # noqa: F401 - re-exported for tests


def producer(bootstrap: str) -> Producer:
    return Producer({**client_conf(bootstrap), "linger.ms": 0, "enable.idempotence": True})


def wait_for(consumer: Consumer, match: Callable[[bytes | None, bytes | None], bool], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        if match(msg.key(), msg.value()):
            return msg
    return None
