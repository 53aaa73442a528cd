"""The bounded counter (`bcounter`) as a registry spec: how its operations cross the pipeline.

Kinds and their arguments (JSON):
  increment {n}                 stock created in the origin region (its rights); applied everywhere
  decrement {n}                 a sale: *decided* by the origin region's fold, in log order
  transfer  {n, to_region}      rights moved from the origin region to another: decided likewise
  decided   {region, state, want}
                                the origin fold's decisions: its whole state (BoundedCounter.to_dict)
                                after them, and how many units it lacked since the last one

Where a decrement is decided. Only the origin region's fold knows its rights in log order, so only
there is a decrement or transfer judged (judge_decrement / judge_transfer): accepted, it is applied;
refused, the mutation raises BoundedCounterError and the fold writes it to jarvis.ops.rejected with
the reason ("insufficient rights in eu: holds 3, needs 5"). Every other region skips the raw
operation, since it cannot know the verdict, and learns the decision from the origin's next
`decided` operation, which carries the origin's state: merging it (a pointwise maximum) applies
the accepted decrements and never a refused one, and brings the transfers the decision relied on
(jarvis/crdt/bcounter.py says why the causal past must travel with it). Mirrored decisions are
never judged again. The fold worker of each region emits `decided` for the objects it decided on
and answers other regions' `want` with transfers (streams/rights.py).

Which region decides is the fold's: `decide_in(region)` is called once by the fold worker of that
region. Replay (no deciding region) folds what was decided: increments and `decided` states.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.bcounter import BoundedCounter, amount_problem, judge_decrement, judge_transfer
from jarvis.crdt.errors import BoundedCounterError
from jarvis.crdt.registry import Arg, CrdtSpec, Rule, register

JUDGED = ("decrement", "transfer")


def decided_problem(args: dict[str, Any], bound: int | None) -> str | None:
    """Why a `decided` operation's arguments are not a region's bounded-counter state, or None."""
    region, state, want = args.get("region"), args.get("state"), args.get("want", 0)
    if not isinstance(region, str) or not region:
        return f"decided needs the deciding region, got {region!r}"
    if not isinstance(state, dict):
        return f"decided needs the region's state as an object, got {type(state).__name__}"
    try:
        c = BoundedCounter.from_dict(state)
        ints = [v for row in c.p.values() for v in row.values()] + [*c.d.values(), *c.seqs.values()]
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        return f"decided carries no bounded-counter state: {type(e).__name__}: {e}"
    if any(type(v) is not int or v < -1 for v in ints):
        return "decided state holds entries that are not non-negative integers"
    if bound is not None and c.min != bound:
        return f"decided state has bound {c.min}, the pipeline's is {bound}"
    return amount_problem(want, "want")


class BCounterSpec(CrdtSpec):
    name = "bcounter"
    crdt_class = BoundedCounter
    kinds = ("increment", "decrement", "transfer", "decided")
    handle = "bcounter"
    args = {
        "increment": (Arg("n", "integer", False, "amount, default 1"),),
        "decrement": (Arg("n", "integer", False, "amount, default 1"),),
        "transfer": (Arg("n", "integer", False, "rights, default 1"), Arg("to_region", "string")),
        "decided": (Arg("region", "string"), Arg("state", "object"), Arg("want", "integer", False)),
    }

    def __init__(self) -> None:
        self.deciding_region: str | None = None

    def new(
        self,
        replica: str,
        *,
        workflow: dict[str, Any] | None = None,
        max_points: int | None = None,
        resolver: str | None = None,
        bound: int | None = None,
    ) -> Any:
        return BoundedCounter(replica, bound or 0)

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        seq = (offset << 20) | index  # one object's operations of one origin arrive in this order
        n = a.get("n", 1)
        if kind == "increment":
            value.increment(n, region=origin, seq=seq)
        elif kind == "decided":
            if a.get("region") != origin:
                raise BoundedCounterError(f"{origin} cannot publish the decisions of {a.get('region')!r}")
            value.merge(BoundedCounter.from_dict(a["state"]))
        elif origin != self.deciding_region:
            return  # decided in `origin`; its `decided` operation brings the verdict here
        elif kind == "decrement":
            why = judge_decrement(value, origin, n)
            if why:
                raise BoundedCounterError(why)
            value.decrement(n, region=origin, seq=seq)
        else:
            to = a.get("to_region")
            why = judge_transfer(value, origin, n, to)
            if why:
                raise BoundedCounterError(why)
            value.transfer(n, to, region=origin, seq=seq)

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        if kind == "decided":
            why = decided_problem(args, rule.bound)
        else:
            why = amount_problem(args.get("n", 1), kind)
            to = args.get("to_region")
            if not why and kind == "transfer" and (not isinstance(to, str) or not to):
                why = f"transfer needs a region to send rights to, got {to!r}"
        if why:
            reasons.append(why)

    def view(self, value: Any) -> Any:
        return {"value": value.value(), "min": value.min, "rights": value.all_rights()}

    def plot(self, view: Any) -> float:
        return float(view["value"])


SPEC = register(BCounterSpec())


def decide_in(region: str | None) -> None:
    """Make this process's fold the judge of `region`'s decrements and transfers (None: nobody's)."""
    SPEC.deciding_region = region  # type: ignore[attr-defined]
