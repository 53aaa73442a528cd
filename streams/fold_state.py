"""What the fold agent and the query views share inside one fold worker process: the decoded
objects, the changes held back until the next settle, and the settle itself (streams/fold.py says
why acks wait for the changelog)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson

from connectors.redis_cache import RedisCache
from jarvis.materialize import ObjectState
from pipelines.loader import Pipelines, object_factory
from streams.faust_compat import put_with_changelog
from streams.readiness import PartitionReadiness
from streams.source_order import SourceOrder

LIVE_LIMIT = 200_000  # decoded objects kept beside the table's bytes; beyond, decode on demand
# Changelog and rejected records sent and not yet acknowledged by Kafka, at most, before the fold
# stops taking messages. Faust's producer buffer sends one record at a time and its own brake
# (wait_until_ebb) drains only 100 per event, so a flood of new objects (1,000 per message) once
# queued 1.2M records until the worker crashed.
INFLIGHT_LIMIT = 20_000


class FoldState:
    """What the agent and the query views share inside one worker process."""

    def __init__(
        self,
        region: str,
        table: Any,
        pipes: Pipelines,
        cache: RedisCache,
        positions: Any = None,
    ) -> None:
        self.region = region
        self.table = table
        # Source partition "topic/partition" -> next offset whose effect is not in the changelog yet.
        self.positions = positions
        self.pipes = pipes
        self.cache = cache
        self.live: dict[str, ObjectState] = {}
        self.dirty: dict[str, ObjectState] = {}  # changed since the last Redis write
        # Changed since the last table write: object id -> (changelog partition, state).
        self.unwritten: dict[str, tuple[int, ObjectState]] = {}
        self.held: list[Any] = []  # events processed, not acked until their effect is durable
        self.inflight: list[Any] = []  # changelog and rejected-record sends not yet acknowledged
        self.acker: Any = None  # the agent's manual-ack stream
        self.create = object_factory(pipes)
        self.read: dict[tuple[str, int], int] = {}  # last offset read per source partition (lag)
        self.order = SourceOrder()
        # Set when partitions are assigned: the table is being recovered from its changelog, so
        # every decoded object held from before may be older than what recovery brings back.
        self.recovering = False
        # Which partitions the query views may answer for (assigned here and recovered).
        self.readiness = PartitionReadiness()

    def load(self, object_id: str) -> ObjectState | None:
        """The fold's own read: decoded objects are kept, the fold being their only writer."""
        st = self.live.get(object_id)
        if st is not None:
            return st
        held = self.unwritten.get(object_id)
        if held is not None:
            st = held[1]
        else:
            raw = self.table.get(object_id.encode())
            if raw is None:
                return None
            st = ObjectState.from_bytes(raw)
        self._remember(object_id, st)
        return st

    def peek(self, object_id: str) -> ObjectState | None:
        """A reader's view, never cached: a query may run while recovery is still filling the
        table, and a half-recovered object kept for the fold would have the fold build on it and
        lose every operation between that copy and the changelog's last value."""
        st = self.live.get(object_id)
        if st is not None and not self.recovering:
            return st
        held = self.unwritten.get(object_id)
        if held is not None:
            return held[1]
        raw = self.table.get(object_id.encode())
        return None if raw is None else ObjectState.from_bytes(raw)

    def start_batch(self) -> None:
        """Called by the fold before each record: the agent runs only once recovery is complete."""
        if self.recovering:
            self.live.clear()
            self.recovering = False

    def object_ids(self) -> set[str]:
        """Every object this worker holds: in the table, or changed and not written there yet."""
        ids = {k.decode() if isinstance(k, bytes) else k for k in self.table}
        ids.update(self.unwritten)
        return ids

    def take_dirty(self, limit: int) -> dict[str, ObjectState]:
        """Up to `limit` objects changed since their last Redis write, oldest first."""
        if len(self.dirty) <= limit:
            dirty, self.dirty = self.dirty, {}
            return dirty
        keys = list(itertools.islice(self.dirty, limit))
        return {k: self.dirty.pop(k) for k in keys}

    def changed(self, object_id: str, partition: int, st: ObjectState) -> None:
        self.unwritten[object_id] = (partition, st)
        self._remember(object_id, st)
        self.dirty[object_id] = st

    def write_unwritten(self) -> int:
        """Put every object changed since its last write into the table and its changelog.

        Done by hand rather than `table[key] = value` because it runs outside any agent's event; the
        changelog partition is the source partition, as Faust would pick inside the agent. The
        records go through Faust's send_soon buffer: sending them straight to the producer left its
        metadata without the changelog topic, which the table router reads (routed queries: 500).
        (streams/faust_compat.put_with_changelog)"""
        if not self.unwritten:
            return 0
        pending, self.unwritten = self.unwritten, {}
        for object_id, (partition, st) in pending.items():
            self.inflight.append(put_with_changelog(self.table, partition, object_id.encode(), st.to_bytes()))
        return len(pending)

    def write_positions(self, reached: dict[tuple[str, int], int]) -> None:
        """Record how far each source partition is folded, in the changelog beside the state.

        Called once Kafka has acknowledged the state records holding those effects, so a position
        record never claims an effect the changelog lacks. A worker that takes the partition over
        folds on from there (streams/source_order.py)."""
        if self.positions is None or not reached:
            return
        data = self.positions.data
        for (topic, partition), offset in reached.items():
            key, value = f"{topic}/{partition}".encode(), str(offset).encode()
            if data.get(key) != value:
                self.inflight.append(put_with_changelog(self.positions, partition, key, value))

    def position(self, tp: tuple[str, int]) -> int | None:
        """Next offset of a source partition whose effect is not in the changelog (None: unknown)."""
        if self.positions is None:
            return None
        raw = self.positions.get(f"{tp[0]}/{tp[1]}".encode())
        return None if raw is None else int(raw)

    async def settle(self) -> None:
        """Write held-back changes, wait until Kafka has them, then ack the messages they came from."""
        if not (self.held or self.unwritten or self.inflight):
            return
        events, self.held = self.held, []
        reached = dict(self.order.expected)  # every offset below these is folded into `unwritten`
        self.write_unwritten()
        await self._delivered()
        # Only once Kafka has every state record they claim: a position must never run ahead of the
        # state, or a worker taking the partition over would skip operations it does not hold.
        self.write_positions(reached)
        await self._delivered()
        for event in events:
            await self.acker.ack(event)

    async def _delivered(self) -> None:
        """Wait until Kafka has acknowledged every record sent so far."""
        sends, self.inflight = self.inflight, []
        if sends:
            await asyncio.gather(*sends)

    async def ebb(self, limit: int = INFLIGHT_LIMIT) -> None:
        """Wait until at most `limit` sent records are unacknowledged. The futures stay in
        `inflight`: settle() still needs them to know when its messages may be acked."""
        if len(self.inflight) > limit:
            await asyncio.gather(*self.inflight[: len(self.inflight) - limit // 2])

    def _remember(self, object_id: str, st: ObjectState) -> None:
        if len(self.live) >= LIVE_LIMIT:
            self.live.clear()
        self.live[object_id] = st

    def view_bytes(self, st: ObjectState) -> bytes:
        return orjson.dumps(st.view(self.region))
