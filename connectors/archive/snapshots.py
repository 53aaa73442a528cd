"""Periodic snapshots of materialized state in the archive, so an audit need not replay from zero.

A snapshot is built from the archive itself (newest snapshot + the archived operations it does not
cover, signatures re-checked): the archive is self-contained, and a snapshot holds exactly the
operations its causal context names. The archiver writes one per object every `every_ops`
archived operations of that object.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable

import orjson
import psycopg

from connectors.replay_sources import replay_archived
from jarvis.materialize import ObjectState
from jarvis.replay import SourcedOp


def take_snapshot(
    conn: psycopg.Connection,
    object_id: str,
    region: str,
    create: Callable[[str, str], ObjectState],
    verify: Callable[[SourcedOp], str | None],
) -> int | None:
    """Snapshot `object_id` as the archive now holds it; returns the operations it covers."""
    with conn.transaction():
        report = replay_archived(conn, object_id, None, create, verify, keep_history=False)
        st = report.state
        if st is None or report.ops_folded == 0:
            return None
        conn.execute(
            "INSERT INTO jarvis.snapshots (object_id, region, taken_at, hlc, crdt_type, value, context, ops) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                object_id,
                region,
                dt.datetime.now(dt.UTC),
                st.updated_hlc,
                st.crdt_type,
                orjson.dumps(st.value.to_dict()).decode(),
                orjson.dumps(st.context).decode(),
                st.ops,
            ),
        )
    return st.ops


class SnapshotPolicy:
    """Counts archived operations per object and says which objects are due a snapshot."""

    def __init__(self, every_ops: int) -> None:
        self.every_ops = every_ops
        self.pending: Counter[str] = Counter()

    def saw(self, object_ids: list[str]) -> None:
        self.pending.update(object_ids)

    def due(self) -> list[str]:
        ready = [oid for oid, n in self.pending.items() if n >= self.every_ops]
        for oid in ready:
            del self.pending[oid]
        return ready
