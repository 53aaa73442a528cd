"""Set elements: any JSON value. Two forms, one in memory and one on the wire.

In memory (`key`) a string element is itself, so a set of strings holds references to the caller's
strings and no tagged copies; any other JSON value is ("j", canonical JSON), a tuple, which never
equals a string, so "1" and 1 stay apart. On the wire (`element_key`, `wire`) every element is a
tagged string: "s" + the string, or "j" + canonical JSON; that is the persisted form, and sorting by
it is the order `elements()` reports.
"""

from __future__ import annotations

import json
from typing import Any

Key = str | tuple[str, str]


def key(x: Any) -> Key:
    if type(x) is str:
        return x
    return ("j", json.dumps(x, sort_keys=True, separators=(",", ":")))


def wire(k: Key) -> str:
    return "s" + k if type(k) is str else "j" + k[1]


def from_wire(w: str) -> Key:
    return w[1:] if w[0] == "s" else ("j", w[1:])


def key_value(k: Key) -> Any:
    return k if type(k) is str else json.loads(k[1])


def element_key(x: Any) -> str:
    # Strings, the common case, skip JSON; the type tag keeps "1" and 1 apart.
    if type(x) is str:
        return "s" + x
    return "j" + json.dumps(x, sort_keys=True, separators=(",", ":"))


def element_value(key: str) -> Any:
    return key[1:] if key[0] == "s" else json.loads(key[1:])
