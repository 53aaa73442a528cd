"""Agent task throughput and claim latency in region eu of the real local stack.

Measured with one dedicated agent worker started here (capabilities noop,benchcap, concurrency 16,
instance 7) and stopped at the end; the tasks need noop+benchcap, so no other pool runs them:
  1. tasks/s: N `noop` tasks submitted with the SDK, from the first submit until every task's
     workflow state is `succeeded` (polled from the fold's Redis cache, a sample checked over HTTP);
  2. claim latency p50/p99, submitted -> claimed, from the HLC timestamps of each task's workflow
     history: under the burst of N (includes queueing behind the other tasks) and one task at a time.
Baseline in the same run, through the same eu broker on a throw-away topic:
  - a bare Kafka record's produce+flush -> consume round trip, one at a time, p50/p99 of ~200;
  - raw records/s: N records produced and consumed, no processing.
Run `jarvis stack up` first. `--quick` for a small run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from benchmarks.idle import wait_idle
from benchmarks.stack_check import require_stack
from connectors.kafka_clients import client_conf
from connectors.kafka_io import tail_consumer
from connectors.redis_cache import obj_key
from connectors.sdk import Client
from connectors.topics_admin import admin_client, ensure_topics
from jarvis.config import Settings, settings
from jarvis.roles import web_port
from jarvis.stack.procs import Proc, port_open
from jarvis.task_cli import summary, task_view
from jarvis.tasks import TERMINAL
from jarvis.topics import TopicSpec
from streams.agent import Presence

REGION = "eu"
INSTANCE = 7
CONCURRENCY = 16
CAPS = ["noop", "benchcap"]


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# -- baseline: bare Kafka records through the same broker ---------------------------------------------
def bare_round_trips(bootstrap: str, topic: str, n: int, warmup: int = 10) -> list[float]:
    consumer = tail_consumer(bootstrap, topic)
    producer = Producer({**client_conf(bootstrap), "linger.ms": 0, "acks": "all"})
    delays: list[float] = []
    try:
        for i in range(warmup + n):
            key = uuid.uuid4().hex.encode()
            t0 = time.perf_counter()
            producer.produce(topic, key=key, value=b"x" * 200)
            producer.flush(10)
            while True:
                msg = consumer.poll(5)
                if msg is None:
                    raise SystemExit(f"bare record not seen on {topic} within 5 s")
                if not msg.error() and msg.key() == key:
                    if i >= warmup:
                        delays.append((time.perf_counter() - t0) * 1000)
                    break
    finally:
        consumer.close()
    return delays


def bare_throughput(bootstrap: str, topic: str, n: int) -> float:
    consumer = tail_consumer(bootstrap, topic)
    producer = Producer({**client_conf(bootstrap), "linger.ms": 5, "acks": "all"})
    payload = b"x" * 200
    try:
        t0 = time.perf_counter()
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, payload, key=str(i).encode())
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(30)
        got = 0
        deadline = time.monotonic() + 120
        while got < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {got} of {n} bare records consumed within 120 s")
            batch = consumer.consume(min(10_000, n - got), timeout=0.5)  # returns early once it has them
            got += sum(1 for m in batch if not m.error())
        return n / (time.perf_counter() - t0)
    finally:
        consumer.close()


# -- the agent worker ------------------------------------------------------------------------------
def start_worker(s: Settings, name: str) -> Proc:
    port = web_port(s, "agent", REGION, INSTANCE)
    if port_open(s.host, port):
        raise SystemExit(f"port {port} (agent instance {INSTANCE}) is taken: is another benchmark running?")
    argv = [
        sys.executable, "-m", "jarvis.cli", "worker", "agent", "--region", REGION,
        "--instance", str(INSTANCE), "--capabilities", ",".join(CAPS),
        "--concurrency", str(CONCURRENCY), "--name", name,
    ]  # fmt: skip
    proc = Proc(name=name, run_dir=s.home, argv=argv, env={"JARVIS_REGION": REGION})
    proc.start()
    return proc


def wait_for_heartbeat(s: Settings, proc: Proc, name: str, timeout: float = 30.0) -> None:
    presence = Presence(s, REGION)
    deadline = time.monotonic() + timeout
    try:
        while name not in presence.seen:
            if not proc.running():
                raise SystemExit(f"agent worker {name} exited:\n{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no heartbeat from {name} within {timeout:.0f} s:\n{proc.log_tail()}")
            presence.poll()
            time.sleep(0.1)
    finally:
        presence.consumer.close()
    time.sleep(4)  # the routers' presence and the pool's consumer group settle


# -- tasks -----------------------------------------------------------------------------------------
class TaskWatcher:
    """Reads task views from the fold's Redis cache (one MGET per poll for every pending task)."""

    def __init__(self, s: Settings) -> None:
        self.redis = redis.Redis.from_url(s.redis_url, socket_timeout=10)

    def views(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(task_ids), 1000):
            chunk = task_ids[i : i + 1000]
            raw = self.redis.mget([obj_key(REGION, f"task:{t}") for t in chunk])
            for t, r in zip(chunk, raw, strict=True):
                if r is not None:
                    out[t] = orjson.loads(r)
        return out

    def wait_final(self, task_ids: list[str], timeout: float, interval: float = 0.05) -> dict[str, dict]:
        """Final views of every task; returns when none is pending (or raises at the timeout)."""
        pending = list(task_ids)
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for t, v in self.views(pending).items():
                if v["value"]["state"] in TERMINAL:
                    final[t] = v
            pending = [t for t in pending if t not in final]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(pending)} of {len(task_ids)} tasks not final within {timeout:.0f} s")
            time.sleep(interval)
        return final


def claim_ms(view: dict[str, Any]) -> float | None:
    """Submitted -> first applied claimed, from the transitions' HLC timestamps (wall ms = hlc >> 16)."""
    hist = view["value"]["history"]
    sub = next((h["timestamp"] for h in hist if h["to"] == "submitted" and h["applied"]), None)
    clm = next((h["timestamp"] for h in hist if h["to"] == "claimed" and h["applied"]), None)
    if sub is None or clm is None:
        return None
    return float((clm >> 16) - (sub >> 16))


def submit(client: Client, i: int) -> str:
    return client.tasks.submit("noop", {"i": i}, capabilities=CAPS)


def burst(client: Client, watcher: TaskWatcher, n: int) -> tuple[float, dict[str, dict]]:
    t0 = time.perf_counter()
    ids = [submit(client, i) for i in range(n)]
    client.flush(timeout=120)
    final = watcher.wait_final(ids, timeout=max(120.0, n / 10))
    return n / (time.perf_counter() - t0), final


def one_at_a_time(client: Client, watcher: TaskWatcher, n: int) -> dict[str, dict]:
    final: dict[str, dict] = {}
    for i in range(n):
        tid = submit(client, i)
        client.flush()
        final.update(watcher.wait_final([tid], timeout=30, interval=0.005))
    return final


def check_over_http(final: dict[str, dict], sample: int = 20) -> int:
    """How many of a sample of tasks the query API also reports as succeeded."""
    ok = 0
    for t in list(final)[:sample]:
        view = task_view(t, REGION)
        ok += bool(view and summary(view)["state"] == "succeeded")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=None, help="tasks in the burst (default 2000; --quick 300)")
    ap.add_argument("--quick", action="store_true", help="a small run")
    args = ap.parse_args()
    n = args.n or (300 if args.quick else 2000)
    n_rt = 200
    n_single = 20 if args.quick else 100
    s = settings()
    require_stack(s)
    bootstrap = s.bootstrap(REGION)
    print(f"(waited {wait_idle(s):.0f} s for the stack to drain earlier backlogs)")
    run = uuid.uuid4().hex[:8]

    topic = f"bench.tasks.{run}"
    admin = admin_client(bootstrap)
    ensure_topics(admin, [TopicSpec(topic, "bare round-trip scratch")], s.partitions)
    try:
        time.sleep(1)
        rt = bare_round_trips(bootstrap, topic, n_rt)
        raw_rate = bare_throughput(bootstrap, topic, n)
    finally:
        admin.delete_topics([topic])

    name = f"bench-agent-{run}"
    proc = start_worker(s, name)
    try:
        wait_for_heartbeat(s, proc, name)
        client = Client(region=REGION, node_id="bench-tasks", batch_size=200, linger_ms=2, dev_trust=True)
        watcher = TaskWatcher(s)
        warm_ids = [submit(client, -1) for _ in range(5)]  # the whole path is up before the clock starts
        client.flush()
        warm = watcher.wait_final(warm_ids, timeout=60)
        rate, final = burst(client, watcher, n)
        single = one_at_a_time(client, watcher, n_single)
        if not proc.running():
            raise SystemExit(f"agent worker {name} died during the run:\n{proc.log_tail()}")
    finally:
        proc.stop()

    states: dict[str, int] = {}
    for v in final.values():
        states[v["value"]["state"]] = states.get(v["value"]["state"], 0) + 1
    workers = {
        h["args"].get("worker") for v in final.values() for h in v["value"]["history"] if h["to"] == "claimed"
    }
    claims = [c for v in final.values() if (c := claim_ms(v)) is not None]
    single_claims = [c for v in single.values() if (c := claim_ms(v)) is not None]
    http_ok = check_over_http(final)

    print(f"agent worker {name}: pool {'+'.join(sorted(CAPS))}, concurrency {CONCURRENCY}, region {REGION}")
    print(
        f"burst of {n} tasks: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}; "
        f"claimed by {', '.join(sorted(w or '?' for w in workers))}; "
        f"{http_ok}/{min(20, len(final))} sampled succeeded over HTTP; warm-up {len(warm)} tasks"
    )
    base_p50 = f"{pct(rt, 50):.1f} ms round trip p50 ({len(rt)} records, one at a time)"
    base_p99 = f"{pct(rt, 99):.1f} ms round trip p99"
    print(f"{'figure':<44}{'value':>8}  baseline (bare Kafka record, same broker)")
    rows = [
        (f"throughput, tasks/s (burst of {n})", f"{rate:.0f}", f"{raw_rate:.0f} records/s produce->consume ({n} records)"),
        (f"claim latency p50 ms, burst of {n}", f"{pct(claims, 50):.0f}", base_p50),
        (f"claim latency p99 ms, burst of {n}", f"{pct(claims, 99):.0f}", base_p99),
        (f"claim latency p50 ms, {n_single} one at a time", f"{pct(single_claims, 50):.0f}", base_p50),
        (f"claim latency p99 ms, {n_single} one at a time", f"{pct(single_claims, 99):.0f}", base_p99),
    ]  # fmt: skip
    for fig, val, base in rows:
        print(f"{fig:<44}{val:>8}  {base}")
    print(
        "claim latency: HLC ms of the `claimed` transition minus `submitted` (1 ms resolution); a burst includes queueing"
    )


if __name__ == "__main__":
    main()
