"""Shared fixtures. Integration tests run against the real local stack, which they bring up."""

from __future__ import annotations

import pytest

from jarvis.config import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(settings: Settings):
    """The real local stack (Kafka per region, MirrorMaker 2, PostgreSQL, Redis), started if needed."""
    from jarvis.stack.stack import Stack

    s = Stack(settings)
    s.up(workers=True)
    return s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed integration test, name every stack process that is not running and show the end
    of its log: a worker that died mid-suite otherwise shows only as later tests timing out."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.when != "call" or not report.failed or stack is None:
        return
    optional = stack.schema_registry().name  # started only when asked for
    for proc in stack.all_procs():
        if proc.name != optional and not proc.running():
            report.sections.append((f"{proc.name} is not running", proc.log_tail(40)))
