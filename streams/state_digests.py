"""The fold worker's state digest (GET /v1/digest), kept as objects change (jarvis/state_digest.py).

The table's storage (Faust's in-memory store) is wrapped in an ObservedDict, so every write to it,
by the fold's settle, changelog recovery or Faust dropping a partition, marks the object's key
stale; nothing in the fold changes. A timer refreshes stale keys in slices of at most BUDGET_S, so
the digest follows the state with a few changed objects' work per tick, and a request refreshes
what is left (the objects changed since the last tick, and those held back from the table until the
next settle) in slices too, yielding to the event loop between them. What it answers is what the
full computation over every object would give at that moment (a property test holds the two equal).

An object's value is read as the query views read it (FoldState.peek): the fold's decoded object,
else the held-back change, else the table's bytes; only after a recovery are objects decoded from
bytes, once each, in the background.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jarvis.state_digest import VERSION, ObservedDict, StateDigest
from streams.fold_state import FoldState

BUDGET_S = 0.02  # refresh work per slice at most
SLICE = 256  # stale keys refreshed between two looks at the clock
EVERY_S = 0.25  # how often the timer refreshes


def observe_table(table: Any, digest: StateDigest) -> None:
    """Put an ObservedDict in place of the table's storage dict: a Faust table's `data` is its Store,
    whose `data` is the dict (memory://); a stand-in table's `data` may be the dict itself."""
    holder = table.data
    if isinstance(holder, dict):
        if not isinstance(holder, ObservedDict):
            table.data = ObservedDict(holder, digest)
    elif not isinstance(holder.data, ObservedDict):
        holder.data = ObservedDict(holder.data, digest)


class DigestKeeper:
    def __init__(self, state: FoldState, partitions: int) -> None:
        self.state = state
        self.digest = StateDigest(partitions)
        observe_table(state.table, self.digest)

    def _value_of(self, key: bytes) -> tuple[Any] | None:
        st = self.state.peek(key.decode())
        return None if st is None else (st.value.value(),)

    def _mark_held_back(self) -> None:
        # Changes not in the table until the next settle: the table's observer has not seen them.
        self.digest.stale.update(k.encode() for k in self.state.unwritten)

    def refresh_slice(self, budget_s: float = BUDGET_S) -> int:
        """Refresh stale keys for at most about `budget_s`; returns how many are left."""
        deadline = time.perf_counter() + budget_s
        left = len(self.digest.stale)
        while left and time.perf_counter() < deadline:
            left = self.digest.refresh(self._value_of, SLICE)
        return left

    async def tick(self) -> None:
        """The timer's share: one slice."""
        self.refresh_slice()

    async def current(self) -> dict[str, str]:
        """The digests now, every change refreshed first, in slices that let the loop run between."""
        self._mark_held_back()
        # Keys marked while this runs (the fold goes on between slices) are refreshed too, up to as
        # many again as there were to begin with: a request under a flood of changes still ends.
        todo = 2 * len(self.digest.stale)
        while todo > 0:
            before = len(self.digest.stale)
            left = self.refresh_slice()
            if not left:
                break
            todo -= before - left
            await asyncio.sleep(0)
        return self.digest.digests()

    def current_now(self) -> dict[str, str]:
        """`current` in one go, for callers outside the event loop (tests, tools)."""
        self._mark_held_back()
        self.digest.refresh(self._value_of)
        return self.digest.digests()

    def body(self, region: str, partitions: dict[str, str]) -> dict[str, Any]:
        return {"region": region, "objects": len(self.digest), "partitions": partitions, "digest": VERSION}
