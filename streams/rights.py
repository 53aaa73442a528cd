"""Bounded counters in the fold: publish this region's decisions, and move rights to where demand is.

A bounded counter's decrements and transfers are judged by the origin region's fold
(jarvis/crdt/bcounter_spec.py). The other regions learn the verdicts from a `decided` operation that
carries the origin's state; this service, one per fold worker, makes them and answers for rights:

- Every DECIDE_EVERY_S, for each bounded counter this region decided on since the last round, it
  emits `decided {region, state, want}`: the object's state as folded here and how many units
  this region refused for want of rights meanwhile (the ask).
- When another region's `decided` arrives with `want > 0` and this region holds rights, it emits
  `transfer {n, to_region}` from itself: what was asked, or half of what it holds if that is more
  (demand rarely stops at what was refused in one round), at most everything it holds. The transfer
  is judged by this region's fold like any other, and the next `decided` carries it to the asker.
  An ask is answered once per ANSWER_GAP_S per object and region: asks keep coming while the
  first transfer travels, and answering each would drain this region. A region that itself lacked
  rights for the object within KEEP_S answers no ask (it keeps the ask for later): it has demand of
  its own for whatever reaches it.

The operations go through the SDK path (signed by the fold's node key `fold-<region>`, verified by
the region's verifier), so they are in the log, mirrored, archived and replayed like any other.
With MirrorMaker down, nothing arrives from the other regions: each region sells only what it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jarvis.crdt.bcounter_spec import JUDGED
from jarvis.materialize import ObjectState
from jarvis.ops import DotRun, Operation

DECIDE_EVERY_S = 0.1
ANSWER_GAP_S = 0.5
# A region that refused its own sales for want of rights this recently keeps what reaches it: with
# demand in both regions, the last unit otherwise went back and forth between them (each region's
# ask answered while the unit was on its way to it), unsold for 45 s in the MirrorMaker-paused test.
KEEP_S = 1.0

Emission = tuple[str, str, dict[str, Any]]  # (object id, kind, args) of a bcounter operation


class RightsService:
    def __init__(self, region: str, peek: Callable[[str], ObjectState | None]) -> None:
        self.region = region
        self.peek = peek
        self.decided: set[str] = set()  # objects this region decided on since its last `decided`
        self.short: dict[str, int] = {}  # units refused here for want of rights, per object
        self.asks: dict[tuple[str, str], int] = {}  # (object, region) -> units it lacked
        self.answered: dict[tuple[str, str], float] = {}  # (object, region) -> when (monotonic)
        self.wanting: dict[str, float] = {}  # object -> when this region last lacked rights for it

    def note(self, run: DotRun) -> None:
        """What a folded run says about bounded counters (the fold calls this for runs holding any)."""
        own = run.origin_region == self.region
        for _index, oid, t, kind, args, _node, _hlc in run.rows:
            if t != "bcounter":
                continue
            if own and kind in JUDGED:
                self.decided.add(oid)
            elif not own and kind == "decided":
                want = args.get("want", 0)
                key = (oid, run.origin_region)
                if type(want) is int and want > 0:
                    self.asks[key] = want
                else:
                    self.asks.pop(key, None)

    def refused(self, op: Operation, reason: str) -> None:
        """The fold refused one of this region's bounded-counter operations."""
        if op.crdt_type != "bcounter" or op.region != self.region:
            return
        self.decided.add(op.object_id)  # the next `decided` carries the ask, even if nothing changed
        n = op.args.get("n", 1)
        if op.kind == "decrement" and reason.find("insufficient rights") >= 0 and type(n) is int:
            self.short[op.object_id] = self.short.get(op.object_id, 0) + n

    def due(self, now: float | None = None) -> list[Emission]:
        """The operations to emit this round: transfers answering asks, then this region's decisions."""
        now = time.monotonic() if now is None else now
        out: list[Emission] = []
        for oid in self.short:  # refused here since the last round: this region wants them too
            self.wanting[oid] = now
        asks, self.asks = self.asks, {}
        for (oid, region), want in sorted(asks.items(), key=lambda kv: -kv[1]):
            if now - self.answered.get((oid, region), -ANSWER_GAP_S) < ANSWER_GAP_S or (
                now - self.wanting.get(oid, -KEEP_S) < KEEP_S
            ):
                self.asks[(oid, region)] = want  # kept: answered once the gap has passed
                continue
            st = self.peek(oid)
            if st is None or st.crdt_type != "bcounter":
                continue
            held = st.value.rights(self.region)
            if held <= 0:
                continue
            give = min(held, max(want, (held + 1) // 2))
            out.append((oid, "transfer", {"n": give, "to_region": region}))
            self.answered[(oid, region)] = now
        if len(self.answered) > 100_000:
            self.answered = {k: t for k, t in self.answered.items() if now - t < ANSWER_GAP_S}
        if len(self.wanting) > 100_000:
            self.wanting = {k: t for k, t in self.wanting.items() if now - t < KEEP_S}
        decided, self.decided = self.decided, set()
        for oid in sorted(decided):
            st = self.peek(oid)
            if st is None or st.crdt_type != "bcounter":
                continue
            state = st.value.to_dict()
            # The dedup sequence numbers stay home: other regions deduplicate by their own context, and
            # (offset << 20) | index outgrows the verifier's number limit on a long-lived log.
            del state["seqs"]
            out.append(
                (oid, "decided", {"region": self.region, "state": state, "want": self.short.pop(oid, 0)})
            )
        return out
