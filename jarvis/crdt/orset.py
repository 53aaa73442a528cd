"""OR-Set (observed-remove, add-wins) with bounded metadata, in two forms that compose.

Replica form (classic, Bieniusa et al. / Almeida et al. delta-state OR-Set): every add creates a
unique dot (node, counter); an element is present while some dot of it survives. A remove drops the
dots this replica has *observed*, so a concurrent add elsewhere (an unseen dot) wins. The causal
context - a version vector plus a "cloud" of dots not yet contiguous - records every dot ever seen,
which is how a merge tells "removed" from "not yet received". An add replaces the element's older
dots and the version vector absorbs them, so 1,000,000 add/remove cycles on one element leave one
dot and one integer per node: metadata bounded by elements x nodes, not by history.

Log form (for operations folded from a totally ordered log, where the remover's observation is
given by time): `add(x, timestamp=T)` keeps only the newest add stamp (T, node) of x, and
`remove(x, before=T)` raises x's removal watermark to T. x is present iff its newest add is not
older than its watermark (add wins ties). Both are maxima, so the order of delivery cannot matter;
per element it costs one stamp and one watermark.

An element is present if either form says so; each form is a join-semilattice, so their product is.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.elements import element_key, element_value

Dot = tuple[str, int]


class ORSet:
    __slots__ = ("node_id", "entries", "vv", "cloud", "stamps", "marks")

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        # Tuples, not sets: an element almost always has one dot, and a 1-tuple is a fifth of a set.
        self.entries: dict[str, tuple[Dot, ...]] = {}
        self.vv: dict[str, int] = {}
        self.cloud: set[Dot] = set()
        self.stamps: dict[str, tuple[int, str]] = {}
        self.marks: dict[str, int] = {}

    # -- mutators ---------------------------------------------------------------------------------
    def add(self, x: Any, timestamp: int | None = None, node: str | None = None) -> ORSet:
        k = element_key(x)
        d = ORSet.__new__(ORSet)
        d.node_id, d.entries, d.vv, d.cloud, d.stamps, d.marks = self.node_id, {}, {}, set(), {}, {}
        if timestamp is not None:
            stamp = (timestamp, node or self.node_id)
            if timestamp >= self.marks.get(k, -1):
                cur = self.stamps.get(k)
                if cur is None or stamp > cur:
                    self.stamps[k] = stamp
            d.stamps[k] = stamp
            return d
        node = node or self.node_id
        c = self.vv.get(node, 0) + 1
        while (node, c) in self.cloud:
            c += 1
        dot = (node, c)
        old = self.entries.get(k)
        self.entries[k] = (dot,)
        if c == self.vv.get(node, 0) + 1:
            self.vv[node] = c  # our own next dot: contiguous, no cloud needed
        else:
            self._see({dot})
        d.entries[k] = (dot,)
        d.cloud = {*old, dot} if old else {dot}
        return d

    def remove(self, x: Any, before: int | None = None) -> ORSet:
        k = element_key(x)
        d = ORSet(self.node_id)
        if before is not None:
            if before > self.marks.get(k, -1):
                self.marks[k] = before
                stamp = self.stamps.get(k)
                if stamp is not None and stamp[0] < before:
                    del self.stamps[k]
            d.marks[k] = before
        old = self.entries.pop(k, None)
        if old:
            d.cloud = set(old)
        return d

    # -- queries ----------------------------------------------------------------------------------
    def contains(self, x: Any) -> bool:
        k = element_key(x)
        return k in self.entries or k in self.stamps

    def keys(self) -> set[str]:
        return self.entries.keys() | self.stamps.keys()

    def elements(self) -> list[Any]:
        return [element_value(k) for k in sorted(self.keys())]

    def value(self) -> list[Any]:
        return self.elements()

    def __len__(self) -> int:
        return len(self.keys())

    # -- merge ------------------------------------------------------------------------------------
    def _seen(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def _see(self, dots: set[Dot]) -> None:
        vv = self.vv
        for node, c in dots:
            if c == vv.get(node, 0) + 1:
                vv[node] = c
            elif c > vv.get(node, 0):
                self.cloud.add((node, c))
        if self.cloud:
            self._compact()

    def _compact(self) -> None:
        vv = self.vv
        for node, c in sorted(self.cloud):
            if c <= vv.get(node, 0):
                self.cloud.discard((node, c))
            elif c == vv.get(node, 0) + 1:
                vv[node] = c
                self.cloud.discard((node, c))

    def merge(self, other: ORSet) -> None:
        merged: dict[str, tuple[Dot, ...]] = {}
        for k in self.entries.keys() | other.entries.keys():
            mine = set(self.entries.get(k, ()))
            theirs = set(other.entries.get(k, ()))
            keep = (
                (mine & theirs)
                | {d for d in mine if not other._seen(d)}
                | {d for d in theirs if not self._seen(d)}
            )
            if keep:
                merged[k] = tuple(sorted(keep))
        self.entries = merged
        for node, c in other.vv.items():
            if c > self.vv.get(node, 0):
                self.vv[node] = c
        self.cloud |= other.cloud
        self._compact()
        for k, t in other.marks.items():
            if t > self.marks.get(k, -1):
                self.marks[k] = t
        for k, s in other.stamps.items():
            cur = self.stamps.get(k)
            if cur is None or s > cur:
                self.stamps[k] = s
        for k in [k for k, s in self.stamps.items() if s[0] < self.marks.get(k, -1)]:
            del self.stamps[k]

    def copy(self) -> ORSet:
        c = ORSet(self.node_id)
        c.entries = dict(self.entries)
        c.vv = dict(self.vv)
        c.cloud = set(self.cloud)
        c.stamps = dict(self.stamps)
        c.marks = dict(self.marks)
        return c

    def metadata_size(self) -> int:
        """Entries of bookkeeping held: dots, context, stamps and watermarks."""
        return (
            sum(len(v) for v in self.entries.values())
            + len(self.vv)
            + len(self.cloud)
            + len(self.stamps)
            + len(self.marks)
        )

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": {k: sorted([list(d) for d in v]) for k, v in sorted(self.entries.items())},
            "vv": dict(sorted(self.vv.items())),
            "cloud": sorted([list(d) for d in self.cloud]),
            "stamps": {k: list(v) for k, v in sorted(self.stamps.items())},
            "marks": dict(sorted(self.marks.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> ORSet:
        s = cls(node_id)
        s.entries = {k: tuple(sorted((n, c) for n, c in v)) for k, v in d["entries"].items()}
        s.vv = dict(d["vv"])
        s.cloud = {(n, c) for n, c in d["cloud"]}
        s.stamps = {k: (v[0], v[1]) for k, v in d.get("stamps", {}).items()}
        s.marks = dict(d.get("marks", {}))
        return s

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        return (
            self.entries == other.entries
            and {k: v for k, v in self.vv.items() if v} == {k: v for k, v in other.vv.items() if v}
            and self.cloud == other.cloud
            and self.stamps == other.stamps
            and self.marks == other.marks
        )

    def __repr__(self) -> str:
        return f"ORSet({self.elements()})"
