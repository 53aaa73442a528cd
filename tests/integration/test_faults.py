"""Fault tests on the real stack: kill -9 of a worker mid-stream, and a rebalance, never lose or
double-count an operation (Faust issue #340 lost 644 of 300,000 increments this way)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.kafka_clients import client_conf
from connectors.sdk import Client
from jarvis import topics
from jarvis.partitioning import partition_for
from jarvis.stack.procs import Proc
from jarvis.stack.workers import worker_proc
from tests.integration.pipeline_helpers import get_json, object_url, read_value, wait_until

pytestmark = pytest.mark.integration

TOTAL = 300_000


def produce_increments(region: str, object_id: str, total: int) -> Client:
    client = Client(region=region, node_id="fault-producer", batch_size=500, dev_trust=True)
    h = client.counter(object_id)
    for _ in range(total):
        h.increment(1)
    client.flush(timeout=120)
    return client


def wait_for_progress(query_url: str, object_id: str, lo: int, hi: int, timeout: float = 120) -> int:
    """Wait until the counter shows some but not all of the increments (the worker is mid-stream)."""
    seen = 0

    def mid() -> bool:
        nonlocal seen
        seen = read_value(query_url, object_id) or 0
        return lo <= seen < hi

    assert wait_until(mid, timeout, interval=0.05), f"counter never got mid-stream (last {seen})"
    return seen


def read_answered(query_url: str, object_id: str, timeout: float = 60) -> Any:
    """The object's value once the query API answers for it (503 recovering and a worker not yet
    listening are waited out)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get_json(object_url(query_url, object_id))
        if status not in (0, 503) or time.monotonic() > deadline:
            return body["value"] if status == 200 else None
        time.sleep(0.25)


def settle(query_url: str, object_id: str, expected: int, timeout: float = 240) -> int:
    value = None

    def done() -> bool:
        nonlocal value
        value = read_value(query_url, object_id)
        return value == expected

    wait_until(done, timeout, interval=1.0)
    time.sleep(3)  # anything still in flight would push it past the expected count
    return read_value(query_url, object_id)


def restart_counts() -> dict[str, int]:
    """`jarvis stack status --json`'s restart counts, as an operator reads them."""
    out = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "stack", "status", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    st = json.loads(out.stdout)
    assert st["supervisor"] == "running", st
    return st["restarts"]


# Each kill takes over a minute: the fold's runs with the slow scenarios, the verifier's in `make test`.
@pytest.mark.parametrize("role", [pytest.param("fold", marks=pytest.mark.slow), "verifier"])
def test_kill_9_mid_stream_the_supervisor_restarts_it_and_it_counts_exactly(stack, role: str) -> None:
    """A plain `kill -9` of the worker's pid while operations flow: nobody but the stack's
    supervisor starts it again, within 10 s, counted once in `stack status`; every increment
    written is folded exactly once."""
    region = "eu"
    object_id = f"ctr:kill-{role}-{uuid.uuid4().hex[:8]}"
    query_url = stack.settings.region_config(region).query_url
    proc = worker_proc(stack.settings, role, region)
    pid = proc.pid()
    assert pid is not None, f"the {role} worker of {region} is not running"
    before = restart_counts()[proc.name]
    # Produce while the worker folds, so the kill lands mid-stream however fast the pipeline is.
    producer = threading.Thread(target=produce_increments, args=(region, object_id, TOTAL))
    producer.start()
    seen = wait_for_progress(query_url, object_id, 1, TOTAL * 9 // 10)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    assert wait_until(lambda: proc.pid() not in (None, pid), 10, interval=0.1), (
        f"the supervisor did not restart the {role} within 10 s:\n"
        + Proc(name="supervisor", run_dir=stack.settings.home).log_tail()
    )
    back_in = time.monotonic() - killed
    assert restart_counts()[proc.name] == before + 1
    producer.join(timeout=180)
    final = settle(query_url, object_id, TOTAL)
    assert final == TOTAL, f"{role} killed at {seen}: counter reads {final}, expected {TOTAL}"
    print(f"{role} restarted {back_in:.1f} s after kill -9")


def test_rebalance_when_a_second_fold_worker_joins_mid_stream(stack) -> None:
    """Readers keep querying both workers throughout: a read served while a worker is still
    recovering its new partitions must not become the state the fold builds on."""
    region = "eu"
    object_ids = [f"ctr:rebalance-{uuid.uuid4().hex[:8]}-{i}" for i in range(12)]
    query_url = stack.settings.region_config(region).query_url
    other_url = stack.settings.http_url(stack.settings.region_config(region).query_port + 100)
    per_object = 20_000
    client = Client(region=region, node_id="rebalance-producer", dev_trust=True)
    for _ in range(per_object):
        for oid in object_ids:
            client.counter(oid).increment(1)
    client.flush(timeout=120)
    wait_for_progress(query_url, object_ids[0], 1, per_object)
    stop_reading = threading.Event()
    statuses: list[int] = []

    def keep_reading() -> None:
        while not stop_reading.is_set():
            for url in (query_url, other_url):
                get_json(f"{url}/v1/digest", timeout=2.0)
                for oid in object_ids:
                    statuses.append(get_json(object_url(url, oid), timeout=2.0)[0])

    reader = threading.Thread(target=keep_reading, daemon=True)
    second = worker_proc(stack.settings, "fold", region, instance=1)
    second.start()
    reader.start()
    try:
        values = {}

        def all_done() -> bool:
            values.update({oid: read_value(query_url, oid) for oid in object_ids})
            return all(v == per_object for v in values.values())

        wait_until(all_done, 240, interval=1.0)
        stop_reading.set()
        time.sleep(3)
        # The join may still be rebalancing (all 20,000 can be folded before it starts): a partition
        # being recovered answers 503 until it is, so each read waits for an answer.
        values = {oid: read_answered(query_url, oid) for oid in object_ids}
        assert values == dict.fromkeys(object_ids, per_object)
        # Either worker answers for every object (the router forwards to the owner).
        assert {oid: read_answered(other_url, oid) for oid in object_ids} == values
        # An object that exists is never "unknown", on either worker, while partitions move.
        assert 404 not in statuses, f"{statuses.count(404)} of {len(statuses)} reads answered 404"
    finally:
        stop_reading.set()
        reader.join(timeout=10)
        second.stop()


def test_a_committed_offset_ahead_of_the_changelog_is_caught_when_the_fold_restarts(stack) -> None:
    """Should Kafka's committed offset for the fold ever run past the effects its changelog holds
    (a message Faust skipped and a later commit went over), the restarted fold sees it against the
    position it records beside the state, goes back and folds the operations in between instead of
    losing them."""
    region = "eu"
    s = stack.settings
    oid = f"ctr:ahead-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topics.OPS, partition_for(oid, s.partitions))
    query_url = s.region_config(region).query_url
    client = Client(region=region, node_id="ahead-producer", dev_trust=True)
    watermarks = Consumer({**client_conf(s.bootstrap(region)), "group.id": f"probe-{uuid.uuid4().hex}"})
    admin = AdminClient(client_conf(s.bootstrap(region)))
    group = f"jarvis-fold-{region}"

    def messages(n: int) -> None:  # n messages of 100 increments each
        for _ in range(n):
            h = client.counter(oid)
            for _ in range(100):
                h.increment(1)
            client.flush(timeout=30)

    def high() -> int:
        return watermarks.get_watermark_offsets(tp, timeout=10)[1]

    messages(10)
    assert wait_until(lambda: read_value(query_url, oid) == 1_000, 120)
    time.sleep(2)  # a settle or two: the positions record follows the state
    fold = worker_proc(s, "fold", region)
    fold.stop()
    try:
        end = high()
        messages(10)
        assert wait_until(lambda: high() >= end + 10, 60), "the verifier did not forward the second burst"
        ahead = TopicPartition(tp.topic, tp.partition, end + 5)  # as if offsets end..end+4 had been folded

        def moved() -> bool:
            try:
                admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [ahead])])[
                    group
                ].result()
                return True
            except Exception:  # noqa: BLE001 - the group is still emptying after the stop
                return False

        assert wait_until(moved, 60, interval=1.0), "could not move the fold's committed offset"
    finally:
        fold.start()
        watermarks.close()
    assert wait_until(lambda: read_value(query_url, oid) == 2_000, 180), (
        f"counter reads {read_value(query_url, oid)}, expected 2000 (1500: the 5 skipped messages were lost)"
    )
    assert f"{tp.topic}[{tp.partition}] delivered offset {end + 5} before {end}: going back" in fold.log_tail(
        2000
    )
