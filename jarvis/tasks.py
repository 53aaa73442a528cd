"""Agent tasks: the record, its Avro form, and the pure routing and retry rules.

Routing by capability (see streams/agent.py for the moving parts): every agent worker belongs to the
*pool* named by its sorted capability set; each pool has its own topic and consumer group. A router
stage (a consumer group on `jarvis.tasks`, run inside every agent worker) sends each task to one
live pool whose capabilities include all the task needs; within the pool the consumer group spreads
the load. So a task reaches only capable workers, and no task is offered to two pools.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from jarvis import topics
from jarvis.codec import decode, encode
from jarvis.errors import JarvisError

TASK_PREFIX = "task"
# The lifecycle states a task is final in, for whoever waits on it (`jarvis task get --wait`, the demo,
# the benchmarks). The workflow in pipelines/default.yaml defines the transitions; this, the outcome.
TERMINAL = frozenset({"succeeded", "dead", "timed-out"})


class TaskError(JarvisError, ValueError):
    """A task that cannot be built or routed; the message says why."""


@dataclass(slots=True)
class Task:
    task_id: str
    handler: str
    capabilities: list[str]
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    deadline_ms: int | None = None
    pipeline: str = "platform"
    attempt: int = 0
    max_attempts: int = 3
    submitted_hlc: int = 0
    not_before_ms: int | None = None
    backoff_ms: int = 500
    region: str = ""

    @property
    def object_id(self) -> str:
        """The task's lifecycle: a Workflow CRDT object, queryable in every region."""
        return f"{TASK_PREFIX}:{self.task_id}"

    def expired(self, now_ms: int | None = None) -> bool:
        return self.deadline_ms is not None and (now_ms or int(time.time() * 1000)) > self.deadline_ms

    def next_attempt(self, now_ms: int) -> Task:
        return replace(self, attempt=self.attempt + 1, not_before_ms=now_ms + retry_delay_ms(self))


def retry_delay_ms(task: Task) -> int:
    """Exponential backoff: backoff, 2x, 4x ... capped at one minute."""
    return min(60_000, task.backoff_ms * (2**task.attempt))


def encode_task(task: Task) -> bytes:
    return encode(
        "Task",
        {
            "task_id": task.task_id,
            "capabilities": sorted(task.capabilities),
            "payload_json": orjson.dumps(task.payload).decode(),
            "priority": task.priority,
            "deadline_ms": task.deadline_ms,
            "pipeline": task.pipeline,
            "attempt": task.attempt,
            "max_attempts": task.max_attempts,
            "submitted_hlc": task.submitted_hlc,
            "handler": task.handler,
            "not_before_ms": task.not_before_ms,
            "backoff_ms": task.backoff_ms,
            "region": task.region,
        },
    )


def decode_task(data: bytes) -> Task:
    _, r = decode(data, "Task")
    try:
        payload = orjson.loads(r["payload_json"])
    except orjson.JSONDecodeError as e:
        raise TaskError(f"task {r.get('task_id')!r}: payload is not JSON: {e}") from None
    return Task(
        r["task_id"], r.get("handler", "noop"), list(r["capabilities"]), payload, r["priority"],
        r["deadline_ms"], r["pipeline"], r["attempt"], r["max_attempts"], r["submitted_hlc"],
        r.get("not_before_ms"), r.get("backoff_ms", 500), r.get("region", ""),
    )  # fmt: skip


def pool_name(capabilities: set[str] | list[str]) -> str:
    caps = sorted(set(capabilities))
    if not caps:
        raise TaskError("a worker needs at least one capability")
    for c in caps:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", c):
            raise TaskError(f"capability {c!r}: use lower-case letters, digits, '-' and '_'")
    return "+".join(caps)


def pool_topic(pool: str) -> str:
    # Kafka topic names allow [a-zA-Z0-9._-]: '+' becomes '.'; long sets are hashed to stay short.
    name = pool.replace("+", ".")
    if len(name) > 150:
        name = hashlib.sha256(pool.encode()).hexdigest()[:32]
    return topics.TASK_POOL_PREFIX + name


def eligible_pools(needs: list[str], pools: set[str]) -> list[str]:
    """Pools whose capabilities include every capability the task needs, in a stable order."""
    need = set(needs)
    return sorted(p for p in pools if need <= set(p.split("+")))


def choose_pool(task_id: str, needs: list[str], pools: set[str]) -> str | None:
    """One eligible pool, picked by the task id's hash so load spreads across equally able pools."""
    options = eligible_pools(needs, pools)
    if not options:
        return None
    h = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big")
    return options[h % len(options)]
