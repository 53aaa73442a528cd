"""How a worker replaces itself with a fresh run of the same command (crash restart, watchdog)."""

from __future__ import annotations

import sys


def restart_argv() -> list[str]:
    """This worker's own command, to replace the process with a fresh run (same PID, so the stack's
    pid file stays right). Started as `python -m jarvis.cli worker ...` or as the `jarvis` script:
    the same command either way."""
    return [sys.executable, "-m", "jarvis.cli", *sys.argv[1:]]
