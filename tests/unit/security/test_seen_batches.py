"""Re-send protection: the pure store, its codec, and the gate refusing a re-sent signed batch."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.codec.seen import SeenRecord, decode_seen, encode_seen
from jarvis.gate import Gate
from jarvis.security.keys import Signer
from jarvis.security.seen_batches import BUCKET_MS, Acceptance, SeenBatches, batch_key
from pipelines.loader import pipelines
from tests.trust_helpers import view_trusting
from tests.unit.test_gate import NOW_MS, op, signed, signer  # noqa: F401 - signer is a fixture

DAY_MS = 86_400_000


@pytest.fixture
def gate(signer: Signer, tmp_path: Path) -> Gate:  # noqa: F811
    return Gate("eu", pipelines(), view_trusting(signer), seen=SeenBatches())


def test_a_resend_to_the_same_partition_is_rejected_with_where_it_was_accepted(
    gate: Gate,
    signer: Signer,  # noqa: F811
) -> None:
    data = signed([op(), op()], signer)
    first = gate.check(data, 3, 2219, NOW_MS)
    assert first.accepted == [0, 1] and first.seen_key == batch_key(first.batch.op_digests)
    again = gate.check(data, 3, 2300, NOW_MS + 1)
    assert again.accepted == []
    assert [r.index for r in again.rejected] == [0, 1]
    assert again.rejected[0].reasons == ["duplicate of batch b accepted at eu/3/2219 (same signed operations)"]


def test_a_resend_to_another_partition_is_rejected(gate: Gate, signer: Signer) -> None:  # noqa: F811
    data = signed([op()], signer)
    assert gate.check(data, 3, 10, NOW_MS).accepted == [0]
    assert "accepted at eu/3/10" in gate.check(data, 5, 0, NOW_MS).rejected[0].reasons[0]


def test_reprocessing_the_same_record_after_a_crash_gives_the_same_verdict(
    gate: Gate,
    signer: Signer,  # noqa: F811
) -> None:
    data = signed([op()], signer)
    assert gate.check(data, 3, 10, NOW_MS).accepted == [0]
    assert gate.check(data, 3, 10, NOW_MS + 5).accepted == [0]


def test_an_acceptance_heard_from_another_region_makes_a_resend_here_a_duplicate(
    gate: Gate,
    signer: Signer,  # noqa: F811
) -> None:
    data = signed([op()], signer)
    key = batch_key(gate.check(data, 0, 0, NOW_MS).batch.op_digests)
    fresh = Gate("eu", pipelines(), gate.trust, seen=SeenBatches())
    fresh.seen.record(key, Acceptance("us", 2, 41), NOW_MS + DAY_MS)
    assert "accepted at us/2/41" in fresh.check(data, 2, 99, NOW_MS).rejected[0].reasons[0]


def test_the_same_operations_in_a_batch_with_another_id_are_still_a_duplicate(
    gate: Gate,
    signer: Signer,  # noqa: F811
) -> None:
    ops = [op()]
    assert gate.check(signed(ops, signer), 0, 0, NOW_MS).accepted == [0]
    assert gate.check(signed(ops, signer), 0, 1, NOW_MS).accepted == []


def test_different_operations_are_not_duplicates(gate: Gate, signer: Signer) -> None:  # noqa: F811
    assert gate.check(signed([op()], signer), 0, 0, NOW_MS).accepted == [0]
    assert gate.check(signed([op()], signer), 0, 1, NOW_MS).accepted == [0]


def test_a_rejected_batch_is_not_remembered(gate: Gate, signer: Signer) -> None:  # noqa: F811
    data = signed([op("nope:1")], signer)
    result = gate.check(data, 0, 0, NOW_MS)
    assert result.accepted == [] and result.seen_key is None and len(gate.seen) == 0


def test_an_entry_lives_until_its_newest_operation_leaves_the_widest_window(
    gate: Gate,
    signer: Signer,  # noqa: F811
) -> None:
    newest = NOW_MS + 1000
    data = signed([op(), op(hlc=newest << 16)], signer)
    result = gate.check(data, 0, 0, NOW_MS)
    assert result.seen_expires_ms == newest + gate.widest_window_ms
    gate.seen.expire(result.seen_expires_ms - 1)
    assert result.seen_key in gate.seen
    gate.seen.expire(result.seen_expires_ms + BUCKET_MS)
    assert result.seen_key not in gate.seen


def test_gate_without_a_store_accepts_resends_as_before(signer: Signer, tmp_path: Path) -> None:  # noqa: F811
    plain = Gate("eu", pipelines(), view_trusting(signer))
    data = signed([op()], signer)
    assert plain.check(data, 0, 0, NOW_MS).accepted == plain.check(data, 0, 1, NOW_MS).accepted == [0]


def test_seen_record_round_trips() -> None:
    rec = SeenRecord(batch_key(b"x" * 32), uuid.uuid4().hex, Acceptance("eu", 3, 2219), NOW_MS)
    assert decode_seen(encode_seen(rec)) == rec


entries = st.lists(
    st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 5), st.integers(0, 10 * BUCKET_MS)),
    max_size=60,
)


@given(entries, st.integers(0, 12 * BUCKET_MS))
def test_expiry_keeps_exactly_the_entries_still_in_their_window(es: list, now: int) -> None:
    seen = SeenBatches()
    latest: dict[bytes, int] = {}
    for key, p, exp in es:
        seen.record(key, Acceptance("eu", p, 0), exp)
        latest[key] = max(latest.get(key, -1), exp)
    seen.expire(now)
    alive = {k for k, e in latest.items() if e > now}
    assert {k for k, _, _ in seen.items()} >= alive
    # Nothing outlives its expiry by more than the bucket it sits in.
    assert all(e > now - BUCKET_MS for _, _, e in seen.items())
    for key in alive:
        assert seen.duplicate_of(key, Acceptance("us", 9, 9), now) is not None
    later = now + 3 * BUCKET_MS
    seen.expire(later)
    left = {k for k, _, _ in seen.items()}
    assert left >= {k for k, e in latest.items() if e > later}
    assert not left & {k for k, e in latest.items() if e <= later - BUCKET_MS}
