"""G-Set: add-only; merge is union. Elements may be any JSON value (stored under a canonical key)."""

from __future__ import annotations

from typing import Any

from jarvis.crdt.elements import element_key, element_value


class GSet:
    __slots__ = ("node_id", "items")

    def __init__(self, node_id: str = "", items: set[str] | None = None) -> None:
        self.node_id = node_id
        self.items: set[str] = items if items is not None else set()

    def add(self, x: Any) -> GSet:
        k = element_key(x)
        self.items.add(k)
        d = GSet.__new__(GSet)
        d.node_id = self.node_id
        d.items = {k}
        return d

    def contains(self, x: Any) -> bool:
        return element_key(x) in self.items

    def elements(self) -> list[Any]:
        return [element_value(k) for k in sorted(self.items)]

    def value(self) -> list[Any]:
        return self.elements()

    def merge(self, other: GSet) -> None:
        self.items |= other.items

    def copy(self) -> GSet:
        return GSet(self.node_id, set(self.items))

    def to_dict(self) -> dict[str, Any]:
        return {"items": sorted(self.items)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> GSet:
        return cls(node_id, set(d["items"]))

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GSet):
            return NotImplemented
        return self.items == other.items

    def __repr__(self) -> str:
        return f"GSet({self.elements()})"
