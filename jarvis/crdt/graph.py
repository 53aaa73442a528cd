"""Graph: vertices and edges as two add-wins OR-Sets (both forms, see orset.py).

An edge is visible only while both its endpoints are: removing a vertex hides its edges without
removing them, and re-adding the vertex brings them back. That keeps every operation independent
(no remove-vertex-cascades that concurrent edge adds would race with), so the merge laws hold.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from jarvis.crdt.orset import ORSet


class Graph:
    __slots__ = ("node_id", "_vertices", "_edges")

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        # Either side may be None, meaning empty: a delta changes one side, and building an empty
        # OR-Set for the other on every operation would cost as much as the operation.
        self._vertices: ORSet | None = ORSet(node_id)
        self._edges: ORSet | None = ORSet(node_id)

    @property
    def vertices(self) -> ORSet:
        v = self._vertices
        if v is None:
            v = self._vertices = ORSet(self.node_id)
        return v

    @vertices.setter
    def vertices(self, value: ORSet) -> None:
        self._vertices = value

    @property
    def edges(self) -> ORSet:
        e = self._edges
        if e is None:
            e = self._edges = ORSet(self.node_id)
        return e

    @edges.setter
    def edges(self, value: ORSet) -> None:
        self._edges = value

    def _delta(self, vertices: ORSet | None = None, edges: ORSet | None = None) -> Graph:
        d = Graph.__new__(Graph)
        d.node_id, d._vertices, d._edges = self.node_id, vertices, edges
        return d

    def add_vertex(self, v: str, timestamp: int | None = None, node: str | None = None) -> Graph:
        # _delta inlined: vertex adds are the bulk of graph traffic, and the call is a fifth of the cost.
        d = Graph.__new__(Graph)
        d.node_id, d._vertices, d._edges = self.node_id, self.vertices.add(v, timestamp, node), None
        return d

    def remove_vertex(self, v: str, before: int | None = None) -> Graph:
        return self._delta(vertices=self.vertices.remove(v, before))

    def add_edge(self, src: str, dst: str, timestamp: int | None = None, node: str | None = None) -> Graph:
        return self._delta(edges=self.edges.add([src, dst], timestamp, node))

    def remove_edge(self, src: str, dst: str, before: int | None = None) -> Graph:
        return self._delta(edges=self.edges.remove([src, dst], before))

    def has_vertex(self, v: str) -> bool:
        return self.vertices.contains(v)

    def vertex_list(self) -> list[str]:
        return sorted(self.vertices.elements())

    def edge_list(self) -> list[tuple[str, str]]:
        vs = set(self.vertices.elements())
        return sorted((a, b) for a, b in self.edges.elements() if a in vs and b in vs)

    def neighbours(self, v: str) -> list[str]:
        return sorted({b for a, b in self.edge_list() if a == v} | {a for a, b in self.edge_list() if b == v})

    def successors(self, v: str) -> list[str]:
        return sorted(b for a, b in self.edge_list() if a == v)

    def shortest_path(self, src: str, dst: str, directed: bool = False) -> list[str] | None:
        """Fewest hops from src to dst (BFS; ties broken by vertex name), or None if unreachable."""
        vs = set(self.vertices.elements())
        if src not in vs or dst not in vs:
            return None
        adj: dict[str, set[str]] = {v: set() for v in vs}
        for a, b in self.edge_list():
            adj[a].add(b)
            if not directed:
                adj[b].add(a)
        prev: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            cur = queue.popleft()
            if cur == dst:
                path = []
                node: str | None = cur
                while node is not None:
                    path.append(node)
                    node = prev[node]
                return path[::-1]
            for nxt in sorted(adj[cur]):
                if nxt not in prev:
                    prev[nxt] = cur
                    queue.append(nxt)
        return None

    def subgraph(self, vertices: list[str]) -> dict[str, Any]:
        keep = set(vertices) & set(self.vertices.elements())
        return {
            "vertices": sorted(keep),
            "edges": [[a, b] for a, b in self.edge_list() if a in keep and b in keep],
        }

    def value(self) -> dict[str, Any]:
        return {"vertices": self.vertex_list(), "edges": [list(e) for e in self.edge_list()]}

    def merge(self, other: Graph) -> None:
        if other._vertices is not None:
            self.vertices.merge(other._vertices)
        if other._edges is not None:
            self.edges.merge(other._edges)

    def copy(self) -> Graph:
        g = Graph.__new__(Graph)
        g.node_id, g._vertices, g._edges = self.node_id, self.vertices.copy(), self.edges.copy()
        return g

    def metadata_size(self) -> int:
        return self.vertices.metadata_size() + self.edges.metadata_size()

    def to_dict(self) -> dict[str, Any]:
        return {"vertices": self.vertices.to_dict(), "edges": self.edges.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> Graph:
        g = cls(node_id)
        g.vertices = ORSet.from_dict(d["vertices"], node_id)
        g.edges = ORSet.from_dict(d["edges"], node_id)
        return g

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self.vertices == other.vertices and self.edges == other.edges

    def __repr__(self) -> str:
        return f"Graph({len(self.vertices)} vertices, {len(self.edge_list())} edges)"
