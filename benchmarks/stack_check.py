"""What every benchmark that drives the local stack checks first."""

from __future__ import annotations

from jarvis.config import Settings
from jarvis.stack.stack import Stack


def require_stack(s: Settings) -> None:
    """Exit with what to do, instead of a traceback from the first client that cannot connect."""
    stopped = Stack(s).stopped()
    if stopped:
        shown = ", ".join(stopped[:6]) + (f" and {len(stopped) - 6} more" if len(stopped) > 6 else "")
        raise SystemExit(f"the local stack is not running ({shown} stopped): run `jarvis stack up` first")
