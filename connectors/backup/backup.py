"""`jarvis backup create | list | verify | restore`: the archive (PostgreSQL, COPY in binary within one
repeatable-read snapshot), the key material and trust grants (the keys directory) and the Kafka
positions to resume from (every `jarvis-*` consumer group's committed offsets per region, read just
before the archive's snapshot, so the snapshot holds everything below them), in one
encrypted, authenticated file per version (connectors/backup/container.py) in a folder or S3.

Entries, in order: `schema.json` (tables, their columns, the migrations applied), `table/<name>`
(COPY binary data), `keys/<path>`, `kafka/positions.json`, and last, in the chunk flagged final,
`manifest.json` (rows, bytes and SHA-256 of every entry). Restore applies the migrations to the
target, refuses a target whose archive is not empty, COPYs every table in one transaction that
commits only once the manifest has checked out, then writes the key files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import psycopg.conninfo
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.archive.migrate import migrate
from connectors.backup.container import CHUNK, BackupCorrupt, BackupError, Writer, read_header, read_pieces
from connectors.backup.stores import Store
from connectors.kafka_clients import client_conf

Progress = Callable[[str, int], None]  # (what, bytes just done)


def _quiet(_: str, __: int) -> None:
    pass


def new_version(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + os.urandom(3).hex()


def redacted_dsn(dsn: str) -> str:
    """The DSN without its password (it goes into the header, which is not encrypted)."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "?"
    parts.pop("password", None)
    return f"{parts.get('host', '')}:{parts.get('port', '')}/{parts.get('dbname', '')}"


def archive_tables(conn: Any) -> list[dict[str, Any]]:
    """The archive's tables (schema jarvis, partitions and the migrations table left out), with
    their columns in order."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'jarvis' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND c.relname <> 'schema_migrations' ORDER BY c.relname"
    ).fetchall()
    tables = []
    for (name,) in rows:
        cols = [
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'jarvis' AND table_name = %s ORDER BY ordinal_position",
                (name,),
            )
        ]
        tables.append({"name": name, "columns": cols})
    return tables


def _cols(columns: list[str]) -> str:
    return ", ".join('"' + c.replace('"', '""') + '"' for c in columns)


@dataclass
class EntryHash:
    bytes: int = 0
    sha: Any = field(default_factory=hashlib.sha256)

    def add(self, data: bytes) -> None:
        self.bytes += len(data)
        self.sha.update(data)

    def out(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "sha256": self.sha.hexdigest()}


def kafka_positions(bootstraps: dict[str, str], timeout: float = 10.0) -> dict[str, Any]:
    """Per region, every jarvis-* consumer group's committed offsets: topic -> partition -> offset."""
    out: dict[str, Any] = {}
    for region, bootstrap in bootstraps.items():
        admin = AdminClient({**client_conf(bootstrap), "socket.timeout.ms": 5000})
        try:
            listed = admin.list_consumer_groups(request_timeout=timeout).result()
        except Exception as e:  # noqa: BLE001 - recorded: the archive backup stands without it
            out[region] = {"error": f"{bootstrap}: {e}"}
            continue
        groups: dict[str, Any] = {}
        for g in sorted(g.group_id for g in listed.valid if g.group_id.startswith("jarvis-")):
            res = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g)], request_timeout=timeout
            )
            offsets: dict[str, dict[str, int]] = {}
            for tp in res[g].result().topic_partitions or []:
                if tp.offset >= 0:
                    offsets.setdefault(tp.topic, {})[str(tp.partition)] = tp.offset
            groups[g] = offsets
        out[region] = {"bootstrap": bootstrap, "groups": groups}
    return out


def create(
    store: Store,
    key: bytes,
    dsn: str,
    keys_dir: Path,
    bootstraps: dict[str, str] | None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Write one new version; its manifest."""
    version = new_version()
    created = dt.datetime.now(dt.UTC).isoformat()
    manifest: dict[str, Any] = {"version": version, "created": created, "entries": {}}
    # Read before the archive's snapshot: an archiver commits its offsets only once PostgreSQL has
    # the rows, so everything below a position read now is in the snapshot taken next. A region
    # that joins from this backup has MirrorMaker copy from these positions on
    # (connectors/region_join.py); positions read after the snapshot could run ahead of it, and
    # the operations in between would never reach the new region.
    positions = kafka_positions(bootstraps) if bootstraps else None
    if positions is not None:
        manifest["positions_before_snapshot"] = True
    header = {"version": version, "created": created, "source": redacted_dsn(dsn)}
    with store.writer(version) as out:
        w = Writer(out, key, header)
        with psycopg.connect(dsn) as conn:
            # One snapshot for every table: the archive as it was at one moment.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                tables = archive_tables(conn)
                migrations = conn.execute(
                    "SELECT version, name FROM jarvis.schema_migrations ORDER BY version"
                ).fetchall()
                schema = {"tables": tables, "migrations": [list(m) for m in migrations]}
                w.write("schema.json", json.dumps(schema).encode())
                for t in tables:
                    name = f"table/{t['name']}"
                    (rows,) = conn.execute(f"SELECT count(*) FROM jarvis.{t['name']}").fetchone()
                    h = EntryHash()
                    buf = bytearray()
                    with conn.cursor().copy(
                        f"COPY (SELECT {_cols(t['columns'])} FROM jarvis.{t['name']}) TO STDOUT (FORMAT binary)"
                    ) as copy:
                        for data in copy:
                            buf += data
                            if len(buf) >= CHUNK:
                                w.write(name, bytes(buf))
                                h.add(bytes(buf))
                                progress(name, len(buf))
                                buf.clear()
                    w.write(name, bytes(buf))  # at least one piece: an empty table is an entry too
                    h.add(bytes(buf))
                    progress(name, len(buf))
                    manifest["entries"][name] = {**h.out(), "rows": rows}
        for path in sorted(p for p in keys_dir.rglob("*") if p.is_file()) if keys_dir.is_dir() else []:
            rel = path.relative_to(keys_dir).as_posix()
            data = path.read_bytes()
            w.write(f"keys/{rel}", data)
            h = EntryHash()
            h.add(data)
            manifest["entries"][f"keys/{rel}"] = {**h.out(), "mode": path.stat().st_mode & 0o777}
            progress(f"keys/{rel}", len(data))
        if positions is not None:
            data = json.dumps(positions).encode()
            w.write("kafka/positions.json", data)
            h = EntryHash()
            h.add(data)
            manifest["entries"]["kafka/positions.json"] = h.out()
            progress("kafka/positions.json", len(data))
        w.close("manifest.json", json.dumps(manifest).encode())
        manifest["size"] = w.bytes_written
    return manifest


def list_versions(store: Store) -> list[dict[str, Any]]:
    """Each version with its header (read without the key) or why it cannot be read."""
    out = []
    for s in store.list():
        item: dict[str, Any] = {"version": s.version, "size": s.size}
        try:
            with store.reader(s.version) as (f, _):
                header, _raw = read_header(f)
            item.update(
                created=header.get("created"), key_id=header.get("key_id"), source=header.get("source")
            )
        except BackupError as e:
            item["error"] = str(e)
        out.append(item)
    return out


def latest(store: Store) -> str:
    versions = store.list()
    if not versions:
        raise BackupError(f"no backups in {store.where}")
    return versions[-1].version


class Reading:
    """Reads one version's entries in order, checking each against the manifest at the end."""

    def __init__(self, f: IO[bytes], key: bytes, progress: Progress) -> None:
        self.pieces = read_pieces(f, key)
        self.progress = progress
        self.hashes: dict[str, EntryHash] = {}
        self.order: list[str] = []
        self.manifest: dict[str, Any] | None = None

    def entries(self):
        """(name, data) per piece, manifest excluded; afterwards `self.manifest` is checked."""
        for piece in self.pieces:
            if piece.final:
                if piece.name != "manifest.json":
                    raise BackupCorrupt(f"the final chunk holds {piece.name!r}, not the manifest")
                try:
                    self.manifest = json.loads(piece.data)
                except ValueError:
                    raise BackupCorrupt("the manifest is not JSON") from None
                self._check()
                return
            if not self.order or self.order[-1] != piece.name:
                if piece.name in self.hashes:
                    raise BackupCorrupt(f"entry {piece.name} comes twice")
                self.order.append(piece.name)
                self.hashes[piece.name] = EntryHash()
            self.hashes[piece.name].add(piece.data)
            self.progress(piece.name, len(piece.data) + 32)
            yield piece.name, piece.data

    def _check(self) -> None:
        assert self.manifest is not None
        listed = self.manifest.get("entries", {})
        for name, h in self.hashes.items():
            if name == "schema.json":
                continue
            want = listed.get(name)
            if want is None:
                raise BackupCorrupt(f"entry {name} is not in the manifest")
            if h.out() != {"bytes": want["bytes"], "sha256": want["sha256"]}:
                raise BackupCorrupt(
                    f"entry {name}: {h.bytes} bytes, SHA-256 {h.sha.hexdigest()[:16]}… differ from the manifest"
                )
        missing = set(listed) - set(self.hashes)
        if missing:
            raise BackupCorrupt(
                f"entries in the manifest but not in the backup: {', '.join(sorted(missing))}"
            )


def verify(store: Store, version: str, key: bytes, progress: Progress = _quiet) -> dict[str, Any]:
    with store.reader(version) as (f, _size):
        r = Reading(f, key, progress)
        for _ in r.entries():
            pass
    if r.manifest is None:  # read_pieces raises before this; kept for the type checker
        raise BackupCorrupt("no manifest")
    return r.manifest


def restore(
    store: Store,
    version: str,
    key: bytes,
    dsn: str,
    keys_dir: Path,
    overwrite_keys: bool = False,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Into an empty archive (the migrations are applied first); returns the manifest plus what
    was restored. Nothing is committed, and no key file written, unless the whole backup checks out."""

    migrate(dsn)
    keys: dict[str, bytes] = {}
    positions: dict[str, Any] | None = None
    with store.reader(version) as (f, _size), psycopg.connect(dsn) as conn:
        r = Reading(f, key, progress)
        it = r.entries()
        with conn.transaction():
            first = next(it, None)
            if first is None or first[0] != "schema.json":
                raise BackupCorrupt("the backup does not start with its schema")
            schema = json.loads(first[1])
            ours = {v for (v,) in conn.execute("SELECT version FROM jarvis.schema_migrations")}
            newer = [m for m in schema["migrations"] if m[0] not in ours]
            if newer:
                raise BackupError(
                    f"the backup's archive has migrations this version does not know: {newer}; restore with a newer jarvis"
                )
            tables = {t["name"]: t["columns"] for t in schema["tables"]}
            present = {t["name"] for t in archive_tables(conn)}
            if set(tables) - present:
                raise BackupError(f"tables missing after the migrations: {sorted(set(tables) - present)}")
            for name in tables:
                (n,) = conn.execute(f"SELECT count(*) FROM jarvis.{name}").fetchone()
                if n:
                    raise BackupError(
                        f"the target archive is not empty (jarvis.{name} has {n} rows): restore into an empty database"
                    )
            current = None
            copy = None
            # One COPY per table, open while its pieces come; an error ends it as failed (CopyFail),
            # so the reason raised is the backup's, not "unexpected EOF in COPY data".
            with ExitStack() as copies:
                for name, data in it:
                    if name != current:
                        copies.close()
                        copy = None
                    current = name
                    if name.startswith("table/"):
                        table = name.removeprefix("table/")
                        if table not in tables:
                            raise BackupCorrupt(f"entry {name} names no table of the schema")
                        if copy is None:
                            copy = copies.enter_context(
                                conn.cursor().copy(
                                    f"COPY jarvis.{table} ({_cols(tables[table])}) FROM STDIN (FORMAT binary)"
                                )
                            )
                        if data:
                            copy.write(data)
                    elif name.startswith("keys/"):
                        rel = name.removeprefix("keys/")
                        keys[rel] = keys.get(rel, b"") + data
                    elif name == "kafka/positions.json":
                        positions = json.loads(data)
            # The manifest checked out (Reading raised otherwise): the rows are the backup's.
            manifest = r.manifest or {}
            for name in tables:
                want = manifest["entries"][f"table/{name}"]["rows"]
                (n,) = conn.execute(f"SELECT count(*) FROM jarvis.{name}").fetchone()
                if n != want:
                    raise BackupCorrupt(f"jarvis.{name}: {n} rows restored, the manifest says {want}")
    written, kept = _write_keys(keys_dir, keys, manifest, overwrite_keys)
    return {**manifest, "keys_written": written, "keys_kept": kept, "positions": positions}


def _write_keys(
    keys_dir: Path, keys: dict[str, bytes], manifest: dict[str, Any], overwrite: bool
) -> tuple[list[str], list[str]]:
    written, kept = [], []
    root = keys_dir.resolve()
    for rel, data in sorted(keys.items()):
        path = (root / rel).resolve()
        if root not in path.parents:
            raise BackupCorrupt(f"key file path {rel!r} leaves the keys directory")
        if path.exists() and path.read_bytes() != data and not overwrite:
            kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = manifest["entries"].get(f"keys/{rel}", {}).get("mode", 0o600)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written.append(rel)
    return written, kept


def apply_positions(positions: dict[str, Any], bootstraps: dict[str, str]) -> list[str]:
    """Commit the backup's offsets for every group that has no live member (a running group's
    members own their offsets); what was done, a line per group."""
    lines = []
    for region, info in positions.items():
        if "groups" not in info or region not in bootstraps:
            lines.append(f"{region}: skipped ({info.get('error', 'region not configured')})")
            continue
        admin = AdminClient(client_conf(bootstraps[region]))
        for group, topics in info["groups"].items():
            tps = [TopicPartition(t, int(p), o) for t, parts in topics.items() for p, o in parts.items()]
            if not tps:
                continue
            try:
                admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group].result()
                lines.append(f"{region}: {group} set to the backup's {len(tps)} offsets")
            except Exception as e:  # noqa: BLE001 - e.g. the group has live members
                lines.append(f"{region}: {group} left as it is ({e})")
    return lines
