"""Versioned migrations of the archive schema, applied by `jarvis db migrate` and by the archiver.

Each `migrations/NNN_name.sql` runs once, in order, inside one transaction with its bookkeeping row.
Where the timescaledb extension is available, time-keyed tables become hypertables; elsewhere they
are natively range-partitioned by month (partitions created on demand by `ensure_partitions`), with
the same SQL interface either way.
"""

from __future__ import annotations

import datetime as dt
from importlib.resources import files

import psycopg

# Package data, so an installed archiver migrates without the source tree beside it.
MIGRATIONS = files("connectors.archive") / "migrations"
TIME_TABLES = ("ops", "telemetry")
MIGRATION_LOCK = 0x6A61727669730001  # pg_advisory_lock key: "jarvis" + 1


def has_timescale(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    with psycopg.connect(dsn) as conn:
        # Every archiver migrates at start, and the two regions' start together: one at a time, so
        # the second finds the first's migrations done instead of running them again (and failing).
        # A session lock: it spans the per-migration transactions and ends with the connection.
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        conn.commit()
        conn.execute("CREATE SCHEMA IF NOT EXISTS jarvis")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS jarvis.schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()
        timescale = has_timescale(conn)
        if timescale:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        done = {v for (v,) in conn.execute("SELECT version FROM jarvis.schema_migrations")}
        for path in sorted((p for p in MIGRATIONS.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
            name = path.name.removesuffix(".sql")
            version = int(name.split("_", 1)[0])
            if version in done:
                continue
            sql = path.read_text().replace("{partitioning}", "" if timescale else "PARTITION BY RANGE (ts)")
            with conn.transaction():
                conn.execute(sql)
                if timescale:
                    for table in TIME_TABLES:
                        if f"jarvis.{table}" in sql:
                            conn.execute(
                                "SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE)",
                                (f"jarvis.{table}",),
                            )
                else:
                    for table in TIME_TABLES:
                        if f"jarvis.{table} (" in sql:
                            conn.execute(
                                f"CREATE TABLE IF NOT EXISTS jarvis.{table}_default "
                                f"PARTITION OF jarvis.{table} DEFAULT"
                            )
                conn.execute(
                    "INSERT INTO jarvis.schema_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
            applied.append(name)
    return applied


def month_bounds(ts: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def ensure_partitions(
    conn: psycopg.Connection, table: str, months: set[dt.datetime], known: set[str]
) -> None:
    """Create the monthly partitions the rows about to be written need (native partitioning only)."""
    for m in sorted(months):
        start, end = month_bounds(m)
        name = f"{table}_{start:%Y_%m}"
        if name in known:
            continue
        exists = conn.execute("SELECT to_regclass(%s)", (f"jarvis.{name}",)).fetchone()[0]
        if exists is None:
            try:
                with conn.transaction():
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS jarvis.{name} PARTITION OF jarvis.{table} "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
            except psycopg.errors.CheckViolation:
                # Rows for that month already sit in the default partition: leave them there.
                pass
            except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
                # The other region's archiver created it at the same moment (IF NOT EXISTS does not
                # cover a concurrent creation): it exists, which is all this needs.
                pass
        known.add(name)
