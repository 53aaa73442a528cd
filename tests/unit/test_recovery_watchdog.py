from __future__ import annotations

from streams.recovery_watchdog import StallClock
from streams.reexec import restart_argv


def test_progress_keeps_the_watchdog_quiet() -> None:
    c = StallClock()
    assert not c.stalled(True, 1000, 45, now=0)
    for t, remaining in ((30, 900), (60, 800), (90, 10), (120, 1)):
        assert not c.stalled(True, remaining, 45, now=t)


def test_no_progress_for_the_limit_is_a_stall() -> None:
    c = StallClock()
    assert not c.stalled(True, 500, 45, now=0)
    assert not c.stalled(True, 500, 45, now=44)
    assert c.stalled(True, 500, 45, now=45)
    assert c.stalled_for(50) == 50


def test_a_rebalance_gets_the_longer_limit_its_caller_gives() -> None:
    c = StallClock()
    marker = (3, False, -1)
    assert not c.stalled(True, marker, 150, now=0)
    assert not c.stalled(True, marker, 150, now=149)
    assert c.stalled(True, marker, 150, now=150)


def test_being_idle_resets_the_clock() -> None:
    c = StallClock()
    c.stalled(True, 500, 45, now=0)
    assert not c.stalled(False, 500, 45, now=40)
    # A new recovery starts its own clock even with the same count.
    assert not c.stalled(True, 500, 45, now=50)
    assert not c.stalled(True, 500, 45, now=94)
    assert c.stalled(True, 500, 45, now=95)


def test_restart_runs_the_same_worker_command(monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["/x/.venv/bin/jarvis", "worker", "fold", "--region", "us"])
    argv = restart_argv()
    assert argv[1:] == ["-m", "jarvis.cli", "worker", "fold", "--region", "us"]
