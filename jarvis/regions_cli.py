"""`jarvis regions status`: mirrored lag per region pair and whether the regions agree."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings

regions_app = typer.Typer(no_args_is_help=True, help="Geo-replication between regions.")


@regions_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """MirrorMaker lag (records, seconds) for every pair, and a state digest comparison."""
    from connectors.regions import agreement, digests, mirror_lag

    s = settings()
    lags = mirror_lag(s)
    d = digests(s)
    agree, differing = agreement(d)
    if as_json:
        print(
            json.dumps(
                {
                    "lag": [vars(lag) for lag in lags],
                    "agree": agree,
                    "differing_partitions": differing,
                    "objects": {r: v.get("objects") for r, v in d.items()},
                },
                indent=2,
            )
        )
        return
    t = Table(title="MirrorMaker 2 lag")
    for col in ("from", "to", "records behind", "seconds behind"):
        t.add_column(col)
    for lag in lags:
        t.add_row(lag.source, lag.target, str(lag.records), f"{lag.seconds:.2f}")
    console = Console()
    console.print(t)
    objs = ", ".join(f"{r}: {v.get('objects', v.get('error'))}" for r, v in d.items())
    verdict = "[green]regions agree[/]" if agree else f"[red]regions differ[/] in partitions {differing}"
    console.print(f"{verdict} (objects {objs})")
