"""A benchmark run without a stack says what to do, instead of failing in its first client."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.stack_check import require_stack
from jarvis.config import Settings


def test_no_stack_names_the_stopped_parts_and_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_HOME", str(tmp_path))  # nothing was ever started here
    with pytest.raises(SystemExit) as e:
        require_stack(Settings.from_env())
    msg = str(e.value)
    assert "run `jarvis stack up` first" in msg
    assert msg.startswith("the local stack is not running (kafka-eu, kafka-us, mirrormaker, ")
