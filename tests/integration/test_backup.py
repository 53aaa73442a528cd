"""`jarvis backup` on the real stack: a backup restored into an empty PostgreSQL database gives the
same `jarvis replay` and `jarvis audit` as the original (its key material and trust grants restored
beside it), any version restores, and a tampered or truncated backup fails `verify` with the reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from connectors import kafka_clients
from connectors.backup.container import new_key
from connectors.sdk import Client
from jarvis.config import Settings
from tests.integration.pipeline_helpers import get_json, object_url, wait_until
from tests.integration.test_archive import archived_count

pytestmark = pytest.mark.integration


def jarvis(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def empty_databases(stack):
    """Fresh, empty databases on the stack's PostgreSQL; dropped afterwards."""
    s = stack.settings
    admin = s.postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    made: list[str] = []

    def make() -> str:
        name = f"jarvis_restore_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return s.postgres_dsn.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _cluster_env(s: Settings) -> dict[str, str]:
    a = kafka_clients.auth(s, kafka_clients.ADMIN)
    env = {"JARVIS_KAFKA_SECURITY": a.protocol.lower()}
    if a.secure:
        env |= {"JARVIS_KAFKA_USERNAME": a.username or "", "JARVIS_KAFKA_PASSWORD": a.password or "",
                "JARVIS_KAFKA_CA": str(a.ca)}  # fmt: skip
    if s.admin_key_file.exists():
        env["JARVIS_API_KEY"] = s.admin_key_file.read_text().strip()
    env["JARVIS_HTTP_TLS"] = "1" if s.http_secure else "0"
    if s.http_secure:
        env["JARVIS_HTTP_CA"] = str(s.http_ca_file)
    return env


def said(r: subprocess.CompletedProcess) -> str:
    """stderr with its line breaks undone (Rich wraps at the terminal's width)."""
    return " ".join(r.stderr.split())


def normalised(report: dict) -> dict:
    """A report without what differs between two runs of the same command (how long it took)."""
    return {k: v for k, v in report.items() if not any(w in k for w in ("elapsed", "took", "duration", "seconds"))}


def restore_agrees(
    s: Settings, restored_dsn: str, dest: str, env: dict[str, str], oid: str, since: dt.datetime, home: Path
) -> dict[str, str]:
    """The newest version of `dest` restored into the empty database `restored_dsn` and the empty
    keys directory under `home` gives the original's archive, keys, replay and audit; returns the
    restored host's environment."""
    # A restored home is another host's: it names the running cluster's credentials explicitly, as an
    # operator elsewhere would (the backup carries keys and trust, not Kafka passwords).
    restored = {"JARVIS_POSTGRES_DSN": restored_dsn, "JARVIS_HOME": str(home), **_cluster_env(s)}
    r = jarvis("backup", "restore", "--from", dest, env={**env, **restored})
    assert r.returncode == 0, r.stderr
    assert archived_count(restored_dsn, [oid]) == 65
    for path in s.keys_dir.rglob("*"):
        if path.is_file():
            assert (home / "keys" / path.relative_to(s.keys_dir)).read_bytes() == path.read_bytes(), path

    # Replay (signatures checked against the restored trust grants) and audit agree.
    for args in (
        ["replay", "--object", oid, "--source", "archive", "--region", "eu", "--json"],
        ["audit", "--since", since.isoformat(), "--until", dt.datetime.now(dt.UTC).isoformat(), "--prefix", "ctr", "--json"],
    ):
        original = jarvis(*args)
        again = jarvis(*args, env=restored)
        assert original.returncode == 0 and again.returncode == 0, original.stderr + again.stderr
        a, b = json.loads(original.stdout), json.loads(again.stdout)
        assert normalised(a) == normalised(b), args[0]
        assert str(145 if args[0] == "replay" else 65) in original.stdout
    return restored


def test_restored_backup_replays_and_audits_like_the_original_and_any_version_restores(
    stack, empty_databases, tmp_path: Path
) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    oid = f"ctr:{run}-backup"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    key = {"JARVIS_BACKUP_KEY": new_key()}
    dest = tmp_path / "backups"
    client = Client(region="eu", node_id=f"backup-{run}", dev_trust=True)
    for _ in range(40):
        client.counter(oid).increment(3)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 40, 120)

    first = jarvis("backup", "create", "--to", str(dest), env=key)
    assert first.returncode == 0, first.stderr
    v1 = first.stdout.strip().splitlines()[-1]

    for _ in range(25):
        client.counter(oid).increment(1)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 65, 120)
    assert wait_until(
        lambda: (get_json(object_url(s.region_config("eu").query_url, oid))[1] or {}).get("value") == 145, 60
    )
    second = jarvis("backup", "create", "--to", str(dest), env=key)
    assert second.returncode == 0, second.stderr
    v2 = second.stdout.strip().splitlines()[-1]

    listed = jarvis("backup", "list", "--from", str(dest), "--json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [v["version"] for v in versions] == sorted([v1, v2]) and all(v.get("key_id") for v in versions)

    restored = restore_agrees(s, empty_databases(), str(dest), key, oid, since, tmp_path / "restored-home")

    # An older version restores too, with what it held then.
    older_dsn = empty_databases()
    r = jarvis("backup", "restore", "--from", str(dest), "--version", v1,
               env={**key, "JARVIS_POSTGRES_DSN": older_dsn, "JARVIS_HOME": str(tmp_path / "older-home")})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert archived_count(older_dsn, [oid]) == 40

    # A restore never lands on an archive that holds data.
    r = jarvis("backup", "restore", "--from", str(dest), env={**key, **restored})
    assert r.returncode == 1 and "not empty" in said(r) and "Traceback" not in r.stderr


def test_a_tampered_or_truncated_backup_fails_verify_with_the_reason(stack, empty_databases, tmp_path: Path) -> None:
    key = {"JARVIS_BACKUP_KEY": new_key()}
    dest = tmp_path / "b"
    made = jarvis("backup", "create", "--to", str(dest), "--no-kafka", env=key)
    assert made.returncode == 0, made.stderr
    version = made.stdout.strip().splitlines()[-1]
    ok = jarvis("backup", "verify", "--from", str(dest), env=key)
    assert ok.returncode == 0 and "verified" in ok.stderr, ok.stderr
    path = dest / f"{version}.jbk"
    raw = path.read_bytes()

    tampered = tmp_path / "tampered"
    tampered.mkdir()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x40
    (tampered / path.name).write_bytes(bytes(flipped))
    bad = jarvis("backup", "verify", "--from", str(tampered), env=key)
    assert bad.returncode == 1 and "failed authentication: the backup was altered" in said(bad), bad.stderr

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / path.name).write_bytes(raw[: len(raw) - 10])
    bad = jarvis("backup", "verify", "--from", str(truncated), env=key)
    assert bad.returncode == 1 and "truncated" in said(bad), bad.stderr

    wrong = jarvis("backup", "verify", "--from", str(dest), env={"JARVIS_BACKUP_KEY": new_key()})
    assert wrong.returncode == 1 and "encrypted with key" in said(wrong)

    # Restore checks the same way before it commits anything.
    target = empty_databases()
    r = jarvis("backup", "restore", "--from", str(tampered),
               env={**key, "JARVIS_POSTGRES_DSN": target, "JARVIS_HOME": str(tmp_path / "h")})  # fmt: skip
    assert r.returncode == 1 and "failed authentication" in said(r) and "Traceback" not in r.stderr
    with psycopg.connect(target) as conn:  # rolled back: nothing of it landed
        assert conn.execute("SELECT count(*) FROM jarvis.ops").fetchone()[0] == 0
    shutil.rmtree(tampered)
