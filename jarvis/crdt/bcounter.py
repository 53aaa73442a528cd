"""Bounded counter: a counter that never goes below its bound, with no coordination on the hot path.

AntidoteDB's design (Balegas et al., "Extending eventually consistent cloud databases for enforcing
numeric invariants", 2015): the amount above the bound is split into *rights* held by regions, and a
region decrements only within the rights it holds, so no interleaving of regions can oversell.

State, per region i (every entry a monotonic total, so merge is the pointwise maximum):
  p[i][i]  increments made in i (each creates that many rights, held by i)
  p[i][j]  rights i transferred to j (j != i)
  d[i]     decrements made in i
  rights(i) = p[i][i] + sum_j p[j][i] - sum_j p[i][j] - d[i]
  value     = min + sum_i p[i][i] - sum_i d[i]

Two choices differ from a reading of the brief that puts value = sum p[i][i] - sum d[i] and `min`
beside it, and both are what make "sum of rights = value - min" hold in every state:
  - The counter starts at its bound (an empty counter's value is `min`): stock is created by
    increments only. With the value starting at 0, a bound above 0 would be broken by the empty
    counter, and a bound below 0 would leave -min rights that no region holds.
  - A decrement's or transfer's delta carries the whole state of its region at that moment, not only
    the entry it changed. Row i is written by region i alone, and its decisions relied on the
    transfers into i that i had seen; a third replica that received i's decrement without those
    transfers (or without the increments behind them) could compute a value below the bound. With
    the decision's causal past in the delta, every state reachable by merging deltas in any order
    holds, for each region, at least what that region had seen when it last decided: rights(i) >= 0
    for every i and so value >= min everywhere. It costs (regions^2 + regions) integers per
    decision delta; an increment's delta stays its one entry, since an increment lowers no one's
    rights.

Deciding: `judge_decrement` / `judge_transfer` are the pure decisions the origin region's fold makes
in log order; a decrement or transfer applied *as decided* (another region's, or one the fold has
judged) is never judged again. The class's own mutators judge only their replica's own operations
(region omitted or equal to node_id) and raise BoundedCounterError with the reason.

Applied from the log, operations carry a dot: `seq`, increasing per origin region (the fold passes
(ingress offset << 20) | index; one object's operations of one origin arrive in that order). An
operation whose seq is not above the origin's last one applied is a duplicate and changes nothing:
op-based apply is idempotent, and the context is one integer per region.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.errors import BoundedCounterError


def amount_problem(n: Any, what: str) -> str | None:
    """Why `n` is not a valid amount for `what` (a non-negative integer; bool is not one), or None."""
    if type(n) is not int:
        return f"{what} amount must be a non-negative integer, got {n!r}"
    if n < 0:
        return f"{what} amount must be a non-negative integer, got {n}"
    return None


def judge_decrement(state: BoundedCounter, region: str, n: Any) -> str | None:
    """The origin's decision on a decrement of `n` in `region`: None to accept, else the reason."""
    bad = amount_problem(n, "decrement")
    if bad:
        return bad
    held = state.rights(region)
    if n > held:
        return f"insufficient rights in {region}: holds {held}, needs {n}"
    return None


def judge_transfer(state: BoundedCounter, region: str, n: Any, to_region: Any) -> str | None:
    """The origin's decision on `region` transferring `n` rights to `to_region`."""
    bad = amount_problem(n, "transfer")
    if bad:
        return bad
    if not isinstance(to_region, str) or not to_region:
        return f"transfer needs a region to send rights to, got {to_region!r}"
    if to_region == region:
        return f"{region} cannot transfer rights to itself"
    held = state.rights(region)
    if n > held:
        return f"transfer of {n} exceeds the {held} rights {region} holds"
    return None


class BoundedCounter:
    __slots__ = ("node_id", "min", "p", "d", "seqs")

    def __init__(self, node_id: str = "", min: int = 0) -> None:  # `min`: the pipeline file's word
        if type(min) is not int:
            raise BoundedCounterError(f"a bounded counter's bound must be an integer, got {min!r}")
        self.node_id = node_id
        self.min = min
        self.p: dict[str, dict[str, int]] = {}
        self.d: dict[str, int] = {}
        self.seqs: dict[str, int] = {}

    def _delta(self) -> BoundedCounter:
        d = BoundedCounter.__new__(BoundedCounter)
        d.node_id, d.min, d.p, d.d, d.seqs = self.node_id, self.min, {}, {}, {}
        return d

    def _fresh(self, region: str, seq: int | None) -> bool:
        """Record the op's dot; False if it was applied already (a duplicate)."""
        if seq is None:
            return True
        if seq <= self.seqs.get(region, -1):
            return False
        self.seqs[region] = seq
        return True

    # -- mutators ---------------------------------------------------------------------------------
    def increment(self, n: int = 1, region: str | None = None, seq: int | None = None) -> BoundedCounter:
        bad = amount_problem(n, "increment")
        if bad:
            raise BoundedCounterError(bad)
        r = region or self.node_id
        d = self._delta()
        if not self._fresh(r, seq):
            return d
        row = self.p.setdefault(r, {})
        row[r] = total = row.get(r, 0) + n
        d.p = {r: {r: total}}
        if seq is not None:
            d.seqs = {r: seq}
        return d

    def decrement(self, n: int = 1, region: str | None = None, seq: int | None = None) -> BoundedCounter:
        """Decrement in `region`. The replica's own decrement is judged against its rights; one naming
        another region was decided there and is applied as it is."""
        r = region or self.node_id
        if type(n) is not int or n < 0:  # judge_decrement's checks, inlined: the origin's hot path
            raise BoundedCounterError(amount_problem(n, "decrement") or "")
        if r == self.node_id:
            held = self.rights(r)
            if n > held:
                raise BoundedCounterError(f"insufficient rights in {r}: holds {held}, needs {n}")
        if seq is not None and not self._fresh(r, seq):
            return self._delta()
        d = self.d
        d[r] = d.get(r, 0) + n
        return self.copy()  # the decision's causal past travels with it (module docstring)

    def transfer(
        self, n: int, to_region: str, region: str | None = None, seq: int | None = None
    ) -> BoundedCounter:
        """Move `n` rights from `region` to `to_region`; judged like decrement."""
        r = region or self.node_id
        if r == self.node_id:
            bad = judge_transfer(self, r, n, to_region)
        else:
            bad = amount_problem(n, "transfer") or (
                None if isinstance(to_region, str) and to_region and to_region != r else
                f"transfer from {r} needs another region to send rights to, got {to_region!r}"
            )  # fmt: skip
        if bad:
            raise BoundedCounterError(bad)
        if not self._fresh(r, seq):
            return self._delta()
        row = self.p.setdefault(r, {})
        row[to_region] = row.get(to_region, 0) + n
        return self.copy()

    # -- queries ----------------------------------------------------------------------------------
    def value(self) -> int:
        return self.min + sum(row.get(i, 0) for i, row in self.p.items()) - sum(self.d.values())

    def rights(self, region: str) -> int:
        held = -self.d.get(region, 0)
        for i, row in self.p.items():  # one pass, no generator: the origin asks this per decision
            if i == region:
                for j, c in row.items():
                    held += c if j == region else -c
            else:
                held += row.get(region, 0)
        return held

    def regions(self) -> list[str]:
        """Every region that holds, held or was sent rights."""
        names = set(self.p) | set(self.d)
        for row in self.p.values():
            names |= row.keys()
        return sorted(names)

    def all_rights(self) -> dict[str, int]:
        return {r: self.rights(r) for r in self.regions()}

    # -- merge ------------------------------------------------------------------------------------
    def merge(self, other: BoundedCounter) -> None:
        if other.min != self.min:
            raise BoundedCounterError(
                f"cannot merge bounded counters with different bounds ({self.min} and {other.min})"
            )
        for i, orow in other.p.items():
            row = self.p.setdefault(i, {})
            for j, c in orow.items():
                if c > row.get(j, 0):
                    row[j] = c
        for mine, theirs in ((self.d, other.d), (self.seqs, other.seqs)):
            for r, c in theirs.items():
                if c > mine.get(r, -1):
                    mine[r] = c

    def copy(self) -> BoundedCounter:
        c = BoundedCounter.__new__(BoundedCounter)
        c.node_id, c.min = self.node_id, self.min
        c.p = {i: row.copy() for i, row in self.p.items()}
        c.d = self.d.copy()
        c.seqs = self.seqs.copy()
        return c

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "p": {i: dict(sorted(row.items())) for i, row in sorted(self.p.items())},
            "d": dict(sorted(self.d.items())),
            "seqs": dict(sorted(self.seqs.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> BoundedCounter:
        c = cls(node_id, d.get("min", 0))
        c.p = {i: dict(row) for i, row in d["p"].items()}
        c.d = dict(d["d"])
        c.seqs = dict(d.get("seqs", {}))
        return c

    def _entries(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        p = {(i, j): c for i, row in self.p.items() for j, c in row.items() if c}
        return p, {r: c for r, c in self.d.items() if c}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BoundedCounter):
            return NotImplemented
        return self.min == other.min and self._entries() == other._entries() and self.seqs == other.seqs

    def __repr__(self) -> str:
        return f"BoundedCounter({self.value()}, min={self.min})"
