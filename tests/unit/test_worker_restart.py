"""`jarvis worker` starts itself again after a crash, never after a stop."""

from __future__ import annotations

import types

import pytest
from typer.testing import CliRunner

from jarvis import worker_cli
from jarvis.cli import app
from streams.reexec import restart_argv


class Exec(Exception):
    """Stands for os.execv, which would replace the test process."""


@pytest.fixture
def archiver(monkeypatch):
    """A stand-in archiver module whose run() does what the test says; records execs and sleeps."""
    calls: dict[str, list] = {"exec": [], "sleep": []}
    module = types.ModuleType("streams.archiver")
    monkeypatch.setitem(__import__("sys").modules, "streams.archiver", module)

    def execv(path: str, argv: list[str]) -> None:
        calls["exec"].append(argv)
        raise Exec

    monkeypatch.setattr(worker_cli.os, "execv", execv)
    monkeypatch.setattr(worker_cli.time, "sleep", calls["sleep"].append)
    monkeypatch.setattr("sys.argv", ["jarvis", "worker", "archiver", "--region", "eu"])
    return module, calls


def run(*args: str):
    return CliRunner().invoke(app, ["worker", "archiver", "--region", "eu", *args])


def test_a_crash_restarts_the_same_command_after_a_pause(archiver) -> None:
    module, calls = archiver

    def crash(*a, **k) -> None:
        raise RuntimeError("consumer thread died")

    module.run = crash
    result = run()
    assert isinstance(result.exception, Exec)
    assert calls["sleep"] == [worker_cli.CRASH_RESTART_S]
    assert calls["exec"] == [restart_argv()]
    assert calls["exec"][0][-4:] == ["worker", "archiver", "--region", "eu"]


def test_a_nonzero_exit_is_a_crash_too(archiver) -> None:
    module, calls = archiver

    def exit_1(*a, **k) -> None:
        raise SystemExit(1)  # how Faust's worker leaves after its app crashed

    module.run = exit_1
    assert isinstance(run().exception, Exec)
    assert len(calls["exec"]) == 1


@pytest.mark.parametrize("how", ["return", "exit 0"])
def test_a_stop_is_not_restarted(archiver, how: str) -> None:
    module, calls = archiver

    def stop(*a, **k) -> None:
        if how == "exit 0":
            raise SystemExit(0)  # SIGTERM: Faust stops cleanly and exits with 0

    module.run = stop
    assert run().exit_code == 0
    assert calls["exec"] == [] and calls["sleep"] == []


def test_no_restart_lets_the_crash_through(archiver) -> None:
    module, calls = archiver

    def crash(*a, **k) -> None:
        raise RuntimeError("boom")

    module.run = crash
    result = run("--no-restart")
    assert isinstance(result.exception, RuntimeError) and calls["exec"] == []
