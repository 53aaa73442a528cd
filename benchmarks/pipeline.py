"""Pipeline throughput and latency in one region of the real local stack.

Measured in the same run:
  1. jarvis: operations per second from the SDK's produce to queryable state (the fold's counter of
     folded operations reaches the total), through verifier and fold workers already running;
  2. raw ceiling: confluent-kafka producing and consuming the same number of bytes through the same
     broker with no processing;
  3. naive Faust baseline: one JSON event per operation, a Faust agent updating a table per event;
  4. latency at a steady 10,000 ops/s: produce -> visible over HTTP, p50/p99.
Run `jarvis stack up` first. `--quick` for a small run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_io import tail_consumer
from connectors.sdk import Client
from jarvis.config import settings
from tests.integration.pipeline_helpers import read_value

REGION = "eu"


def metric(query_url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{query_url}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def jarvis_throughput(n_ops: int, objects: int) -> tuple[float, int]:
    s = settings()
    q = s.region_config(REGION).query_url
    client = Client(region=REGION, node_id="bench", batch_size=1000, linger_ms=20)
    run = uuid.uuid4().hex[:6]
    ids = [f"ctr:bench-{run}-{i}" for i in range(objects)]
    start_folded = metric(q, "jarvis_fold_ops_total")
    t0 = time.perf_counter()
    for i in range(n_ops):
        client.counter(ids[i % objects]).increment(1)
    client.flush(timeout=300)
    while metric(q, "jarvis_fold_ops_total") - start_folded < n_ops:
        if time.perf_counter() - t0 > 600:
            raise SystemExit("pipeline did not fold everything within 600 s")
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    sample = read_value(q, ids[0])
    assert sample == n_ops // objects + (1 if n_ops % objects else 0), f"counter reads {sample}"
    return n_ops / elapsed, client.sent_ops


def raw_ceiling(n_msgs: int, size: int) -> float:
    s = settings()
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": s.bootstrap(REGION)})
    admin.create_topics([NewTopic(topic, s.partitions, 1)])[topic].result()
    time.sleep(1)
    consumer = tail_consumer(s.bootstrap(REGION), topic)
    p = Producer(
        {
            "bootstrap.servers": s.bootstrap(REGION),
            "linger.ms": 20,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
        }
    )
    payload = b"x" * size
    t0 = time.perf_counter()
    for i in range(n_msgs):
        while True:
            try:
                p.produce(topic, payload, key=str(i % 1000).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush()
    got = 0
    while got < n_msgs:
        msgs = consumer.consume(10000, timeout=1)
        got += sum(1 for m in msgs if not m.error())
    elapsed = time.perf_counter() - t0
    consumer.close()
    admin.delete_topics([topic])
    return n_msgs / elapsed


NAIVE_APP = textwrap.dedent(
    """
    import json, faust
    app = faust.App("bench-naive-{run}", broker="kafka://{bootstrap}", store="memory://", web_enabled=False,
                    topic_partitions={partitions}, value_serializer="raw")
    src = app.topic("{topic}", value_type=bytes)
    table = app.Table("naive-{run}", default=int, partitions={partitions})
    done = app.topic("{topic}.done", value_type=bytes)

    @app.agent(src)
    async def fold(stream):
        n = 0
        async for value in stream:
            op = json.loads(value)
            table[op["object_id"]] += op["n"]
            n += 1
            if n % 1000 == 0:
                await done.send(value=str(n).encode())
    """
)


def naive_faust(n_ops: int, objects: int) -> float:
    """One event per operation, one table update per event: how most first Faust folds look."""
    s = settings()
    run = uuid.uuid4().hex[:6]
    topic = f"bench.naive.{run}"
    admin = AdminClient({"bootstrap.servers": s.bootstrap(REGION)})
    for t in (topic, f"{topic}.done"):
        admin.create_topics([NewTopic(t, s.partitions, 1)])[t].result()
    workdir = Path(s.home) / "bench-naive"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"naive_{run}.py").write_text(
        NAIVE_APP.format(run=run, bootstrap=s.bootstrap(REGION), partitions=s.partitions, topic=topic)
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", f"naive_{run}", "worker", "-l", "warn", "--without-web"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(12)  # let the worker join its group before the clock starts
        done = tail_consumer(s.bootstrap(REGION), f"{topic}.done")
        p = Producer({"bootstrap.servers": s.bootstrap(REGION), "linger.ms": 20, "compression.type": "lz4"})
        t0 = time.perf_counter()
        for i in range(n_ops):
            while True:
                try:
                    p.produce(
                        topic,
                        f'{{"object_id": "o{i % objects}", "n": 1}}'.encode(),
                        key=f"o{i % objects}".encode(),
                    )
                    break
                except BufferError:
                    p.poll(0.01)
        p.flush()
        seen = 0
        deadline = time.monotonic() + 600
        while seen < n_ops - 1000 * s.partitions and time.monotonic() < deadline:
            for m in done.consume(1000, timeout=1):
                if not m.error():
                    seen += 1000
        elapsed = time.perf_counter() - t0
        done.close()
        return seen / elapsed
    finally:
        worker.terminate()
        worker.wait(30)
        admin.delete_topics([topic, f"{topic}.done"])


def latency_at(rate: int, seconds: float) -> list[float]:
    """Produce at `rate` ops/s; sample one op every 50 ms and time until it shows over HTTP."""
    s = settings()
    q = s.region_config(REGION).query_url
    client = Client(region=REGION, node_id="bench-latency", batch_size=200, linger_ms=2)
    run = uuid.uuid4().hex[:6]
    stop = threading.Event()
    samples: list[float] = []

    def probe() -> None:
        i = 0
        while not stop.is_set():
            oid = f"reg:lat-{run}-{i}"
            t0 = time.perf_counter()
            client.register(oid).write(i)
            client.flush()
            while read_value(q, oid) != i:
                if time.perf_counter() - t0 > 10:
                    break
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
            i += 1
            time.sleep(0.05)

    load = Client(region=REGION, node_id="bench-load", batch_size=200, linger_ms=5)
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t0 = time.perf_counter()
    sent = 0
    while time.perf_counter() - t0 < seconds:
        target = int((time.perf_counter() - t0) * rate)
        while sent < target:
            load.counter(f"ctr:load-{run}-{sent % 100}").increment(1)
            sent += 1
        time.sleep(0.005)
    load.flush()
    stop.set()
    t.join(15)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 50_000 if args.quick else 300_000
    ops_s, _ = jarvis_throughput(n, objects=1000)
    raw = raw_ceiling(n // 100, 100 * 60)  # the same bytes: ~60 B per op, batches of 100 ops
    raw_ops = raw * 100
    naive = naive_faust(min(n, 100_000), objects=1000)
    lat = latency_at(10_000, 10 if args.quick else 30)
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [float("nan")] * 99
    print(f"\n{'measure':<52}{'figure':>16}")
    print(f"{'jarvis: ops/s produce -> queryable (' + str(n) + ' ops)':<52}{ops_s:>16,.0f}")
    print(f"{'raw Kafka ceiling: same bytes, ops/s equivalent':<52}{raw_ops:>16,.0f}")
    print(f"{'naive Faust fold: ops/s (one event per op)':<52}{naive:>16,.0f}")
    print(f"{'jarvis / raw ceiling':<52}{ops_s / raw_ops:>16.1%}")
    print(f"{'jarvis / naive Faust':<52}{ops_s / naive:>15.1f}x")
    print(f"{'latency at 10,000 ops/s: p50 / p99 ms':<52}{q[49]:>8.1f} / {q[98]:.1f}")
    print("targets: >= 100,000 ops/s, >= 10x naive, >= 50% of raw, p99 < 100 ms at 10,000 ops/s")


if __name__ == "__main__":
    main()
