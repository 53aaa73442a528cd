"""`jarvis worker ROLE --region R`: run one pipeline worker (a Faust app, one consumer group per role)."""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import io
import logging.config
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

import typer

from jarvis import collector, roles
from jarvis.config import settings
from jarvis.logfmt import json_logging_config
from streams.reexec import restart_argv

CRASH_RESTART_S = 5.0  # a crashed worker starts again after this long (fixed: a crash loop stays slow)


# Typer offers a role's name as a choice only through an Enum, so this one is built from the registry.
Role = StrEnum("Role", {r.name: r.name for r in roles.ROLES})


def worker(
    role: Role = typer.Argument(..., help="Which worker to run."),
    region: str = typer.Option(None, "--region", "-r", help="Region (default JARVIS_REGION)."),
    instance: int = typer.Option(
        0,
        "--instance",
        envvar="JARVIS_WORKER_INSTANCE",
        help="Instance number: several instances of a role share partitions; each needs its own port.",
    ),
    loglevel: str = typer.Option("warn", "--loglevel", "-l", help="crit, error, warn, info or debug."),
    capabilities: str | None = typer.Option(
        None,
        "--capabilities",
        help="agent: comma-separated capabilities (default: every installed handler's).",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="agent: tasks run at once (default 8)."
    ),
    name: str | None = typer.Option(None, "--name", help="agent: worker name (its node id and signing key)."),
    restart: bool = typer.Option(
        True,
        "--restart/--no-restart",
        help=f"Start again {CRASH_RESTART_S:.0f} s after a crash (not after a stop).",
    ),
) -> None:
    """Run one pipeline worker in the foreground (each role is a consumer group)."""
    # A worker that dies in C (a segfault in a native library) leaves its traceback in its log;
    # a stderr with no file behind it (a test's CliRunner) has nothing to write it to.
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        faulthandler.enable()
    s = settings()
    region = region or s.region
    try:
        s.region_config(region)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    spec = roles.role(role.value)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as e:
        if e.name != spec.module:  # the role's module is there; something it imports is not
            raise
        raise typer.BadParameter(f"the {spec.name} worker is not built yet") from None
    given = {"capabilities": _listed(capabilities), "concurrency": concurrency, "name": name}
    options = {k: v for k, v in given.items() if k in spec.options}
    log_config = json_logging_config(spec.name, region, loglevel) if s.log_format == "json" else None
    with restarting_after_a_crash(f"{spec.name} {region}", enabled=restart):
        if spec.entry is roles.Entry.run:  # a plain consumer-group worker, not a Faust app
            if log_config is not None:
                logging.config.dictConfig(log_config)
            module.run(s, region, instance, **options)
            return
        app = module.build(s, region, instance)
        # Lazy: only this command loads Faust; every `jarvis` command imports this module.
        from faust import Worker

        from streams.faust_compat import disable_spinner

        # Everything imported so far is permanent, and the fold's garbage dies young (jarvis/collector.py).
        collector.tune()

        # Faust replaces the root logger's handlers at start: the JSON form goes in through its own door.
        w = Worker(app, loglevel=loglevel, quiet=True, logging_config=log_config)
        # Faust's terminal spinner sets the root logger to DEBUG so that it spins on every record: every
        # debug call in aiokafka and Faust (several per produced message) then builds a LogRecord that
        # the handler drops. py-spy put that at 7% of the fold's time. Workers log to files: no spinner.
        disable_spinner(w)
        w.execute_from_commandline()


def _listed(csv: str | None) -> list[str] | None:
    return [c.strip() for c in csv.split(",")] if csv else None


@contextmanager
def restarting_after_a_crash(worker: str, enabled: bool) -> Iterator[None]:
    """Replace the process with a fresh run of the same command after a crash.

    A stop (SIGTERM, Ctrl-C) exits with 0; anything else is a crash, which the stack, having no
    supervisor of its own, would otherwise only notice as a region that stopped answering."""
    try:
        yield
    except (SystemExit, Exception) as e:
        code = e.code if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        if not enabled or code in (0, None):
            # Said in the log: the stack's supervisor restarts any worker that ends, and a worker
            # that ended without a crash left no line saying so.
            print(f"worker {worker} stopped (exit {code or 0})", file=sys.stderr, flush=True)
            raise
        print(
            f"worker {worker} crashed ({code}): starting again in {CRASH_RESTART_S:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(CRASH_RESTART_S)
        os.execv(sys.executable, restart_argv())

