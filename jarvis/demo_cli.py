"""`jarvis demo <case>` and `jarvis demo --list`: the use-case apps end to end (pipelines/apps)."""

from __future__ import annotations

import typer
from rich.console import Console

from pipelines.apps import CASES
from pipelines.apps.demos import list_cases, run


def demo(
    case: str = typer.Argument(None, help=f"one of: {', '.join(CASES)}"),
    list_: bool = typer.Option(False, "--list", help="list the use cases and exit"),
) -> None:
    """Run one use case end to end on the local stack (two regions) and summarise its outcome."""
    console = Console()
    if list_ or case is None:
        list_cases(console)
        return
    if case not in CASES:
        console.print(f"[red]unknown use case {case!r}[/]; known: {', '.join(CASES)}")
        raise typer.Exit(2)
    if not run(case, console):
        raise typer.Exit(1)
