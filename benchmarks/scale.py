"""State digest cost against the number of objects (issue 24, item 1): in-process, no stack.

For 10k, 100k and 1M objects held by one fold worker (a FoldState over an in-memory table, the
objects as the table holds them: encoded states, a mix of CRDT types), in the same run:

- old: GET /v1/digest as it was, SHA-256 over every object's line in id order, all of it at once
  on the event loop (the full computation, v1);
- new, answer: the incremental digest (jarvis/state_digest.py via streams/state_digests.py)
  answering with nothing changed, and after CHANGED objects were changed by the fold and settled;
- new, build: putting every object into the digest once (what a worker does in the background after
  recovering its partitions), with the longest slice it holds the loop for;
- the digest's memory per object, and a check that its answer equals the full computation (v2).

The garbage collector runs as in a worker (jarvis/collector.py: the startup heap frozen, the worker's
thresholds); `--gc both` measures each size under CPython's defaults too, in the same run.

    python -m benchmarks.scale            # 10k, 100k, 1M
    python -m benchmarks.scale --sizes 10000,100000
    python -m benchmarks.scale --sizes 1000000 --gc both
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import sys
import time
from typing import Any

import orjson

from jarvis import collector
from jarvis.materialize import apply
from jarvis.ops import Dot, Operation
from jarvis.partitioning import partition_for
from jarvis.state_digest import full_digests
from pipelines.loader import object_factory, pipelines
from streams.fold_state import FoldState
from streams.loop_lag import GcTimer
from streams.state_digests import DigestKeeper

PARTITIONS = 12
DEFAULT_GC = gc.get_threshold()  # the interpreter's, before anything tunes it
CHANGED = 1_000
TYPES = (  # prefix, type, kind, args: the objects are spread over these in turn
    ("ctr", "pncounter", "increment", {"n": 3}),
    ("reg", "lww", "write", {"value": {"name": "ada", "n": 7}}),
    ("ors", "orset", "add", {"element": "x"}),
    ("ts", "timeseries", "append", {"timestamp": 1700000000.0, "value": 1.5}),
)


class Table:
    """What FoldState touches of a Faust table (the memory store's dict is `data`)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __iter__(self) -> Any:
        return iter(self.data)

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        pass


def build_state(n: int) -> FoldState:
    create = object_factory(pipelines())
    templates = []
    for prefix, t, kind, args in TYPES:
        st = create(f"{prefix}:template", t)
        apply(st, Operation("o", st.object_id, t, kind, args, "n1", "eu", 1 << 16), Dot("eu", 0, 1, 0))
        templates.append((prefix, orjson.loads(st.to_bytes())))
    table = Table()
    for i in range(n):
        prefix, tmpl = templates[i % len(templates)]
        oid = f"{prefix}:obj-{i:07d}"
        tmpl["id"] = oid
        table.data[oid.encode()] = orjson.dumps(tmpl)
    return FoldState("eu", table, pipelines(), cache=None)  # type: ignore[arg-type]


def old_digest(state: FoldState, partitions: int) -> dict[str, str]:
    """GET /v1/digest before issue 24 (streams/query.py digest_body, v1), verbatim in effect."""
    per_partition: dict[int, Any] = {}
    ids = sorted(state.object_ids())
    for oid in ids:
        st = state.peek(oid)
        if st is None:
            continue
        p = partition_for(oid, partitions)
        h = per_partition.setdefault(p, hashlib.sha256())
        h.update(oid.encode() + b"\0" + orjson.dumps(st.value.value(), option=orjson.OPT_SORT_KEYS) + b"\n")
    return {str(p): h.hexdigest() for p, h in sorted(per_partition.items())}


def change(state: FoldState, n: int, count: int, offset: int) -> None:
    """`count` objects changed by the fold (load, apply, changed) and settled into the table."""
    for k in range(count):
        i = (k * 7919) % n
        prefix, t, kind, args = TYPES[i % len(TYPES)]
        oid = f"{prefix}:obj-{i:07d}"
        st = state.load(oid)
        assert st is not None
        a = {**args, "n": k + 1} if t == "pncounter" else args
        apply(st, Operation(f"c{k}", oid, t, kind, a, "n1", "eu", (offset + k) << 16), Dot("eu", 1, offset + k, 0))
        state.changed(oid, partition_for(oid, PARTITIONS), st)
    state.write_unwritten()
    state.inflight.clear()


def timed(f: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t0, out


def measure(n: int, check: bool) -> dict[str, Any]:
    gc.collect()
    state = build_state(n)
    old_s, _ = timed(old_digest, state, PARTITIONS)
    keeper = DigestKeeper(state, PARTITIONS)
    # The build after a recovery: in slices, as the timer and a request run it. A slice can hold a
    # garbage-collector pass (over every object the process holds): timed apart.
    slices: list[float] = []
    collector = GcTimer(f"scale-{n}")
    gc.callbacks.append(collector)
    t0 = time.perf_counter()
    while keeper.digest.stale:
        s0 = time.perf_counter()
        keeper.refresh_slice()
        slices.append(time.perf_counter() - s0)
    build_s = time.perf_counter() - t0
    gc.callbacks.remove(collector)
    unchanged = min(timed(lambda: asyncio.run(keeper.current()))[0] for _ in range(5))
    change(state, n, CHANGED, 10)
    changed_s, answer = timed(lambda: asyncio.run(keeper.current()))
    change(state, n, CHANGED, 10 + CHANGED)
    old_after_s, _ = timed(old_digest, state, PARTITIONS)
    d = keeper.digest
    mem = sys.getsizeof(d._hash) + sum(map(sys.getsizeof, d._hash.values()))
    ok = None
    if check:
        answer = asyncio.run(keeper.current())
        full = full_digests(((oid, state.peek(oid).value.value()) for oid in state.object_ids()), PARTITIONS)  # type: ignore[union-attr]
        ok = answer == full
    return {
        "n": n, "old_s": min(old_s, old_after_s), "build_s": build_s, "slice_max_s": max(slices), "gc_max_s": collector.longest,
        "unchanged_s": unchanged, "changed_s": changed_s, "bytes_per_object": mem / n, "equal": ok,
    }  # fmt: skip


def use_collector(kind: str) -> None:
    """The collector as a worker runs it (`worker`) or as CPython starts (`default`)."""
    gc.unfreeze()
    gc.collect()
    if kind == "worker":
        collector.tune()
    else:
        gc.set_threshold(*DEFAULT_GC)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--no-check", action="store_true", help="skip the full v2 computation (the equality check)")
    p.add_argument(
        "--gc", choices=("worker", "default", "both"), default="worker",
        help="the collector's settings: a worker's (jarvis/collector.py), CPython's, or each in turn",
    )  # fmt: skip
    a = p.parse_args()
    rows = []
    for kind in ("default", "worker") if a.gc == "both" else (a.gc,):
        use_collector(kind)
        rows += [{**measure(int(n), not a.no_check), "gc": kind} for n in a.sizes.split(",")]
    print(f"state digest, {PARTITIONS} partitions, objects {'/'.join(t for _, t, _, _ in TYPES)} in turn")
    print(f"{'gc':>8} {'objects':>10} {'old (v1)':>10} {'new answer':>11} {f'after {CHANGED:,}':>12} "
          f"{'old/new':>9} {'build':>8} {'max slice':>10} {'max GC':>8} {'B/object':>9} {'== full':>8}")  # fmt: skip
    for r in rows:
        ratio = r["old_s"] / r["changed_s"]
        print(
            f"{r['gc']:>8} {r['n']:>10,} {r['old_s'] * 1000:>8.0f}ms {r['unchanged_s'] * 1000:>9.2f}ms "
            f"{r['changed_s'] * 1000:>10.1f}ms {ratio:>8.0f}x {r['build_s']:>7.1f}s "
            f"{r['slice_max_s'] * 1000:>8.1f}ms {r['gc_max_s'] * 1000:>6.1f}ms {r['bytes_per_object']:>9.0f} {str(r['equal']):>8}"
        )
    print(f"old: the v1 digest over every object, all at once; new answer: nothing changed / after {CHANGED:,}")
    print("objects changed and settled; build: every object put once (background, after a recovery),")
    print("in slices of at most the longest shown (max GC: the longest collector pass during the build,")
    print("which lands in some slice); old/new: old beside the answer after the changes.")
    print(f"gc: worker = frozen startup heap, thresholds {collector.THRESHOLDS}; default = {DEFAULT_GC}.")
    return 0 if all(r["equal"] in (True, None) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
