"""Workflow: a state machine whose history is a grow-only set of transitions.

Every transition is recorded with its identity (timestamp, node, seq). The current state is not
stored: it is computed by replaying the whole history in (timestamp, node, seq) order from the
initial state, applying each transition that is allowed (and whose guard passes) at that point of
the chain and skipping the rest. History merges by union, so every replica that has seen the same
transitions computes the same chain: concurrent transitions resolve deterministically, and the
skipped ones stay visible in the history as not applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TKey = tuple[int, str, int]

# Named guards, so definitions stay plain data: (from_state, to_state, args) -> allowed?
GUARDS: dict[str, Callable[[str, str, dict[str, Any]], bool]] = {
    "has_actor": lambda frm, to, args: bool(args.get("by")),
    "has_reason": lambda frm, to, args: bool(args.get("reason")),
}


class Workflow:
    __slots__ = ("node_id", "definition", "transitions", "seqs", "_cache")

    def __init__(self, node_id: str, definition: dict[str, Any]) -> None:
        if definition.get("initial") not in definition.get("states", []):
            raise ValueError("a workflow definition needs 'states' and an 'initial' state among them")
        self.node_id = node_id
        self.definition = definition
        self.transitions: dict[TKey, tuple[str, dict[str, Any] | None]] = {}
        self.seqs: dict[str, int] = {}
        # (transitions replayed, state, history, greatest key): lets an append in key order extend the
        # chain in O(1) instead of replaying the whole history.
        self._cache: tuple[int, str, list[tuple[TKey, str, bool]], TKey | None] | None = None

    def _allowed(self, frm: str, to: str, args: dict[str, Any] | None) -> bool:
        if to not in self.definition["transitions"].get(frm, ()):
            return False
        guard = (self.definition.get("guards") or {}).get(f"{frm}->{to}")
        return guard is None or GUARDS[guard](frm, to, args or {})

    def _replay(self) -> tuple[str, list[tuple[TKey, str, bool]]]:
        """(current state, [(transition key, state it left from, applied?)]) - compact; see history()."""
        if self._cache is not None and self._cache[0] == len(self.transitions):
            return self._cache[1], self._cache[2]
        state = self.definition["initial"]
        history = []
        for key in sorted(self.transitions):
            to, args = self.transitions[key]
            ok = self._allowed(state, to, args)
            history.append((key, state, ok))
            if ok:
                state = to
        self._cache = (
            len(self.transitions),
            state,
            history,
            max(self.transitions) if self.transitions else None,
        )
        return state, history

    def state(self) -> str:
        return self._replay()[0]

    def history(self) -> list[dict[str, Any]]:
        out = []
        for key, frm, ok in self._replay()[1]:
            to, args = self.transitions[key]
            out.append(
                {
                    "from": frm,
                    "to": to,
                    "timestamp": key[0],
                    "node": key[1],
                    "args": args or {},
                    "applied": ok,
                }
            )
        return out

    def _record(
        self, to_state: str, timestamp: int, node: str, args: dict[str, Any], seq: int | None = None
    ) -> Workflow:
        if to_state not in self.definition["states"]:
            raise ValueError(f"unknown state {to_state!r}; states: {', '.join(self.definition['states'])}")
        if seq is None:
            seq = self.seqs.get(node, 0) + 1
        if seq > self.seqs.get(node, 0):
            self.seqs[node] = seq
        key = (timestamp, node, seq)
        cache = self._cache
        self.transitions[key] = (to_state, args)
        if (
            cache is not None
            and cache[0] == len(self.transitions) - 1
            and (cache[3] is None or key > cache[3])
        ):
            state, history = cache[1], cache[2]
            ok = self._allowed(state, to_state, args)
            history.append((key, state, ok))
            self._cache = (len(self.transitions), to_state if ok else state, history, key)
        d = Workflow.__new__(Workflow)
        d.node_id, d.definition, d._cache = self.node_id, self.definition, None
        d.transitions = {key: (to_state, args)}
        d.seqs = {node: seq}
        return d

    def transition(
        self, to_state: str, timestamp: int | None = None, node: str | None = None, **args: Any
    ) -> Workflow:
        """Move to `to_state` if the definition allows it from the current state (else ValueError)."""
        cur = self.state()
        if not self._allowed(cur, to_state, args):
            allowed = ", ".join(self.definition["transitions"].get(cur, ())) or "none"
            raise ValueError(
                f"transition {cur} -> {to_state} is not allowed (from {cur}: {allowed}) or its guard fails"
            )
        ts = timestamp if timestamp is not None else time.time_ns() // 1_000_000 << 16
        return self._record(to_state, ts, node or self.node_id, args)

    def record_transition(
        self,
        to_state: str,
        timestamp: int,
        node: str,
        args: dict[str, Any] | None = None,
        seq: int | None = None,
    ) -> Workflow:
        """Record a transition from the log without judging it now: replay decides whether it applies.
        `seq` names the transition when the caller has a stable identity for it (the fold's dot)."""
        return self._record(to_state, timestamp, node, dict(args or {}), seq)

    def entered_at(self) -> int | None:
        for key, _, ok in reversed(self._replay()[1]):
            if ok:
                return key[0]
        return None

    def deadline(self) -> float | None:
        """Epoch seconds by which the current state should be left, if the definition sets one."""
        limit = (self.definition.get("deadlines") or {}).get(self.state())
        if limit is None:
            return None
        entered = self.entered_at()
        start = (entered >> 16) / 1000 if entered is not None else None
        return None if start is None else start + float(limit)

    def is_overdue(self, now: float | None = None) -> bool:
        d = self.deadline()
        return d is not None and (now if now is not None else time.time()) > d

    def value(self) -> dict[str, Any]:
        return {"state": self.state(), "history": self.history(), "deadline": self.deadline()}

    def merge(self, other: Workflow) -> None:
        self.transitions.update(other.transitions)
        for node, s in other.seqs.items():
            if s > self.seqs.get(node, 0):
                self.seqs[node] = s
        self._cache = None

    def copy(self) -> Workflow:
        w = Workflow(self.node_id, self.definition)
        w.transitions = dict(self.transitions)
        w.seqs = dict(self.seqs)
        return w

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "transitions": [[k[0], k[1], k[2], v[0], v[1]] for k, v in sorted(self.transitions.items())],
            "seqs": dict(sorted(self.seqs.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> Workflow:
        w = cls(node_id, d["definition"])
        w.transitions = {(t[0], t[1], t[2]): (t[3], t[4]) for t in d["transitions"]}
        w.seqs = dict(d["seqs"])
        return w

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        return self.transitions == other.transitions and self.seqs == other.seqs

    def __repr__(self) -> str:
        return f"Workflow({self.state()!r}, {len(self.transitions)} transitions)"
