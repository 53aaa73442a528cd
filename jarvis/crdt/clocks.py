"""Clocks: the hybrid logical clock that timestamps operations, and vector clocks for causality.

HLC timestamps are single ints, (wall-clock milliseconds << 16) | logical counter, so they compare
as plain integers, fit an Avro long, and stay within a millisecond of physical time while never
going backwards on one node (Kulkarni et al., 2014).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

LOGICAL_BITS = 16
LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def hlc_pack(ms: int, logical: int) -> int:
    return (ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)


def hlc_unpack(ts: int) -> tuple[int, int]:
    return ts >> LOGICAL_BITS, ts & LOGICAL_MASK


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HLC:
    __slots__ = ("node_id", "clock", "last")

    def __init__(self, node_id: str, clock: Callable[[], int] = wall_ms) -> None:
        self.node_id = node_id
        self.clock = clock
        self.last = 0

    def now(self) -> int:
        pt = self.clock() << LOGICAL_BITS
        self.last = pt if pt > self.last else self.last + 1
        return self.last

    def reserve(self, n: int) -> range:
        """`n` timestamps at once: the same as `n` calls of `now()` within one clock reading."""
        pt = self.clock() << LOGICAL_BITS
        first = pt if pt > self.last else self.last + 1
        if n > 0:
            self.last = first + n - 1
        return range(first, first + max(n, 0))

    def update(self, remote: int) -> int:
        """Advance past a timestamp received from another node; returns the new local timestamp."""
        pt = self.clock() << LOGICAL_BITS
        self.last = max(pt, self.last + 1, remote + 1)
        return self.last


Order = Literal["before", "after", "equal", "concurrent"]


class VectorClock:
    __slots__ = ("clocks",)

    def __init__(self, clocks: dict[str, int] | None = None) -> None:
        self.clocks: dict[str, int] = dict(clocks or {})

    def increment(self, node: str, n: int = 1) -> VectorClock:
        self.clocks[node] = self.clocks.get(node, 0) + n
        return VectorClock({node: self.clocks[node]})

    def merge(self, other: VectorClock) -> None:
        for node, c in other.clocks.items():
            if c > self.clocks.get(node, 0):
                self.clocks[node] = c

    def compare(self, other: VectorClock) -> Order:
        nodes = self.clocks.keys() | other.clocks.keys()
        less = any(self.clocks.get(n, 0) < other.clocks.get(n, 0) for n in nodes)
        more = any(self.clocks.get(n, 0) > other.clocks.get(n, 0) for n in nodes)
        if less and more:
            return "concurrent"
        if less:
            return "before"
        if more:
            return "after"
        return "equal"

    def happens_before(self, other: VectorClock) -> bool:
        return self.compare(other) == "before"

    def value(self) -> dict[str, int]:
        return dict(sorted(self.clocks.items()))

    def to_dict(self) -> dict[str, int]:
        return self.value()

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> VectorClock:
        return cls(d)

    def copy(self) -> VectorClock:
        return VectorClock(self.clocks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return {k: v for k, v in self.clocks.items() if v} == {k: v for k, v in other.clocks.items() if v}

    def __repr__(self) -> str:
        return f"VectorClock({self.value()})"
