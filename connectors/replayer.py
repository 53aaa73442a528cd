"""Replays wired the one way every caller needs: objects shaped by the pipelines, every signature
re-checked against the trust history (jarvis.trust and its mirrors, followed while the process
lives). The query API's `?at=`, `jarvis replay`, the verify handler and the archiver's snapshots
all replay through this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from connectors.archive.snapshots import take_snapshot
from connectors.kafka_clients import ADMIN
from connectors.replay_sources import SignatureChecker, kafka_ops, replay_from_archive
from connectors.trust_feed import followed_view
from jarvis.config import Settings
from jarvis.materialize import ObjectState
from jarvis.replay import ReplayReport, replay
from pipelines.loader import object_factory, pipelines


@dataclass
class Replayer:
    settings: Settings
    create: Callable[[str, str], ObjectState]
    verify: SignatureChecker

    @classmethod
    def from_settings(cls, settings: Settings, principal: str = ADMIN) -> Replayer:
        """A replayer whose trust history is read as `principal` (a worker passes its role's)."""
        checker = SignatureChecker(followed_view(settings, principal=principal).current)
        return cls(settings, object_factory(pipelines()), checker)

    def from_archive(self, object_id: str, at_hlc: int | None = None) -> ReplayReport:
        """Nearest snapshot at or before T, then the archived operations after it."""
        return replay_from_archive(self.settings, object_id, at_hlc, self.create, self.verify)

    def from_kafka(
        self,
        region: str,
        object_id: str,
        at_hlc: int | None = None,
        on_records: Callable[[int, int], None] | None = None,
    ) -> ReplayReport:
        """The object's partition of every ops topic the region holds, local and mirrored."""
        return replay(
            object_id,
            kafka_ops(self.settings, region, object_id, at_hlc, on_records=on_records),
            source=f"kafka ({region})",
            at_hlc=at_hlc,
            create=self.create,
            verify=self.verify,
        )

    def snapshot(self, conn: psycopg.Connection, object_id: str, region: str) -> int | None:
        """Snapshot the object as the archive holds it now; returns the operations it covers."""
        return take_snapshot(conn, object_id, region, self.create, self.verify)
