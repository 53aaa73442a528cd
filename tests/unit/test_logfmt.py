"""JARVIS_LOG_FORMAT=json: one JSON object per line with time, level, role, region and the op id."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from jarvis.config import Settings
from jarvis.logfmt import json_logging_config


def test_each_record_is_one_json_line_with_its_context(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(json_logging_config("verifier", "eu", "info"))
        log = logging.getLogger("streams.verifier")
        log.info("rejected %d operations", 3, extra={"op_id": "op-1", "batch_id": "b-9"})
        log.debug("not at info level")
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:], root.level = saved
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert {k: first[k] for k in ("level", "role", "region", "logger", "message", "op_id", "batch_id")} == {
        "level": "info", "role": "verifier", "region": "eu", "logger": "streams.verifier",
        "message": "rejected 3 operations", "op_id": "op-1", "batch_id": "b-9",
    }  # fmt: skip
    assert first["time"].endswith("+00:00") and "object_id" not in first
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_the_format_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().log_format in ("text", "json")
    monkeypatch.setenv("JARVIS_LOG_FORMAT", "JSON")
    assert Settings.from_env().log_format == "json"
    monkeypatch.delenv("JARVIS_LOG_FORMAT")
    assert Settings.from_env().log_format == "text"
