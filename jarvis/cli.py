"""The `jarvis` command line (Typer + Rich). Each area is its own sub-app, mounted here."""

from __future__ import annotations

import typer

from jarvis.audit_cli import audit_app
from jarvis.auth_cli import auth_app
from jarvis.backup_cli import backup_app
from jarvis.certs_cli import certs_app
from jarvis.db_cli import db_app
from jarvis.demo_cli import demo
from jarvis.ingest_cli import ingest_app
from jarvis.produce_cli import produce
from jarvis.regions_cli import regions_app
from jarvis.replay_cli import replay_cmd
from jarvis.security.cli import keys_app
from jarvis.stack.cli import stack_app
from jarvis.task_cli import task_app
from jarvis.topics_cli import topics_app
from jarvis.trace_cli import trace_cmd
from jarvis.worker_cli import worker

app = typer.Typer(no_args_is_help=True, help="Jarvis Streams: conflict-free shared state on Kafka.")
app.add_typer(stack_app, name="stack")
app.command("worker")(worker)
app.command("produce")(produce)
app.add_typer(db_app, name="db")
app.command("replay")(replay_cmd)
app.add_typer(audit_app, name="audit")
app.command("trace")(trace_cmd)
app.add_typer(task_app, name="task")
app.add_typer(topics_app, name="topics")
app.add_typer(regions_app, name="regions")
app.add_typer(keys_app, name="keys")
app.add_typer(auth_app, name="auth")
app.add_typer(backup_app, name="backup")
app.add_typer(certs_app, name="certs")
app.add_typer(ingest_app, name="ingest")
app.command("demo")(demo)

if __name__ == "__main__":
    app()
