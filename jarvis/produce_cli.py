"""`jarvis produce [FILE]`: JSON lines of operations from a file or stdin, into the pipeline.

Each line: {"object_id": "inventory:sku-42", "kind": "decrement", "args": {"n": 3}}. The CRDT type
comes from the object's pipeline ("type" in a line is checked against it). A malformed line is
reported with its line number and skipped; the final count says how many were sent and skipped.

Sent is not accepted: the verifier may still reject an operation (jarvis.ops.rejected). With
--wait the command reads the verifier's verdict on every operation it sent (and the fold's on each
workflow transition), prints a summary with every reason, and exits 1 if anything was refused or
skipped, 2 if some verdict did not come in time.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jarvis.ops import KINDS_BY_TYPE

console = Console(stderr=True)
SHOWN_REFUSALS = 50  # lines listed one by one; the per-reason counts cover the rest


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
    wait: bool = typer.Option(
        False, "--wait", help="Wait for the verifier's verdicts; exit 1 if any operation was refused."
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the verdicts (with --wait)."),
    dev_trust: bool = typer.Option(
        False, "--dev-trust", help="Development only: grant the node's key with this home's admin key first."
    ),
) -> None:
    """Produce operations from JSON lines, with a progress bar and a final count.

    The signing node's key must be trusted (`jarvis stack up` grants JARVIS_NODE_ID's; an admin
    grants others with `jarvis keys trust`), or the verifier rejects every line with the reason."""
    # Lazy: only this command loads librdkafka; every `jarvis` command imports this module.
    from connectors.sdk import Client, DeliveryError, ObjectError, VerdictTimeout
    client = Client(region=region, node_id=node_id, track_verdicts=wait, dev_trust=dev_trust)
    stream = sys.stdin if file is None or str(file) == "-" else open(file)  # noqa: SIM115
    total = None
    if stream is not sys.stdin:
        with open(file) as f:
            total = sum(1 for _ in f)
    sent = skipped = 0
    line_of: dict[str, int] = {}  # op id -> its line, to name the lines the verifier refused
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
                op_id = client.emit(oid, ctype, kind, args)
                if wait:
                    line_of[op_id] = n
                sent += 1
            except ValueError as e:  # ObjectError (an id over 1 KB) is one
                skipped += 1
                console.print(f"[yellow]line {n} skipped:[/] {e}")
            progress.advance(task)
    try:
        client.flush()
    except DeliveryError as e:
        console.print(f"[red]delivery failed:[/] {e}")
        raise typer.Exit(1) from None
    if not wait:
        console.print(
            f"[green]{sent} operation(s) sent[/] to {client.region}, {skipped} skipped "
            "[dim](sent, not yet verified: --wait reports what the verifier decided)[/]"
        )
        if skipped and not sent:
            raise typer.Exit(1)
        return
    try:
        report = client.verdicts(timeout)
    except VerdictTimeout as e:
        console.print(f"[red]no verdict:[/] {e}")
        raise typer.Exit(2) from None
    except (DeliveryError, ObjectError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    refused = report.refused
    accepted = len(report.verdicts) - len(refused)
    if refused:
        reasons = Counter(r for v in refused for r in v.reasons)
        t = Table(title=f"refused in {report.region}")
        for col in ("line", "object", "reasons"):
            t.add_column(col, overflow="fold")
        for v in sorted(refused, key=lambda v: line_of.get(v.op_id, 0))[:SHOWN_REFUSALS]:
            t.add_row(str(line_of.get(v.op_id, "?")), v.object_id, "; ".join(v.reasons))
        console.print(t)
        if len(refused) > SHOWN_REFUSALS:
            console.print(f"[dim]... and {len(refused) - SHOWN_REFUSALS} more; by reason:[/]")
            for reason, count in reasons.most_common(20):
                console.print(f"  {count} x {reason}")
    colour = "red" if refused or skipped else "green"
    console.print(
        f"[{colour}]{accepted} accepted, {len(refused)} refused[/] by {report.region} "
        f"({sent} sent, {skipped} skipped)"
    )
    if refused or skipped:  # with --wait, exit 0 means every line became an accepted operation
        raise typer.Exit(1)
