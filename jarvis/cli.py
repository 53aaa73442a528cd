"""The `jarvis` command line (Typer + Rich). Each area mounts its own sub-app."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Jarvis Streams: conflict-free shared state on Kafka.")


def _mount() -> None:
    from jarvis.stack.cli import stack_app

    app.add_typer(stack_app, name="stack")
    from jarvis.worker_cli import worker

    app.command("worker")(worker)
    from jarvis.produce_cli import produce

    app.command("produce")(produce)
    from jarvis.db_cli import db_app

    app.add_typer(db_app, name="db")
    from jarvis.regions_cli import regions_app
    from jarvis.replay_cli import audit_cmd, replay_cmd

    app.command("replay")(replay_cmd)
    app.command("audit")(audit_cmd)
    from jarvis.task_cli import task_app

    app.add_typer(task_app, name="task")
    from jarvis.topics_cli import topics_app

    app.add_typer(topics_app, name="topics")

    app.add_typer(regions_app, name="regions")
    try:
        from jarvis.security.cli import keys_app
    except ImportError:  # pragma: no cover - jarvis.security ships in this package: never taken
        pass
    else:
        app.add_typer(keys_app, name="keys")
    from jarvis.security.auth_cli import auth_app

    app.add_typer(auth_app, name="auth")


_mount()

if __name__ == "__main__":
    app()
