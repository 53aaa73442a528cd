"""The whole pipeline in one region on the real stack: SDK -> ingress -> verifier -> jarvis.ops -> fold -> HTTP."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict

import pytest

from connectors.sdk import Client
from pipelines.loader import pipelines
from tests.integration.pipeline_helpers import normalize, read_value, recorder, wait_until
from tests.model import SentOp, model_value

pytestmark = pytest.mark.integration

PREFIXES = {
    "ctr": "pncounter",
    "gctr": "gcounter",
    "gs": "gset",
    "ors": "orset",
    "reg": "lww",
    "ts": "timeseries",
    "g": "graph",
    "wf": "workflow",
}


def random_op(client: Client, rng: random.Random, object_id: str, crdt_type: str, step: int) -> None:
    if crdt_type == "pncounter":
        h = client.counter(object_id)
        (h.increment if rng.random() < 0.6 else h.decrement)(rng.randint(1, 5))
    elif crdt_type == "gcounter":
        client.counter(object_id).increment(rng.randint(1, 5))
    elif crdt_type == "gset":
        client.gset(object_id).add(f"e{rng.randint(0, 6)}")
    elif crdt_type == "orset":
        h = client.orset(object_id)
        el = f"e{rng.randint(0, 3)}"
        (h.add if rng.random() < 0.6 else h.remove)(el)
    elif crdt_type == "lww":
        client.register(object_id).write(f"{client.node_id}-{step}")
    elif crdt_type == "timeseries":
        client.timeseries(object_id).append_data_point(1_700_000_000.0 + step, round(rng.uniform(0, 100), 3))
    elif crdt_type == "graph":
        h = client.graph(object_id)
        a, b = f"v{rng.randint(0, 3)}", f"v{rng.randint(0, 3)}"
        r = rng.random()
        if r < 0.35:
            h.add_vertex(a)
        elif r < 0.5:
            h.remove_vertex(a)
        elif r < 0.85:
            h.add_vertex(a)
            h.add_vertex(b)
            h.add_edge(a, b)
        else:
            h.remove_edge(a, b)
    elif crdt_type == "workflow":
        client.workflow(object_id).transition(rng.choice(["submitted", "approved", "rejected", "draft"]))


def test_random_operations_on_1000_objects_match_an_independent_model(stack) -> None:
    run = uuid.uuid4().hex[:8]
    rng = random.Random(42)
    sent: list[SentOp] = []
    region = "eu"
    query_url = stack.settings.region_config(region).query_url
    producers = [Client(region=region, node_id=f"producer-{i}", on_op=recorder(sent), dev_trust=True) for i in range(2)]
    objects = [(f"{prefix}:{run}-{i}", t) for prefix, t in PREFIXES.items() for i in range(125)]
    for step in range(8):
        for object_id, crdt_type in objects:
            random_op(rng.choice(producers), rng, object_id, crdt_type, step)
    for p in producers:
        p.flush()

    by_object: dict[str, list[SentOp]] = defaultdict(list)
    for op in sent:
        by_object[op.object_id].append(op)
    wf = pipelines().rule_for("wf:x").workflow.as_dict()
    expected = {oid: model_value(ops, wf) for oid, ops in by_object.items()}
    types = dict(objects)

    def mismatches() -> list[str]:
        bad = []
        for oid, want in expected.items():
            got = normalize(types[oid], read_value(query_url, oid))
            if types[oid] == "timeseries" and got is not None:
                want = sorted(want)
            if got != want:
                bad.append(f"{oid}: got {got!r}, model {want!r}")
        return bad

    wait_until(lambda: not mismatches(), timeout=180, interval=2.0)
    bad = mismatches()
    assert not bad, f"{len(bad)} of {len(expected)} objects differ from the model, e.g. {bad[:3]}"
