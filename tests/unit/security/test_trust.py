"""The trust fold (jarvis/security/trust.py): its laws, property-tested, and its reasons."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.codec.trust import decode_trust, encode_trust
from jarvis.security.keys import key_id_of, public_b64
from jarvis.security.trust import (
    REVOKE,
    TrustError,
    TrustRecord,
    TrustView,
    WriteScope,
    make_grant,
    make_revocation,
)

ADMIN = Ed25519PrivateKey.generate()
NODE_KEYS = [Ed25519PrivateKey.generate() for _ in range(2)]
NODES = ["n0", "n1"]
TIMES = [0, 10, 20, 30, 40, 50, 60]
PATTERNS = [("*",), ("inventory:*",), ("inventory:*", "auth:*"), ("patient:1",)]


def view(*records: TrustRecord) -> TrustView:
    v = TrustView([ADMIN.public_key()])
    for r in records:
        v.add(r)
    return v


def grant(k: int = 0, write: tuple[str, ...] = ("*",), *, issued: int = 1, valid_from: int = 0, **kw: object) -> TrustRecord:
    return make_grant(ADMIN, NODES[k], NODE_KEYS[k].public_key(), write, issued_ms=issued, valid_from_ms=valid_from, **kw)  # type: ignore[arg-type]


def kid(k: int = 0) -> str:
    return key_id_of(NODE_KEYS[k].public_key())


def revoke(k: int = 0, *, at: int, issued: int) -> TrustRecord:
    return make_revocation(ADMIN, kid(k), at_ms=at, issued_ms=issued, node_id=NODES[k])


records = st.one_of(
    st.builds(
        lambda k, w, i, f: grant(k, w, issued=i, valid_from=f),
        st.integers(0, 1), st.sampled_from(PATTERNS), st.sampled_from(TIMES), st.sampled_from(TIMES),
    ),
    st.builds(lambda k, a, i: revoke(k, at=a, issued=i), st.integers(0, 1), st.sampled_from(TIMES), st.sampled_from(TIMES)),
)  # fmt: skip


def answers(v: TrustView) -> list[tuple[object, ...]]:
    """Everything the view says about both keys, at every time, for a few object ids."""
    out = []
    for k in range(2):
        for t in [*TIMES, 5, 65]:
            kv = v.key("eu", NODES[k], kid(k), t)
            out.append((k, t, kv.reason, kv.scope.patterns if kv.scope else None))
            for oid in ("inventory:1", "patient:1", "auth:role:x"):
                out.append((k, t, oid, v.op("eu", NODES[k], kid(k), oid, t)))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(records, max_size=7), st.randoms(use_true_random=False))
def test_the_fold_does_not_depend_on_arrival_order(recs: list[TrustRecord], rnd) -> None:
    shuffled = recs[:]
    rnd.shuffle(shuffled)
    assert answers(view(*recs)) == answers(view(*shuffled))


@settings(max_examples=40, deadline=None)
@given(st.lists(records, max_size=6))
def test_the_fold_is_idempotent(recs: list[TrustRecord]) -> None:
    once = view(*recs)
    twice = view(*recs, *recs)
    assert answers(once) == answers(twice) and once.version == twice.version
    assert all(once.add(r) is None for r in recs) and once.version == twice.version


@settings(max_examples=60, deadline=None)
@given(st.lists(records, max_size=7), st.sampled_from(TIMES))
def test_the_latest_issued_record_in_effect_decides_and_a_revocation_wins_ties(recs: list[TrustRecord], t: int) -> None:
    v = view(*recs)
    for k in range(2):
        in_effect = [r for r in recs if r.key_id == kid(k) and r.effective_ms <= t]
        kv = v.key("eu", NODES[k], kid(k), t)
        if not in_effect:
            assert kv.reason == f"key {kid(k)} of node {NODES[k]} is not trusted in eu"
            continue
        last = max(r.issued_ms for r in in_effect)
        if any(r.kind == REVOKE and r.issued_ms == last for r in in_effect):
            assert kv.reason is not None and "revoked at" in kv.reason
        else:
            assert kv.trusted


def test_a_revocation_beats_an_older_grant_whichever_arrives_first_and_a_regrant_needs_a_newer_record() -> None:
    g, r = grant(issued=10), revoke(at=20, issued=20)
    for order in ((g, r), (r, g)):
        v = view(*order)
        assert v.key("eu", "n0", kid(), 15).trusted  # signed before the revocation: still verifies
        assert v.key("eu", "n0", kid(), 20).reason == f"key {kid()} of node n0 revoked at 1970-01-01T00:00:00.020+00:00"
    stale = grant(issued=15, write=("inventory:*",))  # issued before the revocation: no re-grant
    assert not view(g, r, stale).key("eu", "n0", kid(), 25).trusted
    regrant = grant(issued=30, valid_from=30, write=("inventory:*",))
    v = view(regrant, r, g)
    assert not v.key("eu", "n0", kid(), 25).trusted
    again = v.key("eu", "n0", kid(), 30)
    assert again.trusted and again.scope is not None and again.scope.patterns == ("inventory:*",)


def test_reasons_name_the_key_the_node_the_region_and_the_grants() -> None:
    v = view(grant(0, ("inventory:*",), regions=["us"]), grant(1, ("inventory:*",)))
    assert v.key("eu", "n0", kid(0), 5).reason == f"key {kid(0)} of node n0 is not trusted in eu (only in us)"
    assert v.key("us", "n0", kid(0), 5).trusted
    assert v.key("eu", "n9", kid(1), 5).reason == f"key {kid(1)} is granted to node n1, not to node n9"
    assert v.op("eu", "n1", kid(1), "patient:1", 5) == "node n1 may not write patient:1 (grants: inventory:*)"
    assert v.op("eu", "n1", kid(1), "inventory:sku-1", 5) is None
    assert view().key("eu", "x", "0123456789abcdef", 5).reason == "key 0123456789abcdef of node x is not trusted in eu"


def test_star_does_not_reach_the_reserved_auth_prefix() -> None:
    star, auth, exact = WriteScope(("*",)), WriteScope(("auth:*",)), WriteScope(("auth:role:ops", "patient:1"))
    assert star.allows("patient:1") and not star.allows("auth:role:admin")
    assert auth.allows("auth:role:admin") and not auth.allows("patient:1")
    assert exact.allows("auth:role:ops") and exact.allows("patient:1") and not exact.allows("auth:role:x")
    assert star.denied(["a:1", "auth:k:1", "b:2", "auth:r:2"]) == [1, 3]
    assert star.denied(["a:1"] * 1000) == [] and WriteScope(("a:*",)).denied(["a:1", "b:1"]) == [1]
    assert star.denied(["x:1\0auth:y"]) == [] and star.denied(["auth:1"]) == [0]  # the join's edge cases
    assert WriteScope(("a:*", "b:2")).denied(["a:1", "b:2", "b:3"]) == [2]


def test_records_of_unknown_admins_forged_or_inconsistent_ones_are_ignored_with_the_reason(caplog) -> None:
    stranger = Ed25519PrivateKey.generate()
    v = view()
    foreign = make_grant(stranger, "n0", NODE_KEYS[0].public_key(), ("*",), issued_ms=1)
    why = v.add(foreign)
    assert why is not None and f"admin key {key_id_of(stranger.public_key())!r} is not a known admin key" in why
    assert why in caplog.text
    widened = dataclasses.replace(grant(0, ("inventory:*",)), write=("*",))  # altered after signing
    assert "does not verify" in (v.add(widened) or "")
    other_key = dataclasses.replace(grant(0), public_key=grant(1).public_key)
    assert "does not verify" in (v.add(other_key) or "")
    assert not v.key("eu", "n0", kid(0), 5).trusted and v.version == 0


def test_records_survive_the_avro_round_trip_with_their_signature() -> None:
    rec = grant(0, ("inventory:*", "patient:1"), regions=["eu", "us"], note="a note", valid_from=5)
    back = decode_trust(encode_trust(rec))
    assert back == rec and view(back).key("us", "n0", kid(0), 5).trusted
    rev = decode_trust(encode_trust(revoke(at=9, issued=9)))
    assert rev.kind == REVOKE and view(rec, rev).key("eu", "n0", kid(0), 9).reason is not None


def test_bad_grants_are_refused_when_made() -> None:
    with pytest.raises(TrustError, match="grant pattern"):
        grant(0, ("inventory",))
    with pytest.raises(TrustError, match="at least one"):
        grant(0, ())
    with pytest.raises(TrustError, match="base64 Ed25519"):
        make_grant(ADMIN, "n0", "not-a-key", ("*",), issued_ms=1)
    assert make_grant(ADMIN, "n0", public_b64(NODE_KEYS[0].public_key()), ("*",), issued_ms=1).key_id == kid(0)


def test_a_grant_with_the_same_content_is_the_same_record() -> None:
    # Ed25519 signs deterministically: a client or `stack up` granting the same key twice makes one record.
    assert grant(issued=7) == grant(issued=7) and grant(issued=7).kafka_key == grant(issued=7).kafka_key
    assert grant(issued=7).kafka_key != grant(issued=8).kafka_key
