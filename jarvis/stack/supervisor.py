"""The local stack's supervisor: a worker that dies (a crash, `kill -9`, the OOM killer) is started
again within a second, as it was started, and counted.

`jarvis stack up` starts it (`python -m jarvis.stack.supervisor --home HOME`, pidfile
`supervisor.pid`, log `logs/supervisor.log`); `jarvis stack down` stops it first. It watches every
process that has a restart record (`<home>/supervise/<name>.json`, written by `Proc.start` for
supervised processes: every worker, whoever started it), polls each one's pid every
`POLL_S`, and starts a dead one again from its record (`Proc.restart_from_spec`, under the same
per-process lock as start and stop). `Proc.stop` removes the record before it signals, so what
`stack down` or a test stops stays stopped. The record's `restarts` field is the count
`jarvis stack status` shows.

A worker that keeps dying right after each start is started again after a growing pause (0, 1, 2,
4, 8 s: never more than `MAX_BACKOFF_S`, within the 10 s promise), so a crash loop does not spin.
Why a small supervisor of our own and not supervisord, runit or systemd-run: docs/supervisor.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from jarvis.stack.procs import Proc, read_spec, supervised_names

NAME = "supervisor"
POLL_S = 0.5
MAX_BACKOFF_S = 8.0
QUICK_DEATH_S = 30.0  # a process that dies within this of its start is crash-looping


def supervisor_proc(home: Path) -> Proc:
    argv = [sys.executable, "-m", "jarvis.stack.supervisor", "--home", str(home)]
    return Proc(name=NAME, run_dir=home, argv=argv)


def backoff(quick_deaths: int) -> float:
    """Pause before restart number `quick_deaths` + 1 of a process that keeps dying at once."""
    if quick_deaths <= 0:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (quick_deaths - 1))


class Supervisor:
    def __init__(self, home: Path, log=print) -> None:
        self.home = home
        self.log = log
        self.quick: dict[str, int] = {}  # consecutive deaths soon after a start
        self.due: dict[str, float] = {}  # when a dead process is to be started again

    def tick(self, now: float | None = None) -> list[str]:
        """One look at every supervised process; the names started again."""
        now = time.time() if now is None else now
        restarted = []
        for name in supervised_names(self.home):
            proc = Proc(name=name, run_dir=self.home, supervised=True)
            if proc.running():
                self.due.pop(name, None)
                continue
            spec = read_spec(proc.specfile)
            if spec is None:  # stopped meanwhile
                continue
            if name not in self.due:
                lived = now - float(spec.get("started", 0))
                self.quick[name] = self.quick.get(name, 0) + 1 if lived < QUICK_DEATH_S else 0
                pause = backoff(self.quick[name])
                self.due[name] = now + pause
                self.log(
                    f"{name} died after {lived:.1f} s" + (f"; restart in {pause:.0f} s" if pause else "")
                )
            if now < self.due[name]:
                continue
            pid = proc.restart_from_spec()
            self.due.pop(name, None)
            if pid is not None:
                self.log(f"{name} restarted as pid {pid} (restart {proc.restarts()})")
                restarted.append(name)
        return restarted

    def run(self) -> None:
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.log(f"supervising the workers of {self.home}")
        while not stopping:
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the supervisor outlives any one bad record
                self.log(f"supervisor tick failed: {e!r}")
            time.sleep(POLL_S)
        self.log("supervisor stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jarvis.stack.supervisor")
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", flush=True)

    Supervisor(args.home, log).run()


if __name__ == "__main__":
    main()
