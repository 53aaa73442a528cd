"""In-order folding per source partition, whatever order Faust delivers messages in.

The fold's duplicate check keeps one dot per origin and object (jarvis/materialize.py), which is
exact only if each source partition is folded in offset order. Faust 0.15.3 does not promise that
when a worker resumes: its fetcher starts on the stream partitions before Faust's seek to the
committed offsets, so a restarted fold was seen folding offsets 600..693 and then getting 600.. again.
Should that first pass miss a message (Faust's stream drops messages it considers to belong to an
older generation, and its consumer drops messages fetched while the flow is suspended), the message
comes back after later ones, where its dot looks old, and is skipped. A clean-clone CI run lost a
500-operation message after a `kill -9` in a way only this explains: the object's first changelog
state after the restart covers 47 messages (offsets 200..246) and holds the effect of 46.

So the fold knows, per source partition, the next offset it must fold: on the first message after
an assignment, the position recorded in the changelog beside the state (everything below it is
durably folded); then one past each message folded. A message below it is a redelivery and is
skipped; a message above it means something in between was not delivered: it is skipped too, and
the consumer is sent back to the missing offset. The same check catches a committed offset that ran
ahead of the changelog: the restarted worker starts at the commit, above the recorded position, and
goes back.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

RESEEK_S = 2.0  # a seek that did not bring the missing offset (Faust sought elsewhere after it) is redone


class Step(Enum):
    FOLD = "fold"  # the next offset: fold it, then call folded()
    DUPLICATE = "duplicate"  # below the next offset: already folded, skip
    AHEAD = "ahead"  # above the next offset, the consumer is already going back: skip
    SEEK = "seek"  # above the next offset: skip, and send the consumer back to `expected`


Partition = tuple[str, int]


class SourceOrder:
    def __init__(self) -> None:
        self.expected: dict[Partition, int] = {}
        self._sought: dict[Partition, float] = {}

    def reset(self) -> None:
        """After a rebalance: positions are read again from the (recovered) changelog."""
        self.expected.clear()
        self._sought.clear()

    def step(
        self, tp: Partition, offset: int, durable: Callable[[Partition], int | None], now: float
    ) -> Step:
        """What to do with the message at `offset`. `durable` gives the recorded position, read
        only at a partition's first message; None (nothing recorded yet) starts where Kafka does."""
        expected = self.expected.get(tp)
        if expected is None:
            recorded = durable(tp)
            expected = self.expected[tp] = offset if recorded is None else recorded
        if offset == expected:
            return Step.FOLD
        if offset < expected:
            return Step.DUPLICATE
        last = self._sought.get(tp)
        if last is not None and now - last < RESEEK_S:
            return Step.AHEAD
        self._sought[tp] = now
        return Step.SEEK

    def overdue(self, now: float) -> list[tuple[Partition, int]]:
        """Partitions sent back more than RESEEK_S ago whose missing offset has still not come, with
        that offset; each counts as sent back again now. Without this a lost redelivery waited for
        the partition's next new message: Faust drops a fetched message below the offset it last
        read, and the messages after the missing one may all have been read before the seek (a
        clean-clone CI run waited 3 minutes, until the next message, and failed)."""
        due = [(tp, self.expected[tp]) for tp, last in self._sought.items() if now - last >= RESEEK_S]
        for tp, _ in due:
            self._sought[tp] = now
        return due

    def folded(self, tp: Partition, offset: int) -> None:
        """The message at `offset` is folded (its effect is among the fold's held-back changes)."""
        self.expected[tp] = offset + 1
        self._sought.pop(tp, None)

    def skip_to(self, tp: Partition, offset: int) -> None:
        """The missing offsets are gone from the log (retention): fold from `offset` on."""
        self.expected[tp] = offset
        self._sought.pop(tp, None)
