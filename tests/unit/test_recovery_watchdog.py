from __future__ import annotations

from streams.recovery_watchdog import StallClock, restart_argv


def test_progress_keeps_the_watchdog_quiet() -> None:
    c = StallClock(stall_s=45)
    assert not c.stalled(True, 1000, now=0)
    for t, remaining in ((30, 900), (60, 800), (90, 10), (120, 1)):
        assert not c.stalled(True, remaining, now=t)


def test_no_progress_for_stall_s_is_a_stall() -> None:
    c = StallClock(stall_s=45)
    assert not c.stalled(True, 500, now=0)
    assert not c.stalled(True, 500, now=44)
    assert c.stalled(True, 500, now=45)
    assert c.stalled_for(50) == 50


def test_leaving_recovery_resets_the_clock() -> None:
    c = StallClock(stall_s=45)
    c.stalled(True, 500, now=0)
    assert not c.stalled(False, 0, now=40)
    # A new recovery starts its own clock even with the same count.
    assert not c.stalled(True, 500, now=50)
    assert not c.stalled(True, 500, now=94)
    assert c.stalled(True, 500, now=95)


def test_restart_runs_the_same_worker_command(monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["/x/.venv/bin/jarvis", "worker", "fold", "--region", "us"])
    argv = restart_argv()
    assert argv[1:] == ["-m", "jarvis.cli", "worker", "fold", "--region", "us"]
