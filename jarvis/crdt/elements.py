"""Canonical keys for set elements: JSON values (dicts and lists too) become hashable strings."""

from __future__ import annotations

import json
from typing import Any


def element_key(x: Any) -> str:
    # Strings, the common case, skip JSON; the type tag keeps "1" and 1 apart.
    if type(x) is str:
        return "s" + x
    return "j" + json.dumps(x, sort_keys=True, separators=(",", ":"))


def element_value(key: str) -> Any:
    return key[1:] if key[0] == "s" else json.loads(key[1:])
