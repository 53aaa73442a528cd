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
