"""Agent worker: `jarvis worker agent --region eu --capabilities noop,verify --concurrency 8`.

Three parts in one process (routing rules in jarvis/tasks.py):

* presence: a heartbeat on the compacted `jarvis.agents` topic (worker -> pool, capabilities),
  removed on a clean exit and ignored when stale, so routers know which pools are alive;
* router: a consumer group on `jarvis.tasks` (every agent worker runs one) that sends each task to
  one live pool able to run it, parks tasks no live pool can run (timing them out at their deadline,
  dead-lettering them after `JARVIS_TASK_UNROUTABLE_S`), and commits only past what it has routed;
* executor: the pool's consumer group on its pool topic. It takes up to `concurrency` tasks at a
  time (higher priority first), runs each handler, records the lifecycle (claimed, running,
  succeeded / failed, retried, dead / timed-out) as transitions of the Workflow CRDT `task:<id>`,
  and commits offsets only after those transitions are acknowledged by Kafka. `kill -9` mid-task
  leaves the offset uncommitted: after the rebalance another worker of the pool runs the task again
  with the same idempotency key, and the workflow keeps one result (a second `succeeded` is not an
  allowed transition and is ignored on every replica).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import signal
import socket
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge, Histogram
from rich.console import Console

from connectors.http_tls import start_metrics_server
from connectors.kafka_clients import confluent_conf
from connectors.sdk import Client
from connectors.topics_admin import admin_client, ensure_topics
from jarvis import topics
from jarvis.agents import HandlerError, TaskContext, discover
from jarvis.config import Settings
from jarvis.roles import web_port
from jarvis.tasks import Task, TaskError, choose_pool, decode_task, encode_task, pool_name, pool_topic

console = Console(stderr=True)

TASKS = Counter("jarvis_agent_tasks_total", "Task lifecycle transitions written", ["region", "pool", "state"])
HANDLER_SECONDS = Histogram(
    "jarvis_agent_handler_seconds", "Handler run time", ["region", "handler"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)  # fmt: skip
CLAIM_SECONDS = Histogram(
    "jarvis_agent_claim_latency_seconds", "From submission to claim", ["region"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)  # fmt: skip
RETRIES = Counter("jarvis_agent_retries_total", "Tasks sent back for another attempt", ["region", "handler"])
PARKED = Gauge("jarvis_agent_router_parked", "Tasks no live pool can run yet", ["region"])

HEARTBEAT_S = 2.0
STALE_S = 15.0
AGENT = "agent"  # its Kafka principal (jarvis/roles.py)
MAX_RESULT_BYTES = 8_000  # results ride in a workflow transition; the verifier caps payloads


class Presence:
    """Live agent pools: announced on the compacted jarvis.agents topic (capabilities), and alive by
    Kafka's own account: the pool's consumer group has members. A worker killed with -9 leaves its
    group within the session timeout (6 s), so tasks stop going to a pool that nobody serves."""

    def __init__(self, settings: Settings, region: str) -> None:
        self.region = region
        self.admin = AdminClient(confluent_conf(settings, AGENT, region))
        self._members: dict[str, bool] = {}
        self._checked = 0.0
        self.consumer = Consumer(
            {
                **confluent_conf(settings, AGENT, region),
                "group.id": f"jarvis-presence-{os.getpid()}-{time.monotonic_ns()}",
                "enable.auto.commit": False,
            }
        )
        md = self.consumer.list_topics(topics.AGENTS, timeout=10).topics[topics.AGENTS]
        self.consumer.assign([TopicPartition(topics.AGENTS, p, 0) for p in md.partitions])
        self.seen: dict[str, tuple[str, float]] = {}  # worker -> (pool, last heartbeat epoch s)

    def poll(self) -> None:
        for m in self.consumer.consume(num_messages=500, timeout=0):
            if m.error():
                continue
            worker = (m.key() or b"").decode()
            if m.value() is None:
                self.seen.pop(worker, None)
                continue
            info = orjson.loads(m.value())
            self.seen[worker] = (info["pool"], info["at"])

    def live_pools(self) -> set[str]:
        now = time.time()
        announced = {pool for pool, at in self.seen.values() if now - at < STALE_S}
        if announced and time.monotonic() - self._checked > 1.0:
            self._members = self._group_members(announced)
            self._checked = time.monotonic()
        return {p for p in announced if self._members.get(p, True)}

    def _group_members(self, pools: set[str]) -> dict[str, bool]:
        groups = {f"jarvis-agent-{self.region}-{p}": p for p in pools}
        out: dict[str, bool] = {}
        try:
            for group, fut in self.admin.describe_consumer_groups(list(groups), request_timeout=5).items():
                out[groups[group]] = len(fut.result().members) > 0
        except Exception as e:  # noqa: BLE001 - fall back to heartbeats alone when the broker will not say
            console.print(f"[yellow]router: cannot describe pool groups: {e}[/]")
        return out


class Router:
    def __init__(self, settings: Settings, region: str, client: Client, unroutable_s: float) -> None:
        self.settings, self.region, self.client = settings, region, client
        self.unroutable_s = unroutable_s
        self.presence = Presence(settings, region)
        self.consumer = Consumer(
            {
                **confluent_conf(settings, AGENT, region),
                "group.id": f"jarvis-task-router-{region}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 20,
            }
        )
        self.consumer.subscribe([topics.TASKS])
        self.parked: list[tuple[Task, int, int, float]] = []  # (task, partition, offset, parked at)

    def step(self) -> None:
        self.presence.poll()
        pools = self.presence.live_pools()
        routed: dict[int, int] = {}
        still: list[tuple[Task, int, int, float]] = []
        for task, part, off, since in self.parked:
            if not self._route(task, pools, since):
                still.append((task, part, off, since))
        self.parked = still
        for m in _take(self.consumer, 500, 0.05):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    console.print(f"[yellow]router: {m.error()}[/]")
                continue
            routed[m.partition()] = m.offset() + 1
            try:
                task = decode_task(m.value() or b"")
            except (TaskError, ValueError) as e:
                console.print(f"[yellow]router: undecodable task at {m.partition()}@{m.offset()}: {e}[/]")
                continue
            if not self._route(task, pools, time.monotonic()):
                self.parked.append((task, m.partition(), m.offset(), time.monotonic()))
        PARKED.labels(self.region).set(len(self.parked))
        if routed:
            self.client.flush()
            # Never commit past a parked task: a router crash must not lose it.
            floor = {p: off for _, p, off, _ in self.parked}
            commits = [
                TopicPartition(topics.TASKS, p, min(off, floor.get(p, off))) for p, off in routed.items()
            ]
            self.consumer.commit(offsets=commits, asynchronous=False)

    def _route(self, task: Task, pools: set[str], since: float) -> bool:
        """True when the task left the router (routed, timed out or dead-lettered)."""
        if task.expired():
            self.client.workflow(task.object_id).transition(
                "timed-out", reason="deadline passed before routing"
            )
            TASKS.labels(self.region, "-", "timed-out").inc()
            return True
        pool = choose_pool(task.task_id, task.capabilities, pools)
        if pool is not None:
            self.client.produce_raw(pool_topic(pool), task.task_id.encode(), encode_task(task))
            return True
        if time.monotonic() - since > self.unroutable_s:
            error = f"no live agent worker offers capabilities {', '.join(task.capabilities)}"
            dead_letter(self.client, task, error)
            self.client.workflow(task.object_id).transition("dead", error=error)
            TASKS.labels(self.region, "-", "dead").inc()
            return True
        return False


def _take(consumer: Consumer, n: int, wait: float) -> list[Any]:
    """Up to n records: wait for the first, then take only what is already there. (consume(n, t)
    would hold a lone record for the whole timeout, which is latency every task would pay.)"""
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=n - 1, timeout=0)] if n > 1 else [first]


def dead_letter(client: Client, task: Task, error: str) -> None:
    body = {"task": dataclasses.asdict(task), "error": error, "at_ms": int(time.time() * 1000)}
    client.produce_raw(topics.TASKS_DEAD, task.task_id.encode(), orjson.dumps(body))


def _bounded(result: Any) -> Any:
    raw = orjson.dumps(result, default=str)
    if len(raw) <= MAX_RESULT_BYTES:
        return orjson.loads(raw)
    return {"truncated": True, "bytes": len(raw), "preview": raw[:1000].decode(errors="replace")}


class Executor:
    def __init__(
        self, settings: Settings, region: str, client: Client, worker: str, pool: str,
        handlers: dict[str, Any], concurrency: int,
    ) -> None:  # fmt: skip
        self.settings, self.region, self.client, self.worker, self.pool = (
            settings,
            region,
            client,
            worker,
            pool,
        )
        self.handlers = handlers
        self.concurrency = concurrency
        self.runner = cf.ThreadPoolExecutor(concurrency, thread_name_prefix="task")
        self.handler_pool = cf.ThreadPoolExecutor(concurrency, thread_name_prefix="handler")
        self.consumer = Consumer(
            {
                **confluent_conf(settings, AGENT, region),
                "group.id": f"jarvis-agent-{region}-{pool}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 20,
            }
        )
        self.consumer.subscribe([pool_topic(pool)])

    def step(self) -> None:
        msgs = [m for m in _take(self.consumer, self.concurrency, 0.1) if not m.error()]
        if not msgs:
            return
        tasks: list[Task] = []
        for m in msgs:
            try:
                tasks.append(decode_task(m.value() or b""))
            except (TaskError, ValueError) as e:
                console.print(f"[yellow]undecodable task at {m.partition()}@{m.offset()}: {e}[/]")
        tasks.sort(key=lambda t: -t.priority)
        list(self.runner.map(self.run_task, tasks))
        self.client.flush()  # the lifecycle is durable before the offsets move
        self.consumer.commit(asynchronous=False)

    def _mark(self, task: Task, state: str, **args: Any) -> None:
        self.client.workflow(task.object_id).transition(
            state, worker=self.worker, attempt=task.attempt, **args
        )
        TASKS.labels(self.region, self.pool, state).inc()

    def run_task(self, task: Task) -> None:
        now_ms = int(time.time() * 1000)
        if task.expired(now_ms):
            self._mark(task, "timed-out", reason="deadline passed before it started")
            return
        if task.not_before_ms and task.not_before_ms > now_ms:
            time.sleep((task.not_before_ms - now_ms) / 1000)  # retry backoff
        handler = self.handlers.get(task.handler)
        if handler is None:
            self._finish_failed(task, f"handler {task.handler!r} is not installed on {self.worker}", False)
            return
        if task.attempt == 0:
            CLAIM_SECONDS.labels(self.region).observe(
                max(0.0, time.time() - (task.submitted_hlc >> 16) / 1000)
            )
        self._mark(task, "claimed")
        self._mark(task, "running")
        ctx = TaskContext(
            task.task_id, task.attempt, task.payload, self.worker, self.settings, task.deadline_ms
        )
        t0 = time.perf_counter()
        fut = self.handler_pool.submit(handler.run, ctx)
        timeout = None if task.deadline_ms is None else max(0.0, task.deadline_ms / 1000 - time.time())
        try:
            result = fut.result(timeout=timeout)
        except cf.TimeoutError:
            self._mark(task, "timed-out", reason="handler still running at the deadline")
            return
        except HandlerError as e:
            self._finish_failed(task, str(e), e.retryable)
            return
        except Exception as e:  # noqa: BLE001 - a handler bug fails the task, never the worker
            self._finish_failed(task, f"{type(e).__name__}: {e}", True)
            return
        finally:
            HANDLER_SECONDS.labels(self.region, task.handler).observe(time.perf_counter() - t0)
        self._mark(task, "succeeded", result=_bounded(result), idempotency_key=ctx.idempotency_key)

    def _finish_failed(self, task: Task, error: str, retryable: bool) -> None:
        self._mark(task, "failed", error=error[:2000])
        if retryable and task.attempt + 1 < task.max_attempts:
            nxt = task.next_attempt(int(time.time() * 1000))
            self._mark(task, "retried", next_attempt=nxt.attempt, not_before=(nxt.not_before_ms or 0) / 1000)
            RETRIES.labels(self.region, task.handler).inc()
            self.client.produce_raw(topics.TASKS, task.task_id.encode(), encode_task(nxt))
        else:
            self._mark(task, "dead", error=error[:2000])
            dead_letter(self.client, task, error)


def run(
    settings: Settings,
    region: str,
    instance: int = 0,
    capabilities: list[str] | None = None,
    concurrency: int | None = None,
    name: str | None = None,
) -> None:
    handlers = discover()
    caps = [c.strip() for c in (capabilities or settings.agent_capabilities) if c.strip()]
    caps = caps or sorted({c for h in handlers.values() for c in h.capabilities})
    pool = pool_name(caps)
    usable = {n: h for n, h in handlers.items() if h.capabilities <= set(caps)}
    conc = concurrency or settings.agent_concurrency
    worker = name or f"agent-{region}-{socket.gethostname()}-{instance}"
    bootstrap = settings.bootstrap(region)
    wanted = [topics.task_pool(pool_topic(pool)), topics.BY_NAME[topics.TASKS], topics.BY_NAME[topics.TASKS_DEAD]]
    ensure_topics(admin_client(bootstrap, settings, AGENT), wanted, settings.partitions)
    start_metrics_server(settings, web_port(settings, "agent", region, instance))
    client = Client(region=region, node_id=worker, settings=settings, batch_size=200, linger_ms=2, principal=AGENT)
    router_client = Client(
        region=region, node_id=worker, settings=settings, batch_size=200, linger_ms=2, principal=AGENT
    )
    presence = Producer(confluent_conf(settings, AGENT, region))
    console.print(
        f"agent {worker}: pool [bold]{pool}[/] ({pool_topic(pool)}), handlers {', '.join(sorted(usable)) or 'none'}, "
        f"concurrency {conc}"
    )

    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def heartbeat() -> None:
        while not stopping.is_set():
            info = {
                "pool": pool,
                "capabilities": caps,
                "concurrency": conc,
                "at": time.time(),
                "region": region,
            }
            presence.produce(topics.AGENTS, key=worker.encode(), value=orjson.dumps(info))
            presence.poll(0)
            stopping.wait(HEARTBEAT_S)

    def route() -> None:
        router = Router(settings, region, router_client, settings.task_unroutable_s)
        try:
            while not stopping.is_set():
                router.step()
        finally:
            router.consumer.close()

    threads = [threading.Thread(target=heartbeat, daemon=True), threading.Thread(target=route, daemon=True)]
    for t in threads:
        t.start()
    executor = Executor(settings, region, client, worker, pool, usable, conc)
    try:
        while not stopping.is_set():
            executor.step()
    finally:
        executor.consumer.close()
        presence.produce(topics.AGENTS, key=worker.encode(), value=None)  # leave the registry
        presence.flush(5)
        client.flush()
