"""The stack's supervisor on real (small) processes: a supervised process that dies is started again
as it was started and counted; a stopped one stays stopped; a crash loop backs off."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from jarvis.stack import supervisor
from jarvis.stack.procs import Proc, pid_alive, read_spec, supervised_names
from jarvis.stack.supervisor import Supervisor, backoff

SLEEPER = [sys.executable, "-c", "import os, time; print(os.environ['MARK'], flush=True); time.sleep(600)"]


def sleeper(home: Path, name: str = "worker-x-eu") -> Proc:
    return Proc(name=name, run_dir=home, argv=SLEEPER, env={"MARK": "from-the-starter"}, supervised=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch):
    # These processes die a moment after their start; a crash loop's pause is tested on its own.
    monkeypatch.setattr(supervisor, "QUICK_DEATH_S", 0.0)
    yield tmp_path
    for name in supervised_names(tmp_path) + [supervisor.NAME]:
        Proc(name=name, run_dir=tmp_path).stop(timeout=5)


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_process_is_started_again_from_its_record_and_counted(home: Path) -> None:
    proc = sleeper(home)
    first = proc.start()
    assert supervised_names(home) == ["worker-x-eu"] and proc.restarts() == 0
    assert wait_for(lambda: "from-the-starter" in proc.log_tail())
    proc.kill9()
    assert not proc.running()
    sup = Supervisor(home, log=lambda _: None)
    assert sup.tick() == ["worker-x-eu"]
    second = proc.pid()
    assert second is not None and second != first and not pid_alive(first)
    assert proc.restarts() == 1
    # Same argv and environment as the first start, whoever restarts it.
    assert wait_for(lambda: proc.log_tail().count("from-the-starter") == 2)
    assert "supervisor: restart 1 of worker-x-eu" in proc.log_tail()
    assert sup.tick() == []  # alive: left alone


def test_a_stopped_process_is_never_started_again(home: Path) -> None:
    proc = sleeper(home)
    proc.start()
    assert proc.stop(timeout=5)
    assert read_spec(proc.specfile) is None
    assert Supervisor(home, log=lambda _: None).tick() == []
    assert not proc.running()


def test_start_after_the_supervisor_restarted_it_does_not_start_a_second_one(home: Path) -> None:
    proc = sleeper(home)
    proc.start()
    proc.kill9()
    Supervisor(home, log=lambda _: None).tick()
    restarted = proc.pid()
    assert proc.start() == restarted  # the pidfile names a live process: nothing new
    assert proc.restarts() == 1


def test_an_explicit_start_resets_the_count(home: Path) -> None:
    proc = sleeper(home)
    proc.start()
    proc.kill9()
    Supervisor(home, log=lambda _: None).tick()
    assert proc.restarts() == 1
    proc.stop(timeout=5)
    proc.start()
    assert proc.restarts() == 0


def test_a_crash_loop_backs_off_but_never_past_ten_seconds() -> None:
    assert [backoff(n) for n in range(7)] == [0, 1, 2, 4, 8, 8, 8]


def test_a_process_that_dies_right_after_its_start_waits_its_pause(home: Path, monkeypatch) -> None:
    monkeypatch.setattr(supervisor, "QUICK_DEATH_S", 30.0)
    proc = sleeper(home)
    proc.start()
    proc.kill9()
    sup = Supervisor(home, log=lambda _: None)
    now = time.time()
    # Lived under QUICK_DEATH_S: one second's pause before the restart.
    assert sup.tick(now) == []
    assert not proc.running()
    assert sup.tick(now + 1.01) == ["worker-x-eu"]


def test_unsupervised_processes_leave_no_record(home: Path) -> None:
    proc = Proc(name="redis", run_dir=home, argv=SLEEPER, env={"MARK": "x"})
    proc.start()
    assert supervised_names(home) == [] and proc.restarts() == 0
    proc.stop(timeout=5)


def test_the_supervisor_process_restarts_a_kill_9_within_ten_seconds(home: Path) -> None:
    sup = supervisor.supervisor_proc(home)
    sup.env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    sup.start()
    proc = sleeper(home)
    first = proc.start()
    os.kill(first, signal.SIGKILL)
    t0 = time.monotonic()
    # The count is written just after the new process starts: wait for both, not one then the other.
    assert wait_for(lambda: proc.running() and proc.pid() != first and proc.restarts() == 1, 10), sup.log_tail()
    assert time.monotonic() - t0 < 10
    # Stopping it while the supervisor runs: it stays stopped.
    proc.stop(timeout=5)
    time.sleep(1.5)
    assert not proc.running()
    assert sup.stop(timeout=5)
    assert "supervisor stopped" in sup.log_tail()


def test_stack_down_stops_the_supervisor_and_every_supervised_process(home: Path) -> None:
    from jarvis.config import Settings
    from jarvis.stack.stack import Stack

    stack = Stack(Settings(home=home))
    sup = stack.supervisor()
    sup.env = {"PYTHONPATH": os.pathsep.join(sys.path)}
    sup.start()
    extra = sleeper(home, "worker-fold-eu-7")  # started outside `up`: only its record names it
    extra.start()
    stopped: list[str] = []
    stack.down(stopped.append)
    assert stopped[0] == f"stopped {supervisor.NAME}" and f"stopped {extra.name}" in stopped
    time.sleep(1.5)
    assert not extra.running() and not sup.running() and supervised_names(home) == []
    status = stack.status()
    assert status["supervisor"] == "stopped" and status["restarts"]["worker-fold-eu"] == 0


def test_postgres_waits_while_a_previous_postmaster_of_its_data_dir_runs(tmp_path) -> None:
    import subprocess
    import time

    from jarvis.stack.postgres import wait_for_previous_exit

    wait_for_previous_exit(tmp_path)  # no lock file: nothing to wait for
    (tmp_path / "postmaster.pid").write_text("999999999\n/data\n")
    wait_for_previous_exit(tmp_path)  # a stale lock of a dead process
    sleeper = subprocess.Popen(["sleep", "1"])
    (tmp_path / "postmaster.pid").write_text(f"{sleeper.pid}\n/data\n")
    t0 = time.monotonic()
    wait_for_previous_exit(tmp_path, timeout=10)
    assert time.monotonic() - t0 >= 0.5 and sleeper.poll() is not None


def test_stack_down_stops_postgres_with_its_fast_shutdown(tmp_path) -> None:
    """`down` builds its own Proc for PostgreSQL: with SIGTERM (smart shutdown) the postmaster
    waited for its clients, and an `up` right after found its lock file."""
    from jarvis.config import Settings
    from jarvis.stack import postgres
    from jarvis.stack.stack import Stack

    stopper = Stack(Settings(home=tmp_path)).postgres()
    assert stopper.stop_signal == signal.SIGINT
    assert {p.stop_signal for p in Stack(Settings(home=tmp_path)).all_procs() if p.name == "postgres"} == {
        postgres.STOP_SIGNAL
    }
