"""Worker roles: the one list that `jarvis worker ROLE`, `jarvis stack up` and the Faust app factory read.

Adding a role is one entry in ROLES plus its module; nothing else lists roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from jarvis import topics

if TYPE_CHECKING:  # the settings are passed in: the role table reads no configuration itself
    from jarvis.config import Settings

# Roles other than the fold serve /metrics on METRICS_BASE_PORT + region index + 20 * metrics_slot
# (+ 100 * instance); the fold serves its query API (and /metrics) on the region's query port.
METRICS_BASE_PORT = 9181
METRICS_SLOT_STRIDE = 20
INSTANCE_PORT_STRIDE = 100


class Entry(StrEnum):
    faust = "faust"  # module.build(settings, region, instance) returns a Faust app to run
    run = "run"  # module.run(settings, region, instance, **options) runs a plain consumer loop


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    """What one Kafka principal may do, beyond what its role `consumes`: jarvis/security/kafka_acls.py
    turns it into the brokers' ACLs. A name with a `<placeholder>` (jarvis.tasks.pool.<pool>) or ending
    in `*` stands for every topic or group id with that prefix."""

    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()  # read with or without a consumer group
    reads_mirrors: tuple[str, ...] = ()  # every other region's mirrored copy of these is read too
    creates: tuple[str, ...] = ()  # topics it creates (and inspects) through the admin API
    groups: tuple[str, ...] = ()  # consumer group id prefixes it joins or commits in
    mirrors: bool = False  # MirrorMaker 2: writes every <region>.* copy and its own internal topics


# The consumers every SDK Client opens: connectors/verdicts.py reads what became of each batch.
_VERDICT_READS = (topics.OPS, topics.REJECTED, topics.DECIDED)
_CLIENT = KafkaAccess(writes=(topics.INGRESS, topics.TASKS), reads=_VERDICT_READS, groups=("verdicts-",))


# Whoever verifies signatures (the verifier, and replays in the fold's query API, the archiver's
# snapshots and the verify agent) follows every region's admin-signed trust records.
_TRUST = {"reads": (topics.TRUST,), "reads_mirrors": (topics.TRUST,), "groups": ("jarvis-trust-",)}


def fold_changelog(region: str) -> str:
    """Faust's name for the changelog of the fold's `objects` table (streams/fold.py)."""
    return f"jarvis-fold-{region}-objects-changelog"


def _with(base: KafkaAccess, **more: tuple[str, ...]) -> KafkaAccess:
    merged = {k: tuple(dict.fromkeys((*getattr(base, k), *v))) for k, v in more.items()}
    return KafkaAccess(**{**{f: getattr(base, f) for f in KafkaAccess.__slots__}, **merged})


@dataclass(frozen=True, slots=True)
class RoleSpec:
    name: str
    # A dotted module path, imported only when the role runs: `jarvis worker verifier` must not pay
    # for importing Faust, psycopg and every other role's dependencies, and `jarvis --help` none.
    module: str
    entry: Entry
    consumes: tuple[str, ...]  # topics (or name patterns) its consumer group reads
    consumes_mirrors: bool = False  # also every other region's mirrored copy of what it consumes
    instances: int = 1  # started per region by `jarvis stack up`
    serves_queries: bool = False  # its web port is the region's query port
    metrics_slot: int | None = None
    options: frozenset[str] = frozenset()  # the role's own `jarvis worker` options, passed as keywords
    # Its Kafka principal's rights beyond `consumes` (and, for a Faust role, its app's own topics and
    # group: faust_app_prefix). The role's name is the principal: one per role.
    kafka: KafkaAccess = KafkaAccess()

    def __post_init__(self) -> None:
        if self.serves_queries == (self.metrics_slot is not None):
            raise ValueError(f"role {self.name}: give it either serves_queries or a metrics_slot")

    def web_port(self, settings: Settings, region: str, instance: int = 0) -> int:
        r = settings.region_config(region)
        if self.serves_queries:
            base = r.query_port
        else:
            assert self.metrics_slot is not None  # __post_init__
            base = METRICS_BASE_PORT + r.index + METRICS_SLOT_STRIDE * self.metrics_slot
        return base + INSTANCE_PORT_STRIDE * instance


# In `jarvis stack up`'s start order. A role keeps its metrics slot (so its ports) for good: a new role
# takes the next free slot, and the ports anyone scrapes or tests against stay where they were.
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec(
        "verifier", "streams.verifier", Entry.faust, (topics.INGRESS,), metrics_slot=1,
        # The only writer of verified batches; its SeenFeed reads every region's accepted batches.
        kafka=KafkaAccess(
            writes=(topics.OPS, topics.SEEN, topics.REJECTED), reads=(topics.SEEN, topics.TRUST),
            reads_mirrors=(topics.SEEN, topics.TRUST), groups=("jarvis-seen-", "jarvis-trust-"),
        ),
    ),
    RoleSpec(
        "fold", "streams.fold", Entry.faust, (topics.OPS,), consumes_mirrors=True, serves_queries=True,
        # Verdicts on bounded-counter decrements, and what it emits through an SDK Client (ingress).
        # The query API it serves records denied requests in jarvis.audit.
        kafka=_with(_CLIENT, writes=(topics.REJECTED, topics.DECIDED, topics.AUDIT), **_TRUST),
    ),
    RoleSpec(
        "archiver", "streams.archiver", Entry.run, (topics.OPS,), consumes_mirrors=True, metrics_slot=2,
        # Also copies the access audit (connectors/archive/access_audit.py) on a group of its own.
        kafka=_with(
            KafkaAccess(reads=(topics.AUDIT,), groups=("jarvis-archiver-", "jarvis-audit-archiver-")), **_TRUST
        ),
    ),
    RoleSpec(
        "agent",
        "streams.agent",
        Entry.run,
        (topics.TASKS, topics.TASK_POOL_PREFIX + "<pool>", topics.AGENTS),
        metrics_slot=3,
        options=frozenset({"capabilities", "concurrency", "name"}),
        # Routes tasks to pools (creating a pool's topic), dead-letters, heartbeats, and writes
        # results through SDK Clients.
        kafka=_with(
            _CLIENT,
            writes=(topics.TASK_POOL_PREFIX + "<pool>", topics.TASKS_DEAD, topics.AGENTS),
            creates=(topics.TASK_POOL_PREFIX + "<pool>", topics.TASKS, topics.TASKS_DEAD),
            groups=("jarvis-presence-", "jarvis-task-router-", "jarvis-agent-", "jarvis-trust-"),
            reads=_TRUST["reads"], reads_mirrors=_TRUST["reads_mirrors"],
        ),
    ),
    # HTTP and MQTT in, signed batches to ingress out; its web port serves the ingest API.
    RoleSpec(
        "ingest", "connectors.ingest.worker", Entry.run, (topics.IDEMPOTENCY,), metrics_slot=4,
        # Malformed MQTT messages go to jarvis.ops.rejected; an operation's status scans ingress and
        # every region's fold changelog (where it is folded, read as `jarvis trace` reads it).
        kafka=_with(
            _CLIENT, writes=(topics.IDEMPOTENCY, topics.REJECTED, topics.AUDIT),
            reads=(topics.INGRESS, fold_changelog("<region>")),
            groups=("jarvis-ingest-", "jarvis-opstatus-", "jarvis-trace-"),
        ),
    ),
    # The web console: reads the rejected and dead-letter topics without a group; its port is the page's.
    RoleSpec(
        "console", "connectors.console.server", Entry.run, (topics.REJECTED, topics.TASKS_DEAD), metrics_slot=5,
        # Replication health (connectors/regions.py) compares every region's jarvis.ops ends; the
        # operation page (connectors/trace.py) reads ingress, the verdicts and the folds' changelogs
        # (a `<region>` placeholder is a prefix: every fold topic) for their timestamps only.
        kafka=KafkaAccess(
            writes=(topics.AUDIT,), reads=(topics.OPS, topics.INGRESS, fold_changelog("<region>")),
            reads_mirrors=(topics.OPS,), groups=("console-", "regions-", "jarvis-trace-"),
        ),
    ),
)

# Kafka principals that are not worker roles. `producer` is every SDK Client's by default; `admin`
# (a super user) is the operator's: the CLI, the stack itself, tests' raw clients.
ADMIN = "admin"
CLIENT_PRINCIPALS: Mapping[str, KafkaAccess] = MappingProxyType(
    {"producer": _CLIENT, "mirrormaker": KafkaAccess(reads=topics.MIRRORED, mirrors=True)}
)


def faust_app_id(role_name: str, region: str) -> str:
    """A Faust role's app id: its consumer group and the prefix of its changelog/repartition topics."""
    return f"{faust_app_prefix(role_name)}{region}"


def faust_app_prefix(role_name: str) -> str:
    return f"jarvis-{role_name}-"


BY_NAME: Mapping[str, RoleSpec] = MappingProxyType({r.name: r for r in ROLES})


def role(name: str) -> RoleSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no worker role {name!r}; roles: {', '.join(BY_NAME)}") from None


def web_port(settings: Settings, role_name: str, region: str, instance: int = 0) -> int:
    return role(role_name).web_port(settings, region, instance)
