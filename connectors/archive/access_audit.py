"""The access audit's archive: each region's archiver copies its `jarvis.audit` topic into
jarvis.access_audit (migration 005), offsets committed after the rows are, so nothing is lost and a
redelivery inserts nothing twice (the primary key is the record's topic position)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import orjson
import psycopg
from confluent_kafka import Consumer, Message

from connectors.kafka_clients import client_conf
from jarvis import topics
from jarvis.config import Settings

log = logging.getLogger("jarvis.audit")

COLUMNS = ("region", "partition", "offset", "at", "kind", "service", "principal", "key_id", "method", "path",
           "status", "reason", "action", "target", "event")  # fmt: skip
INSERT = (
    "INSERT INTO jarvis.access_audit (" + ", ".join(f'"{c}"' for c in COLUMNS) + ") VALUES ("
    + ", ".join(["%s"] * len(COLUMNS)) + ") ON CONFLICT DO NOTHING"
)


def row(region: str, m: Message) -> tuple[Any, ...] | None:
    """The archive row of one audit record (None if it is not one: it is skipped, logged)."""
    try:
        e = orjson.loads(m.value() or b"")
        at = dt.datetime.fromtimestamp(int(e["at_ms"]) / 1000, dt.UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("audit record at %s/%d/%d is not an audit event: skipped", m.topic(), m.partition(), m.offset())
        return None
    status = e.get("status")
    return (
        e.get("region") or region, m.partition(), m.offset(), at, str(e.get("kind", "")), str(e.get("service", "")),
        e.get("principal"), e.get("key_id"), e.get("method"), e.get("path"),
        status if isinstance(status, int) else None, e.get("reason"), e.get("action"), e.get("target"),
        orjson.dumps(e).decode(),
    )  # fmt: skip


def run(dsn: str, bootstrap: str, region: str, stop: threading.Event, settings: Settings | None = None) -> None:
    """Copy jarvis.audit to the archive until `stop` is set (the archiver's second loop)."""
    consumer = Consumer({
        **client_conf(bootstrap, "archiver", settings), "group.id": f"jarvis-audit-archiver-{region}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 200,
    })  # fmt: skip
    consumer.subscribe([topics.AUDIT])
    conn: psycopg.Connection | None = None
    try:
        while not stop.is_set():
            msgs = [m for m in consumer.consume(num_messages=500, timeout=0.5) if m.error() is None]
            if not msgs:
                continue
            rows = [r for m in msgs if (r := row(region, m)) is not None]
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(dsn)
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(INSERT, rows)
                    break
                except psycopg.Error as e:
                    log.warning("audit rows not archived (%s); retrying", e)
                    conn = None
                    stop.wait(2)
            else:
                return  # stopping before the rows were written: their offsets stay uncommitted
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
        if conn is not None:
            conn.close()


def listing(dsn: str, since: dt.datetime, kind: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """The audit records since `since`, oldest first."""
    sql = "SELECT event FROM jarvis.access_audit WHERE at >= %s" + (" AND kind = %s" if kind else "")
    params: list[Any] = [since, *([kind] if kind else [])]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(sql + " ORDER BY at, region, partition, \"offset\" LIMIT %s", [*params, limit]).fetchall()
    return [r[0] for r in rows]
