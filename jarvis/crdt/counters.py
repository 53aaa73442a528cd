"""G-Counter and PN-Counter: one monotonic total per node; merge takes the per-node maximum.

The delta of an increment is the node's new total alone, so merging deltas in any order, any
number of times, gives the same counter. Metadata is one integer per node that ever wrote (in the
pipeline: per origin region), whatever the traffic.
"""

from __future__ import annotations

from typing import Any


class GCounter:
    __slots__ = ("node_id", "counts")

    def __init__(self, node_id: str = "", counts: dict[str, int] | None = None) -> None:
        self.node_id = node_id
        self.counts: dict[str, int] = counts if counts is not None else {}

    def increment(self, n: int = 1, node: str | None = None) -> GCounter:
        if n < 0:
            raise ValueError("a G-Counter only grows: use a PN-Counter to decrement")
        node = node or self.node_id
        total = self.counts.get(node, 0) + n
        self.counts[node] = total
        d = GCounter.__new__(GCounter)
        d.node_id = node
        d.counts = {node: total}
        return d

    def value(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: GCounter) -> None:
        mine = self.counts
        for node, c in other.counts.items():
            if c > mine.get(node, 0):
                mine[node] = c

    def copy(self) -> GCounter:
        return GCounter(self.node_id, dict(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items()))}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> GCounter:
        return cls(node_id, dict(d["counts"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCounter):
            return NotImplemented
        return {k: v for k, v in self.counts.items() if v} == {k: v for k, v in other.counts.items() if v}

    def __repr__(self) -> str:
        return f"GCounter({self.value()})"


class PNCounter:
    __slots__ = ("node_id", "p", "n")

    def __init__(
        self, node_id: str = "", p: dict[str, int] | None = None, n: dict[str, int] | None = None
    ) -> None:
        self.node_id = node_id
        self.p: dict[str, int] = p if p is not None else {}
        self.n: dict[str, int] = n if n is not None else {}

    def increment(self, n: int = 1, node: str | None = None) -> PNCounter:
        if n < 0:
            return self.decrement(-n, node)
        node = node or self.node_id
        total = self.p.get(node, 0) + n
        self.p[node] = total
        d = PNCounter.__new__(PNCounter)
        d.node_id = node
        d.p = {node: total}
        d.n = {}
        return d

    def decrement(self, n: int = 1, node: str | None = None) -> PNCounter:
        if n < 0:
            return self.increment(-n, node)
        node = node or self.node_id
        total = self.n.get(node, 0) + n
        self.n[node] = total
        d = PNCounter.__new__(PNCounter)
        d.node_id = node
        d.p = {}
        d.n = {node: total}
        return d

    def value(self) -> int:
        return sum(self.p.values()) - sum(self.n.values())

    def merge(self, other: PNCounter) -> None:
        for mine, theirs in ((self.p, other.p), (self.n, other.n)):
            for node, c in theirs.items():
                if c > mine.get(node, 0):
                    mine[node] = c

    def copy(self) -> PNCounter:
        return PNCounter(self.node_id, dict(self.p), dict(self.n))

    def to_dict(self) -> dict[str, Any]:
        return {"p": dict(sorted(self.p.items())), "n": dict(sorted(self.n.items()))}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> PNCounter:
        return cls(node_id, dict(d["p"]), dict(d["n"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PNCounter):
            return NotImplemented

        def nz(x: dict[str, int]) -> dict[str, int]:
            return {k: v for k, v in x.items() if v}

        return nz(self.p) == nz(other.p) and nz(self.n) == nz(other.n)

    def __repr__(self) -> str:
        return f"PNCounter({self.value()})"
