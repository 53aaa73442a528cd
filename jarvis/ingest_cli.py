"""`jarvis ingest drop-session --region R --instance N`: end a gateway instance's persistent MQTT
session, so that it no longer takes a share of the region's messages (jarvis/mqtt_sessions.py)."""

from __future__ import annotations

import typer
from rich.console import Console

from jarvis import mosquitto_db
from jarvis.config import RegionConfig, Settings, settings
from jarvis.errors import JarvisError
from jarvis.mqtt_sessions import client_id, configured_instances, persistent
from jarvis.stack import mosquitto

ingest_app = typer.Typer(no_args_is_help=True, help="The ingest gateway's MQTT sessions.")
console = Console(stderr=True, soft_wrap=True)  # one line per message: scripts grep them


@ingest_app.command("drop-session")
def drop_session(
    region: str = typer.Option(..., "--region", "-r", help="The region whose broker holds the session."),
    instance: int = typer.Option(..., "--instance", help="The gateway instance number the session belongs to."),
    force: bool = typer.Option(
        False, "--force", help="Also for a configured instance (it loses what its broker queued for it)."
    ),
) -> None:
    """Discard a gateway instance's persistent session, its share of the shared subscription and
    every message queued for it. To write those messages instead, run the instance once (its node
    key trusted): `jarvis worker ingest --region R --instance N` drains a left session before it
    serves with a clean one."""
    s = settings()
    try:
        r = s.region_config(region)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    cid = client_id(region, instance)
    n = configured_instances()
    if persistent(instance, n) and not force:
        console.print(
            f"[red]✗[/] instance {instance} is one of {region}'s {n} configured ingest instance(s): its persistent "
            "session is what makes a crash lose nothing, and the stack brings it back. Use --force to drop it anyway."
        )
        raise typer.Exit(1)
    queued = _queued(s, r, cid)
    try:
        # Lazy: only this command loads paho; every `jarvis` command imports this module.
        from connectors.ingest.sessions import end_session

        end_session(r.host, r.mqtt_port, cid, mosquitto.BRIDGE_USER, mosquitto.bridge_secret(s))
    except JarvisError as e:
        console.print(f"[red]✗ {cid}:[/] {e}")
        raise typer.Exit(1) from None
    held = f"{queued} queued message(s) discarded" if queued is not None else "its queued messages discarded"
    console.print(f"[green]✓[/] ended MQTT session {cid} on {r.mqtt_url} ({held})")


def _queued(s: Settings, r: RegionConfig, cid: str) -> int | None:
    """Messages the local broker holds for the session (its persistence file), None when unknown."""
    try:
        held = mosquitto_db.sessions(mosquitto.db_path(s, r).read_bytes())
    except (OSError, mosquitto_db.MosquittoDbError):
        return None
    return held[cid].queued if cid in held else 0
