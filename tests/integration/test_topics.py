"""ensure_topics against the real brokers: what it creates is what jarvis/topics.py defines, a second
run changes nothing, and an existing topic that differs is reported and left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from connectors.topics_admin import admin_client, ensure_topics
from jarvis import topics
from jarvis.topics import TopicSpec

pytestmark = pytest.mark.integration


def configs_of(admin: AdminClient, name: str) -> dict[str, str]:
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    return {k: e.value for k, e in admin.describe_configs([res], request_timeout=15)[res].result().items()}


def partitions_of(admin: AdminClient, name: str) -> int:
    return len(admin.list_topics(name, timeout=10).topics[name].partitions)


@pytest.fixture
def scratch(stack) -> Iterator[tuple[str, AdminClient, list[TopicSpec]]]:
    bootstrap = stack.settings.bootstrap("eu")
    admin = admin_client(bootstrap)
    run = uuid.uuid4().hex[:8]
    specs = [
        TopicSpec(f"test.topics.{run}.compacted", configs={"cleanup.policy": "compact", "segment.ms": "60000"}),
        TopicSpec(f"test.topics.{run}.big", configs={"max.message.bytes": "2097152", "retention.ms": "3600000"}),
        TopicSpec(f"test.topics.{run}.fixed", partitions=2),
    ]
    yield bootstrap, admin, specs
    made = [t.name for t in specs if t.name in admin.list_topics(timeout=10).topics]
    for fut in admin.delete_topics(made, operation_timeout=30).values() if made else ():
        fut.result()


@pytest.mark.parametrize("region", ["eu", "us"])
def test_the_stack_created_every_pipeline_topic_as_defined(stack, region: str) -> None:
    admin = admin_client(stack.settings.bootstrap(region))
    for t in topics.PIPELINE_TOPICS:
        assert partitions_of(admin, t.name) == stack.settings.partitions, t.name
        have = configs_of(admin, t.name)
        assert {k: have[k] for k in t.configs} == dict(t.configs), t.name
    again = ensure_topics(admin, topics.PIPELINE_TOPICS, stack.settings.partitions)
    assert again.created == [] and again.differences == {}
    assert sorted(again.existing) == sorted(t.name for t in topics.PIPELINE_TOPICS)


def test_ensure_twice_creates_once_with_the_defined_configs(scratch) -> None:
    _, admin, specs = scratch
    first = ensure_topics(admin, specs, 3)
    assert sorted(first.created) == sorted(t.name for t in specs) and first.existing == []
    for t in specs:
        assert partitions_of(admin, t.name) == t.partition_count(3)
        have = configs_of(admin, t.name)
        assert {k: have[k] for k in t.configs} == dict(t.configs)
    second = ensure_topics(admin, specs, 3)
    assert second.created == [] and sorted(second.existing) == sorted(t.name for t in specs)
    assert second.differences == {}


def test_processes_racing_to_create_a_topic_all_succeed(scratch) -> None:
    bootstrap, _, specs = scratch
    with ThreadPoolExecutor(4) as pool:  # a client each, as separate agent workers starting at once have
        results = list(pool.map(lambda _: ensure_topics(bootstrap, specs, 3), range(4)))
    created = [name for r in results for name in r.created]
    assert sorted(created) == sorted(t.name for t in specs)  # each topic created by exactly one


def test_an_existing_topic_that_differs_is_reported_and_left_as_is(scratch) -> None:
    _, admin, specs = scratch
    compacted, big, _ = specs
    ensure_topics(admin, [TopicSpec(compacted.name), TopicSpec(big.name, configs={"retention.ms": "7200000"})], 1)
    result = ensure_topics(admin, [compacted, big], 3)
    assert result.created == []
    assert result.differences[compacted.name][:2] == ["partitions 1, defined 3", "cleanup.policy delete, defined compact"]
    assert result.differences[compacted.name][2].startswith("segment.ms ")
    assert "retention.ms 7200000, defined 3600000" in result.differences[big.name]
    assert configs_of(admin, compacted.name)["cleanup.policy"] == "delete"  # not changed behind anyone's back
    assert partitions_of(admin, compacted.name) == 1


def test_cli_ensure_reports_and_fails_loudly(stack) -> None:
    env = {**os.environ, "COLUMNS": "200"}  # Rich would wrap the table at 80 columns without a terminal
    ok = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "topics", "ensure", "--region", "eu"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    for t in topics.PIPELINE_TOPICS:
        assert t.name in ok.stdout
    assert ok.stdout.count("left as is") == len(topics.PIPELINE_TOPICS)
    down = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "topics", "ensure", "--region", "eu", "--bootstrap", "127.0.0.1:1",
         "--timeout", "2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert down.returncode == 1
    assert "cannot list topics" in down.stdout
