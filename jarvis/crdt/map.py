"""Map: keys to nested CRDTs (counter, register, set, text), add-wins keys, remove-resets.

AntidoteDB's `map_rr`: a field is named by its key *and* its nested type, so two regions that use one
key with two types concurrently keep both (value() then shows them as "key@type"); a key is present
while its nested value is not empty ("bottom"); removing a key resets its nested value, which
removes exactly what the remover had observed: an update concurrent with the remove survives, with
only its own effect. Each field merges on its own, so two regions editing two fields of one record
(a patient record with one register per field) both keep their edit.

One causal context for the whole map (a version vector and a cloud of dots beyond it, as jarvis.crdt.
orset), and per nested type the state that makes "remove what was observed" exact:
  - register: the writes not overwritten by a write that observed them, each under its dot (a
    multi-value register); the read is the newest (timestamp, node, value). A remove drops the
    observed writes: a concurrent write survives. Bounded by the concurrency, not the history.
  - set: per element, its dots (an add-wins OR-Set); a remove drops the observed dots.
  - counter: per node, its increments and decrements as monotonic totals (a PN-Counter) and, beside
    them, a baseline per node: the totals the removes observed. The value is what lies above the
    baselines, so a reset removes exactly the observed increments (a node's increments to a key are
    totally ordered, and the remover saw a prefix of them). Two integers per node, kept after a
    remove: a late increment from before the remove must still find its baseline.
  - text: a Yrs document (jarvis.crdt.Text). A remove is the remover's deletion of every character
    it holds, a Yrs update: Yrs deletes only the items the deleter had, so a concurrent insertion
    survives. The document is kept after a remove: a late insertion needs its neighbours' tombstones.

A remove creates no dot: its delta is what it observed (the dots, the totals, the deletion). In the
pipeline (phase 2) a remove's arguments therefore carry that delta, made by the client from the
state it read (to_dict of `remove`'s return value), and the fold merges it; updates are folded with
`update(..., timestamp=hlc, node=origin, blind=True)` (a register write there supersedes only the
writes it outranks: its writer read nothing), the dot being the origin's next one: the same on every
region, since one object's operations of one origin arrive in log order.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.clocks import HLC
from jarvis.crdt.elements import Key, from_wire, key, key_value, wire
from jarvis.crdt.errors import MapError
from jarvis.crdt.resolvers import value_key
from jarvis.crdt.text import Text, decode_update
from jarvis.crdt.text import delta as text_delta

Dot = tuple[str, int]
Write = tuple[Any, int, str]  # value, timestamp, node
Field = tuple[str, str]  # (key, nested type)

NESTED_KINDS: dict[str, tuple[str, ...]] = {
    "counter": ("increment", "decrement"),
    "register": ("write",),
    "set": ("add", "remove"),
    "text": ("insert", "delete", "update"),
}


class _Ctx:
    """A causal context: every dot seen, as a version vector plus the dots beyond it."""

    __slots__ = ("vv", "cloud")

    def __init__(self) -> None:
        self.vv: dict[str, int] = {}
        self.cloud: set[Dot] = set()

    def seen(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def next(self, node: str) -> Dot:
        c = self.vv.get(node, 0) + 1
        while (node, c) in self.cloud:
            c += 1
        return (node, c)

    def add(self, dots: set[Dot]) -> None:
        if len(dots) == 1 and not self.cloud:  # the common case: a replica's own next dot
            ((n, c),) = dots
            seen = self.vv.get(n, 0)
            if c <= seen + 1:
                if c == seen + 1:
                    self.vv[n] = c
                return
        self.cloud |= dots
        self._compact()

    def merge(self, other: _Ctx) -> None:
        for n, c in other.vv.items():
            if c > self.vv.get(n, 0):
                self.vv[n] = c
        self.add(other.cloud)

    def _compact(self) -> None:
        vv = self.vv
        for n, c in sorted(self.cloud):
            if c <= vv.get(n, 0):
                self.cloud.discard((n, c))
            elif c == vv.get(n, 0) + 1:
                vv[n] = c
                self.cloud.discard((n, c))

    def copy(self) -> _Ctx:
        c = _Ctx()
        c.vv, c.cloud = dict(self.vv), set(self.cloud)
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"vv": dict(sorted(self.vv.items())), "cloud": sorted([list(d) for d in self.cloud])}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Ctx:
        c = cls()
        c.vv = dict(d["vv"])
        c.cloud = {(n, k) for n, k in d["cloud"]}
        return c

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Ctx):
            return NotImplemented
        return {k: v for k, v in self.vv.items() if v} == {k: v for k, v in other.vv.items() if v} and (
            self.cloud == other.cloud
        )


def _join(mine: set[Dot], theirs: set[Dot], mctx: _Ctx, tctx: _Ctx) -> set[Dot]:
    """The dots that survive a merge: held by both, or held by one and never seen by the other."""
    return (mine & theirs) | {d for d in mine if not tctx.seen(d)} | {d for d in theirs if not mctx.seen(d)}


class _Counter:
    __slots__ = ("p", "n", "bp", "bn")

    def __init__(self) -> None:
        self.p: dict[str, int] = {}
        self.n: dict[str, int] = {}
        self.bp: dict[str, int] = {}
        self.bn: dict[str, int] = {}

    def _parts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
        return self.p, self.n, self.bp, self.bn

    def value(self) -> int:
        return sum(c - self.bp.get(r, 0) for r, c in self.p.items()) - sum(
            c - self.bn.get(r, 0) for r, c in self.n.items()
        )

    def bottom(self) -> bool:
        return all(c <= self.bp.get(r, 0) for r, c in self.p.items()) and all(
            c <= self.bn.get(r, 0) for r, c in self.n.items()
        )

    def blank(self) -> bool:
        return not any(v for part in self._parts() for v in part.values())

    def apply(self, kind: str, args: dict[str, Any], node: str) -> _Counter:
        n = args.get("n", 1)
        if type(n) is not int or n < 0:
            raise MapError(f"a map counter's step must be a non-negative integer, got {n!r}")
        side = self.p if kind == "increment" else self.n
        side[node] = total = side.get(node, 0) + n
        d = _Counter()
        (d.p if kind == "increment" else d.n)[node] = total
        return d

    def reset(self) -> _Counter:
        self.bp.update(self.p)
        self.bn.update(self.n)
        d = _Counter()
        d.bp, d.bn = dict(self.p), dict(self.n)
        return d

    def join(self, other: _Counter, mctx: _Ctx, tctx: _Ctx) -> None:
        for mine, theirs in zip(self._parts(), other._parts(), strict=True):
            for r, c in theirs.items():
                if c > mine.get(r, 0):
                    mine[r] = c

    def copy(self) -> _Counter:
        c = _Counter()
        c.p, c.n, c.bp, c.bn = dict(self.p), dict(self.n), dict(self.bp), dict(self.bn)
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            k: dict(sorted(v.items())) for k, v in zip(("p", "n", "bp", "bn"), self._parts(), strict=True)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Counter:
        c = cls()
        c.p, c.n, c.bp, c.bn = dict(d["p"]), dict(d["n"]), dict(d["bp"]), dict(d["bn"])
        return c

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Counter):
            return NotImplemented
        return all(
            {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}
            for a, b in zip(self._parts(), other._parts(), strict=True)
        )


def _rank(w: Write, dot: Dot) -> tuple[Any, ...]:
    return (w[1], w[2], value_key(w[0]), dot)


class _Register:
    # (dot, write) pairs, almost always one: a tuple of them costs a third of a one-entry dict.
    __slots__ = ("ws",)

    def __init__(self) -> None:
        self.ws: tuple[tuple[Dot, Write], ...] = ()

    @property
    def writes(self) -> dict[Dot, Write]:
        return dict(self.ws)

    def value(self) -> Any:
        if not self.ws:
            return None
        if len(self.ws) == 1:
            return self.ws[0][1][0]
        return max((w for _, w in self.ws), key=lambda w: (w[1], w[2], value_key(w[0])))[0]

    def bottom(self) -> bool:
        return not self.ws

    blank = bottom

    def write(self, value: Any, ts: int, node: str, dot: Dot, blind: bool = False) -> tuple[_Register, set[Dot]]:
        """A write supersedes the writes this replica holds: its writer observed them. A `blind` write
        (the pipeline's: its writer read nothing, and every region folds it as it arrives) supersedes
        only the writes it outranks by (timestamp, node, value, dot), and one outranked by a write
        held here is seen (its dot covered) but kept out: superseding what the folding region held
        made the winner depend on the arrival order (two providers writing one field concurrently
        left eu and us with different values for good)."""
        new = (value, ts, node)
        if blind and any(_rank(w, d) > _rank(new, dot) for d, w in self.ws):
            return _Register(), {dot}
        old = {d for d, _ in self.ws}
        self.ws = ((dot, new),)
        d = _Register()
        d.ws = self.ws
        old.add(dot)
        return d, old

    def reset(self) -> tuple[_Register, set[Dot]]:
        old = {d for d, _ in self.ws}
        self.ws = ()
        return _Register(), old

    def join(self, other: _Register, mctx: _Ctx, tctx: _Ctx) -> None:
        mine, theirs = self.writes, other.writes
        keep = _join(set(mine), set(theirs), mctx, tctx)
        self.ws = tuple(sorted((d, mine.get(d) or theirs[d]) for d in keep))

    def copy(self) -> _Register:
        c = _Register()
        c.ws = self.ws  # immutable: shared
        return c

    def to_dict(self) -> dict[str, Any]:
        return {"writes": [[n, c, v, ts, w] for (n, c), (v, ts, w) in sorted(self.ws)]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Register:
        r = cls()
        r.ws = tuple(sorted(((n, c), (v, ts, w)) for n, c, v, ts, w in d["writes"]))
        return r

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Register) and self.writes == other.writes


class _Set:
    __slots__ = ("elems",)

    def __init__(self) -> None:
        self.elems: dict[Key, set[Dot]] = {}

    def value(self) -> list[Any]:
        return [key_value(k) for k in sorted(self.elems, key=wire)]

    def bottom(self) -> bool:
        return not self.elems

    blank = bottom

    def apply(self, kind: str, element: Any, dot: Dot | None) -> tuple[_Set, set[Dot]]:
        """`dot`: the add's new dot (a remove has none)."""
        k = key(element)
        old = self.elems.pop(k, set())
        d = _Set()
        if dot is not None:
            self.elems[k] = {dot}
            d.elems[k] = {dot}
            return d, old | {dot}
        return d, old

    def reset(self) -> tuple[_Set, set[Dot]]:
        old = set().union(*self.elems.values()) if self.elems else set()
        self.elems = {}
        return _Set(), old

    def join(self, other: _Set, mctx: _Ctx, tctx: _Ctx) -> None:
        out = {}
        for k in self.elems.keys() | other.elems.keys():
            keep = _join(self.elems.get(k, set()), other.elems.get(k, set()), mctx, tctx)
            if keep:
                out[k] = keep
        self.elems = out

    def copy(self) -> _Set:
        c = _Set()
        c.elems = {k: set(v) for k, v in self.elems.items()}
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "elements": {
                wire(k): sorted([list(d) for d in v])
                for k, v in sorted(self.elems.items(), key=lambda kv: wire(kv[0]))
            }
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Set:
        s = cls()
        s.elems = {from_wire(w): {(n, c) for n, c in v} for w, v in d["elements"].items()}
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Set) and self.elems == other.elems


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: Text | None = None) -> None:
        self.text = text if text is not None else Text()

    def value(self) -> str:
        return self.text.read() if self.text.doc is not None else ""

    def bottom(self) -> bool:
        return self.text.doc is None or len(self.text) == 0

    def apply(self, kind: str, args: dict[str, Any]) -> _Text:
        if kind == "insert":
            return _Text(self.text.insert(args.get("index"), args.get("s")))  # type: ignore[arg-type]
        if kind == "delete":
            return _Text(self.text.delete(args.get("index"), args.get("n", 1)))  # type: ignore[arg-type]
        update = args.get("update")
        if not isinstance(update, str | bytes):
            raise MapError("a map text update needs 'update': a base64 Yrs update")
        u = decode_update(update)
        self.text.apply_update(u)
        return _Text(text_delta(u))

    def reset(self) -> _Text:
        if self.bottom():
            return _Text(text_delta(b""))
        return _Text(self.text.delete(0, len(self.text)))

    def join(self, other: _Text, mctx: _Ctx, tctx: _Ctx) -> None:
        self.text.merge(other.text)

    def blank(self) -> bool:
        return self.text.blank()

    def copy(self) -> _Text:
        return _Text(self.text.copy())

    def to_dict(self) -> dict[str, Any]:
        return self.text.to_dict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Text:
        return cls(Text.from_dict(d))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Text) and self.text == other.text


Nested = _Counter | _Register | _Set | _Text
NESTED: dict[str, type] = {"counter": _Counter, "register": _Register, "set": _Set, "text": _Text}


def _check(nested_type: Any, nested_kind: Any) -> None:
    kinds = NESTED_KINDS.get(nested_type) if isinstance(nested_type, str) else None
    if kinds is None:
        raise MapError(f"unknown nested type {nested_type!r} in a map; known: {', '.join(NESTED_KINDS)}")
    if nested_kind not in kinds:
        raise MapError(f"a map's {nested_type} has no operation {nested_kind!r}; it has {', '.join(kinds)}")


class Map:
    __slots__ = ("node_id", "hlc", "ctx", "fields")

    def __init__(self, node_id: str = "", hlc: HLC | None = None) -> None:
        self.node_id = node_id
        self.hlc = hlc or HLC(node_id)
        self.ctx = _Ctx()
        self.fields: dict[Field, Nested] = {}

    def _delta(self) -> Map:
        d = Map.__new__(Map)
        d.node_id, d.hlc, d.ctx, d.fields = self.node_id, self.hlc, _Ctx(), {}
        return d

    # -- mutators ---------------------------------------------------------------------------------
    def update(
        self,
        k: str,
        nested_type: str,
        nested_kind: str,
        nested_args: dict[str, Any] | None = None,
        timestamp: int | None = None,
        node: str | None = None,
        blind: bool = False,
    ) -> Map:
        """Apply one operation of the nested CRDT at key `k`; returns the delta. `blind`: the writer
        observed nothing of this replica (the pipeline's operations), so a register write supersedes
        only the writes it outranks, the same in every region whatever the arrival order."""
        _check(nested_type, nested_kind)
        if not isinstance(k, str):
            raise MapError(f"map keys are strings, got {type(k).__name__}")
        args = nested_args or {}
        if not isinstance(args, dict):
            raise MapError(f"nested_args must be an object, got {type(args).__name__}")
        node = node or self.node_id
        f = (k, nested_type)
        cur = self.fields.get(f)
        if cur is None:
            cur = NESTED[nested_type]()
        d = self._delta()
        if isinstance(cur, _Counter):
            d.fields[f] = cur.apply(nested_kind, args, node)
        elif isinstance(cur, _Text):
            d.fields[f] = cur.apply(nested_kind, args)
        else:
            # A dot names what a later remove may observe: only a write and an add create one.
            dot = self.ctx.next(node) if nested_type == "register" or nested_kind == "add" else None
            if isinstance(cur, _Register):
                assert dot is not None
                ts = self.hlc.now() if timestamp is None else timestamp
                d.fields[f], covered = cur.write(args.get("value"), ts, node, dot, blind)
            else:
                if "element" not in args:
                    raise MapError("a map set operation needs 'element'")
                d.fields[f], covered = cur.apply(nested_kind, args["element"], dot)
            if dot is not None:
                self.ctx.add({dot})
            d.ctx.cloud = covered
        self._keep(f, cur)
        return d

    def _keep(self, f: Field, v: Nested) -> None:
        """Store a field's value, or drop it once nothing of it matters: an empty register or set is
        fully described by the context; counters and texts keep their reset state (module docstring)."""
        if isinstance(v, _Counter | _Text) or not v.bottom():
            self.fields[f] = v
        else:
            self.fields.pop(f, None)

    def remove(self, k: str) -> Map:
        """Remove key `k` (every nested type under it): reset what this replica has observed."""
        d = self._delta()
        for f in [f for f in self.fields if f[0] == k]:
            cur = self.fields[f]
            if isinstance(cur, _Counter | _Text):
                d.fields[f] = cur.reset()
            else:
                d.fields[f], covered = cur.reset()
                d.ctx.cloud |= covered
                del self.fields[f]
        return d

    # -- queries ----------------------------------------------------------------------------------
    def _present(self) -> list[tuple[Field, Nested]]:
        return sorted(((f, v) for f, v in self.fields.items() if not v.bottom()), key=lambda fv: fv[0])

    def keys(self) -> list[str]:
        return sorted({f[0] for f, _ in self._present()})

    def get(self, k: str, nested_type: str) -> Any:
        v = self.fields.get((k, nested_type))
        return None if v is None or v.bottom() else v.value()

    def value(self) -> dict[str, Any]:
        """{key: nested value}; a key present with several nested types shows each as "key@type"."""
        present = self._present()
        names: dict[str, int] = {}
        for (k, _), _v in present:
            names[k] = names.get(k, 0) + 1
        return {(k if names[k] == 1 else f"{k}@{t}"): v.value() for (k, t), v in present}

    def __len__(self) -> int:
        return len(self.keys())

    # -- merge ------------------------------------------------------------------------------------
    def merge(self, other: Map) -> None:
        if other is self:
            return
        mctx, tctx = self.ctx, other.ctx
        for f in self.fields.keys() | other.fields.keys():
            theirs = other.fields.get(f)
            mine = self.fields.get(f)
            if mine is None:
                if theirs is None:
                    continue
                mine = NESTED[f[1]]()
            if theirs is None:
                if isinstance(mine, _Counter | _Text):
                    continue
                theirs = NESTED[f[1]]()
            mine.join(theirs, mctx, tctx)  # type: ignore[arg-type]
            self._keep(f, mine)
        self.ctx.merge(tctx)

    def copy(self) -> Map:
        c = self._delta()
        c.ctx = self.ctx.copy()
        c.fields = {f: v.copy() for f, v in self.fields.items()}
        return c

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.ctx.to_dict(),
            "fields": [
                [k, t, v.to_dict()] for (k, t), v in sorted(self.fields.items(), key=lambda fv: fv[0])
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> Map:
        m = cls(node_id)
        m.ctx = _Ctx.from_dict(d["context"])
        for k, t, v in d["fields"]:
            if t not in NESTED:
                raise MapError(f"unknown nested type {t!r} in a stored map; known: {', '.join(NESTED)}")
            m.fields[(k, t)] = NESTED[t].from_dict(v)
        return m

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Map):
            return NotImplemented
        mine = {f: v for f, v in self.fields.items() if not v.blank()}
        theirs = {f: v for f, v in other.fields.items() if not v.blank()}
        return (
            self.ctx == other.ctx
            and mine.keys() == theirs.keys()
            and all(v == theirs[f] for f, v in mine.items())
        )

    def __repr__(self) -> str:
        return f"Map({self.value()!r})"
