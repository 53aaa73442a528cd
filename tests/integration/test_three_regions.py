"""Three regions in a full MirrorMaker 2 mesh, from the same region list: every region receives every
other region's operations exactly once, and nothing is mirrored twice (no `us.eu.jarvis.ops`)."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.stack.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a second, three-broker stack beside the main one

REGIONS = ("eu", "us", "ap")


@pytest.fixture(scope="module")
def three(settings, tmp_path_factory):
    # A second stack beside the main one: its own home and Kafka ports; PostgreSQL and Redis are shared.
    s3 = dataclasses.replace(
        settings, region_names=REGIONS, home=tmp_path_factory.mktemp("three-regions"), port_offset=1000
    )
    stack = Stack(s3)
    stack.up(workers=False)
    yield stack
    stack.down()  # everything under its own home; the shared PostgreSQL and Redis are the main stack's


def count_keys(s, bootstrap: str, topic: str, keys: set[bytes], settle_s: float = 8.0) -> dict[bytes, int]:
    # The three-region stack has its own home, so its own CA and passwords.
    c = Consumer({**client_conf(bootstrap, settings=s), "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    seen = dict.fromkeys(keys, 0)
    quiet_until = time.monotonic() + settle_s
    deadline = time.monotonic() + 90
    while time.monotonic() < min(quiet_until, deadline) or (
        0 in seen.values() and time.monotonic() < deadline
    ):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.key() in seen:
            seen[m.key()] += 1
            quiet_until = time.monotonic() + settle_s  # keep reading while records still arrive
    c.close()
    return seen


def test_full_mesh_without_loops(three) -> None:
    s = three.settings
    keys = {r: {f"{r}-{uuid.uuid4().hex}".encode() for _ in range(50)} for r in REGIONS}
    for r in REGIONS:
        p = Producer({**client_conf(s.bootstrap(r), settings=s), "acks": "all"})
        for k in keys[r]:
            p.produce(topics.OPS, key=k, value=b"marker")
        assert p.flush(10) == 0
    for dst in REGIONS:
        names = set(
            Consumer({**client_conf(s.bootstrap(dst), settings=s), "group.id": "x"}).list_topics(timeout=10).topics
        )
        mirrored = {n for n in names if n.endswith(topics.OPS) and n != topics.OPS}
        assert mirrored == {topics.mirrored(src) for src in REGIONS if src != dst}, (dst, mirrored)
        for src in REGIONS:
            if src == dst:
                continue
            seen = count_keys(s, s.bootstrap(dst), topics.mirrored(src), keys[src])
            assert set(seen.values()) == {1}, f"{src} -> {dst}: {sorted(set(seen.values()))} copies"
