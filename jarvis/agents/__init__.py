"""Agent handler plugins: discovered by entry point (group `jarvis.agents`), each declaring the
capabilities a worker must offer to run it.

A handler is a class with `name`, `capabilities` and `run(ctx) -> JSON-able result`. It may run
twice for one task (a worker killed after the handler finished but before its offset was
committed), so `ctx.idempotency_key` is stable across attempts' re-deliveries: handlers with side
effects key them on it. The task's workflow records one result whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from jarvis.config import Settings
from jarvis.errors import JarvisError

GROUP = "jarvis.agents"


class HandlerError(JarvisError, RuntimeError):
    """The handler failed; `retryable=False` sends the task straight to the dead-letter topic."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(slots=True)
class TaskContext:
    task_id: str
    attempt: int
    payload: dict[str, Any]
    worker: str
    settings: Settings
    deadline_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Same for every delivery of one attempt: `<task id>/<attempt>`."""
        return f"{self.task_id}/{self.attempt}"


class Handler(Protocol):
    name: str
    capabilities: frozenset[str]

    def run(self, ctx: TaskContext) -> Any: ...


def discover() -> dict[str, Handler]:
    """Every installed handler by name (entry points of group `jarvis.agents`)."""
    found: dict[str, Handler] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        handler = cls()
        found[handler.name] = handler
    return found
