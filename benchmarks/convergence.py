"""Cross-region convergence on the real local stack, for 2, 3 or 5 regions.

1. Effect latency: an operation written in the first region until its effect is queryable in *every*
   other region (each fold has folded the mirrored operation and published the new view to Redis,
   which the query API's /watch and the cache serve), p50/p99 of probe writes spaced 100 ms apart,
   under a steady background load (default 1,000 ops/s in all, split evenly over the regions, so
   every MirrorMaker flow carries traffic).
   Baseline, same run, same load, interleaved with the probes: a bare record produced to the first
   region's jarvis.ops until it is read from its mirror in every other region (MirrorMaker 2's hop
   alone: no SDK, verifier, fold or Redis).
   Replication bytes: what MirrorMaker wrote into each region per second during the load (its own
   byte-count metric per target, read from its JMX exporter before and after).
2. Re-convergence after a partition (`--partition`): every MirrorMaker process frozen (SIGSTOP) for
   --partition-s seconds while every region keeps writing, then thawed; time until every counter
   reads the same in all regions and the per-partition state digests agree.

`python -m benchmarks.convergence` measures the stack that runs (`jarvis stack up` first).
`--regions 2,3,5` brings the stack up with the first 2, 3 and 5 of eu,us,ap,sa,af in turn (whatever
runs under JARVIS_HOME is brought down first, and each stack after its row), and prints the table.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass

import orjson
import redis
from confluent_kafka import Producer

from benchmarks.idle import wait_idle
from benchmarks.stack_check import require_stack
from connectors import api_client
from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from connectors.redis_cache import watch_channel
from connectors.regions import agreement, digests
from connectors.sdk import Client
from jarvis import config, topics
from jarvis.config import Settings
from jarvis.stack import mirrormaker
from jarvis.stack.stack import Stack
from tests.integration.pipeline_helpers import read_value

REGION_POOL = ("eu", "us", "ap", "sa", "af")
SEED_MS = {2: 15.0, 5: 45.0}  # the seed's network table: 2 nodes 15 ms, 5 nodes 45 ms (LAN)
PROBE_GAP_S = 0.1  # beyond the fold's cache flush, so two probes are never published as one


def load(s: Settings, region: str, rate: float, stop: threading.Event, run: str, counts: dict[str, int]) -> None:
    """Counter increments over 1,000 objects at `rate` ops/s, paced in 10 ms slices."""
    c = Client(region=region, node_id=f"bench-load-{region}-{run}", linger_ms=5, dev_trust=True, settings=s)
    per_slice = max(1, round(rate / 100))
    i = 0
    t_next = time.perf_counter()
    while not stop.is_set():
        for _ in range(per_slice):
            c.counter(f"ctr:load-{run}-{region}-{i % 1000}").increment(1)
            i += 1
        t_next += 0.01
        delay = t_next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if i % (per_slice * 10) == 0:
            c.flush()  # every 100 ms: the SDK's batches leave even at low rates
    c.flush()
    counts[region] = i


class JarvisProbes:
    """Register writes in the first region; a probe counts once every other region published it."""

    def __init__(self, s: Settings, run: str) -> None:
        self.s, self.src, self.others = s, s.region_names[0], list(s.region_names[1:])
        self.oid = f"reg:probe-{run}"
        self.sent: dict[int, float] = {}
        self.seen: dict[int, dict[str, float]] = {}
        self.sub = redis.Redis.from_url(s.redis_url).pubsub(ignore_subscribe_messages=True)
        self.sub.subscribe(*(watch_channel(r, self.oid) for r in s.region_names))
        self.client = Client(region=self.src, node_id=f"bench-probe-{run}", linger_ms=0, dev_trust=True, settings=s)
        self.channel_region = {watch_channel(r, self.oid).encode(): r for r in s.region_names}

    def listen(self, stop: threading.Event) -> None:
        while not stop.is_set():
            m = self.sub.get_message(timeout=0.2)
            if m is None:
                continue
            now = time.perf_counter()
            v = orjson.loads(m["data"])["value"]
            if isinstance(v, int) and v in self.sent:
                self.seen.setdefault(v, {}).setdefault(self.channel_region[m["channel"]], now)

    def send(self, i: int) -> None:
        self.sent[i] = time.perf_counter()
        self.client.register(self.oid).write(i)
        self.client.flush()

    def latencies(self) -> list[float]:
        """Per probe seen everywhere: ms until the last other region published it."""
        return [
            (max(v for r, v in at.items() if r != self.src) - self.sent[i]) * 1000
            for i, at in self.seen.items()
            if all(r in at for r in self.others)
        ]

    def local(self) -> list[float]:
        """ms until the writing region itself published it: the same path without MirrorMaker."""
        return [(at[self.src] - self.sent[i]) * 1000 for i, at in self.seen.items() if self.src in at]

    def close(self) -> None:
        self.sub.close()


class BareProbes:
    """A bare record in the first region's jarvis.ops until read from its mirror in every other region."""

    def __init__(self, s: Settings) -> None:
        src = s.region_names[0]
        self.others = list(s.region_names[1:])
        self.producer = Producer({**client_conf(s.bootstrap(src), settings=s), "linger.ms": 0, "acks": "all"})
        self.consumers = {r: tail_consumer(s.bootstrap(r), topics.mirrored(src), settings=s) for r in self.others}
        self.sent: dict[bytes, float] = {}
        self.seen: dict[bytes, dict[str, float]] = {}
        self.lock = threading.Lock()

    def listen(self, region: str, stop: threading.Event) -> None:
        c = self.consumers[region]
        while not stop.is_set():
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            now = time.perf_counter()
            with self.lock:
                if msg.key() in self.sent:
                    self.seen.setdefault(msg.key(), {}).setdefault(region, now)

    def send(self) -> None:
        key = b"bare-" + uuid.uuid4().hex.encode()
        with self.lock:
            self.sent[key] = time.perf_counter()
        self.producer.produce(topics.OPS, key=key, value=b"x" * 200)
        self.producer.flush(10)

    def latencies(self) -> list[float]:
        return [(max(at.values()) - self.sent[k]) * 1000 for k, at in self.seen.items() if len(at) == len(self.others)]

    def close(self) -> None:
        for c in self.consumers.values():
            c.close()


BYTES = re.compile(r'^kafka_connect_mirror_source_connector_byte_count\{([^}]*)\}\s+(\S+)', re.M)


def mirrored_bytes(s: Settings) -> dict[str, float]:
    """Bytes MirrorMaker has written into each target region so far (its cumulative byte-count)."""
    out: dict[str, float] = dict.fromkeys(s.region_names, 0.0)
    for port in mirrormaker.metrics_ports(s):
        url = f"{s.http_scheme}://{s.host}:{port}/metrics"
        text = api_client.urlopen(url, 10, settings=s).read().decode()
        for labels, value in BYTES.findall(text):
            target = re.search(r'target="([^"]+)"', labels)
            if target and target.group(1) in out:
                out[target.group(1)] += float(value)
    return out


@dataclass
class Row:
    regions: int
    jarvis: list[float]
    bare: list[float]
    local: list[float]
    achieved: float
    bytes_in: dict[str, float]  # bytes/s MirrorMaker wrote into each region


def measure(s: Settings, rate: int, seconds: float, run: str) -> Row:
    stop_load, stop_listen = threading.Event(), threading.Event()
    counts: dict[str, int] = {}
    per_region = rate / len(s.region_names)
    loaders = [
        threading.Thread(target=load, args=(s, r, per_region, stop_load, run, counts)) for r in s.region_names
    ]
    jp, bp = JarvisProbes(s, run), BareProbes(s)
    listeners = [threading.Thread(target=jp.listen, args=(stop_listen,))]
    listeners += [threading.Thread(target=bp.listen, args=(r, stop_listen)) for r in bp.others]
    for t in [*loaders, *listeners]:
        t.start()
    time.sleep(2.0)  # the load is flowing and the tail consumers are positioned
    b0, t0 = mirrored_bytes(s), time.perf_counter()
    t_end = t0 + seconds
    i = 0
    while time.perf_counter() < t_end:
        jp.send(i)
        time.sleep(PROBE_GAP_S / 2)
        bp.send()
        time.sleep(PROBE_GAP_S / 2)
        i += 1
    b1, t1 = mirrored_bytes(s), time.perf_counter()
    time.sleep(3)  # the last probes arrive
    stop_load.set()
    for t in loaders:
        t.join()
    stop_listen.set()
    for t in listeners:
        t.join(timeout=10)
    jp.close()
    bp.close()
    achieved = sum(counts.values()) / (seconds + 5)
    bytes_in = {r: (b1[r] - b0[r]) / (t1 - t0) for r in s.region_names}
    return Row(len(s.region_names), jp.latencies(), bp.latencies(), jp.local(), achieved, bytes_in)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


HEADER = (
    f"{'regions':>7} | {'write -> queryable in all others':>33} | {'bare MirrorMaker hop':>21} | "
    f"{'ratio p50':>9} | {'in the writing region':>21} | {'probes':>6} | {'load ops/s':>10} | {'replication in, per region':>26} | {'seed':>6}"
)


def show(row: Row) -> str:
    j50, j99, b50, b99 = pct(row.jarvis, 0.5), pct(row.jarvis, 0.99), pct(row.bare, 0.5), pct(row.bare, 0.99)
    per_region = sum(row.bytes_in.values()) / len(row.bytes_in)
    seed = f"{SEED_MS[row.regions]:.0f} ms" if row.regions in SEED_MS else "-"
    return (
        f"{row.regions:>7} | {f'p50 {j50:.1f} / p99 {j99:.1f} ms':>33} | {f'{b50:.1f} / {b99:.1f} ms':>21} | "
        f"{j50 / b50:>8.1f}x | {f'{pct(row.local, 0.5):.1f} / {pct(row.local, 0.99):.1f} ms':>21} | {len(row.jarvis):>6} | {row.achieved:>10,.0f} | "
        f"{f'{per_region / 1024:.1f} KiB/s (max {max(row.bytes_in.values()) / 1024:.1f})':>26} | {seed:>6}"
    )


def reconvergence(s: Settings, partition_s: float, run: str) -> tuple[float, float]:
    """Seconds from thaw until (counters equal in every region, digests agree)."""
    pids = [p.pid() for p in Stack(s).mm2_procs()]
    if not pids or None in pids:
        raise SystemExit("MirrorMaker is not running: `jarvis stack up` first")
    objects = [f"ctr:part-{run}-{k}" for k in range(50)]
    clients = {r: Client(region=r, node_id=f"bench-part-{r}-{run}", dev_trust=True, settings=s) for r in s.region_names}
    for pid in pids:
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
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    t_heal = time.perf_counter()
    want = len(clients) * n
    urls = [r.query_url for r in s.regions]
    counters_at = None
    while time.perf_counter() - t_heal < 300:
        if all(read_value(u, o) == want for u in urls for o in objects):
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


def use_regions(names: tuple[str, ...]) -> Settings:
    """Settings for `names`, in this process and in every worker the stack starts from it."""
    os.environ["JARVIS_REGIONS"] = ",".join(names)
    config.settings.cache_clear()
    return config.settings()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regions", help="region counts to bring up in turn, e.g. 2,3,5 (default: the running stack)")
    ap.add_argument("--rate", type=int, default=1_000, help="background load, ops/s over all regions")
    ap.add_argument("--seconds", type=float, default=20.0, help="probe duration per row")
    ap.add_argument("--quick", action="store_true", help="8 s per row, a 15 s partition")
    ap.add_argument("--partition", action="store_true", help="also measure re-convergence after a partition")
    ap.add_argument("--partition-s", type=float, default=60.0)
    ap.add_argument("--keep-up", action="store_true", help="with --regions: leave the last stack up")
    args = ap.parse_args()
    seconds = 8.0 if args.quick else args.seconds
    partition_s = 15.0 if args.quick else args.partition_s
    run = uuid.uuid4().hex[:6]
    counts = [int(n) for n in args.regions.split(",")] if args.regions else [None]
    if any(n is not None and not 2 <= n <= len(REGION_POOL) for n in counts):
        raise SystemExit(f"--regions: counts from 2 to {len(REGION_POOL)} ({','.join(REGION_POOL)})")
    if args.regions:
        # Whatever runs under JARVIS_HOME, with any of the pool's regions, goes first.
        widest = tuple(dict.fromkeys([*config.settings().region_names, *REGION_POOL]))
        Stack(use_regions(widest)).down()
    rows: list[Row] = []
    print(f"background load {args.rate:,} ops/s over all regions; probes every {PROBE_GAP_S * 1000:.0f} ms for {seconds:.0f} s")
    print(HEADER)
    for n in counts:
        s = use_regions(REGION_POOL[:n]) if n else config.settings()
        stack = Stack(s)
        try:
            if n:
                took = stack.up()
                print(f"(stack of {n} regions up in {took:.0f} s)", flush=True)
            require_stack(s)
            waited = wait_idle(s)
            print(f"(waited {waited:.0f} s for the stack to drain earlier backlogs)", flush=True)
            rows.append(measure(s, args.rate, seconds, run))
            print(show(rows[-1]), flush=True)
            if args.partition:
                wait_idle(s)
                counters, digest = reconvergence(s, partition_s, run)
                print(
                    f"        partition of {partition_s:.0f} s (MirrorMaker frozen, every region writing): counters "
                    f"equal {counters:.2f} s after the heal, state digests agree after {digest:.2f} s", flush=True
                )
        finally:
            if n and not (args.keep_up and n == counts[-1]):
                stack.down()
    print("targets: p50 below the seed's 15 ms (2 regions) and 45 ms (5 regions), p99 below 100 ms")


if __name__ == "__main__":
    main()
