"""SDK produce rate into the real local Kafka, beside raw confluent-kafka in the same run.

1. SDK: `client.counter(id).increment(1)` over 1,000 objects, with everything the SDK does per
   operation (HLC, operation record, per-partition batching, Ed25519 signature per batch, Avro
   single-object encoding, idempotent acks=all lz4 producer), until `flush()` returns.
2. Raw: confluent-kafka producing the SDK's own batch bytes (pre-encoded, same sizes, same topic
   settings) with the same producer configuration; reported as operations per second.
Target: the SDK reaches at least 50% of the raw rate with signing on.
Run `jarvis stack up` first. `--quick` for a small run.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Producer

from benchmarks.idle import wait_idle
from benchmarks.pipeline import signed_batches
from benchmarks.stack_check import require_stack
from connectors.kafka_clients import client_conf
from connectors.sdk import Client
from jarvis import topics
from jarvis.config import settings
from jarvis.stack.workers import worker_procs

REGION = "eu"
TOPIC = "bench.produce.raw"


def sdk_rate(n: int, ids: list[str], batch_size: int) -> float:
    c = Client(region=REGION, node_id="bench-produce", batch_size=batch_size, linger_ms=20, dev_trust=True)
    handles = [c.counter(o) for o in ids]
    t0 = time.perf_counter()
    for i in range(n):
        handles[i % len(handles)].increment(1)
    c.flush(timeout=300)
    return n / (time.perf_counter() - t0)


def raw_rate(n: int, ids: list[str], batch_size: int) -> float:
    s = settings()
    batches = signed_batches(n, ids, batch_size)
    p = Producer(
        {
            **client_conf(s.bootstrap(REGION)),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "message.max.bytes": topics.PRODUCER_REQUEST_MAX_BYTES,
        }
    )
    t0 = time.perf_counter()
    for _, key, value in batches:
        while True:
            try:
                p.produce(TOPIC, key=key, value=value)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(300)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-n", type=int, default=None, help="operations (default 300,000; --quick 50,000)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="SDK and raw runs alternate this many times (default 3)"
    )
    args = ap.parse_args()
    n = args.n or (50_000 if args.quick else 300_000)
    s = settings()
    require_stack(s)
    print(f"(waited {wait_idle(s):.0f} s for the stack to drain earlier backlogs)")
    # Every worker stops for the run: they would otherwise fold what the SDK sends, on the same 2 cores.
    stopped = [p for p in worker_procs(s) if p.running()]
    for p in stopped:
        p.stop()
    try:
        rows = measure(n, args.rounds)
    finally:
        for p in stopped:
            p.start()
    print(f"{'producer (all workers stopped during the run)':<56}{'ops/s':>12}")
    for line in rows:
        print(line)
    print("target: SDK >= 50% of raw with signing on")


def measure(n: int, rounds: int) -> list[str]:
    """SDK and raw alternate, so a noisy neighbour on this shared machine hits both alike; the
    ratio reported is the median of the rounds' ratios."""
    out = []
    ids = [f"ctr:produce-{uuid.uuid4().hex[:6]}-{i}" for i in range(1000)]
    for batch in (100, 500):
        sdks, raws = [], []
        for _ in range(rounds):
            sdks.append(sdk_rate(n, ids, batch))
            raws.append(raw_rate(n, ids, batch))
        ratios = sorted(s / r for s, r in zip(sdks, raws, strict=True))
        each = ", ".join(f"{s:,.0f}/{r:,.0f}" for s, r in zip(sdks, raws, strict=True))
        out.append(
            f"{f'SDK, signed batches of {batch} (median of {rounds})':<56}{statistics.median(sdks):>12,.0f}"
        )
        out.append(f"{'raw confluent-kafka, the same bytes (median)':<56}{statistics.median(raws):>12,.0f}")
        out.append(f"{'SDK / raw, median of the rounds':<56}{ratios[len(ratios) // 2]:>12.1%}")
        out.append(f"  rounds (SDK/raw ops/s): {each}")
    return out


if __name__ == "__main__":
    main()
