"""`jarvis regions status`: mirrored lag per region pair and whether the regions agree."""

from __future__ import annotations

import json

import typer
from rich.console import Console
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
