"""Access audit: every denied HTTP request, every granted read of a clinical object and every admin
change, as one JSON record on the
region's `jarvis.audit` topic (archived to PostgreSQL by the archiver, listed by
`jarvis audit access`).

A request never waits for Kafka: `record` hands the event to the producer's local queue, bounded at
QUEUE_MAX records; when it is full (Kafka down for long) the event is dropped and counted in
`jarvis_audit_dropped_total`, so an attacker hammering a port cannot grow a service's memory.

  {"kind": "denied", "at_ms", "region", "service", "method", "path", "status", "reason",
   "principal", "key_id"}                                  (principal/key_id null when unknown)
  {"kind": "read", "at_ms", "region", "service", "method", "path", "status": 200, "principal",
   "key_id", "objects": [clinical object ids served]}
  {"kind": "admin",  "at_ms", "region", "service": "cli", "action": "role set"|"key create"|
   "key revoke", "principal", "target", "detail"}
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Producer
from prometheus_client import Counter

from connectors.kafka_clients import ADMIN, client_conf
from jarvis import topics
from jarvis.config import Settings

log = logging.getLogger("jarvis.audit")

QUEUE_MAX = 10_000
DROPPED = Counter("jarvis_audit_dropped_total", "Audit events dropped: the producer's queue was full", ["service"])
EVENTS = Counter("jarvis_audit_events_total", "Audit events handed to Kafka", ["service", "kind"])
MAX_PATH = 300  # a path is cut to this in the record (a 100 KB URL is not worth keeping whole)


def now_ms() -> int:
    return int(time.time() * 1000)


# The Kafka principal each service writes its audit events as (the query API runs in the fold).
_PRINCIPALS = {"query": "fold", "cli": ADMIN}


class AuditSink:
    """A non-blocking producer of audit events to one region's `jarvis.audit`."""

    def __init__(
        self, bootstrap: str, region: str, service: str, settings: Settings | None = None,
        conf: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.region, self.service = region, service
        self._producer = Producer(
            {
                **client_conf(bootstrap, _PRINCIPALS.get(service, service), settings),
                "queue.buffering.max.messages": QUEUE_MAX,
                "linger.ms": 50,
                "acks": "all",
                "message.timeout.ms": 300_000,
                **(conf or {}),
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"audit-{service}", daemon=True)
        self._poller.start()

    def denied(self, method: str, path: str, status: int, reason: str,
               principal: str | None = None, key_id: str | None = None) -> None:  # fmt: skip
        self.record({"kind": "denied", "method": method, "path": path[:MAX_PATH], "status": status,
                     "reason": reason, "principal": principal, "key_id": key_id})  # fmt: skip

    def read(self, method: str, path: str, objects: list[str],
             principal: str | None = None, key_id: str | None = None) -> None:  # fmt: skip
        self.record({"kind": "read", "method": method, "path": path[:MAX_PATH], "status": 200,
                     "principal": principal, "key_id": key_id, "objects": objects})  # fmt: skip

    def admin(self, action: str, principal: str, target: str, detail: dict[str, Any] | None = None) -> None:
        self.record({"kind": "admin", "action": action, "principal": principal, "target": target,
                     "detail": detail or {}})  # fmt: skip

    def record(self, event: dict[str, Any]) -> None:
        event = {"at_ms": now_ms(), "region": self.region, "service": self.service, **event}
        try:
            self._producer.produce(topics.AUDIT, key=self.region.encode(), value=orjson.dumps(event))
        except BufferError:
            DROPPED.labels(self.service).inc()
            return
        except Exception as e:  # noqa: BLE001 - auditing must never fail the request it describes
            DROPPED.labels(self.service).inc()
            log.warning("audit event not produced: %s", e)
            return
        EVENTS.labels(self.service, event.get("kind", "?")).inc()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.5)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for Kafka to take what is queued; the number of events still not delivered."""
        return self._producer.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._producer.flush(timeout)
