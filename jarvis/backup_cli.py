"""`jarvis backup create --to DEST | list --from DEST | verify --from DEST [--version V] |
restore --from DEST [--version V] | keygen`: DEST is a folder or s3://BUCKET/PREFIX
(connectors/backup/). The key: --key-file, else JARVIS_BACKUP_KEY (64 hex digits or base64)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from jarvis.config import settings

backup_app = typer.Typer(
    no_args_is_help=True,
    help="Encrypted, versioned backups of the archive, keys and trust grants, and Kafka positions.",
)
err = Console(stderr=True, soft_wrap=True)  # reasons stay on one line, whole (grep, tests)

KeyFile = typer.Option(None, "--key-file", help="File holding the 32-byte key (default: JARVIS_BACKUP_KEY).")
Version = typer.Option(None, "--version", "-v", help="Which version (default: the newest).")


def _key(key_file: Path | None) -> bytes:
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.container import BackupError, parse_key

    try:
        if key_file is not None:
            try:
                return parse_key(key_file.read_text())
            except OSError as e:
                raise BackupError(f"cannot read the key file {key_file}: {e.strerror}") from None
        text = settings().backup_key
        if not text:
            raise BackupError(
                "no backup key: set JARVIS_BACKUP_KEY or give --key-file (`jarvis backup keygen` makes one)"
            )
        return parse_key(text)
    except BackupError as e:
        err.print(f"[red]✗[/] {e}")
        raise typer.Exit(2) from None


def _store(dest: str):
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.container import BackupError
    from connectors.backup.stores import open_store

    try:
        return open_store(dest)
    except BackupError as e:
        err.print(f"[red]✗[/] {e}")
        raise typer.Exit(2) from None


@contextmanager
def _progress(total: int | None, what: str):
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as p:
        task = p.add_task(what, total=total)

        def advance(name: str, n: int) -> None:
            p.update(task, advance=n, description=f"{what} {name}")

        yield advance
        p.update(task, description=what)


@contextmanager
def _failing():
    """Backup errors end the command with their reason (exit 1), never a traceback."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.container import BackupError

    try:
        yield
    except BackupError as e:
        err.print(f"[red]✗[/] {e}")
        raise typer.Exit(1) from None
    except Exception as e:
        # The database or the object store refused or did not answer: its own message says why.
        origin = type(e).__module__.split(".")[0]
        if origin not in ("psycopg", "botocore", "boto3"):
            raise
        what = "the archive (PostgreSQL)" if origin == "psycopg" else "the object store"
        err.print(f"[red]✗[/] {what}: {type(e).__name__}: {e}")
        raise typer.Exit(1) from None


@backup_app.command()
def keygen(out: Path = typer.Option(..., "--out", help="Where to write the new key (mode 0600).")) -> None:
    """Make a new random backup key: keep it apart from the backups."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.container import key_id, new_key, parse_key

    if out.exists():
        err.print(f"[red]✗[/] {out} exists: not overwriting a key")
        raise typer.Exit(2)
    key = new_key()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    err.print(f"[green]✓[/] key {key_id(parse_key(key))} written to {out}")


@backup_app.command()
def create(
    to: str = typer.Option(..., "--to", help="A folder or s3://BUCKET/PREFIX."),
    key_file: Path | None = KeyFile,
    kafka: bool = typer.Option(True, "--kafka/--no-kafka", help="Record the consumer groups' positions."),
) -> None:
    """Write a new version: archive, key material and trust grants, Kafka positions."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.backup import create as do_create

    s = settings()
    key = _key(key_file)
    store = _store(to)
    bootstraps = {r: s.bootstrap(r) for r in s.region_names} if kafka else None
    with _failing(), _progress(None, "backing up") as advance:
        try:
            manifest = do_create(store, key, s.postgres_dsn, s.keys_dir, bootstraps, advance)
        except OSError as e:
            raise_backup(f"cannot write to {to}: {e}")
    rows = sum(e.get("rows", 0) for e in manifest["entries"].values())
    keys = sum(1 for n in manifest["entries"] if n.startswith("keys/"))
    err.print(
        f"[green]✓[/] backup {manifest['version']} in {store.where}: {rows} archive rows, {keys} key files, {manifest['size']} bytes"
    )
    print(manifest["version"])


def raise_backup(msg: str) -> None:
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.container import BackupError

    raise BackupError(msg)


@backup_app.command("list")
def list_cmd(
    from_: str = typer.Option(..., "--from", help="A folder or s3://BUCKET/PREFIX."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every version, oldest first (read from the headers: no key needed)."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.backup import list_versions

    store = _store(from_)
    with _failing():
        versions = list_versions(store)
    if as_json:
        print(json.dumps(versions, indent=2))
        return
    table = Table(title=f"backups in {store.where}")
    for col in ("version", "created", "size", "key", "source"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v["version"],
            v.get("created") or v.get("error", ""),
            str(v["size"]),
            v.get("key_id") or "",
            v.get("source") or "",
        )
    Console().print(table)


@backup_app.command()
def verify(
    from_: str = typer.Option(..., "--from", help="A folder or s3://BUCKET/PREFIX."),
    version: str | None = Version,
    key_file: Path | None = KeyFile,
) -> None:
    """Decrypt and authenticate every chunk and check every entry against the manifest: a tampered
    or truncated backup fails with the reason."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.backup import latest
    from connectors.backup.backup import verify as do_verify

    key = _key(key_file)
    store = _store(from_)
    with _failing():
        v = version or latest(store)
        size = next((s.size for s in store.list() if s.version == v), None)
        with _progress(size, f"verifying {v}") as advance:
            manifest = do_verify(store, v, key, advance)
    rows = sum(e.get("rows", 0) for e in manifest["entries"].values())
    err.print(f"[green]✓[/] backup {v} verified: {len(manifest['entries'])} entries, {rows} archive rows")


@backup_app.command()
def restore(
    from_: str = typer.Option(..., "--from", help="A folder or s3://BUCKET/PREFIX."),
    version: str | None = Version,
    key_file: Path | None = KeyFile,
    overwrite_keys: bool = typer.Option(False, "--overwrite-keys", help="Replace key files that differ."),
    offsets: bool = typer.Option(
        False,
        "--offsets",
        help="Also commit the backup's consumer-group offsets (groups without live members).",
    ),
) -> None:
    """Into an empty archive (JARVIS_POSTGRES_DSN or the local stack's), and the keys directory."""
    # lazy: every `jarvis` command imports this module; only `backup` loads cryptography and psycopg
    from connectors.backup.backup import apply_positions, latest
    from connectors.backup.backup import restore as do_restore

    s = settings()
    key = _key(key_file)
    store = _store(from_)
    with _failing():
        v = version or latest(store)
        size = next((x.size for x in store.list() if x.version == v), None)
        with _progress(size, f"restoring {v}") as advance:
            result = do_restore(store, v, key, s.postgres_dsn, s.keys_dir, overwrite_keys, advance)
    rows = sum(e.get("rows", 0) for e in result["entries"].values())
    err.print(f"[green]✓[/] restored {v}: {rows} archive rows, {len(result['keys_written'])} key files")
    for rel in result["keys_kept"]:
        err.print(
            f"[yellow]![/] kept {s.keys_dir / rel}: it differs from the backup's (--overwrite-keys replaces it)"
        )
    if offsets and result["positions"]:
        for line in apply_positions(result["positions"], {r: s.bootstrap(r) for r in s.region_names}):
            err.print(f"  {line}")
