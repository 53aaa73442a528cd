"""`jarvis db migrate`: apply the archive's versioned migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from jarvis.config import settings

db_app = typer.Typer(no_args_is_help=True, help="The archive database (PostgreSQL/TimescaleDB).")
console = Console(stderr=True)


@db_app.command()
def migrate() -> None:
    """Apply pending migrations (idempotent)."""
    # Lazy: only this command loads psycopg; every `jarvis` command imports this module.
    import psycopg

    from connectors.archive.migrate import migrate as run_migrations

    dsn = settings().postgres_dsn
    try:
        applied = run_migrations(dsn)
    except psycopg.OperationalError as e:
        console.print(f"[red]cannot reach the archive at {dsn}:[/] {e}\nIs the stack up? `jarvis stack up`")
        raise typer.Exit(1) from None
    if applied:
        console.print(f"[green]applied:[/] {', '.join(applied)}")
    else:
        console.print("archive schema is up to date")
