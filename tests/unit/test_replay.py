"""Replay's pure core: any order, duplicates, a snapshot start or a time cut give the live fold's answer."""

from __future__ import annotations

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.replay_sources import SignatureChecker
from jarvis.materialize import ObjectState, apply, new_state
from jarvis.ops import Dot, Operation
from jarvis.replay import SourcedOp, replay
from jarvis.security.keys import create_key
from jarvis.security.signing import sign_batch
from pipelines.loader import object_factory, pipelines
from tests.trust_helpers import view_trusting

ORIGINS = ["eu", "us", "ap"]
TYPES = [
    ("orset", "ors:1"),
    ("graph", "g:1"),
    ("lww", "reg:1"),
    ("pncounter", "ctr:1"),
    ("timeseries", "ts:1"),
]


def trace(rng: random.Random, ctype: str, oid: str, n: int) -> list[SourcedOp]:
    out = []
    for i in range(n):
        origin = rng.choice(ORIGINS)
        kind, args = {
            "orset": lambda: rng.choice(
                [("add", {"element": rng.choice("xy")}), ("remove", {"element": rng.choice("xy")})]
            ),
            "graph": lambda: rng.choice(
                [
                    ("add_vertex", {"vertex": "a"}),
                    ("remove_vertex", {"vertex": "a"}),
                    ("add_edge", {"src": "a", "dst": "a"}),
                ]
            ),
            "lww": lambda i=i: ("write", {"value": i}),
            "workflow": lambda: (
                "transition",
                {"to_state": rng.choice(["submitted", "approved", "draft", "rejected"])},
            ),
            "pncounter": lambda: rng.choice([("increment", {"n": 2}), ("decrement", {"n": 1})]),
            "timeseries": lambda i=i: ("append", {"timestamp": rng.randint(0, 5), "value": i}),
        }[ctype]()
        o = Operation(uuid.uuid4().hex, oid, ctype, kind, args, f"node-{origin}", origin, rng.randint(1, 40))
        out.append(SourcedOp(o, Dot(origin, 0, i, 0), "b", "k", 0, b"", b""))
    return out


WF = pipelines().rule_for("wf:1").workflow.as_dict()


def live_fold(ops: list[SourcedOp], oid: str, ctype: str, upto: int | None = None) -> ObjectState:
    s = create(oid, ctype)
    for so in sorted(ops, key=lambda so: so.dot):  # the live fold: each origin in dot order
        if upto is None or so.op.hlc <= upto:
            apply(s, so.op, so.dot)
    return s


def create(oid: str, ctype: str) -> ObjectState:
    return new_state(oid, ctype, max_points=1000, workflow=WF if ctype == "workflow" else None)


def ok(_: SourcedOp) -> None:
    return None


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_replay_in_any_order_with_duplicates_equals_the_live_fold(data: st.DataObject) -> None:
    ctype, oid = data.draw(st.sampled_from(TYPES))
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    ops = trace(rng, ctype, oid, data.draw(st.integers(1, 40)))
    delivered = ops + [rng.choice(ops) for _ in range(len(ops) // 3)]  # MirrorMaker/archive duplicates
    rng.shuffle(delivered)
    live = live_fold(ops, oid, ctype)
    rep = replay(oid, delivered, source="t", at_hlc=None, create=create, verify=ok)
    assert rep.state is not None and rep.state.value == live.value
    assert rep.state.ops == live.ops == len(ops) and rep.state.context == live.context

    cut = data.draw(st.integers(0, 41))
    at = replay(oid, delivered, source="t", at_hlc=cut, create=create, verify=ok)
    expected = live_fold(ops, oid, ctype, upto=cut)
    if expected.ops == 0:
        assert at.state is None
    else:
        assert at.state is not None and at.state.value == expected.value and at.ops_folded == expected.ops


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_replay_from_a_snapshot_equals_the_live_fold(data: st.DataObject) -> None:
    ctype, oid = data.draw(st.sampled_from(TYPES))
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    ops = trace(rng, ctype, oid, data.draw(st.integers(1, 40)))
    # A snapshot holds a prefix (in dot order) of every origin, as the archive does.
    cut = {o: rng.randint(0, 40) for o in ORIGINS}
    prefix = [so for so in ops if so.dot.offset < cut[so.dot.origin_region]]
    if not prefix:
        return
    snap = ObjectState.from_bytes(live_fold(prefix, oid, ctype).to_bytes())
    rest = ops[:]
    rng.shuffle(rest)
    rep = replay(oid, rest, source="t", at_hlc=None, create=create, verify=ok, start=snap)
    live = live_fold(ops, oid, ctype)
    assert rep.state is not None and rep.state.value == live.value and rep.state.ops == live.ops
    assert rep.ops_folded == len(ops) - len(prefix)


def test_tampered_and_untrusted_operations_are_reported_and_not_folded(tmp_path) -> None:
    keys = tmp_path / "keys"
    signer = create_key(keys, "app-1")
    stranger = create_key(tmp_path / "other", "mallory")

    def batch(ns: list[int], key, batch_id: str, tamper: int | None = None) -> list[SourcedOp]:
        ops = [
            Operation(uuid.uuid4().hex, "ctr:9", "pncounter", "increment", {"n": n}, "app-1", "eu", 100 + n)
            for n in ns
        ]
        digests, sig = sign_batch(ops, key)
        if tamper is not None:
            ops[tamper].args = {"n": 1000}
        return [
            SourcedOp(o, Dot("eu", 0, i, 0), batch_id, key.key_id, i, digests, sig) for i, o in enumerate(ops)
        ]

    good = batch([1, 2], signer, "b1")
    altered = batch([3, 4], signer, "b2", tamper=1)
    for so in altered:
        so.dot = Dot("eu", 0, so.dot.offset + 10, 0)
    forged = batch([5], stranger, "b3")
    forged[0].dot = Dot("eu", 0, 20, 0)
    rep = replay(
        "ctr:9", good + altered + forged, source="t", at_hlc=None,
        create=object_factory(pipelines()), verify=SignatureChecker(view_trusting(signer)),
    )  # fmt: skip
    assert rep.value == 1 + 2 + 3
    problems = sorted(e.problem or "" for e in rep.failures)
    assert len(problems) == 2
    assert "digest mismatch" in problems[0] and problems[1] == f"key {stranger.key_id} of node app-1 is not trusted in eu"
    assert rep.as_dict()["signature_failures"][0]["node_id"] == "app-1"


def test_a_replay_judges_each_operation_by_the_trust_of_its_own_time(tmp_path) -> None:
    """Revoked at T: what the key signed before T still verifies, what it signed after does not."""
    from jarvis.security.trust import make_revocation
    from tests.trust_helpers import ADMIN

    signer = create_key(tmp_path, "app-1")
    view = view_trusting(signer)
    revoked_ms = 5_000
    assert view.add(make_revocation(ADMIN, signer.key_id, at_ms=revoked_ms, issued_ms=revoked_ms)) is None
    ops = [
        Operation(uuid.uuid4().hex, "ctr:9", "pncounter", "increment", {"n": n}, "app-1", "eu", ms << 16)
        for n, ms in ((1, 4_000), (2, 4_999), (4, 5_000))
    ]
    digests, sig = sign_batch(ops, signer)
    sourced = [SourcedOp(o, Dot("eu", 0, i, 0), "b1", signer.key_id, i, digests, sig) for i, o in enumerate(ops)]
    rep = replay(
        "ctr:9", sourced, source="t", at_hlc=None, create=object_factory(pipelines()),
        verify=SignatureChecker(lambda: view),
    )  # fmt: skip
    assert rep.value == 1 + 2
    assert [e.problem for e in rep.failures] == [
        f"key {signer.key_id} of node app-1 revoked at 1970-01-01T00:00:05.000+00:00"
    ]
