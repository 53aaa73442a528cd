"""The pipeline's worker processes that `jarvis stack up` starts per region (verifier, fold, ...).

Roles register here as they land; `--no-workers` leaves them all out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from jarvis.config import Settings
from jarvis.stack.procs import Proc

# Roles started per region by `jarvis stack up`, in start order.
ROLES: tuple[str, ...] = ("verifier", "fold", "archiver")


def worker_proc(settings: Settings, role: str, region: str, instance: int = 0) -> Proc:
    argv = [sys.executable, "-m", "jarvis.cli", "worker", role, "--region", region]
    name = f"worker-{role}-{region}" + (f"-{instance}" if instance else "")
    env = {"JARVIS_REGION": region, "JARVIS_WORKER_INSTANCE": str(instance)}
    return Proc(name=name, run_dir=settings.home, argv=argv, env=env)


def worker_procs(settings: Settings) -> list[Proc]:
    return [worker_proc(settings, role, r.name) for r in settings.regions for role in ROLES]


def start_workers(settings: Settings, report: Callable[[str], None]) -> None:
    for proc in worker_procs(settings):
        if not proc.running():
            proc.start()
            report(f"started {proc.name}")
