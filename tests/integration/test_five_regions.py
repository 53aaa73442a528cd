"""Five regions on the local stack (`JARVIS_REGIONS=eu,us,ap,sa,af jarvis stack up`): writes made in
several regions at once converge in all five, `jarvis regions status --json` reports the state
digests agreeing and no mirror behind, and the full MirrorMaker 2 mesh mirrors nothing twice.

Run against that stack: JARVIS_REGIONS=eu,us,ap,sa,af pytest -m slow tests/integration/test_five_regions.py
(with fewer regions configured the module is skipped, saying so: it needs the five-region stack).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from connectors.kafka_clients import ADMIN, confluent_conf
from connectors.sdk import Client
from jarvis import topics
from tests.integration.cli_helpers import jarvis
from tests.integration.pipeline_helpers import read_value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIVE = ("eu", "us", "ap", "sa", "af")


@pytest.fixture(scope="module")
def five(settings, stack):
    if tuple(settings.region_names) != FIVE:
        pytest.skip(f"needs the five-region stack: JARVIS_REGIONS={','.join(FIVE)} (configured: {settings.region_names})")
    return stack


def test_mesh_has_one_mirror_per_other_region(five) -> None:
    s = five.settings
    for dst in FIVE:
        names = set(AdminClient(confluent_conf(s, ADMIN, dst)).list_topics(timeout=10).topics)
        mirrored_ops = {n for n in names if n.endswith("." + topics.OPS)}
        # Exactly one copy of each other region's log, none of a copy (no `us.eu.jarvis.ops`).
        assert mirrored_ops == {topics.mirrored(src) for src in FIVE if src != dst}, (dst, sorted(mirrored_ops))


def test_writes_in_every_region_converge_in_all_five(five) -> None:
    s = five.settings
    run = uuid.uuid4().hex[:8]
    counters = [f"ctr:five-{run}-{k}" for k in range(20)]
    members = f"set:five-{run}"
    # Each region adds its own amount to every counter and its own element to one OR-Set, all at once.
    clients = {r: Client(region=r, node_id=f"five-{r}-{run}", dev_trust=True, settings=s) for r in FIVE}
    for i, (r, c) in enumerate(clients.items()):
        for oid in counters:
            c.counter(oid).increment(i + 1)
        c.orset(members).add(r)
    for c in clients.values():
        c.flush()
    want = sum(range(1, len(FIVE) + 1))
    deadline = time.monotonic() + 120
    pending = {(r, oid) for r in FIVE for oid in [*counters, members]}
    while pending and time.monotonic() < deadline:
        for r, oid in sorted(pending):
            v = read_value(s.region_config(r).query_url, oid)
            if (oid == members and v is not None and sorted(v) == sorted(FIVE)) or v == want:
                pending.discard((r, oid))
        time.sleep(0.5)
    assert not pending, f"not converged after 120 s: {sorted(pending)[:10]}"


def test_regions_status_reports_agreement(five) -> None:
    # A write of its own in every region, so every mirror has something to carry just before.
    run = uuid.uuid4().hex[:8]
    for r in FIVE:
        c = Client(region=r, node_id=f"five-status-{r}", dev_trust=True, settings=five.settings)
        c.counter(f"ctr:five-status-{run}-{r}").increment(1)
        c.flush()
    deadline = time.monotonic() + 120
    while True:
        cp = jarvis("regions", "status", "--json")
        report = json.loads(cp.stdout)
        behind = [(lag["source"], lag["target"]) for lag in report["lag"] if lag["records"]]
        if cp.returncode == 0 and report["agree"] and not behind:
            break
        assert time.monotonic() < deadline, f"exit {cp.returncode}, behind {behind}: {cp.stdout[-2000:]}{cp.stderr[-1000:]}"
        time.sleep(2)
    assert {(lag["source"], lag["target"]) for lag in report["lag"]} == {
        (a, b) for a in FIVE for b in FIVE if a != b
    }
    assert not report["unanswered"]
    counts = set(report["objects"].values())
    assert len(counts) == 1 and counts != {None}, report["objects"]
