"""`jarvis topics ensure`: create the pipeline's topics on a deployment's clusters, as `stack up` does."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from jarvis import topics
from jarvis.config import settings

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics (jarvis/topics.py defines them).")
console = Console()


@topics_app.command()
def ensure(
    region: str | None = typer.Option(None, "--region", "-r", help="Only this region (default: every one)."),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="HOST:PORT of the cluster (default: the region's from the configuration)."
    ),
    partitions: int | None = typer.Option(
        None, "--partitions", help="For topics keyed by object (default JARVIS_PARTITIONS)."
    ),
    replication_factor: int = typer.Option(1, "--replication-factor", help="Replicas of each new topic."),
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for the cluster."),
) -> None:
    """Create every pipeline topic that is missing; existing ones are left as they are."""
    # Imported here: every `jarvis` command mounts this module, and only this one needs librdkafka.
    from connectors.topics_admin import TopicsError, admin_client, ensure_topics

    s = settings()
    if region is not None:
        try:
            s.region_config(region)
        except KeyError as e:
            raise typer.BadParameter(str(e.args[0])) from None
    names = [region] if region else list(s.region_names)
    if bootstrap and len(names) > 1:
        raise typer.BadParameter("--bootstrap names one cluster: give --region too")
    failed = False
    n = partitions or s.partitions
    for name in names:
        target = bootstrap or s.bootstrap(name)
        try:
            result = ensure_topics(admin_client(target, s), topics.PIPELINE_TOPICS, n, replication_factor, timeout)
        except TopicsError as e:
            console.print(f"[red]{name} ({target}):[/] {e}")
            failed = True
            continue
        table = Table(title=f"{name} ({target})")
        for col in ("topic", "partitions", "", "configs"):
            table.add_column(col)
        for t in topics.PIPELINE_TOPICS:
            if t.name in result.created:
                status = "[green]created[/]"
            elif t.name in result.differences:
                status = "[yellow]left as is, differs: " + "; ".join(result.differences[t.name]) + "[/]"
            else:
                status = "left as is"
            table.add_row(t.name, str(t.partition_count(n)), status, ", ".join(f"{k}={v}" for k, v in t.configs.items()))
        console.print(table)
    if failed:
        raise typer.Exit(1)
