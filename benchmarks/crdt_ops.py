"""CRDT operation speed and state size, one core, beside the seed's table and a naive baseline.

For every type: operations per second of the mutator (including the delta it returns) and bytes of
state held after N operations, scaled to 1,000,000 operations (tracemalloc: memory allocated by the
state and still live). The naive baseline does the same mutation on a plain dict/set/list, with no
CRDT metadata and no delta: the floor a CRDT cannot beat, measured in the same run. "beats seed"
says, per row, whether both figures beat the seed's (more ops/s, fewer MB), and if not which misses.

The seed's table has no bounded counter, text or map: those rows (marked *) stand beside its nearest
row, the PN-Counter's. Text's document lives in Rust (pycrdt), where tracemalloc does not see it, so
its memory is the resident-set growth of a fresh interpreter running that row instead (marked rss).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from jarvis.crdt import (
    BoundedCounter,
    GCounter,
    Graph,
    GSet,
    LWWRegister,
    Map,
    ORSet,
    PNCounter,
    Text,
    TimeSeries,
    Workflow,
)

SEED = {  # the seed's table: ops/s, MB per 1M ops
    "G-Counter increment": (1_500_000, 24),
    "PN-Counter increment": (1_200_000, 32),
    "G-Set add": (800_000, 45),
    "OR-Set add": (600_000, 67),
    "LWW-Register write": (900_000, 28),
    "TimeSeriesCRDT append": (450_000, 89),
    "GraphCRDT add_vertex": (300_000, 156),
    "WorkflowCRDT transition": (200_000, 234),
}
NEAREST = {  # the new types, beside the seed row nearest to them
    "BoundedCounter decrement": "PN-Counter increment",
    "Text insert": "PN-Counter increment",
    "Map update (register)": "PN-Counter increment",
}
RSS_ROWS = {"Text insert"}
WF = {
    "initial": "draft",
    "states": ["draft", "submitted", "approved", "rejected"],
    "transitions": {"draft": ["submitted"], "submitted": ["approved", "rejected"], "rejected": ["draft"]},
}
CYCLE = ["submitted", "rejected", "draft"]


def cases(
    n: int,
) -> dict[
    str, tuple[Callable[[], Any], Callable[[Any, int], Any], Callable[[], Any], Callable[[Any, int], Any]]
]:
    """name -> (make state, apply op i, make naive, apply naive op i)."""
    keys = [f"e{i}" for i in range(n)]

    def naive_wf_step(s: dict, i: int) -> None:
        to = CYCLE[i % 3]
        if to in WF["transitions"][s["state"]]:
            s["state"] = to
        s["history"].append((i, to))

    def stocked() -> BoundedCounter:
        c = BoundedCounter("a")
        c.increment(n)  # rights for every decrement of the run
        return c

    def naive_decrement(s: dict, i: int) -> None:
        if s["rights"] >= 1:  # the same check, without the rights matrix, the reason or the delta
            s["rights"] -= 1
            s["value"] -= 1

    return {
        "G-Counter increment": (
            lambda: GCounter("a"),
            lambda s, i: s.increment(1),
            lambda: {"a": 0},
            lambda s, i: s.__setitem__("a", s["a"] + 1),
        ),
        "PN-Counter increment": (
            lambda: PNCounter("a"),
            lambda s, i: s.increment(1),
            lambda: {"a": 0},
            lambda s, i: s.__setitem__("a", s["a"] + 1),
        ),
        "G-Set add": (lambda: GSet("a"), lambda s, i: s.add(keys[i]), set, lambda s, i: s.add(keys[i])),
        "OR-Set add": (
            lambda: ORSet("a"),
            lambda s, i: s.add(keys[i]),
            dict,
            lambda s, i: s.__setitem__(keys[i], ("a", i)),
        ),
        "LWW-Register write": (
            lambda: LWWRegister("a"),
            lambda s, i: s.write(i, timestamp=i),
            lambda: [None, 0],
            lambda s, i: s.__setitem__(0, i) if i >= s[1] else None,
        ),
        "TimeSeriesCRDT append": (
            lambda: TimeSeries("a"),
            lambda s, i: s.append_data_point(float(i), 1.0),
            dict,
            lambda s, i: s.__setitem__(float(i), 1.0),
        ),
        "GraphCRDT add_vertex": (
            lambda: Graph("a"),
            lambda s, i: s.add_vertex(keys[i]),
            set,
            lambda s, i: s.add(keys[i]),
        ),
        "WorkflowCRDT transition": (
            lambda: Workflow("a", WF),
            lambda s, i: s.transition(CYCLE[i % 3], timestamp=i),
            lambda: {"state": "draft", "history": []},
            naive_wf_step,
        ),
        # The origin's path: judged against its rights, then applied; the delta is the region's state.
        "BoundedCounter decrement": (
            stocked,
            lambda s, i: s.decrement(1),
            lambda: {"rights": n, "value": n},
            naive_decrement,
        ),
        # Typing: one character at the end per operation, each returning its Yrs update.
        "Text insert": (lambda: Text("a"), lambda s, i: s.insert(i, "x"), list, lambda s, i: s.append("x")),
        "Map update (register)": (
            lambda: Map("a"),
            lambda s, i: s.update(keys[i], "register", "write", {"value": i}, timestamp=i),
            dict,
            lambda s, i: s.__setitem__(keys[i], i),
        ),
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def rate(
    make: Callable[[], Any],
    step: Callable[[Any, int], Any],
    n: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    s = make()
    gc.disable()
    t0 = clock()
    for i in range(n):
        step(s, i)
    elapsed = clock() - t0
    gc.enable()
    return n / elapsed


def state_bytes(make: Callable[[], Any], step: Callable[[Any, int], Any], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    s = make()
    for i in range(n):
        step(s, i)  # the returned delta is dropped: only the state stays live
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del s
    return (after - before) * (1_000_000 / n)


_RSS_CHILD = """
import gc, sys
from benchmarks.crdt_ops import cases
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
n = int(sys.argv[2])
make, step, _, _ = cases(n)[sys.argv[1]]
gc.collect()
before = rss()
s = make()
for i in range(n):
    step(s, i)
gc.collect()
print(rss() - before)
"""


def rss_bytes(name: str, n: int) -> float:
    """Resident-set growth of a fresh interpreter running the row: memory that tracemalloc cannot
    see (allocated in Rust), on pages no earlier row has freed."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, name, str(n)], capture_output=True, text=True, check=True
    )
    return max(0, int(out.stdout.strip())) * (1_000_000 / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100,000 operations per type instead of 1,000,000")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per type; the best is reported")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, for a machine shared with other "
        "load, where elapsed time also counts the time the process waited for the core",
    )
    args = ap.parse_args()
    clock = CLOCKS[args.clock]
    n = 100_000 if args.quick else 1_000_000
    mem_n = min(n, 200_000)
    rows = []
    for name, (make, step, naive_make, naive_step) in cases(n).items():
        ops = naive = 0.0
        for _ in range(max(1, args.repeat)):  # interleaved: a burst of load on a shared core hits both
            ops = max(ops, rate(make, step, n, clock))
            naive = max(naive, rate(naive_make, naive_step, n, clock))
        mb = (rss_bytes(name, mem_n) if name in RSS_ROWS else state_bytes(make, step, mem_n)) / 1e6
        rows.append((name, ops, naive, mb))
    print(
        f"{n:,} operations per type, one core, {args.clock} clock, best of {max(1, args.repeat)}; "
        "memory: live bytes of the state (tracemalloc) per 1M ops\n"
    )
    hdr = (
        f"{'operation':<26}{'jarvis ops/s':>14}{'seed ops/s':>12}{'vs seed':>9}{'naive ops/s':>13}"
        f"{'MB/1M':>8}{'seed MB':>9}  beats seed"
    )
    print(hdr)
    print("-" * len(hdr))
    misses = 0
    for name, ops, naive, mb in rows:
        seed_ops, seed_mb = SEED[NEAREST.get(name, name)]
        missed = [what for what, ok in (("ops/s", ops > seed_ops), ("MB", mb < seed_mb)) if not ok]
        misses += bool(missed)
        verdict = "no: " + ", ".join(missed) if missed else "yes"
        label = name + (" *" if name in NEAREST else "") + (" rss" if name in RSS_ROWS else "")
        print(
            f"{label:<26}{ops:>14,.0f}{seed_ops:>12,}{ops / seed_ops:>8.2f}x{naive:>13,.0f}{mb:>8.1f}{seed_mb:>9}"
            f"  {verdict}"
        )
    print(f"\n{len(rows) - misses} of {len(rows)} rows beat the seed on both figures")


if __name__ == "__main__":
    main()
