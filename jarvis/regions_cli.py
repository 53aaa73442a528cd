"""`jarvis regions status`: mirrored lag per region pair and whether the regions agree.
`jarvis regions join`: a new region joins the running ones from a backup (connectors/region_join.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jarvis.config import settings

regions_app = typer.Typer(no_args_is_help=True, help="Geo-replication between regions.")


# Exit codes: a script (or a health check) must tell "all is well" from "they differ" from "I could
# not even ask".
AGREE, DIFFER, UNANSWERED = 0, 1, 2


@regions_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """MirrorMaker lag (records, seconds) for every pair, and a state digest comparison.

    Exits 0 when every region answered and all agree, 1 when they differ, 2 when a region (its
    Kafka or its query API) did not answer."""
    # Lazy: only this command loads librdkafka; every `jarvis` command imports this module.
    from confluent_kafka import KafkaException

    from connectors.regions import agreement, digests, mirror_lag

    s = settings()
    lag_error = None
    try:
        lags = mirror_lag(s)
    except KafkaException as e:
        lags, lag_error = [], f"Kafka did not answer: {e}"
    d = digests(s)
    agree, differing = agreement(d)
    unanswered = sorted(r for r, v in d.items() if "error" in v)
    code = UNANSWERED if unanswered or lag_error else AGREE if agree else DIFFER
    if as_json:
        print(
            json.dumps(
                {
                    "lag": [vars(lag) for lag in lags],
                    "lag_error": lag_error,
                    "agree": agree,
                    "differing_partitions": differing,
                    "unanswered": unanswered,
                    "errors": {r: v["error"] for r, v in d.items() if "error" in v},
                    "objects": {r: v.get("objects") for r, v in d.items()},
                },
                indent=2,
            )
        )
        raise typer.Exit(code)
    t = Table(title="MirrorMaker 2 lag")
    for col in ("from", "to", "records behind", "seconds behind"):
        t.add_column(col)
    for lag in lags:
        t.add_row(lag.source, lag.target, str(lag.records), f"{lag.seconds:.2f}")
    console = Console()
    console.print(t)
    objs = ", ".join(f"{r}: {v.get('objects', v.get('error'))}" for r, v in d.items())
    if lag_error:
        console.print(f"[red]{lag_error}[/]")
    if unanswered:
        verdict = f"[red]no answer from {', '.join(unanswered)}[/]: agreement unknown"
    else:
        verdict = "[green]regions agree[/]" if agree else f"[red]regions differ[/] in partitions {differing}"
    console.print(f"{verdict} (objects {objs})")
    raise typer.Exit(code)


@regions_app.command()
def join(
    region: str = typer.Option(..., "--region", help="The region that joins (listed last in JARVIS_REGIONS)."),
    from_backup: str = typer.Option(..., "--from-backup", help="A folder or s3://BUCKET/PREFIX holding the backups."),
    version: str | None = typer.Option(None, "--version", "-v", help="Which backup (default: the newest)."),
    key_file: Path | None = typer.Option(None, "--key-file", help="The backup key (default: JARVIS_BACKUP_KEY)."),
    restore_dsn: str | None = typer.Option(
        None,
        "--restore-dsn",
        help="An empty PostgreSQL database to restore the backup's archive into and keep (the new "
        "region's own archive); default: a scratch database on the stack's PostgreSQL, dropped after.",
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for every region's digests to agree."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable result on stdout."),
) -> None:
    """Add REGION to the running regions from a backup plus MirrorMaker 2, without copying again
    what the backup holds: its archive folded into the new region's state, MirrorMaker's flows into
    it started at the backup's Kafka positions. Exits 0 once every region's digests agree, 1 if
    they still differ after --timeout, 2 if the join could not be made (the reason is printed)."""
    # Lazy: only this command loads librdkafka, psycopg and cryptography.
    from confluent_kafka import KafkaException

    from connectors.backup.backup import latest
    from connectors.backup.container import BackupError
    from connectors.region_join import count_flows, wait_for_agreement
    from connectors.region_join import join as do_join
    from jarvis.backup_cli import _key, _store
    from jarvis.errors import JarvisError

    s = settings()
    console = Console(stderr=True, soft_wrap=True)
    key = _key(key_file)
    store = _store(from_backup)
    t0 = time.monotonic()
    try:
        v = version or latest(store)
        size = next((x.size for x in store.list() if x.version == v), None)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}"),
            TimeElapsedColumn(), console=console,
        ) as bar:  # fmt: skip
            restoring = bar.add_task(f"restoring backup {v} (bytes)", total=size)
            folding = bar.add_task("folding its archive (operations)", total=None)

            def progress(what: str, n: int) -> None:
                bar.update(restoring if what == "restore" else folding, advance=n)

            def report(msg: str) -> None:
                bar.console.print(f"[green]✓[/] {msg}")

            result = do_join(s, region, store, v, key, restore_dsn, report, progress)
    except (JarvisError, BackupError, KafkaException, OSError, RuntimeError) as e:
        console.print(f"[red]✗ {region} did not join:[/] {e}")
        raise typer.Exit(UNANSWERED) from None
    except Exception as e:
        if type(e).__module__.split(".")[0] != "psycopg":
            raise
        console.print(f"[red]✗ {region} did not join:[/] the archive (PostgreSQL): {type(e).__name__}: {e}")
        raise typer.Exit(UNANSWERED) from None
    with console.status("waiting for every region's digests to agree..."):
        agree, differing, waited = wait_for_agreement(s, timeout)
    total = time.monotonic() - t0
    flows = count_flows(s, region, result.starts, result.newest_dot)
    out = {
        "region": region,
        "backup": v,
        "agree": agree,
        "differing_partitions": differing,
        "seconds": {**result.steps, "converge": waited, "total": total},
        "backup_ops": result.backup_ops,
        "objects": result.objects,
        "ops_folded_from_backup": result.folded,
        "flows": [f.as_dict() for f in flows],
        "starts": {src: {str(p): o for p, o in parts.items()} for src, parts in result.starts.items()},
    }
    if as_json:
        print(json.dumps(out, indent=2))
    t = Table(title=f"MirrorMaker into {region} after the join")
    for col in ("from", "source records", "covered by the backup", "copied", "copied ops", "of them in the backup"):
        t.add_column(col)
    for f in flows:
        t.add_row(f.source, str(f.source_records), str(f.start), str(f.copied_records), str(f.copied_ops),
                  str(f.already_in_backup))  # fmt: skip
    console.print(t)
    copied = sum(f.copied_ops for f in flows)
    console.print(
        f"{region} joined in {total:.1f} s (agreement after {waited:.1f} s more): {result.backup_ops} operations from "
        f"the backup in {result.objects} objects, {copied} copied by MirrorMaker"
    )
    if not agree:
        console.print(f"[red]regions differ[/] in partitions {differing} after {timeout:.0f} s")
        raise typer.Exit(DIFFER)
    console.print("[green]regions agree[/]")
