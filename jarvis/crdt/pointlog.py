"""Points named (timestamp, node, seq), kept sorted by name in parallel typed arrays.

TimeSeries and Workflow each hold a grow-only set of named points and read it in name order. As a
dict from a name tuple to a payload tuple a point costs 230-370 bytes (two or three tuples, floats,
ints, a dict slot); here it costs one slot in each array column - timestamp, node, seq and value,
8 + 4 + 8 + 8 bytes at most - with each node name held once, in a per-log table. The payload part
that is usually absent (a point's metadata, a transition's guard arguments) lives in a side dict,
`extra`, keyed by name.

A point in name order (a node's own appends; a log folded in order) goes on the end in O(1). Any
other is placed by binary search on the timestamp column and inserted (a memmove per column); a name
already held is not added again, which is what makes re-delivery idempotent. Many points at once
are merged with one sort instead. A prefix can be dropped (eviction) in amortised O(1): it is
skipped by an offset, `lo`, and cut off once it outweighs the live rows.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

Name = tuple[Any, str, int]  # (timestamp, node, seq)
Row = tuple[Any, str, int, Any, Any]  # name, value, extra (None when absent)

_name = itemgetter(0, 1, 2)
SMALL = 32  # up to this many points are inserted one by one; more are merged with one sort


class PointLog:
    __slots__ = ("ts", "nix", "seq", "val", "nodes", "node_ix", "extra", "lo")

    def __init__(self, ts_code: str, val_code: str) -> None:
        self.ts = array(ts_code)
        self.nix = array("I")  # index into nodes
        self.seq = array("q")
        self.val = array(val_code)
        self.nodes: list[str] = []
        self.node_ix: dict[str, int] = {}
        self.extra: dict[Name, Any] = {}
        self.lo = 0  # rows below lo are dropped

    def __len__(self) -> int:
        return len(self.ts) - self.lo

    def _node(self, node: str) -> int:
        i = self.node_ix.get(node)
        if i is None:
            i = self.node_ix[node] = len(self.nodes)
            self.nodes.append(node)
        return i

    def name(self, row: int) -> Name:
        return (self.ts[row], self.nodes[self.nix[row]], self.seq[row])

    def find(self, t: Any, node: str, seq: int) -> int:
        """The first live row whose name is not below (t, node, seq)."""
        ts, nix, sq, nodes = self.ts, self.nix, self.seq, self.nodes
        i = bisect_left(ts, t, self.lo)
        n = len(ts)
        while i < n and ts[i] == t:
            other = nodes[nix[i]]
            if other > node or (other == node and sq[i] >= seq):
                break
            i += 1
        return i

    def add(self, t: Any, node: str, seq: int, value: Any, extra: Any = None) -> int:
        """Add the point unless its name is held. Returns its row, or -1 if the name was held."""
        ts = self.ts
        n = len(ts)
        if n > self.lo:
            last = ts[-1]
            if t < last or (t == last and (node, seq) <= (self.nodes[self.nix[-1]], self.seq[-1])):
                return self._insert(t, node, seq, value, extra)
        ts.append(t)
        i = self.node_ix.get(node)
        self.nix.append(self._node(node) if i is None else i)
        self.seq.append(seq)
        self.val.append(value)
        if extra is not None:
            self.extra[(t, node, seq)] = extra
        return n

    def _insert(self, t: Any, node: str, seq: int, value: Any, extra: Any) -> int:
        i = self.find(t, node, seq)
        ts = self.ts
        if i < len(ts) and ts[i] == t and self.seq[i] == seq and self.nodes[self.nix[i]] == node:
            return -1
        ts.insert(i, t)
        self.nix.insert(i, self._node(node))
        self.seq.insert(i, seq)
        self.val.insert(i, value)
        if extra is not None:
            self.extra[(t, node, seq)] = extra
        return i

    def update(self, rows: list[Row]) -> int:
        """Add many points (sorts `rows`). Returns the first row that may have changed."""
        end = len(self.ts)
        if not rows:
            return end
        rows.sort(key=_name)
        if len(rows) <= SMALL or end == self.lo or _name(rows[0]) > self.name(end - 1):
            first = end
            for r in rows:
                i = self.add(*r)
                if 0 <= i < first:
                    first = i
            return first
        merged = list(self.rows())
        merged.extend(rows)
        merged.sort(key=_name)
        self.clear()
        prev = None
        for r in merged:
            nm = _name(r)
            if nm != prev:
                self.add(*r)
                prev = nm
        return 0

    def clear(self) -> None:
        for col in (self.ts, self.nix, self.seq, self.val):
            del col[:]
        self.extra = {}
        self.lo = 0

    def drop(self, k: int) -> None:
        """Drop the first k live rows."""
        lo = self.lo
        if self.extra:
            for row in range(lo, lo + k):
                self.extra.pop(self.name(row), None)
        self.lo = lo = lo + k
        if lo > 64 and 2 * lo > len(self.ts):
            for col in (self.ts, self.nix, self.seq, self.val):
                del col[:lo]
            self.lo = 0

    def rows(self) -> Iterator[Row]:
        lo = self.lo
        nodes, extra = self.nodes, self.extra
        for t, i, s, v in zip(self.ts[lo:], self.nix[lo:], self.seq[lo:], self.val[lo:], strict=True):
            node = nodes[i]
            yield t, node, s, v, extra.get((t, node, s)) if extra else None

    def node_names(self) -> list[str]:
        nodes = self.nodes
        return [nodes[i] for i in self.nix[self.lo :]]

    def copy(self) -> PointLog:
        c = PointLog.__new__(PointLog)
        lo = self.lo
        c.ts, c.nix, c.seq, c.val = self.ts[lo:], self.nix[lo:], self.seq[lo:], self.val[lo:]
        c.nodes = list(self.nodes)
        c.node_ix = dict(self.node_ix)
        c.extra = dict(self.extra)
        c.lo = 0
        return c

    def same_points(self, other: PointLog) -> bool:
        """Same names and extras (values are the caller's to compare: their codes may differ)."""
        lo, olo = self.lo, other.lo
        return (
            len(self) == len(other)
            and self.ts[lo:] == other.ts[olo:]
            and self.seq[lo:] == other.seq[olo:]
            and (
                self.nix[lo:] == other.nix[olo:]
                if self.nodes == other.nodes
                else self.node_names() == other.node_names()
            )
            and self.extra == other.extra
        )

    def values(self) -> array[Any]:
        return self.val[self.lo :]
