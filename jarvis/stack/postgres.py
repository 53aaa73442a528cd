"""PostgreSQL from Debian's packages, as a private instance under JARVIS_HOME on its own port.

PostgreSQL refuses to run as root, so when we are root (CI, fresh machines) the server runs as the
`postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from jarvis.config import Settings
from jarvis.stack.procs import Proc, StackError, pid_alive


def pg_bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        raise StackError("PostgreSQL is not installed: run `make install` or `apt-get install postgresql`.")
    return found[-1].parent


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        raise StackError("running as root needs `runuser` (util-linux) to start PostgreSQL as user postgres")
    return [runuser, "-u", "postgres", "--", *argv]


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _mode(d: Path) -> int | None:
    return d.stat().st_mode if d.exists() else None


def closed_parent(path: Path, mode: Callable[[Path], int | None] = _mode) -> Path | None:
    """The first directory above `path` that another user cannot pass through (no o+x), if any."""
    for d in reversed(path.parents):
        m = mode(d)
        if m is not None and not m & 0o001:
            return d
    return None


def prepare(settings: Settings) -> Path:
    base = settings.home / "postgres"
    if os.geteuid() == 0 and (closed := closed_parent(base.resolve())) is not None:
        # Said here because initdb's own "Permission denied" names the data directory, not the cause.
        raise StackError(
            f"PostgreSQL runs as user postgres, which cannot enter {closed} (mode "
            f"{closed.stat().st_mode & 0o777:o}): put JARVIS_HOME under a directory others may pass through"
        )
    data = base / "data"
    sock = base / "run"
    for d in (base, sock):
        d.mkdir(parents=True, exist_ok=True)
        _chown(d)
    if not (data / "PG_VERSION").exists():
        data.mkdir(exist_ok=True)
        _chown(data)
        os.chmod(data, 0o700)
        cmd = _as_owner([
            str(pg_bindir() / "initdb"), "-D", str(data), "-U", settings.postgres_user,
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        ])  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(f"initdb failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return data


def wait_for_previous_exit(data: Path, timeout: float = 60.0) -> None:
    """Wait while a postmaster of `data` still runs: after a fast shutdown it closes its port at
    once but writes its checkpoint first, and a new one started meanwhile exits at once on its
    lock file (seen when `stack down` and `up` follow each other under load)."""
    lock = data / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(lock.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    raise StackError(f"PostgreSQL (pid in {lock}) is still shutting down after {timeout:.0f} s")


# SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") waits for every client to leave, and
# a `stack up` right after `down` then finds the old postmaster still holding its lock file.
STOP_SIGNAL = signal.SIGINT


def postgres_proc(settings: Settings) -> Proc:
    base = settings.home / "postgres"
    argv = _as_owner([
        str(pg_bindir() / "postgres"), "-D", str(base / "data"), "-p", str(settings.postgres_port),
        "-k", str(base / "run"), "-c", f"listen_addresses={settings.host}",
        "-c", "shared_buffers=256MB", "-c", "max_connections=100", "-c", "fsync=on",
        "-c", "synchronous_commit=on", "-c", "max_wal_size=2GB",
    ])  # fmt: skip
    return Proc(name="postgres", run_dir=settings.home, argv=argv, stop_signal=STOP_SIGNAL)


def ensure_database(settings: Settings) -> None:
    # Lazy: only this command loads psycopg; every `jarvis` command imports this module.
    import psycopg

    admin = settings.postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.postgres_db,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{settings.postgres_db}"')


def ping(settings: Settings) -> bool:
    # Lazy: only this command loads psycopg; every `jarvis` command imports this module.
    import psycopg

    with psycopg.connect(settings.postgres_dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)
