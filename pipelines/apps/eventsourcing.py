"""CRDT event sourcing: append an aggregate's events from any region, read them back in order.

CRDTs (pipeline `eventsourcing`):
  events:<aggregate>     G-Set  every event, as an element {version, type, data, writer}. Events are
                                immutable and never removed, so a grow-only set loses nothing and
                                merges in any order; a redelivered event is the same element.
  snapshots:<aggregate>  LWW    the latest snapshot {version, state}: a later snapshot wins.

Versions without coordination. A dense counter (1, 2, 3...) would need a leader or a consensus round
per append across regions. A version here is the writer's hybrid logical clock stamp, zero-padded,
then the writer's node id, then a random tiebreak: `<hlc:020d>.<node>.<rand>`. Unique (a node's HLC
never repeats in a process; the tiebreak covers a restart onto a clock that went back), and ordered:
by HLC, so each writer's events in its append order, and causally (`get_events_for_aggregate`
advances the reader's clock past every version it saw, so an event appended after reading another
sorts after it). Concurrent events from two regions get an arbitrary but identical order
everywhere. The position of an event in the list can shift while a concurrent event from another
region is still in flight; its version never changes, so `from_version` is a version, not a position.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, read_value


def events_id(aggregate_id: str) -> str:
    return f"events:{aggregate_id}"


def snapshot_id(aggregate_id: str) -> str:
    return f"snapshots:{aggregate_id}"


def make_version(hlc: int, node: str, tiebreak: str) -> str:
    return f"{hlc:020d}.{node}.{tiebreak}"


def version_hlc(version: str) -> int:
    return int(version.split(".", 1)[0])


@dataclass(frozen=True)
class Event:
    version: str
    event_type: str
    data: dict[str, Any]
    writer: str

    def record(self) -> dict[str, Any]:
        return {"version": self.version, "type": self.event_type, "data": self.data, "writer": self.writer}

    @classmethod
    def of(cls, r: dict[str, Any]) -> Event:
        return cls(r["version"], r["type"], r["data"], r["writer"])


def in_order(
    records: list[dict[str, Any]], from_version: str | None = None, *, after: bool = False
) -> list[Event]:
    """The events in version order, from `from_version` on (inclusive; `after`: exclusive)."""
    events = sorted((Event.of(r) for r in records), key=lambda e: e.version)
    if from_version is None:
        return events
    return [e for e in events if (e.version > from_version if after else e.version >= from_version)]


class EventStore:
    """The event store of one region: appends through an SDK client, reads from its query API."""

    def __init__(self, client: Client, *, sync: bool = True) -> None:
        self.client = client
        self.sync = sync  # flush each append before returning (durable in Kafka); False: batch

    def append_event(self, aggregate_id: str, event_type: str, event_data: dict[str, Any]) -> Event:
        name("aggregate_id", aggregate_id)
        name("event_type", event_type)
        if not isinstance(event_data, dict):
            raise AppError(f"event_data must be an object, got {type(event_data).__name__}")
        c = self.client
        ev = Event(
            make_version(c.hlc.now(), c.node_id, secrets.token_hex(4)), event_type, event_data, c.node_id
        )
        c.gset(events_id(aggregate_id)).add(ev.record())
        if self.sync:
            c.flush()
        return ev

    def flush(self) -> None:
        self.client.flush()

    def get_events_for_aggregate(self, aggregate_id: str, from_version: str | None = None) -> list[Event]:
        events = in_order(
            read_value(self.client, events_id(name("aggregate_id", aggregate_id)), []), from_version
        )
        if events:
            self.client.hlc.update(version_hlc(events[-1].version))  # later appends sort after these
        return events

    def save_snapshot(self, aggregate_id: str, version: str, state: Any) -> None:
        self.client.register(snapshot_id(name("aggregate_id", aggregate_id))).write(
            {"version": version, "state": state}
        )
        self.client.flush()

    def load(
        self, aggregate_id: str, apply: Callable[[Any, Event], Any], initial: Any = None
    ) -> tuple[Any, str | None]:
        """The aggregate's state: its snapshot (if any) with every later event applied in order."""
        snap = read_value(self.client, snapshot_id(name("aggregate_id", aggregate_id)))
        state, version = (snap["state"], snap["version"]) if snap else (initial, None)
        records = read_value(self.client, events_id(aggregate_id), [])
        for ev in in_order(records, version, after=True):
            state, version = apply(state, ev), ev.version
        return state, version
