"""Structured logs: with JARVIS_LOG_FORMAT=json every worker writes one JSON object per line, with
time, level, role, region, logger and message, and the op, batch or object id where the caller
passed one (`log.info("...", extra={"op_id": ...})`), so a log shipper can index them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

FORMATS = ("text", "json")
# Fields a call may attach with `extra=`; they are copied to the line when present.
CONTEXT_FIELDS = ("op_id", "batch_id", "object_id", "task_id", "partition", "offset")
# `jarvis worker --loglevel` names (Faust's) to the logging module's.
LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str, region: str) -> None:
        super().__init__()
        self.role, self.region = role, region

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "role": self.role,
            "region": self.region,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for f in CONTEXT_FIELDS:
            v = getattr(record, f, None)
            if v is not None:
                line[f] = v
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def json_logging_config(role: str, region: str, level: str = "warn") -> dict[str, Any]:
    """A logging.config.dictConfig (the form Faust's worker takes) writing JSON lines to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "role": role, "region": region}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": LEVELS.get(level.lower(), level.upper()), "handlers": ["json"]},
    }
