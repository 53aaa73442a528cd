"""Refills Redis from the fold's own state: Redis is only a cache of what the fold holds.

A Redis that restarted (empty) or that missed writes while it was unreachable lacks objects that
nothing would write again until they change: listing missed every existing object and /watch sent
no initial state. So the fold writes every object of each partition it owns back, in chunks from
the cache timer (streams/fold.py), at most BUDGET_S of work per tick, so the fold folds on and the
query API answers meanwhile. A partition whose objects are all written gets a marker in Redis
(connectors/redis_cache.built_key); a partition without one (a fresh or restarted Redis) is rebuilt
by its owner, and listing answers 503 until every partition has its marker.

Writes of the rebuild and of changed objects are made by the same timer, one after the other, so a
view the rebuild read can never overwrite a newer one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jarvis.partitioning import partition_for
from streams.fold_state import FoldState

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0  # how often the markers are checked (finds a Redis restarted between writes)
RETRY_DOWN_S = 1.0  # how often an unreachable Redis is tried again
BUDGET_S = 0.05  # rebuild work per cache tick at most (the tick comes every 0.1 s)


class CacheRebuild:
    def __init__(self, state: FoldState, partitions: int, batch: int) -> None:
        self.state = state
        self.cache = state.cache
        self.partitions = partitions
        self.batch = batch
        self.down = False  # Redis did not answer the last write or probe
        # Writes were lost while Redis was unreachable: every owned partition is rebuilt, whatever
        # its marker says (a Redis that stayed up keeps markers but missed those writes).
        self.everything = False
        self.targets: frozenset[int] = frozenset()
        self.plan: list[Any] = []  # object ids (bytes from the table, str from unwritten changes)
        self.pos = 0
        self.server: Any = None
        self.started = 0.0
        self.written = 0
        self.next_check = 0.0

    @property
    def running(self) -> bool:
        return bool(self.targets)

    def lost(self, now: float) -> None:
        """Redis did not take a write or a probe: start again once it answers."""
        self.down = True
        self.everything = True
        self._abort()
        self.next_check = now + RETRY_DOWN_S

    def reset(self) -> None:
        """The assignment changed: the partitions being rebuilt may not be ours any more."""
        self._abort()
        self.next_check = 0.0

    def _abort(self) -> None:
        self.targets, self.plan, self.pos = frozenset(), [], 0

    async def step(self, now: float) -> None:
        """One tick's share of the work; raises CacheUnavailable (the caller calls lost())."""
        ready = frozenset(self.state.readiness.ready)
        if not self.targets:
            if now < self.next_check:
                return
            self.next_check = now + CHECK_EVERY_S
            server = await self.cache.server_id()
            if self.down:
                log.warning("fold %s: Redis answers again", self.state.region)
                self.down = False
            wanted = set(ready) if self.everything else await self.cache.unbuilt(ready)
            if not wanted:
                return
            self._start(frozenset(wanted), server)
        await self._continue(ready)

    def _start(self, targets: frozenset[int], server: Any) -> None:
        state = self.state
        self.targets, self.server = targets, server
        self.plan = [*state.table, *state.unwritten]
        self.pos, self.written, self.started = 0, 0, time.monotonic()
        log.warning(
            "fold %s: rebuilding the Redis cache of partitions %s from the fold's state (%d objects held)",
            state.region, sorted(targets), len(self.plan),
        )  # fmt: skip

    async def _continue(self, ready: frozenset[int]) -> None:
        state, cache = self.state, self.cache
        keep = self.targets & ready
        # Only when the worker holds other partitions' objects too is each id's partition computed
        # (murmur2 in Python, a few µs an id): after a recovery the table holds only its own.
        check = keep != state.readiness.assigned
        deadline = time.monotonic() + BUDGET_S
        while self.pos < len(self.plan):
            chunk = self.plan[self.pos : self.pos + self.batch]
            self.pos += len(chunk)
            views: dict[str, bytes] = {}
            for key in chunk:
                oid = key.decode() if isinstance(key, bytes) else key
                if check and partition_for(oid, self.partitions) not in keep:
                    continue
                st = state.peek(oid)
                if st is not None:
                    views[oid] = state.view_bytes(st)
            await cache.put_many(views)
            self.written += len(views)
            if time.monotonic() > deadline:
                return
        if await cache.server_id() != self.server:
            # Redis restarted during the rebuild: what went to the old one is gone.
            self.everything = True
            self._abort()
            return
        await cache.mark_built(keep)
        log.warning(
            "fold %s: Redis cache of partitions %s rebuilt: %d objects in %.1f s",
            state.region, sorted(keep), self.written, time.monotonic() - self.started,
        )  # fmt: skip
        self.everything = False
        self._abort()

