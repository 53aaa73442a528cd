"""Cross-region replication delay of one bare record through MirrorMaker 2 (eu -> us), median of N.

Baseline in the same run: the same produce -> consume round trip inside one region (no mirroring),
so the figure separates MirrorMaker's share from the client and broker's.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Producer

from benchmarks.stack_check import require_stack
from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from jarvis import topics
from jarvis.config import settings


def round_trips(src_bootstrap: str, dst_bootstrap: str, dst_topic: str, n: int) -> list[float]:
    consumer = tail_consumer(dst_bootstrap, dst_topic)
    producer = Producer({**client_conf(src_bootstrap), "linger.ms": 0, "acks": "all"})
    delays = []
    for _ in range(n):
        key = uuid.uuid4().hex.encode()
        t0 = time.perf_counter()
        producer.produce(topics.OPS, key=key, value=b"x" * 200)
        producer.flush(10)
        while True:
            msg = consumer.poll(5)
            if msg is None:
                raise SystemExit(f"record not seen in {dst_topic} within 5 s: is MirrorMaker running?")
            if not msg.error() and msg.key() == key:
                delays.append((time.perf_counter() - t0) * 1000)
                break
    consumer.close()
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20)
    args = ap.parse_args()
    s = settings()
    require_stack(s)
    eu, us = s.region_names[0], s.region_names[1]
    local = round_trips(s.bootstrap(eu), s.bootstrap(eu), topics.OPS, args.n)
    mirrored = round_trips(s.bootstrap(eu), s.bootstrap(us), topics.mirrored(eu), args.n)
    print(f"{'path':<40}{'median ms':>12}{'p95 ms':>10}{'max ms':>10}")
    for name, d in (
        (f"baseline: produce->consume in {eu}", local),
        (f"MirrorMaker 2: {eu} -> {us}", mirrored),
    ):
        q = statistics.quantiles(d, n=20)
        print(f"{name:<40}{statistics.median(d):>12.1f}{q[18]:>10.1f}{max(d):>10.1f}")
    added = statistics.median(mirrored) - statistics.median(local)
    print(f"seed's claim, 2 nodes on a LAN: 15 ms; MirrorMaker adds {added:.1f} ms to the local round trip")


if __name__ == "__main__":
    main()
