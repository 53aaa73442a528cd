"""`jarvis replay` (rebuild an object at time T, re-verify every signature) and `jarvis audit`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import StrEnum
from html import escape
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jarvis.config import settings
from jarvis.replay import hlc_at, hlc_iso

console = Console(stderr=True)


class Source(StrEnum):
    kafka = "kafka"
    archive = "archive"


class Format(StrEnum):
    text = "text"
    html = "html"


def parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time (e.g. 2026-11-25T10:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def run_replay(object_id: str, at: dt.datetime | None, source: Source, region: str, progress: Any = None):
    """Replay one object; returns the report (with the live view attached when there is no --at)."""
    # Lazy: only this command loads librdkafka and psycopg; every `jarvis` command imports this module.
    from connectors.replay_sources import live_view
    from connectors.replayer import Replayer
    s = settings()
    at_hlc = hlc_at(at) if at else None
    replayer = Replayer.from_settings(s)
    if source is Source.kafka:
        task = progress.add_task(f"reading {region} partitions", total=None) if progress else None

        def on_records(done: int, total: int) -> None:
            if progress is not None:
                progress.update(task, completed=done, total=total)

        report = replayer.from_kafka(region, object_id, at_hlc, on_records=on_records)
    else:
        report = replayer.from_archive(object_id, at_hlc)
    if at is None:
        report.live = live_view(s, region, object_id) or {}
    return report


def replay_cmd(
    object_id: str = typer.Option(..., "--object", help="Object id, e.g. inventory:sku-42."),
    at: str | None = typer.Option(None, "--at", help="ISO-8601 time; default: now (and compare with live)."),
    source: Source = typer.Option(Source.kafka, "--source", help="Where the operations come from."),
    region: str | None = typer.Option(None, "--region", help="Region whose topics (and live state) to use."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    fmt: Format = typer.Option(
        Format.text, "--format", help="text, or html (a report with a timeline plot)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Where to write the HTML report."),
    history: int = typer.Option(20, "--history", help="How many of the latest operations to list."),
) -> None:
    """Rebuild an object's state at a time by folding its operations, re-verifying each signature."""
    # Lazy: only this command loads psycopg and librdkafka; every `jarvis` command imports this module.
    import psycopg
    from confluent_kafka import KafkaException

    s = settings()
    region = region or s.region
    try:
        s.region_config(region)
    except KeyError as e:
        raise typer.BadParameter(str(e)) from None
    when = parse_time(at)
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console, transient=True, disable=as_json or not console.is_terminal,
        ) as progress:  # fmt: skip
            report = run_replay(object_id, when, source, region, progress)
    except (psycopg.OperationalError, KafkaException) as e:
        console.print(f"[red]cannot reach the {source.value}:[/] {e}\nIs the stack up? `jarvis stack up`")
        raise typer.Exit(1) from None
    if report.state is None and not report.failures:
        console.print(f"[red]no operations of {object_id!r}[/] in the {report.source} up to {at or 'now'}")
        raise typer.Exit(2)
    if as_json:
        json.dump(report.as_dict(history_limit=history), sys.stdout, default=str)
        sys.stdout.write("\n")
    else:
        print_report(report, history)
    if fmt is Format.html:
        path = out or Path(f"replay-{object_id.replace(':', '_')}.html")
        path.write_text(html_report(report, history))
        console.print(f"HTML report: {path}")
    if report.failures or report.differences():
        raise typer.Exit(3)


def print_report(report: Any, history: int) -> None:
    c = Console()
    c.rule(f"[bold]{report.object_id}[/] from {report.source} at {hlc_iso(report.at_hlc) or 'now'}")
    if report.snapshot:
        c.print(f"started from the snapshot of {report.snapshot['taken_at']} ({report.snapshot['ops']} ops)")
    c.print(f"type [bold]{report.state.crdt_type if report.state else '-'}[/], value: {report.value}")
    c.print(f"operations folded: {report.ops_folded}; in state: {report.state.ops if report.state else 0}")
    if history:
        t = Table(title=f"latest {min(history, len(report.history))} of {len(report.history)} operations")
        for col in ("time", "node", "region", "kind", "args", "signature"):
            t.add_column(col)
        for e in report.history[-history:]:
            ok = "[green]ok[/]" if e.problem is None else f"[red]{e.problem}[/]"
            args = json.dumps(e.op.args, default=str)
            t.add_row(hlc_iso(e.op.hlc), _who(e.op), e.op.region, e.op.kind, args[:60], ok)
        c.print(t)
    if report.failures:
        c.print(
            f"[red bold]{len(report.failures)} operation(s) failed re-verification[/] and were not folded"
        )
    if report.live is not None:
        diffs = report.differences()
        c.print("[green]replayed state equals the live state[/]" if not diffs else "[red]" + "; ".join(diffs))


def html_report(report: Any, history: int) -> str:
    """A self-contained page: summary, an SVG timeline of the value, the operations."""
    pts = report.timeline
    svg = ""
    if pts:
        w, h, pad = 760, 220, 30
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        x0, x1 = min(xs), max(xs) or 1
        y0, y1 = min(ys), max(ys)
        sx = (w - 2 * pad) / ((x1 - x0) or 1)
        sy = (h - 2 * pad) / ((y1 - y0) or 1)
        path = " ".join(f"{pad + (x - x0) * sx:.1f},{h - pad - (y - y0) * sy:.1f}" for x, y in pts)
        svg = (
            f'<svg width="{w}" height="{h}" style="border:1px solid #ccc">'
            f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{path}"/>'
            f'<text x="{pad}" y="{h - 8}" font-size="11">{escape(hlc_iso(x0) or "")}</text>'
            f'<text x="{w - pad}" y="{h - 8}" font-size="11" text-anchor="end">{escape(hlc_iso(x1) or "")}</text>'
            f'<text x="4" y="{pad}" font-size="11">{y1:g}</text><text x="4" y="{h - pad}" font-size="11">{y0:g}</text>'
            "</svg>"
        )
    rows = "".join(
        f"<tr><td>{escape(hlc_iso(e.op.hlc) or '')}</td><td>{escape(_who(e.op))}</td><td>{escape(e.op.region)}</td>"
        f"<td>{escape(e.op.kind)}</td><td><code>{escape(json.dumps(e.op.args, default=str)[:200])}</code></td>"
        f"<td>{'ok' if e.problem is None else '<b style=color:#c00>' + escape(e.problem) + '</b>'}</td></tr>"
        for e in report.history[-history:]
    )
    diffs = report.differences() if report.live is not None else []
    verdict = (
        "<p style=color:#c00>" + escape("; ".join(diffs)) + "</p>"
        if diffs
        else (
            "<p style=color:#080>replayed state equals the live state</p>" if report.live is not None else ""
        )
    )
    value = escape(json.dumps(report.as_dict(0)["value"], default=str)[:2000])
    return (
        f"<!doctype html><meta charset=utf-8><title>Replay of {escape(report.object_id)}</title>"
        "<body style='font-family:system-ui;max-width:900px;margin:2em auto'>"
        f"<h1>Replay of <code>{escape(report.object_id)}</code></h1>"
        f"<p>source: {escape(report.source)}; at: {escape(hlc_iso(report.at_hlc) or 'now')}; "
        f"operations folded: {report.ops_folded}; signature failures: {len(report.failures)}</p>"
        f"{verdict}<h2>Value</h2><pre>{value}</pre><h2>Timeline</h2>{svg}"
        f"<h2>Operations (latest {min(history, len(report.history))} of {len(report.history)})</h2>"
        "<table border=1 cellpadding=4 style='border-collapse:collapse;font-size:13px'>"
        f"<tr><th>time</th><th>node</th><th>region</th><th>kind</th><th>args</th><th>signature</th></tr>{rows}</table>"
    )


def audit_cmd(
    since: str = typer.Option(..., "--since", help="ISO-8601 start of the window."),
    until: str | None = typer.Option(None, "--until", help="ISO-8601 end of the window (default: now)."),
    prefix: str | None = typer.Option(
        None, "--prefix", help="Only objects with this prefix (e.g. inventory)."
    ),
    region: str | None = typer.Option(None, "--region", help="Region whose rejected topic to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Every archived operation in a window, by node and object prefix, with rejected ones alongside."""
    # Lazy: only this command loads psycopg; every `jarvis` command imports this module.
    import psycopg

    from connectors.audit import audit_window

    s = settings()
    t0 = parse_time(since)
    t1 = parse_time(until) or dt.datetime.now(dt.UTC)
    try:
        result = audit_window(s, region or s.region, t0, t1, prefix)
    except psycopg.OperationalError as e:
        console.print(f"[red]cannot reach the archive:[/] {e}\nIs the stack up? `jarvis stack up`")
        raise typer.Exit(1) from None
    if as_json:
        json.dump(result, sys.stdout, default=str)
        sys.stdout.write("\n")
        return
    c = Console()
    c.rule(f"[bold]audit {result['since']} .. {result['until']}")
    t = Table(title=f"{result['total']} archived operations by node and prefix")
    for col in ("node", "prefix", "ops", "objects", "first", "last"):
        t.add_column(col)
    for r in result["by_node_prefix"]:
        t.add_row(r["node_id"], r["prefix"], str(r["ops"]), str(r["objects"]), r["first"], r["last"])
    c.print(t)
    rj = Table(title=f"{len(result['rejected'])} rejected operations in the window")
    for col in ("time", "object", "reasons"):
        rj.add_column(col)
    for r in result["rejected"][:50]:
        rj.add_row(r["rejected_at"], r["object_id"] or "-", "; ".join(r["reasons"])[:100])
    c.print(rj)


def _who(op: Any) -> str:
    """The producing node, and for operations through the ingest gateway who sent them."""
    principal = op.metadata.get("principal") if op.metadata else None
    return f"{principal} via {op.node_id}" if principal else op.node_id
