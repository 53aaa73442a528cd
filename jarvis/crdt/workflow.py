"""Workflow: a state machine whose history is a grow-only set of transitions.

Every transition is recorded with its identity (timestamp, node, seq). The current state is not
stored: it is computed by replaying the whole history in (timestamp, node, seq) order from the
initial state, applying each transition that is allowed (and whose guard passes) at that point of
the chain and skipping the rest. History merges by union, so every replica that has seen the same
transitions computes the same chain: concurrent transitions resolve deterministically, and the
skipped ones stay visible in the history as not applied.

Transitions are held sorted by identity in typed-array columns (jarvis.crdt.pointlog), the target
state as an index into the state names; guard arguments, usually empty, only when present. The
replay is cached as two more columns (the state each transition left from, and whether it applied):
a transition that lands at row i invalidates the replay from row i on only, so appending in identity
order extends the chain in O(1). About 25 bytes a transition in all.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from typing import Any

from jarvis.crdt.pointlog import PointLog, Row

TKey = tuple[int, str, int]

# Named guards, so definitions stay plain data: (from_state, to_state, args) -> allowed?
GUARDS: dict[str, Callable[[str, str, dict[str, Any]], bool]] = {
    "has_actor": lambda frm, to, args: bool(args.get("by")),
    "has_reason": lambda frm, to, args: bool(args.get("reason")),
}


class _Rules:
    """A definition with states as indices, shared by a workflow, its copies and its deltas.

    `names` only grows (a stored transition may name a state the definition lacks): indices stay valid.
    """

    __slots__ = ("definition", "names", "index", "known", "moves", "guards", "initial")

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.names: list[str] = list(dict.fromkeys(definition["states"]))
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.names)}
        self.known = len(self.names)  # names from here on are not the definition's
        self.initial = self.index[definition["initial"]]
        self.moves: set[int] = set()  # frm << 16 | to, for every allowed move
        self.guards: dict[int, str] = {}
        guards = definition.get("guards") or {}
        for frm, tos in definition["transitions"].items():
            for to in tos:
                move = self.ix(frm) << 16 | self.ix(to)
                self.moves.add(move)
                if f"{frm}->{to}" in guards:
                    self.guards[move] = guards[f"{frm}->{to}"]

    def ix(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i

    def allowed(self, frm: int, to: int, args: dict[str, Any] | None) -> bool:
        move = frm << 16 | to
        if move not in self.moves:
            return False
        guard = self.guards.get(move)
        return guard is None or GUARDS[guard](self.names[frm], self.names[to], args or {})


class Workflow:
    __slots__ = ("node_id", "definition", "_rules", "_log", "_one", "seqs", "_from", "_ok", "_state")

    def __init__(self, node_id: str, definition: dict[str, Any]) -> None:
        if definition.get("initial") not in definition.get("states", []):
            raise ValueError("a workflow definition needs 'states' and an 'initial' state among them")
        self.node_id = node_id
        self.definition = definition
        self._rules = _Rules(definition)
        # Transitions in columns, None until needed; a delta holds its one transition as a tuple in _one
        # (timestamp, node, seq, to_state name, args): building columns for one row costs more than it.
        self._log: PointLog | None = None
        self._one: Row | None = None
        self.seqs: dict[str, int] = {}
        # The replay of the first len(_from) transitions: the state each left from, whether it applied,
        # and the state after them. None until first asked for: a delta, or a fold that only records,
        # may never be replayed.
        self._from: array[int] | None = None
        self._ok: array[int] | None = None
        self._state = self._rules.initial

    def _points(self) -> PointLog:
        log = self._log
        if log is None:
            log = self._log = PointLog("q", "H")
            if self._one is not None:
                t, node, seq, to, args = self._one
                log.add(t, node, seq, self._rules.ix(to), args or None)
                self._one = None
        return log

    def _invalidate(self, row: int) -> None:
        """Forget the replay from `row` on (a transition was inserted there)."""
        frm, oks = self._from, self._ok
        if frm is not None and oks is not None and row < len(frm):
            self._state = frm[row]
            del frm[row:]
            del oks[row:]

    def _replay(self) -> int:
        """Bring the cached replay up to date; returns the current state's index."""
        log, frm, oks = self._log, self._from, self._ok
        if log is not None and frm is not None and len(frm) == len(log):
            return self._state
        log = self._points()
        if frm is None or oks is None:
            frm, oks = self._from, self._ok = array("H"), array("b")
            self._state = self._rules.initial
        done = len(frm)
        rules, extra = self._rules, log.extra
        state = self._state
        for row in range(done, len(log)):
            to = log.val[row]
            ok = rules.allowed(state, to, extra.get(log.name(row)) if extra else None)
            frm.append(state)
            oks.append(ok)
            if ok:
                state = to
        self._state = state
        return state

    def state(self) -> str:
        return self._rules.names[self._replay()]

    def history(self) -> list[dict[str, Any]]:
        self._replay()
        names, frms, oks = self._rules.names, self._from or (), self._ok or ()
        return [
            {
                "from": names[frm],
                "to": names[to],
                "timestamp": t,
                "node": node,
                "args": args or {},
                "applied": bool(ok),
            }
            for (t, node, _, to, args), frm, ok in zip(self._points().rows(), frms, oks, strict=True)
        ]

    def _record(
        self,
        to_state: str,
        timestamp: int,
        node: str,
        args: dict[str, Any],
        seq: int | None = None,
        allowed: bool | None = None,
    ) -> Workflow:
        """`allowed`: whether to_state is allowed after the current state, when the caller knows."""
        rules = self._rules
        to = rules.index.get(to_state)
        if to is None or to >= rules.known:
            raise ValueError(f"unknown state {to_state!r}; states: {', '.join(self.definition['states'])}")
        seqs = self.seqs
        last = seqs.get(node, 0)
        if seq is None:
            seq = last + 1
        if seq > last:
            seqs[node] = seq
        log = self._log
        if log is None:
            log = self._points()
        row = log.add(timestamp, node, seq, to, args or None)
        frm, oks = self._from, self._ok
        if row >= 0 and frm is not None and oks is not None:
            if row == len(frm) == len(log) - 1:  # in order, replay up to date: extend it
                state = self._state
                ok = rules.allowed(state, to, args) if allowed is None else allowed
                frm.append(state)
                oks.append(ok)
                if ok:
                    self._state = to
            else:
                self._invalidate(row)
        d = Workflow.__new__(Workflow)
        d.node_id, d.definition, d._rules, d._log = self.node_id, self.definition, rules, None
        d._one = (timestamp, node, seq, to_state, args)
        d.seqs = {node: seq}
        d._from, d._ok, d._state = None, None, rules.initial
        return d

    def transition(
        self, to_state: str, timestamp: int | None = None, node: str | None = None, **args: Any
    ) -> Workflow:
        """Move to `to_state` if the definition allows it from the current state (else ValueError)."""
        rules = self._rules
        cur = self._replay()
        to = rules.index.get(to_state)
        if to is None or not rules.allowed(cur, to, args):
            frm = rules.names[cur]
            allowed = ", ".join(self.definition["transitions"].get(frm, ())) or "none"
            raise ValueError(
                f"transition {frm} -> {to_state} is not allowed (from {frm}: {allowed}) or its guard fails"
            )
        ts = timestamp if timestamp is not None else time.time_ns() // 1_000_000 << 16
        return self._record(to_state, ts, node or self.node_id, args, allowed=True)

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
        self._replay()
        ok = self._ok or ()
        for row in range(len(ok) - 1, -1, -1):
            if ok[row]:
                return self._points().name(row)[0]
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
        if other is self:
            return
        for node, s in other.seqs.items():
            if s > self.seqs.get(node, 0):
                self.seqs[node] = s
        log, ix = self._points(), self._rules.ix
        if other._log is None:
            if other._one is None:
                return
            t, node, seq, to, args = other._one
            row = log.add(t, node, seq, ix(to), args or None)
            if row >= 0:
                self._invalidate(row)
            return
        names = other._rules.names
        rows = [(t, node, seq, ix(names[to]), args) for t, node, seq, to, args in other._log.rows()]
        self._invalidate(log.update(rows))

    def copy(self) -> Workflow:
        w = Workflow.__new__(Workflow)
        w.node_id, w.definition, w._rules, w._one = self.node_id, self.definition, self._rules, None
        w._log = self._points().copy()
        w.seqs = dict(self.seqs)
        if self._from is None or self._ok is None:
            w._from, w._ok, w._state = None, None, self._rules.initial
        else:
            w._from, w._ok, w._state = array("H", self._from), array("b", self._ok), self._state
        return w

    def _transitions(self) -> list[list[Any]]:
        names = self._rules.names
        return [[t, node, seq, names[to], args or {}] for t, node, seq, to, args in self._points().rows()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": self.definition,
            "transitions": self._transitions(),
            "seqs": dict(sorted(self.seqs.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> Workflow:
        w = cls(node_id, d["definition"])
        ix = w._rules.ix
        w._points().update([(t[0], t[1], t[2], ix(t[3]), t[4] or None) for t in d["transitions"]])
        w.seqs = dict(d["seqs"])
        return w

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        mine, theirs = self._points(), other._points()
        return (
            mine.same_points(theirs)
            and self.seqs == other.seqs
            and (
                mine.values() == theirs.values()
                if self._rules.names == other._rules.names
                else self._transitions() == other._transitions()
            )
        )

    def __repr__(self) -> str:
        return f"Workflow({self.state()!r}, {len(self._points())} transitions)"
