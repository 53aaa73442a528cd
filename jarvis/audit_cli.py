"""`jarvis audit`: the operations of a window (`jarvis audit --since T`, jarvis/replay_cli.py) and
`jarvis audit access --since T`: denied HTTP requests and admin changes, from the archive."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.replay_cli import audit_cmd, parse_time

console = Console(stderr=True)
audit_app = typer.Typer(
    invoke_without_command=True,
    help="Audit: archived operations of a window (--since), or `access`: denied requests and admin changes.",
)
_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(value: str) -> dt.datetime:
    """`10m`, `1h`, `2d` ago, or an ISO-8601 time."""
    m = _AGO.match(value.strip())
    if m:
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
    t = parse_time(value)
    assert t is not None
    return t


@audit_app.callback()
def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="ISO-8601 start of the window."),
    until: str | None = typer.Option(None, "--until", help="ISO-8601 end of the window (default: now)."),
    prefix: str | None = typer.Option(None, "--prefix", help="Only objects with this prefix (e.g. inventory)."),
    region: str | None = typer.Option(None, "--region", help="Region whose rejected topic to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Every archived operation in a window, by node and object prefix, with rejected ones alongside."""
    if ctx.invoked_subcommand is not None:
        return
    if since is None:
        raise typer.BadParameter("--since is needed (or a subcommand: `jarvis audit access --since 1h`)")
    audit_cmd(since, until, prefix, region, as_json)


@audit_app.command("access")
def access(
    since: str = typer.Option(..., "--since", help="10m, 1h, 2d ago, or an ISO-8601 time."),
    kind: str | None = typer.Option(None, "--kind", help="Only `denied` or only `admin` records."),
    limit: int = typer.Option(10_000, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line on stdout."),
) -> None:
    """Denied HTTP requests (401/403) and admin changes (roles, keys), oldest first, every region."""
    # Lazy: only this command loads psycopg; every `jarvis` command imports this module.
    import psycopg

    from connectors.archive.access_audit import listing

    t0 = since_time(since)
    try:
        rows = listing(settings().postgres_dsn, t0, kind, limit)
    except psycopg.Error as e:
        console.print(f"[red]cannot read the archive:[/] {e}\nIs the stack up? `jarvis stack up`")
        raise typer.Exit(1) from None
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r) + "\n")
        return
    t = Table(title=f"access audit since {t0.isoformat(timespec='seconds')}: {len(rows)} records")
    for col in ("time", "region", "service", "kind", "principal", "what", "reason / detail"):
        t.add_column(col)
    for r in rows:
        at = dt.datetime.fromtimestamp(r["at_ms"] / 1000, dt.UTC).isoformat(timespec="milliseconds")
        if r.get("kind") == "denied":
            what, why = f"{r.get('status')} {r.get('method')} {r.get('path')}", r.get("reason", "")
        else:
            what, why = f"{r.get('action')} {r.get('target')}", json.dumps(r.get("detail", {}))
        t.add_row(at, r.get("region", ""), r.get("service", ""), r.get("kind", ""), r.get("principal") or "-", what, why)
    Console().print(t)
