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

Representation. Elements are jarvis.crdt.elements keys (a string element is itself: the set holds
the caller's string, no tagged copy). An element's dots are stored in one of three forms, all
meaning a set of dots; `_dots` reads any of them, `__eq__` and `to_dict` see only dots:
  - an int c: the one dot (node_id, c), this replica's own. A delta carries its dot this way.
  - a block, a list [base, k1, k2, ...] shared by up to BLOCK elements added one after another by
    this replica: the key at index i has the one dot (node_id, base + i - 1). The dict value is a
    reference to a shared list, so an own dot costs a list slot instead of an int object (8 bytes,
    not 32: an element costs its dict slot and little more).
  - a sorted tuple of (node, counter) dots: everything else (another node's dots, several dots).
Only the open block (`_open`) is ever appended to, and only while its dots stay consecutive and it
holds no key twice: a remove or re-add of one of its keys, an add off the fast path, or a merge
(which may move our counter) closes it. Closed blocks never change, so copies share them, and a
stale key left in a closed block is never read (a key's dot is read from the block its entry points
at, and a key occurs once in a block).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from types import MappingProxyType
from typing import Any, cast

from jarvis.crdt.elements import Key, from_wire, key, key_value, wire

Dot = tuple[str, int]
Dots = int | list[Any] | tuple[Dot, ...]  # see "Representation" above
# Keys per block. At 32 an own dot costs ~12 bytes (its list slot, plus the list's header, spare slots
# and base counter shared 32 ways), and reading one back scans at most 32 references.
BLOCK = 32

_by_wire = itemgetter(0)
_new = object.__new__

# A delta almost never has a version vector, stamps or watermarks, and is usually dropped at once:
# deltas share this read-only empty instead of allocating three dicts each. Reads see an empty dict;
# a write raises, so every mutator first calls _writable() (or, on the add fast path, checks vv).
_NONE = cast(dict[Any, Any], MappingProxyType({}))


def _seen(vv: dict[str, int], cloud: set[Dot], dot: Dot) -> bool:
    return dot[1] <= vv.get(dot[0], 0) or dot in cloud


class ORSet:
    __slots__ = ("node_id", "entries", "vv", "cloud", "stamps", "marks", "_open")

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        self.entries: dict[Key, Dots] = {}
        self.vv: dict[str, int] = {}
        self.cloud: set[Dot] = set()
        self.stamps: dict[Key, tuple[int, str]] = {}
        self.marks: dict[Key, int] = {}
        self._open: list[Any] | None = None

    def _delta(self) -> ORSet:
        """An empty OR-Set of this replica, for a mutator to fill in as its delta."""
        d = _new(ORSet)
        d.node_id = self.node_id
        d.entries = {}
        d.vv = _NONE
        d.cloud = set()
        d.stamps = _NONE
        d.marks = _NONE
        d._open = None
        return d

    def _writable(self) -> None:
        if self.vv is _NONE:
            self.vv = {}
        if self.stamps is _NONE:
            self.stamps = {}
        if self.marks is _NONE:
            self.marks = {}

    def _dots(self, k: Key, v: Dots) -> tuple[Dot, ...]:
        t = type(v)
        if t is int:
            return ((self.node_id, v),)
        if t is list:
            return ((self.node_id, v[0] + v.index(k, 1) - 1),)
        return v

    def _pack(self, dots: Iterable[Dot]) -> Dots:
        ds = tuple(sorted(dots))
        if len(ds) == 1 and ds[0][0] == self.node_id:
            return ds[0][1]
        return ds

    # -- mutators ---------------------------------------------------------------------------------
    def add(self, x: Any, timestamp: int | None = None, node: str | None = None) -> ORSet:
        k = x if type(x) is str else key(x)
        if timestamp is not None:
            return self._add_stamp(k, timestamp, node or self.node_id)
        me = self.node_id
        if node and node != me:
            return self._add_dot(k, node)
        vv = self.vv
        c = vv.get(me, 0) + 1
        if self.cloud and (me, c) in self.cloud:
            return self._add_dot(k, me)
        # The common case, kept inline: our own next dot, contiguous, so no cloud entry.
        if vv is _NONE:
            vv = self.vv = {}
        vv[me] = c
        entries = self.entries
        old = entries.get(k)
        b = self._open
        if b is None or old is b or len(b) > BLOCK:
            b = self._open = [c]
        b.append(k)
        entries[k] = b
        d = _new(ORSet)
        d.node_id = me
        d.entries = {k: c}
        d.vv = _NONE
        d.cloud = {(me, c)} if old is None else {*self._dots(k, old), (me, c)}
        d.stamps = _NONE
        d.marks = _NONE
        d._open = None
        return d

    def _add_stamp(self, k: Key, timestamp: int, node: str) -> ORSet:
        self._writable()
        stamp = (timestamp, node)
        if timestamp >= self.marks.get(k, -1):
            cur = self.stamps.get(k)
            if cur is None or stamp > cur:
                self.stamps[k] = stamp
        d = self._delta()
        d.stamps = {k: stamp}
        return d

    def _add_dot(self, k: Key, node: str) -> ORSet:
        """An add with a dot of any node (the general path: another node's, or ours past the cloud)."""
        self._writable()
        c = self.vv.get(node, 0) + 1
        while (node, c) in self.cloud:
            c += 1
        dot = (node, c)
        old = self.entries.get(k)
        self._open = None  # our counter may jump here: the open block's dots must stay consecutive
        v: Dots = c if node == self.node_id else (dot,)
        self.entries[k] = v
        if c == self.vv.get(node, 0) + 1:
            self.vv[node] = c
        else:
            self._see({dot})
        d = self._delta()
        d.entries[k] = v
        d.cloud = {*self._dots(k, old), dot} if old is not None else {dot}
        return d

    def remove(self, x: Any, before: int | None = None) -> ORSet:
        k = x if type(x) is str else key(x)
        d = self._delta()
        if before is not None:
            if before > self.marks.get(k, -1):
                self._writable()
                self.marks[k] = before
                stamp = self.stamps.get(k)
                if stamp is not None and stamp[0] < before:
                    del self.stamps[k]
            d.marks = {k: before}
        old = self.entries.pop(k, None)
        if old is not None:
            if old is self._open:
                self._open = None  # k stays in the block, stale: the block must not get k again
            d.cloud = set(self._dots(k, old))
        return d

    # -- queries ----------------------------------------------------------------------------------
    def contains(self, x: Any) -> bool:
        k = x if type(x) is str else key(x)
        return k in self.entries or k in self.stamps

    def _keys(self) -> set[Key]:
        return self.entries.keys() | self.stamps.keys()

    def keys(self) -> set[str]:
        """The present elements, in wire form."""
        return {wire(k) for k in self._keys()}

    def elements(self) -> list[Any]:
        return [key_value(k) for k in sorted(self._keys(), key=wire)]

    def value(self) -> list[Any]:
        return self.elements()

    def __len__(self) -> int:
        return len(self._keys())

    # -- merge ------------------------------------------------------------------------------------
    def _seen(self, dot: Dot) -> bool:
        return _seen(self.vv, self.cloud, dot)

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
        if other is self:
            return
        self._writable()
        me = self.node_id
        entries = self.entries
        vv, cloud, ovv, ocloud, oentries = self.vv, self.cloud, other.vv, other.cloud, other.entries
        self._open = None  # entries change under it; a later add of one of its keys must not reuse it
        # A dot of ours survives unless other has seen it and does not hold it. Other can have seen
        # only dots of the nodes in its context: with none of ours there, our entries stand as they are.
        known = ovv.keys() | {n for n, _ in ocloud} if ocloud else ovv.keys()
        if known:
            gone: list[Key] = []
            thinned: dict[Key, Dots] = {}
            for k, v in entries.items():
                if k in oentries:
                    continue
                if type(v) is tuple:
                    if any(n in known for n, _ in v):
                        keep = [d for d in v if not _seen(ovv, ocloud, d)]
                        if not keep:
                            gone.append(k)
                        elif len(keep) != len(v):
                            thinned[k] = self._pack(keep)
                elif me in known and _seen(ovv, ocloud, self._dots(k, v)[0]):
                    gone.append(k)
            for k in gone:
                del entries[k]
            entries.update(thinned)
        for k, v in oentries.items():
            theirs = set(other._dots(k, v))
            mv = entries.get(k)
            mine = set(self._dots(k, mv)) if mv is not None else set()
            keep = (
                (mine & theirs)
                | {d for d in mine if not _seen(ovv, ocloud, d)}
                | {d for d in theirs if not _seen(vv, cloud, d)}
            )
            if keep:
                if keep != mine:
                    entries[k] = self._pack(keep)
            elif mv is not None:
                del entries[k]
        for node, c in ovv.items():
            if c > vv.get(node, 0):
                vv[node] = c
        if ocloud:
            cloud |= ocloud
        if cloud:
            self._compact()
        marks, stamps = self.marks, self.stamps
        for k, t in other.marks.items():
            if t > marks.get(k, -1):
                marks[k] = t
        for k, s in other.stamps.items():
            cur = stamps.get(k)
            if cur is None or s > cur:
                stamps[k] = s
        if marks:
            for k in [k for k, s in stamps.items() if s[0] < marks.get(k, -1)]:
                del stamps[k]

    def copy(self) -> ORSet:
        c = self._delta()
        c.entries = dict(self.entries)  # closed blocks never change: shared, not copied
        c.vv = dict(self.vv)
        c.cloud = set(self.cloud)
        c.stamps = dict(self.stamps)
        c.marks = dict(self.marks)
        return c

    def metadata_size(self) -> int:
        """Entries of bookkeeping held: dots, context, stamps and watermarks."""
        return (
            sum(len(v) if type(v) is tuple else 1 for v in self.entries.values())
            + len(self.vv)
            + len(self.cloud)
            + len(self.stamps)
            + len(self.marks)
        )

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        entries = sorted(((wire(k), k, v) for k, v in self.entries.items()), key=_by_wire)
        return {
            "entries": {w: sorted([list(d) for d in self._dots(k, v)]) for w, k, v in entries},
            "vv": dict(sorted(self.vv.items())),
            "cloud": sorted([list(d) for d in self.cloud]),
            "stamps": dict(sorted((wire(k), list(v)) for k, v in self.stamps.items())),
            "marks": dict(sorted((wire(k), t) for k, t in self.marks.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> ORSet:
        s = cls(node_id)
        s.entries = {from_wire(w): s._pack((n, c) for n, c in v) for w, v in d["entries"].items()}
        s.vv = dict(d["vv"])
        s.cloud = {(n, c) for n, c in d["cloud"]}
        s.stamps = {from_wire(w): (v[0], v[1]) for w, v in d.get("stamps", {}).items()}
        s.marks = {from_wire(w): t for w, t in d.get("marks", {}).items()}
        return s

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        if self.entries.keys() != other.entries.keys():
            return False
        oentries = other.entries
        for k, v in self.entries.items():
            if set(self._dots(k, v)) != set(other._dots(k, oentries[k])):
                return False
        return (
            {k: v for k, v in self.vv.items() if v} == {k: v for k, v in other.vv.items() if v}
            and self.cloud == other.cloud
            and self.stamps == other.stamps
            and self.marks == other.marks
        )

    def __repr__(self) -> str:
        return f"ORSet({self.elements()})"
