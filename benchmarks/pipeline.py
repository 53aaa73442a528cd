"""Pipeline throughput and latency in one region of the real local stack.

Measured in the same run:
  1. jarvis: operations per second from ingress to queryable state: signed batches in the SDK's wire
     format (1,000 ops each, built before the clock starts) are produced to jarvis.ops.ingress, and
     the clock stops when every object's value in the fold's Redis cache is the expected one; the
     verifier and fold workers of the stack do the work. Sustained rate: a warm-up of a sixth as
     many operations on the same objects is folded first. Also the SDK's own rate (one thread,
     building, signing and producing);
  2. raw ceiling: confluent-kafka producing and consuming the same batch bytes through the same
     broker with no processing (ops/s equivalent);
  3. naive Faust baseline: one JSON event per operation, a Faust agent updating a table per event;
  4. latency at a steady 10,000 ops/s: produce -> visible over HTTP, p50/p99;
  5. memory per 1M objects held: growth of the fold worker's RSS and of Redis's used memory while one
     increment each lands on 1,000,000 new objects, beside a plain Python dict of the same ids
     (id -> int, measured in a fresh interpreter): the least any in-memory store of them could hold.
  6. reservation latency of a bounded counter, every worker of both regions and MirrorMaker 2
     running: `decrement(1, wait=True)` (the SDK's verdict: the verifier's, then the origin fold's
     decision on jarvis.ops.decided) p50/p99 when the region holds rights, and, when it holds none,
     from the first attempt to the first accepted one (each refusal asks; another region's fold
     answers with a transfer); beside the same verdict path's baseline, a PN-Counter increment with
     `flush(wait=True)` (the verifier's verdict alone), in the same run.
By default the other region's workers, the archivers, the agents and MirrorMaker 2 are stopped
during the run (on this 2-core machine they compete for the same two cores: MirrorMaker alone took
about a quarter of the CPU seconds of a run, its fetches a third of the eu broker's; `--shared` leaves
everything running) and started again afterwards. Run `jarvis stack up` first. `--quick` for a small run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import orjson
import redis
from confluent_kafka import Producer

from benchmarks.idle import wait_idle
from benchmarks.stack_check import require_stack
from connectors import api_client, kafka_clients
from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from connectors.redis_cache import obj_key
from connectors.sdk import Client
from connectors.topics_admin import admin_client, ensure_topics
from connectors.trust_admin import dev_trust
from connectors.verdicts import await_verdicts
from jarvis import topics, tracecontext
from jarvis.codec import encode_batch
from jarvis.config import REPO_ROOT, settings
from jarvis.crdt import HLC
from jarvis.ops import Operation, OperationBatch
from jarvis.partitioning import partition_for
from jarvis.roles import ROLES
from jarvis.security.keys import ensure_node_key
from jarvis.security.signing import sign_batch
from jarvis.stack.kafka_dist import ensure_libs
from jarvis.stack.mirrormaker import mm2_proc
from jarvis.stack.procs import Proc
from jarvis.stack.stack import Stack
from jarvis.stack.workers import worker_proc
from jarvis.topics import TopicSpec
from tests.integration.pipeline_helpers import read_value

REGION = "eu"


def metric(query_url: str, name: str) -> float:
    text = api_client.urlopen(f"{query_url}/metrics", 30).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def signed_batches(n_ops: int, ids: list[str], batch_size: int) -> list[tuple[int, bytes, bytes]]:
    """The SDK's wire format, built ahead of the clock: (partition, key, value) per signed batch."""
    s = settings()
    signer = ensure_node_key("bench", keys_dir=s.keys_dir)
    dev_trust(s, signer, REGION)  # the stack's admin key grants the benchmark's node (development only)
    hlc = HLC("bench")
    per_partition: dict[int, list[Operation]] = {}
    out: list[tuple[int, bytes, bytes]] = []

    def seal(p: int, ops: list[Operation]) -> None:
        digests, sig = sign_batch(ops, signer)
        batch = OperationBatch(uuid.uuid4().hex, "bench", signer.key_id, REGION, hlc.now(), ops, digests, sig)
        out.append((p, ops[0].object_id.encode(), encode_batch(batch)))

    for i in range(n_ops):
        oid = ids[i % len(ids)]
        p = partition_for(oid, s.partitions)
        ops = per_partition.setdefault(p, [])
        ops.append(
            Operation(uuid.uuid4().hex, oid, "pncounter", "increment", {"n": 1}, "bench", REGION, hlc.now())
        )
        if len(ops) == batch_size:
            seal(p, ops)
            per_partition[p] = []
    for p, ops in per_partition.items():
        if ops:
            seal(p, ops)
    return out


def all_folded(r: redis.Redis, ids: list[str], want: dict[str, int]) -> bool:
    views = r.mget([obj_key(REGION, oid) for oid in ids])
    return all(
        v is not None and orjson.loads(v)["value"] == want[oid] for oid, v in zip(ids, views, strict=True)
    )


def expected_counts(n_ops: int, ids: list[str]) -> dict[str, int]:
    """Each object's count after `signed_batches(n_ops, ids, ...)`: operation i goes to ids[i % len]."""
    objects = len(ids)
    return {oid: n_ops // objects + (1 if i < n_ops % objects else 0) for i, oid in enumerate(ids)}


def produce_and_wait(r: redis.Redis, batches: list[tuple[int, bytes, bytes]], ids: list[str],
                     want: dict[str, int], traced: bool = True) -> float:  # fmt: skip
    """Produce pre-signed batches to ingress; seconds until every object reads `want` in Redis.
    `traced`: each record starts a W3C trace, as the SDK's do (connectors/sdk.py)."""
    s = settings()
    p = Producer(
        {**client_conf(s.bootstrap(REGION)), "linger.ms": 5, "compression.type": "lz4", "acks": "all"}
    )
    t0 = time.perf_counter()
    for part, key, value in batches:
        headers = [tracecontext.new_root().kafka_header()] if traced else None
        p.produce(topics.INGRESS, key=key, value=value, partition=part, headers=headers)
        p.poll(0)
    p.flush(60)
    while not all_folded(r, ids, want):
        if time.perf_counter() - t0 > 600:
            raise SystemExit("pipeline did not fold everything within 600 s")
        time.sleep(0.1)
    return time.perf_counter() - t0


ROUNDS = 3  # timed rounds of the pipeline figure; the median is reported (this machine is shared)


def jarvis_throughput(n_ops: int, objects: int) -> tuple[list[float], float, float]:
    """Ops/s from ingress to queryable state (pre-signed batches) in each round, and the SDK's own
    produce rate and the raw ceiling.

    Sustained: a warm-up of n_ops / 6 operations on the same objects is folded before the clock
    starts, so the figure leaves out creating the objects and the workers' first batches."""
    s = settings()
    run = uuid.uuid4().hex[:6]
    ids = [f"ctr:bench-{run}-{i}" for i in range(objects)]
    warm_n = n_ops // 6
    warm = signed_batches(warm_n, ids, batch_size=1000)
    r = redis.Redis.from_url(s.redis_url)
    want = expected_counts(warm_n, ids)
    produce_and_wait(r, warm, ids, want)
    rates = []
    for _ in range(ROUNDS):
        batches = signed_batches(n_ops, ids, batch_size=1000)
        want = {oid: want[oid] + n for oid, n in expected_counts(n_ops, ids).items()}
        rates.append(n_ops / produce_and_wait(r, batches, ids, want))

    sdk = Client(region=REGION, node_id="bench-sdk", batch_size=1000, linger_ms=20, dev_trust=True)
    sdk_ids = [f"ctr:bench-sdk-{run}-{i}" for i in range(objects)]
    n_sdk = min(n_ops, 100_000)
    t1 = time.perf_counter()
    for i in range(n_sdk):
        sdk.counter(sdk_ids[i % objects]).increment(1)
    sdk.flush(timeout=300)
    sdk_rate = n_sdk / (time.perf_counter() - t1)
    raw = raw_ceiling([v for _, _, v in batches]) * n_ops / len(batches)
    return rates, sdk_rate, raw


def trace_cost(n_ops: int, objects: int, pairs: int = 3) -> None:
    """The pipeline with and without traceparent headers on its ingress records, alternated in one
    run (the verifier writes its child span on every jarvis.ops record it derives from a traced one)."""
    s = settings()
    print(f"(waited {wait_idle(s):.0f} s for the stack to drain earlier backlogs)", flush=True)
    stopped = pause_other_workers()
    try:
        ids = [f"ctr:bench-trace-{uuid.uuid4().hex[:6]}-{i}" for i in range(objects)]
        r = redis.Redis.from_url(s.redis_url)
        want = expected_counts(n_ops // 6, ids)
        produce_and_wait(r, signed_batches(n_ops // 6, ids, batch_size=1000), ids, want)
        rates: dict[bool, list[float]] = {True: [], False: []}
        for k in range(2 * pairs):
            traced = k % 2 == 1
            want = {oid: want[oid] + n for oid, n in expected_counts(n_ops, ids).items()}
            rates[traced].append(
                n_ops / produce_and_wait(r, signed_batches(n_ops, ids, 1000), ids, want, traced)
            )
            print(
                f"  round {k + 1}: {'traced' if traced else 'untraced'} {rates[traced][-1]:,.0f} ops/s",
                flush=True,
            )
    finally:
        for p in stopped:
            p.start()
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(
        f"\n{'ops/s ingress -> queryable, one region, median of ' + str(pairs) + ' rounds each':<60}{'ops/s':>10}"
    )
    print(f"{'  without traceparent headers (baseline)':<60}{off:>10,.0f}")
    print(f"{'  with them (the SDK default)':<60}{on:>10,.0f}   {on / off - 1:+.1%}   target: cost < 3%")


def raw_ceiling(values: list[bytes]) -> float:
    """The same bytes produced and consumed through the same broker with no processing: messages/s."""
    s = settings()
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    admin = admin_client(s.bootstrap(REGION))
    ensure_topics(admin, [TopicSpec(topic, "raw-ceiling scratch")], s.partitions)
    time.sleep(1)
    consumer = tail_consumer(s.bootstrap(REGION), topic)
    p = Producer(
        {**client_conf(s.bootstrap(REGION)), "linger.ms": 5, "compression.type": "lz4", "acks": "all"}
    )
    t0 = time.perf_counter()
    for i, value in enumerate(values):
        p.produce(topic, value, partition=i % s.partitions)
        p.poll(0)
    p.flush()
    got = 0
    while got < len(values):
        msgs = consumer.consume(10000, timeout=1)
        got += sum(1 for m in msgs if not m.error())
    elapsed = time.perf_counter() - t0
    consumer.close()
    admin.delete_topics([topic])
    return len(values) / elapsed


NAIVE_APP = textwrap.dedent(
    """
    import json, faust
    from connectors.kafka_clients import faust_kwargs
    from jarvis.config import settings
    app = faust.App("bench-naive-{run}", **faust_kwargs(settings(), "admin", "{region}"), store="memory://", web_enabled=False,
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
    admin = admin_client(s.bootstrap(REGION))
    ensure_topics(admin, [TopicSpec(t, "naive-fold scratch") for t in (topic, f"{topic}.done")], s.partitions)
    workdir = Path(s.home) / "bench-naive"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"naive_{run}.py").write_text(
        NAIVE_APP.format(run=run, region=REGION, partitions=s.partitions, topic=topic)
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "-A", f"naive_{run}", "worker", "-l", "warn", "--without-web"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    try:
        time.sleep(12)  # let the worker join its group before the clock starts
        done = tail_consumer(s.bootstrap(REGION), f"{topic}.done")
        p = Producer({**client_conf(s.bootstrap(REGION)), "linger.ms": 20, "compression.type": "lz4"})
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
    client = Client(region=REGION, node_id="bench-latency", batch_size=200, linger_ms=2, dev_trust=True)
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

    load = Client(region=REGION, node_id="bench-load", batch_size=200, linger_ms=5, dev_trust=True)
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


def rss_bytes(pid: int | str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def memory_per_million(objects: int) -> tuple[float, float, float]:
    """MB per 1M objects: fold RSS growth, Redis used-memory growth, plain-dict baseline."""
    s = settings()
    pid = worker_proc(s, "fold", REGION).pid()
    if pid is None:
        raise SystemExit("the eu fold worker is not running")
    q = s.region_config(REGION).query_url
    run = uuid.uuid4().hex[:6]
    ids = [f"ctr:mem-{run}-{i}" for i in range(objects)]
    batches = signed_batches(objects, ids, batch_size=1000)
    r = redis.Redis.from_url(s.redis_url)
    folded0 = metric(q, "jarvis_fold_ops_total")
    rss0, redis0 = rss_bytes(pid), int(r.info("memory")["used_memory"])
    p = Producer({**client_conf(s.bootstrap(REGION)), "linger.ms": 5, "compression.type": "lz4"})
    for part, key, value in batches:
        p.produce(topics.INGRESS, key=key, value=value, partition=part)
        p.poll(0)
    p.flush(120)
    deadline = time.monotonic() + 900
    while metric(q, "jarvis_fold_ops_total") - folded0 < objects:
        if time.monotonic() > deadline:
            raise SystemExit("the fold did not take every object within 900 s")
        time.sleep(1)
    time.sleep(3)  # the last settle and cache flush
    per_m = 1_000_000 / objects / 2**20
    fold_mb = (rss_bytes(pid) - rss0) * per_m
    redis_mb = (int(r.info("memory")["used_memory"]) - redis0) * per_m
    probe = (
        "import sys; from benchmarks.pipeline import rss_bytes; n = int(sys.argv[1]); before = rss_bytes('self'); "
        "d = {f'ctr:mem-abcdef-{i}': 1 for i in range(n)}; print(rss_bytes('self') - before)"
    )
    plain = int(subprocess.run([sys.executable, "-c", probe, str(objects)], capture_output=True, text=True,
                               check=True, cwd=Path(__file__).resolve().parent.parent).stdout)  # fmt: skip
    return fold_mb, redis_mb, plain * per_m


def reservation_latency(
    holding_n: int, getting_n: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """ms per `decrement(1, wait=True)` in eu holding rights, ms until us (holding none) sells one,
    and two baselines, interleaved with the first so all see the same machine: ms per PN-Counter
    increment acknowledged by `flush(wait=True)` (the client's long-lived verdict reader), and the
    same with the one-shot reader a caller without a client uses (`await_verdicts`)."""
    s = settings()
    run = uuid.uuid4().hex[:6]
    cs = {
        r: Client(region=r, node_id=f"bench-res-{r}", track_verdicts=True, linger_ms=1, dev_trust=True)
        for r in ("eu", "us")
    }
    eu, us = cs["eu"], cs["us"]

    def stocked(oid: str, n: int) -> None:
        eu.bcounter(oid).increment(n)
        eu.flush(wait=True)
        deadline = time.monotonic() + 30
        while any((read_value(s.region_config(r).query_url, oid) or {}).get("value") != n for r in cs):
            if time.monotonic() > deadline:
                raise SystemExit(f"stock of {oid} not seen in both regions within 30 s (is MirrorMaker up?)")
            time.sleep(0.05)

    sku = f"bc:bench-{run}"
    stocked(sku, holding_n + 10)
    holding: list[float] = []
    baseline: list[float] = []
    oneshot: list[float] = []
    for i in range(holding_n + 5):
        t0 = time.perf_counter()
        v = eu.bcounter(sku).decrement(1, wait=True)
        t1 = time.perf_counter()
        eu.counter(f"ctr:bench-res-{run}").increment(1)
        eu.flush(wait=True)
        t2 = time.perf_counter()
        eu.counter(f"ctr:bench-res-{run}").increment(1)
        eu.flush()
        sent = eu._take_sent(30)[0]
        await_verdicts(eu.bootstrap, "eu", sent, 30, settings=s)
        t3 = time.perf_counter()
        if not v.ok:  # type: ignore[union-attr]
            raise SystemExit(f"a reservation holding rights was refused: {v.reasons}")  # type: ignore[union-attr]
        if i >= 5:  # the first few open connections
            holding.append((t1 - t0) * 1000)
            baseline.append((t2 - t1) * 1000)
            oneshot.append((t3 - t2) * 1000)
    getting: list[float] = []
    for i in range(getting_n):
        oid = f"bc:bench-{run}-get-{i}"
        stocked(oid, 50)
        h = us.bcounter(oid)
        t0 = time.perf_counter()
        while not h.decrement(1, wait=True).ok:  # type: ignore[union-attr]
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"no rights reached us within 30 s for {oid}")
        getting.append((time.perf_counter() - t0) * 1000)
    return holding, getting, baseline, oneshot


def print_reservations(
    holding: list[float], getting: list[float], baseline: list[float], oneshot: list[float]
) -> None:
    def p(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=100) if len(xs) > 2 else [float("nan")] * 99
        return f"{statistics.median(xs):>8.1f} / {q[98]:.1f}"

    print("\nbounded-counter reservations, every worker of both regions and MirrorMaker 2 running")
    print(f"{'measure (p50 / p99 ms)':<52}{'figure':>16}")
    print(f"{'decrement(1, wait=True), eu holding rights (' + str(len(holding)) + ')':<52}{p(holding):>16}")
    print(f"{'  baseline: PN-Counter increment, flush(wait=True)':<52}{p(baseline):>16}")
    print(f"{'  baseline: the same, one-shot reader (await_verdicts)':<52}{p(oneshot):>16}")
    print(f"{'us holding none: first attempt -> sold (' + str(len(getting)) + ')':<52}{p(getting):>16}")
    print(f"{'  each':<52}{' '.join(f'{g:.0f}' for g in getting):>16}")
    print("targets: p99 < 50 ms holding rights, < 1 s getting them")


def pause_other_workers() -> list[Proc]:
    """Stop every worker but eu's verifier and fold, and MirrorMaker 2: on 2 cores they would compete
    for the same CPU (us folds every mirrored op again, the archivers write it to PostgreSQL twice)."""
    s = settings()
    others = [
        worker_proc(s, role.name, r, i)
        for r in s.region_names
        for role in ROLES
        for i in range(role.instances)
        if not (r == REGION and role.name in ("verifier", "fold"))
    ]
    others.append(mm2_proc(s, ensure_libs(s.home)))
    stopped = [p for p in others if p.running()]
    for p in stopped:
        p.stop()
    return stopped


def _secure_vs_insecure_round(label: str, n: int) -> tuple[float, float]:
    """(median pipeline ops/s, raw ceiling ops/s) on the stack as it runs now."""
    print(
        f"[{label}] waited {wait_idle(settings()):.0f} s for the stack to drain earlier backlogs", flush=True
    )
    stopped = pause_other_workers()
    try:
        rounds, _sdk, raw = jarvis_throughput(n, objects=1000)
    finally:
        for p in stopped:
            p.start()
    print(
        f"[{label}] rounds {' / '.join(f'{x:,.0f}' for x in rounds)} ops/s; raw ceiling {raw:,.0f}",
        flush=True,
    )
    return statistics.median(rounds), raw


def compare_insecure(n: int, pairs: int = 2) -> None:
    """TLS 1.3 + SCRAM + ACLs beside PLAINTEXT, same machine, same run, alternated: secure, insecure,
    secure, ... (`pairs` insecure phases, each bracketed by two secure ones). Each insecure phase is
    compared with the mean of the secure phases on either side of it, so a drift of the shared
    machine over the run weighs on both sides of every ratio alike."""
    s = settings()
    stack = Stack(s)

    def bring_up(insecure: bool) -> None:
        stack.down()
        stack.up(lambda m: None, insecure=insecure)
        print(
            f"stack up {'--insecure' if insecure else 'secure'}: Kafka {kafka_clients.protocol(s)}",
            flush=True,
        )

    if kafka_clients.protocol(s) != "SASL_SSL" or stack.stopped():
        bring_up(False)
    secure = [_secure_vs_insecure_round("secure 1", n)]
    plain: list[tuple[float, float]] = []
    for k in range(pairs):
        bring_up(True)
        try:
            plain.append(_secure_vs_insecure_round(f"insecure {k + 1}", n))
        finally:
            bring_up(False)
        secure.append(_secure_vs_insecure_round(f"secure {k + 2}", n))
    print(f"\n{'phase (' + f'{n:,}' + ' ops, one region, median of rounds)':<50}{'secure':>10}{'insecure':>10}"
          f"{'ratio':>8}{'raw ratio':>11}")  # fmt: skip
    ratios, raw_ratios = [], []
    for k, (ops_p, raw_p) in enumerate(plain):
        ops_s = statistics.mean([secure[k][0], secure[k + 1][0]])
        raw_s = statistics.mean([secure[k][1], secure[k + 1][1]])
        ratios.append(ops_s / ops_p)
        raw_ratios.append(raw_s / raw_p)
        print(f"{f'  insecure {k + 1} beside secure {k + 1} and {k + 2} (mean)':<50}{ops_s:>10,.0f}{ops_p:>10,.0f}"
              f"{ratios[-1]:>8.1%}{raw_ratios[-1]:>11.1%}")  # fmt: skip
    print(f"{'  every secure phase':<50}" + " / ".join(f"{x[0]:,.0f}" for x in secure))
    print(f"{'jarvis: ops/s ingress -> queryable, secure / insecure':<50}{'':>20}{statistics.median(ratios):>8.1%}"
          f"{statistics.median(raw_ratios):>11.1%}   (median of the pairs; raw: Kafka alone, same bytes)")  # fmt: skip
    print("target: secure >= 85% of insecure (TLS 1.3 + SCRAM-SHA-512 + ACLs on every client and broker)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--shared", action="store_true", help="leave every other worker running (both regions share the CPU)"
    )
    ap.add_argument(
        "--reservations", action="store_true", help="only the bounded-counter reservation latency"
    )
    ap.add_argument(
        "--compare-insecure",
        action="store_true",
        help="only the pipeline rate, on the secure stack and on the same stack brought up --insecure "
        "(it brings the stack down and up itself, and leaves it up secure)",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=2,
        help="--compare-insecure: insecure phases, each between two secure ones",
    )
    ap.add_argument(
        "--trace-cost",
        action="store_true",
        help="only the pipeline with and without traceparent headers, alternated",
    )
    args = ap.parse_args()
    n = 50_000 if args.quick else 300_000
    if args.compare_insecure:  # brings the stack up itself, secure and --insecure in turn
        compare_insecure(n, args.pairs)
        return
    require_stack(settings())
    if args.trace_cost:
        trace_cost(n, 1000)
        return
    if args.reservations:
        print_reservations(*reservation_latency(100 if args.quick else 300, 5 if args.quick else 20))
        return
    print(f"(waited {wait_idle(settings()):.0f} s for the stack to drain earlier backlogs)")
    stopped = [] if args.shared else pause_other_workers()
    try:
        rounds, sdk_rate, raw_ops = jarvis_throughput(n, objects=1000)
        ops_s = statistics.median(rounds)
        naive = naive_faust(min(n, 100_000), objects=1000)
        lat = latency_at(10_000, 10 if args.quick else 30)
        fold_mb, redis_mb, plain_mb = memory_per_million(100_000 if args.quick else 1_000_000)
    finally:
        for p in stopped:
            p.start()
    mode = (
        "every worker of both regions and MirrorMaker 2 running"
        if args.shared
        else f"only {REGION}'s verifier and fold running (MirrorMaker 2 paused)"
    )
    print(f"\n{mode}")
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [float("nan")] * 99
    print(f"{'measure':<52}{'figure':>16}")
    print(f"{'jarvis: ops/s ingress -> queryable (' + f'{n:,}' + ' ops, median)':<52}{ops_s:>16,.0f}")
    print(f"{'  the ' + str(len(rounds)) + ' rounds':<52}{' / '.join(f'{x:,.0f}' for x in rounds):>16}")
    print(f"{'SDK alone: ops/s signed and produced (1 thread)':<52}{sdk_rate:>16,.0f}")
    print(f"{'raw Kafka ceiling: same bytes, ops/s equivalent':<52}{raw_ops:>16,.0f}")
    print(f"{'naive Faust fold: ops/s (one event per op)':<52}{naive:>16,.0f}")
    print(f"{'jarvis / raw ceiling':<52}{ops_s / raw_ops:>16.1%}")
    print(f"{'jarvis / naive Faust':<52}{ops_s / naive:>15.1f}x")
    print(f"{'latency at 10,000 ops/s: p50 / p99 ms':<52}{q[49]:>8.1f} / {q[98]:.1f}")
    print(f"{'memory per 1M objects held: fold RSS / Redis MB':<52}{fold_mb:>8.0f} / {redis_mb:.0f}")
    print(f"{'  baseline: plain dict of the same ids, MB':<52}{plain_mb:>16.0f}")
    print("targets: >= 100,000 ops/s, >= 10x naive, >= 50% of raw, p99 < 100 ms at 10,000 ops/s")
    print_reservations(*reservation_latency(100 if args.quick else 300, 5 if args.quick else 20))


if __name__ == "__main__":
    main()
