"""`jarvis stack up | down | status`: the local two-region stack, with progress and clear errors."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.stack.procs import StackError
from jarvis.stack.stack import Stack

stack_app = typer.Typer(
    no_args_is_help=True, help="Run the local stack: Kafka per region, MirrorMaker 2, PostgreSQL, Redis."
)
console = Console(stderr=True)


@stack_app.command()
def up(
    workers: bool = typer.Option(True, "--workers/--no-workers", help="Also start the pipeline workers."),
    schema_registry: bool = typer.Option(
        False,
        "--schema-registry",
        help="Also start the local schema registry (Apicurio, Confluent-compatible API); "
        "implied when JARVIS_SCHEMA_REGISTRY_URL names it. It stays up until `stack down`.",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Kafka without TLS, authentication or ACLs (PLAINTEXT), for comparison. Recorded under "
        "JARVIS_HOME, so every client of the stack follows; it stays so until `stack down`.",
    ),
) -> None:
    """Start every part (idempotent) and return when each one answers."""
    stack = Stack(settings())
    try:
        with console.status("starting the stack...") as status:

            def report(msg: str) -> None:
                status.update(msg + " ...")
                console.print(f"[green]✓[/] {msg}")

            elapsed = stack.up(report, workers=workers, with_registry=schema_registry, insecure=insecure or None)
    except StackError as e:
        console.print(f"[red]✗ stack up failed:[/] {e}")
        raise typer.Exit(1) from None
    console.print(f"[bold green]stack up[/] in {elapsed:.1f} s (state and logs in {stack.settings.home})")
    s = stack.settings
    if stack.schema_registry().running() and settings().schema_registry_url != s.schema_registry_url:
        # The verifiers read both formats; producers write the registry's only when told to.
        console.print(
            "producers write the Confluent wire format with "
            f"[bold]export JARVIS_SCHEMA_REGISTRY_URL={s.local_schema_registry_url}[/]"
        )


@stack_app.command()
def down() -> None:
    """Stop every part started by `up`."""
    Stack(settings()).down(lambda m: console.print(f"[yellow]■[/] {m}"))
    console.print("[bold]stack down[/]")


@stack_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Where every part listens and whether it answers."""
    st = Stack(settings()).status()
    if as_json:
        print(json.dumps(st, indent=2))
        return
    restarts = st.get("restarts", {})

    def proc_state(name: str) -> str:
        state = st["processes"].get(name, "-")
        n = restarts.get(name, 0)
        return f"{state}, restarted {n}×" if n else state

    table = Table(title=f"jarvis stack ({st['home']})")
    table.add_column("part")
    table.add_column("where")
    table.add_column("state")
    for name, r in st["regions"].items():
        table.add_row(f"kafka {name}", r.get("bootstrap_url") or r["bootstrap"], r["kafka"])
        table.add_row(f"query {name}", r["query_url"], proc_state(f"worker-fold-{name}"))
        table.add_row(f"ingest {name}", r["ingest_url"], proc_state(f"worker-ingest-{name}"))
        ghosts = r.get("mqtt_ghost_sessions") or []
        mqtt_state = r["mqtt"] + (f", [red]{len(ghosts)} ghost session(s)[/]" if ghosts else "")
        table.add_row(f"mqtt {name}", r["mqtt_url"], mqtt_state)
        table.add_row(f"console {name}", r["console_url"], proc_state(f"worker-console-{name}"))
    shown = {f"worker-{role}-{name}" for role in ("fold", "ingest", "console") for name in st["regions"]}
    for name in sorted(n for n in st["processes"] if n.startswith("worker-") and n not in shown):
        table.add_row(name.removeprefix("worker-"), "", proc_state(name))
    if st.get("ca"):
        table.add_row("kafka CA", st["ca"], "")
        table.add_row("kafka credentials", st["kafka_credentials"], "")
    table.add_row("supervisor", "restarts workers that die", st["supervisor"])
    table.add_row("mirrormaker 2", "", st["mirrormaker"])
    table.add_row("postgres", st["postgres"], st["postgres_status"])
    table.add_row("redis", st["redis"], st["redis_status"])
    table.add_row("schema registry", st["schema_registry"], st["schema_registry_status"])
    table.add_row("prometheus", st["prometheus_url"], st["prometheus_status"])
    Console().print(table)
    for w in st.get("warnings", []):
        console.print(f"[bold yellow]⚠[/] {w}")
