"""`jarvis trace OP_ID --object OBJECT_ID`: where one operation went and when."""

from __future__ import annotations

import datetime as dt
import json
import time

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.replay_cli import parse_time
from jarvis.trace import start_ms

console = Console(stderr=True)


def trace_cmd(
    op_id: str = typer.Argument(..., help="The operation's id (the SDK's emit() or the ingest API's answer)."),
    object_id: str = typer.Option(..., "--object", "-o", help="Its object: names the partition to read."),
    since: str = typer.Option(None, help="ISO-8601 time it was written after (default: an hour ago)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Trace one operation: written, verified (or rejected), folded in each region, archived."""
    from connectors.ingest import op_ids  # the gateway's ids say when they were written
    from connectors.trace import Tracer  # lazy: librdkafka only for this command

    at, parsed = parse_time(since), op_ids.parse(op_id)
    since_ms = int(at.timestamp() * 1000) if at else start_ms(parsed and parsed[1], int(time.time() * 1000))
    with console.status(f"reading the pipeline for {op_id}"):
        t = Tracer(settings()).trace(op_id, object_id, since_ms)
    if t is None:
        console.print(f"[red]no region's ingress holds operation {op_id!r} of {object_id} since "
                      f"{dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC):%Y-%m-%d %H:%M:%S} UTC[/red] "
                      "(wrong object, or written earlier: give --since)")  # fmt: skip
        raise typer.Exit(1)
    doc = t.to_dict()
    if as_json:
        print(json.dumps(doc))
    else:
        table = Table(title=f"{op_id} ({object_id}, written in {t.origin_region})")
        for col in ("step", "region", "at (UTC)", "+ms", "detail"):
            table.add_column(col, justify="right" if col == "+ms" else "left")
        for s in doc["steps"]:
            at_s = dt.datetime.fromtimestamp(s["at_ms"] / 1000, dt.UTC).strftime("%H:%M:%S.%f")[:-3]
            table.add_row(s["step"], s["region"], at_s, str(s["since_previous_ms"]), s["detail"])
        Console().print(table)
        Console().print(f"end to end: {doc['total_ms']} ms" + (f" · W3C trace {t.trace_id}" if t.trace_id else ""))
        if t.missing:
            Console().print(f"[yellow]not found (yet): {', '.join(t.missing)}[/yellow]")
    if t.reasons:
        raise typer.Exit(2)  # rejected: as `jarvis produce` exits for a refused operation
