"""The topic table: every pipeline topic defined once, with the configs the stack always gave it."""

from __future__ import annotations

import pytest

from jarvis import topics
from jarvis.topics import PIPELINE_TOPICS, TopicSpec


def test_every_pipeline_topic_is_defined_once() -> None:
    names = [t.name for t in PIPELINE_TOPICS]
    assert len(set(names)) == len(names)
    assert set(names) == {
        topics.INGRESS, topics.OPS, topics.SEEN, topics.REJECTED, topics.TASKS, topics.TASKS_DEAD, topics.AGENTS,
        topics.IDEMPOTENCY, topics.DECIDED, topics.TRUST, topics.AUDIT,
    }  # fmt: skip
    assert all(topics.BY_NAME[n].name == n for n in names)


def test_configs_are_the_ones_the_stack_created() -> None:
    by = topics.BY_NAME
    assert dict(by[topics.INGRESS].configs) == {"compression.type": "producer"}
    assert dict(by[topics.OPS].configs) == {"compression.type": "producer"}
    assert dict(by[topics.REJECTED].configs) == {"retention.ms": "2592000000"}
    assert dict(by[topics.DECIDED].configs) == {"retention.ms": "86400000"}
    assert dict(by[topics.TASKS_DEAD].configs) == {"retention.ms": "2592000000"}
    assert dict(by[topics.AGENTS].configs) == {"cleanup.policy": "compact", "segment.ms": "60000"}
    assert dict(by[topics.TASKS].configs) == {}
    assert dict(by[topics.SEEN].configs) == {"retention.ms": "172800000", "segment.ms": "3600000"}
    assert dict(by[topics.TRUST].configs) == {
        "cleanup.policy": "compact", "retention.ms": "-1", "min.compaction.lag.ms": "0",
    }  # fmt: skip
    # Kafka takes config values as strings; an int would fail only at creation time.
    assert all(isinstance(v, str) for t in PIPELINE_TOPICS for v in t.configs.values())


def test_object_keyed_topics_take_the_deployments_partition_count() -> None:
    assert {t.partition_count(6) for t in PIPELINE_TOPICS} == {6}
    assert TopicSpec("x", partitions=1).partition_count(6) == 1


def test_pool_topics_are_specified_only_under_the_pool_prefix() -> None:
    assert topics.task_pool("jarvis.tasks.pool.a.noop").name == "jarvis.tasks.pool.a.noop"
    with pytest.raises(ValueError, match="not a task pool topic"):
        topics.task_pool("jarvis.tasks")


def test_a_region_reads_its_own_ops_and_every_other_regions_mirror() -> None:
    assert topics.ops_sources("eu", ("eu", "us", "ap")) == ["jarvis.ops", "us.jarvis.ops", "ap.jarvis.ops"]
    assert topics.ops_sources("eu", ("eu",)) == ["jarvis.ops"]
