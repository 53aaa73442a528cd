"""Kafka topics: the pipeline's contract between roles, and the one table of how each is created.

Adding a topic is one entry in PIPELINE_TOPICS; `jarvis stack up`, `jarvis topics ensure`, the agent
worker and the benchmarks all create topics through connectors/topics_admin.py from these specs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

INGRESS = "jarvis.ops.ingress"  # signed batches from producers, before verification
OPS = "jarvis.ops"  # verified batches, stamped with dots; mirrored between regions
SEEN = "jarvis.ops.seen"  # batches accepted by this region's verifiers (re-send protection); mirrored
REJECTED = "jarvis.ops.rejected"  # every rejected operation or message, with its reasons
DECIDED = "jarvis.ops.decided"  # the origin fold's verdicts on bounded-counter decrements and transfers
TASKS = "jarvis.tasks"  # agent tasks as submitted, before routing
TASKS_DEAD = "jarvis.tasks.dead"  # tasks that failed every attempt, with their error
AGENTS = "jarvis.agents"  # compacted: live agent workers, their capabilities and pool
IDEMPOTENCY = "jarvis.ingest.idempotency"  # compacted: the ingest gateway's answers by Idempotency-Key
TRUST = "jarvis.trust"  # compacted: admin-signed grants and revocations of node keys; mirrored
AUDIT = "jarvis.audit"  # denied HTTP requests and admin changes (connectors/access_audit.py); archived
TASK_POOL_PREFIX = "jarvis.tasks.pool."  # routed tasks, one topic per worker capability set

# The largest record batch a broker takes (its message.max.bytes; jarvis/stack/kafka.py sets it).
# Producers keep a request a little under it, for the request's own framing.
BROKER_MESSAGE_MAX_BYTES = 8 * 1024 * 1024
PRODUCER_REQUEST_MAX_BYTES = BROKER_MESSAGE_MAX_BYTES - 350_000

# jarvis.ops.seen only has to cover the replay window (a day in the default pipelines): what is older
# fails the timestamp check anyway. A verifier reads the whole topic when it starts.
SEEN_RETENTION_MS = 2 * 24 * 3600 * 1000

# What MirrorMaker 2 copies into every other region (as <region>.<topic>).
MIRRORED: tuple[str, ...] = (OPS, SEEN, TRUST)

MIRRORED_OPS_PATTERN = r"^([A-Za-z0-9_-]+\.)?jarvis\.ops$"  # local and <region>.jarvis.ops

_30_DAYS_MS = str(30 * 24 * 3600 * 1000)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How one topic is created. `partitions=None` means the deployment's partition count
    (JARVIS_PARTITIONS): an object's partition is a function of its id and that count, so every topic
    keyed by object id, in every region, must have the same number."""

    name: str
    purpose: str = ""
    configs: Mapping[str, str] = field(default_factory=dict)
    partitions: int | None = None

    def partition_count(self, default: int) -> int:
        return self.partitions if self.partitions is not None else default


# Every topic a region's pipeline needs before its workers start. Mirrored copies (<region>.jarvis.ops)
# are MirrorMaker 2's to create; pool topics are created by the agent worker that serves the pool.
PIPELINE_TOPICS: tuple[TopicSpec, ...] = (
    # Producers send lz4 batches; "producer" keeps them as sent instead of recompressing on the broker.
    TopicSpec(INGRESS, "signed batches, before verification", {"compression.type": "producer"}),
    TopicSpec(OPS, "verified batches stamped with dots; mirrored", {"compression.type": "producer"}),
    TopicSpec(
        SEEN,
        "batches the verifiers accepted (re-send protection); mirrored",
        {"retention.ms": str(SEEN_RETENTION_MS), "segment.ms": str(3600 * 1000)},
    ),
    TopicSpec(REJECTED, "rejected operations and messages, with reasons", {"retention.ms": _30_DAYS_MS}),
    # Read by the SDK's verdicts a few seconds back at most (connectors/verdicts.py); a day is plenty.
    TopicSpec(
        DECIDED,
        "the origin fold's verdicts on bounded-counter decrements and transfers, by ingress position",
        {"retention.ms": str(24 * 3600 * 1000)},
    ),
    TopicSpec(TASKS, "agent tasks as submitted, before routing"),
    TopicSpec(TASKS_DEAD, "tasks that failed every attempt", {"retention.ms": _30_DAYS_MS}),
    # Compacted, short segments: a presence reader replays little beyond each worker's last heartbeat.
    TopicSpec(AGENTS, "live agent workers (heartbeats)", {"cleanup.policy": "compact", "segment.ms": "60000"}),
    # Compacted, and deleted after a day and a bit: an Idempotency-Key holds for 24 h.
    TopicSpec(
        IDEMPOTENCY,
        "the ingest gateway's answers by Idempotency-Key (24 h)",
        {"cleanup.policy": "compact,delete", "retention.ms": str(25 * 3600 * 1000), "segment.ms": str(3600 * 1000)},
    ),
    # Not mirrored: each region's archiver copies its own to the archive, where all regions meet.
    TopicSpec(AUDIT, "denied HTTP requests and admin changes (access audit)", {"retention.ms": _30_DAYS_MS}),
)

# The trust history is small (a record per admin action) and every verifier reads all of it;
# compaction folds only identical re-publications (the key is the record's digest), and
# nothing expires: a replay judges old operations by the grants and revocations of their time.
PIPELINE_TOPICS += (
    TopicSpec(
        TRUST,
        "admin-signed grants and revocations of node keys; mirrored",
        {"cleanup.policy": "compact", "retention.ms": "-1", "min.compaction.lag.ms": "0"},
    ),
)

BY_NAME: Mapping[str, TopicSpec] = MappingProxyType({t.name: t for t in PIPELINE_TOPICS})


def task_pool(pool_topic: str) -> TopicSpec:
    """The spec of one pool's topic (its name from jarvis.tasks.pool_topic)."""
    if not pool_topic.startswith(TASK_POOL_PREFIX):
        raise ValueError(f"{pool_topic!r} is not a task pool topic ({TASK_POOL_PREFIX}<pool>)")
    return TopicSpec(pool_topic, "routed tasks of one agent pool")


def mirrored(region: str, topic: str = OPS) -> str:
    """Name MirrorMaker 2's DefaultReplicationPolicy gives `topic` mirrored from `region`."""
    return f"{region}.{topic}"


def ops_sources(region: str, region_names: Iterable[str]) -> list[str]:
    """What a region folds and archives: its own jarvis.ops and every other region's mirrored copy."""
    return [OPS, *(mirrored(r) for r in region_names if r != region)]
