"""`jarvis task submit|get`: agent tasks from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings

task_app = typer.Typer(no_args_is_help=True, help="Agent tasks (capability-routed, Workflow CRDT lifecycle).")
console = Console(stderr=True)
FAILED = ("dead", "timed-out")  # the final states (jarvis.tasks.TERMINAL) that are failures
# Exit codes of `get`: 0 succeeded (or, without --wait, any state it is in), 1 dead or timed out,
# 2 unknown task, 3 --wait ran out before a final state.
EXIT_FAILED, EXIT_UNKNOWN, EXIT_STILL_RUNNING = 1, 2, 3


@task_app.command()
def submit(
    handler: str = typer.Argument(..., help="Handler name (jarvis.agents entry point), e.g. summarise."),
    payload: str = typer.Option("{}", "--payload", help="Handler input as JSON."),
    capabilities: str | None = typer.Option(
        None, "--capabilities", help="Comma-separated; default: the handler's."
    ),
    priority: int = typer.Option(0, "--priority", help="Higher runs first among queued tasks."),
    deadline_s: float | None = typer.Option(
        None, "--deadline-s", help="Seconds from now until it times out."
    ),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Attempts before the dead-letter topic."),
    region: str | None = typer.Option(None, "--region", help="Region to submit in."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a final state and print it."),
) -> None:
    """Submit a task; prints its id (and with --wait, its outcome)."""
    # Lazy: only this command loads librdkafka; every `jarvis` command imports this module.
    from connectors.sdk import Client, DeliveryError, ObjectError

    try:
        body = json.loads(payload)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--payload is not JSON: {e}") from None
    caps = [c.strip() for c in capabilities.split(",") if c.strip()] if capabilities else None
    try:
        with Client(region=region, node_id="jarvis-cli") as client:
            task_id = client.tasks.submit(
                handler,
                body,
                capabilities=caps,
                priority=priority,
                deadline_s=deadline_s,
                max_attempts=max_attempts,
            )
    except (ObjectError, DeliveryError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    print(task_id)
    if wait:
        get(task_id, region=region, as_json=False, wait=120.0)


def task_view(task_id: str, region: str | None) -> dict[str, Any] | None:
    # Lazy: only this command loads librdkafka; every `jarvis` command imports this module.
    from connectors.replay_sources import live_view

    s = settings()
    return live_view(s, region or s.region, f"task:{task_id}")


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """State, result (from the applied `succeeded`), attempts and errors of a task's workflow view."""
    hist = view["value"]["history"]
    applied = [h for h in hist if h["applied"]]
    result = next((h["args"].get("result") for h in applied if h["to"] == "succeeded"), None)
    errors = [
        h["args"].get("error") for h in applied if h["to"] in ("failed", "dead") and h["args"].get("error")
    ]
    workers = sorted({h["args"]["worker"] for h in applied if h["args"].get("worker")})
    return {
        "task_id": view["object_id"].removeprefix("task:"),
        "state": view["value"]["state"],
        "result": result,
        "attempts": 1 + max([h["args"].get("attempt", 0) for h in applied] or [0]),
        "workers": workers,
        "errors": errors,
        "history": hist,
    }


@task_app.command()
def get(
    task_id: str = typer.Argument(..., help="Task id, as printed by submit."),
    region: str | None = typer.Option(None, "--region", help="Region to read from (any region answers)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for a final state."),
) -> None:
    """A task's state, result, attempts and full lifecycle.

    Exits 1 for a dead or timed-out task, 2 for an unknown one, 3 if --wait ran out first."""
    # Imported here: jarvis.tasks loads the Avro codec, which no other `jarvis` command needs at startup.
    from jarvis.tasks import TERMINAL

    deadline = time.monotonic() + wait
    while True:
        view = task_view(task_id, region)
        if view is not None and (view["value"]["state"] in TERMINAL or time.monotonic() >= deadline):
            break
        if view is None and time.monotonic() >= deadline:
            console.print(f"[red]unknown task {task_id!r}[/] (not folded yet, or never submitted)")
            raise typer.Exit(EXIT_UNKNOWN)
        time.sleep(0.25)
    info = summary(view)
    code = 0
    if info["state"] in FAILED:
        code = EXIT_FAILED
    elif wait and info["state"] not in TERMINAL:
        code = EXIT_STILL_RUNNING
    if as_json:
        json.dump(info, sys.stdout, default=str)
        sys.stdout.write("\n")
        raise typer.Exit(code)
    c = Console()
    c.print(
        f"task [bold]{task_id}[/]: [bold]{info['state']}[/] after {info['attempts']} attempt(s) on {', '.join(info['workers']) or '-'}"
    )
    if info["result"] is not None:
        c.print_json(data=info["result"])
    for e in info["errors"]:
        c.print(f"[red]error:[/] {e}")
    t = Table(title="lifecycle")
    for col in ("from", "to", "node", "applied"):
        t.add_column(col)
    for h in info["history"]:
        t.add_row(h["from"], h["to"], h["node"], "yes" if h["applied"] else "[dim]ignored[/]")
    c.print(t)
    if code == EXIT_STILL_RUNNING:
        console.print(f"[yellow]still {info['state']} after waiting {wait:g} s[/]")
    raise typer.Exit(code)
