"""What every use-case app shares: name checks (an id becomes part of an object id) and reads."""

from __future__ import annotations

import math
import re
import time
import urllib.error
from typing import Any

from connectors.sdk import Client
from jarvis.errors import JarvisError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AppError(JarvisError, ValueError):
    """An app was called with input it refuses; the message says which and why."""


def name(kind: str, value: Any) -> str:
    """`value` as one segment of an object id: letters, digits, '.', '_', '-' (no ':'), ≤ 128."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise AppError(f"{kind} must be 1-128 letters, digits, '.', '_' or '-', got {value!r}")
    return value


def positive_int(kind: str, value: Any) -> int:
    if type(value) is not int or value <= 0:
        raise AppError(f"{kind} must be a positive integer, got {value!r}")
    return value


def positive_number(kind: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise AppError(f"{kind} must be a positive finite number, got {value!r}")
    return float(value)


def read_value(c: Client, object_id: str, default: Any = None, timeout: float = 10.0) -> Any:
    """The object's live value in the client's region (`default` if unknown); waits out a 503
    (a partition recovering after a rebalance answers 503, never a wrong 404)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            view = c.read(object_id)
            return default if view is None else view["value"]
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
