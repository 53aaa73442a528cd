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
    RoleSpec("verifier", "streams.verifier", Entry.faust, (topics.INGRESS,), metrics_slot=1),
    RoleSpec("fold", "streams.fold", Entry.faust, (topics.OPS,), consumes_mirrors=True, serves_queries=True),
    RoleSpec("archiver", "streams.archiver", Entry.run, (topics.OPS,), consumes_mirrors=True, metrics_slot=2),
    RoleSpec(
        "agent",
        "streams.agent",
        Entry.run,
        (topics.TASKS, topics.TASK_POOL_PREFIX + "<pool>", topics.AGENTS),
        metrics_slot=3,
        options=frozenset({"capabilities", "concurrency", "name"}),
    ),
    # HTTP and MQTT in, signed batches to ingress out; its web port serves the ingest API.
    RoleSpec("ingest", "connectors.ingest.worker", Entry.run, (topics.IDEMPOTENCY,), metrics_slot=4),
    # The web console: reads the rejected and dead-letter topics without a group; its port is the page's.
    RoleSpec("console", "connectors.console.server", Entry.run, (topics.REJECTED, topics.TASKS_DEAD), metrics_slot=5),
)

BY_NAME: Mapping[str, RoleSpec] = MappingProxyType({r.name: r for r in ROLES})


def role(name: str) -> RoleSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no worker role {name!r}; roles: {', '.join(BY_NAME)}") from None


def web_port(settings: Settings, role_name: str, region: str, instance: int = 0) -> int:
    return role(role_name).web_port(settings, region, instance)
