"""`jarvis produce [FILE]`: JSON lines of operations from a file or stdin, into the pipeline.

Each line: {"object_id": "inventory:sku-42", "kind": "decrement", "args": {"n": 3}}. The CRDT type
comes from the object's pipeline ("type" in a line is checked against it). A malformed line is
reported with its line number and skipped; the final count says how many were sent and skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def parse_line(line: str, pipes: Any) -> tuple[str, str, str, dict[str, Any]]:
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError("a line must be a JSON object")
    oid, kind, args = d.get("object_id"), d.get("kind"), d.get("args", {})
    if not isinstance(oid, str) or not isinstance(kind, str) or not isinstance(args, dict):
        raise ValueError('needs "object_id" (string), "kind" (string) and "args" (object)')
    rule = pipes.rule_for(oid)
    if rule is None:
        raise ValueError(f"no pipeline defines the prefix of {oid!r}")
    if d.get("type") not in (None, rule.crdt_type):
        raise ValueError(f"{oid} is a {rule.crdt_type}, the line says {d['type']}")
    return oid, rule.crdt_type, kind, args


def produce(
    file: Path = typer.Argument(None, help="JSON-lines file; stdin when omitted or '-'."),
    region: str = typer.Option(None, "--region", "-r"),
    node_id: str = typer.Option(None, "--node-id", help="Signing node (default JARVIS_NODE_ID)."),
) -> None:
    """Produce operations from JSON lines, with a progress bar and a final count."""
    from connectors.sdk import Client, DeliveryError
    from jarvis.ops import KINDS_BY_TYPE

    client = Client(region=region, node_id=node_id)
    stream = sys.stdin if file is None or str(file) == "-" else open(file)  # noqa: SIM115
    total = None
    if stream is not sys.stdin:
        with open(file) as f:
            total = sum(1 for _ in f)
    sent = skipped = 0
    with Progress(
        TextColumn("[bold]producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("ops", total=total)
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                oid, ctype, kind, args = parse_line(line, client.pipelines)
                if kind not in KINDS_BY_TYPE[ctype]:
                    raise ValueError(
                        f"{ctype} has no operation {kind!r} (it has {', '.join(KINDS_BY_TYPE[ctype])})"
                    )
                client.emit(oid, ctype, kind, args)
                sent += 1
            except ValueError as e:
                skipped += 1
                console.print(f"[yellow]line {n} skipped:[/] {e}")
            progress.advance(task)
    try:
        client.flush()
    except DeliveryError as e:
        console.print(f"[red]delivery failed:[/] {e}")
        raise typer.Exit(1) from None
    console.print(f"[green]{sent} operation(s) sent[/] to {client.region}, {skipped} skipped")
    if skipped and not sent:
        raise typer.Exit(1)
