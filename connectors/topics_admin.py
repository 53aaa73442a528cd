"""Create topics from their specs (jarvis/topics.py) with Kafka's AdminClient; the one place that does.

Existing topics are left as they are: a partition count cannot shrink, and changing a live topic's
configs is an operator's decision, so differences from the spec are reported, not applied.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors.kafka_clients import ADMIN, confluent_conf
from jarvis.config import Settings
from jarvis.config import settings as default_settings
from jarvis.errors import JarvisError
from jarvis.topics import TopicSpec


class TopicsError(JarvisError, RuntimeError):
    """A topic could not be created or inspected; the message names it and the cluster."""


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    # topic -> what differs from its spec, e.g. "partitions 3, defined 6"
    differences: dict[str, list[str]] = field(default_factory=dict)


def admin_client(bootstrap: str, settings: Settings | None = None, principal: str = ADMIN) -> AdminClient:
    """An AdminClient of the cluster at `bootstrap`, authenticated as `principal` (the settings'
    security: connectors/kafka_clients.py)."""
    s = settings or default_settings()
    # librdkafka logs each refused connection (20 a second); the error raised says it once.
    return AdminClient(confluent_conf(s, principal, bootstrap=bootstrap, **{"socket.timeout.ms": 10_000, "log_level": 2}))


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
    """What differs from each spec. A topic another process has just created may be unknown to the
    broker for a moment (its metadata follows the controller's): that is waited out, within timeout."""
    deadline = time.monotonic() + timeout
    out: dict[str, list[str]] = {}
    for t in specs:
        while True:
            try:
                diffs = _compare(admin, t, present.get(t.name), partitions, timeout)
                break
            except _NotKnownYet as e:
                if time.monotonic() > deadline:
                    raise TopicsError(f"{t.name} exists, but the broker still does not know it: {e}") from None
                time.sleep(0.2)
                # The whole listing, not the one topic: a metadata request naming a topic makes a
                # broker with auto.create.topics.enable create it, with none of the spec's configs.
                present = admin.list_topics(timeout=timeout).topics
        if diffs:
            out[t.name] = diffs
    return out


class _NotKnownYet(JarvisError):
    """A topic just created that the broker's metadata does not show yet (retried)."""


def _compare(admin: AdminClient, t: TopicSpec, md: Any, partitions: int, timeout: float) -> list[str]:
    if md is None or md.error is not None:
        raise _NotKnownYet("no metadata yet")
    out = []
    if len(md.partitions) != t.partition_count(partitions):
        out.append(f"partitions {len(md.partitions)}, defined {t.partition_count(partitions)}")
    if not t.configs:
        return out
    res = ConfigResource(ConfigResource.Type.TOPIC, t.name)
    try:
        entries = admin.describe_configs([res], request_timeout=timeout)[res].result()
    except Exception as e:  # noqa: BLE001 - librdkafka raises KafkaException with the cause
        if "UNKNOWN_TOPIC_OR_PART" in str(e):
            raise _NotKnownYet(str(e)) from None
        raise TopicsError(f"cannot read the configs of {t.name}: {e}") from e
    for key, value in t.configs.items():
        have = entries[key].value if key in entries else None
        if have != value:
            out.append(f"{key} {have}, defined {value}")
    return out
