"""LWW-Register: the write with the greatest resolver key wins (default: HLC timestamp, then node id)."""

from __future__ import annotations

from typing import Any

from jarvis.crdt.clocks import HLC
from jarvis.crdt.resolvers import RESOLVERS, Resolver, Write, latest, resolver_name, value_key


class LWWRegister:
    __slots__ = ("node_id", "hlc", "resolver", "current")

    def __init__(self, node_id: str = "", resolver: Resolver | str = latest, hlc: HLC | None = None) -> None:
        self.node_id = node_id
        self.hlc = hlc or HLC(node_id)
        self.resolver: Resolver = RESOLVERS[resolver] if isinstance(resolver, str) else resolver
        self.current: Write | None = None

    def write(self, value: Any, timestamp: int | None = None, node: str | None = None) -> LWWRegister:
        w: Write = (value, self.hlc.now() if timestamp is None else timestamp, node or self.node_id)
        self._offer(w)
        d = LWWRegister.__new__(LWWRegister)
        d.node_id, d.hlc, d.resolver, d.current = self.node_id, self.hlc, self.resolver, w
        return d

    def _offer(self, w: Write) -> None:
        cur = self.current
        if cur is None:
            self.current = w
            return
        if self.resolver is latest:  # the common case, without building key tuples
            if w[1] > cur[1] or (
                w[1] == cur[1] and (w[2] > cur[2] or (w[2] == cur[2] and value_key(w[0]) > value_key(cur[0])))
            ):
                self.current = w
            return
        mine, theirs = self.resolver(w), self.resolver(cur)
        if mine > theirs or (mine == theirs and value_key(w[0]) > value_key(cur[0])):
            self.current = w

    def read(self) -> Any:
        return None if self.current is None else self.current[0]

    def value(self) -> Any:
        return self.read()

    def timestamp(self) -> int | None:
        return None if self.current is None else self.current[1]

    def merge(self, other: LWWRegister) -> None:
        if other.current is not None:
            self._offer(other.current)

    def copy(self) -> LWWRegister:
        c = LWWRegister(self.node_id, self.resolver, self.hlc)
        c.current = self.current
        return c

    def to_dict(self) -> dict[str, Any]:
        cur = self.current
        return {
            "resolver": resolver_name(self.resolver),
            "write": None if cur is None else {"value": cur[0], "ts": cur[1], "node": cur[2]},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> LWWRegister:
        r = cls(node_id, d.get("resolver", "latest"))
        w = d.get("write")
        r.current = None if w is None else (w["value"], w["ts"], w["node"])
        return r

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LWWRegister):
            return NotImplemented
        return self.current == other.current

    def __repr__(self) -> str:
        return f"LWWRegister({self.read()!r})"
