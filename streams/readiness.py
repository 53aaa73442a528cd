"""Which table partitions a fold worker can answer for: assigned to it *and* recovered.

While Faust recovers a newly assigned partition from its changelog, the table holds none or part of
its objects, so a read that finds nothing there proves nothing: it must answer "recovering" (503,
retry), never "unknown object" (404). A second fold worker joining made objects answer 404 for
2-6 s this way, and a restarted fold with ~1,000,000 objects for minutes.

Pure bookkeeping (no Faust): streams/fold.py feeds it Faust's assignments and recovery completions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# What a 503 "recovering" tells the client to wait: recovery of a partition takes seconds to
# minutes, and one more read a second costs the worker nothing.
RETRY_AFTER_S = 1


@dataclass
class PartitionReadiness:
    assigned: frozenset[int] = frozenset()
    ready: set[int] = field(default_factory=set)
    known: bool = False  # an assignment has arrived (before it, nothing is known to be ours)
    generation: int = -1  # the rebalance the assignment belongs to

    def on_assigned(self, partitions: Iterable[int], generation: int) -> None:
        """A new assignment. Partitions kept from the previous one stay ready: the worker wrote
        everything it had at the revocation, nobody else folded them in between, and the in-memory
        table keeps their objects. The others are recovering until Faust says otherwise."""
        self.assigned = frozenset(partitions)
        self.ready &= self.assigned
        self.known = True
        self.generation = generation

    def on_recovered(self, generation: int) -> None:
        """Faust finished recovering the tables for the assignment of `generation`. A completion
        left over from an earlier rebalance proves nothing about the partitions assigned since."""
        if generation == self.generation:
            self.ready |= self.assigned

    def can_answer(self, partition: int) -> bool:
        return partition in self.ready

    @property
    def recovering(self) -> frozenset[int]:
        return self.assigned - self.ready

    @property
    def all_ready(self) -> bool:
        return self.known and not self.recovering

    def report(self) -> dict[str, object]:
        return {
            "assigned": sorted(self.assigned),
            "recovering": sorted(self.recovering),
            "assignment_known": self.known,
        }
