"""Create topics from their specs (jarvis/topics.py) with Kafka's AdminClient; the one place that does.

Existing topics are left as they are: a partition count cannot shrink, and changing a live topic's
configs is an operator's decision, so differences from the spec are reported, not applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from jarvis.topics import TopicSpec


class TopicsError(RuntimeError):
    """A topic could not be created or inspected; the message names it and the cluster."""


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # topic -> what differs from its spec, e.g. "partitions 3, defined 6"
    differences: dict[str, list[str]] = field(default_factory=dict)


def admin_client(bootstrap: str) -> AdminClient:
    # librdkafka logs each refused connection (20 a second); the error raised says it once.
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10_000, "log_level": 2})


def ensure_topics(
    admin: AdminClient | str,
    specs: Iterable[TopicSpec],
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> EnsureResult:
    """Create each spec's topic if missing; `partitions` is the count for specs that leave it open.

    Safe to run concurrently from several processes (several agent workers start at once): a topic
    another process created first counts as existing."""
    if isinstance(admin, str):
        admin = admin_client(admin)
    wanted = list(specs)
    try:
        present = admin.list_topics(timeout=timeout).topics
    except Exception as e:  # noqa: BLE001 - librdkafka raises KafkaException with the cause
        raise TopicsError(f"cannot list topics: {e}") from e
    result = EnsureResult()
    new = [
        NewTopic(
            t.name,
            num_partitions=t.partition_count(partitions),
            replication_factor=replication_factor,
            config=dict(t.configs),
        )
        for t in wanted
        if t.name not in present
    ]
    if new:
        for name, fut in admin.create_topics(new, request_timeout=timeout).items():
            try:
                fut.result()
                result.created.append(name)
            except Exception as e:  # noqa: BLE001 - the KafkaError code is in the message
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    raise TopicsError(f"could not create topic {name}: {e}") from e
                result.existing.append(name)
    result.existing += [t.name for t in wanted if t.name in present]
    old = [t for t in wanted if t.name in result.existing]
    result.differences = _differences(admin, old, present, partitions, timeout)
    return result


def _differences(
    admin: AdminClient, specs: list[TopicSpec], present: Mapping[str, Any], partitions: int, timeout: float
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in specs:
        md = present.get(t.name)
        if md is None:  # created by another process since we listed: ask for this one
            md = admin.list_topics(t.name, timeout=timeout).topics[t.name]
        have = len(md.partitions)
        if have != t.partition_count(partitions):
            out.setdefault(t.name, []).append(f"partitions {have}, defined {t.partition_count(partitions)}")
    with_configs = [t for t in specs if t.configs]
    if not with_configs:
        return out
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in with_configs]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    for t, res in zip(with_configs, resources, strict=True):
        try:
            entries = futures[res].result()
        except Exception as e:  # noqa: BLE001 - as above
            raise TopicsError(f"cannot read the configs of {t.name}: {e}") from e
        for key, value in t.configs.items():
            have_value = entries[key].value if key in entries else None
            if have_value != value:
                out.setdefault(t.name, []).append(f"{key} {have_value}, defined {value}")
    return out
