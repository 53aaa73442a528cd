"""Cross-region convergence on the real local stack.

1. Effect latency: an operation produced in eu until its effect is queryable in us (the us fold has
   folded the mirrored operation and published the new view to Redis, which the query API's
   /watch and the cache serve), p50/p99 of probe writes under a steady background load of
   1,000 and 10,000 ops/s written in eu.
   Baseline, same run: MirrorMaker 2's delay for a bare record eu -> us (no verifier, no fold).
2. Re-convergence after a partition: MirrorMaker is frozen (SIGSTOP) for --partition-s seconds
   while both regions keep writing, then thawed (SIGCONT); time until every counter reads the same
   in both regions and the per-partition state digests agree.
Run `jarvis stack up` first. `--quick` for a short run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import threading
import time
import uuid

import orjson
import redis

from benchmarks.idle import wait_idle
from benchmarks.replication import round_trips
from connectors.redis_cache import watch_channel
from connectors.regions import agreement, digests
from connectors.sdk import Client
from jarvis import topics
from jarvis.config import settings
from jarvis.stack.stack import Stack
from tests.integration.pipeline_helpers import read_value


def load(region: str, rate: int, stop: threading.Event, run: str, counts: dict[str, int]) -> None:
    """Counter increments over 1,000 objects at `rate` ops/s, paced in 10 ms slices."""
    c = Client(region=region, node_id=f"bench-load-{region}-{run}", linger_ms=5, dev_trust=True)
    per_slice = max(1, rate // 100)
    i = 0
    t_next = time.perf_counter()
    while not stop.is_set():
        for _ in range(per_slice):
            c.counter(f"ctr:load-{run}-{i % 1000}").increment(1)
            i += 1
        t_next += 0.01
        delay = t_next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if i % (per_slice * 10) == 0:
            c.flush()  # every 100 ms: the SDK's batches leave even at low rates
    c.flush()
    counts[region] = i


def effect_latency(rate: int, seconds: float, run: str) -> tuple[list[float], int]:
    s = settings()
    eu, us = s.region_names[0], s.region_names[1]
    stop = threading.Event()
    counts: dict[str, int] = {}
    loader = threading.Thread(target=load, args=(eu, rate, stop, run, counts))
    loader.start()
    probe_id = f"reg:probe-{run}-{rate}"
    r = redis.Redis.from_url(s.redis_url)
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(watch_channel(us, probe_id))
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}

    def listen() -> None:
        while not stop.is_set() or len(seen) < len(sent):
            m = sub.get_message(timeout=0.5)
            if m is None:
                if stop.is_set():
                    break
                continue
            v = orjson.loads(m["data"])["value"]
            now = time.perf_counter()
            if isinstance(v, int) and v in sent and v not in seen:
                seen[v] = now - sent[v]

    listener = threading.Thread(target=listen)
    listener.start()
    probe = Client(region=eu, node_id=f"bench-probe-{run}", linger_ms=0, dev_trust=True)
    time.sleep(1.0)  # the load is flowing
    t_end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < t_end:
        sent[i] = time.perf_counter()
        probe.register(probe_id).write(i)
        probe.flush()
        i += 1
        time.sleep(0.1)  # spaced beyond the fold's 50 ms cache flush, so probes are not coalesced
    time.sleep(3)
    stop.set()
    loader.join()
    listener.join(timeout=10)
    sub.close()
    achieved = counts.get(eu, 0)
    return [v * 1000 for v in seen.values()], achieved


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def reconvergence(partition_s: float, run: str) -> tuple[float, float]:
    """Seconds from thaw until (counters equal in both regions, digests agree)."""
    s = settings()
    eu, us = s.region_names[0], s.region_names[1]
    mm = Stack(s).mm2()
    pid = mm.pid()
    if pid is None or not mm.running():
        raise SystemExit("MirrorMaker is not running: `jarvis stack up` first")
    objects = [f"ctr:part-{run}-{k}" for k in range(50)]
    clients = {r: Client(region=r, node_id=f"bench-part-{r}-{run}", dev_trust=True) for r in (eu, us)}
    os.kill(pid, signal.SIGSTOP)
    t_stop = time.perf_counter()
    try:
        n = 0
        while time.perf_counter() - t_stop < partition_s:
            for c in clients.values():
                for oid in objects:
                    c.counter(oid).increment(1)
            n += 1
            for c in clients.values():
                c.flush()
            time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    t_heal = time.perf_counter()
    want = 2 * n
    eu_url, us_url = s.region_config(eu).query_url, s.region_config(us).query_url
    counters_at = None
    while time.perf_counter() - t_heal < 300:
        if all(read_value(eu_url, o) == want and read_value(us_url, o) == want for o in objects):
            counters_at = time.perf_counter() - t_heal
            break
        time.sleep(0.1)
    if counters_at is None:
        raise SystemExit("regions did not re-converge within 300 s")
    while True:
        ok, _ = agreement(digests(s))
        if ok:
            return counters_at, time.perf_counter() - t_heal
        if time.perf_counter() - t_heal > 300:
            raise SystemExit("digests did not agree within 300 s")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 s per load level, a 15 s partition")
    ap.add_argument("--seconds", type=float, default=30.0, help="probe duration per load level")
    ap.add_argument("--partition-s", type=float, default=60.0)
    args = ap.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    partition_s = 15.0 if args.quick else args.partition_s
    s = settings()
    run = uuid.uuid4().hex[:6]
    eu, us = s.region_names[0], s.region_names[1]
    waited = wait_idle(s)
    print(f"(waited {waited:.0f} s for the stack to drain earlier backlogs)")
    bare = round_trips(s.bootstrap(eu), s.bootstrap(us), topics.mirrored(eu), 50)
    print(f"{'eu -> us, queryable in us':<44}{'p50 ms':>9}{'p99 ms':>9}{'probes':>8}{'load ops/s':>12}")
    print(
        f"{'baseline: bare record through MirrorMaker 2':<44}{pct(bare, 0.5):>9.1f}{pct(bare, 0.99):>9.1f}{len(bare):>8}{'-':>12}"
    )
    for rate in (1_000, 10_000):
        wait_idle(s)
        lat, produced = effect_latency(rate, seconds, run)
        achieved = produced / (seconds + 4)
        print(
            f"{f'jarvis op under {rate:,} ops/s':<44}{pct(lat, 0.5):>9.1f}{pct(lat, 0.99):>9.1f}{len(lat):>8}{achieved:>12,.0f}"
        )
    print("targets: p99 under 1,000 ms at 1,000 ops/s; the seed claims 15 ms for 2 nodes on a LAN")
    wait_idle(s)
    counters, digest = reconvergence(partition_s, run)
    print(
        f"partition of {partition_s:.0f} s (MirrorMaker frozen, both regions writing): counters equal "
        f"{counters:.2f} s after the heal, state digests agree after {digest:.2f} s (target 5 s)"
    )
    print(f"median bare MirrorMaker delay {statistics.median(bare):.1f} ms")


if __name__ == "__main__":
    main()
