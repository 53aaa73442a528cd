"""Reliability on the real stack (issue 17): a fold restart, Redis going away, many watchers and
slow clients never make the query API lie (404 for an object that exists, 200 with nothing) or hang;
it answers 503 with a reason instead, and recovers by itself."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from connectors.sdk import Client
from jarvis.stack.workers import worker_proc
from tests.integration.pipeline_helpers import get_json, object_url, wait_until

pytestmark = pytest.mark.integration

REGION = "eu"


def write_counters(prefix: str, n: int) -> list[str]:
    ids = [f"ctr:{prefix}-{i}" for i in range(n)]
    client = Client(region=REGION, node_id="reliability", batch_size=1000)
    for oid in ids:
        client.counter(oid).increment(1)
    client.flush(timeout=120)
    return ids


def wait_readable(query_url: str, ids: list[str], timeout: float = 120) -> None:
    pending = list(ids)

    def all_there() -> bool:
        pending[:] = [oid for oid in pending if get_json(object_url(query_url, oid), timeout=5)[0] != 200]
        return not pending

    assert wait_until(all_there, timeout, interval=0.5), f"{len(pending)} objects never readable"


@dataclass
class Poller:
    """Reads objects that exist, in a loop, and records every answer's status with its time."""

    query_url: str
    ids: list[str]
    answers: list[tuple[float, int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for oid in self.ids:
                if self.stop.is_set():
                    return
                status, body = get_json(object_url(self.query_url, oid), timeout=5)
                self.answers.append((time.monotonic(), status, oid))
                if status == 0:
                    time.sleep(0.05)  # the worker is down: no point hammering a closed port

    def __enter__(self) -> Poller:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def window(self, status: int) -> float:
        times = [t for t, s, _ in self.answers if s == status]
        return times[-1] - times[0] if times else 0.0

    def count(self, status: int) -> int:
        return sum(1 for _, s, _ in self.answers if s == status)


def ready(query_url: str) -> bool:
    return get_json(f"{query_url}/readyz", timeout=2)[0] == 200


def fold_restart_never_404s(stack, n: int) -> None:
    query_url = stack.settings.region_config(REGION).query_url
    ids = write_counters(f"restart-{uuid.uuid4().hex[:8]}", n)
    sample = random.Random(17).sample(ids, min(len(ids), 500))
    wait_readable(query_url, sample)
    fold = worker_proc(stack.settings, "fold", REGION)
    with Poller(query_url, sample) as poller:
        time.sleep(1)
        t0 = time.monotonic()
        assert fold.stop(), "the fold did not stop"
        fold.start()
        assert wait_until(lambda: ready(query_url), 300, interval=0.25), "the fold never became ready"
        ready_after = time.monotonic() - t0
        time.sleep(5)  # reads go on after readiness: still no 404
    not_found = [(t - t0, oid) for t, s, oid in poller.answers if s == 404]
    print(
        f"\nfold restart with {n} objects: ready after {ready_after:.1f} s; {len(poller.answers)} reads: "
        f"{poller.count(0)} refused over {poller.window(0):.1f} s, {poller.count(503)} 503 over "
        f"{poller.window(503):.1f} s, {len(not_found)} 404"
        + (f" from {not_found[0][0]:.1f} s to {not_found[-1][0]:.1f} s" if not_found else "")
    )
    assert not not_found, f"{len(not_found)} reads of existing objects answered 404, first {not_found[0]}"
    assert {s for _, s, _ in poller.answers} <= {0, 200, 503}
    assert poller.answers[-1][1] == 200


def test_a_fold_restart_never_answers_404_for_an_existing_object(stack) -> None:
    fold_restart_never_404s(stack, 10_000)


@pytest.mark.slow
def test_a_fold_restart_with_100000_objects_never_answers_404(stack) -> None:
    fold_restart_never_404s(stack, 100_000)
