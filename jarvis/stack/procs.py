"""Background processes of the local stack: start detached, remember by pidfile, stop, read logs.

Every component is a plain child process in its own session, so `jarvis stack up` can return while
they keep running and `jarvis stack down` (another invocation) finds them again by pidfile.

A `supervised` process (every worker) also leaves what started it, argv and environment, in
`<home>/supervise/<name>.json`: the stack's supervisor (jarvis/stack/supervisor.py) starts it again
from there when it dies without being stopped. `stop()` removes that record before it signals, and
starting, stopping and the supervisor's restarts take the same per-process lock, so a stopped
process is never brought back and a crashed one is never started twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.errors import JarvisError


class StackError(JarvisError, RuntimeError):
    """A component could not be started or checked; the message says what to do."""


@dataclass
class Proc:
    name: str
    run_dir: Path
    argv: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    supervised: bool = False

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def specfile(self) -> Path:
        """What the supervisor restarts this process from (only while it is supervised and not stopped)."""
        return spec_dir(self.run_dir) / f"{self.name}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held around start, stop's first step and the supervisor's restart of this process."""
        path = spec_dir(self.run_dir) / f"{self.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @property
    def logfile(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, preexec: Callable[[], None] | None = None) -> int:
        if self.supervised and preexec is not None:
            raise ValueError("a supervised process is restarted from its argv and environment alone")
        with self.locked():
            if (pid := self.pid()) is not None:
                return pid
            env = {**os.environ, **self.env}
            pid = self._spawn(list(self.argv), env, self.cwd, preexec, "starting")
            if self.supervised:
                write_spec(
                    self.specfile,
                    {
                        "argv": list(self.argv),
                        "env": env,
                        "cwd": self.cwd and str(self.cwd),
                        "started": time.time(),
                        "restarts": 0,
                    },
                )
            return pid

    def _spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path | str | None,
        preexec: Callable[[], None] | None,
        what: str,
    ) -> int:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {what} {self.name}\n".encode())
            log.flush()
            p = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=preexec,
            )
        self.pidfile.write_text(str(p.pid))
        return p.pid

    def restart_from_spec(self) -> int | None:
        """The supervisor's restart: start the process again exactly as it was started, if it is
        dead and still meant to run (not stopped meanwhile); its pid, None if nothing was done."""
        with self.locked():
            spec = read_spec(self.specfile)
            if spec is None or self.pid() is not None:
                return None
            restarts = int(spec.get("restarts", 0)) + 1
            pid = self._spawn(
                spec["argv"], spec["env"], spec.get("cwd"), None, f"supervisor: restart {restarts} of"
            )
            write_spec(self.specfile, {**spec, "started": time.time(), "restarts": restarts})
            return pid

    def restarts(self) -> int:
        """How often the supervisor started this process again since it was last started."""
        spec = read_spec(self.specfile)
        return int(spec.get("restarts", 0)) if spec else 0

    def stop(self, timeout: float = 20.0) -> bool:
        # Not to be restarted: the record goes first, under the lock (a restart in progress finishes
        # first, and this reads its pid).
        with self.locked():
            self.specfile.unlink(missing_ok=True)
            pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        kill_group(pid, self.stop_signal)
        # Wait for the whole process group: a wrapper (runuser) may exit before the server it started.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (pid_alive(pid) or group_members(pid)):
            time.sleep(0.1)
        if pid_alive(pid) or group_members(pid):
            kill_group(pid, signal.SIGKILL)
            while pid_alive(pid) or group_members(pid):
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return True

    def kill9(self) -> None:
        """Crash the process (fault tests): no shutdown hooks run."""
        pid = self.pid()
        if pid is not None:
            kill_group(pid, signal.SIGKILL)
            while pid_alive(pid) or group_members(pid):
                time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.logfile, lines)


def spec_dir(run_dir: Path) -> Path:
    return run_dir / "supervise"


def write_spec(path: Path, spec: dict) -> None:
    """Atomically, readable by the owner only (it holds the process's environment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    os.replace(tmp, path)


def read_spec(path: Path) -> dict | None:
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) and spec.get("argv") else None


def supervised_names(run_dir: Path) -> list[str]:
    """Every process with a restart record: started supervised and not stopped since."""
    return sorted(p.stem for p in spec_dir(run_dir).glob("*.json"))


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def process_env(pid: int) -> dict[str, str]:
    """The environment a process was started with (empty if unreadable): which settings a worker has."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it so it reads as dead.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    proc: Proc | None = None,
    what: str = "component",
    interval: float = 0.25,
) -> None:
    """Poll `check` until true; fail fast with the log tail if `proc` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a check that raises is simply "not ready yet"
            pass
        if proc is not None and not proc.running():
            raise StackError(
                f"{what} exited during start-up. Last lines of {proc.logfile}:\n{proc.log_tail()}"
            )
        time.sleep(interval)
    detail = f" Last lines of {proc.logfile}:\n{proc.log_tail()}" if proc else ""
    raise StackError(f"{what} did not become ready within {timeout:.0f} s.{detail}")
