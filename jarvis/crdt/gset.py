"""G-Set: add-only; merge is union. Elements may be any JSON value.

A string element is stored as itself (the set holds a reference, no copy: a G-Set of strings costs
only its hash table); any other JSON value as ("j", canonical JSON), a tuple, which never equals a
string, so "1" and 1 stay apart (jarvis.crdt.elements: the in-memory key and the tagged wire form).
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.elements import Key, element_value
from jarvis.crdt.elements import from_wire as _from_wire
from jarvis.crdt.elements import key as _key
from jarvis.crdt.elements import wire as _wire


class GSet:
    __slots__ = ("node_id", "items")

    def __init__(self, node_id: str = "", items: set[Key] | None = None) -> None:
        self.node_id = node_id
        self.items: set[Key] = items if items is not None else set()

    def add(self, x: Any) -> GSet:
        k = _key(x)
        self.items.add(k)
        d = GSet.__new__(GSet)
        d.node_id = self.node_id
        d.items = {k}
        return d

    def contains(self, x: Any) -> bool:
        return _key(x) in self.items

    def elements(self) -> list[Any]:
        return [element_value(w) for w in sorted(_wire(k) for k in self.items)]

    def value(self) -> list[Any]:
        return self.elements()

    def merge(self, other: GSet) -> None:
        self.items |= other.items

    def copy(self) -> GSet:
        return GSet(self.node_id, set(self.items))

    def to_dict(self) -> dict[str, Any]:
        return {"items": sorted(_wire(k) for k in self.items)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> GSet:
        return cls(node_id, {_from_wire(w) for w in d["items"]})

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GSet):
            return NotImplemented
        return self.items == other.items

    def __repr__(self) -> str:
        return f"GSet({self.elements()})"
