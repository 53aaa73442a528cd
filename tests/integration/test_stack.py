"""The real two-region stack: each region's Kafka answers, and MirrorMaker 2 carries jarvis.ops both ways."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from jarvis import topics
from tests.integration.kafka_helpers import producer, tail_consumer, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("region", ["eu", "us"])
def test_produce_and_consume_in_each_region(stack, region: str) -> None:
    bootstrap = stack.settings.bootstrap(region)
    consumer = tail_consumer(bootstrap, topics.OPS)
    key = f"test:{uuid.uuid4().hex}".encode()
    p = producer(bootstrap)
    p.produce(topics.OPS, key=key, value=b"hello " + region.encode())
    assert p.flush(10) == 0
    msg = wait_for(consumer, lambda k, v: k == key, timeout=20)
    consumer.close()
    assert msg is not None, f"record not read back in {region}"
    assert msg.value() == b"hello " + region.encode()


@pytest.mark.parametrize(("src", "dst"), [("eu", "us"), ("us", "eu")])
def test_mirrormaker_carries_ops_between_regions(stack, src: str, dst: str) -> None:
    consumer = tail_consumer(stack.settings.bootstrap(dst), topics.mirrored(src))
    key = f"mirror:{uuid.uuid4().hex}".encode()
    p = producer(stack.settings.bootstrap(src))
    p.produce(topics.OPS, key=key, value=b"payload-" + key)
    assert p.flush(10) == 0
    msg = wait_for(consumer, lambda k, v: k == key, timeout=30)
    consumer.close()
    assert msg is not None, f"{src}.jarvis.ops in {dst} never showed the record"
    assert msg.value() == b"payload-" + key


def test_status_json_reports_both_regions(stack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "stack", "status", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    st = json.loads(out.stdout)
    assert set(st["regions"]) == {"eu", "us"}
    for region in ("eu", "us"):
        assert st["regions"][region]["kafka"] == "up"
        assert st["regions"][region]["bootstrap"].startswith("127.0.0.1:")
        assert st["regions"][region]["query_url"].startswith("https://")
    assert st["mirrormaker"] == "running"
    assert st["postgres"].startswith("postgresql://") and st["postgres_status"] == "up"
    assert st["redis"].startswith("redis://") and st["redis_status"] == "up"
    # The supervisor runs and counts restarts of every worker the stack started.
    assert st["supervisor"] == "running"
    workers = {
        name for name, state in st["processes"].items() if name.startswith("worker-") and state == "running"
    }
    assert {"worker-fold-eu", "worker-verifier-us"} <= workers <= set(st["restarts"])


def test_stack_up_is_idempotent(stack) -> None:
    before = {p.name: p.pid() for p in stack.all_procs() if p.running()}
    stack.up(workers=True)
    after = {p.name: p.pid() for p in stack.all_procs() if p.running()}
    assert before == after
