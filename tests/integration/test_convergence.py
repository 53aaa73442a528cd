"""Geo-replication on the real stack: both regions end with identical values, equal to an independent
model, after concurrent writers, a MirrorMaker partition, a kill -9 of MirrorMaker, a fold restart
during replication, and an app that switches region mid-stream."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict

import pytest

from connectors.sdk import Client
from jarvis.stack.workers import worker_proc
from pipelines.loader import pipelines
from tests.integration.pipeline_helpers import normalize, read_value, recorder, wait_until
from tests.integration.test_pipeline import PREFIXES, random_op
from tests.model import SentOp, model_value

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")
WF = pipelines().rule_for("wf:x").workflow.as_dict()


class Scenario:
    """Objects of every type written from both regions, with the model of what was sent."""

    def __init__(self, per_type: int = 6, seed: int = 1) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.rng = random.Random(seed)
        self.sent: list[SentOp] = []
        self.lock = threading.Lock()
        self.objects = [(f"{p}:{self.run}-{i}", t) for p, t in PREFIXES.items() for i in range(per_type)]
        self.clients = {
            r: Client(region=r, node_id=f"geo-{r}-{self.run}", on_op=self._record, dev_trust=True) for r in REGIONS
        }

    def _record(self, op) -> None:
        with self.lock:
            recorder(self.sent)(op)

    def write(self, region: str, rounds: int, step0: int = 0, pause: float = 0.0) -> None:
        rng = random.Random(self.rng.random())
        c = self.clients[region]
        for step in range(step0, step0 + rounds):
            for oid, t in self.objects:
                random_op(c, rng, oid, t, step)
            c.flush()
            if pause:
                time.sleep(pause)

    def expected(self) -> dict[str, object]:
        by: dict[str, list[SentOp]] = defaultdict(list)
        for op in self.sent:
            by[op.object_id].append(op)
        types = dict(self.objects)
        out = {}
        for oid, ops in by.items():
            want = model_value(ops, WF)
            out[oid] = sorted(want) if types[oid] == "timeseries" else want
        return out

    def mismatches(self, query_urls: dict[str, str]) -> list[str]:
        types = dict(self.objects)
        bad = []
        for oid, want in self.expected().items():
            for region, url in query_urls.items():
                got = normalize(types[oid], read_value(url, oid))
                if got != want:
                    bad.append(f"{region} {oid}: got {got!r}, model {want!r}")
        return bad


def urls(stack) -> dict[str, str]:
    return {r: stack.settings.region_config(r).query_url for r in REGIONS}


def assert_converges(stack, sc: Scenario, timeout: float = 120) -> float:
    t0 = time.monotonic()
    wait_until(lambda: not sc.mismatches(urls(stack)), timeout, interval=1.0)
    bad = sc.mismatches(urls(stack))
    assert not bad, f"{len(bad)} (region, object) pairs differ from the model, e.g. {bad[:3]}"
    return time.monotonic() - t0


def test_concurrent_writers_in_both_regions_on_the_same_objects_converge(stack) -> None:
    sc = Scenario(per_type=10, seed=3)
    threads = [threading.Thread(target=sc.write, args=(r, 6)) for r in REGIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_converges(stack, sc)


@pytest.mark.slow  # a 20 s partition and its heal
def test_a_region_partition_heals_and_both_sides_converge(stack) -> None:
    sc = Scenario(seed=5)
    mm = stack.mm2()
    mm.stop()
    try:
        threads = [threading.Thread(target=sc.write, args=(r, 5, 0, 0.5)) for r in REGIONS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(2)
        assert sc.mismatches(urls(stack)), "with MirrorMaker stopped the regions cannot both hold everything"
    finally:
        stack.up(workers=True)  # restarts MirrorMaker; it resumes from its committed source offsets
    assert_converges(stack, sc)


def test_kill_9_of_mirrormaker_mid_stream_never_double_counts(stack) -> None:
    sc = Scenario(per_type=4, seed=7)
    done = threading.Event()

    def writers() -> None:
        ts = [threading.Thread(target=sc.write, args=(r, 12, 0, 0.2)) for r in REGIONS]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        done.set()

    w = threading.Thread(target=writers)
    w.start()
    time.sleep(1.5)
    stack.mm2().kill9()  # uncommitted source offsets: MirrorMaker re-sends what it already mirrored
    time.sleep(2)
    stack.up(workers=True)
    w.join()
    assert_converges(stack, sc)


@pytest.mark.slow  # a fold restart while both regions replicate: a minute
def test_fold_restart_during_replication_converges(stack) -> None:
    sc = Scenario(per_type=4, seed=9)
    w = threading.Thread(target=sc.write, args=("eu", 12, 0, 0.2))
    w.start()
    time.sleep(1.5)
    fold_us = worker_proc(stack.settings, "fold", "us")
    fold_us.kill9()
    time.sleep(1)
    fold_us.start()
    w.join()
    sc.write("us", 2, 100)
    assert_converges(stack, sc, timeout=180)


def test_an_app_that_switches_region_mid_stream_converges(stack) -> None:
    """Its later operations reach us before its earlier ones (written in eu) are mirrored."""
    run = uuid.uuid4().hex[:8]
    sent: list[SentOp] = []
    mm = stack.mm2()
    mm.stop()
    try:
        app_eu = Client(region="eu", node_id=f"roamer-{run}", on_op=recorder(sent), dev_trust=True)
        for i in range(20):
            app_eu.register(f"reg:{run}").write(f"eu-{i}")
            app_eu.counter(f"ctr:{run}").increment(1)
            app_eu.workflow(f"wf:{run}").transition(["submitted", "rejected", "draft"][i % 3])
            app_eu.orset(f"ors:{run}").add(f"x{i % 4}")
        app_eu.flush()
        time.sleep(0.05)
        app_us = Client(region="us", node_id=f"roamer-{run}", on_op=recorder(sent), dev_trust=True)  # same app, other region
        for i in range(10):
            app_us.register(f"reg:{run}").write(f"us-{i}")
            app_us.counter(f"ctr:{run}").decrement(1)
            app_us.orset(f"ors:{run}").remove(f"x{i % 4}")
        app_us.workflow(f"wf:{run}").transition("submitted")
        app_us.workflow(f"wf:{run}").transition("approved")
        app_us.flush()
        us = stack.settings.region_config("us").query_url
        assert wait_until(lambda: read_value(us, f"reg:{run}") == "us-9", 60)  # us folded its own first
    finally:
        stack.up(workers=True)
    by: dict[str, list[SentOp]] = defaultdict(list)
    for op in sent:
        by[op.object_id].append(op)
    types = {"reg": "lww", "ctr": "pncounter", "wf": "workflow", "ors": "orset"}
    expected = {oid: model_value(ops, WF) for oid, ops in by.items()}
    assert expected[f"reg:{run}"] == "us-9" and expected[f"ctr:{run}"] == 10

    def bad() -> list[str]:
        out = []
        for oid, want in expected.items():
            for r, url in urls(stack).items():
                got = normalize(types[oid.split(":")[0]], read_value(url, oid))
                if got != want:
                    out.append(f"{r} {oid}: {got!r} != {want!r}")
        return out

    wait_until(lambda: not bad(), 120, interval=1.0)
    assert not bad()
